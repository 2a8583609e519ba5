// Commands in the testbed's namespaces (`ip netns exec`), bounded in time and tracked: each child is in the cleanup
// registry while it runs, so destroy() or an interrupted run kills it.
import { execFile, spawn as spawnChild, type ChildProcess, type StdioOptions } from 'node:child_process';
import { WeftError } from '../src/errors.js';
import { sleep } from '../src/util/sleep.js';
import { installHandlers, registry } from './cleanup.js';

const DEFAULT_EXEC_TIMEOUT_MS = 30_000;
const KILL_GRACE_MS = 2_000;

/** Testbed failures: setup commands or the tools it drives (ping, iperf3). */
export class TestbedError extends WeftError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('WEFT_ERR_IPROUTE', message, options);
    this.name = 'TestbedError';
  }
}

/** Where to run something: a host or a pod of the testbed (anything with its namespace), or a namespace's name. */
export type Target = { readonly ns: string } | string;

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

export function nsOf(target: Target): string {
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
