// The scale run: a few real weft hosts and thousands of simulated ones, measured as the simulated ones arrive.
//
//   bridge netns w<id>-br: etcd 198.18.<id>.254:2379, the loader (loader-main.js: creates leases, reads etcd /metrics)
//   h1..hR: weft daemon (udp, /metrics on 127.0.0.1:9471) + a prober (prober-main.js) each
//   simulated hosts: only leases, 10.100.0.0/24 + i, PublicIP 198.18.<id>.100-249 (nobody answers; nothing leaves)
//
//   for each size (cumulative: 100 -> 1,000 -> 5,000 leases):
//   1. bulk load up to the size; time until every daemon's weft_peers counts every other lease (convergence), and
//      the daemons' CPU seconds spent absorbing it
//   2. probes, one at a time: create a lease, then each prober sends a datagram into its host's TUN towards the new
//      subnet until the daemon's udp_tx_packets moves (the route is live); latency = live - created, on the one
//      CLOCK_MONOTONIC every process shares. etcd's Range and LeaseTimeToLive counts across the probes tell whether
//      a watch event costs a re-list.
//   3. RSS (VmRSS, VmHWM) and idle CPU of each daemon with that many peers
//   4. a new host joins: time until its subnet.env is written and until it forwards to every peer
//   then, without daemons: RouteTable.lookup ns against the number of routes, and ip -batch programming times.
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { errorMessage, ConfigError } from '../../src/errors.js';
import { formatIPv4 } from '../../src/ip/subnet.js';
import { type Logger, silentLogger } from '../../src/log.js';
import { Cluster, PACKAGE_ROOT, PREFIX } from '../../testbed/cluster.js';
import { killChild } from '../../testbed/exec.js';
import { SCALE_NETWORK, probeSubnet } from './leases.js';
import { type Json, LineClient } from './lines.js';
import { type KernelBatchResult, benchKernelBatch } from './kernel-batch.js';
import { type LookupResult, benchLookup } from './lookup-bench.js';
import { parsePrometheus, percentile, procSample, sample } from './observe.js';
import { sleep } from '../../src/util/sleep.js';

export const METRICS_PORT = 9471;

export interface ScaleOptions {
  /** Simulated leases to reach, ascending (loaded cumulatively). Default [1000, 5000]. */
  sizes?: number[];
  /** Real weft hosts. Default 3. */
  realHosts?: number;
  /** Probe leases per size (0: skip the route-live measurement). Default 20. */
  probes?: number;
  /** Route counts for the lookup micro-benchmark ([]: skip). Default [10, 1000, 5000]. */
  lookupSizes?: number[];
  /** Peer counts for the ip -batch timing ([]: skip). Default: sizes. */
  kernelSizes?: number[];
  /** Also time a new host joining at each size. Default true. */
  join?: boolean;
  /** Bound on each convergence wait. Default 300 s. */
  convergeTimeoutMs?: number;
  /** Seconds of idle CPU sampling per size. Default 10. */
  idleSeconds?: number;
  log?: Logger;
}

export interface DaemonMemory {
  heapUsedMB: number;
  heapTotalMB: number;
  externalMB: number;
  arrayBuffersMB: number;
}

export interface DaemonCost {
  host: string;
  pid: number;
  peers: number;
  rssMB: number;
  hwmMB: number;
  /** The daemon's process.memoryUsage() after the probes (its /status), MB; null when it did not answer. */
  memory?: DaemonMemory | null;
  /** CPU seconds the daemon spent from the start of the bulk load until it had every lease. */
  cpuSecondsToConverge: number;
  /** CPU while nothing changes, percent of one core. */
  idleCpuPercent: number;
}

export interface ProbeStats {
  count: number;
  failed: number;
  /** Per probe and daemon, ms. */
  latenciesMs: number[];
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

export interface EtcdCallCounts {
  /** Range RPCs etcd served (grpc_server_handled_total), and etcd_debugging_mvcc_range_total. */
  rangeRpcs: number;
  mvccRanges: number;
  leaseTimeToLive: number;
  txn: number;
}

export interface SizeResult {
  /** Simulated leases in etcd (created so far). */
  simulated: number;
  /** Every subnet key in etcd (simulated, probes, real hosts) when the daemons' costs were read (before the join). */
  keysInEtcd: number;
  bulkLoadMs: number;
  created: number;
  skipped: number;
  /** From the start of the bulk load until every daemon counted every other lease; null: not within the bound. */
  convergeMs: number | null;
  daemons: DaemonCost[];
  probes: ProbeStats | null;
  /** etcd calls during the probes (all daemons together), and per probe per daemon. */
  etcdDuringProbes: (EtcdCallCounts & { perProbePerDaemon: EtcdCallCounts }) | null;
  /** A new host at this size: ms to its subnet.env, ms until it counts every peer; null when skipped or failed. */
  join: { leaseMs: number; convergedMs: number | null; note?: string } | null;
}

export interface ScaleResult {
  startedAt: string;
  finishedAt: string;
  machine: { cpus: number; kernel: string; node: string };
  network: typeof SCALE_NETWORK;
  realHosts: number;
  sizes: SizeResult[];
  lookup: LookupResult[];
  kernel: KernelBatchResult[];
  errors: string[];
}

const DIST = (f: string): string => join(PACKAGE_ROOT, 'dist', 'bench', 'scale', f);

function etcdCounts(text: string): EtcdCallCounts {
  const m = parsePrometheus(text);
  return {
    rangeRpcs: sample(m, 'grpc_server_handled_total', 'grpc_method="Range"') ?? 0,
    mvccRanges: sample(m, 'etcd_debugging_mvcc_range_total') ?? 0,
    leaseTimeToLive: sample(m, 'grpc_server_handled_total', 'grpc_method="LeaseTimeToLive"') ?? 0,
    txn: sample(m, 'grpc_server_handled_total', 'grpc_method="Txn"') ?? 0,
  };
}

function diffCounts(a: EtcdCallCounts, b: EtcdCallCounts): EtcdCallCounts {
  return {
    rangeRpcs: b.rangeRpcs - a.rangeRpcs,
    mvccRanges: b.mvccRanges - a.mvccRanges,
    leaseTimeToLive: b.leaseTimeToLive - a.leaseTimeToLive,
    txn: b.txn - a.txn,
  };
}

function scaleCounts(c: EtcdCallCounts, by: number): EtcdCallCounts {
  const r = (x: number): number => Math.round((x / by) * 100) / 100;
  return {
    rangeRpcs: r(c.rangeRpcs),
    mvccRanges: r(c.mvccRanges),
    leaseTimeToLive: r(c.leaseTimeToLive),
    txn: r(c.txn),
  };
}

/** Runs the whole measurement (root, built dist/); the testbed is removed before it returns, also on failure. */
export async function runScale(opts: ScaleOptions = {}): Promise<ScaleResult> {
  const sizes = [...(opts.sizes ?? [1000, 5000])].sort((a, b) => a - b);
  const realHosts = opts.realHosts ?? 3;
  const log = opts.log ?? silentLogger;
  if (sizes.some((s) => !Number.isInteger(s) || s < 1 || s > 25_000)) throw new ConfigError('sizes must be 1..25000');
  if (!Number.isInteger(realHosts) || realHosts < 1 || realHosts > 20) throw new ConfigError('realHosts must be 1..20');
  for (const f of ['loader-main.js', 'prober-main.js']) {
    if (!existsSync(DIST(f))) throw new ConfigError(`${DIST(f)} is missing: build first (npx tsc -p .)`);
  }
  const started = new Date();
  const result: ScaleResult = {
    startedAt: started.toISOString(),
    finishedAt: '',
    machine: {
      cpus: (await import('node:os')).cpus().length,
      kernel: (await import('node:os')).release(),
      node: process.version,
    },
    network: SCALE_NETWORK,
    realHosts,
    sizes: [],
    lookup: [],
    kernel: [],
    errors: [],
  };

  // The micro-benchmark first, while the machine is quiet.
  for (const n of opts.lookupSizes ?? [10, 1000, 5000]) {
    log.info({ routes: n }, 'scale: route lookup micro-benchmark');
    result.lookup.push(benchLookup(n));
  }

  const cluster = await Cluster.create({ hosts: realHosts, network: { ...SCALE_NETWORK } });
  const run = new ScaleRun(cluster, opts, log, result.errors);
  try {
    await run.start(realHosts);
    for (const size of sizes) result.sizes.push(await run.measure(size));
    run.closeHelpers();
    // ip -batch programming, in h1 (its daemon is userspace and leaves flannel.1 alone).
    const h1 = cluster.tb.host(1);
    for (const n of opts.kernelSizes ?? sizes) {
      log.info({ routes: n }, 'scale: ip -batch');
      try {
        result.kernel.push(await benchKernelBatch(h1.ns, 'eth0', h1.ip, cluster.tb.id, n));
      } catch (e) {
        result.errors.push(`ip -batch ${n}: ${errorMessage(e)}`);
      }
    }
  } finally {
    await run.stop();
    await cluster.destroy();
  }
  result.finishedAt = new Date().toISOString();
  return result;
}

/** The real hosts of a scale run with their probers, and the loader of simulated leases in the bridge namespace. */
class ScaleRun {
  private readonly children: ChildProcess[] = [];
  private readonly flags = [`--healthz-port=${METRICS_PORT}`, '--log-level=warn'];
  private readonly probes: number;
  private readonly convergeTimeoutMs: number;
  private loader!: LineClient;
  private probers: LineClient[] = [];
  private pids: number[] = [];
  /** Simulated leases created so far, and probe leases. */
  private loaded = 0;
  private probeIndex = 0;

  constructor(
    private readonly cluster: Cluster,
    private readonly opts: ScaleOptions,
    private readonly log: Logger,
    private readonly errors: string[],
  ) {
    this.probes = opts.probes ?? 20;
    this.convergeTimeoutMs = opts.convergeTimeoutMs ?? 300_000;
  }

  async start(realHosts: number): Promise<void> {
    for (let n = 1; n <= realHosts; n++) await this.cluster.startDaemon(n, this.flags);
    this.loader = this.spawnHelper(
      this.cluster.tb.bridgeNs,
      [DIST('loader-main.js'), this.cluster.endpoint, PREFIX, String(this.cluster.tb.id)],
      'loader',
    );
    this.probers = Array.from({ length: realHosts }, (_, i) => this.prober(i + 1));
    this.pids = Array.from({ length: realHosts }, (_, i) => this.cluster.daemons.get(i + 1)!.child.pid!);
  }

  closeHelpers(): void {
    this.loader.close();
    for (const p of this.probers) p.close();
  }

  async stop(): Promise<void> {
    await Promise.all(this.children.map((c) => killChild(c)));
  }

  /** Steps 1 to 4 of the header for one size. */
  async measure(size: number): Promise<SizeResult> {
    this.log.info({ size }, 'scale: bulk load');
    const cpu0 = this.pids.map((p) => procSample(p).cpuSeconds);
    const t0 = performance.now();
    const bulk = await this.loader.request(
      { op: 'bulk', from: this.loaded, count: size - this.loaded, concurrency: 32, ttl: 7200 },
      600_000,
    );
    const bulkLoadMs = performance.now() - t0;
    this.loaded = size;
    const keys = await this.keyCount();
    const converged = await this.waitConverged(this.probers, keys - 1);
    const convergeMs = converged ? performance.now() - t0 : null;
    const cpu1 = this.pids.map((p) => procSample(p).cpuSeconds);
    if (!converged) this.errors.push(`size ${size}: daemons did not converge within ${this.convergeTimeoutMs} ms`);

    const { probes, etcdDuringProbes } = this.probes > 0 ? await this.probe(size) : NO_PROBES;
    const cpuToConverge = cpu1.map((c, i) => c - cpu0[i]!);
    const daemons = await this.idleCost(cpuToConverge);
    const keysInEtcd = await this.keyCount();
    const join = this.opts.join !== false ? await this.join(size) : null;
    this.log.info(
      { size, convergeMs, p99: probes?.p99Ms, rssMB: daemons.map((d) => d.rssMB.toFixed(1)) },
      'scale: size done',
    );
    return {
      simulated: this.loaded,
      keysInEtcd,
      bulkLoadMs,
      created: Number(bulk.created),
      skipped: Number(bulk.skipped),
      convergeMs,
      daemons,
      probes,
      etcdDuringProbes,
      join,
    };
  }

  /** Probe leases, one at a time: how long until each daemon forwards to the new subnet, and what etcd served. */
  private async probe(size: number): Promise<Pick<SizeResult, 'probes' | 'etcdDuringProbes'>> {
    this.log.info({ size, probes: this.probes }, 'scale: probes');
    const e0 = await this.etcdMetrics();
    const lat: number[] = [];
    let failed = 0;
    for (let k = 0; k < this.probes; k++) {
      const i = this.probeIndex++;
      const created = await this.loader.request({ op: 'probe', i, ttl: 7200 });
      if (created.ok !== true) {
        failed += this.probers.length;
        continue;
      }
      const createdAt = BigInt(String(created.createdAtNs));
      const dst = formatIPv4(probeSubnet(i).ip + 5);
      const answers = await Promise.all(
        this.probers.map((p) =>
          p
            .request({ op: 'probe', dst, timeoutMs: 15_000, intervalMs: 5 }, 30_000)
            .catch((): Json => ({ live: false })),
        ),
      );
      for (const a of answers) {
        if (a.live === true) lat.push(Number(BigInt(String(a.liveAtNs)) - createdAt) / 1e6);
        else failed++;
      }
    }
    const d = diffCounts(e0, await this.etcdMetrics());
    return {
      etcdDuringProbes: { ...d, perProbePerDaemon: scaleCounts(d, this.probes * this.probers.length) },
      probes: {
        count: this.probes,
        failed,
        latenciesMs: lat,
        p50Ms: percentile(lat, 50),
        p99Ms: percentile(lat, 99),
        maxMs: Math.max(...lat),
      },
    };
  }

  /** Each daemon at rest with this many peers: RSS, and CPU over idleSeconds. */
  private async idleCost(cpuToConverge: number[]): Promise<DaemonCost[]> {
    const idle0 = this.pids.map((p) => procSample(p));
    await sleep((this.opts.idleSeconds ?? 10) * 1000);
    const idle1 = this.pids.map((p) => procSample(p));
    const daemons: DaemonCost[] = [];
    for (let i = 0; i < this.pids.length; i++) {
      const s = idle1[i]!;
      daemons.push({
        host: `h${i + 1}`,
        pid: this.pids[i]!,
        peers: await this.peersOf(this.probers[i]!).catch(() => -1),
        rssMB: s.rssBytes / 2 ** 20,
        hwmMB: s.hwmBytes / 2 ** 20,
        memory: await this.memoryOf(this.probers[i]!).catch(() => null),
        cpuSecondsToConverge: cpuToConverge[i]!,
        idleCpuPercent: ((s.cpuSeconds - idle0[i]!.cpuSeconds) / ((s.atMs - idle0[i]!.atMs) / 1000)) * 100,
      });
    }
    return daemons;
  }

  /** A new host joins this big a network; it keeps its lease when it stops, one more peer from then on. */
  private async join(size: number): Promise<SizeResult['join']> {
    this.log.info({ size }, 'scale: a host joins');
    try {
      const h = await this.cluster.tb.addHost();
      const want = await this.keyCount();
      const j0 = performance.now();
      await this.cluster.startDaemon(h.n, this.flags, this.convergeTimeoutMs);
      const leaseMs = performance.now() - j0;
      const p = this.prober(h.n);
      // It created one key: it sees the `want` that were there before.
      const ok = await this.waitConverged([p], want);
      p.close();
      // SIGTERM keeps its lease.
      await this.cluster.stopDaemon(h.n);
      return { leaseMs, convergedMs: ok ? performance.now() - j0 : null };
    } catch (e) {
      this.errors.push(`size ${size}: join: ${errorMessage(e)}`);
      return { leaseMs: Number.NaN, convergedMs: null, note: errorMessage(e) };
    }
  }

  private spawnHelper(ns: string, argv: string[], name: string): LineClient {
    const c = this.cluster.tb.spawn(ns, [process.execPath, ...argv], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.children.push(c);
    return new LineClient(c, name);
  }

  private prober(n: number): LineClient {
    return this.spawnHelper(this.cluster.tb.host(n).ns, [DIST('prober-main.js'), String(METRICS_PORT)], `prober h${n}`);
  }

  private async etcdMetrics(): Promise<EtcdCallCounts> {
    const r = await this.loader.request({ op: 'metrics', url: `${this.cluster.endpoint}/metrics` });
    return etcdCounts(String(r.text));
  }

  private async keyCount(): Promise<number> {
    // etcdctl 3.4 has no --count-only; a range with limit 1 still reports the total count.
    const out = await this.cluster.etcdctl([
      'get',
      `${PREFIX}/subnets/`,
      '--prefix',
      '--keys-only',
      '--limit=1',
      '-w',
      'json',
    ]);
    return Number((JSON.parse(out) as { count?: number }).count ?? 0);
  }

  private async memoryOf(p: LineClient): Promise<DaemonMemory | null> {
    const m = (await p.request({ op: 'memory' })).memory as Record<string, number> | null;
    if (m === null) return null;
    const mb = (k: string): number => Number(m[k]) / 2 ** 20;
    return {
      heapUsedMB: mb('heapUsed'),
      heapTotalMB: mb('heapTotal'),
      externalMB: mb('external'),
      arrayBuffersMB: mb('arrayBuffers'),
    };
  }

  private async peersOf(p: LineClient): Promise<number> {
    return Number((await p.request({ op: 'peers' })).peers);
  }

  /** Until every daemon counts every key but its own (`want`), at most convergeTimeoutMs. */
  private async waitConverged(clients: LineClient[], want: number): Promise<boolean> {
    const end = Date.now() + this.convergeTimeoutMs;
    while (Date.now() < end) {
      const seen = await Promise.all(clients.map((p) => this.peersOf(p).catch(() => -1)));
      if (seen.every((s) => s >= want)) return true;
      await sleep(200);
    }
    return false;
  }
}

const NO_PROBES: Pick<SizeResult, 'probes' | 'etcdDuringProbes'> = { probes: null, etcdDuringProbes: null };
