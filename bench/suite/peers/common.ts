// What the three peer overlays (wireguard-go, nebula, tinc) share in the bench: installing their Debian packages when
// missing, their versions (dpkg-query), a private temp folder per peer run for keys, certificates and configs, the
// layout both hosts get, and cleanup that also runs when the process exits (Ctrl-C, SIGTERM):
//
//   pod 10.5.1.2 ─ cni0 10.5.1.1/24 ─ h1: <tunnel dev> 10.77.0.1/24 ── peer daemon ── UDP on eth0 ── ... ── h2 (N=2)
//   h1 routes 10.5.2.0/24 through its tunnel device; the peer's daemon encrypts and sends to 198.18.<id>.2.
//
// Every peer's own state lives in the temp folder (configs, pid files, logs) except wireguard-go's UAPI socket,
// which both wireguard-go and `wg` hard-code to /var/run/wireguard/<dev>.sock (no flag or environment variable moves
// it): wireguard.ts creates exactly that socket's path and removes exactly it afterwards.
import { execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WeftError } from '../../../src/errors.js';
import type { Host, Testbed } from '../../../testbed/hosts.js';
import { ipBatch } from '../../../src/net/iproute.js';
import { sleep } from '../../../src/util/sleep.js';

export const PEER_NAMES = ['wireguard-go', 'nebula', 'tinc'] as const;
export type PeerName = (typeof PEER_NAMES)[number];

export function isPeerName(s: string): s is PeerName {
  return (PEER_NAMES as readonly string[]).includes(s);
}

/** Debian packages each peer needs. */
export const PEER_PACKAGES: Record<PeerName, readonly string[]> = {
  'wireguard-go': ['wireguard-go', 'wireguard-tools'],
  nebula: ['nebula'],
  tinc: ['tinc'],
};

/** Tunnel address of host n, and the pod subnet of host n (cni0 gets .1). */
export const tunnelIp = (n: number): string => `10.77.0.${n}`;
export const podSubnet = (n: number): string => `10.5.${n}.0/24`;
export const podGateway = (n: number): string => `10.5.${n}.1/24`;

/** Gives a peer's tunnel device in host `h` its address and MTU, and routes the other host's pod subnet over it. */
export async function tunnelUp(h: Host, dev: string, other: Host, mtu: number): Promise<void> {
  await ipBatch(
    [
      ['addr', 'add', `${tunnelIp(h.n)}/24`, 'dev', dev],
      ['link', 'set', dev, 'mtu', String(mtu), 'up'],
      ['route', 'add', podSubnet(other.n), 'dev', dev],
    ],
    { netns: h.ns },
  );
}

const APT_TIMEOUT_MS = 15 * 60_000;
const APT_ARGS = ['-y', '--no-install-recommends', '-o', 'DPkg::Lock::Timeout=600'];

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** execFile without a shell; never throws (exit code null when it could not run or timed out). */
export function run(
  argv: string[],
  opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv; input?: string } = {},
): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = execFile(
      argv[0]!,
      argv.slice(1),
      { timeout: opts.timeoutMs ?? 30_000, env: opts.env, maxBuffer: 16 << 20, killSignal: 'SIGKILL' },
      (err, stdout, stderr) => {
        // execFile's error carries the exit code as a number, or a string (ENOENT) when the program could not run
        const e = err as (Error & { code?: number | string }) | null;
        const code = e === null ? 0 : typeof e.code === 'number' ? e.code : null;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) || (e && code === null ? e.message : '') });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** Installed version of a Debian package, or null. */
async function dpkgVersion(pkg: string): Promise<string | null> {
  const r = await run(['dpkg-query', '-W', '-f=${Status}\t${Version}', pkg], { timeoutMs: 10_000 });
  if (r.code !== 0) return null;
  const [status, version] = r.stdout.split('\t');
  return status?.endsWith(' installed') && version ? version : null;
}

const installs = new Map<PeerName, Promise<string>>();
let aptUpdated = false;

/**
 * Installs the peer's Debian packages when missing (apt-get; `apt-get update` once if apt does not know them) and
 * resolves to "pkg version, pkg version". Cached per process; a failure rejects with the reason (apt's last lines).
 */
export function ensurePeerInstalled(peer: PeerName): Promise<string> {
  let p = installs.get(peer);
  if (!p) {
    p = install(peer);
    installs.set(peer, p);
  }
  return p;
}

/** Versions of the peers installed so far (for titles), null before ensurePeerInstalled resolved. */
const versions = new Map<PeerName, string>();
export function peerVersion(peer: PeerName): string | null {
  return versions.get(peer) ?? null;
}

async function install(peer: PeerName): Promise<string> {
  const pkgs = PEER_PACKAGES[peer];
  const missing: string[] = [];
  for (const p of pkgs) if ((await dpkgVersion(p)) === null) missing.push(p);
  if (missing.length > 0) {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    let r = await run(['apt-get', 'install', ...APT_ARGS, ...missing], { timeoutMs: APT_TIMEOUT_MS, env });
    if (r.code !== 0 && !aptUpdated) {
      aptUpdated = true;
      await run(['apt-get', 'update', '-o', 'DPkg::Lock::Timeout=600'], { timeoutMs: APT_TIMEOUT_MS, env });
      r = await run(['apt-get', 'install', ...APT_ARGS, ...missing], { timeoutMs: APT_TIMEOUT_MS, env });
    }
    if (r.code !== 0) {
      const tail = (r.stderr.trim() || r.stdout.trim()).split('\n').slice(-2).join(' ');
      throw new WeftError(
        'WEFT_ERR_BACKEND',
        `apt-get install ${missing.join(' ')} failed (exit ${r.code ?? 'timeout'}): ${tail}`,
      );
    }
  }
  const parts: string[] = [];
  for (const p of pkgs) {
    const v = await dpkgVersion(p);
    if (v === null) throw new WeftError('WEFT_ERR_BACKEND', `${p} is not installed after apt-get`);
    parts.push(`${p} ${v}`);
  }
  const s = parts.join(', ');
  versions.set(peer, s);
  return s;
}

// ---- cleanup: temp folders and files, also at process exit ----

const pending = new Set<() => void>();
let exitHooked = false;

/** Registers a synchronous, idempotent cleanup that runs at the latest when the process exits; returns it. */
export function onCleanup(fn: () => void): () => void {
  if (!exitHooked) {
    // Runs after the testbed's own exit handler (registered first) has SIGKILLed the peers' processes.
    process.on('exit', () => {
      for (const f of [...pending].reverse()) f(); // last registered first, as closePath does
    });
    exitHooked = true;
  }
  let done = false;
  const once = (): void => {
    if (done) return;
    done = true;
    pending.delete(once);
    try {
      fn();
    } catch {
      // best effort: a file already gone is fine
    }
  };
  pending.add(once);
  return once;
}

/** A private temp folder (0700) for one peer run on testbed `id`, removed by the returned cleanup or at exit. */
export function peerTempDir(peer: PeerName, id: number): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `weft-peer-w${id}-${peer}-`));
  return { dir, cleanup: onCleanup(() => rmSync(dir, { recursive: true, force: true })) };
}

/** What a peer builder gets: the testbed, its two hosts, a private folder, and where to register cleanups. */
export interface PeerContext {
  tb: Testbed;
  hosts: readonly [Host, Host];
  dir: string;
  addCleanup: (fn: () => void) => void;
}

/** What a peer builder returns: its daemon processes (for CPU and RSS) and the MTU the pods use. */
export interface PeerBuilt {
  daemons: { ns: string; pid: number }[];
  mtu: number;
}

/**
 * Starts a peer's daemon (argv) in host h and waits until its device `dev` exists (and `ready` holds, when given)
 * or it exits, 10 s at most; `log` adds what its log file says to a failure. Returns what the bench measures of it.
 */
export async function startPeerDaemon(
  tb: Testbed,
  h: Host,
  what: string,
  argv: string[],
  dev: string,
  opts: { env?: NodeJS.ProcessEnv; ready?: () => boolean; log?: () => string } = {},
): Promise<PeerBuilt['daemons'][number]> {
  const child = tb.spawn(h, argv, { stdio: ['ignore', 'pipe', 'pipe'], ...(opts.env ? { env: opts.env } : {}) });
  const tail = tailOutput(child);
  const out = opts.log === undefined ? tail : (): string => `${tail()} ${opts.log!()}`.trim().slice(0, 400);
  const ready = async (): Promise<boolean> => (opts.ready?.() ?? true) && (await linkExists(tb, h, dev));
  await waitFor(`${what} in ${h.name}`, child, out, ready);
  if (child.pid === undefined) throw new WeftError('WEFT_ERR_BACKEND', `${what} in ${h.name} has no pid`);
  return { ns: h.ns, pid: child.pid };
}

/** Keeps the last few KB of a child's stdout+stderr, for the failure reason. */
export function tailOutput(child: ChildProcess): () => string {
  let buf = '';
  const add = (d: Buffer): void => {
    buf = (buf + d.toString()).slice(-4000);
  };
  child.stdout?.on('data', add);
  child.stderr?.on('data', add);
  return () => buf.trim().split('\n').slice(-3).join(' ').slice(0, 400);
}

/** Polls `check` every 100 ms until true, the child exits, or `ms` pass; throws with `what` and the child's output. */
export async function waitFor(
  what: string,
  child: ChildProcess,
  out: () => string,
  check: () => Promise<boolean> | boolean,
  ms = 10_000,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new WeftError(
        'WEFT_ERR_BACKEND',
        `${what}: process exited (${child.exitCode ?? child.signalCode}): ${out()}`,
      );
    }
    if (await check()) return;
    await sleep(100);
  }
  throw new WeftError('WEFT_ERR_BACKEND', `${what}: not ready within ${ms / 1000} s: ${out()}`);
}

/** Runs argv in `target` on the testbed; throws with its stderr when it fails. */
export async function must(tb: Testbed, target: Host | string, argv: string[], input?: string): Promise<string> {
  const r = await tb.exec(target, argv, { timeoutMs: 30_000, ...(input !== undefined ? { input } : {}) });
  if (r.code !== 0)
    throw new WeftError(
      'WEFT_ERR_BACKEND',
      `${argv.slice(0, 3).join(' ')} failed (exit ${r.code}): ${(r.stderr || r.stdout).trim().slice(0, 300)}`,
    );
  return r.stdout;
}

/** True when device `dev` exists in namespace `ns`. */
export async function linkExists(tb: Testbed, host: Host, dev: string): Promise<boolean> {
  const r = await tb.exec(host, ['ip', 'link', 'show', 'dev', dev], { timeoutMs: 5_000 });
  return r.code === 0;
}
