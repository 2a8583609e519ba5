// What the bench reads around each test: CPU time (/proc/stat for the machine, /proc/<pid>/stat for the daemons),
// RcvbufErrors (/proc/net/snmp, which is per network namespace, so read from inside it), daemon RSS
// (/proc/<pid>/status), the daemons' datapath counters (/metrics on 127.0.0.1 inside the host namespace) and their
// own memory breakdown (/status there).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { execIn } from '../../testbed/exec.js';

/** Clock ticks per second for /proc times (USER_HZ); 100 on every Linux we run on, but ask. */
export const CLK_TCK: number = (() => {
  try {
    const n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 5_000 }).trim());
    return Number.isFinite(n) && n > 0 ? n : 100;
  } catch {
    return 100;
  }
})();

export interface MachineCpu {
  user: number;
  system: number;
  softirq: number;
}

/** Whole-machine CPU seconds since boot, from the first line of /proc/stat (not namespaced). */
export function machineCpu(): MachineCpu {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  // cpu  user nice system idle iowait irq softirq steal ...
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  const t = (i: number): number => (f[i] ?? 0) / CLK_TCK;
  return { user: t(0) + t(1), system: t(2), softirq: t(6) };
}

/** utime + stime of a process in seconds; null when it is gone. */
export function processCpu(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm may hold spaces and ')': fields after the last ')' start at field 3 (state).
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(rest[11]) + Number(rest[12])) / CLK_TCK; // fields 14 and 15
  } catch {
    return null;
  }
}

/** VmRSS in bytes; null when the process is gone. */
export function processRss(pid: number): number | null {
  return processMemory(pid)?.rss ?? null;
}

/** VmRSS and its anonymous and file-backed parts (RssAnon, RssFile; RssShmem is the rest), bytes; null when the
 *  process is gone. */
export function processMemory(pid: number): { rss: number; anon: number; file: number } | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (field: string): number | null => {
      const m = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(status);
      return m ? Number(m[1]) * 1024 : null;
    };
    const [rss, anon, file] = [kb('VmRSS'), kb('RssAnon'), kb('RssFile')];
    return rss === null || anon === null || file === null ? null : { rss, anon, file };
  } catch {
    return null;
  }
}

/** Seconds since the process started (/proc/<pid>/stat starttime against /proc/uptime); null when it is gone. */
export function processAgeSeconds(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const started = Number(rest[19]) / CLK_TCK; // field 22
    const uptime = Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
    return Number.isFinite(started) && Number.isFinite(uptime) ? Math.max(0, uptime - started) : null;
  } catch {
    return null;
  }
}

/** RcvbufErrors of the Udp: line of /proc/net/snmp as seen inside namespace `ns`. */
export async function rcvbufErrors(ns: string): Promise<number> {
  const r = await execIn(ns, ['cat', '/proc/net/snmp'], { timeoutMs: 5_000 });
  if (r.code !== 0) return 0;
  const lines = r.stdout.split('\n').filter((l) => l.startsWith('Udp:'));
  if (lines.length < 2) return 0;
  const names = lines[0]!.trim().split(/\s+/);
  const values = lines[1]!.trim().split(/\s+/);
  const i = names.indexOf('RcvbufErrors');
  return i > 0 ? Number(values[i]) || 0 : 0;
}

// Run in the host namespace: the daemon's /metrics and /status listen on its loopback.
const HTTP_GET = `
const [port, path] = [Number(process.argv[1]), process.argv[2]];
const req = require('node:http').get({ host: '127.0.0.1', port, path, timeout: 3000 }, (r) => {
  let s = ''; r.setEncoding('utf8'); r.on('data', (d) => (s += d)); r.on('end', () => process.stdout.write(s));
});
req.on('timeout', () => req.destroy(new Error('timeout')));
req.on('error', (e) => { process.stderr.write(e.message); process.exit(2); });
`;

/** weft_datapath_total counters of the daemon in `ns`; null when /metrics does not answer. */
export async function datapathCounters(ns: string, port: number): Promise<Record<string, number> | null> {
  const r = await execIn(ns, [process.execPath, '-e', HTTP_GET, String(port), '/metrics'], { timeoutMs: 8_000 });
  if (r.code !== 0) return null;
  const out: Record<string, number> = {};
  for (const m of r.stdout.matchAll(/^weft_datapath_total\{counter="([a-z0-9_]+)"\} ([0-9.e+-]+)$/gm)) {
    out[m[1]!] = Number(m[2]);
  }
  return out;
}

/** The `memory` of the daemon's /status in `ns` (process.memoryUsage() there, bytes); null when it does not answer. */
export async function daemonMemory(
  ns: string,
  port: number,
): Promise<{ heapUsed: number; heapTotal: number; external: number; arrayBuffers: number } | null> {
  const r = await execIn(ns, [process.execPath, '-e', HTTP_GET, String(port), '/status'], { timeoutMs: 8_000 });
  if (r.code !== 0) return null;
  let doc: unknown;
  try {
    doc = JSON.parse(r.stdout);
  } catch {
    return null;
  }
  const m = typeof doc === 'object' && doc !== null ? (doc as { memory?: unknown }).memory : undefined;
  if (typeof m !== 'object' || m === null) return null;
  const n = (k: string): number | null => {
    const v = (m as Record<string, unknown>)[k];
    return typeof v === 'number' ? v : null;
  };
  const [heapUsed, heapTotal, external, arrayBuffers] = [
    n('heapUsed'),
    n('heapTotal'),
    n('external'),
    n('arrayBuffers'),
  ];
  if (heapUsed === null || heapTotal === null || external === null || arrayBuffers === null) return null;
  return { heapUsed, heapTotal, external, arrayBuffers };
}

export function subtractCounters(
  after: Record<string, number>,
  before: Record<string, number>,
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(after)) out[k] = v - (before[k] ?? 0);
  return out;
}

export function addCounters(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = { ...a };
  for (const [k, v] of Object.entries(b)) out[k] = (out[k] ?? 0) + v;
  return out;
}
