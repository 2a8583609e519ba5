// Nothing left behind. Every namespace, child process, root-side link and pid marker of a testbed is recorded in a
// module-level registry before it exists; destroy() (hosts.ts) kills the testbed's children (SIGTERM, SIGKILL after
// 2 s) and deletes its namespaces (which removes their veths). A process 'exit' handler and SIGINT/SIGTERM handlers do
// the same synchronously, best effort. A run that died by SIGKILL leaves its pid in /run/weft-testbed/<id>.pid;
// cleanupStale() removes the namespaces of ids whose owner is dead, and createTestbed() calls it first.
import { execFileSync, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, writeSync } from 'node:fs';
import { errorMessage } from '../src/errors.js';
import { silentLogger, type Logger } from '../src/log.js';
import { ip } from '../src/net/iproute.js';

export const RUN_DIR = '/run/weft-testbed';

// Module-level, so exit and signal handlers can undo everything even if destroy() never runs.
export const registry = {
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

export function installHandlers(signals: boolean): void {
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

export async function listNamespaces(): Promise<string[]> {
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
export function claimMarker(id: number): boolean {
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

export function releaseMarker(id: number): void {
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
