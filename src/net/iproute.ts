// Thin async door to iproute2 (`ip`, `bridge`) via execFile with argv arrays: no shell, a timeout on every call,
// failures as IprouteError (code WEFT_ERR_IPROUTE) carrying the argv and ip's stderr.
//
// Reads use `ip -json` and are narrowed from `unknown` by the small parsers below; writes use the idempotent verbs
// (replace, append) so a daemon can re-apply its state after a restart. `opts.netns` maps to `ip -n <ns>`, which
// enters the namespace for that one command only.
import { execFile } from 'node:child_process';
import { WeftError } from '../errors.js';

export const DEFAULT_TIMEOUT_MS = 10_000;
// A full routing table as JSON can be large; execFile's default (1 MiB) is too small for big clusters.
const MAX_BUFFER = 64 * 1024 * 1024;

export interface IpOptions {
  netns?: string;
  json?: boolean;
  timeoutMs?: number;
}

export class IprouteError extends WeftError {
  readonly argv: readonly string[];
  readonly stderr: string;
  readonly exitCode: number | null;
  readonly timedOut: boolean;
  constructor(argv: readonly string[], stderr: string, exitCode: number | null, timedOut: boolean, cause?: unknown) {
    const why = timedOut ? 'timed out' : `failed (exit ${exitCode ?? 'signal'})`;
    const detail = stderr.trim().split('\n').slice(-3).join(' | ');
    super('WEFT_ERR_IPROUTE', `${argv.join(' ')} ${why}${detail ? `: ${detail}` : ''}`, { cause });
    this.name = 'IprouteError';
    this.argv = argv;
    this.stderr = stderr;
    this.exitCode = exitCode;
    this.timedOut = timedOut;
  }

  // The kernel's ESRCH/ENOENT answers to deleting something that is not there.
  get isNotFound(): boolean {
    return /No such process|No such file or directory|Cannot find device|does not exist/i.test(this.stderr);
  }

  get isExists(): boolean {
    return /File exists/i.test(this.stderr);
  }
}

interface RunResult {
  stdout: string;
  stderr: string;
}

function run(file: string, argv: string[], input: string | undefined, timeoutMs: number): Promise<RunResult> {
  const shown = [file, ...argv];
  return new Promise((resolve, reject) => {
    const child = execFile(
      file,
      argv,
      { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: MAX_BUFFER, encoding: 'utf8' },
      (err, stdout, stderr) => {
        if (!err) {
          resolve({ stdout, stderr });
          return;
        }
        const e = err as NodeJS.ErrnoException & { killed?: boolean; code?: number | string | null };
        const exitCode = typeof e.code === 'number' ? e.code : null;
        // execFile reports spawn failures (ENOENT: iproute2 missing) with a string code and empty stderr.
        const msg = stderr || (typeof e.code === 'string' ? `${e.code}: ${e.message}` : '');
        reject(new IprouteError(shown, msg, exitCode, e.killed === true && exitCode === null, err));
      },
    );
    if (input !== undefined) {
      // EPIPE if ip dies early is reported through the exit callback; don't let it become an unhandled error.
      child.stdin?.on('error', () => undefined);
      child.stdin?.end(input);
    }
  });
}

function nsArgs(netns: string | undefined): string[] {
  if (netns === undefined) return [];
  checkWord(netns, ['ip', '-n', netns]);
  return ['-n', netns];
}

/** Run `ip [-n ns] [-json] ...args`. Returns stdout, or with json: true the parsed JSON (empty output -> []). */
export function ip(args: string[], opts: IpOptions & { json: true }): Promise<unknown>;
export function ip(args: string[], opts?: IpOptions & { json?: false }): Promise<string>;
export function ip(args: string[], opts?: IpOptions): Promise<string | unknown>;
export function ip(args: string[], opts: IpOptions = {}): Promise<string | unknown> {
  return iproute2('ip', args, opts);
}

/** Run `bridge [-n ns] [-json] ...args` (FDB entries live there, not in `ip`). */
export function bridge(args: string[], opts: IpOptions & { json: true }): Promise<unknown>;
export function bridge(args: string[], opts?: IpOptions & { json?: false }): Promise<string>;
export function bridge(args: string[], opts?: IpOptions): Promise<string | unknown>;
export function bridge(args: string[], opts: IpOptions = {}): Promise<string | unknown> {
  return iproute2('bridge', args, opts);
}

async function iproute2(tool: 'ip' | 'bridge', args: string[], opts: IpOptions): Promise<string | unknown> {
  const argv = [...nsArgs(opts.netns), ...(opts.json ? ['-json'] : []), ...args];
  const { stdout } = await run(tool, argv, undefined, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  return opts.json ? parseJson([tool, ...argv], stdout) : stdout;
}

function parseJson(argv: string[], stdout: string): unknown {
  // Some iproute2 versions print nothing at all for an empty list.
  if (stdout.trim() === '') return [];
  try {
    return JSON.parse(stdout) as unknown;
  } catch (e) {
    throw new IprouteError(argv, `unparsable JSON output: ${stdout.slice(0, 200)}`, 0, false, e);
  }
}

// ip's batch parser (lib/utils.c makeargs/getcmdline) splits on blanks, treats a leading quote as quoting, cuts the
// line at '#', and joins lines ending in '\'. We never quote: words that would need it are refused instead.
// eslint-disable-next-line no-control-regex -- control characters are exactly what is refused
const UNSAFE_WORD = /[\s"'#\\\u0000-\u001f\u007f]/;
const MAX_BATCH_WORDS = 500; // makeargs stops at 512 per line

function checkWord(w: string, argv: readonly string[] = ['ip', '-batch', '-']): void {
  if (w === '' || UNSAFE_WORD.test(w)) {
    throw new IprouteError(argv, `refusing unsafe argv word ${JSON.stringify(w)}`, null, false);
  }
}

export interface BatchOptions extends IpOptions {
  /** Keep going after a failing line (`ip -force`); ip still exits non-zero at the end. */
  force?: boolean;
}

/**
 * Run many ip commands in one process: `ip [-n ns] [-force] -batch -`, one argv array per line, without the
 * leading "ip". Each word must be non-empty and free of whitespace, quotes, '#', '\' and control characters.
 * On failure ip names the line ("Command failed -:N"); it is in the error's stderr.
 */
export async function ipBatch(lines: string[][], opts: BatchOptions = {}): Promise<string> {
  if (lines.length === 0) return '';
  for (const line of lines) {
    if (line.length === 0) throw new IprouteError(['ip', '-batch', '-'], 'empty batch line', null, false);
    if (line.length > MAX_BATCH_WORDS)
      throw new IprouteError(['ip', '-batch', '-'], 'batch line too long', null, false);
    for (const w of line) checkWord(w);
  }
  const argv = [...nsArgs(opts.netns), ...(opts.force ? ['-force'] : []), '-batch', '-'];
  const input = lines.map((l) => l.join(' ')).join('\n') + '\n';
  // A batch does many commands: scale the timeout a little with its size.
  const timeout = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS + lines.length * 5;
  const { stdout } = await run('ip', argv, input, timeout);
  return stdout;
}

// ---- JSON narrowing ----

type Json = Record<string, unknown>;

function isRecord(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function records(v: unknown): Json[] {
  return Array.isArray(v) ? v.filter(isRecord) : [];
}

function str(o: Json, k: string): string | undefined {
  const v = o[k];
  return typeof v === 'string' ? v : undefined;
}

function num(o: Json, k: string): number | undefined {
  const v = o[k];
  return typeof v === 'number' ? v : undefined;
}

function strings(o: Json, k: string): string[] {
  const v = o[k];
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}

// ---- links and addresses ----

export interface Interface {
  name: string;
  index: number;
  mtu: number;
  mac?: string;
  up: boolean;
  /** IPv4 addresses without prefix length, in kernel order (primary first). */
  addresses: string[];
  /** The same addresses as CIDRs ("10.0.0.1/24"). */
  cidrs: string[];
  /**
   * Global-scope IPv6 addresses in flannel's order of preference (pkg/ip/iface.go, compareAddrs): permanent before
   * dynamic, non-temporary before temporary, else kernel order; deprecated and failed ones are left out.
   */
  addresses6: string[];
  /** The same IPv6 addresses as CIDRs ("fd00::11/64"). */
  cidrs6: string[];
}

function globalIPv6(addrInfo: unknown): Json[] {
  const usable = records(addrInfo).filter(
    (a) =>
      str(a, 'family') === 'inet6' &&
      str(a, 'scope') === 'global' &&
      a['deprecated'] !== true &&
      a['dadfailed'] !== true &&
      str(a, 'local') !== undefined,
  );
  const rank = (a: Json): number => (a['dynamic'] === true ? 2 : 0) + (a['temporary'] === true ? 1 : 0);
  return usable
    .map((a, i) => ({ a, i }))
    .sort((x, y) => rank(x.a) - rank(y.a) || x.i - y.i)
    .map((x) => x.a);
}

export function parseInterfaces(json: unknown): Interface[] {
  return records(json).map((o) => {
    const inet = records(o['addr_info']).filter((a) => str(a, 'family') === 'inet');
    const inet6 = globalIPv6(o['addr_info']);
    return {
      name: str(o, 'ifname') ?? '',
      index: num(o, 'ifindex') ?? 0,
      mtu: num(o, 'mtu') ?? 0,
      mac: str(o, 'address'),
      up: strings(o, 'flags').includes('UP'),
      addresses: inet.map((a) => str(a, 'local') ?? '').filter((a) => a !== ''),
      cidrs: inet.map((a) => `${str(a, 'local') ?? ''}/${num(a, 'prefixlen') ?? 32}`).filter((c) => !c.startsWith('/')),
      addresses6: inet6.map((a) => str(a, 'local') ?? ''),
      cidrs6: inet6.map((a) => `${str(a, 'local') ?? ''}/${num(a, 'prefixlen') ?? 128}`),
    };
  });
}

/** The interface called `name`, or null when there is none. */
export async function interfaceByName(name: string, opts: IpOptions = {}): Promise<Interface | null> {
  try {
    const json = await ip(['addr', 'show', 'dev', name], { ...opts, json: true });
    return parseInterfaces(json)[0] ?? null;
  } catch (e) {
    if (e instanceof IprouteError && e.isNotFound) return null;
    throw e;
  }
}

/** The interface that carries address `addr` (no prefix length; IPv4, or a global IPv6 as ip prints it), or null. */
export async function interfaceByAddress(addr: string, opts: IpOptions = {}): Promise<Interface | null> {
  const json = await ip(['addr', 'show'], { ...opts, json: true });
  return parseInterfaces(json).find((i) => i.addresses.includes(addr) || i.addresses6.includes(addr)) ?? null;
}

/** The interface of the default route (lowest metric first, as the kernel picks), or null when there is none. */
export async function defaultRouteInterface(opts: IpOptions = {}, family: 4 | 6 = 4): Promise<Interface | null> {
  const routes = await listRoutes({ dst: 'default', family }, opts);
  const best = routes.filter((r) => r.dev !== undefined).sort((a, b) => (a.metric ?? 0) - (b.metric ?? 0))[0];
  return best?.dev === undefined ? null : interfaceByName(best.dev, opts);
}

export interface LinkInfo {
  name: string;
  index: number;
  mtu: number;
  mac?: string;
  up: boolean;
  /** linkinfo.info_kind: "vxlan", "veth", "bridge", "tun"... undefined for plain devices. */
  kind?: string;
  /** linkinfo.info_data as ip prints it (for vxlan: id, local, port, learning...). */
  data: Record<string, unknown>;
  master?: string;
}

/** `ip -d link show dev <name>`, or null when the link does not exist. */
export async function linkByName(name: string, opts: IpOptions = {}): Promise<LinkInfo | null> {
  let json: unknown;
  try {
    json = await ip(['-d', 'link', 'show', 'dev', name], { ...opts, json: true });
  } catch (e) {
    if (e instanceof IprouteError && e.isNotFound) return null;
    throw e;
  }
  const o = records(json)[0];
  if (!o) return null;
  const li = isRecord(o['linkinfo']) ? o['linkinfo'] : {};
  return {
    name: str(o, 'ifname') ?? name,
    index: num(o, 'ifindex') ?? 0,
    mtu: num(o, 'mtu') ?? 0,
    mac: str(o, 'address'),
    up: strings(o, 'flags').includes('UP'),
    kind: str(li, 'info_kind'),
    data: isRecord(li['info_data']) ? li['info_data'] : {},
    master: str(o, 'master'),
  };
}

export async function addrReplace(dev: string, cidr: string, opts: IpOptions = {}): Promise<void> {
  await ip(['addr', 'replace', cidr, 'dev', dev], opts);
}

/** Delete an address; false when it was not there. */
export async function addrDel(dev: string, cidr: string, opts: IpOptions = {}): Promise<boolean> {
  try {
    await ip(['addr', 'del', cidr, 'dev', dev], opts);
    return true;
  } catch (e) {
    // EADDRNOTAVAIL is how the kernel says "no such address on this device".
    if (e instanceof IprouteError && (e.isNotFound || /Cannot assign requested address/.test(e.stderr))) return false;
    throw e;
  }
}

/** Set a link up, and its MTU first when given (one ip call). */
export async function linkSetUp(dev: string, mtu?: number, opts: IpOptions = {}): Promise<void> {
  await ip(['link', 'set', 'dev', dev, ...(mtu !== undefined ? ['mtu', String(mtu)] : []), 'up'], opts);
}

/** Delete a link; false when it was not there. */
export async function linkDel(dev: string, opts: IpOptions = {}): Promise<boolean> {
  return ignoreNotFound(ip(['link', 'del', 'dev', dev], opts));
}

export interface VxlanSpec {
  name: string;
  vni: number;
  /** UDP destination port; flannel uses the kernel's 8472. */
  port: number;
  /** Local underlay IPv4 (the lease's PublicIP). */
  local?: string;
  /** Underlay device. */
  dev?: string;
  learning?: boolean;
  mtu?: number;
  /** Fixed MAC, so a restarted daemon keeps the VtepMAC it published. */
  mac?: string;
}

/** `ip link add <name> type vxlan id <vni> dstport <port> [local] [dev] nolearning`, learning off unless asked. */
export async function linkAddVxlan(spec: VxlanSpec, opts: IpOptions = {}): Promise<void> {
  const args = ['link', 'add', spec.name];
  if (spec.mac !== undefined) args.push('address', spec.mac);
  if (spec.mtu !== undefined) args.push('mtu', String(spec.mtu));
  args.push('type', 'vxlan', 'id', String(spec.vni), 'dstport', String(spec.port));
  if (spec.local !== undefined) args.push('local', spec.local);
  if (spec.dev !== undefined) args.push('dev', spec.dev);
  args.push(spec.learning ? 'learning' : 'nolearning');
  await ip(args, opts);
}

// ---- routes ----

export interface RouteSpec {
  /** "10.5.3.0/24" or "default". */
  dst: string;
  dev?: string;
  via?: string;
  onlink?: boolean;
  src?: string;
  table?: string | number;
  metric?: number;
  proto?: string;
}

export interface Route {
  dst: string;
  dev?: string;
  gateway?: string;
  prefsrc?: string;
  protocol?: string;
  scope?: string;
  metric?: number;
  table?: string;
  flags: string[];
}

function routeArgs(r: RouteSpec): string[] {
  const a = [r.dst];
  if (r.via !== undefined) a.push('via', r.via);
  if (r.dev !== undefined) a.push('dev', r.dev);
  if (r.onlink) a.push('onlink');
  if (r.src !== undefined) a.push('src', r.src);
  if (r.table !== undefined) a.push('table', String(r.table));
  if (r.metric !== undefined) a.push('metric', String(r.metric));
  if (r.proto !== undefined) a.push('proto', r.proto);
  return a;
}

export async function routeReplace(r: RouteSpec, opts: IpOptions = {}): Promise<void> {
  await ip(['route', 'replace', ...routeArgs(r)], opts);
}

/** Delete a route; false when it was not there. */
export async function routeDel(r: RouteSpec, opts: IpOptions = {}): Promise<boolean> {
  return ignoreNotFound(ip(['route', 'del', ...routeArgs(r)], opts));
}

export function parseRoutes(json: unknown): Route[] {
  return records(json).map((o) => ({
    dst: str(o, 'dst') ?? '',
    dev: str(o, 'dev'),
    gateway: str(o, 'gateway'),
    prefsrc: str(o, 'prefsrc'),
    protocol: str(o, 'protocol'),
    scope: str(o, 'scope'),
    metric: num(o, 'metric'),
    table: str(o, 'table'),
    flags: strings(o, 'flags'),
  }));
}

export interface RouteFilter {
  dev?: string;
  table?: string | number;
  /** A selector as `ip route show` takes it: "default", "10.5.0.0/16", "root 10.5.0.0/16"... one word. */
  dst?: string;
  /** IPv4 (the default) or IPv6 routes. */
  family?: 4 | 6;
}

/** IPv4 (or IPv6) routes, optionally filtered by device, table and destination. */
export async function listRoutes(filter: RouteFilter | string = {}, opts: IpOptions = {}): Promise<Route[]> {
  const f: RouteFilter = typeof filter === 'string' ? { dev: filter } : filter;
  const args = [f.family === 6 ? '-6' : '-4', 'route', 'show'];
  if (f.table !== undefined) args.push('table', String(f.table));
  if (f.dev !== undefined) args.push('dev', f.dev);
  if (f.dst !== undefined) args.push(f.dst);
  const routes = parseRoutes(await ip(args, { ...opts, json: true }));
  // ip omits "dev" from each entry when the filter fixes it.
  return f.dev === undefined ? routes : routes.map((r) => ({ ...r, dev: r.dev ?? f.dev }));
}

// ---- neighbours and FDB (kernel VXLAN backend) ----

export interface NeighSpec {
  dst: string;
  lladdr: string;
  dev: string;
  /** Default "permanent", as flannel installs them. */
  nud?: 'permanent' | 'reachable' | 'stale' | 'noarp';
}

export async function neighReplace(n: NeighSpec, opts: IpOptions = {}): Promise<void> {
  await ip(['neigh', 'replace', n.dst, 'lladdr', n.lladdr, 'dev', n.dev, 'nud', n.nud ?? 'permanent'], opts);
}

export interface FdbSpec {
  mac: string;
  dev: string;
  /** Remote VTEP underlay IPv4. */
  dst: string;
}

/** `bridge fdb append <mac> dev <dev> dst <ip>`; appending an identical entry again succeeds. */
export async function fdbAppend(f: FdbSpec, opts: IpOptions = {}): Promise<void> {
  await bridge(['fdb', 'append', f.mac, 'dev', f.dev, 'dst', f.dst], opts);
}

export async function fdbDel(f: FdbSpec, opts: IpOptions = {}): Promise<boolean> {
  return ignoreNotFound(bridge(['fdb', 'del', f.mac, 'dev', f.dev, 'dst', f.dst], opts));
}

export interface FdbEntry {
  mac: string;
  dst?: string;
  state?: string;
  flags: string[];
}

export async function listFdb(dev: string, opts: IpOptions = {}): Promise<FdbEntry[]> {
  const json = await bridge(['fdb', 'show', 'dev', dev], { ...opts, json: true });
  return records(json).map((o) => ({
    mac: str(o, 'mac') ?? '',
    dst: str(o, 'dst'),
    state: str(o, 'state'),
    flags: strings(o, 'flags'),
  }));
}

async function ignoreNotFound(p: Promise<unknown>): Promise<boolean> {
  try {
    await p;
    return true;
  } catch (e) {
    if (e instanceof IprouteError && e.isNotFound) return false;
    throw e;
  }
}
