// /healthz, /metrics (Prometheus text) and /status (JSON for `weft status`) for the daemon, on
// --healthz-ip:--healthz-port (127.0.0.1 by default: counters tell an observer about the traffic, so they are not
// published to the network unless asked).
//
//   /healthz  200 "ok" only while our lease is valid (not past its expiry) and the datapath runs; else 503
//   /metrics  datapath counters, lease TTL, peers with their lease TTLs, inner traffic per peer, peers sharing a
//             PublicIP, etcd reconnects, lease renewals/acquisitions; `?name=<family>` (repeatable) serves only those
//   /status   the same as one JSON document (StatusDoc)
import http from 'node:http';
import { Counter, Gauge, Registry } from 'prom-client';
import type { Logger } from '../log.js';
import type { QueueStatus } from '../backend/backend.js';
import type { PeerTtlSeries } from './labels.js';
import { secondsUntil } from '../lease/lease.js';

export interface PeerStatus {
  readonly subnet: string; // "10.5.7.0/24"
  readonly publicIp: string;
  readonly backendType: string;
  /** Seconds until the peer's lease expires; null for a reservation or when unknown. */
  readonly leaseSecondsLeft: number | null;
  /** A dual-stack or IPv6-only lease's IPv6 subnet and PublicIPv6. */
  readonly ipv6Subnet?: string;
  readonly publicIpv6?: string;
}

/** Inner packets and bytes exchanged with one peer, from the datapath's per-peer counters. */
export interface PeerTrafficStatus {
  readonly subnet: string;
  readonly publicIp: string;
  readonly txPackets: number;
  readonly txBytes: number;
  readonly rxPackets: number;
  readonly rxBytes: number;
}

export interface ControlStats {
  readonly etcdReconnects: number;
  readonly etcdOutages: number;
  readonly watchRestarts: number;
  readonly acquisitions: number;
  readonly losses: number;
  readonly renewals: number;
  readonly peerEvents: number;
}

/** What `GET /status` returns. */
export interface StatusDoc {
  readonly version: string;
  readonly healthy: boolean;
  readonly pid: number;
  readonly uptimeSeconds: number;
  readonly network: string;
  readonly backendType: string;
  readonly datapath: string; // e.g. userspace/batch/udp
  readonly tier: string;
  readonly encap: string;
  readonly device: string;
  readonly publicIp: string;
  readonly lease: {
    readonly subnet: string;
    readonly key: string;
    readonly secondsLeft: number | null;
    readonly ipv6Subnet?: string;
  } | null;
  /** With EnableIPv6: the IPv6 network, our PublicIPv6, and whether the datapath forwards IPv6 (else why not). */
  readonly ipv6?: {
    readonly network: string;
    readonly publicIpv6: string | null;
    readonly forwarded: boolean;
    readonly note?: string;
  };
  readonly peers: readonly PeerStatus[];
  /** Peers whose PublicIP another peer's lease also names (userspace tiers). */
  readonly peersSharingPublicIp?: number;
  readonly control: ControlStats;
  readonly counters: Readonly<Record<string, number>>;
  /** Offload tier with --queues > 1: packets per queue. */
  readonly queues?: readonly QueueStatus[];
  /** The daemon's process.memoryUsage(), bytes: where its RSS goes (V8's heap, Buffers and other external memory). */
  readonly memory?: MemoryStatus;
}

export interface MemoryStatus {
  readonly rss: number;
  readonly heapTotal: number;
  readonly heapUsed: number;
  readonly external: number;
  readonly arrayBuffers: number;
}

export interface MetricsSource {
  /** True when the lease is valid and the datapath runs. */
  healthy(): boolean;
  /** Datapath counters by name (packets, bytes, syscalls, drops by reason); monotonic while the datapath lives. */
  counters(): Record<string, number>;
  leaseSecondsLeft(): number | null;
  /** Peers the datapath forwards to. */
  peers(): number;
  /** Peers whose PublicIP another peer's lease also names, where the backend counts them (userspace tiers). */
  peersSharingPublicIp?(): number;
  /** Optional richer views; /metrics and /status show what is given. */
  peerLeaseTtls?(): Iterable<PeerTtlSeries>;
  peerTraffic?(): readonly PeerTrafficStatus[];
  control?(): ControlStats;
  status?(): StatusDoc;
}

const CONTROL_METRICS: readonly [keyof ControlStats, string, string][] = [
  ['etcdReconnects', 'weft_etcd_reconnects_total', 'times etcd became reachable again after an outage'],
  ['etcdOutages', 'weft_etcd_outages_total', 'times the lease loop found etcd unreachable'],
  ['watchRestarts', 'weft_peer_watch_restarts_total', 'peer watch restarts after a disconnect'],
  ['acquisitions', 'weft_lease_acquisitions_total', 'subnet leases acquired (the first and each re-acquisition)'],
  ['losses', 'weft_lease_losses_total', 'times our lease key was found gone or taken over'],
  ['renewals', 'weft_lease_renewals_total', 'lease renewals'],
  ['peerEvents', 'weft_peer_events_total', 'peer lease events (added, changed, removed) applied'],
];

/** The Prometheus registry behind /metrics (exported for tests). */
export function metricsRegistry(source: MetricsSource): Registry {
  const registry = new Registry();
  // The datapath's counters only grow while it runs; a counter reset() + inc() per scrape mirrors them exactly (a
  // restarted datapath starts again at 0, which Prometheus reads as a counter reset).
  new Counter({
    name: 'weft_datapath_total',
    help: 'datapath counters (packets, bytes, syscalls, copies, drops by reason)',
    labelNames: ['counter'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [name, value] of Object.entries(source.counters())) this.inc({ counter: name }, Math.max(0, value));
    },
  });
  new Gauge({
    name: 'weft_healthy',
    help: '1 while the lease is valid and the datapath runs (as /healthz)',
    registers: [registry],
    collect() {
      this.set(source.healthy() ? 1 : 0);
    },
  });
  new Gauge({
    name: 'weft_lease_ttl_seconds',
    help: 'seconds until our subnet lease expires',
    registers: [registry],
    collect() {
      const left = source.leaseSecondsLeft();
      if (left !== null) this.set(left);
    },
  });
  new Gauge({
    name: 'weft_peers',
    help: 'peers the datapath forwards to',
    registers: [registry],
    collect() {
      this.set(source.peers());
    },
  });
  if (source.peersSharingPublicIp) {
    const sharing = source.peersSharingPublicIp.bind(source);
    new Gauge({
      name: 'weft_peers_sharing_public_ip',
      help: "peers whose lease's PublicIP another peer's lease also names (each one's subnet is accepted from it)",
      registers: [registry],
      collect() {
        this.set(sharing());
      },
    });
  }
  if (source.peerTraffic) {
    const traffic = source.peerTraffic.bind(source);
    // Monotonic per peer while it stays a peer; a peer's series appear with its first packet and go when it leaves.
    for (const [name, help, tx, rx] of [
      [
        'weft_peer_packets_total',
        'inner packets sent to (tx) and accepted from (rx) each peer',
        'txPackets',
        'rxPackets',
      ],
      ['weft_peer_bytes_total', 'inner bytes sent to (tx) and accepted from (rx) each peer', 'txBytes', 'rxBytes'],
    ] as const) {
      new Counter({
        name,
        help,
        labelNames: ['subnet', 'public_ip', 'direction'],
        registers: [registry],
        collect() {
          this.reset();
          for (const p of traffic()) {
            this.inc({ subnet: p.subnet, public_ip: p.publicIp, direction: 'tx' }, p[tx]);
            this.inc({ subnet: p.subnet, public_ip: p.publicIp, direction: 'rx' }, p[rx]);
          }
        },
      });
    }
  }
  if (source.control) {
    const control = source.control.bind(source);
    for (const [field, name, help] of CONTROL_METRICS) {
      new Counter({
        name,
        help,
        registers: [registry],
        collect() {
          this.reset();
          this.inc(control()[field]);
        },
      });
    }
  }
  return registry;
}

const PEER_TTL = 'weft_peer_lease_ttl_seconds';

function peerTtlFamily(series: Iterable<PeerTtlSeries>): string {
  const now = Date.now();
  let text = `# HELP ${PEER_TTL} seconds until each peer's lease expires (-1: a reservation or unknown)\n`;
  text += `# TYPE ${PEER_TTL} gauge\n`;
  for (const s of series) {
    const left = s.expiresAt === null ? -1 : secondsUntil(s.expiresAt, now);
    text += `${PEER_TTL}{${s.labels}} ${left}\n`;
  }
  return text;
}

/**
 * The /metrics page: prom-client's families, then the per-peer lease TTLs written here. With `names` (the
 * `?name=` parameters of the request), only those families: a poller that wants one counter does not pay for
 * thousands of per-peer series.
 */
export async function metricsText(
  registry: Registry,
  source: MetricsSource,
  names?: ReadonlySet<string>,
): Promise<string> {
  const parts: string[] = [];
  if (names === undefined) parts.push(await registry.metrics());
  else {
    for (const name of names) {
      if (registry.getSingleMetric(name) !== undefined) parts.push(`${await registry.getSingleMetricAsString(name)}\n`);
    }
  }
  if (source.peerLeaseTtls && (names === undefined || names.has(PEER_TTL))) {
    parts.push(peerTtlFamily(source.peerLeaseTtls()));
  }
  return parts.join('\n');
}

export function startMetricsServer(host: string, port: number, source: MetricsSource, log: Logger): http.Server {
  const registry = metricsRegistry(source);
  const server = http.createServer((req, res) => {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://weft');
    } catch {
      res.writeHead(400).end();
      return;
    }
    const path = url.pathname;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/healthz') {
      const ok = source.healthy();
      res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' }).end(ok ? 'ok\n' : 'unhealthy\n');
      return;
    }
    if (path === '/metrics') {
      const names = url.searchParams.getAll('name');
      metricsText(registry, source, names.length > 0 ? new Set(names) : undefined).then(
        (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
        (err: unknown) => res.writeHead(500).end(String(err)),
      );
      return;
    }
    if (path === '/status' && source.status) {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(source.status()) + '\n');
      return;
    }
    res.writeHead(404).end();
  });
  server.on('error', (err) => log.error({ err, host, port }, 'metrics listener failed'));
  server.listen(port, host, () => log.info({ host, port }, 'serving /healthz, /metrics and /status'));
  return server;
}
