// `weft scale`: a few real weft hosts against thousands of simulated ones (leases in etcd), and optionally the
// 3-member etcd failover run. Writes bench/results/scale-<timestamp>/{report.md,results.json,scale.svg}.
import { ConfigError } from '../../src/errors.js';
import { createLogger } from '../../src/log.js';
import { type FailoverResult, runFailover } from './failover.js';
import { writeScaleReport, scaleMarkdown } from './report.js';
import { runScale } from './runner.js';

export interface ScaleCliOptions {
  sizes?: string;
  hosts?: string;
  probes?: string;
  lookup?: string;
  kernel?: string;
  failover?: boolean;
  out?: string;
  json?: boolean;
}

function intList(flag: string, v: string | undefined, max: number): number[] | undefined {
  if (v === undefined) return undefined;
  if (v.trim() === '' || v === 'none') return [];
  const out = v.split(',').map((s) => Number(s.trim()));
  if (out.some((n) => !Number.isInteger(n) || n < 1 || n > max))
    throw new ConfigError(`--${flag}=${v}: want integers 1..${max}, comma-separated`);
  return out;
}

function int(flag: string, v: string | undefined, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new ConfigError(`--${flag}=${v}: want an integer ${min}..${max}`);
  return n;
}

export async function scaleCommand(o: ScaleCliOptions): Promise<void> {
  if (process.getuid?.() !== 0) throw new ConfigError('weft scale needs root (network namespaces, TUN devices)');
  const log = createLogger('info');
  const result = await runScale({
    sizes: intList('sizes', o.sizes, 25_000),
    realHosts: int('hosts', o.hosts, 1, 20),
    probes: int('probes', o.probes, 0, 1000),
    lookupSizes: intList('lookup', o.lookup, 100_000),
    kernelSizes: intList('kernel', o.kernel, 25_000),
    log,
  });
  let failover: FailoverResult | undefined;
  if (o.failover === true) failover = await runFailover({ log });
  const outDir = writeScaleReport(result, { outDir: o.out, failover });
  if (o.json === true) {
    process.stdout.write(JSON.stringify({ scale: result, failover: failover ?? null }, null, 2) + '\n');
    return;
  }
  process.stdout.write('\n' + scaleMarkdown(result, failover));
  process.stdout.write(`\nreport: ${outDir}/report.md (results.json, scale.svg beside it)\n`);
}
