// `weft bench --profile`: where the CPU goes while a path moves TCP, split into kinds of work (profile-groups.ts).
//
// For each path's TCP 1-stream test of the first repeat:
//   1. wait until the iperf3 client runs (a process named iperf3 in the client's network namespace);
//   2. `perf record -a -e cpu-clock -g -F 997 -k CLOCK_MONOTONIC -- sleep W` (W <= maxSeconds, inside the test):
//      system-wide, so the namespaces' processes and the kernel's softirq work are all seen. cpu-clock is the
//      software timer event (this kind of VM has no hardware counters). -g: the grouping rule walks the call chain
//      from the leaf, and the folded stacks need it; at 997 Hz it costs a few percent of one core;
//   3. meanwhile read the iperf3 server's /proc/<pid>/io rchar every 100 ms: the bytes it received, interpolated
//      to the first and last sample time (same clock), are the bytes the samples paid for;
//   4. `perf script`, streamed through the parser; per process class and group CPU seconds, per GB; the folded
//      stacks go to <out>/<path with / as ->.folded.
// perf.data lives in a temp dir that is removed at the end of the run, also on exit. perf's own CPU counts as 'other'.
// Without perf (or without permission) the bench says so once and runs without the split.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { errorMessage, WeftError } from '../../src/errors.js';
import type { Target } from '../../testbed/exec.js';
import type { PathEnv } from './paths.js';
import {
  PerfScriptParser,
  ProfileAggregate,
  summarizeProfile,
  type PathProfile,
  type ProfileRun,
} from './profile-groups.js';
import type { Sample } from './schema.js';
import { sleep } from '../../src/util/sleep.js';

export const PROFILE_EVENT = 'cpu-clock';
export const PROFILE_HZ = 997; // not a multiple of the kernel tick, so sampling does not lock onto it
export const PROFILE_MAX_SECONDS = 4;
// perf needs ~0.5..1 s to start system-wide (it reads every process's maps); the window must end inside the test.
const PERF_STARTUP_S = 1.0;
const CLIENT_WAIT_MS = 15_000;
const SCRIPT_TIMEOUT_MS = 120_000;
export const PROFILE_RULE =
  "leaf frame first: a user-space leaf is that process's user time (the path's daemon: weft user); a kernel leaf " +
  'walks up the kernel frames until a symbol matches a group (table order per frame); no match: idle for the idle ' +
  'task, else kernel (other)';

export interface ProfilerSetup {
  run: ProfileRun;
  profiler: Profiler | null;
}

function execText(cmd: string, args: string[], timeoutMs: number): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 4 << 20 }, (err, stdout, stderr) => {
      const code = err
        ? typeof (err as { code?: unknown }).code === 'number'
          ? (err as { code: number }).code
          : -1
        : 0;
      resolve({ code, out: `${stdout}${stderr}`.trim() });
    });
  });
}

/** The perf command: `perf`, else the newest `perf_<version>` (Debian's versioned binaries); null when none runs. */
export async function findPerf(): Promise<string | null> {
  const candidates = ['perf'];
  for (const dir of ['/usr/bin', '/usr/local/bin', '/usr/sbin']) {
    try {
      const vs = readdirSync(dir)
        .filter((f) => /^perf_\d/.test(f))
        .sort((a, b) => b.localeCompare(a, 'en', { numeric: true }));
      candidates.push(...vs.map((f) => join(dir, f)));
    } catch {
      // no such dir
    }
  }
  for (const c of candidates) {
    const r = await execText(c, ['--version'], 10_000);
    if (r.code === 0 && /perf version/.test(r.out)) return c;
  }
  return null;
}

/**
 * Finds perf (installing Debian's linux-perf when `install` and it is missing) and checks that it may sample every
 * CPU. Never throws: without perf, `run.enabled` is false with the reason.
 */
export async function setupProfiler(opts: {
  install: boolean;
  outDir: string;
  log: (line: string) => void;
}): Promise<ProfilerSetup> {
  let perf = await findPerf();
  if (perf === null && opts.install && process.getuid?.() === 0) {
    opts.log('profile: perf not found, installing linux-perf (apt-get)');
    const r = await execText('apt-get', ['-o', 'DPkg::Lock::Timeout=600', 'install', '-y', 'linux-perf'], 900_000);
    if (r.code !== 0) opts.log(`profile: apt-get install linux-perf failed: ${r.out.split('\n').slice(-2).join(' ')}`);
    perf = await findPerf();
  }
  if (perf === null)
    return { run: { enabled: false, reason: 'perf not found (Debian: apt-get install linux-perf)' }, profiler: null };
  const dir = mkdtempSync(join(tmpdir(), 'weft-bench-perf-'));
  const probe = join(dir, 'probe.data');
  const r = await execText(perf, ['record', '-q', ...recordArgs(probe), '--', 'true'], 30_000);
  if (r.code !== 0 || !existsSync(probe)) {
    rmSync(dir, { recursive: true, force: true });
    return {
      run: {
        enabled: false,
        reason: `perf record -a failed (permission?): ${r.out.split('\n').slice(-2).join(' ').slice(0, 300)}`,
      },
      profiler: null,
    };
  }
  rmSync(probe, { force: true });
  const version = (await execText(perf, ['--version'], 10_000)).out;
  return {
    run: {
      enabled: true,
      perf: `${perf} (${version})`,
      event: PROFILE_EVENT,
      frequencyHz: PROFILE_HZ,
      maxSeconds: PROFILE_MAX_SECONDS,
      rule: PROFILE_RULE,
    },
    profiler: new Profiler(perf, dir, opts.outDir),
  };
}

function recordArgs(out: string): string[] {
  return ['-a', '-e', PROFILE_EVENT, '-g', '-F', String(PROFILE_HZ), '-k', 'CLOCK_MONOTONIC', '-o', out];
}

/** `batch/udp` -> `batch-udp.folded` */
export function foldedFileName(path: string): string {
  return `${path.replace(/[^A-Za-z0-9_.-]+/g, '-')}.folded`;
}

function nsOf(t: Target): string {
  return typeof t === 'string' ? t : t.ns;
}

function netnsInode(ns: string): number | null {
  try {
    return statSync(`/run/netns/${ns}`).ino;
  } catch {
    return null;
  }
}

/** Pids of processes named `comm` whose network namespace is one of `inodes`. */
function pidsIn(comm: string, inodes: ReadonlySet<number>): Map<number, number> {
  const out = new Map<number, number>(); // pid -> netns inode
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/comm`, 'utf8').trim() !== comm) continue;
      const m = /^net:\[(\d+)\]$/.exec(readlinkSync(`/proc/${d}/ns/net`));
      const ino = m ? Number(m[1]) : NaN;
      if (inodes.has(ino)) out.set(Number(d), ino);
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

function rchar(pid: number): number | null {
  try {
    const m = /^rchar:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

const monoSeconds = (): number => Number(process.hrtime.bigint()) / 1e9;

/** Linear interpolation of a (time, value) series at t, clamped to its ends. */
export function interpolate(series: readonly [number, number][], t: number): number | null {
  if (series.length === 0) return null;
  if (t <= series[0]![0]) return series[0]![1];
  for (let i = 1; i < series.length; i++) {
    const [t1, v1] = series[i]!;
    if (t <= t1) {
      const [t0, v0] = series[i - 1]!;
      return t1 > t0 ? v0 + ((v1 - v0) * (t - t0)) / (t1 - t0) : v1;
    }
  }
  return series[series.length - 1]![1];
}

interface Recording {
  data: string;
  appPids: Set<number>;
  /** iperf3 server rchar over monotonic time. */
  rchar: [number, number][];
}

const live = new Set<ChildProcess>();
let exitHookSet = false;
function track(child: ChildProcess): void {
  if (!exitHookSet) {
    exitHookSet = true;
    // An interrupted run exits from its signal handler: stop perf with it.
    process.on('exit', () => {
      for (const c of live) c.kill('SIGKILL');
    });
  }
  live.add(child);
  child.once('exit', () => live.delete(child));
}

export class Profiler {
  private n = 0;
  constructor(
    readonly perf: string,
    private readonly dir: string,
    private readonly outDir: string,
  ) {
    process.once('exit', () => rmSync(this.dir, { recursive: true, force: true }));
  }

  /** Starts watching for the path's TCP test; finish() with its sample gives the profile. Never throws. */
  start(env: PathEnv, seconds: number, repeat: number): { finish: (s: Sample) => Promise<PathProfile> } {
    const data = join(this.dir, `${++this.n}.data`);
    const rec = this.record(env, seconds, data);
    rec.catch(() => undefined); // handled in finish(); a rejection before it must not crash the run
    return {
      finish: async (s: Sample): Promise<PathProfile> => {
        try {
          const r = await rec;
          return await this.analyze(env, r, s, repeat);
        } catch (e) {
          return failedProfile(repeat, errorMessage(e));
        } finally {
          rmSync(data, { force: true });
        }
      },
    };
  }

  close(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }

  private async record(env: PathEnv, seconds: number, data: string): Promise<Recording> {
    const clientIno = netnsInode(nsOf(env.client));
    const serverIno = netnsInode(nsOf(env.server));
    if (clientIno === null || serverIno === null)
      throw new WeftError('WEFT_ERR_BACKEND', "profile: cannot read the endpoints' network namespaces");
    // 1. the client starts after the server and the counter reads
    const deadline = Date.now() + CLIENT_WAIT_MS;
    let client: number | null = null;
    while (client === null && Date.now() < deadline) {
      for (const [pid, ino] of pidsIn('iperf3', new Set([clientIno]))) if (ino === clientIno) client = pid;
      if (client === null) await sleep(50);
    }
    if (client === null) throw new WeftError('WEFT_ERR_BACKEND', 'profile: the iperf3 client did not start');
    const server = [...pidsIn('iperf3', new Set([serverIno])).keys()][0] ?? null;
    const appPids = new Set([client, ...(server !== null ? [server] : [])]);
    // 2. perf for W seconds inside the test
    const w = Math.max(0.3, Math.min(PROFILE_MAX_SECONDS, seconds - PERF_STARTUP_S - 0.5));
    const child = spawn(this.perf, ['record', '-q', ...recordArgs(data), '--', 'sleep', w.toFixed(2)], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    track(child);
    let err = '';
    child.stderr?.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-2000)));
    const exited = new Promise<number | null>((resolve) => {
      child.once('exit', (code) => resolve(code));
      child.once('error', (e) => {
        err += e.message;
        resolve(-1);
      });
    });
    const killer = setTimeout(() => child.kill('SIGKILL'), (w + 20) * 1000);
    // 3. the server's received bytes over the same clock as perf's samples
    const series: [number, number][] = [];
    let done = false;
    void exited.then(() => (done = true));
    while (!done) {
      const v = server !== null ? rchar(server) : null;
      if (v !== null) series.push([monoSeconds(), v]);
      await Promise.race([sleep(100), exited]);
    }
    const v = server !== null ? rchar(server) : null;
    if (v !== null) series.push([monoSeconds(), v]);
    clearTimeout(killer);
    const code = await exited;
    if (code !== 0 || !existsSync(data))
      throw new WeftError('WEFT_ERR_BACKEND', `perf record exited ${code}: ${err.trim().slice(-300)}`);
    return { data, appPids, rchar: series };
  }

  private async analyze(env: PathEnv, rec: Recording, s: Sample, repeat: number): Promise<PathProfile> {
    const agg = new ProfileAggregate({ forwarderPids: new Set(env.daemons.map((d) => d.pid)), appPids: rec.appPids });
    const parser = new PerfScriptParser((x) => agg.add(x));
    const child = spawn(
      this.perf,
      ['script', '-i', rec.data, '-F', 'comm,pid,tid,time,period,event,ip,sym,dso', '--no-inline'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    track(child);
    let err = '';
    child.stderr?.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-2000)));
    const killer = setTimeout(() => child.kill('SIGKILL'), SCRIPT_TIMEOUT_MS);
    const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
    const rl = createInterface({ input: child.stdout!, crlfDelay: Infinity });
    for await (const line of rl) parser.line(line);
    parser.end();
    const code = await exited;
    clearTimeout(killer);
    if (code !== 0) throw new WeftError('WEFT_ERR_BACKEND', `perf script exited ${code}: ${err.trim().slice(-300)}`);

    // Bytes in the sampled window: the server's rchar at the first and last sample, else iperf3's average rate.
    let bytes: number;
    let source: PathProfile['bytesSource'] = 'iperf3-server-rchar';
    const a = interpolate(rec.rchar, agg.firstTime);
    const b = interpolate(rec.rchar, agg.lastTime + agg.period / 1e9);
    if (a !== null && b !== null && b > a) {
      bytes = b - a;
    } else {
      source = 'iperf3-average-rate';
      bytes = ((s.raw['received_bps'] ?? 0) / 8) * agg.windowSeconds();
    }
    const folded = foldedFileName(env.def.name);
    mkdirSync(this.outDir, { recursive: true });
    writeFileSync(join(this.outDir, folded), agg.foldedText());
    return summarizeProfile(agg, bytes, source, repeat, folded, parser.badLines);
  }
}

export function failedProfile(repeat: number, error: string): PathProfile {
  const empty = (): PathProfile['sPerGb'] => ({ forwarder: {}, app: {}, kernel: {}, other: {} });
  return {
    ok: false,
    error: error.slice(0, 400),
    test: 'tcp1',
    repeat,
    windowSeconds: 0,
    samples: 0,
    periodNs: 0,
    bytes: 0,
    bytesSource: 'iperf3-server-rchar',
    cpuSeconds: empty(),
    sPerGb: empty(),
    pathSPerGb: {},
    classSPerGb: { forwarder: 0, app: 0, kernel: 0, other: 0 },
    copySyscallSPerGb: { path: 0, forwarder: 0, app: 0, kernel: 0, other: 0 },
    idleShare: 0,
    top: [],
    folded: null,
    badLines: 0,
  };
}
