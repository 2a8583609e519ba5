// The perf CPU split in report.md and its chart (cpu-split.svg): per path CPU seconds per GB by kind of work
// (profile-groups.ts), the forwarder's share beside the application's, and the headline: what the userspace paths
// pay for copies and syscalls beyond kernel VXLAN.
import {
  COPY_SYSCALL_GROUPS,
  GROUP_LABELS,
  GROUP_ORDER,
  IDLE,
  PROCESS_CLASSES,
  CLASS_LABELS,
  type PathProfile,
} from './profile-groups.js';
import type { BenchResult, PathResult } from './schema.js';
import { escapeXml, niceStep } from './svg.js';

export const PROFILE_CHART = 'cpu-split.svg';
/** The fast paths alone, at their own scale: on the full chart they are slivers beside the one-packet tiers. */
export const FAST_PROFILE_CHART = 'cpu-split-fast.svg';
/** A path is fast when all its work costs at most this many CPU-s per GB (kernel VXLAN, host-gw, the offload tier). */
export const FAST_PATH_MAX_S_PER_GB = 5;

const WORK_GROUPS = GROUP_ORDER.filter((g) => g !== IDLE);

const f2 = (v: number | undefined): string => (v === undefined ? '-' : v.toFixed(v >= 10 ? 1 : 2));

function profiled(r: BenchResult): { p: PathResult; prof: PathProfile }[] {
  return r.paths.filter((p) => p.status === 'ok' && p.profile?.ok).map((p) => ({ p, prof: p.profile! }));
}

function table(header: string[], rows: string[][]): string {
  return (
    [
      `| ${header.join(' | ')} |`,
      `|${header.map(() => '---').join('|')}|`,
      ...rows.map((r) => `| ${r.join(' | ')} |`),
    ].join('\n') + '\n'
  );
}

const sumOf = (o: Record<string, number>, keys: readonly string[]): number => keys.reduce((a, k) => a + (o[k] ?? 0), 0);

/** One line per userspace path: copies + syscalls per GB beyond the reference, the forwarder's part named. */
export function headline(r: BenchResult): string[] {
  const rows = profiled(r);
  const ref = rows.find((x) => x.p.name === r.reference);
  if (!ref) return [];
  const refCs = ref.prof.copySyscallSPerGb.path;
  return rows
    .filter((x) => x.p.kind === 'weft-userspace' || x.p.kind === 'peer')
    .map(({ p, prof }) => {
      const cs = prof.copySyscallSPerGb;
      return (
        `- **${p.name}** pays **${f2(cs.path - refCs)} CPU-s/GB more for copies and syscalls** than ${r.reference} ` +
        `(${f2(cs.path)} vs ${f2(refCs)}; forwarder ${f2(cs.forwarder)}, iperf3 ${f2(cs.app)}, ` +
        `kernel threads ${f2(cs.kernel)}); ` +
        `all work ${f2(sumTotal(prof))} vs ${f2(sumTotal(ref.prof))} CPU-s/GB.`
      );
    });
}

function sumTotal(p: PathProfile): number {
  return sumOf(p.pathSPerGb, WORK_GROUPS);
}

export function renderProfileSection(r: BenchResult): string {
  if (!r.profile) return '';
  const out: string[] = ['## Where the CPU goes (perf)', ''];
  if (!r.profile.enabled) {
    out.push(`Profiling was off: ${r.profile.reason ?? 'not asked for'}.`, '');
    return out.join('\n');
  }
  out.push(
    `\`perf record -a -e ${r.profile.event} -g -F ${r.profile.frequencyHz}\` (${r.profile.perf}) ` +
      `sampled every CPU for up to ${r.profile.maxSeconds} s inside each path's TCP 1-stream test (repeat 1). ` +
      "CPU-s/GB = samples x period / bytes iperf3's server read in the same window (its /proc/<pid>/io rchar). " +
      "Process classes by pid: forwarder (the path's daemons), iperf3 (both ends), kernel threads/softirq " +
      '(ksoftirqd, kworker, interrupts on the idle task), other (anything else on this shared machine, perf ' +
      "included: left out of the path's figures). Rule: " +
      (r.profile.rule ?? '') +
      ". The VM has no NMI: a sample due while interrupts are off lands where they come back on, so its caller's " +
      'group gets it. Folded stacks for flamegraph.pl or speedscope: `<path>.folded` beside results.json (first ' +
      'frame: `comm[class]`).',
    '',
  );
  const rows = profiled(r);
  const failed = r.paths.filter((p) => p.profile && !p.profile.ok);
  const lines = headline(r);
  if (lines.length > 0)
    out.push(
      '**Copies and syscalls beyond kernel VXLAN** (forwarder + iperf3 + kernel threads, per GB moved):',
      '',
      ...lines,
      '',
    );
  if (rows.length > 0) {
    const used = WORK_GROUPS.filter((g) => rows.some((x) => (x.prof.pathSPerGb[g] ?? 0) > 0));
    out.push(
      'CPU-s per GB by kind of work (forwarder + iperf3 + kernel threads; idle and other processes left out):',
      '',
    );
    out.push(
      table(
        ['path', ...used.map((g) => GROUP_LABELS[g] ?? g), 'total'],
        rows.map(({ p, prof }) => [p.name, ...used.map((g) => f2(prof.pathSPerGb[g] ?? 0)), f2(sumTotal(prof))]),
      ),
    );
    out.push('By process (CPU-s per GB; copies+syscalls in brackets):', '');
    out.push(
      table(
        [
          'path',
          ...PROCESS_CLASSES.map((c) => CLASS_LABELS[c]),
          'idle share',
          'window s',
          'samples',
          'Gbit/s in window',
        ],
        rows.map(({ p, prof }) => [
          p.name,
          ...PROCESS_CLASSES.map((c) => `${f2(prof.classSPerGb[c])} (${f2(prof.copySyscallSPerGb[c])})`),
          `${(prof.idleShare * 100).toFixed(0)}%`,
          prof.windowSeconds.toFixed(1),
          String(prof.samples),
          prof.windowSeconds > 0 ? ((prof.bytes * 8) / prof.windowSeconds / 1e9).toFixed(2) : '-',
        ]),
      ),
    );
    out.push('Hottest leaf symbols (share of the non-idle samples of every process):', '');
    for (const { p, prof } of rows) {
      out.push(
        `- \`${p.name}\`: ${prof.top
          .slice(0, 8)
          .map((t) => `${t.sym} ${(t.share * 100).toFixed(1)}% (${t.group})`)
          .join(', ')}`,
      );
    }
    out.push('', `![CPU split](${PROFILE_CHART})`, '');
    if (renderProfileChart(r, true)) {
      out.push(`The paths under ${FAST_PATH_MAX_S_PER_GB} CPU-s/GB at their own scale:`, '');
      out.push(`![CPU split, fast paths](${FAST_PROFILE_CHART})`, '');
    }
  }
  for (const p of failed) out.push(`- \`${p.name}\`: no profile: ${p.profile?.error ?? '?'}`);
  if (failed.length > 0) out.push('');
  return out.join('\n');
}

const PALETTE: Record<string, string> = {
  copy: '#d62728',
  syscall: '#ff7f0e',
  csum: '#bcbd22',
  tun: '#9467bd',
  udp: '#1f77b4',
  vxlan: '#17becf',
  'gso-gro': '#2ca02c',
  tcp: '#8c564b',
  ip: '#aec7e8',
  softirq: '#98df8a',
  mem: '#c5b0d5',
  memcpy: '#ff9896',
  sched: '#c49c94',
  mm: '#dbdb8d',
  'forwarder-user': '#e377c2',
  'user-other': '#f7b6d2',
  'kernel-other': '#c7c7c7',
};

/** Stacked horizontal bars: per path, all of the path's work and the forwarder's alone, split by group. */
/** The stacked CPU split of every profiled path, or (fast) of those whose work costs at most
 *  FAST_PATH_MAX_S_PER_GB; null when there is nothing to draw (or, for fast, nothing left out of the full chart). */
export function renderProfileChart(r: BenchResult, fast = false): string | null {
  const all = profiled(r);
  const isFast = (prof: PathProfile): boolean =>
    Object.values(prof.pathSPerGb).reduce((a, b) => a + b, 0) <= FAST_PATH_MAX_S_PER_GB;
  const rows = fast ? all.filter((x) => isFast(x.prof)) : all;
  if (rows.length === 0 || (fast && rows.length === all.length)) return null;
  const bars: { label: string; parts: Record<string, number> }[] = [];
  for (const { p, prof } of rows) {
    bars.push({ label: `${p.name}`, parts: prof.pathSPerGb });
    if (prof.classSPerGb.forwarder > 0) bars.push({ label: `  forwarder only`, parts: prof.sPerGb.forwarder });
  }
  const groups = WORK_GROUPS.filter((g) => bars.some((b) => (b.parts[g] ?? 0) > 0));
  const total = (b: (typeof bars)[number]): number => sumOf(b.parts, groups);
  const maxV = Math.max(...bars.map(total), 1e-9);
  const step = niceStep(maxV);
  const scaleMax = Math.ceil((maxV * 1.1) / step) * step;
  const labelW = 150,
    plotW = 560,
    barH = 18,
    gap = 6,
    top = 60;
  // two legend columns: the longest label ("syscall entry/exit + socket/file dispatch *") needs ~300 px at 11 px
  const legendCols = 2;
  const legendColW = 320;
  const legendRows = Math.ceil(groups.length / legendCols);
  const height = top + bars.length * (barH + gap) + 36 + legendRows * 16 + 10;
  const width = labelW + plotW + 80;
  const x = (v: number): number => labelW + (v / scaleMax) * plotW;
  const o: string[] = [];
  o.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ` +
      'font-family="Helvetica, Arial, sans-serif" font-size="11">',
  );
  o.push('<rect width="100%" height="100%" fill="#ffffff"/>');
  o.push(
    '<text x="10" y="22" font-size="15" font-weight="bold">' +
      `CPU seconds per GB by kind of work (perf, TCP 1 stream)${fast ? ': the fast paths' : ''}</text>`,
  );
  o.push(
    `<text x="10" y="40" fill="#555">` +
      `${escapeXml(`forwarder + iperf3 + kernel threads; other processes and idle left out; ${r.startedAt}`)}</text>`,
  );
  const axisY = top + bars.length * (barH + gap);
  for (let v = 0; v <= scaleMax + step / 2; v += step) {
    o.push(`<line x1="${x(v).toFixed(1)}" y1="${top - 6}" x2="${x(v).toFixed(1)}" y2="${axisY}" stroke="#e3e3e3"/>`);
    o.push(
      `<text x="${x(v).toFixed(1)}" y="${axisY + 14}" text-anchor="middle" fill="#555">` +
        `${escapeXml(String(Number(v.toFixed(3))))}</text>`,
    );
  }
  o.push(
    `<text x="${labelW + plotW / 2}" y="${axisY + 28}" text-anchor="middle" fill="#333">CPU seconds per GB</text>`,
  );
  bars.forEach((b, i) => {
    const y = top + i * (barH + gap);
    o.push(`<text x="${labelW - 8}" y="${y + barH - 5}" text-anchor="end" fill="#222">${escapeXml(b.label)}</text>`);
    let acc = 0;
    for (const g of groups) {
      const v = b.parts[g] ?? 0;
      if (v <= 0) continue;
      o.push(
        `<rect x="${x(acc).toFixed(1)}" y="${y}" width="${Math.max(0.5, x(acc + v) - x(acc)).toFixed(1)}" ` +
          `height="${barH}" fill="${PALETTE[g] ?? '#888'}">` +
          `<title>${escapeXml(`${b.label.trim()}: ${GROUP_LABELS[g] ?? g} ${v.toFixed(3)} CPU-s/GB`)}</title></rect>`,
      );
      acc += v;
    }
    o.push(`<text x="${(x(acc) + 4).toFixed(1)}" y="${y + barH - 5}" fill="#222">${escapeXml(acc.toFixed(2))}</text>`);
  });
  groups.forEach((g, i) => {
    const lx = labelW + (i % legendCols) * legendColW;
    const ly = axisY + 50 + Math.floor(i / legendCols) * 16;
    const mark = COPY_SYSCALL_GROUPS.includes(g) ? ' *' : '';
    o.push(`<rect x="${lx}" y="${ly - 9}" width="10" height="10" fill="${PALETTE[g] ?? '#888'}"/>`);
    o.push(`<text x="${lx + 14}" y="${ly}" fill="#222">${escapeXml((GROUP_LABELS[g] ?? g) + mark)}</text>`);
  });
  o.push('</svg>');
  return o.join('\n') + '\n';
}
