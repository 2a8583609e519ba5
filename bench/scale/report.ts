// The scale section of the bench report: bench/results/scale-<timestamp>/{report.md, results.json, scale.svg}.
// report.md opens with "## Scale" so it can be pasted under the bench report as a section of its own.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { escapeXml, niceStep } from '../suite/svg.js';
import { PACKAGE_ROOT } from '../../testbed/cluster.js';
import type { FailoverResult } from './failover.js';
import type { ScaleResult } from './runner.js';

/** The targets the scale run is held against (benchmark figures, not test assertions). */
export const TARGETS = {
  routeLiveP99MsAt1000: 1000,
  rssMBAt5000: 110,
  renewalResumesWithinS: 5,
} as const;

const f = (v: number | null | undefined, digits = 1): string =>
  v === null || v === undefined || Number.isNaN(v)
    ? 'n/a'
    : v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
const n0 = (v: number): string => v.toLocaleString('en-US');
const maxOf = (xs: number[]): number => (xs.length === 0 ? Number.NaN : Math.max(...xs));

function verdict(ok: boolean | null): string {
  return ok === null ? 'not measured' : ok ? 'met' : '**missed**';
}

/** One Markdown table row. */
const row = (...cells: (string | number)[]): string => `| ${cells.join(' | ')} |`;

export function scaleMarkdown(r: ScaleResult, failover?: FailoverResult): string {
  const L: string[] = [];
  L.push('## Scale', '');
  L.push(
    `Run ${r.startedAt} .. ${r.finishedAt}; ${r.machine.cpus} CPUs, Linux ${r.machine.kernel}, ` +
      `Node ${r.machine.node}. ${r.realHosts} real weft hosts (userspace datapath, udp) on one namespace testbed; ` +
      `simulated hosts are leases only (flannel's keys in ${r.network.Network} /${r.network.SubnetLen}, ` +
      'each on its own etcd lease, PublicIP on the bridge that nobody answers).',
    '',
  );

  L.push('### Cost against the number of hosts', '');
  L.push(
    row(
      ...['simulated hosts', 'keys in etcd', 'bulk load s', 'converged s', 'route live p50 ms', 'p99 ms', 'max ms'],
      ...['failed probes', 'RSS MB (max)', 'peak RSS MB', 'CPU s to absorb', 'idle CPU %', 'join: lease s'],
      'join: all peers s',
    ),
  );
  L.push('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const s of r.sizes) {
    const daemonMax = (of: (d: (typeof s.daemons)[number]) => number): number => maxOf(s.daemons.map(of));
    L.push(
      row(
        n0(s.simulated),
        n0(s.keysInEtcd),
        f(s.bulkLoadMs / 1000),
        f(s.convergeMs === null ? null : s.convergeMs / 1000),
        f(s.probes?.p50Ms),
        f(s.probes?.p99Ms),
        f(s.probes?.maxMs),
        s.probes ? `${s.probes.failed}/${s.probes.count * r.realHosts}` : 'n/a',
        f(daemonMax((d) => d.rssMB)),
        f(daemonMax((d) => d.hwmMB)),
        f(
          daemonMax((d) => d.cpuSecondsToConverge),
          2,
        ),
        f(
          daemonMax((d) => d.idleCpuPercent),
          2,
        ),
        f(s.join ? s.join.leaseMs / 1000 : null),
        f(s.join?.convergedMs === null || s.join === null ? null : s.join.convergedMs / 1000),
      ),
    );
  }
  L.push(
    '',
    '"Route live": a probe lease is created (one at a time); each real host\'s prober sends a datagram into its TUN ' +
      "towards the new subnet every 5 ms until the daemon's `udp_tx_packets` moves; latency is from the create " +
      "transaction's answer to that observation (one CLOCK_MONOTONIC for all processes), so it includes up to one " +
      'poll and one /metrics scrape. "Converged": from the start of the bulk load until every daemon\'s `weft_peers` ' +
      'counts every other key. RSS and idle CPU: /proc of each daemon after the probes (max over daemons). "Join": a ' +
      'new host starts its daemon in a network this full.',
    '',
  );

  // The daemon with the largest RSS per size, as the cost table's "RSS MB (max)"; runs before 2026-12-01 have none.
  const largest = r.sizes.flatMap((s) => {
    const d = [...s.daemons].sort((a, b) => b.rssMB - a.rssMB)[0];
    return d?.memory ? [{ simulated: s.simulated, host: d.host, rssMB: d.rssMB, m: d.memory }] : [];
  });
  if (largest.length > 0) {
    L.push("### Where a daemon's memory goes", '');
    L.push(
      row(
        ...['simulated hosts', 'daemon', 'RSS MB', 'V8 heap used MB', 'V8 heap total MB', 'external MB'],
        'of which array buffers MB',
      ),
    );
    L.push('|---|---|---|---|---|---|---|');
    for (const { simulated, host, rssMB, m } of largest) {
      L.push(
        row(n0(simulated), host, f(rssMB), f(m.heapUsedMB), f(m.heapTotalMB), f(m.externalMB), f(m.arrayBuffersMB)),
      );
    }
    L.push(
      '',
      "The daemon's own `process.memoryUsage()` (its /status) right after its RSS was read. RSS beyond the V8 heap " +
        "and external memory is node's code and libraries (file-backed, shared between daemons), malloc's arenas " +
        "and V8's own structures.",
      '',
    );
  }

  L.push('### etcd calls per watch event', '');
  L.push(
    row(
      ...['simulated hosts', 'probes x daemons', 'Range RPCs', 'mvcc ranges', 'LeaseTimeToLive'],
      ...['per probe per daemon: Range', 'LeaseTimeToLive'],
    ),
  );
  L.push('|---|---|---|---|---|---|---|');
  for (const s of r.sizes) {
    const e = s.etcdDuringProbes;
    if (e === null || s.probes === null) continue;
    L.push(
      row(
        n0(s.simulated),
        `${s.probes.count} x ${r.realHosts}`,
        e.rangeRpcs,
        e.mvccRanges,
        e.leaseTimeToLive,
        e.perProbePerDaemon.rangeRpcs,
        e.perProbePerDaemon.leaseTimeToLive,
      ),
    );
  }
  L.push(
    '',
    "Counted from etcd's /metrics (`grpc_server_handled_total`, `etcd_debugging_mvcc_range_total`) across the probe " +
      "phase; the loader's own create transactions account for the mvcc ranges (its compare). No Range RPC per " +
      'event: the watches do not re-list the prefix. LeaseTimeToLive calls come from the peer watch resolving each ' +
      "new lease's TTL (the own-lease watch follows only the daemon's own key).",
    '',
  );

  L.push('### Route lookup (src/datapath/routes.ts), ns per lookup', '');
  L.push('| routes | RouteTable.lookup ns |');
  L.push('|---|---|');
  for (const l of r.lookup) L.push(`| ${n0(l.routes)} | ${f(l.nsPerLookup)} |`);
  L.push(
    '',
    'In-process, /24 routes, 1 in 8 destinations a miss; median of 7 runs of 2,000,000 lookups after a warm-up.',
    '',
  );

  if (r.kernel.length > 0) {
    L.push("### Kernel backends: programming every peer (flannel's VXLAN layout)", '');
    L.push(
      row(
        ...['peers', 'ip -batch neigh + route ms', 'bridge -batch fdb ms', 'total ms'],
        ...['routes / neighbours installed', 'route get'],
      ),
    );
    L.push('|---|---|---|---|---|---|');
    for (const k of r.kernel) {
      L.push(
        row(
          n0(k.routes),
          f(k.ipBatchMs),
          f(k.fdbBatchMs),
          f(k.totalMs),
          `${n0(k.routesInstalled)} / ${n0(k.neighboursInstalled)}`,
          k.lastRouteLive ? 'ok' : 'missing',
        ),
      );
    }
    L.push('');
  }

  if (failover !== undefined) L.push(...failoverMarkdown(failover));

  L.push('### Targets', '');
  const at1000 = r.sizes.find((s) => s.simulated === 1000);
  const at5000 = r.sizes.find((s) => s.simulated === 5000);
  const lookups = r.lookup.map((l) => l.nsPerLookup);
  const flat = lookups.length >= 2 ? Math.max(...lookups) / Math.min(...lookups) : null;
  L.push('| target | measured | |', '|---|---|---|');
  L.push(
    row(
      `route live p99 <= ${TARGETS.routeLiveP99MsAt1000} ms at 1,000 hosts`,
      `${f(at1000?.probes?.p99Ms)} ms`,
      verdict(at1000?.probes ? at1000.probes.p99Ms <= TARGETS.routeLiveP99MsAt1000 : null),
    ),
  );
  const rss5000 = at5000 ? maxOf(at5000.daemons.map((d) => d.rssMB)) : null;
  L.push(
    row(
      `daemon RSS <= ${TARGETS.rssMBAt5000} MB with 5,000 peers`,
      `${f(rss5000)} MB`,
      verdict(rss5000 === null ? null : rss5000 <= TARGETS.rssMBAt5000),
    ),
  );
  L.push(
    row(
      'route lookup flat from 10 to 5,000 routes',
      `${lookups.map((x) => f(x)).join(' / ')} ns (max/min ${f(flat, 1)}x)`,
      verdict(flat === null ? null : flat <= 1.5),
    ),
  );
  const resumed = failover ? maxOf(failover.events.map((e) => e.renewalGapS - failover.medianRenewalGapS)) : null;
  L.push(
    row(
      `renewals resume within ${TARGETS.renewalResumesWithinS} s of losing weft's etcd member`,
      failover ? `${f(resumed)} s longer than an undisturbed renewal interval (worst event)` : 'n/a',
      verdict(resumed === null ? null : resumed <= TARGETS.renewalResumesWithinS),
    ),
  );
  if (r.errors.length > 0) L.push('', 'Errors: ' + r.errors.map((e) => `\`${e}\``).join('; '));
  L.push('');
  return L.join('\n');
}

export function failoverMarkdown(fo: FailoverResult): string[] {
  const L: string[] = ['### etcd failover (3 members)', ''];
  L.push(
    `${fo.hosts} weft hosts, lease TTL ${fo.ttlS} s (renewals ${fo.renewEveryS} s before expiry: every ` +
      `${f(fo.medianRenewalGapS)} s undisturbed, the median over the run), a ping loop pod -> pod ` +
      `(${fo.ping.received}/${fo.ping.transmitted} replies over the whole run).`,
    '',
  );
  L.push(
    row(
      ...['event', 'member', 'first renewal after s', 'longest gap between renewals s'],
      ...['new peer lease seen by every daemon s', 'same keys, same create revision', 'pods ping'],
    ),
  );
  L.push('|---|---|---|---|---|---|---|');
  for (const e of fo.events) {
    L.push(
      row(
        e.event,
        e.member,
        f(e.firstRenewalAfterS),
        f(e.renewalGapS),
        f(e.peerSeenS),
        e.sameKeys ? 'yes' : '**no**',
        e.pingOk ? 'yes' : '**no**',
      ),
    );
  }
  L.push(
    '',
    'Renewal times are read from the daemons\' "lease renewed" log lines; "first renewal after" is when etcdctl ' +
      'saw every key on a fresh etcd lease. A gap no longer than the undisturbed period means no renewal was late.',
    '',
  );
  return L;
}

/** Cost against hosts as a minimal SVG: one small panel per figure, x = simulated hosts. */
export function scaleSvg(r: ScaleResult): string {
  type Series = { name: string; color: string; points: [number, number][] };
  type Panel = { title: string; unit: string; series: Series[] };
  const hostsOf = r.sizes.map((s) => s.simulated);
  const panels: Panel[] = [
    {
      title: 'route live after a lease appears',
      unit: 'ms',
      series: [
        {
          name: 'p50',
          color: '#3b6ea8',
          points: r.sizes.filter((s) => s.probes).map((s) => [s.simulated, s.probes!.p50Ms]),
        },
        {
          name: 'p99',
          color: '#e0873a',
          points: r.sizes.filter((s) => s.probes).map((s) => [s.simulated, s.probes!.p99Ms]),
        },
      ],
    },
    {
      title: 'daemon RSS (max over hosts)',
      unit: 'MB',
      series: [
        {
          name: 'RSS',
          color: '#4e9a5b',
          points: r.sizes.map((s) => [s.simulated, maxOf(s.daemons.map((d) => d.rssMB))]),
        },
      ],
    },
    {
      title: 'route lookup',
      unit: 'ns',
      series: [{ name: 'lookup', color: '#b5485d', points: r.lookup.map((l) => [l.routes, l.nsPerLookup]) }],
    },
    {
      title: 'kernel: program every peer',
      unit: 'ms',
      series: [{ name: 'ip+bridge -batch', color: '#8c8c8c', points: r.kernel.map((k) => [k.routes, k.totalMs]) }],
    },
  ];
  const W = 340;
  const H = 220;
  const pad = { l: 52, r: 14, t: 34, b: 40 };
  const cols = 2;
  const width = W * cols;
  const height = H * Math.ceil(panels.length / cols) + 30;
  const out: string[] = [];
  const font = 'font-family="Helvetica, Arial, sans-serif"';
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">`,
  );
  out.push(`<rect width="100%" height="100%" fill="#fff"/>`);
  out.push(
    `<text x="10" y="20" ${font} font-size="14" font-weight="bold">` +
      `weft: cost against the number of hosts (${escapeXml(r.startedAt.slice(0, 10))})</text>`,
  );
  panels.forEach((p, i) => {
    const ox = (i % cols) * W;
    const oy = 30 + Math.floor(i / cols) * H;
    const pts = p.series.flatMap((s) => s.points).filter(([, y]) => Number.isFinite(y));
    out.push(
      `<text x="${ox + pad.l}" y="${oy + 18}" ${font} font-size="12">` +
        `${escapeXml(p.title)} (${escapeXml(p.unit)})</text>`,
    );
    if (pts.length === 0) {
      out.push(`<text x="${ox + pad.l}" y="${oy + H / 2}" ${font} font-size="11" fill="#888">not measured</text>`);
      return;
    }
    // x on a log scale: sizes span 10 .. 5,000.
    const xs = [...new Set([...pts.map(([x]) => x), ...(i < 2 ? hostsOf : [])])].sort((a, b) => a - b);
    const lx = (x: number): number => Math.log10(Math.max(1, x));
    const x0 = lx(xs[0]!);
    const x1 = xs.length > 1 ? lx(xs[xs.length - 1]!) : x0 + 1;
    const ymax = Math.max(...pts.map(([, y]) => y)) * 1.1 || 1;
    const step = niceStep(ymax, 4);
    const top = Math.ceil(ymax / step) * step;
    const px = (x: number): number => ox + pad.l + ((lx(x) - x0) / (x1 - x0 || 1)) * (W - pad.l - pad.r);
    const py = (y: number): number => oy + H - pad.b - (y / top) * (H - pad.t - pad.b);
    for (let y = 0; y <= top + 1e-9; y += step) {
      out.push(`<line x1="${ox + pad.l}" x2="${ox + W - pad.r}" y1="${py(y)}" y2="${py(y)}" stroke="#e4e4e4"/>`);
      out.push(
        `<text x="${ox + pad.l - 4}" y="${py(y) + 4}" ${font} font-size="10" text-anchor="end">` +
          `${f(y, y < 10 && step < 1 ? 1 : 0)}</text>`,
      );
    }
    for (const x of xs) {
      out.push(
        `<text x="${px(x)}" y="${oy + H - pad.b + 14}" ${font} font-size="10" text-anchor="middle">${n0(x)}</text>`,
      );
    }
    out.push(
      `<text x="${ox + (W + pad.l) / 2}" y="${oy + H - 10}" ${font} font-size="10" text-anchor="middle" fill="#555">` +
        `${i === 2 ? 'routes' : 'hosts'}</text>`,
    );
    p.series.forEach((s, k) => {
      const ok = s.points.filter(([, y]) => Number.isFinite(y));
      if (ok.length === 0) return;
      out.push(
        `<polyline fill="none" stroke="${s.color}" stroke-width="2" ` +
          `points="${ok.map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(' ')}"/>`,
      );
      for (const [x, y] of ok)
        out.push(`<circle cx="${px(x).toFixed(1)}" cy="${py(y).toFixed(1)}" r="3" fill="${s.color}"/>`);
      out.push(
        `<text x="${ox + W - pad.r}" y="${oy + 32 + k * 12}" ${font} font-size="10" text-anchor="end" ` +
          `fill="${s.color}">${escapeXml(s.name)}</text>`,
      );
    });
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}

function timestamp(d: Date): string {
  return d.toISOString().replace(/[:]/g, '').replace(/\..*$/, '').replace('T', '-');
}

/** Writes report.md, results.json and scale.svg; returns the folder. */
export function writeScaleReport(r: ScaleResult, opts: { outDir?: string; failover?: FailoverResult } = {}): string {
  const outDir = opts.outDir ?? join(PACKAGE_ROOT, 'bench', 'results', `scale-${timestamp(new Date(r.startedAt))}`);
  mkdirSync(outDir, { recursive: true });
  writeFileSync(
    join(outDir, 'results.json'),
    JSON.stringify({ scale: r, failover: opts.failover ?? null }, null, 2) + '\n',
  );
  writeFileSync(join(outDir, 'report.md'), scaleMarkdown(r, opts.failover) + '\n![cost against hosts](scale.svg)\n');
  writeFileSync(join(outDir, 'scale.svg'), scaleSvg(r));
  return outDir;
}
