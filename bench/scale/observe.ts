// Reading a running weft cluster from outside, for the scale tool and the etcd failover test: a daemon's /metrics
// (fetched inside its namespace), its process cost from /proc, and a lease key as etcd stores it.
import { readFileSync } from 'node:fs';
import { WeftError } from '../../src/errors.js';
import type { Host, Testbed } from '../../testbed/hosts.js';

/** Every sample of a Prometheus text page, keyed by `name{labels}` as printed. */
export function parsePrometheus(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?)\s+(\S+)/.exec(line);
    if (m === null) continue;
    const v = Number(m[2]);
    if (!Number.isNaN(v)) out.set(m[1]!, v);
  }
  return out;
}

/** The sample `name` (no labels), or the sum of samples of `name` whose labels contain `labelPart`. */
export function sample(samples: Map<string, number>, name: string, labelPart?: string): number | undefined {
  if (labelPart === undefined) return samples.get(name);
  let sum: number | undefined;
  for (const [k, v] of samples) {
    if (k.startsWith(`${name}{`) && k.includes(labelPart)) sum = (sum ?? 0) + v;
  }
  return sum;
}

const FETCH =
  "require('node:http').get(process.argv[1], (r) => { let s = ''; r.on('data', (d) => s += d); " +
  "r.on('end', () => process.stdout.write(s)); }).on('error', (e) => { console.error(e.message); process.exit(2); });";

/** GET `url` from inside a namespace (bounded); the body as text. */
export async function fetchIn(tb: Testbed, target: Host | string, url: string, timeoutMs = 10_000): Promise<string> {
  const r = await tb.exec(target, [process.execPath, '-e', FETCH, url], { timeoutMs });
  if (r.code !== 0) throw new WeftError('WEFT_ERR_BACKEND', `GET ${url}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** The /metrics of the daemon in `host` listening on 127.0.0.1:port. */
export async function daemonMetrics(tb: Testbed, host: Host, port: number): Promise<Map<string, number>> {
  return parsePrometheus(await fetchIn(tb, host, `http://127.0.0.1:${port}/metrics`));
}

export interface ProcSample {
  /** Resident set size, bytes (VmRSS). */
  rssBytes: number;
  /** Peak resident set size, bytes (VmHWM). */
  hwmBytes: number;
  /** utime + stime, seconds. */
  cpuSeconds: number;
  /** When taken (ms, monotonic). */
  atMs: number;
}

const CLK_TCK = 100; // sysconf(_SC_CLK_TCK) on Linux (USER_HZ)

/** RSS and CPU time of a process from /proc (throws when it is gone). */
export function procSample(pid: number): ProcSample {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string): number => {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
    return m === null ? 0 : Number(m[1]) * 1024;
  };
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may contain spaces) start at ") ".
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  return {
    rssBytes: kb('VmRSS'),
    hwmBytes: kb('VmHWM'),
    cpuSeconds: (utime + stime) / CLK_TCK,
    atMs: performance.now(),
  };
}

/** A subnet key as `etcdctl get -w json` shows it (ids kept exact as text). */
export interface StoredKey {
  key: string;
  createRevision: string;
  modRevision: string;
  /** etcd lease id, decimal text; "0" for none. */
  lease: string;
  value: string;
}

/** Quotes bare integers of 16+ digits so JSON.parse keeps etcd's 64-bit ids exact. */
export function parseBigJson(json: string): unknown {
  return JSON.parse(json.replace(/([:[,]\s*)(-?\d{16,})/g, '$1"$2"'));
}

/** The kvs of an `etcdctl get -w json` answer (keys and values are base64 there). */
export function parseGetJson(json: string): StoredKey[] {
  const doc = parseBigJson(json) as { kvs?: unknown };
  if (!Array.isArray(doc.kvs)) return [];
  const out: StoredKey[] = [];
  for (const kv of doc.kvs as Array<Record<string, unknown>>) {
    const b64 = (v: unknown): string => (typeof v === 'string' ? Buffer.from(v, 'base64').toString('utf8') : '');
    out.push({
      key: b64(kv.key),
      createRevision: String(kv.create_revision ?? '0'),
      modRevision: String(kv.mod_revision ?? '0'),
      lease: String(kv.lease ?? '0'),
      value: b64(kv.value),
    });
  }
  return out;
}

/** `etcdctl lease timetolive -w json`: the remaining and granted TTL in seconds (ttl -1: expired or unknown). */
export function parseTimeToLive(json: string): { ttl: number; grantedTtl: number } {
  const doc = parseBigJson(json) as { ttl?: unknown; 'granted-ttl'?: unknown };
  return { ttl: Number(doc.ttl ?? -1), grantedTtl: Number(doc['granted-ttl'] ?? 0) };
}

/** Decimal etcd lease id -> the hex etcdctl's lease commands take. */
export function leaseHex(decimal: string): string {
  return BigInt(decimal).toString(16);
}

/** Percentile (0..100) of a sample, nearest-rank; NaN for an empty one. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const rank = Math.min(s.length, Math.max(1, Math.ceil((p / 100) * s.length)));
  return s[rank - 1]!;
}

export function median(values: readonly number[]): number {
  return percentile(values, 50);
}
