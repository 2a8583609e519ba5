// Network-namespace testbed for tests, `weft demo` and `weft bench`. Nothing here touches the root namespace's
// links or routes (the root namespace is the CI machine) unless `rootLink` is asked for.
//
//   netns "w<id>-br": bridge wbr<id>, address 198.18.<id>.254/24   <- run etcd here (tb.spawn(tb.bridgeNs, ...))
//                     ports h1, h2, h3 ... (+ "root" with rootLink)
//                                   │
//   h1 ── veth ──┐                  │   198.18.<id>.0/24 (RFC 2544 benchmark range, private to our namespaces)
//   h2 ── veth ──┼── wbr<id> ───────┘
//   h3 ── veth ──┘
//   (root ns) w<id>-root 198.18.<id>.253/24 ── veth ──┘   only with rootLink: a process in the root namespace
//                                                         (the test runner's etcd client) reaches the underlay
//
//   each host hN: netns "w<id>-hN", underlay eth0 198.18.<id>.N/24, default route via .254 (so the daemon's
//   "interface of the default route" is eth0; the bridge netns does not forward, so stray traffic dies there).
//   addPod(hN, "10.5.3.1/24"):   hN: cni0 10.5.3.1/24 ── veth ── netns "w<id>-hN-pod": eth0 10.5.3.2/24,
//                                default via 10.5.3.1; hN gets ip_forward=1 and rp_filter=0.
//
// Weft daemons run in hN, use 198.18.<id>.N (eth0) as PublicIP and reach etcd at http://198.18.<id>.254:2379.
//
// Cleanup: every namespace and child process is recorded in a module-level registry before it exists.
// destroy() kills the testbed's children (SIGTERM, SIGKILL after 2 s) and deletes its namespaces (which removes
// their veths). A process 'exit' handler and SIGINT/SIGTERM handlers do the same synchronously, best effort.
// A run that died by SIGKILL leaves its pid in /run/weft-testbed/<id>.pid; cleanupStale() removes the namespaces
// of ids whose owner is dead, and createTestbed() calls it first.
import { execFile, execFileSync, spawn as spawnChild, type ChildProcess, type StdioOptions } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, writeSync } from 'node:fs';
import { WeftError, errorMessage } from '../src/errors.js';
import { silentLogger, type Logger } from '../src/log.js';
import { ip, ipBatch, linkDel } from '../src/net/iproute.js';
import { formatIPv4, parseIPv4 } from '../src/ip/subnet.js';
import { sleep } from '../src/util/sleep.js';

export const RUN_DIR = '/run/weft-testbed';
const DEFAULT_EXEC_TIMEOUT_MS = 30_000;
const KILL_GRACE_MS = 2_000;
const MAX_HOSTS = 250; // .253 and .254 are taken

/** Testbed failures: setup commands or the tools it drives (ping, iperf3). */
export class TestbedError extends WeftError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('WEFT_ERR_IPROUTE', message, options);
    this.name = 'TestbedError';
  }
}

export interface Pod {
  ns: string;
  /** Pod address without prefix length (gateway + k). */
  ip: string;
  /** Pod address with prefix length. */
  cidr: string;
  /** cni0 address in the host. */
  gateway: string;
  /** Number n of the host hN that carries it. */
  host: number;
  dev: 'eth0';
}

export interface Host {
  n: number;
  /** "h1" */
  name: string;
  /** "w<id>-h1" */
  ns: string;
  /** Underlay address 198.18.<id>.n */
  ip: string;
  /** Underlay address with prefix length. */
  cidr: string;
  /** Underlay device inside ns. */
  dev: 'eth0';
  pods: Pod[];
}

/** Where to run something: a host, a pod, or the name of one of the testbed's namespaces. */
export type Target = Host | Pod | string;

export interface ExecOptions {
  timeoutMs?: number;
  input?: string;
  env?: NodeJS.ProcessEnv;
}

export interface ExecResult {
  stdout: string;
  stderr: string;
  /** Exit code, null when killed by a signal (also on timeout) or not started. */
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
}

export interface SpawnOptions {
  /** Default 'ignore' for all three: pipes that nobody reads would stall the child. */
  stdio?: StdioOptions;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export interface TestbedOptions {
  hosts: number;
  /** 1..254; random unused id by default, so parallel runs don't clash. */
  id?: number;
  /** Underlay MTU on the bridge and veths (default 1500). */
  mtu?: number;
  /** Add a veth into the root namespace with 198.18.<id>.253/24 (see header). */
  rootLink?: boolean;
  /** Install SIGINT/SIGTERM handlers that clean up and re-raise (default true). Pass false if the caller
   * handles signals itself and calls destroy(); the 'exit' handler is always installed. */
  handleSignals?: boolean;
  log?: Logger;
}

export interface Testbed {
  readonly id: number;
  /** Live list, ordered by n. */
  readonly hosts: readonly Host[];
  readonly bridgeNs: string;
  readonly bridgeDev: string;
  /** 198.18.<id>.254: the bridge netns' own address; run etcd there. */
  readonly bridgeIP: string;
  /** 198.18.<id>.253 in the root namespace when rootLink was asked for. */
  readonly rootIP: string | undefined;
  /** "198.18.<id>.0/24" */
  readonly underlayCidr: string;
  readonly mtu: number;
  hostIP(n: number): string;
  host(n: number): Host;
  exec(target: Target, argv: string[], opts?: ExecOptions): Promise<ExecResult>;
  spawn(target: Target, argv: string[], opts?: SpawnOptions): ChildProcess;
  addHost(): Promise<Host>;
  removeHost(host: Host | number): Promise<void>;
  /** gatewayCidr like "10.5.3.1/24": cni0 gets it in the host, the k-th pod gets gateway + k. `bare`: only the
   *  registered namespace, for a CNI plugin to wire up. */
  addPod(host: Host | number, gatewayCidr: string, opts?: { mtu?: number; bare?: boolean }): Promise<Pod>;
  destroy(): Promise<void>;
}

// ---- module-level registry, so exit/signal handlers can undo everything even if destroy() never runs ----

const registry = {
  namespaces: new Set<string>(),
  children: new Map<ChildProcess, string>(), // child -> netns it runs in
  pidFiles: new Set<string>(),
  rootLinks: new Set<string>(), // veths in this process's own namespace (rootLink)
};
let exitHandlerInstalled = false;
let signalHandlersInstalled = false;

function syncCleanup(): void {
  for (const child of registry.children.keys()) {
    // No time to be polite while exiting.
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  registry.children.clear();
  // Kernel netns teardown is asynchronous: delete root-side links ourselves so they are gone when we return.
  for (const dev of registry.rootLinks) {
    try {
      execFileSync('ip', ['link', 'del', 'dev', dev], { stdio: 'ignore', timeout: 5_000 });
    } catch {
      // already gone with its netns
    }
  }
  registry.rootLinks.clear();
  for (const ns of registry.namespaces) {
    // Dying by a signal, this process runs no 'exit' handlers, so what others started in our namespaces (an etcd
    // from testbed/etcd.ts) would outlive them: everything inside a namespace of this run is this run's.
    try {
      const pids = execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', timeout: 5_000 })
        .split('\n')
        .filter(Boolean);
      for (const pid of pids) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          // gone already
        }
      }
    } catch {
      // the namespace is gone already
    }
    try {
      execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore', timeout: 5_000 });
    } catch {
      // best effort: cleanupStale() of the next run catches what is left
    }
  }
  registry.namespaces.clear();
  for (const f of registry.pidFiles) rmSync(f, { force: true });
  registry.pidFiles.clear();
}

function onSignal(sig: NodeJS.Signals): void {
  syncCleanup();
  process.removeListener('SIGINT', onSigint);
  process.removeListener('SIGTERM', onSigterm);
  signalHandlersInstalled = false;
  // Re-raise so the default action (or a signal-exit style handler that counts listeners) ends the process.
  process.kill(process.pid, sig);
}
const onSigint = (): void => onSignal('SIGINT');
const onSigterm = (): void => onSignal('SIGTERM');

function installHandlers(signals: boolean): void {
  if (!exitHandlerInstalled) {
    process.on('exit', syncCleanup);
    exitHandlerInstalled = true;
  }
  if (signals && !signalHandlersInstalled) {
    process.on('SIGINT', onSigint);
    process.on('SIGTERM', onSigterm);
    signalHandlersInstalled = true;
  }
}

// ---- small helpers ----

function ipToInt(a: string): number {
  const ip = parseIPv4(a);
  if (ip === null) throw new TestbedError(`not an IPv4 address: ${a}`);
  return ip;
}

function nsOf(target: Target): string {
  return typeof target === 'string' ? target : target.ns;
}

/** Run argv inside a namespace (`ip netns exec`), bounded by a timeout; never rejects on a non-zero exit. */
export function execIn(ns: string, argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  return new Promise((resolve) => {
    const child = execFile(
      'ip',
      ['netns', 'exec', ns, ...argv],
      {
        timeout: opts.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS,
        killSignal: 'SIGKILL',
        maxBuffer: 64 * 1024 * 1024,
        encoding: 'utf8',
        env: opts.env,
      },
      (err, stdout, stderr) => {
        registry.children.delete(child);
        if (!err) {
          resolve({ stdout, stderr, code: 0, signal: null, timedOut: false });
          return;
        }
        const e = err as NodeJS.ErrnoException & {
          killed?: boolean;
          code?: number | string | null;
          signal?: NodeJS.Signals | null;
        };
        const code = typeof e.code === 'number' ? e.code : null;
        resolve({
          stdout,
          stderr: stderr || e.message,
          code,
          signal: e.signal ?? null,
          timedOut: e.killed === true && code === null,
        });
      },
    );
    // Tracked like spawned children, so an interrupted run (Ctrl-C in the bench) also kills a command still running
    // in a namespace (an iperf3 client outlives its deleted namespace otherwise).
    registry.children.set(child, ns);
    if (opts.input !== undefined) {
      child.stdin?.on('error', () => undefined);
      child.stdin?.end(opts.input);
    }
  });
}

/** Start argv inside a namespace; the child is tracked and killed by destroy() or at process exit. */
export function spawnIn(ns: string, argv: string[], opts: SpawnOptions = {}): ChildProcess {
  installHandlers(false);
  const child = spawnChild('ip', ['netns', 'exec', ns, ...argv], {
    stdio: opts.stdio ?? 'ignore',
    env: opts.env,
    cwd: opts.cwd,
  });
  registry.children.set(child, ns);
  child.once('exit', () => registry.children.delete(child));
  // A failed spawn emits 'error', which would otherwise crash the process; 'exit' may never come.
  child.once('error', () => registry.children.delete(child));
  return child;
}

/** SIGTERM, then SIGKILL after a grace period. Resolves when the child has exited. */
export async function killChild(child: ChildProcess, graceMs = KILL_GRACE_MS): Promise<void> {
  const exited = (): boolean => child.exitCode !== null || child.signalCode !== null || child.pid === undefined;
  if (exited()) return;
  const done = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const t1 = await Promise.race([done.then(() => true), sleep(graceMs).then(() => false)]);
  if (t1 || exited()) return;
  child.kill('SIGKILL');
  await Promise.race([done, sleep(2_000)]);
}

async function sysctl(ns: string, settings: Record<string, string | number>): Promise<void> {
  const args = Object.entries(settings).map(([k, v]) => `${k}=${v}`);
  const r = await execIn(ns, ['sysctl', '-q', '-w', ...args], { timeoutMs: 10_000 });
  if (r.code !== 0) throw new TestbedError(`sysctl ${args.join(' ')} in ${ns} failed: ${r.stderr.trim()}`);
}

async function listNamespaces(): Promise<string[]> {
  const json = await ip(['netns', 'list'], { json: true });
  if (!Array.isArray(json)) return [];
  return json
    .map((o: unknown) =>
      typeof o === 'object' && o !== null && 'name' in o && typeof o.name === 'string' ? o.name : '',
    )
    .filter((n) => n !== '');
}

// ---- pid markers ----

function pidFile(id: number): string {
  return `${RUN_DIR}/${id}.pid`;
}

// Field 22 of /proc/<pid>/stat: start time in clock ticks. With the pid it identifies a process (pids get reused).
function startTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm (field 2) may contain spaces and ')' : split after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return rest[19] ?? null;
  } catch {
    return null;
  }
}

interface Marker {
  pid: number;
  start: string | null;
}

function readMarker(path: string): Marker | null {
  try {
    const o: unknown = JSON.parse(readFileSync(path, 'utf8'));
    if (typeof o === 'object' && o !== null && 'pid' in o && typeof o.pid === 'number') {
      const start = 'start' in o && typeof o.start === 'string' ? o.start : null;
      return { pid: o.pid, start };
    }
  } catch {
    // unreadable or half-written: treat as no owner
  }
  return null;
}

function ownerAlive(m: Marker | null): boolean {
  if (m === null) return false;
  if (m.pid === process.pid) return true;
  try {
    process.kill(m.pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const now = startTime(m.pid);
  return m.start === null || now === null || now === m.start;
}

function markerText(): string {
  return JSON.stringify({ pid: process.pid, start: startTime(process.pid), created: new Date().toISOString() }) + '\n';
}

/** Create the marker only if absent (atomic claim); false when another run holds the id. */
function claimMarker(id: number): boolean {
  mkdirSync(RUN_DIR, { recursive: true });
  let fd: number;
  try {
    fd = openSync(pidFile(id), 'wx');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  }
  try {
    writeSync(fd, markerText());
  } finally {
    closeSync(fd);
  }
  registry.pidFiles.add(pidFile(id));
  return true;
}

function releaseMarker(id: number): void {
  rmSync(pidFile(id), { force: true });
  registry.pidFiles.delete(pidFile(id));
}

// ---- stale cleanup ----

export interface CleanupStaleOptions {
  log?: Logger;
  /** Also delete matching namespaces that have no marker at all (default false: they may not be ours). */
  orphans?: boolean;
}

/**
 * Delete leftover namespaces "<prefix><id>-*" of runs whose owner (from /run/weft-testbed/<id>.pid) is dead,
 * SIGKILLing the processes still inside them (they were started by that run). Returns the deleted namespaces.
 */
export async function cleanupStale(prefix = 'w', opts: CleanupStaleOptions = {}): Promise<string[]> {
  const log = opts.log ?? silentLogger;
  const re = new RegExp(`^${prefix.replace(/[^A-Za-z0-9_]/g, '\\$&')}(\\d+)-`);
  const byId = new Map<number, string[]>();
  for (const name of await listNamespaces()) {
    const m = re.exec(name);
    if (!m) continue;
    const id = Number(m[1]);
    byId.set(id, [...(byId.get(id) ?? []), name]);
  }
  let markerIds: number[] = [];
  try {
    markerIds = readdirSync(RUN_DIR)
      .map((f) => /^(\d+)\.pid$/.exec(f))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]));
  } catch {
    // no RUN_DIR yet
  }
  const deleted: string[] = [];
  for (const id of new Set([...byId.keys(), ...markerIds])) {
    const path = pidFile(id);
    const marker = readMarker(path);
    const hasMarker = markerIds.includes(id);
    if (registry.pidFiles.has(path) || ownerAlive(marker)) continue;
    if (!hasMarker && !opts.orphans) {
      log.debug({ id, namespaces: byId.get(id) }, 'testbed: namespaces without marker left alone');
      continue;
    }
    // Take the marker away atomically so two runs don't clean the same id; the loser skips it.
    const tomb = `${path}.stale.${process.pid}`;
    if (hasMarker) {
      try {
        renameSync(path, tomb);
      } catch {
        continue;
      }
    }
    for (const ns of byId.get(id) ?? []) {
      await killNsProcesses(ns, log);
      try {
        await ip(['netns', 'del', ns]);
        deleted.push(ns);
      } catch (e) {
        log.warn({ ns, err: errorMessage(e) }, 'testbed: stale netns not deleted');
      }
    }
    rmSync(tomb, { force: true });
    log.info({ id, pid: marker?.pid, deleted: byId.get(id) ?? [] }, 'testbed: cleaned stale run');
  }
  return deleted;
}

async function killNsProcesses(ns: string, log: Logger): Promise<void> {
  let out: string;
  try {
    out = await ip(['netns', 'pids', ns]);
  } catch {
    return;
  }
  for (const pid of out
    .split('\n')
    .map((l) => Number(l.trim()))
    .filter((p) => Number.isInteger(p) && p > 0)) {
    if (pid === process.pid) continue;
    try {
      process.kill(pid, 'SIGKILL');
      log.debug({ ns, pid }, 'testbed: killed leftover process');
    } catch {
      // already gone
    }
  }
}

// ---- the testbed ----

class TestbedImpl implements Testbed {
  readonly hosts: Host[] = [];
  readonly bridgeNs: string;
  readonly bridgeDev: string;
  readonly bridgeIP: string;
  readonly underlayCidr: string;
  rootIP: string | undefined;
  private rootDev: string | undefined;
  private readonly nsSet = new Set<string>();
  private destroyed = false;

  constructor(
    readonly id: number,
    readonly mtu: number,
    private readonly log: Logger,
  ) {
    this.bridgeNs = `w${id}-br`;
    this.bridgeDev = `wbr${id}`;
    this.bridgeIP = `198.18.${id}.254`;
    this.underlayCidr = `198.18.${id}.0/24`;
  }

  hostIP(n: number): string {
    return `198.18.${this.id}.${n}`;
  }

  host(n: number): Host {
    const h = this.hosts.find((x) => x.n === n);
    if (!h) throw new TestbedError(`testbed ${this.id} has no host h${n}`);
    return h;
  }

  private resolve(target: Target): string {
    const ns = nsOf(target);
    if (!this.nsSet.has(ns)) throw new TestbedError(`${ns} is not a namespace of testbed ${this.id}`);
    return ns;
  }

  // Record before creating, so a crash half-way still gets cleaned.
  private async addNs(ns: string): Promise<void> {
    this.nsSet.add(ns);
    registry.namespaces.add(ns);
    await ip(['netns', 'add', ns]);
  }

  private async delNs(ns: string): Promise<void> {
    await Promise.all([...registry.children].filter(([, n]) => n === ns).map(([child]) => killChild(child)));
    const left = (await ip(['netns', 'pids', ns]).catch(() => '')).trim();
    if (left !== '') this.log.warn({ ns, pids: left.split('\n') }, 'testbed: untracked processes keep the netns alive');
    try {
      await ip(['netns', 'del', ns]);
    } catch (e) {
      this.log.warn({ ns, err: errorMessage(e) }, 'testbed: netns del failed');
    }
    this.nsSet.delete(ns);
    registry.namespaces.delete(ns);
  }

  async setupBridge(rootLink: boolean): Promise<void> {
    await this.addNs(this.bridgeNs);
    const mtu = String(this.mtu);
    // STP off (the default) makes new ports forward at once.
    await ipBatch(
      [
        ['link', 'set', 'lo', 'up'],
        ['link', 'add', this.bridgeDev, 'mtu', mtu, 'type', 'bridge'],
        ['addr', 'add', `${this.bridgeIP}/24`, 'dev', this.bridgeDev],
        ['link', 'set', this.bridgeDev, 'up'],
      ],
      { netns: this.bridgeNs },
    );
    if (rootLink) {
      const rootDev = `w${this.id}-root`;
      this.rootIP = `198.18.${this.id}.253`;
      this.rootDev = rootDev;
      registry.rootLinks.add(rootDev);
      // Created in this process's namespace with the peer pushed into the bridge netns, so deleting the bridge
      // netns removes both ends.
      await ipBatch([
        [
          'link',
          'add',
          rootDev,
          'mtu',
          mtu,
          'type',
          'veth',
          'peer',
          'name',
          'root',
          'mtu',
          mtu,
          'netns',
          this.bridgeNs,
        ],
      ]);
      await ipBatch([['link', 'set', 'root', 'master', this.bridgeDev, 'up']], { netns: this.bridgeNs });
      await ipBatch([
        ['addr', 'add', `${this.rootIP}/24`, 'dev', rootDev],
        ['link', 'set', rootDev, 'up'],
      ]);
    }
  }

  async addHost(): Promise<Host> {
    const n = this.hosts.reduce((m, h) => Math.max(m, h.n), 0) + 1;
    if (n > MAX_HOSTS) throw new TestbedError(`testbed ${this.id}: at most ${MAX_HOSTS} hosts`);
    const h: Host = {
      n,
      name: `h${n}`,
      ns: `w${this.id}-h${n}`,
      ip: this.hostIP(n),
      cidr: `${this.hostIP(n)}/24`,
      dev: 'eth0',
      pods: [],
    };
    // Reserve n synchronously so parallel addHost() calls get different numbers.
    this.hosts.push(h);
    this.hosts.sort((a, b) => a.n - b.n);
    const mtu = String(this.mtu);
    try {
      await this.addNs(h.ns);
      await ipBatch(
        [
          ['link', 'add', h.name, 'mtu', mtu, 'type', 'veth', 'peer', 'name', 'eth0', 'mtu', mtu, 'netns', h.ns],
          ['link', 'set', h.name, 'master', this.bridgeDev, 'up'],
        ],
        { netns: this.bridgeNs },
      );
      await ipBatch(
        [
          ['link', 'set', 'lo', 'up'],
          ['addr', 'add', h.cidr, 'dev', 'eth0'],
          ['link', 'set', 'eth0', 'up'],
          ['route', 'add', 'default', 'via', this.bridgeIP, 'dev', 'eth0'],
        ],
        { netns: h.ns },
      );
      // Overlays route asymmetrically (TUN in, eth0 out); strict reverse-path filtering would drop that.
      await sysctl(h.ns, { 'net.ipv4.conf.all.rp_filter': 0, 'net.ipv4.conf.default.rp_filter': 0 });
    } catch (e) {
      await this.removeHost(h).catch(() => undefined);
      throw e;
    }
    this.log.debug({ testbed: this.id, host: h.name, ip: h.ip }, 'testbed: host up');
    return h;
  }

  async removeHost(host: Host | number): Promise<void> {
    const h = typeof host === 'number' ? this.host(host) : host;
    const i = this.hosts.indexOf(h);
    if (i >= 0) this.hosts.splice(i, 1);
    for (const p of h.pods) await this.delNs(p.ns);
    h.pods.length = 0;
    // Deleting the netns would take the bridge-side veth along, but asynchronously; delete it now so a new hN
    // can reuse the name at once.
    if (this.nsSet.has(this.bridgeNs)) await linkDel(h.name, { netns: this.bridgeNs }).catch(() => false);
    if (this.nsSet.has(h.ns)) await this.delNs(h.ns);
  }

  /** `bare`: only the pod's namespace (registered for cleanup); a CNI plugin builds its links and addresses. */
  async addPod(host: Host | number, gatewayCidr: string, opts: { mtu?: number; bare?: boolean } = {}): Promise<Pod> {
    const h = typeof host === 'number' ? this.host(host) : host;
    const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d+)$/.exec(gatewayCidr);
    if (!m) throw new TestbedError(`addPod: want "a.b.c.d/len", got ${gatewayCidr}`);
    const gateway = m[1]!;
    const len = Number(m[2]);
    if (len < 1 || len > 30) throw new TestbedError(`addPod: prefix length ${len} leaves no room for pods`);
    const first = h.pods[0];
    if (first !== undefined && (first.gateway !== gateway || first.cidr !== `${first.ip}/${len}`)) {
      throw new TestbedError(`addPod: ${h.name} already has pods behind ${first.gateway}; one pod subnet per host`);
    }
    const k = h.pods.length + 1;
    const g = ipToInt(gateway);
    const mask = (0xffffffff << (32 - len)) >>> 0;
    const podInt = (g + k) >>> 0;
    const broadcast = ((g & mask) | (~mask >>> 0)) >>> 0;
    if ((podInt & mask) !== (g & mask) || podInt >= broadcast) {
      throw new TestbedError(`addPod: no address left in ${gatewayCidr}`);
    }
    const pod: Pod = {
      ns: `${h.ns}-pod${k === 1 ? '' : k}`,
      ip: formatIPv4(podInt),
      cidr: `${formatIPv4(podInt)}/${len}`,
      gateway,
      host: h.n,
      dev: 'eth0',
    };
    const mtu = String(opts.mtu ?? this.mtu);
    const port = `vpod${k}`;
    h.pods.push(pod);
    await this.addNs(pod.ns);
    if (opts.bare === true) {
      await ip(['link', 'set', 'lo', 'up'], { netns: pod.ns });
      return pod;
    }
    const hostLines: string[][] = [];
    if (k === 1) {
      hostLines.push(
        ['link', 'add', 'cni0', 'mtu', mtu, 'type', 'bridge'],
        ['addr', 'replace', gatewayCidr, 'dev', 'cni0'],
        ['link', 'set', 'cni0', 'up'],
      );
    }
    hostLines.push(
      ['link', 'add', port, 'mtu', mtu, 'type', 'veth', 'peer', 'name', 'eth0', 'mtu', mtu, 'netns', pod.ns],
      ['link', 'set', port, 'master', 'cni0', 'up'],
    );
    await ipBatch(hostLines, { netns: h.ns });
    await ipBatch(
      [
        ['link', 'set', 'lo', 'up'],
        ['addr', 'add', pod.cidr, 'dev', 'eth0'],
        ['link', 'set', 'eth0', 'up'],
        ['route', 'add', 'default', 'via', gateway, 'dev', 'eth0'],
      ],
      { netns: pod.ns },
    );
    await sysctl(h.ns, { 'net.ipv4.ip_forward': 1, 'net.ipv4.conf.cni0.rp_filter': 0 });
    this.log.debug({ testbed: this.id, host: h.name, pod: pod.ns, ip: pod.ip }, 'testbed: pod up');
    return pod;
  }

  exec(target: Target, argv: string[], opts?: ExecOptions): Promise<ExecResult> {
    return execIn(this.resolve(target), argv, opts);
  }

  spawn(target: Target, argv: string[], opts?: SpawnOptions): ChildProcess {
    return spawnIn(this.resolve(target), argv, opts);
  }

  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    const all = [...this.nsSet];
    // Children first (a process inside keeps a netns alive), then pods and hosts, the bridge last.
    await Promise.all([...registry.children].filter(([, ns]) => this.nsSet.has(ns)).map(([child]) => killChild(child)));
    if (this.rootDev !== undefined) {
      // Netns teardown is asynchronous in the kernel; remove the root-side end now so it is gone on return.
      await linkDel(this.rootDev).catch((e: unknown) => this.log.warn({ err: errorMessage(e) }, 'testbed: root link'));
      registry.rootLinks.delete(this.rootDev);
    }
    const order = (ns: string): number => (ns === this.bridgeNs ? 2 : ns.includes('-pod') ? 0 : 1);
    for (const rank of [0, 1, 2]) {
      await Promise.all(all.filter((ns) => order(ns) === rank).map((ns) => this.delNs(ns)));
    }
    this.hosts.length = 0;
    releaseMarker(this.id);
    this.log.debug({ testbed: this.id }, 'testbed: destroyed');
  }
}

async function pickId(requested: number | undefined, log: Logger): Promise<number> {
  const existing = new Set(
    (await listNamespaces())
      .map((n) => /^w(\d+)-/.exec(n)?.[1])
      .filter((x): x is string => x !== undefined)
      .map(Number),
  );
  const tryId = (id: number): boolean => {
    if (existing.has(id)) return false; // someone's namespaces (maybe without marker): don't share
    return claimMarker(id);
  };
  if (requested !== undefined) {
    if (!Number.isInteger(requested) || requested < 1 || requested > 254) {
      throw new TestbedError(`testbed id must be 1..254, got ${requested}`);
    }
    if (!tryId(requested)) throw new TestbedError(`testbed id ${requested} is in use`);
    return requested;
  }
  for (let attempt = 0; attempt < 64; attempt++) {
    const id = 1 + Math.floor(Math.random() * 254);
    if (tryId(id)) return id;
  }
  log.warn('testbed: random ids exhausted, scanning');
  for (let id = 1; id <= 254; id++) if (tryId(id)) return id;
  throw new TestbedError('no free testbed id');
}

/** Build the bridge netns and `hosts` host namespaces (see the header for the layout). */
export async function createTestbed(opts: TestbedOptions): Promise<Testbed> {
  const log = opts.log ?? silentLogger;
  if (!Number.isInteger(opts.hosts) || opts.hosts < 0 || opts.hosts > MAX_HOSTS) {
    throw new TestbedError(`hosts must be 0..${MAX_HOSTS}, got ${opts.hosts}`);
  }
  installHandlers(opts.handleSignals ?? true);
  await cleanupStale('w', { log });
  const id = await pickId(opts.id, log);
  const tb = new TestbedImpl(id, opts.mtu ?? 1500, log);
  try {
    await tb.setupBridge(opts.rootLink ?? false);
    await Promise.all(Array.from({ length: opts.hosts }, () => tb.addHost()));
  } catch (e) {
    await tb.destroy();
    throw e;
  }
  log.info({ testbed: id, hosts: tb.hosts.map((h) => h.ip), bridge: tb.bridgeIP }, 'testbed: up');
  return tb;
}

// ---- ping and iperf3 ----

export interface PingResult {
  ok: boolean;
  transmitted: number;
  received: number;
  lossPercent: number;
  rttAvgMs: number | undefined;
  output: string;
}

export interface PingOptions {
  count?: number;
  timeoutSec?: number;
  intervalSec?: number;
}

/** `ping -c count` from a host or pod; ok when every probe came back. Bounded by count*interval + timeoutSec. */
export async function ping(from: Target, dst: string, opts: PingOptions = {}): Promise<PingResult> {
  const count = Math.max(1, Math.min(opts.count ?? 3, 1000));
  const wait = Math.max(1, Math.min(opts.timeoutSec ?? 2, 60));
  const interval = opts.intervalSec ?? 0.2;
  const deadline = Math.ceil(count * interval + wait);
  const r = await execIn(
    nsOf(from),
    ['ping', '-n', '-q', '-c', String(count), '-i', String(interval), '-W', String(wait), '-w', String(deadline), dst],
    { timeoutMs: (deadline + 5) * 1000 },
  );
  const out = r.stdout + r.stderr;
  const stats = /(\d+) packets transmitted, (\d+) received/.exec(out);
  const loss = /([\d.]+)% packet loss/.exec(out);
  const rtt = /= [\d.]+\/([\d.]+)\/[\d.]+\/[\d.]+ ms/.exec(out);
  const transmitted = stats ? Number(stats[1]) : 0;
  const received = stats ? Number(stats[2]) : 0;
  return {
    ok: transmitted > 0 && received === transmitted,
    transmitted,
    received,
    lossPercent: loss ? Number(loss[1]) : 100,
    rttAvgMs: rtt ? Number(rtt[1]) : undefined,
    output: out,
  };
}

/** Start `iperf3 -s -p port` in a namespace (tracked child); resolves once it listens. */
export async function startIperfServer(target: Target, port = 5201, timeoutMs = 5_000): Promise<ChildProcess> {
  const child = spawnIn(nsOf(target), ['iperf3', '-s', '-p', String(port), '--forceflush'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let tail = '';
  const keep = (d: Buffer): void => {
    tail = (tail + d.toString('utf8')).slice(-4096);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new TestbedError(`iperf3 server on port ${port} not listening: ${tail}`)),
        timeoutMs,
      );
      const check = (): void => {
        if (tail.includes('Server listening')) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout?.on('data', check);
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new TestbedError(`iperf3 server exited (${code}): ${tail.trim()}`));
      });
      child.once('error', (e) => {
        clearTimeout(timer);
        reject(new TestbedError(`iperf3 server: ${e.message}`, { cause: e }));
      });
    });
  } catch (e) {
    await killChild(child);
    throw e;
  }
  return child;
}

export interface IperfOptions {
  seconds?: number;
  streams?: number;
  udp?: boolean;
  /** -l: write size (UDP: datagram payload). */
  length?: number;
  /** -b: e.g. "100M"; UDP default in iperf3 is 1 Mbit/s. */
  bitrate?: string;
  port?: number;
  reverse?: boolean;
  /** Whole-run limit; default seconds + 15 s. */
  timeoutMs?: number;
}

export interface IperfResult {
  json: unknown;
  sentBps: number;
  receivedBps: number;
  retransmits: number | undefined;
  lostPercent: number | undefined;
  jitterMs: number | undefined;
  cpuHostPercent: number | undefined;
  cpuRemotePercent: number | undefined;
}

function field(o: unknown, ...path: string[]): unknown {
  let cur = o;
  for (const k of path) {
    if (typeof cur !== 'object' || cur === null || !(k in cur)) return undefined;
    cur = (cur as Record<string, unknown>)[k];
  }
  return cur;
}

function numField(o: unknown, ...path: string[]): number | undefined {
  const v = field(o, ...path);
  return typeof v === 'number' ? v : undefined;
}

/** One bounded iperf3 client run (-J); throws TestbedError when iperf3 reports an error. */
export async function runIperf(target: Target, serverIp: string, opts: IperfOptions = {}): Promise<IperfResult> {
  const seconds = Math.max(1, Math.min(opts.seconds ?? 1, 120));
  const streams = Math.max(1, Math.min(opts.streams ?? 1, 32));
  const argv = [
    'iperf3',
    '-c',
    serverIp,
    '-p',
    String(opts.port ?? 5201),
    '-t',
    String(seconds),
    '-P',
    String(streams),
  ];
  argv.push('-J', '--connect-timeout', '3000');
  if (opts.udp) argv.push('-u');
  if (opts.length !== undefined) argv.push('-l', String(opts.length));
  if (opts.bitrate !== undefined) argv.push('-b', opts.bitrate);
  if (opts.reverse) argv.push('-R');
  const r = await execIn(nsOf(target), argv, { timeoutMs: opts.timeoutMs ?? (seconds + 15) * 1000 });
  let json: unknown;
  try {
    json = JSON.parse(r.stdout);
  } catch {
    throw new TestbedError(
      `iperf3 ${argv.slice(1).join(' ')}: no JSON (exit ${r.code}${r.timedOut ? ', timed out' : ''}): ` +
        r.stderr.trim(),
    );
  }
  const err = field(json, 'error');
  if (typeof err === 'string' || r.code !== 0) {
    throw new TestbedError(`iperf3 to ${serverIp}: ${typeof err === 'string' ? err : `exit ${r.code}`}`);
  }
  const udp = opts.udp === true;
  return {
    json,
    sentBps:
      (udp ? numField(json, 'end', 'sum', 'bits_per_second') : numField(json, 'end', 'sum_sent', 'bits_per_second')) ??
      0,
    receivedBps:
      (udp
        ? (numField(json, 'end', 'sum_received', 'bits_per_second') ?? numField(json, 'end', 'sum', 'bits_per_second'))
        : numField(json, 'end', 'sum_received', 'bits_per_second')) ?? 0,
    retransmits: numField(json, 'end', 'sum_sent', 'retransmits'),
    lostPercent: udp ? numField(json, 'end', 'sum', 'lost_percent') : undefined,
    jitterMs: udp ? numField(json, 'end', 'sum', 'jitter_ms') : undefined,
    cpuHostPercent: numField(json, 'end', 'cpu_utilization_percent', 'host_total'),
    cpuRemotePercent: numField(json, 'end', 'cpu_utilization_percent', 'remote_total'),
  };
}
