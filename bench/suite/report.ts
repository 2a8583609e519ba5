// report.md and the SVG charts of a bench run, from its BenchResult alone (so an old results.json can be rendered
// again). Tables read like flannel's backend comparison (UDP vs VXLAN vs host-gw) with every weft tier/encap beside
// them, and every figure carries its ratio to kernel VXLAN measured in the same run.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatTable } from '../../src/util/table.js';
import { METRICS, encryptionOf, type BenchResult, type MetricKey, type PathResult, type Summary } from './schema.js';
import { renderBarChart, type Bar, type BarGroup } from './svg.js';
import { FAST_PROFILE_CHART, PROFILE_CHART, renderProfileChart, renderProfileSection } from './profile-report.js';
import { renderLoadSection } from './load-report.js';
import { renderSyscallSection } from './syscall-report.js';

/** The copies of an encrypting one-packet-per-syscall peer (nebula, tinc): what their code does, not measured. */
const ENCRYPTING_DGRAM =
  "As weft's dgram tier (four kernel copies, one packet per read/write) plus one encryption and one decryption " +
  'pass over each byte.';

/**
 * Where each path copies packet bytes: the kernel at the four boundary crossings (TUN read, socket send, socket
 * receive, TUN write), and user space (the model the counters, kernel and user, are read against).
 */
export const COPY_MODEL: Record<string, string> = {
  underlay: "No overlay: the application's socket copies only (iperf3 send and receive); nothing forwards.",
  'kernel-vxlan':
    'None in user space. The kernel encapsulates on the sending host (flannel.1 -> eth0) and decapsulates on the ' +
    "receiving one, moving socket buffers by reference; the only copies are the applications' own.",
  'host-gw': "None in user space: plain kernel routing via the peer's underlay address, no encapsulation.",
  'weft-kernel-vxlan': 'As kernel-vxlan: weft only programs the devices, routes, neighbours and FDB.',
  dgram:
    'All four kernel copies of every packet, one syscall each: TUN read (kernel->user), socket send (user->kernel, ' +
    'with the outer header), socket receive on the peer (kernel->user), TUN write (user->kernel). Expect ~4 ' +
    "syscalls and ~4x the packet size copied per packet. No user-space copy in weft's code: the encap header is " +
    'written in front of the packet in the read buffer, and a received datagram goes to TUN from where Node put it.',
  batch:
    'The same four kernel copies per packet, but the socket side moves up to 64 packets per sendmmsg/recvmmsg, so ' +
    'syscalls per packet fall below 4 while bytes copied per packet stay ~4x the packet size (TUN I/O is still one ' +
    'packet per read/write). No user-space copy: encap and decap work in place in the slots.',
  offload:
    'The four kernel copies per super-packet (up to 64 KiB of TCP): TUN read of a TSO super-packet with its virtio ' +
    'header, one UDP_SEGMENT send, one UDP_GRO receive, one TUN write of the coalesced packet; syscalls per wire ' +
    'packet fall far below 1 while kernel copies per byte stay ~4. No user-space copy of payload: GSO builds each ' +
    "segment's headers in a header area and the send gathers the payload from the TUN read buffer; GRO gathers the " +
    'received segments into one writev.',
  'offload-q2':
    'As offload, split over two queues (TUN queue, socket and worker thread each); received datagrams pick their ' +
    'socket by inner flow, so each flow stays on one queue both ways.',
  // The peers have no counters; this is what their code does (not measured here).
  'wireguard-go':
    "As weft's dgram tier (TUN read, UDP send, UDP receive, TUN write: four copies, one packet per syscall; this " +
    "release predates wireguard-go's batched I/O and TUN offloads) plus one encryption and one decryption pass over " +
    'each byte.',
  nebula: ENCRYPTING_DGRAM,
  tinc: ENCRYPTING_DGRAM,
};

export function copyModelFor(name: string): string {
  if (COPY_MODEL[name]) return COPY_MODEL[name];
  const tier = name.split('/')[0] ?? '';
  return COPY_MODEL[tier] ?? '';
}

function fmtNum(v: number, digits: number): string {
  return v.toLocaleString('en-US', {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
    useGrouping: false,
  });
}

/** "10.60 ±4%": the median and half the min..max range relative to it (omitted with one repeat). */
function cell(s: Summary | undefined, digits: number): string {
  if (!s) return '-';
  // a spread relative to a median that rounds to zero says nothing
  const pm = s.n > 1 && Math.abs(s.median) >= 10 ** -digits ? ` ±${Math.round((s.spread * 100) / 2)}%` : '';
  return fmtNum(s.median, digits) + pm;
}

function ratio(v: number | null | undefined): string {
  if (v === null || v === undefined) return '-';
  return `${v >= 10 ? v.toFixed(1) : v.toFixed(2)}x`;
}

function metric(p: PathResult, k: MetricKey): string {
  return cell(p.summary[k], METRICS[k].digits);
}

/** How the sockets' buffers were set for the run (sockbuf.ts). */
function socketBufferSentence(r: BenchResult): string {
  const b = r.settings.socketBuffers;
  if (!b)
    return "Socket buffers: the machine's defaults, weft's sockets forced to 8 MiB (results from before the option).";
  const mib = (x: number): string => `${(x / 2 ** 20).toFixed(x % 2 ** 20 === 0 ? 0 : 1)} MiB`;
  return b.mode === 'equal'
    ? `Socket buffers, like for like: for the run the machine's net.core.rmem_default/wmem_default were ` +
        `${mib(b.during.rmem_default)} and rmem_max/wmem_max ${mib(b.during.rmem_max)} (put back to ` +
        `${mib(b.before.rmem_default)} / ${mib(b.before.rmem_max)} after), so the peers' and the kernel VXLAN ` +
        'socket get the buffers weft forces on its own (SO_RCVBUFFORCE 8 MiB, which the kernel books as 16); ' +
        '*overlay socket rcvbuf* is what `ss -uam` showed in the host namespaces once the path was up.'
    : `Socket buffers: the machine's defaults (net.core.rmem_default ${mib(b.before.rmem_default)}) for every ` +
        "socket but weft's, which forces 8 MiB (SO_RCVBUFFORCE; the kernel books 16): the peers and the kernel " +
        'VXLAN socket run with smaller buffers than weft (`--socket-buffers os`).';
}

/** The smallest..largest sk_rcvbuf of the UDP sockets in the host namespaces (the overlay's). */
function rcvbufCell(p: PathResult): string {
  const xs = (p.overlaySockets ?? []).map((x) => x.rcvbuf / 2 ** 20);
  if (xs.length === 0) return '';
  const [lo, hi] = [Math.min(...xs), Math.max(...xs)];
  return lo === hi ? lo.toFixed(1) : `${lo.toFixed(1)}..${hi.toFixed(1)}`;
}

/** A daemon counter's cell: empty where no weft daemon forwards (kernel paths, underlay) or it has no counters
 *  (the peers); the footnote under the table says why. */
function counted(p: PathResult, k: MetricKey): string {
  return p.kind === 'weft-userspace' ? metric(p, k) : '';
}

/** The largest idle VmRSS of the path's daemons, MB; empty without daemons. */
function idleRssCell(p: PathResult): string {
  const xs = (p.idleMemory ?? []).map((m) => m.rssBytes);
  return xs.length > 0 ? fmtNum(Math.max(...xs) / 1e6, 1) : '';
}

/** Each daemon's memory at idle (idle-memory.ts), one row per daemon; nothing when no path had daemons. */
function idleSection(r: BenchResult): string[] {
  const rows = r.paths.flatMap((p) =>
    (p.idleMemory ?? []).map((m) => {
      const mb = (x: number | undefined): string => (x === undefined ? '-' : fmtNum(x / 1e6, 1));
      return [
        p.name,
        m.ns,
        fmtNum(m.ageSeconds, 0),
        mb(m.rssBytes),
        mb(m.anonBytes),
        mb(m.fileBytes),
        `${mb(m.heapUsedBytes)} / ${mb(m.heapTotalBytes)}`,
        `${mb(m.externalBytes)} / ${mb(m.arrayBuffersBytes)}`,
      ];
    }),
  );
  if (rows.length === 0) return [];
  return [
    '## Idle memory',
    '',
    'Each daemon once its path was up and settled, before the first test (*daemon RSS* in the cost table is the ' +
      'largest after a test, under load). RSS is VmRSS, its anonymous and file-backed parts RssAnon and RssFile ' +
      "(/proc/<pid>/status; node's text and the shared libraries are file-backed, shared between daemons); heap, " +
      "external and array buffers are the daemon's own process.memoryUsage() from its /status (weft daemons only). " +
      'MB = 10^6 bytes.',
    '',
    mdTable(
      [
        'path',
        'host',
        'age s',
        'RSS MB',
        'anonymous MB',
        'file-backed MB',
        'V8 heap used / total MB',
        'external / array buffers MB',
      ],
      rows,
    ),
  ];
}

function withLoss(p: PathResult, k: MetricKey, loss: MetricKey): string {
  const v = metric(p, k);
  const l = p.summary[loss];
  return l ? `${v} (${fmtNum(l.median, 1)}% loss)` : v;
}

function mdTable(header: string[], rows: string[][]): string {
  const esc = (c: string): string => c.replace(/\|/g, '\\|');
  return (
    [
      `| ${header.map(esc).join(' | ')} |`,
      `|${header.map(() => '---').join('|')}|`,
      ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`),
    ].join('\n') + '\n'
  );
}

const okPaths = (r: BenchResult): PathResult[] => r.paths.filter((p) => p.status === 'ok');

/** The main table as rows (also printed on the terminal by `weft bench`). */
export function mainTable(r: BenchResult): { header: string[]; rows: string[][] } {
  const header = [
    'path',
    'TCP 1 Gbit/s',
    'TCP 4 Gbit/s',
    'UDP 64 B kpps',
    'UDP 1400 B Gbit/s',
    'p50 us',
    'p99 us',
    'CPU s/GB',
    'vs kernel VXLAN (TCP 1)',
  ];
  const rows = r.paths.map((p) =>
    p.status !== 'ok'
      ? [p.name, 'failed', '', '', '', '', '', '', '']
      : [
          p.name,
          metric(p, 'tcp1_gbps'),
          metric(p, 'tcp4_gbps'),
          withLoss(p, 'udp64_kpps', 'udp64_loss_pct'),
          withLoss(p, 'udp1400_gbps', 'udp1400_loss_pct'),
          metric(p, 'lat_p50_us'),
          metric(p, 'lat_p99_us'),
          metric(p, 'cpu_total_s_per_gb'),
          ratio(p.ratios.tcp1_gbps),
        ],
  );
  return { header, rows };
}

export function terminalTable(r: BenchResult): string {
  const t = mainTable(r);
  return formatTable(t.header, t.rows);
}

function flannelStyle(r: BenchResult): string {
  // flannel's docs compare backends by bandwidth (MB/s) and latency; our names for its three backends come first.
  const byName = new Map(r.paths.map((p) => [p.name, p]));
  const rows: string[][] = [];
  const add = (backend: string, name: string): void => {
    const p = byName.get(name);
    if (!p) return;
    if (p.status !== 'ok') {
      rows.push([backend, name, 'failed', '', '', '']);
      return;
    }
    const mbs = p.summary.tcp1_gbps ? fmtNum((p.summary.tcp1_gbps.median * 1e9) / 8 / 1e6, 1) : '-';
    rows.push([backend, name, mbs, metric(p, 'lat_p50_us'), ratio(p.ratios.tcp1_gbps), ratio(p.ratios.lat_p50_us)]);
  };
  // flannel's UDP backend is a C proxy (backend/udp/proxy_amd64.c); this row is weft's own Node dgram tier
  add("weft's dgram tier (Node dgram socket, one packet per syscall; udp encap)", 'dgram/udp');
  add('vxlan (kernel)', 'kernel-vxlan');
  add('host-gw', 'host-gw');
  add('vxlan (kernel, programmed by weft)', 'weft-kernel-vxlan');
  for (const p of r.paths) {
    if (p.kind === 'weft-userspace' && p.name !== 'dgram/udp') add(`weft ${p.name}`, p.name);
  }
  for (const p of r.paths) if (p.kind === 'peer') add(`${p.name} (encrypted)`, p.name);
  add('underlay (no overlay)', 'underlay');
  return mdTable(
    [
      'backend',
      'path',
      'bandwidth MB/s (TCP 1 stream)',
      'latency p50 us',
      'bandwidth vs kernel VXLAN',
      'latency vs kernel VXLAN',
    ],
    rows,
  );
}

function bars(p: PathResult, keys: MetricKey[]): (Bar | null)[] {
  return keys.map((k) => {
    const s = p.summary[k];
    return s ? { value: s.median, min: s.min, max: s.max } : null;
  });
}

function groups(r: BenchResult, keys: MetricKey[], only?: (p: PathResult) => boolean): BarGroup[] {
  return r.paths
    .filter((p) => !only || only(p))
    .map((p) => ({
      label: encryptionOf(p.name) ? `${p.name} (encrypted)` : p.name,
      bars: p.status === 'ok' ? bars(p, keys) : keys.map(() => null),
      note: p.status === 'ok' ? 'no data' : 'failed',
    }));
}

export const CHARTS = ['throughput.svg', 'cpu-per-gb.svg', 'latency.svg', 'copies-per-packet.svg'] as const;

export function renderCharts(r: BenchResult): Record<(typeof CHARTS)[number], string> {
  const sub = `medians of ${r.settings.repeats}, whiskers min..max; ${r.settings.seconds} s per test; ${r.startedAt}`;
  const weft = (p: PathResult): boolean => p.kind === 'weft-userspace';
  return {
    'throughput.svg': renderBarChart({
      title: 'Throughput between pods (iperf3)',
      subtitle: sub,
      unit: 'Gbit/s',
      series: ['TCP 1 stream', 'TCP 4 streams', 'UDP 1400 B received'],
      groups: groups(r, ['tcp1_gbps', 'tcp4_gbps', 'udp1400_gbps']),
      digits: 2,
    }),
    'cpu-per-gb.svg': renderBarChart({
      title: 'CPU seconds per GB moved (TCP 1 stream)',
      subtitle:
        'daemons: utime+stime of both weft daemons; machine: /proc/stat, every process (incl. iperf3, other load)',
      unit: 'CPU seconds per GB',
      series: ['weft daemons (user+system)', 'machine system+softirq', 'machine user+system+softirq'],
      groups: groups(r, ['cpu_daemon_s_per_gb', 'cpu_kernel_s_per_gb', 'cpu_total_s_per_gb']),
      digits: 2,
    }),
    'latency.svg': renderBarChart({
      title: 'UDP ping-pong round trip between pods',
      subtitle: sub,
      unit: 'microseconds',
      series: ['p50', 'p99'],
      groups: groups(r, ['lat_p50_us', 'lat_p99_us']),
      digits: 0,
    }),
    'copies-per-packet.svg': renderBarChart({
      title: 'weft daemons: syscalls and copies per forwarded packet (TCP 1 stream)',
      subtitle:
        'copies: bytes copied by the kernel at the four boundary crossings, and by user space (memcpy), ' +
        '/ inner bytes read from TUN',
      unit: 'per packet (syscalls) / per byte (copies)',
      series: ['syscalls per packet', 'kernel copies of each byte', 'user-space copies of each byte'],
      groups: groups(r, ['syscalls_per_packet', 'kernel_copies_per_byte', 'user_copies_per_byte'], weft),
      digits: 2,
    }),
  };
}

export function renderReport(r: BenchResult): string {
  const ok = okPaths(r);
  const failed = r.paths.filter((p) => p.status !== 'ok');
  const partial = ok.filter((p) => p.reason);
  const lines: string[] = [];
  lines.push(`# weft bench, ${r.startedAt}${r.interrupted ? ' (interrupted: partial)' : ''}`);
  lines.push('');
  const load = (r.machine.loadAvg ?? []).map((x) => x.toFixed(1)).join(' / ');
  const loadNote = load
    ? `, load average ${load} (1/5/15 min) at the start: other work shares these CPUs and lowers every figure`
    : '';
  const refNote = ok.some((p) => p.name === r.reference) ? '' : ', which did not run: no ratios';
  lines.push(
    `Machine: Linux ${r.machine.kernel}, ${r.machine.cpus} CPUs, Node ${r.machine.node}, ${r.machine.iperf3}` +
      `${loadNote}. ` +
      `Each path on a fresh testbed: two namespace hosts on a veth + bridge underlay, etcd, ` +
      (r.settings.topology === 'host'
        ? 'the endpoints on the hosts themselves (--topology host). '
        : 'one pod per host. ') +
      `${r.settings.repeats} repeat(s) of every test, ${r.settings.seconds} s each, ` +
      `ping-pong up to ${r.settings.latencyRoundTrips} round trips. ` +
      'Cells: median ±half the min..max range over the repeats. ' +
      "Ratios: this path's median / kernel VXLAN's median from this run " +
      `(reference: \`${r.reference}\`${refNote}).` +
      (r.paths.some((p) => p.reference !== undefined)
        ? " IPv6 rows (`-v6`: inner IPv6 between pods, VXLAN between the hosts' PublicIPv6) are against " +
          `\`${r.paths.find((p) => p.reference !== undefined)!.reference}\`, kernel VXLAN over IPv6 in this run.`
        : ''),
  );
  lines.push('');
  const trust = renderLoadSection(r);
  if (trust) lines.push(trust);
  lines.push("## Backends side by side (as in flannel's docs: UDP vs VXLAN vs host-gw)");
  lines.push('');
  lines.push(flannelStyle(r));
  lines.push('## Throughput and latency');
  lines.push('');
  lines.push(
    mdTable(
      [
        'path',
        'encrypted',
        'TCP 1 stream Gbit/s',
        'TCP 4 streams Gbit/s',
        'TCP 1 retransmits',
        'UDP 64 B kpps (loss)',
        'UDP 1400 B Gbit/s (loss)',
        'latency p50 us',
        'p99 us',
        'load avg (1 min) at build',
      ],
      r.paths.map((p) =>
        p.status !== 'ok'
          ? [p.name, encryptionOf(p.name) ? 'yes' : 'no', 'failed', '', '', '', '', '', '', '']
          : [
              p.name,
              encryptionOf(p.name) ? 'yes' : 'no',
              metric(p, 'tcp1_gbps'),
              metric(p, 'tcp4_gbps'),
              metric(p, 'tcp1_retransmits'),
              withLoss(p, 'udp64_kpps', 'udp64_loss_pct'),
              withLoss(p, 'udp1400_gbps', 'udp1400_loss_pct'),
              metric(p, 'lat_p50_us'),
              metric(p, 'lat_p99_us'),
              p.loadAvg1 != null ? p.loadAvg1.toFixed(1) : '-',
            ],
      ),
    ),
  );
  lines.push('## Cost');
  lines.push('');
  lines.push(
    'CPU per GB from the TCP 1-stream test. *weft daemons*: utime+stime of both daemon processes (/proc/<pid>/stat). ' +
      '*machine system+softirq*: kernel time of the whole machine (/proc/stat), which includes both iperf3 ends and ' +
      'any other load on the machine. *machine busy*: the same plus user time. Syscalls and bytes copied are the ' +
      "daemons' own counters (/metrics), summed over both hosts, per packet that entered a daemon through its TUN. " +
      '*Kernel copies*: bytes the kernel copied between user and kernel memory, counted at the syscalls (TUN read, ' +
      'socket send, socket receive, TUN write), per inner byte read from TUN. *User copies*: packet bytes the ' +
      "daemons' own code copied from one buffer into another, counted at the memcpy (copied_user_bytes; the few " +
      'header bytes each GSO segment gets are not counted), per inner byte. ' +
      "On the peer paths *daemon* means the peer's own processes (wireguard-go, nebula, tincd on both hosts). " +
      'RcvbufErrors: /proc/net/snmp in the namespaces, summed over all tests of a repeat (hosts: the overlay ' +
      "sockets; pods: iperf3's receiving socket, the hosts themselves on the underlay path). " +
      socketBufferSentence(r),
  );
  lines.push('');
  lines.push(
    mdTable(
      [
        'path',
        'daemon CPU s/GB',
        'machine sys+softirq s/GB',
        'machine busy s/GB',
        'syscalls/packet',
        'kernel bytes copied/packet',
        'kernel copies/byte',
        'user copies/byte',
        'RcvbufErrors hosts',
        'RcvbufErrors pods',
        'overlay socket rcvbuf MiB',
        'daemon RSS MB',
        'idle RSS MB',
      ],
      r.paths.map((p) =>
        p.status !== 'ok'
          ? [p.name, 'failed', '', '', '', '', '', '', '', '', '', '', '']
          : [
              p.name,
              metric(p, 'cpu_daemon_s_per_gb'),
              metric(p, 'cpu_kernel_s_per_gb'),
              metric(p, 'cpu_total_s_per_gb'),
              counted(p, 'syscalls_per_packet'),
              counted(p, 'copied_bytes_per_packet'),
              counted(p, 'kernel_copies_per_byte'),
              counted(p, 'user_copies_per_byte'),
              p.kind === 'underlay' ? '- (no overlay)' : metric(p, 'host_rcvbuf_errors'),
              metric(p, 'endpoint_rcvbuf_errors'),
              rcvbufCell(p),
              metric(p, 'daemon_rss_mb'),
              idleRssCell(p),
            ],
      ),
    ),
  );
  lines.push(
    'Syscall and copy cells are empty where no weft daemon forwards: on the kernel paths (kernel VXLAN, host-gw, ' +
      "weft-kernel-vxlan) and the underlay the only user-space syscalls and copies are iperf3's own, the same on " +
      'every path; the peers have no such counters.',
  );
  lines.push('');
  lines.push(...idleSection(r));
  const sys = renderSyscallSection(r);
  if (sys) lines.push(sys);
  lines.push('## Ratios against kernel VXLAN (same run)');
  lines.push('');
  lines.push(
    mdTable(
      ['path', 'TCP 1', 'TCP 4', 'UDP 64 B kpps', 'UDP 1400 B', 'p50', 'p99', 'machine busy per GB'],
      ok.map((p) => [
        p.name,
        ratio(p.ratios.tcp1_gbps),
        ratio(p.ratios.tcp4_gbps),
        ratio(p.ratios.udp64_kpps),
        ratio(p.ratios.udp1400_gbps),
        ratio(p.ratios.lat_p50_us),
        ratio(p.ratios.lat_p99_us),
        ratio(p.ratios.cpu_total_s_per_gb),
      ]),
    ),
  );
  lines.push(...peerSection(r));
  if (failed.length > 0 || partial.length > 0) {
    lines.push('## Paths that failed');
    lines.push('');
    for (const p of failed) lines.push(`- \`${p.name}\`: ${p.reason ?? 'no test succeeded'}`);
    for (const p of partial) lines.push(`- \`${p.name}\` (partly): ${p.reason}`);
    lines.push('');
  }
  lines.push('## Where each path copies');
  lines.push('');
  const seen = new Set<string>();
  for (const p of r.paths) {
    const key = COPY_MODEL[p.name] ? p.name : (p.name.split('/')[0] ?? p.name);
    if (seen.has(key)) continue;
    seen.add(key);
    lines.push(`- **${key}**: ${copyModelFor(p.name)}`);
  }
  lines.push('');
  const profile = renderProfileSection(r); // perf CPU split (profile-report.ts); '' when not profiled
  if (profile) lines.push(profile);
  lines.push('## Charts');
  lines.push('');
  lines.push(
    '![throughput](throughput.svg)\n\n![CPU per GB](cpu-per-gb.svg)\n\n![latency](latency.svg)\n\n' +
      '![copies per packet](copies-per-packet.svg)',
  );
  lines.push('');
  lines.push('Raw samples (every repeat of every test, with the counters read around it) are in `results.json`.');
  lines.push('');
  return lines.join('\n');
}

/** The userspace overlays a user would otherwise install, and weft's userspace paths as ratios to each. */
function peerSection(r: BenchResult): string[] {
  const peers = r.paths.filter((p) => p.kind === 'peer');
  if (peers.length === 0) return [];
  const out = ['## weft against the userspace overlays a user would otherwise install', ''];
  out.push(
    'Same testbed, same tests, same run, ' +
      (r.settings.socketBuffers?.mode === 'equal'
        ? 'the same socket buffers as weft (Cost, above). '
        : "the machine's default socket buffers while weft forces 8 MiB (Cost, above). ") +
      'The peers encrypt every packet (weft, kernel VXLAN and host-gw do not). ' +
      "Debian's wireguard-go (0.0.20220316) predates wireguard-go's batched I/O and TUN offloads (later " +
      "releases), so it moves one packet per syscall like weft's dgram tier. " +
      "Each runs as its Debian package ships it, between the two hosts' tunnel addresses 10.77.0.N/24, with the " +
      "other host's pod subnet routed through the tunnel. wireguard-go's UAPI socket is the one file outside the " +
      "run's temp folder: wireguard-go and wg hard-code /var/run/wireguard/<dev>.sock, so the bench creates it and " +
      'removes exactly it.',
  );
  out.push('');
  out.push(
    mdTable(
      ['peer', 'as installed', 'encryption', 'pod MTU', 'TCP 1 Gbit/s', 'p50 us', 'CPU s/GB (its processes)'],
      peers.map((p) => [
        p.name,
        p.title,
        encryptionOf(p.name),
        p.mtu !== null ? String(p.mtu) : '-',
        p.status === 'ok' ? metric(p, 'tcp1_gbps') : `failed: ${p.reason ?? '?'}`,
        metric(p, 'lat_p50_us'),
        metric(p, 'cpu_daemon_s_per_gb'),
      ]),
    ),
  );
  const okPeers = peers.filter((p) => p.status === 'ok');
  const weft = okPaths(r).filter((p) => p.kind === 'weft-userspace');
  if (okPeers.length > 0 && weft.length > 0) {
    const q = (a: Summary | undefined, b: Summary | undefined): number | null =>
      a && b && b.median !== 0 ? a.median / b.median : null;
    out.push(
      'weft path / peer, from the medians (TCP 1 stream: above 1 is faster; daemon CPU per GB: below 1 is cheaper):',
    );
    out.push('');
    out.push(
      mdTable(
        ['weft path', ...okPeers.flatMap((p) => [`TCP 1 vs ${p.name}`, `CPU/GB vs ${p.name}`])],
        weft.map((w) => [
          w.name,
          ...okPeers.flatMap((p) => [
            ratio(q(w.summary.tcp1_gbps, p.summary.tcp1_gbps)),
            ratio(q(w.summary.cpu_daemon_s_per_gb, p.summary.cpu_daemon_s_per_gb)),
          ]),
        ]),
      ),
    );
  }
  return out;
}

export function writeReport(r: BenchResult, outDir: string): void {
  writeFileSync(join(outDir, 'report.md'), renderReport(r));
  for (const [name, svg] of Object.entries(renderCharts(r))) writeFileSync(join(outDir, name), svg);
  const split = renderProfileChart(r);
  if (split) writeFileSync(join(outDir, PROFILE_CHART), split);
  const fast = renderProfileChart(r, true);
  if (fast) writeFileSync(join(outDir, FAST_PROFILE_CHART), fast);
}
