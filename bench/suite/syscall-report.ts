// report.md's syscall section: what the daemons really call during TCP 1 stream (perf, syscalls.ts), beside what
// weft's own counters say, per TUN packet, per super-packet on the offload tier, and per MB for every daemon path.
import { METRICS, type BenchResult, type MetricKey, type PathResult } from './schema.js';

function median(xs: number[]): number | null {
  if (xs.length === 0) return null;
  const v = [...xs].sort((a, b) => a - b);
  const m = Math.floor(v.length / 2);
  return v.length % 2 === 1 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
}

/** The largest kinds per unit (TUN packet for weft, MB for the peers), medians over the TCP 1-stream samples. */
export function kindsPer(p: PathResult, per: 'packet' | 'mb', top = 5): { kind: string; value: number }[] {
  const perKind = new Map<string, number[]>();
  for (const s of p.samples) {
    if (s.test !== 'tcp1' || !s.ok || !s.syscalls) continue;
    const unit =
      per === 'packet' ? (s.counters?.datapath?.['tun_rx_packets'] ?? 0) : (s.raw['received_bytes'] ?? 0) / 1e6;
    if (!(unit > 0)) continue;
    for (const [k, n] of Object.entries(s.syscalls.byKind)) {
      const list = perKind.get(k) ?? [];
      list.push(n / unit);
      perKind.set(k, list);
    }
  }
  return [...perKind.entries()]
    .map(([kind, xs]) => ({ kind, value: median(xs) ?? 0 }))
    .sort((a, b) => b.value - a.value)
    .slice(0, top);
}

function med(p: PathResult, k: MetricKey): string {
  const s = p.summary[k];
  return s ? s.median.toFixed(METRICS[k].digits) : '';
}

export function renderSyscallSection(r: BenchResult): string {
  const paths = r.paths.filter((p) => p.samples.some((s) => s.syscalls));
  if (paths.length === 0) return '';
  const out = ['## Syscalls, counted', ''];
  out.push(
    "`perf stat` counted every syscall of the path's daemons (weft's, or a peer's processes) during each " +
      'TCP 1-stream test from the kernel tracepoints (`raw_syscalls:sys_enter` and `syscalls:sys_enter_<name>`), ' +
      "medians over the repeats. *weft's counters* are the daemons' own (TUN reads and writes, socket sends and " +
      'receives), which ' +
      "count only the datapath's I/O calls; *perf, I/O kinds* is read/write/readv/writev/send*/recv* from the " +
      "tracepoints, their cross-check (also holding the control plane's etcd and /metrics sockets, a few per " +
      'second). *Per TUN packet* divides by every packet read from a TUN, ACKs included; on the offload tier *per ' +
      'super-packet* divides by the TSO super-packets among them (up to 64 KiB each). The kernel paths and the ' +
      "underlay have no daemon: the only syscalls there are iperf3's, the same on every path.",
  );
  out.push('');
  const header = [
    'path',
    "per TUN packet: weft's counters",
    'perf, I/O kinds',
    'perf, every syscall',
    "per super-packet: weft's counters",
    'perf, every syscall',
    'every syscall per MB (perf)',
    'largest kinds (per TUN packet; peers: per MB)',
  ];
  out.push(`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`);
  for (const p of paths) {
    const per = p.kind === 'weft-userspace' ? 'packet' : 'mb';
    const kinds = kindsPer(p, per)
      .map((k) => `${k.kind} ${k.value.toFixed(per === 'packet' ? 2 : 1)}`)
      .join(', ');
    out.push(
      `| ${[
        p.name,
        med(p, 'syscalls_per_packet'),
        med(p, 'perf_io_syscalls_per_packet'),
        med(p, 'perf_syscalls_per_packet'),
        med(p, 'syscalls_per_superpacket'),
        med(p, 'perf_syscalls_per_superpacket'),
        med(p, 'perf_syscalls_per_mb'),
        kinds,
      ].join(' | ')} |`,
    );
  }
  out.push('');
  return out.join('\n');
}
