// `weft demo` (npm run demo): a local etcd and three namespace hosts running weft, each with a pod behind a cni0
// bridge on its FLANNEL_SUBNET. Prints the lease table, a pod-to-pod ping matrix and a short iperf3 line per tier,
// then removes everything it made, also on Ctrl-C or failure. Traffic stays between the demo's own namespaces.
import { Cluster } from './cluster.js';
import type { Pod } from './hosts.js';
import { killChild } from './exec.js';
import { ping, runIperf, startIperfServer } from './traffic.js';
import { encapByName } from '../src/encap/index.js';
import { ConfigError } from '../src/errors.js';
import { formatTable } from '../src/util/table.js';

export interface DemoOptions {
  tiers: string[];
  encap: string;
  seconds: number;
}

export const HOSTS = [1, 2, 3];

export function say(line: string): void {
  process.stdout.write(line + '\n');
}

/** Every pod pings every other pod at the address `addr` gives (3 pings each); prints the matrix with RTTs. */
export async function printPingMatrix(cluster: Cluster, addr: (pod: Pod) => string | undefined): Promise<void> {
  const pods = HOSTS.map((n) => cluster.pods.get(n)!);
  const matrix: string[][] = [];
  for (const from of pods) {
    const cells = [`h${from.host} ${addr(from) ?? '?'}`];
    for (const to of pods) {
      const dst = addr(to);
      if (from === to || dst === undefined) {
        cells.push(from === to ? '-' : 'FAIL no address');
        continue;
      }
      const r = await ping(from, dst, { count: 3, timeoutSec: 2, intervalSec: 0.2 });
      cells.push(r.ok ? `ok ${r.rttAvgMs?.toFixed(3)} ms` : `FAIL ${r.lossPercent}% loss`);
    }
    matrix.push(cells);
  }
  process.stdout.write(formatTable(['from \\ to', ...pods.map((p) => `h${p.host} ${addr(p) ?? '?'}`)], matrix));
}

export async function runDemo(opts: DemoOptions): Promise<void> {
  const encap = encapByName(opts.encap);
  if (!encap || encap.nativeId === null) throw new ConfigError(`--encap ${opts.encap}: use udp, vxlan or geneve`);
  for (const t of opts.tiers) {
    if (t !== 'dgram' && t !== 'batch' && t !== 'offload') throw new ConfigError(`--tiers: unknown tier "${t}"`);
  }
  const seconds = Math.min(Math.max(1, opts.seconds), 30);

  say(`weft demo: 3 namespace hosts, etcd, Backend.Type=${encap.name}`);
  const cluster = await Cluster.create({
    hosts: HOSTS.length,
    network: { Network: '10.5.0.0/16', SubnetLen: 24, Backend: { Type: encap.name } },
  });
  try {
    const rows: string[][] = [];
    for (const [i, tier] of opts.tiers.entries()) {
      for (const n of HOSTS) await cluster.startDaemon(n, [`--tier=${tier}`]);
      if (i === 0) {
        for (const n of HOSTS) await cluster.ensurePod(n);
        say('\nleases (weft leases):');
        process.stdout.write(await cluster.weft(['leases', `--etcd-endpoints=${cluster.endpoint}`]));
      }
      say(`\ntier ${tier}: pod-to-pod ping (3 pings each)`);
      await printPingMatrix(cluster, (p) => p.ip);

      const server = await startIperfServer(cluster.pods.get(2)!, 5201);
      try {
        const r = await runIperf(cluster.pods.get(1)!, cluster.pods.get(2)!.ip, { seconds, streams: 1, port: 5201 });
        rows.push([tier, encap.name, (r.receivedBps / 1e9).toFixed(2), String(r.retransmits ?? '-')]);
      } catch (e) {
        rows.push([tier, encap.name, 'failed', e instanceof Error ? e.message.slice(0, 60) : String(e)]);
      } finally {
        await killChild(server);
      }
      for (const n of HOSTS) await cluster.stopDaemon(n);
    }
    say(`\nthroughput, pod h1 -> pod h2, 1 TCP stream, ${seconds} s (iperf3):`);
    process.stdout.write(formatTable(['tier', 'encap', 'Gbit/s', 'retransmits'], rows));
    say('\n(the bench, npm run bench, compares every path with kernel VXLAN in the same run)');
  } finally {
    await cluster.destroy();
    say('cleaned up: namespaces, etcd and daemons removed');
  }
}
