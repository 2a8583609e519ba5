// `npm run demo` is the main job, so it is run here as a user runs it (`weft demo`, 1 s per throughput run): it must
// print three leases, a clean ping matrix and a throughput row per tier, exit 0, and leave none of its namespaces
// behind. Its namespaces are those of its testbed id (w<id>-*, the id its hosts' PublicIPs 198.18.<id>.N show):
// other testbeds on the machine come and go meanwhile.
// Bounded: 3 tiers x (6 pings of 3 probes + one 1-second iperf3 run); the whole run is killed after 180 s. `weft demo
// --ipv6` likewise: 12 pings of 3 probes, killed after 120 s.
import t from 'tap';
import { execFile } from 'node:child_process';
import { ip } from '../src/net/iproute.js';
import { WEFT_CLI } from '../testbed/cluster.js';

const TIERS = ['dgram', 'batch', 'offload'];

async function namespacesOf(id: string): Promise<string[]> {
  return (await ip(['netns', 'list']))
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => n.startsWith(`w${id}-`))
    .sort();
}

t.test('weft demo: leases, ping matrix and throughput per tier, then nothing left', async (t) => {
  const r = await new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
    execFile(
      process.execPath,
      [WEFT_CLI, 'demo', '--seconds=1', `--tiers=${TIERS.join(',')}`],
      { timeout: 180_000, killSignal: 'SIGINT', maxBuffer: 1 << 20 },
      (e, out, err) => resolve({ code: e ? (typeof e.code === 'number' ? e.code : 1) : 0, out, err }),
    );
  });
  t.equal(r.code, 0, `exit 0${r.code === 0 ? '' : `: ${r.err.slice(-1000)}`}`);
  const leases = r.out.slice(r.out.indexOf('leases (weft leases):'), r.out.indexOf('tier '));
  t.equal(new Set(leases.match(/10\.5\.\d+\.0\/24/g) ?? []).size, 3, 'three leases in the table');
  const ids = [...new Set([...leases.matchAll(/\b198\.18\.(\d+)\.\d+\b/g)].map((m) => m[1]!))];
  t.equal(ids.length, 1, `the hosts' PublicIPs name one testbed (${ids.join(', ')})`);
  for (const tier of TIERS) t.match(r.out, `tier ${tier}: pod-to-pod ping`, `a ping matrix for ${tier}`);
  t.equal(
    (r.out.match(/ ok \d+\.\d+ ms/g) ?? []).length,
    TIERS.length * 6,
    'every pod pinged every other pod, on every tier',
  );
  t.notMatch(r.out, /FAIL/, 'no failed ping');
  for (const tier of TIERS) {
    const row = new RegExp(`^\\s*${tier}\\s+udp\\s+(\\d+\\.\\d+)\\s`, 'm').exec(r.out);
    t.ok(row !== null && Number(row[1]) > 0, `throughput row for ${tier}: ${row?.[1] ?? 'missing'} Gbit/s`);
  }
  t.match(r.out, /cleaned up/, 'says it cleaned up');
  for (const id of ids) t.same(await namespacesOf(id), [], `no namespace of the demo (w${id}-*) left`);
});

t.test(
  'weft demo --ipv6: dual-stack leases, ping and ping6 on kernel vxlan, ping6 on batch, then nothing left',
  async (t) => {
    const r = await new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
      execFile(
        process.execPath,
        [WEFT_CLI, 'demo', '--ipv6'],
        { timeout: 120_000, killSignal: 'SIGINT', maxBuffer: 1 << 20 },
        (e, out, err) => resolve({ code: e ? (typeof e.code === 'number' ? e.code : 1) : 0, out, err }),
      );
    });
    t.equal(r.code, 0, `exit 0${r.code === 0 ? '' : `: ${r.err.slice(-1000)}`}`);
    const leases = r.out.slice(r.out.indexOf('leases (weft leases):'), r.out.indexOf('kernel vxlan:'));
    t.match(leases, /IPV6 SUBNET\s+PUBLIC IPV6/, 'the lease table has the IPv6 columns');
    t.equal(new Set(leases.match(/fd00:5:0:[0-9a-f]+::\/64/g) ?? []).size, 3, 'three IPv6 subnets in the table');
    const ids = [...new Set([...leases.matchAll(/\b198\.18\.(\d+)\.\d+\b/g)].map((m) => m[1]!))];
    t.equal(ids.length, 1, `the hosts' PublicIPs name one testbed (${ids.join(', ')})`);
    const six = r.out.slice(r.out.indexOf('ping6'), r.out.indexOf('userspace batch tier'));
    t.equal((six.match(/ ok \d+\.\d+ ms/g) ?? []).length, 6, 'every pod pinged6 every other pod');
    const user6 = r.out.slice(r.out.indexOf('userspace batch tier'));
    t.equal((user6.match(/ ok \d+\.\d+ ms/g) ?? []).length, 6, 'and again on the userspace batch tier');
    t.equal((r.out.match(/ ok \d+\.\d+ ms/g) ?? []).length, 18, 'and pinged it over IPv4');
    t.notMatch(r.out, /FAIL/, 'no failed ping');
    for (const id of ids) t.same(await namespacesOf(id), [], `no namespace of the demo (w${id}-*) left`);
  },
);
