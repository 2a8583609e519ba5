// `weft status`: asks a running daemon for GET /status on its --healthz-ip:--healthz-port and prints its lease,
// tier, encap, peers and counters as tables (--json: the document as it came).
import { errorMessage, ConfigError } from '../errors.js';
import type { StatusDoc } from '../metrics/server.js';
import { formatTable } from '../util/table.js';

export interface StatusOptions {
  readonly healthzIp: string;
  readonly healthzPort: number;
  readonly json: boolean;
  readonly all: boolean; // show zero counters too
}

export async function fetchStatus(ip: string, port: number, timeoutMs = 5000): Promise<StatusDoc> {
  const url = `http://${ip.includes(':') ? `[${ip}]` : ip}:${port}/status`;
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  } catch (e) {
    const cause = (e as { cause?: unknown }).cause;
    throw new ConfigError(
      `no weft daemon answers at ${url}: ${errorMessage(cause ?? e)} (start it with --healthz-port=${port})`,
    );
  }
  if (!res.ok) throw new ConfigError(`${url}: HTTP ${res.status} (is this a weft daemon of this version?)`);
  return (await res.json()) as StatusDoc;
}

function ttl(s: number | null): string {
  if (s === null) return 'reserved';
  if (s <= 0) return 'expired';
  if (s < 120) return `${Math.round(s)}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  return `${(s / 3600).toFixed(1)}h`;
}

function num(n: number): string {
  return Number.isInteger(n) ? n.toLocaleString('en-US') : n.toFixed(1);
}

/** The human form of a status document. */
export function formatStatus(doc: StatusDoc, all = false): string {
  const out: string[] = [];
  out.push(
    formatTable(
      ['field', 'value'],
      [
        ['health', doc.healthy ? 'healthy' : 'UNHEALTHY (lease expired or datapath down)'],
        ['version', `${doc.version} (pid ${doc.pid}, up ${doc.uptimeSeconds}s)`],
        ['network', doc.network],
        ['subnet', doc.lease ? `${doc.lease.subnet} (lease ${ttl(doc.lease.secondsLeft)} left)` : '(no lease)'],
        ['public ip', doc.publicIp],
        ...ipv6Rows(doc),
        ['datapath', doc.datapath],
        ['tier', doc.tier],
        ['encap', doc.encap],
        ['device', doc.device],
        [
          'etcd',
          `${doc.control.etcdOutages} outages, ${doc.control.etcdReconnects} reconnects, ` +
            `${doc.control.watchRestarts} watch restarts`,
        ],
        [
          'lease events',
          `${doc.control.acquisitions} acquisitions, ${doc.control.renewals} renewals, ${doc.control.losses} losses`,
        ],
      ],
    ),
  );
  const peers = [...doc.peers].sort((a, b) => a.subnet.localeCompare(b.subnet, 'en', { numeric: true }));
  const v6 = peers.some((p) => p.ipv6Subnet !== undefined);
  out.push(
    `peers (${peers.length}):\n` +
      (peers.length === 0
        ? '  (none)\n'
        : formatTable(
            ['subnet', 'public ip', ...(v6 ? ['ipv6 subnet', 'public ipv6'] : []), 'backend', 'lease'],
            peers.map((p) => [
              p.subnet,
              p.publicIp,
              ...(v6 ? [p.ipv6Subnet ?? '-', p.publicIpv6 ?? '-'] : []),
              p.backendType,
              ttl(p.leaseSecondsLeft),
            ]),
          )),
  );
  const counters = Object.entries(doc.counters).filter(([, v]) => all || v !== 0);
  const traffic = counters.filter(([k]) => !k.startsWith('drop_'));
  const drops = counters.filter(([k]) => k.startsWith('drop_'));
  out.push(
    'counters:\n' +
      (traffic.length === 0
        ? '  (all zero)\n'
        : formatTable(
            ['counter', 'value'],
            traffic.map(([k, v]) => [k, num(v)]),
          )),
  );
  out.push(
    'drops by reason:\n' +
      (drops.length === 0
        ? '  (none)\n'
        : formatTable(
            ['reason', 'packets'],
            drops.map(([k, v]) => [k.slice(5), num(v)]),
          )),
  );
  if (doc.queues) {
    out.push(
      'queues:\n' +
        formatTable(
          ['queue', 'tun rx', 'udp tx', 'udp rx', 'tun tx'],
          doc.queues.map((q) => [
            String(q.queue),
            num(q.tunRxPackets),
            num(q.udpTxPackets),
            num(q.udpRxPackets),
            num(q.tunTxPackets),
          ]),
        ),
    );
  }
  return out.join('\n');
}

/** The IPv6 half of a dual-stack daemon, and whether its datapath forwards it. */
function ipv6Rows(doc: StatusDoc): string[][] {
  const v6 = doc.ipv6;
  if (v6 === undefined) return [];
  return [
    ['ipv6 network', v6.network],
    ['ipv6 subnet', doc.lease?.ipv6Subnet ?? '(no lease)'],
    ['public ipv6', v6.publicIpv6 ?? '-'],
    ['ipv6 forwarded', v6.forwarded ? 'yes' : `NO: ${v6.note ?? 'not by this datapath'}`],
  ];
}

export async function printStatus(o: StatusOptions): Promise<void> {
  const doc = await fetchStatus(o.healthzIp, o.healthzPort);
  process.stdout.write(o.json ? JSON.stringify(doc, null, 2) + '\n' : formatStatus(doc, o.all));
  if (!doc.healthy) process.exitCode = 1;
}
