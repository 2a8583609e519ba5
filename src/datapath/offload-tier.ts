// The offload tier: 64 KiB super-packets through userspace instead of 1500-byte ones, as wireguard-go and Tailscale
// do. The TUN device carries a virtio_net_hdr (IFF_VNET_HDR) with TSO/USO and checksum offload negotiated
// (TUNSETOFFLOAD), the socket sends UDP_SEGMENT trains and receives UDP_GRO buffers, and C splits (GSO) and
// coalesces (GRO) TCP in between. TypeScript picks the route once per super-packet.
//
// Multi-queue (--queues N): the TUN is multi-queue; queue 0 runs here, queues 1..N-1 each in a worker thread
// (offload-worker.ts) with its own TUN queue and its own SO_REUSEPORT socket on the same port. Incoming datagrams
// pick their socket by the inner flow (a BPF program on the reuseport group: every datagram from a peer has the
// same 4-tuple, so the default hash would put them all in one socket); the TUN then hands each flow's outgoing
// packets to the queue that wrote its incoming ones, so a flow stays on one queue both ways. Each queue counts into its
// share of one SharedArrayBuffer; `counters` sums them. Per-peer counters: queue 0's live, the workers' from their
// latest report (every TRAFFIC_REPORT_MS), summed per peer.
//
// A worker that dies (an uncaught error in its thread) would leave its TUN queue and socket open, with the kernel
// still steering about 1/N of the flows into them: its fds are closed and the worker restarted with the current
// peers, at most RESTARTS_PER_WINDOW times per RESTART_WINDOW_MS; past that the tier reports a failure, which
// fails /healthz.
//
// The backend must open the TUN with vnetHdr (and multiQueue when queues > 1): see tunFlagsFor().
import { Worker } from 'node:worker_threads';
import { WeftError } from '../errors.js';
import * as native from '../native.js';
import type { Datapath, DatapathOptions, PeerTraffic, Tier } from './datapath.js';
import { disabledOffloads, probeTunOffloads } from './offload-config.js';
import { QueueRunner, tunMtu, type RunnerSetup } from './offload-runner.js';
import type { WorkerInit, WorkerReply, WorkerRequest, WirePeer } from './offload-worker.js';
import { PathState } from './path-state.js';
import type { Peer } from './peers.js';
import { WireguardTransform } from './wireguard.js';

/** How the backend should open the TUN for a tier: the offload tier needs the virtio header (and queues). */
export function tunFlagsFor(tier: Tier, queues = 1): number {
  return tier === 'offload' ? native.TUN_VNET_HDR | (queues > 1 ? native.TUN_MULTI_QUEUE : 0) : 0;
}

const RESTARTS_PER_WINDOW = 5;
const RESTART_WINDOW_MS = 60_000;

export class OffloadTier implements Datapath {
  readonly tier = 'offload' as const;
  private readonly path: PathState;
  private readonly runner: QueueRunner;
  private readonly workers = new Map<number, Worker>();
  /** Each worker's TUN queue and socket, by queue, from its 'ready'. */
  private readonly workerFds = new Map<number, number[]>();
  private readonly workerInit = new Map<number, WorkerInit>();
  private readonly log: DatapathOptions['log'];
  private peersMsg: WorkerRequest | null = null;
  private restartTimes: number[] = [];
  /** Worker restarts since start. */
  restarts = 0;
  private failed: string | null = null;
  private readonly shared: SharedArrayBuffer;
  private readonly perQueue: Float64Array[] = [];
  private readonly total = new Float64Array(native.COUNTER_COUNT);
  /** Each worker's latest per-peer report, by queue. */
  private readonly workerTraffic = new Map<number, PeerTraffic[]>();
  private closed = false;
  private readonly wireguard: WireguardTransform | null = null;

  constructor(opts: DatapathOptions) {
    const queues = opts.queues ?? 1;
    if (opts.encap.nativeId === null) {
      throw new WeftError(
        'WEFT_ERR_BACKEND',
        `the offload tier needs a native encap; "${opts.encap.name}" has none: use --tier batch`,
      );
    }
    const iff = native.tunGetIff(opts.tunFd);
    if (!(iff.flags & native.IFF_VNET_HDR)) {
      throw new WeftError(
        'WEFT_ERR_BACKEND',
        `offload tier: TUN ${iff.name} was opened without IFF_VNET_HDR (open it with tunFlagsFor('offload'))`,
      );
    }
    if (queues > 1 && !(iff.flags & native.IFF_MULTI_QUEUE)) {
      throw new WeftError(
        'WEFT_ERR_BACKEND',
        `offload tier: --queues ${queues} needs TUN ${iff.name} opened with IFF_MULTI_QUEUE`,
      );
    }
    this.shared = new SharedArrayBuffer(queues * native.COUNTER_COUNT * 8);
    for (let q = 0; q < queues; q++)
      this.perQueue.push(new Float64Array(this.shared, q * native.COUNTER_COUNT * 8, native.COUNTER_COUNT));
    const disabled = disabledOffloads();
    // TSO6 only when the queue routes inner IPv6: the runner opens its IPv6 socket on queue 0 of one, without
    // WireGuard (see setup below).
    const tun = probeTunOffloads(opts.tunFd, disabled, opts.ipv6 !== undefined && queues === 1 && !opts.wireguard);
    this.path = new PathState(opts, this.perQueue[0]);
    if (opts.wireguard) {
      if (queues > 1) {
        throw new WeftError('WEFT_ERR_BACKEND', 'backend wireguard runs one offload queue (--queues 1) for now');
      }
      this.wireguard = new WireguardTransform(opts.wireguard, this.path, tunMtu(iff.name), opts.log);
    }
    const setup: RunnerSetup = {
      bindAddress: opts.bindAddress,
      // Inner IPv6 on queue 0 only: worker queues get no IPv6 half yet (the backend keeps IPv6 off with --queues > 1).
      ...(opts.ipv6 && queues === 1 ? { ipv6: { bindAddress: opts.ipv6.bindAddress, mac: opts.ipv6.local.mac } } : {}),
      port: opts.port,
      reusePort: queues > 1,
      mtu: tunMtu(iff.name),
      tun,
      disabled,
      steerQueues: queues,
      wireguard: this.wireguard,
    };
    this.log = opts.log;
    this.runner = new QueueRunner(this.path, setup);
    opts.log.info(
      {
        device: iff.name,
        queues,
        mtu: setup.mtu,
        tunOffload: { csum: tun.csum, tso: tun.tso, tso6: tun.tso6, uso: tun.uso },
        udpSegment: this.runner.report.udpSegment,
        udpGro: this.runner.report.udpGro,
        gro: this.runner.report.gro,
        disabled: [...disabled],
      },
      'offload tier: offloads in use',
    );
    for (let q = 1; q < queues; q++) {
      const init: WorkerInit = {
        queue: q,
        tunName: iff.name,
        encapName: opts.encap.name,
        local: { mac: Uint8Array.from(opts.local.mac), vni: opts.local.vni },
        bindAddress: opts.bindAddress,
        port: opts.port,
        networkIp: opts.networkIp,
        networkPrefixLen: opts.networkPrefixLen,
        gatewayIp: opts.gatewayIp,
        mtu: setup.mtu,
        tun,
        disabled: [...disabled],
        counters: this.shared,
      };
      this.workerInit.set(q, init);
      this.spawnWorker(q);
    }
  }

  private spawnWorker(q: number): void {
    const w = new Worker(new URL('./offload-worker.js', import.meta.url), { workerData: this.workerInit.get(q) });
    w.on('message', (m: WorkerReply) => {
      if (m.type === 'traffic') this.workerTraffic.set(q, m.traffic);
      else if (m.type === 'error') this.log.error({ queue: q, err: m.message }, 'offload queue failed');
      else {
        this.workerFds.set(q, m.fds);
        this.log.debug({ queue: q }, 'offload queue up');
      }
    });
    w.on('error', (err) => this.log.error({ queue: q, err: err.message }, 'offload worker died'));
    w.on('exit', () => this.workerExited(q, w));
    w.unref();
    if (this.peersMsg) w.postMessage(this.peersMsg);
    this.workers.set(q, w);
  }

  private workerExited(q: number, w: Worker): void {
    if (this.workers.get(q) !== w) return;
    this.workers.delete(q);
    this.workerTraffic.delete(q);
    const fds = this.workerFds.get(q) ?? [];
    this.workerFds.delete(q);
    if (this.closed) return; // it closed its fds itself on 'close'
    // The thread is gone without 'close'; its fds are still the process's.
    for (const fd of fds) native.close(fd);
    const now = Date.now();
    this.restartTimes = this.restartTimes.filter((at) => now - at < RESTART_WINDOW_MS);
    if (this.restartTimes.length >= RESTARTS_PER_WINDOW) {
      this.failed = `offload queue ${q} died ${RESTARTS_PER_WINDOW + 1} times within ${RESTART_WINDOW_MS / 1000} s`;
      this.log.error({ queue: q }, `${this.failed}: not restarting it`);
      return;
    }
    this.restartTimes.push(now);
    this.restarts++;
    this.log.error({ queue: q, restarts: this.restarts }, 'offload worker exited: restarting it');
    this.spawnWorker(q);
  }

  /** Why the tier no longer forwards on every queue, or null. */
  failure(): string | null {
    return this.failed;
  }

  get counters(): Float64Array {
    if (this.perQueue.length === 1) return this.perQueue[0] as Float64Array;
    this.total.fill(0);
    for (const c of this.perQueue)
      for (let i = 0; i < c.length; i++) this.total[i] = (this.total[i] as number) + (c[i] as number);
    return this.total;
  }

  peerTraffic(): PeerTraffic[] {
    const mine = this.path.peerTraffic();
    if (this.workerTraffic.size === 0) return mine;
    // Only current peers: a worker's report may still hold one that left (its counts go with it, as on queue 0).
    const byPeer = new Map(mine.map((t) => [trafficKey(t), { ...t }]));
    for (const report of this.workerTraffic.values()) {
      for (const w of report) {
        const t = byPeer.get(trafficKey(w));
        if (t === undefined) continue;
        t.txPackets += w.txPackets;
        t.txBytes += w.txBytes;
        t.rxPackets += w.rxPackets;
        t.rxBytes += w.rxBytes;
      }
    }
    return [...byPeer.values()];
  }

  extraCounters(): Record<string, number> {
    return this.wireguard?.counterValues() ?? {};
  }

  queueCounters(): readonly Float64Array[] {
    return this.perQueue;
  }

  setPeers(peers: readonly Peer[]): void {
    this.path.setPeers(peers);
    this.wireguard?.setPeers(peers);
    const wire: WirePeer[] = peers.map((p) => ({
      net: p.net,
      prefixLen: p.prefixLen,
      publicIp: p.publicIp,
      port: p.port,
      mac: Uint8Array.from(p.encap.mac),
      vni: p.encap.vni,
      partialCsum: p.partialCsum === true,
    }));
    const msg: WorkerRequest = { type: 'peers', peers: wire };
    this.peersMsg = msg;
    for (const w of this.workers.values()) w.postMessage(msg);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.runner.close();
    this.wireguard?.close();
    const msg: WorkerRequest = { type: 'close' };
    for (const w of this.workers.values()) w.postMessage(msg);
  }
}

const trafficKey = (t: PeerTraffic): string => `${t.net}/${t.prefixLen}@${t.publicIp}`;
