// One test of one path, as a Sample: start the server in the server endpoint, read the counters, run the bounded
// client, read the counters again, stop the server. The tests:
//   tcp1, tcp4   iperf3 -J TCP, 1 and 4 streams, client -> server for `seconds`
//   udp64        iperf3 -u -l 64 with a bitrate cap far above what 2 cores can push: received kpps and loss
//   udp1400      the same with 1400-byte datagrams: received Gbit/s and loss
//   latency      our own UDP ping-pong (pingpong.ts): one probe in flight, up to N round trips or `seconds`
// Counters around each test: daemon CPU (utime+stime), machine system+softirq and user (/proc/stat), the daemons'
// datapath counters (/metrics), RcvbufErrors in host and endpoint namespaces, daemon VmRSS.
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { errorMessage, WeftError } from '../../src/errors.js';
import { PACKAGE_ROOT } from '../../testbed/cluster.js';
import { killChild } from '../../testbed/exec.js';
import { runIperf, startIperfServer, type IperfResult } from '../../testbed/traffic.js';
import { countSyscalls, ioSyscalls, type SyscallCount } from './syscalls.js';
import { foreignBetween, loadSnapshot, testbedNetns, type LoadSnapshot } from './foreign.js';
import type { PathEnv } from './paths.js';
import type { PingPongResult } from './pingpong.js';
import {
  addCounters,
  datapathCounters,
  machineCpu,
  processCpu,
  processRss,
  rcvbufErrors,
  subtractCounters,
  type MachineCpu,
} from './probes.js';
import { percentile, type MetricKey, type Sample, type SampleCounters, type TestKind } from './schema.js';

export const PINGPONG_SCRIPT = join(PACKAGE_ROOT, 'dist', 'bench', 'suite', 'pingpong.js');
const IPERF_PORT = 5201;
const PINGPONG_PORT = 7777;
// Caps far above what two shared cores forward, so the path, not iperf3's pacing, sets the rate.
const UDP64_BITRATE = '2G';
const UDP1400_BITRATE = '40G';

export interface TestSettings {
  seconds: number;
  latencyRoundTrips: number;
  /** perf, to count the daemons' syscalls during TCP 1-stream tests (syscalls.ts); null: not counted. */
  perf?: string | null;
}

interface Snapshot {
  cpu: MachineCpu;
  load: LoadSnapshot;
  daemonCpu: (number | null)[];
  datapath: (Record<string, number> | null)[];
  hostDrops: number[];
  endpointDrops: number[];
}

async function snapshot(env: PathEnv, withDatapath: boolean): Promise<Snapshot> {
  // Slow reads (a process per namespace) first, so the CPU figures bracket the test tightly.
  const datapath = withDatapath ? await Promise.all(env.daemons.map((d) => datapathCounters(d.ns, d.metricsPort))) : [];
  const hostDrops = await Promise.all(env.hostNs.map((ns) => rcvbufErrors(ns)));
  const endpointDrops = await Promise.all(env.endpointNs.map((ns) => rcvbufErrors(ns)));
  const cpu = machineCpu();
  return {
    cpu,
    load: loadSnapshot(),
    daemonCpu: env.daemons.map((d) => processCpu(d.pid)),
    datapath,
    hostDrops,
    endpointDrops,
  };
}

// After the test the CPU is read first (before the slow reads), mirroring snapshot().
async function snapshotAfter(env: PathEnv): Promise<Snapshot> {
  const cpu = machineCpu();
  const load = loadSnapshot();
  const daemonCpu = env.daemons.map((d) => processCpu(d.pid));
  const datapath = await Promise.all(env.daemons.map((d) => datapathCounters(d.ns, d.metricsPort)));
  const hostDrops = await Promise.all(env.hostNs.map((ns) => rcvbufErrors(ns)));
  const endpointDrops = await Promise.all(env.endpointNs.map((ns) => rcvbufErrors(ns)));
  return { cpu, load, daemonCpu, datapath, hostDrops, endpointDrops };
}

function sum(xs: readonly number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}

function countersBetween(env: PathEnv, a: Snapshot, b: Snapshot): SampleCounters {
  let daemonCpu: number | null = null;
  if (env.daemons.length > 0) {
    daemonCpu = 0;
    for (let i = 0; i < env.daemons.length; i++) {
      const x = a.daemonCpu[i];
      const y = b.daemonCpu[i];
      if (x === null || y === null || x === undefined || y === undefined) {
        daemonCpu = null;
        break;
      }
      daemonCpu += y - x;
    }
  }
  let datapath: Record<string, number> | null = null;
  if (env.daemons.length > 0 && a.datapath.every((x) => x !== null) && b.datapath.every((x) => x !== null)) {
    datapath = {};
    for (let i = 0; i < env.daemons.length; i++) {
      datapath = addCounters(datapath, subtractCounters(b.datapath[i]!, a.datapath[i]!));
    }
  }
  const rss = env.daemons.map((d) => processRss(d.pid)).filter((x): x is number => x !== null);
  return {
    daemonCpuSeconds: daemonCpu,
    kernelCpuSeconds: b.cpu.system + b.cpu.softirq - a.cpu.system - a.cpu.softirq,
    userCpuSeconds: b.cpu.user - a.cpu.user,
    datapath,
    hostRcvbufErrors: sum(b.hostDrops) - sum(a.hostDrops),
    endpointRcvbufErrors: sum(b.endpointDrops) - sum(a.endpointDrops),
    daemonRssBytes: rss.length > 0 ? Math.max(...rss) : null,
    foreign: foreignBetween(a.load, b.load, { netns: testbedNetns(env.cluster.tb.id), rootPid: process.pid }),
  };
}

function num(o: unknown, ...path: string[]): number | null {
  let cur = o;
  for (const k of path) {
    if (typeof cur !== 'object' || cur === null || !(k in cur)) return null;
    cur = (cur as Record<string, unknown>)[k];
  }
  return typeof cur === 'number' ? cur : null;
}

/** Figures derived from the counters of a bulk test that moved `bytes` (payload received). */
function costValues(c: SampleCounters, bytes: number): Partial<Record<MetricKey, number>> {
  const v: Partial<Record<MetricKey, number>> = {};
  const gb = bytes / 1e9;
  if (gb > 0) {
    if (c.daemonCpuSeconds !== null) v.cpu_daemon_s_per_gb = c.daemonCpuSeconds / gb;
    v.cpu_kernel_s_per_gb = c.kernelCpuSeconds / gb;
    v.cpu_total_s_per_gb = (c.kernelCpuSeconds + c.userCpuSeconds) / gb;
  }
  const d = c.datapath;
  // Each forwarded packet enters exactly one daemon through its TUN: that is the packet count.
  const packets = d?.['tun_rx_packets'] ?? 0;
  if (d && packets > 0) {
    const syscalls =
      (d['syscalls_tun_read'] ?? 0) +
      (d['syscalls_tun_write'] ?? 0) +
      (d['syscalls_send'] ?? 0) +
      (d['syscalls_recv'] ?? 0);
    // The kernel's copies, counted at the syscalls that make them (TUN read, socket send, socket receive, TUN
    // write); user space's own copies of packet bytes, counted at the memcpy (copied_user_bytes).
    const copied = (d['copied_user_to_kernel_bytes'] ?? 0) + (d['copied_kernel_to_user_bytes'] ?? 0);
    v.syscalls_per_packet = syscalls / packets;
    const supers = d['gso_superpackets'] ?? 0;
    if (supers > 0) v.syscalls_per_superpacket = syscalls / supers;
    v.copied_bytes_per_packet = copied / packets;
    const inner = d['tun_rx_bytes'] ?? 0;
    if (inner > 0) {
      v.kernel_copies_per_byte = copied / inner;
      // A daemon from before the counter has no copied_user_bytes: unknown, not 0.
      const user = d['copied_user_bytes'];
      if (user !== undefined) v.user_copies_per_byte = user / inner;
    }
  }
  return v;
}

/** perf's syscall counts per TUN packet, per super-packet (offload tier) and per MB received. */
function syscallValues(c: SyscallCount, counters: SampleCounters, bytes: number): Partial<Record<MetricKey, number>> {
  const v: Partial<Record<MetricKey, number>> = {};
  if (bytes > 0) v.perf_syscalls_per_mb = c.total / (bytes / 1e6);
  const d = counters.datapath;
  const packets = d?.['tun_rx_packets'] ?? 0;
  if (packets > 0) {
    v.perf_syscalls_per_packet = c.total / packets;
    v.perf_io_syscalls_per_packet = ioSyscalls(c) / packets;
  }
  const supers = d?.['gso_superpackets'] ?? 0;
  if (supers > 0) v.perf_syscalls_per_superpacket = c.total / supers;
  return v;
}

interface TestOutput {
  values: Partial<Record<MetricKey, number>>;
  raw: Record<string, number | null>;
  /** Payload bytes received (for the cost per GB). */
  bytes: number;
}

async function iperfRun(env: PathEnv, kind: Exclude<TestKind, 'latency'>, s: TestSettings): Promise<TestOutput> {
  if (kind === 'tcp1' || kind === 'tcp4') {
    const r = await runIperf(env.client, env.serverIp, {
      seconds: s.seconds,
      streams: kind === 'tcp1' ? 1 : 4,
      port: IPERF_PORT,
    });
    const bytes = num(r.json, 'end', 'sum_received', 'bytes') ?? 0;
    const values: Partial<Record<MetricKey, number>> = {};
    if (kind === 'tcp1') {
      values.tcp1_gbps = r.receivedBps / 1e9;
      if (r.retransmits !== undefined) values.tcp1_retransmits = r.retransmits;
    } else {
      values.tcp4_gbps = r.receivedBps / 1e9;
    }
    return {
      values,
      bytes,
      raw: {
        received_bps: r.receivedBps,
        sent_bps: r.sentBps,
        received_bytes: bytes,
        retransmits: r.retransmits ?? null,
      },
    };
  }
  const len = kind === 'udp64' ? 64 : 1400;
  const r: IperfResult = await runIperf(env.client, env.serverIp, {
    seconds: s.seconds,
    udp: true,
    length: len,
    bitrate: kind === 'udp64' ? UDP64_BITRATE : UDP1400_BITRATE,
    port: IPERF_PORT,
  });
  const bytes = num(r.json, 'end', 'sum_received', 'bytes') ?? 0;
  const secs = num(r.json, 'end', 'sum_received', 'seconds') ?? s.seconds;
  const lost = num(r.json, 'end', 'sum_received', 'lost_percent') ?? r.lostPercent ?? null;
  const kpps = secs > 0 ? bytes / len / secs / 1000 : 0;
  const values: Partial<Record<MetricKey, number>> = {};
  if (kind === 'udp64') {
    values.udp64_kpps = kpps;
    if (lost !== null) values.udp64_loss_pct = lost;
  } else {
    values.udp1400_kpps = kpps;
    values.udp1400_gbps = secs > 0 ? (bytes * 8) / secs / 1e9 : 0;
    if (lost !== null) values.udp1400_loss_pct = lost;
  }
  return {
    values,
    bytes,
    raw: {
      received_bytes: bytes,
      received_seconds: secs,
      sent_packets: num(r.json, 'end', 'sum_sent', 'packets'),
      lost_percent: lost,
      sent_bps: r.sentBps,
      jitter_ms: r.jitterMs ?? null,
    },
  };
}

function startPingPongServer(env: PathEnv, maxMs: number): Promise<ChildProcess> {
  const child = env.cluster.tb.spawn(
    env.server,
    [
      process.execPath,
      PINGPONG_SCRIPT,
      'server',
      String(PINGPONG_PORT),
      String(maxMs),
      env.serverIp.includes(':') ? '6' : '4',
    ],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(
      () => reject(new WeftError('WEFT_ERR_BACKEND', `ping-pong server not listening: ${out}`)),
      5_000,
    );
    const onData = (d: Buffer): void => {
      out += d.toString();
      if (out.includes('listening')) {
        clearTimeout(timer);
        resolve(child);
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new WeftError('WEFT_ERR_BACKEND', `ping-pong server exited (${code}): ${out.trim()}`));
    });
  });
}

async function latencyRun(env: PathEnv, s: TestSettings): Promise<Omit<TestOutput, 'bytes'>> {
  const maxMs = s.seconds * 1000;
  const server = await startPingPongServer(env, maxMs + 10_000);
  try {
    const r = await env.cluster.tb.exec(
      env.client,
      [
        process.execPath,
        PINGPONG_SCRIPT,
        'client',
        env.serverIp,
        String(PINGPONG_PORT),
        String(s.latencyRoundTrips),
        String(maxMs),
      ],
      { timeoutMs: maxMs + 15_000 },
    );
    const line = r.stdout.split('\n').find((l) => l.startsWith('{'));
    if (r.code !== 0 || line === undefined)
      throw new WeftError('WEFT_ERR_BACKEND', `ping-pong client failed (exit ${r.code}): ${r.stderr.trim()}`);
    const res = JSON.parse(line) as PingPongResult;
    if (res.rttsUs.length === 0) throw new WeftError('WEFT_ERR_BACKEND', `ping-pong: no answers (${res.sent} sent)`);
    const mean = res.rttsUs.reduce((a, b) => a + b, 0) / res.rttsUs.length;
    return {
      values: {
        lat_p50_us: percentile(res.rttsUs, 50),
        lat_p99_us: percentile(res.rttsUs, 99),
        lat_loss_pct: res.sent > 0 ? (100 * res.lost) / res.sent : 0,
      },
      raw: {
        sent: res.sent,
        received: res.received,
        kept: res.rttsUs.length,
        mean_us: mean,
        min_us: res.rttsUs[0] ?? null,
        max_us: res.rttsUs[res.rttsUs.length - 1] ?? null,
        p90_us: percentile(res.rttsUs, 90),
        p999_us: percentile(res.rttsUs, 99.9),
      },
    };
  } finally {
    await killChild(server);
  }
}

/** Runs one bounded test on a built path. Never throws: a failure is a Sample with ok=false and the reason. */
export async function runTest(env: PathEnv, kind: TestKind, repeat: number, s: TestSettings): Promise<Sample> {
  const sample: Sample = { test: kind, repeat, seconds: s.seconds, ok: false, values: {}, raw: {}, counters: null };
  let iperfServer: ChildProcess | null = null;
  try {
    if (kind === 'latency') {
      const before = await snapshot(env, env.daemons.length > 0);
      const r = await latencyRun(env, s);
      const after = await snapshotAfter(env);
      sample.counters = countersBetween(env, before, after);
      sample.values = r.values;
      sample.raw = r.raw;
    } else {
      iperfServer = await startIperfServer(env.server, IPERF_PORT);
      const count =
        kind === 'tcp1' && s.perf && env.daemons.length > 0
          ? countSyscalls(
              s.perf,
              env.daemons.map((d) => d.pid),
            )
          : null;
      const before = await snapshot(env, env.daemons.length > 0);
      const t = await iperfRun(env, kind, s);
      const after = await snapshotAfter(env);
      const counted = count ? await count.stop() : null;
      if (counted) sample.syscalls = counted;
      sample.counters = countersBetween(env, before, after);
      sample.values = {
        ...t.values,
        ...(kind === 'tcp1' ? costValues(sample.counters, t.bytes) : {}),
        ...(counted ? syscallValues(counted, sample.counters, t.bytes) : {}),
      };
      sample.raw = { ...t.raw, ...costRaw(sample.counters, t.bytes) };
    }
    sample.ok = true;
  } catch (e) {
    sample.error = errorMessage(e).slice(0, 500);
  } finally {
    if (iperfServer) await killChild(iperfServer);
  }
  return sample;
}

// Cost figures for every bulk test are kept in raw (the summary takes them from tcp1 only).
function costRaw(c: SampleCounters, bytes: number): Record<string, number | null> {
  const v = costValues(c, bytes);
  return {
    cpu_daemon_s_per_gb: v.cpu_daemon_s_per_gb ?? null,
    cpu_kernel_s_per_gb: v.cpu_kernel_s_per_gb ?? null,
    syscalls_per_packet: v.syscalls_per_packet ?? null,
    copied_bytes_per_packet: v.copied_bytes_per_packet ?? null,
  };
}
