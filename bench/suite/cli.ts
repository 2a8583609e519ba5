// `weft bench` (npm run bench): every path (underlay, kernel VXLAN, host-gw, each weft tier x encap) on fresh
// namespace testbeds, repeated, with ratios against kernel VXLAN from the same run. Writes
// bench/results/<timestamp>/{results.json,report.md,*.svg}; prints the main table, or the result JSON with --json.
import { ConfigError } from '../../src/errors.js';
import { runBench } from './runner.js';
import { terminalTable } from './report.js';
import { ALL_PATHS, QUICK_PATHS, REFERENCE_PATH, selectPaths, type Topology } from './paths.js';
import type { SocketBufferMode } from './sockbuf.js';
import { ensurePeerInstalled, isPeerName, PEER_NAMES } from './peers/index.js';

export interface BenchCliOptions {
  quick?: boolean;
  only?: string;
  topology?: string;
  repeats?: string;
  seconds?: string;
  roundTrips?: string;
  out?: string;
  json?: boolean;
  /** Add the peer overlays (wireguard-go, nebula, tinc); alone: the reference, weft's UDP paths and the peers. */
  peers?: boolean;
  /** perf CPU split per path (`--profile`; `--no-profile` gives false). Default: on without --quick when perf works. */
  profile?: boolean;
  /** False with `--no-idle-memory`. */
  idleMemory?: boolean;
  retries?: string;
  socketBuffers?: string;
}

// `--peers` alone compares like for like: kernel VXLAN (the reference), weft's UDP-encap tiers, weft's WireGuard
// (encrypted, as the peers are) and the three peers.
const PEER_RUN: readonly string[] = [
  REFERENCE_PATH,
  'dgram/udp',
  'batch/udp',
  'offload/udp',
  'batch/wireguard',
  'offload/wireguard',
  ...PEER_NAMES,
];

function pathsWithPeers(only: string[] | undefined, quick: boolean): string[] {
  const base = only ?? (quick ? [...QUICK_PATHS] : [...PEER_RUN]);
  const names = new Set([...base, ...PEER_NAMES]);
  return ALL_PATHS.map((p) => p.name).filter((n) => names.has(n));
}

/** Installs the selected peers' packages before the run, so their versions are in the titles; a failure is only
 * reported here (the path then fails with the same reason and the run goes on). */
async function preparePeers(names: readonly string[]): Promise<void> {
  for (const n of names.filter(isPeerName)) {
    process.stderr.write(`bench: ${n}: checking its Debian packages (installing when missing)\n`);
    try {
      process.stderr.write(`bench: ${n}: ${await ensurePeerInstalled(n)}\n`);
    } catch (e) {
      process.stderr.write(`bench: ${n}: not available: ${e instanceof Error ? e.message : String(e)}\n`);
    }
  }
}

function positiveInt(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new ConfigError(`--${flag}=${v}: want a positive integer`);
  return n;
}

function socketBuffersOf(v: string | undefined): SocketBufferMode | undefined {
  if (v === undefined) return undefined;
  if (v !== 'equal' && v !== 'os') throw new ConfigError(`--socket-buffers=${v}: want equal or os`);
  return v;
}

function retriesOf(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 5) throw new ConfigError(`--retries=${v}: want 0..5`);
  return n;
}

function topologyOf(v: string | undefined): Topology | undefined {
  if (v === undefined) return undefined;
  if (v !== 'pods' && v !== 'host') throw new ConfigError(`--topology=${v}: want pods or host`);
  return v;
}

export async function benchCommand(o: BenchCliOptions): Promise<void> {
  if (process.getuid?.() !== 0) throw new ConfigError('weft bench needs root (network namespaces, TUN devices)');
  const listed = o.only
    ?.split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  let only = listed && listed.length > 0 ? listed : undefined;
  if (o.peers === true) only = pathsWithPeers(only, o.quick === true);
  // selectPaths rejects unknown names, before anything is installed or built
  await preparePeers(selectPaths(only, o.quick === true).map((p) => p.name));
  const { result, outDir } = await runBench({
    quick: o.quick === true,
    only,
    repeats: positiveInt('repeats', o.repeats),
    seconds: positiveInt('seconds', o.seconds),
    latencyRoundTrips: positiveInt('round-trips', o.roundTrips),
    topology: topologyOf(o.topology),
    outDir: o.out,
    profile: o.profile,
    idleMemory: o.idleMemory,
    retries: retriesOf(o.retries),
    socketBuffers: socketBuffersOf(o.socketBuffers),
  });
  if (o.json === true) {
    process.stdout.write(JSON.stringify(result, null, 2) + '\n');
    return;
  }
  process.stdout.write('\n' + terminalTable(result));
  process.stdout.write(`\nreport: ${outDir}/report.md (results.json, charts beside it)\n`);
}
