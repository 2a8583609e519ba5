// The bench's result schema (results.json, `weft bench --json`) and the statistics over repeated samples.
// Every raw sample is kept; summaries (median, min, max, spread) and ratios against the reference path are derived
// from them, so a reader can recompute any figure from the file.

import type { ForeignLoad, QuietCheck } from './foreign.js';
import type { PathProfile, ProfileRun } from './profile-groups.js';
import type { SocketBuffers } from './sockbuf.js';
import type { SyscallCount } from './syscalls.js';

export const SCHEMA = 'weft-bench/1';

/** The test kinds each path runs, in order. */
export const TEST_KINDS = ['tcp1', 'tcp4', 'udp64', 'udp1400', 'latency'] as const;
export type TestKind = (typeof TEST_KINDS)[number];

/** Counters read around one test (deltas over the test unless said otherwise). */
export interface SampleCounters {
  /** utime+stime of the weft daemon processes of both hosts, seconds. */
  daemonCpuSeconds: number | null;
  /** system + softirq of the whole machine from /proc/stat, seconds (includes every process, also other load). */
  kernelCpuSeconds: number;
  /** user + nice of the whole machine from /proc/stat, seconds. */
  userCpuSeconds: number;
  /** Sum over both daemons of weft_datapath_total deltas (null: no /metrics on this path). */
  datapath: Record<string, number> | null;
  /** RcvbufErrors (/proc/net/snmp Udp:) in the two host namespaces. */
  hostRcvbufErrors: number;
  /** RcvbufErrors in the two endpoint namespaces (pods; equal to hosts on the underlay path). */
  endpointRcvbufErrors: number;
  /** Largest VmRSS of a daemon after the test, bytes (null: no daemon). */
  daemonRssBytes: number | null;
  /** CPU used outside the testbed during the test (foreign.ts); absent in results from before it was measured. */
  foreign?: ForeignLoad;
}

/** One daemon's memory at idle: the path up and settled, before its first test (idle-memory.ts). Bytes. */
export interface IdleMemory {
  /** Host namespace of the daemon. */
  ns: string;
  /** Seconds since the daemon started when read. */
  ageSeconds: number;
  /** VmRSS, and its anonymous and file-backed parts (/proc/<pid>/status RssAnon, RssFile). */
  rssBytes: number;
  anonBytes: number;
  fileBytes: number;
  /** The daemon's own process.memoryUsage() from its /status; absent for the peers or when /status did not answer. */
  heapUsedBytes?: number;
  heapTotalBytes?: number;
  externalBytes?: number;
  arrayBuffersBytes?: number;
}

export interface Sample {
  test: TestKind;
  repeat: number;
  seconds: number;
  ok: boolean;
  error?: string;
  /** Figures of this test (see METRICS for units); only those the test produces. */
  values: Partial<Record<MetricKey, number>>;
  /** What the figures came from (iperf3's fields, ping-pong counts). */
  raw: Record<string, number | null>;
  counters: SampleCounters | null;
  /** How many times the test ran: attempts over DISTURBED_PCT foreign CPU are run again (foreign.ts). */
  attempts?: number;
  /** Foreign CPU % of the attempts run again, in order (this sample is the last attempt). */
  retriedForeignPct?: number[];
  /** Every attempt, this one included, had more than DISTURBED_PCT foreign CPU. */
  disturbed?: boolean;
  /** The daemons' syscalls during a TCP 1-stream test, counted by perf (syscalls.ts); absent without perf. */
  syscalls?: SyscallCount;
}

export interface Summary {
  median: number;
  min: number;
  max: number;
  /** (max - min) / median; 0 with one sample. */
  spread: number;
  n: number;
}

export interface PathResult {
  name: string;
  title: string;
  kind: 'underlay' | 'kernel-reference' | 'weft-kernel' | 'weft-userspace' | 'peer';
  status: 'ok' | 'failed';
  /** Why the path failed (setup) or which tests failed. */
  reason?: string;
  setupSeconds: number;
  /** Testbed id (namespaces w<id>-*) the path ran on; null when it failed before. */
  testbed: number | null;
  /** 1-minute load average when the path was built (this run's own load included). */
  loadAvg1: number | null;
  /** MTU the pods used (FLANNEL_MTU or the reference setup's). */
  mtu: number | null;
  /** UDP sockets in the host namespaces once the path was up, with their sk_rcvbuf/sk_sndbuf (`ss -uam`). */
  overlaySockets?: { ns: string; local: string; rcvbuf: number; sndbuf: number }[];
  /** Each daemon's memory once the path was up and settled, before the tests (absent: no daemon, or older). */
  idleMemory?: IdleMemory[];
  samples: Sample[];
  summary: Partial<Record<MetricKey, Summary>>;
  /** The path its ratios are against, when not the run's reference (IPv6 rows: kernel-vxlan-v6). */
  reference?: string;
  /** median / reference median, per metric; null when either is missing. */
  ratios: Partial<Record<MetricKey, number | null>>;
  /** CPU split of the TCP 1-stream test of repeat 1 (`--profile`, profile-groups.ts); absent when not profiled. */
  profile?: PathProfile;
}

export interface BenchResult {
  schema: typeof SCHEMA;
  startedAt: string;
  finishedAt: string;
  /** loadAvg: the 1/5/15-minute load averages when the run started (other work shares the CPUs). */
  machine: {
    kernel: string;
    cpus: number;
    node: string;
    iperf3: string;
    loadAvg: number[];
    /** Foreign CPU and load before the first path was built (absent in older results). */
    quiet?: QuietCheck;
  };
  settings: {
    repeats: number;
    seconds: number;
    quick: boolean;
    paths: string[];
    latencyRoundTrips: number;
    /** Where the endpoints run (absent in older results: pods). */
    topology?: 'pods' | 'host';
    /** Extra runs of a disturbed test, and the foreign CPU % above which a test is disturbed (absent: older). */
    retries?: number;
    disturbedPct?: number;
    /** The perf that counted the daemons' syscalls (null: none; absent in older results). */
    syscallCounter?: string | null;
    /** Socket-buffer conditions of every path (sockbuf.ts; absent in older results: the machine's defaults). */
    socketBuffers?: SocketBuffers;
  };
  reference: string;
  paths: PathResult[];
  copyModel: Record<string, string>;
  interrupted: boolean;
  /** Whether perf profiled the paths, with what, or why not (absent in results from before profiling existed). */
  profile?: ProfileRun;
}

export interface MetricInfo {
  label: string;
  unit: string;
  /** True when more is better (for the reader; ratios are plain quotients either way). */
  higherIsBetter: boolean;
  digits: number;
}

export const METRICS = {
  tcp1_gbps: { label: 'TCP 1 stream', unit: 'Gbit/s', higherIsBetter: true, digits: 2 },
  tcp4_gbps: { label: 'TCP 4 streams', unit: 'Gbit/s', higherIsBetter: true, digits: 2 },
  tcp1_retransmits: { label: 'TCP 1 stream retransmits', unit: 'segments', higherIsBetter: false, digits: 0 },
  udp64_kpps: { label: 'UDP 64 B received', unit: 'kpps', higherIsBetter: true, digits: 1 },
  udp64_loss_pct: { label: 'UDP 64 B loss', unit: '%', higherIsBetter: false, digits: 1 },
  udp1400_gbps: { label: 'UDP 1400 B received', unit: 'Gbit/s', higherIsBetter: true, digits: 2 },
  udp1400_kpps: { label: 'UDP 1400 B received', unit: 'kpps', higherIsBetter: true, digits: 1 },
  udp1400_loss_pct: { label: 'UDP 1400 B loss', unit: '%', higherIsBetter: false, digits: 1 },
  lat_p50_us: { label: 'latency p50', unit: 'us', higherIsBetter: false, digits: 0 },
  lat_p99_us: { label: 'latency p99', unit: 'us', higherIsBetter: false, digits: 0 },
  lat_loss_pct: { label: 'ping-pong loss', unit: '%', higherIsBetter: false, digits: 1 },
  cpu_daemon_s_per_gb: { label: 'daemon CPU per GB (TCP 1 stream)', unit: 's/GB', higherIsBetter: false, digits: 2 },
  cpu_kernel_s_per_gb: {
    label: 'machine system+softirq per GB (TCP 1 stream)',
    unit: 's/GB',
    higherIsBetter: false,
    digits: 2,
  },
  cpu_total_s_per_gb: {
    label: 'machine busy (user+system+softirq) per GB (TCP 1 stream)',
    unit: 's/GB',
    higherIsBetter: false,
    digits: 2,
  },
  syscalls_per_packet: {
    label: "daemon syscalls per TUN packet, weft's counters (TCP 1 stream)",
    unit: '',
    higherIsBetter: false,
    digits: 2,
  },
  syscalls_per_superpacket: {
    label: "daemon syscalls per super-packet (offload tier), weft's counters (TCP 1 stream)",
    unit: '',
    higherIsBetter: false,
    digits: 2,
  },
  perf_syscalls_per_packet: {
    label: 'every daemon syscall per TUN packet, perf (TCP 1 stream)',
    unit: '',
    higherIsBetter: false,
    digits: 2,
  },
  perf_io_syscalls_per_packet: {
    label: 'daemon read/write/send/recv syscalls per TUN packet, perf (TCP 1 stream)',
    unit: '',
    higherIsBetter: false,
    digits: 2,
  },
  perf_syscalls_per_superpacket: {
    label: 'every daemon syscall per super-packet (offload tier), perf (TCP 1 stream)',
    unit: '',
    higherIsBetter: false,
    digits: 2,
  },
  perf_syscalls_per_mb: {
    label: 'every daemon syscall per MB received, perf (TCP 1 stream)',
    unit: '',
    higherIsBetter: false,
    digits: 1,
  },
  copied_bytes_per_packet: {
    label: 'bytes the kernel copied user<->kernel per packet (TCP 1 stream)',
    unit: 'B',
    higherIsBetter: false,
    digits: 0,
  },
  kernel_copies_per_byte: {
    label: 'kernel copies of each forwarded byte: TUN read, socket send, socket receive, TUN write (TCP 1 stream)',
    unit: 'x',
    higherIsBetter: false,
    digits: 2,
  },
  user_copies_per_byte: {
    label: 'user-space copies of each forwarded byte, counted at the memcpy (TCP 1 stream)',
    unit: 'x',
    higherIsBetter: false,
    digits: 2,
  },
  host_rcvbuf_errors: {
    label: 'RcvbufErrors, host namespaces (all tests of a repeat)',
    unit: '',
    higherIsBetter: false,
    digits: 0,
  },
  endpoint_rcvbuf_errors: {
    label: 'RcvbufErrors, pod namespaces (all tests of a repeat)',
    unit: '',
    higherIsBetter: false,
    digits: 0,
  },
  daemon_rss_mb: { label: 'daemon RSS (largest)', unit: 'MB', higherIsBetter: false, digits: 1 },
} as const satisfies Record<string, MetricInfo>;

/** What encrypts the traffic on each path ('' for none): the peers do, weft and the kernel paths do not. */
export const PATH_ENCRYPTION: Record<string, string> = {
  'wireguard-go': 'Noise IK handshake, ChaCha20-Poly1305',
  nebula: 'Noise IX handshake, AES-256-GCM',
  tinc: 'RSA key exchange, Blowfish-CBC + HMAC-SHA1 (tinc 1.0 defaults)',
};

export function encryptionOf(path: string): string {
  return PATH_ENCRYPTION[path] ?? '';
}

export type MetricKey = keyof typeof METRICS;
export const METRIC_KEYS = Object.keys(METRICS) as MetricKey[];

export function summarize(values: readonly number[]): Summary | undefined {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return undefined;
  const mid = Math.floor(v.length / 2);
  const median = v.length % 2 === 1 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
  const min = v[0]!;
  const max = v[v.length - 1]!;
  return { median, min, max, spread: median !== 0 ? (max - min) / Math.abs(median) : 0, n: v.length };
}

/** Percentile by nearest rank (p in 0..100) of an ascending array. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

/** Per-repeat values of every metric of a path, from its samples (metrics that sum over a repeat are summed). */
export function valuesByMetric(samples: readonly Sample[]): Partial<Record<MetricKey, number[]>> {
  const out: Partial<Record<MetricKey, number[]>> = {};
  const push = (k: MetricKey, x: number): void => {
    (out[k] ??= []).push(x);
  };
  for (const s of samples) {
    if (!s.ok) continue;
    for (const [k, x] of Object.entries(s.values) as [MetricKey, number][]) {
      if (k === 'host_rcvbuf_errors' || k === 'endpoint_rcvbuf_errors' || k === 'daemon_rss_mb') continue;
      push(k, x);
    }
  }
  // Per repeat: drops summed over the repeat's tests, RSS the largest seen.
  const repeats = [...new Set(samples.map((s) => s.repeat))];
  for (const r of repeats) {
    const rs = samples.filter((s) => s.repeat === r && s.counters !== null);
    if (rs.length === 0) continue;
    push(
      'host_rcvbuf_errors',
      rs.reduce((a, s) => a + (s.counters?.hostRcvbufErrors ?? 0), 0),
    );
    push(
      'endpoint_rcvbuf_errors',
      rs.reduce((a, s) => a + (s.counters?.endpointRcvbufErrors ?? 0), 0),
    );
    const rss = rs.map((s) => s.counters?.daemonRssBytes).filter((x): x is number => typeof x === 'number');
    if (rss.length > 0) push('daemon_rss_mb', Math.max(...rss) / 1e6);
  }
  return out;
}

export function summarizePath(samples: readonly Sample[]): Partial<Record<MetricKey, Summary>> {
  const out: Partial<Record<MetricKey, Summary>> = {};
  for (const [k, vs] of Object.entries(valuesByMetric(samples)) as [MetricKey, number[]][]) {
    const s = summarize(vs);
    if (s) out[k] = s;
  }
  return out;
}

export function ratiosAgainst(
  summary: Partial<Record<MetricKey, Summary>>,
  reference: Partial<Record<MetricKey, Summary>> | undefined,
): Partial<Record<MetricKey, number | null>> {
  const out: Partial<Record<MetricKey, number | null>> = {};
  for (const k of METRIC_KEYS) {
    const a = summary[k]?.median;
    const b = reference?.[k]?.median;
    if (a === undefined) continue;
    out[k] = b === undefined || b === 0 ? null : a / b;
  }
  return out;
}
