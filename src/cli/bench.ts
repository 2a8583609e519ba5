// `weft bench` (npm run bench): every path (underlay, kernel VXLAN, host-gw, each weft tier x encap) on fresh
// namespace testbeds, repeated, with ratios against kernel VXLAN from the same run. Writes
// bench/results/<timestamp>/{results.json,report.md,*.svg}; prints the main table, or the result JSON with --json.
import { ConfigError } from '../errors.js';
import { runBench } from '../bench/runner.js';
import { terminalTable } from '../bench/report.js';

export interface BenchCliOptions {
  quick?: boolean;
  only?: string;
  repeats?: string;
  seconds?: string;
  roundTrips?: string;
  out?: string;
  json?: boolean;
}

function positiveInt(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new ConfigError(`--${flag}=${v}: want a positive integer`);
  return n;
}

export async function benchCommand(o: BenchCliOptions): Promise<void> {
  if (process.getuid?.() !== 0) throw new ConfigError('weft bench needs root (network namespaces, TUN devices)');
  const only = o.only?.split(',').map((s) => s.trim()).filter((s) => s !== '');
  const { result, outDir } = await runBench({
    quick: o.quick === true,
    only: only && only.length > 0 ? only : undefined,
    repeats: positiveInt('repeats', o.repeats),
    seconds: positiveInt('seconds', o.seconds),
    latencyRoundTrips: positiveInt('round-trips', o.roundTrips),
    outDir: o.out,
  });
  if (o.json === true) {
    process.stdout.write(JSON.stringify(result, null, 2) + '\n');
    return;
  }
  process.stdout.write('\n' + terminalTable(result));
  process.stdout.write(`\nreport: ${outDir}/report.md (results.json, charts beside it)\n`);
}
