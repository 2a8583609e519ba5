// The bench run: for each selected path build a fresh two-host testbed (paths.ts), run every test `repeats` times
// (measurements.ts), tear the path down, then summarize against the reference path (kernel VXLAN, same run) and
// write results.json, report.md and the SVG charts (report.ts, svg.ts).
//
// Time: a full run is planned to fit FULL_BUDGET_S (test length chosen from the number of paths and repeats);
// --quick uses short tests on four paths. A progress line with an ETA goes to stderr.
// Cleanup: each path's cluster is destroyed after it, also when a test throws; on SIGINT/SIGTERM the partial
// results are written and the process exits, and the testbed's exit handler removes namespaces and processes.
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release } from 'node:os';
import { join } from 'node:path';
import { errorMessage } from '../../src/errors.js';
import { PACKAGE_ROOT } from '../../testbed/cluster.js';
import { DISTURBED_PCT, isDisturbed, quietCheck } from './foreign.js';
import { readIdleMemory } from './idle-memory.js';
import { runTest, type TestSettings } from './measurements.js';
import { applySocketBuffers, udpSocketBuffers, type SocketBufferMode } from './sockbuf.js';
import {
  closePath,
  openPath,
  REFERENCE_PATH,
  REFERENCE_PATH_V6,
  selectPaths,
  type PathDef,
  type PathEnv,
  type Topology,
} from './paths.js';
import { findPerf, setupProfiler, type Profiler } from './profile.js';
import { COPY_MODEL, writeReport } from './report.js';
import {
  SCHEMA,
  TEST_KINDS,
  ratiosAgainst,
  summarizePath,
  type BenchResult,
  type PathResult,
  type Sample,
  type TestKind,
} from './schema.js';

// 30 minutes for the plan leaves room in the 35-minute budget for tests run again after foreign load.
export const FULL_BUDGET_S = 30 * 60;
const QUICK_SECONDS = 2;
const DEFAULT_REPEATS = 5;
/** Runs of a test after its first one had more than DISTURBED_PCT foreign CPU. */
const DEFAULT_RETRIES = 2;
const QUIET_CHECK_S = 5;
const DEFAULT_ROUND_TRIPS = 2000;
// Measured on the 2-core machine under other load: per test ~1.4 s around the client (server start, counter reads),
// per path up to ~10 s to build and tear down.
const TEST_OVERHEAD_S = 1.5;
const PATH_SETUP_S = 8;

export interface BenchOptions {
  quick?: boolean;
  only?: string[];
  repeats?: number;
  /** Seconds per test; default: 2 with --quick, else chosen to fit FULL_BUDGET_S. */
  seconds?: number;
  latencyRoundTrips?: number;
  /** Where iperf3 and the ping-pong run: in a pod behind cni0 (default), or on the hosts themselves. */
  topology?: Topology;
  /** Output folder; default bench/results/<timestamp>. */
  outDir?: string;
  /** Progress lines to stderr (default true). */
  progress?: boolean;
  /** perf CPU split of each path's TCP 1-stream test (profile.ts). Default: on without --quick when perf works;
   *  true also installs linux-perf when missing. */
  /** Each path's idle daemon memory, read before its first test (idle-memory.ts). Default true. */
  idleMemory?: boolean;
  profile?: boolean;
  /** 'equal' (default): every socket gets weft's buffers for the run; 'os': the machine's defaults (sockbuf.ts). */
  socketBuffers?: SocketBufferMode;
  /** Extra runs of a test disturbed by foreign load (default 2). */
  retries?: number;
  /** Called before every attempt of a test (the disturbance test starts its CPU burner here). */
  beforeTest?: (path: string, kind: TestKind, repeat: number, attempt: number) => void;
}

export interface BenchRun {
  result: BenchResult;
  outDir: string;
}

/** Seconds per test so that the planned run fits the budget (2..10 s). */
export function fitSeconds(paths: number, repeats: number, budgetS = FULL_BUDGET_S): number {
  // latency tests are short (a few thousand round trips), count them as half
  const perRepeat = TEST_KINDS.length - 0.5;
  const s = (budgetS - paths * PATH_SETUP_S) / (paths * repeats * perRepeat) - TEST_OVERHEAD_S;
  return Math.max(2, Math.min(10, Math.floor(s)));
}

function timestamp(d: Date): string {
  return d
    .toISOString()
    .replace(/\.\d+Z$/, 'Z')
    .replace(/:/g, '-');
}

function tool(argv: string[]): string {
  try {
    return execFileSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 5_000 }).split('\n')[0]!.trim();
  } catch {
    return 'unknown';
  }
}

function fmtDuration(seconds: number): string {
  const s = Math.round(seconds); // round first: 179.6 s is 3m00s, not 2m60s
  const m = Math.floor(s / 60);
  return m > 0 ? `${m}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

class Progress {
  private readonly start = Date.now();
  private expectedDone = 0;
  private stepsDone = 0;
  constructor(
    private totalSteps: number,
    private readonly stepS: number,
    private readonly enabled: boolean,
  ) {}

  /** A path that failed at setup takes its steps out of the plan. */
  drop(steps: number): void {
    this.totalSteps -= steps;
  }

  step(label: string): void {
    if (!this.enabled) return;
    const elapsed = (Date.now() - this.start) / 1000;
    // Scale the plan by how the run has gone so far.
    const pace = this.expectedDone > 0 ? elapsed / this.expectedDone : 1;
    const eta = Math.max(0, (this.totalSteps - this.stepsDone) * this.stepS * pace);
    const n = String(this.stepsDone + 1).padStart(String(this.totalSteps).length);
    this.line(`[${n}/${this.totalSteps}] ${label}  elapsed ${fmtDuration(elapsed)}, ETA ${fmtDuration(eta)}`);
  }

  done(): void {
    this.stepsDone++;
    this.expectedDone += this.stepS;
  }

  line(text: string): void {
    if (this.enabled) process.stderr.write(`bench: ${text}\n`);
  }
}

export async function runBench(opts: BenchOptions = {}): Promise<BenchRun> {
  const quick = opts.quick === true;
  const defs = selectPaths(opts.only, quick);
  const repeats = Math.max(1, Math.min(opts.repeats ?? (quick ? 1 : DEFAULT_REPEATS), 20));
  const seconds = Math.max(1, Math.min(opts.seconds ?? (quick ? QUICK_SECONDS : fitSeconds(defs.length, repeats)), 60));
  // --quick is for a glance while working: it says how disturbed a test was but does not run it again
  const retries = Math.max(0, Math.min(opts.retries ?? (quick ? 0 : DEFAULT_RETRIES), 5));
  const settings: TestSettings = {
    seconds,
    latencyRoundTrips: Math.max(10, Math.min(opts.latencyRoundTrips ?? DEFAULT_ROUND_TRIPS, 100_000)),
  };
  const started = new Date();
  const outDir = opts.outDir ?? join(PACKAGE_ROOT, 'bench', 'results', timestamp(started));
  const progress = new Progress(
    defs.length * repeats * TEST_KINDS.length,
    seconds + TEST_OVERHEAD_S,
    opts.progress ?? true,
  );

  const result: BenchResult = {
    schema: SCHEMA,
    startedAt: started.toISOString(),
    finishedAt: '',
    machine: {
      kernel: release(),
      cpus: cpus().length,
      node: process.version,
      iperf3: tool(['iperf3', '--version']),
      loadAvg: loadavg(),
    },
    settings: {
      repeats,
      seconds,
      quick,
      paths: defs.map((d) => d.name),
      latencyRoundTrips: settings.latencyRoundTrips,
      topology: opts.topology ?? 'pods',
      retries,
      disturbedPct: DISTURBED_PCT,
    },
    reference: REFERENCE_PATH,
    paths: [],
    copyModel: COPY_MODEL,
    interrupted: false,
  };

  let current: PathEnv | null = null;
  const onSignal = (sig: NodeJS.Signals): void => {
    // Synchronous: write what we have; process.exit runs the testbed's and etcd's exit handlers, which kill the
    // children and delete the namespaces.
    result.interrupted = true;
    result.finishedAt = new Date().toISOString();
    progress.line(`${sig}: stopping, removing namespaces and processes`);
    try {
      finish(result);
      mkdirSync(outDir, { recursive: true });
      writeFileSync(join(outDir, 'results.json'), JSON.stringify(result, null, 2) + '\n');
    } catch {
      // best effort: cleanup matters more than a partial file
    }
    if (current) rmSync(current.cluster.etcd.dataDir, { recursive: true, force: true });
    process.exit(sig === 'SIGINT' ? 130 : 143);
  };
  const onInt = (): void => onSignal('SIGINT');
  const onTerm = (): void => onSignal('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);

  progress.line(
    `${defs.length} paths x ${repeats} repeats x ${TEST_KINDS.length} tests, ${seconds} s per test -> ${outDir}`,
  );
  const quiet = await quietCheck(QUIET_CHECK_S, loadavg()[0] ?? 0);
  result.machine.quiet = quiet;
  progress.line(
    `machine ${quiet.quiet ? 'quiet' : 'NOT quiet'}: ${quiet.foreignPct.toFixed(1)} % foreign CPU over ` +
      `${quiet.seconds} s, load average ${quiet.loadAvg1.toFixed(2)} on ${cpus().length} CPUs` +
      (quiet.top.length > 0 ? ` (${quiet.top.join(', ')})` : ''),
  );
  settings.perf = await findPerf();
  result.settings.syscallCounter = settings.perf;
  progress.line(
    settings.perf
      ? `syscalls: perf stat counts the daemons' syscalls by kind in every TCP 1-stream test (${settings.perf})`
      : "syscalls: no perf, only weft's own counters",
  );
  const buffers = applySocketBuffers(opts.socketBuffers ?? 'equal');
  result.settings.socketBuffers = buffers.info;
  progress.line(
    buffers.info.mode === 'equal'
      ? `socket buffers: every path's at weft's (net.core.rmem_default ${buffers.info.during.rmem_default}, ` +
          `rmem_max ${buffers.info.during.rmem_max}; put back to ${buffers.info.before.rmem_default}, ` +
          `${buffers.info.before.rmem_max} after the run)`
      : `socket buffers: the machine's defaults (rmem_default ${buffers.info.before.rmem_default}), ` +
          'weft forces its own',
  );
  let profiler: Profiler | null = null;
  if (opts.profile ?? !quick) {
    const p = await setupProfiler({ install: opts.profile === true, outDir, log: (l) => progress.line(l) });
    result.profile = p.run;
    profiler = p.profiler;
    progress.line(
      p.run.enabled
        ? `profile: perf samples every CPU during each path's TCP 1-stream test (${p.run.perf})`
        : `profile: off: ${p.run.reason}`,
    );
  }
  try {
    for (const def of defs) {
      const pr: PathResult = {
        name: def.name,
        title: def.title,
        kind: def.kind,
        status: 'failed',
        setupSeconds: 0,
        loadAvg1: loadavg()[0] ?? null,
        mtu: null,
        testbed: null,
        samples: [],
        summary: {},
        ratios: {},
        ...(def.ipv6 === true ? { reference: REFERENCE_PATH_V6 } : {}),
      };
      result.paths.push(pr); // now, so an interrupted run still writes this path's samples
      await runPath(def, pr, { repeats, retries, settings, progress, profiler, opts }, (env) => (current = env));
      current = null;
    }
  } finally {
    buffers.restore();
    profiler?.close();
    process.removeListener('SIGINT', onInt);
    process.removeListener('SIGTERM', onTerm);
  }
  result.finishedAt = new Date().toISOString();
  finish(result);
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'results.json'), JSON.stringify(result, null, 2) + '\n');
  writeReport(result, outDir);
  progress.line(
    `done in ${fmtDuration((Date.parse(result.finishedAt) - started.getTime()) / 1000)}: ${join(outDir, 'report.md')}`,
  );
  return { result, outDir };
}

interface RunContext {
  repeats: number;
  retries: number;
  settings: TestSettings;
  progress: Progress;
  profiler: Profiler | null;
  opts: BenchOptions;
}

async function runPath(def: PathDef, pr: PathResult, cx: RunContext, onOpen: (env: PathEnv) => void): Promise<void> {
  const { repeats, progress } = cx;
  const t0 = Date.now();
  progress.line(`path ${def.name}: building (${def.title})`);
  let env: PathEnv;
  try {
    env = await openPath(def, cx.opts.topology ?? 'pods');
  } catch (e) {
    pr.setupSeconds = (Date.now() - t0) / 1000;
    pr.reason = errorMessage(e);
    progress.drop(repeats * TEST_KINDS.length);
    progress.line(`path ${def.name}: FAILED: ${pr.reason}`);
    return;
  }
  onOpen(env);
  pr.setupSeconds = (Date.now() - t0) / 1000;
  pr.mtu = env.mtu;
  pr.testbed = env.cluster.tb.id;
  pr.overlaySockets = env.hostNs.flatMap((ns) => udpSocketBuffers(ns).map((x) => ({ ns, ...x })));
  progress.line(
    `path ${def.name}: up on testbed w${env.cluster.tb.id} in ${pr.setupSeconds.toFixed(1)} s (mtu ${env.mtu ?? '-'})`,
  );
  try {
    if (env.daemons.length > 0 && cx.opts.idleMemory !== false) {
      pr.idleMemory = await readIdleMemory(env);
      const rss = pr.idleMemory.map((m) => (m.rssBytes / 1e6).toFixed(1));
      progress.line(`path ${def.name}: idle daemon RSS ${rss.length > 0 ? rss.join(', ') : '-'} MB`);
    }
    for (let r = 1; r <= repeats; r++) {
      for (const kind of TEST_KINDS) {
        progress.step(`${def.name} ${kind} (repeat ${r}/${repeats})`);
        const s = await runAttempts(env, pr, kind, r, cx);
        progress.done();
        if (!s.ok) progress.line(`path ${def.name}: ${kind} failed: ${s.error}`);
        pr.samples.push(s);
      }
    }
  } finally {
    await closePath(env);
  }
  const failed = [...new Set(pr.samples.filter((s) => !s.ok).map((s) => s.test))] as TestKind[];
  pr.status = pr.samples.some((s) => s.ok) ? 'ok' : 'failed';
  if (failed.length > 0) {
    const first = pr.samples.find((s) => !s.ok);
    pr.reason = `tests with failures: ${failed.join(', ')} (first: ${first?.error ?? '?'})`;
  }
}

/** One test, run again while foreign load disturbs it (up to cx.retries more times); the last attempt is kept. */
async function runAttempts(env: PathEnv, pr: PathResult, kind: TestKind, r: number, cx: RunContext): Promise<Sample> {
  const retried: number[] = [];
  for (let attempt = 1; ; attempt++) {
    cx.opts.beforeTest?.(env.def.name, kind, r, attempt);
    const prof = cx.profiler && kind === 'tcp1' && r === 1 ? cx.profiler.start(env, cx.settings.seconds, r) : null;
    const s = await runTest(env, kind, r, cx.settings);
    if (prof) {
      pr.profile = await prof.finish(s);
      if (!pr.profile.ok) cx.progress.line(`path ${env.def.name}: profile failed: ${pr.profile.error}`);
    }
    const f = s.counters?.foreign;
    if (!s.ok || !isDisturbed(f) || f === undefined) {
      return { ...s, attempts: attempt, ...(retried.length > 0 ? { retriedForeignPct: retried } : {}) };
    }
    const who = f.top.length > 0 ? ` (${f.top.join(', ')})` : '';
    if (attempt > cx.retries) {
      cx.progress.line(`${env.def.name} ${kind}: DISTURBED: ${f.pct.toFixed(1)} % foreign CPU${who}, kept as is`);
      return { ...s, attempts: attempt, retriedForeignPct: retried, disturbed: true };
    }
    cx.progress.line(`${env.def.name} ${kind}: ${f.pct.toFixed(1)} % foreign CPU${who}: running it again`);
    retried.push(f.pct);
  }
}

/** Summaries and ratios against the reference path, computed from the samples. */
function finish(result: BenchResult): void {
  for (const p of result.paths) p.summary = summarizePath(p.samples);
  const ok = (name: string): PathResult | undefined => result.paths.find((p) => p.name === name && p.status === 'ok');
  for (const p of result.paths) p.ratios = ratiosAgainst(p.summary, ok(p.reference ?? result.reference)?.summary);
}
