// report.md's account of how far the figures can be trusted: the machine before the run, the foreign CPU of every
// test (foreign.ts), the tests run again or left disturbed, and the spread of every path's medians.
import { METRICS, type BenchResult, type MetricKey, type PathResult } from './schema.js';

/** The figures whose spread the report holds against SPREAD_TARGET. */
export const SPREAD_METRICS: readonly MetricKey[] = [
  'tcp1_gbps',
  'tcp4_gbps',
  'udp64_kpps',
  'udp1400_gbps',
  'lat_p50_us',
  'cpu_total_s_per_gb',
];
/** The spread the test length and repeats are chosen for: ± half the min..max range, relative to the median. */
export const SPREAD_TARGET = 0.1;

/** The largest ± half-spread of a path's SPREAD_METRICS, and which figure it is. */
export function widestSpread(p: PathResult): { metric: MetricKey; half: number } | null {
  let best: { metric: MetricKey; half: number } | null = null;
  for (const k of SPREAD_METRICS) {
    const s = p.summary[k];
    if (!s || s.n < 2) continue;
    if (!best || s.spread / 2 > best.half) best = { metric: k, half: s.spread / 2 };
  }
  return best;
}

/** Foreign CPU % of a path's tests: median and largest, tests run again, tests left disturbed. */
export function foreignOf(p: PathResult): { median: number; max: number; retried: number; disturbed: string[] } | null {
  const pcts = p.samples.map((s) => s.counters?.foreign?.pct).filter((x): x is number => typeof x === 'number');
  if (pcts.length === 0) return null;
  const sorted = [...pcts].sort((a, b) => a - b);
  return {
    median: sorted[Math.floor(sorted.length / 2)]!,
    max: sorted[sorted.length - 1]!,
    retried: p.samples.reduce((a, s) => a + (s.retriedForeignPct?.length ?? 0), 0),
    disturbed: p.samples.filter((s) => s.disturbed === true).map((s) => `${s.test} #${s.repeat}`),
  };
}

const pct = (x: number): string => `${x.toFixed(1)} %`;

/** perf's 'other processes' class in the profiled test, as a share of all CPUs over its window: the cross-check of
 *  the foreign CPU (it also holds etcd, perf and the bench, so it reads higher). */
export function perfOtherPct(p: PathResult, ncpu: number): number | null {
  const prof = p.profile;
  if (!prof?.ok || !(prof.windowSeconds > 0)) return null;
  const other = Object.values(prof.cpuSeconds.other).reduce((a, b) => a + b, 0);
  return (100 * other) / (prof.windowSeconds * Math.max(1, ncpu));
}

/** The machine's state before the run, one sentence ('' for results from before the check existed). */
export function quietSentence(r: BenchResult): string {
  const q = r.machine.quiet;
  if (!q) return '';
  return (
    `Before the run the machine was ${q.quiet ? 'quiet' : '**not quiet**'}: ${pct(q.foreignPct)} of its CPU ` +
    `went to other processes over ${q.seconds} s, 1-minute load average ${q.loadAvg1.toFixed(2)}` +
    (q.top.length > 0 ? ` (largest: ${q.top.join(', ')})` : '') +
    '.'
  );
}

export function renderLoadSection(r: BenchResult): string {
  const limit = r.settings.disturbedPct;
  const rows = r.paths
    .filter((p) => p.samples.length > 0)
    .map((p) => {
      const f = foreignOf(p);
      const w = widestSpread(p);
      const other = perfOtherPct(p, r.machine.cpus);
      const profiled = p.samples.find((s) => s.test === 'tcp1' && s.repeat === 1)?.counters?.foreign;
      return [
        p.name,
        f ? pct(f.median) : '-',
        f ? pct(f.max) : '-',
        f ? String(f.retried) : '-',
        f ? (f.disturbed.length > 0 ? f.disturbed.join(', ') : 'none') : '-',
        other !== null && profiled ? `${pct(profiled.pct)} / ${pct(other)}` : '',
        w ? `±${Math.round(w.half * 100)} % (${METRICS[w.metric].label})` : '- (one repeat)',
      ];
    });
  if (rows.length === 0) return '';
  const disturbed = r.paths.reduce((a, p) => a + p.samples.filter((s) => s.disturbed === true).length, 0);
  const widest = r.paths
    .map((p) => ({ p, w: widestSpread(p) }))
    .filter((x) => x.w !== null)
    .sort((a, b) => b.w!.half - a.w!.half)[0];
  const out = ['## Foreign load and spread', ''];
  const quiet = quietSentence(r);
  if (quiet) out.push(quiet, '');
  out.push(
    '*Foreign CPU*: the CPU the machine spent outside the testbed during a test, as a share of all its CPUs (the ' +
      "larger of: other processes' own CPU time between the test's start and end, and /proc/stat's busy time " +
      "left after the testbed's processes, ksoftirqd/kworker and all irq+softirq time, which also catches processes " +
      'that start and end inside the test). ' +
      (limit !== undefined
        ? `A test above ${limit} % runs again, up to ${r.settings.retries ?? 0} more times; if every attempt was ` +
          `above, the last one is kept and marked disturbed. ${disturbed} test(s) of this run are disturbed. `
        : '') +
      "*Profiled test*: the TCP 1-stream test of repeat 1, its foreign CPU beside perf's *other processes* class " +
      '(which also holds etcd, perf and the bench). ' +
      `*Widest spread*: the largest ± half of a median's min..max range over the repeats among the main figures, ` +
      `which the test length and repeats aim to keep within ±${SPREAD_TARGET * 100} %` +
      (widest ? `; in this run ±${Math.round(widest.w!.half * 100)} % (\`${widest.p.name}\`).` : '.'),
  );
  out.push('');
  const esc = (c: string): string => c.replace(/\|/g, '\\|');
  const header = [
    'path',
    'foreign CPU median',
    'foreign CPU max',
    'tests run again',
    'disturbed',
    'profiled test: foreign / perf other',
    'widest spread',
  ];
  out.push(`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`);
  for (const row of rows) out.push(`| ${row.map(esc).join(' | ')} |`);
  out.push('');
  return out.join('\n');
}
