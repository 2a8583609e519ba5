// Dual-stack overlays on the kernel backends (`--datapath kernel`), on namespace hosts with a dual-stack underlay and a
// real etcd:
//
//   bridge netns: bridge 198.18.<id>.254 + fd77:6566:74:<id>::254, etcd :2379
//   h1 ── h2 ── h3      eth0 198.18.<id>.N + fd77:6566:74:<id>::N; weft daemon --datapath kernel -> flannel.1 and
//                       flannel-v6.1 (vxlan) or plain routes (host-gw); pods by weft-cni with an IPv4 and an IPv6
//                       address (host-local, two range sets)
//
// Checks: leases in flannel's dual-stack key form with byte-exact values, subnet.env's IPv6 lines, flannel-v6.1 and
// its per-peer state as flanneld programs them, ping and ping6 matrices, the re-sync restoring a deleted IPv6 route,
// host-gw IPv6 routes via PublicIPv6, and a host programmed by hand exactly as flanneld programs its IPv6 side, with
// the lease flanneld would write, reaching and reached by weft hosts. Then one clear line each: a userspace daemon
// that cannot forward IPv6 (the offload tier with --queues 2; the tiers' IPv6 is test/userspace-ipv6.test.ts)
// saying (log and /status) that it forwards IPv4 only (its TUN without IPv6; IPv6 packets dropped as no_route), bad
// IPv6 configs refused by `weft network set` and by the daemon, and a host without a global IPv6 address.
import { readFileSync } from 'node:fs';
import t from 'tap';
import { type Cluster, PREFIX, WEFT_CLI } from '../testbed/cluster.js';
import { ping } from '../testbed/traffic.js';
import { stableMac } from '../src/backend/vtep-mac.js';
import { formatMac } from '../src/encap/vxlan.js';
import { formatIPv6, formatSubnet6, parseSubnet6 } from '../src/ip/ipv6.js';
import { keyToSubnets } from '../src/ip/subnet-key.js';
import { clusterFor, dualStackConfig } from './helpers/cluster.js';
import { ipJson, leaseOf, routeTo } from './helpers/kernel.js';
import { pingMatrix, statusOf } from './helpers/traffic.js';
import { until, waitFor } from './helpers/wait.js';

const POLL_MS = 250;
/** Re-sync runs every 5 s; allow three periods before calling it a failure. */
const RESYNC_BOUND_MS = 15_000;

/** The IPv6 subnet's network address ("fd00:5:0:3::"): a peer's gateway on flannel-v6.1. */
function gw6(subnet6: string): string {
  return formatIPv6(parseSubnet6(subnet6)!.ip);
}

function ip6Of(cluster: Cluster, n: number): string {
  const ip6 = cluster.tb.hostIP6(n);
  if (ip6 === undefined) throw new Error('the testbed has no IPv6 underlay');
  return ip6;
}

/** Waits (bounded) until the host's addresses on `dev` have left DAD: ping6 from a tentative address goes nowhere. */
async function settled6(cluster: Cluster, n: number, dev: string): Promise<boolean> {
  return until(
    async () => {
      const [link] = await ipJson(cluster, n, 'ip', ['-6', 'addr', 'show', 'dev', dev]);
      const info = (link?.['addr_info'] as Array<Record<string, unknown>> | undefined) ?? [];
      return info.length > 0 && info.every((a) => a['tentative'] !== true);
    },
    10_000,
    POLL_MS,
  );
}

t.test('kernel vxlan, dual-stack, three hosts', async (t) => {
  const cluster = await clusterFor(t, 3, dualStackConfig('vxlan'));
  const H = [1, 2, 3];
  for (const n of H) await cluster.startDaemon(n, ['--datapath=kernel']);
  for (const n of H) await cluster.ensurePod(n);

  await t.test("leases in flannel's dual-stack form, subnet.env's IPv6 lines", async (t) => {
    for (const n of H) {
      const key = cluster.leaseKeyOf(n)!;
      t.match(key, new RegExp(`^${PREFIX}/subnets/10\\.5\\.\\d+\\.0-24&fd00:5:0:[0-9a-f]+::-64$`), `h${n}: ${key}`);
      const mac4 = formatMac(stableMac(cluster.tb.hostIP(n), 1));
      const mac6 = formatMac(stableMac(ip6Of(cluster, n), 1));
      t.equal(
        (await leaseOf(cluster, n)).text,
        `{"PublicIP":"${cluster.tb.hostIP(n)}","PublicIPv6":"${ip6Of(cluster, n)}","BackendType":"vxlan",` +
          `"BackendData":{"VNI":1,"VtepMAC":"${mac4}"},"BackendV6Data":{"VNI":1,"VtepMAC":"${mac6}"}}`,
        `h${n}: the value flanneld writes, byte for byte`,
      );
      const env = readFileSync(cluster.daemons.get(n)!.subnetFile, 'utf8');
      const sn6 = cluster.ipv6SubnetOf(n)!;
      t.equal(
        env,
        `FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=${cluster.daemons.get(n)!.subnetGateway}\n` +
          `FLANNEL_IPV6_NETWORK=fd00:5::/48\nFLANNEL_IPV6_SUBNET=${gw6(sn6)}1/64\n` +
          'FLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n',
        `h${n}: subnet.env as flannel writes it`,
      );
      t.ok(cluster.pods.get(n)?.ip6?.startsWith(gw6(sn6)), `h${n}: the pod has an address in ${sn6}`);
    }
  });

  await t.test('flannel-v6.1 and its per-peer state as flanneld programs them', async (t) => {
    for (const n of H) {
      const [link] = await ipJson(cluster, n, 'ip', ['-d', 'link', 'show', 'dev', 'flannel-v6.1']);
      const info = (link?.['linkinfo'] as { info_data?: Record<string, unknown> } | undefined)?.info_data ?? {};
      t.equal(info['local6'], ip6Of(cluster, n), `h${n}: local = PublicIPv6`);
      t.equal(info['port'], 8472, `h${n}: dstport 8472`);
      t.equal(info['learning'], false, `h${n}: learning off`);
      t.equal(info['id'], 1, `h${n}: VNI 1`);
      t.equal(link?.['mtu'], 1430, `h${n}: MTU underlay-70, the most the kernel gives flannel's device`);
      t.equal(link?.['address'], formatMac(stableMac(ip6Of(cluster, n), 1)), `h${n}: MAC = BackendV6Data's VtepMAC`);
      const [addr] = await ipJson(cluster, n, 'ip', ['-6', 'addr', 'show', 'dev', 'flannel-v6.1', 'scope', 'global']);
      // ip prints an empty object for each address the scope filter leaves out.
      const ai = (addr?.['addr_info'] as Array<Record<string, unknown>>)
        .filter((a) => a['local'] !== undefined)
        .map((a) => `${String(a['local'])}/${String(a['prefixlen'])}`);
      t.same(ai, [`${gw6(cluster.ipv6SubnetOf(n)!)}/128`], `h${n}: address <IPv6 subnet>/128`);
      const ra = await cluster.tb.exec(cluster.tb.host(n), ['cat', '/proc/sys/net/ipv6/conf/flannel-v6.1/accept_ra']);
      t.equal(ra.stdout.trim(), '0', `h${n}: accept_ra 0`);
    }
    const s2 = cluster.ipv6SubnetOf(2)!;
    const mac2 = formatMac(stableMac(ip6Of(cluster, 2), 1));
    const ok = await until(
      async () => (await routeTo(cluster, 1, s2, 6))?.['gateway'] === gw6(s2),
      RESYNC_BOUND_MS,
      POLL_MS,
    );
    t.ok(ok, `h1: route to ${s2} present`);
    const r = await routeTo(cluster, 1, s2, 6);
    t.equal(r?.['gateway'], gw6(s2), 'route via <peer IPv6 subnet>::');
    t.equal(r?.['dev'], 'flannel-v6.1', 'route dev flannel-v6.1');
    t.ok((r?.['flags'] as string[] | undefined)?.includes('onlink'), 'route onlink');
    const neigh = await ipJson(cluster, 1, 'ip', ['-6', 'neigh', 'show', gw6(s2), 'dev', 'flannel-v6.1']);
    t.equal(neigh[0]?.['lladdr'], mac2, 'neighbour <peer IPv6 subnet>:: -> peer VtepMAC6');
    t.ok((neigh[0]?.['state'] as string[] | undefined)?.includes('PERMANENT'), 'neighbour permanent');
    const fdb = await ipJson(cluster, 1, 'bridge', ['fdb', 'show', 'dev', 'flannel-v6.1']);
    t.ok(
      fdb.some((e) => e['mac'] === mac2 && e['dst'] === ip6Of(cluster, 2)),
      'FDB VtepMAC6 -> peer PublicIPv6',
    );
  });

  await t.test('ping and ping6 matrices between pods', async (t) => {
    await pingMatrix(t, cluster, H);
    await pingMatrix(t, cluster, H, 6);
  });

  await t.test('a deleted IPv6 route, neighbour and FDB entry come back within the re-sync period', async (t) => {
    const s2 = cluster.ipv6SubnetOf(2)!;
    const mac2 = formatMac(stableMac(ip6Of(cluster, 2), 1));
    for (const argv of [
      ['ip', '-6', 'route', 'del', s2],
      ['ip', '-6', 'neigh', 'del', gw6(s2), 'dev', 'flannel-v6.1'],
      ['bridge', 'fdb', 'del', mac2, 'dev', 'flannel-v6.1', 'dst', ip6Of(cluster, 2)],
    ]) {
      const r = await cluster.tb.exec(cluster.tb.host(1), argv);
      t.equal(r.code, 0, argv.join(' '));
    }
    const back = await until(
      async () => {
        const r = await routeTo(cluster, 1, s2, 6);
        const ne = await ipJson(cluster, 1, 'ip', ['-6', 'neigh', 'show', gw6(s2), 'dev', 'flannel-v6.1']);
        const f = await ipJson(cluster, 1, 'bridge', ['fdb', 'show', 'dev', 'flannel-v6.1']);
        return r?.['gateway'] === gw6(s2) && ne[0]?.['lladdr'] === mac2 && f.some((e) => e['mac'] === mac2);
      },
      RESYNC_BOUND_MS,
      POLL_MS,
    );
    t.ok(back, 'route, neighbour and FDB entry restored');
    const p = await ping(cluster.pods.get(1)!, cluster.pods.get(2)!.ip6!, { count: 2, timeoutSec: 3 });
    t.ok(p.ok, 'pods h1 -> h2 talk IPv6 again');
  });
});

t.test("host-gw, dual-stack: IPv6 routes via the peers' PublicIPv6", async (t) => {
  const cluster = await clusterFor(t, 3, dualStackConfig('host-gw'));
  const H = [1, 2, 3];
  for (const n of H) await cluster.startDaemon(n, ['--datapath=kernel']);
  for (const n of H) await cluster.ensurePod(n);
  t.equal(
    (await leaseOf(cluster, 1)).text,
    `{"PublicIP":"${cluster.tb.hostIP(1)}","PublicIPv6":"${ip6Of(cluster, 1)}","BackendType":"host-gw"}`,
    'lease as flanneld writes it (no backend data in either family)',
  );
  for (const n of [2, 3]) {
    const s = cluster.ipv6SubnetOf(n)!;
    const ok = await until(
      async () => {
        const r = await routeTo(cluster, 1, s, 6);
        return r?.['gateway'] === ip6Of(cluster, n) && r['dev'] === 'eth0';
      },
      RESYNC_BOUND_MS,
      POLL_MS,
    );
    t.ok(ok, `h1: ${s} via ${ip6Of(cluster, n)} dev eth0`);
  }
  await pingMatrix(t, cluster, H);
  await pingMatrix(t, cluster, H, 6);
});

t.test('a host programmed as flanneld programs IPv6, with the lease flanneld writes, both ways', async (t) => {
  const cluster = await clusterFor(t, 3, dualStackConfig('vxlan'));
  for (const n of [1, 2]) await cluster.startDaemon(n, ['--datapath=kernel']);
  const pod1 = await cluster.ensurePod(1);
  const h3 = cluster.tb.host(3);
  const ip3 = ip6Of(cluster, 3);
  // h3 is flanneld's: its lease under MakeSubnetKey's key, the value json.Marshal writes, on an etcd lease.
  const mac3 = '0e:4c:5e:21:0a:02';
  const sn3 = 'fd00:5:0:ff03::/64';
  const key3 = `${PREFIX}/subnets/10.5.203.0-24&${formatSubnet6(parseSubnet6(sn3)!).replace('/', '-')}`;
  const value3 =
    `{"PublicIP":"${h3.ip}","PublicIPv6":"${ip3}","BackendType":"vxlan",` +
    `"BackendData":{"VNI":1,"VtepMAC":"0e:4c:5e:21:0a:01"},"BackendV6Data":{"VNI":1,"VtepMAC":"${mac3}"}}`;
  const grant = await cluster.etcdctl(['lease', 'grant', '600']);
  const id = /lease ([0-9a-f]+) granted/.exec(grant)?.[1];
  t.ok(id, 'an etcd lease for it');
  await cluster.etcdctl(['put', `--lease=${id}`, key3, value3]);
  // ...and its flannel-v6.1 as pkg/backend/vxlan makes it: newVXLANDevice, ConfigureIPv6 (subnet::/128), up.
  const sh = async (argv: string[]): Promise<void> => {
    const r = await cluster.tb.exec(h3, argv);
    if (r.code !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`);
  };
  await sh([
    'ip',
    'link',
    'add',
    'flannel-v6.1',
    'address',
    mac3,
    'mtu',
    '1450',
    'type',
    'vxlan',
    'id',
    '1',
    'dstport',
    '8472',
    'local',
    ip3,
    'dev',
    'eth0',
    'nolearning',
  ]);
  await sh(['ip', 'addr', 'add', `${gw6(sn3)}/128`, 'dev', 'flannel-v6.1']);
  await sh(['ip', 'link', 'set', 'flannel-v6.1', 'up']);
  // handleSubnetEvents for each weft peer's lease, as flanneld reads it from etcd: AddV6ARP, AddV6FDB, the route.
  for (const n of [1, 2]) {
    const peer = (await leaseOf(cluster, n)).value;
    const sn = keyToSubnets(cluster.leaseKeyOf(n)!)!.ipv6Subnet!;
    const mac = (peer['BackendV6Data'] as { VtepMAC: string }).VtepMAC;
    const gw = formatIPv6(sn.ip);
    await sh(['ip', 'neigh', 'replace', gw, 'lladdr', mac, 'dev', 'flannel-v6.1', 'nud', 'permanent']);
    await sh([
      'bridge',
      'fdb',
      'append',
      mac,
      'dev',
      'flannel-v6.1',
      'dst',
      String(peer['PublicIPv6']),
      'self',
      'permanent',
    ]);
    await sh(['ip', 'route', 'replace', formatSubnet6(sn), 'via', gw, 'dev', 'flannel-v6.1', 'onlink']);
  }

  await waitFor(
    "h1 programs flanneld's h3",
    async () => (await routeTo(cluster, 1, sn3, 6))?.['gateway'] === gw6(sn3),
    RESYNC_BOUND_MS,
    POLL_MS,
  );
  const neigh = await ipJson(cluster, 1, 'ip', ['-6', 'neigh', 'show', gw6(sn3), 'dev', 'flannel-v6.1']);
  t.equal(neigh[0]?.['lladdr'], mac3, "h1: neighbour for h3 from its lease's BackendV6Data");
  const fdb = await ipJson(cluster, 1, 'bridge', ['fdb', 'show', 'dev', 'flannel-v6.1']);
  t.ok(
    fdb.some((e) => e['mac'] === mac3 && e['dst'] === ip3),
    "h1: FDB entry to h3's PublicIPv6",
  );
  t.ok(await settled6(cluster, 3, 'flannel-v6.1'), "h3's overlay address has left DAD");
  const there = await ping(pod1, gw6(sn3), { count: 3, timeoutSec: 3 });
  t.ok(there.ok, `weft pod h1 ${pod1.ip6 ?? '?'} -> flanneld host h3 ${gw6(sn3)}`);
  const back = await ping(h3, pod1.ip6!, { count: 3, timeoutSec: 3 });
  t.ok(back.ok, `flanneld host h3 -> weft pod h1 ${pod1.ip6 ?? '?'}`);
});

/** A `weft` command run to its end in host n; its exit code and the lines it printed that start "weft: ". */
async function weftLines(
  cluster: Cluster,
  n: number,
  args: string[],
): Promise<{ code: number | null; lines: string[] }> {
  const r = await cluster.tb.exec(cluster.tb.host(n), [process.execPath, WEFT_CLI, ...args], { timeoutMs: 20_000 });
  return { code: r.code, lines: r.stderr.split('\n').filter((l) => l.startsWith('weft: ')) };
}

t.test('one clear line each: the userspace tier, bad IPv6 configs, no global IPv6 address', async (t) => {
  const cluster = await clusterFor(t, 2, dualStackConfig('vxlan'));
  const etcd = `--etcd-endpoints=${cluster.endpoint}`;

  await t.test('a userspace daemon without IPv6 says so, at start and in /status', async (t) => {
    const d = await cluster.startDaemon(1, ['--healthz-port=8471', '--tier=offload', '--queues=2']);
    const notes = readFileSync(d.logFile, 'utf8')
      .split('\n')
      .filter((l) => l.includes('forwards IPv4 only'));
    t.equal(notes.length, 1, 'one log line at start');
    const s = await statusOf(cluster.tb, cluster.tb.host(1), 8471);
    t.equal(s.ipv6?.network, 'fd00:5::/48', '/status: the IPv6 network');
    t.equal(s.ipv6?.publicIpv6, ip6Of(cluster, 1), '/status: PublicIPv6');
    t.equal(s.ipv6?.forwarded, false, '/status: IPv6 not forwarded');
    t.match(s.ipv6?.note ?? '', /forwards IPv4 only: .*--queues > 1/, '/status: and why');
    t.equal(s.lease?.ipv6Subnet, cluster.ipv6SubnetOf(1), '/status: the lease has its IPv6 subnet');
  });

  await t.test('its TUN has no IPv6; IPv6 packets that reach it anyway are no_route, not malformed', async (t) => {
    const h1 = cluster.tb.host(1);
    const sysctl = '/proc/sys/net/ipv6/conf/weft0/disable_ipv6';
    t.equal((await cluster.tb.exec(h1, ['cat', sysctl])).stdout.trim(), '1', 'IPv6 off on weft0');
    t.same(await ipJson(cluster, 1, 'ip', ['-6', 'addr', 'show', 'dev', 'weft0']), [], 'no IPv6 address on weft0');
    const counters = async (): Promise<Readonly<Record<string, number>>> =>
      (await statusOf(cluster.tb, h1, 8471)).counters;
    const before = await counters();
    t.equal(before['drop_malformed'] ?? 0, 0, 'no malformed drop on the idle daemon');
    // Turned back on by hand, with a route into the TUN: the kernel's chatter and three pings reach weft.
    for (const argv of [
      ['sh', '-c', `echo 0 > ${sysctl}`],
      ['ip', '-6', 'route', 'add', 'fd00:5::/48', 'dev', 'weft0'],
    ]) {
      t.equal((await cluster.tb.exec(h1, argv)).code, 0, argv.join(' '));
    }
    await cluster.tb.exec(h1, ['ping', '-6', '-c', '3', '-i', '0.2', '-W', '1', 'fd00:5:0:1::1']);
    const seen = await until(
      async () => ((await counters())['drop_no_route'] ?? 0) - (before['drop_no_route'] ?? 0) >= 3,
      10_000,
      POLL_MS,
    );
    t.ok(seen, 'the three pings counted as drop_no_route');
    t.equal((await counters())['drop_malformed'] ?? 0, 0, 'none as malformed');
    await cluster.stopDaemon(1);
  });

  await t.test('bad IPv6 network configs: weft network set and the daemon refuse them with one line', async (t) => {
    const bad: Array<[Record<string, unknown>, RegExp]> = [
      [{ ...dualStackConfig('vxlan'), IPv6SubnetLen: 127 }, /IPv6SubnetLen 127: must be at most 126/],
      [
        { ...dualStackConfig('vxlan'), IPv6Network: 'fd00::/125' },
        /too small: the smallest useful IPv6Network is a \/124/,
      ],
      [{ ...dualStackConfig('vxlan'), IPv6Network: undefined }, /IPv6Network null: required with EnableIPv6/],
    ];
    for (const [config, why] of bad) {
      const json = JSON.stringify(config);
      const set = await weftLines(cluster, 1, ['network', 'set', json, etcd, '--etcd-prefix=/weft-bad/network']);
      t.ok(set.code !== null && set.code !== 0, `network set ${json}: refused (exit ${String(set.code)})`);
      t.equal(set.lines.length, 1, 'one line');
      t.match(set.lines[0] ?? '', why, set.lines[0] ?? '(none)');
      // The daemon reads the same config written behind weft's back.
      await cluster.etcdctl(['put', '/weft-bad/network/config', json]);
      const d = await weftLines(cluster, 1, ['daemon', etcd, '--etcd-prefix=/weft-bad/network', '--iface=eth0']);
      t.ok(d.code !== null && d.code !== 0, `the daemon stops (exit ${String(d.code)})`);
      t.equal(d.lines.length, 1, 'one line');
      t.match(d.lines[0] ?? '', why, d.lines[0] ?? '(none)');
    }
    await cluster.etcdctl(['del', '--prefix', '/weft-bad/']);
  });

  await t.test('a host without a global IPv6 address stops the daemon with one line', async (t) => {
    const flush = await cluster.tb.exec(cluster.tb.host(2), [
      'ip',
      '-6',
      'addr',
      'flush',
      'dev',
      'eth0',
      'scope',
      'global',
    ]);
    t.equal(flush.code, 0, 'h2: eth0 keeps only its link-local IPv6 address');
    const leases = async (): Promise<string> =>
      cluster.etcdctl(['get', '--prefix', '--keys-only', `${PREFIX}/subnets/`]);
    const before = await leases();
    for (const datapath of ['kernel', 'userspace']) {
      const d = await weftLines(cluster, 2, [
        'daemon',
        etcd,
        '--iface=eth0',
        `--datapath=${datapath}`,
        `--subnet-file=${cluster.subnetFile(2)}`,
      ]);
      t.equal(d.code, 2, `--datapath ${datapath}: exit 2`);
      t.same(
        d.lines,
        [
          'weft: the network config enables IPv6, but interface eth0 has no global IPv6 address: ' +
            'give it one, or pick another interface with --iface',
        ],
        'the one line',
      );
    }
    t.equal(await leases(), before, 'no lease taken');
    t.equal(cluster.subnetOf(2), null, 'no subnet.env written');
  });
});
