// The kernel backends (`--datapath kernel`) on real namespace hosts with a real etcd: vxlan as flanneld programs it,
// vxlan with DirectRouting, and host-gw.
//
//   bridge netns: bridge 198.18.<id>.254, etcd :2379
//   h1 ── h2 ── h3      each: weft daemon --datapath kernel -> flannel.1 (vxlan) or plain routes (host-gw),
//                       cni0 = FLANNEL_SUBNET gateway, pod .2
//
// Checks: pod ping matrix; the per-peer state matches flannel's layout; a deleted route comes back within the
// re-sync period (polled, bounded); a removed lease takes its neighbour, FDB entry and route along; an existing
// flannel.1 with wrong settings is replaced; the VtepMAC survives a restart; host-gw skips an off-L2 peer with an
// error line in the log.
import { readFileSync } from 'node:fs';
import t from 'tap';
import { PREFIX } from '../testbed/cluster.js';
import { ping } from '../testbed/traffic.js';
import { pingMatrix } from './helpers/traffic.js';
import { stableMac } from '../src/backend/vtep-mac.js';
import { formatMac } from '../src/encap/vxlan.js';
import { until } from './helpers/wait.js';
import { clusterFor, netConfig } from './helpers/cluster.js';
import { ipJson, leaseOf, routeTo } from './helpers/kernel.js';

const POLL_MS = 250;
/** Re-sync runs every 5 s; allow three periods before calling it a failure. */
const RESYNC_BOUND_MS = 15_000;

t.test('kernel vxlan, flannel layout, three hosts', async (t) => {
  const cluster = await clusterFor(t, 3, netConfig('10.5.0.0/16', 'vxlan'));
  const H = [1, 2, 3];

  // A leftover flannel.1 with wrong settings (other port, learning on) must be replaced on start.
  const h1 = cluster.tb.host(1);
  const pre = await cluster.tb.exec(h1, [
    'ip',
    'link',
    'add',
    'flannel.1',
    'type',
    'vxlan',
    'id',
    '1',
    'dstport',
    '4789',
    'learning',
  ]);
  t.equal(pre.code, 0, 'a stale flannel.1 (port 4789, learning) exists before the daemon starts');

  for (const n of H) await cluster.startDaemon(n, ['--datapath=kernel']);
  for (const n of H) await cluster.ensurePod(n);

  await t.test('device as flannel makes it; lease carries its MAC', async (t) => {
    for (const n of H) {
      const [link] = await ipJson(cluster, n, 'ip', ['-d', 'link', 'show', 'dev', 'flannel.1']);
      const info = (link?.['linkinfo'] as { info_data?: Record<string, unknown> } | undefined)?.info_data ?? {};
      t.equal(info['port'], 8472, `h${n}: dstport 8472`);
      t.equal(info['learning'], false, `h${n}: learning off`);
      t.equal(info['id'], 1, `h${n}: VNI 1`);
      t.equal(link?.['mtu'], 1450, `h${n}: MTU underlay-50`);
      const lease = (await leaseOf(cluster, n)).value;
      const mac = formatMac(stableMac(cluster.tb.hostIP(n), 1));
      t.same(
        lease,
        {
          PublicIP: cluster.tb.hostIP(n),
          PublicIPv6: null,
          BackendType: 'vxlan',
          BackendData: { VNI: 1, VtepMAC: mac },
        },
        `h${n}: lease as flanneld writes it`,
      );
      t.equal(link?.['address'], mac, `h${n}: device MAC = VtepMAC = stableMac(PublicIP, VNI)`);
      const [addr] = await ipJson(cluster, n, 'ip', ['-4', 'addr', 'show', 'dev', 'flannel.1']);
      const ai = (addr?.['addr_info'] as Array<Record<string, unknown>>)[0];
      t.equal(
        `${String(ai?.['local'])}/${String(ai?.['prefixlen'])}`,
        cluster.subnetOf(n)!.replace('/24', '/32'),
        `h${n}: address <subnet>.0/32`,
      );
      const env = readFileSync(cluster.daemons.get(n)!.subnetFile, 'utf8');
      t.match(env, /FLANNEL_MTU=1450/, `h${n}: FLANNEL_MTU=1450`);
    }
    // Per-peer state in h1 for h2.
    const s2 = cluster.subnetOf(2)!;
    const gw2 = s2.replace('/24', '');
    const mac2 = formatMac(stableMac(cluster.tb.hostIP(2), 1));
    const r = await routeTo(cluster, 1, s2);
    t.equal(r?.['gateway'], gw2, 'route via <peer subnet>.0');
    t.equal(r?.['dev'], 'flannel.1', 'route dev flannel.1');
    t.ok((r?.['flags'] as string[] | undefined)?.includes('onlink'), 'route onlink');
    const neigh = await ipJson(cluster, 1, 'ip', ['-4', 'neigh', 'show', gw2, 'dev', 'flannel.1']);
    t.equal(neigh[0]?.['lladdr'], mac2, 'neighbour <peer subnet>.0 -> peer VtepMAC');
    t.ok((neigh[0]?.['state'] as string[] | undefined)?.includes('PERMANENT'), 'neighbour permanent');
    const fdb = await ipJson(cluster, 1, 'bridge', ['fdb', 'show', 'dev', 'flannel.1']);
    t.ok(
      fdb.some((e) => e['mac'] === mac2 && e['dst'] === cluster.tb.hostIP(2)),
      'FDB VtepMAC -> peer PublicIP',
    );
  });

  await t.test('pod ping matrix', async (t) => {
    await pingMatrix(t, cluster, H);
  });

  await t.test('a deleted route, neighbour and FDB entry come back within the re-sync period', async (t) => {
    const s2 = cluster.subnetOf(2)!;
    const gw2 = s2.replace('/24', '');
    const mac2 = formatMac(stableMac(cluster.tb.hostIP(2), 1));
    const host = cluster.tb.host(1);
    for (const argv of [
      ['ip', 'route', 'del', s2],
      ['ip', 'neigh', 'del', gw2, 'dev', 'flannel.1'],
      ['bridge', 'fdb', 'del', mac2, 'dev', 'flannel.1', 'dst', cluster.tb.hostIP(2)],
    ]) {
      const r = await cluster.tb.exec(host, argv);
      t.equal(r.code, 0, `${argv.join(' ')}`);
    }
    t.equal(await routeTo(cluster, 1, s2), undefined, 'the route is gone');
    const back = await until(
      async () => {
        const r = await routeTo(cluster, 1, s2);
        const n = await ipJson(cluster, 1, 'ip', ['-4', 'neigh', 'show', gw2, 'dev', 'flannel.1']);
        const f = await ipJson(cluster, 1, 'bridge', ['fdb', 'show', 'dev', 'flannel.1']);
        return r?.['gateway'] === gw2 && n[0]?.['lladdr'] === mac2 && f.some((e) => e['mac'] === mac2);
      },
      RESYNC_BOUND_MS,
      POLL_MS,
    );
    t.ok(back, 'route, neighbour and FDB entry restored');
    const p = await ping(cluster.pods.get(1)!, cluster.pods.get(2)!.ip, { count: 2, timeoutSec: 3 });
    t.ok(p.ok, 'pods h1 -> h2 talk again');
  });

  await t.test('the VtepMAC and the device survive a daemon restart', async (t) => {
    const before = (await leaseOf(cluster, 2)).value;
    await cluster.stopDaemon(2);
    const [link] = await ipJson(cluster, 2, 'ip', ['link', 'show', 'dev', 'flannel.1']);
    t.ok(link, 'flannel.1 stays after SIGTERM');
    const p = await ping(cluster.pods.get(1)!, cluster.pods.get(2)!.ip, { count: 2, timeoutSec: 3 });
    t.ok(p.ok, 'pods keep talking while the daemon is down');
    await cluster.startDaemon(2, ['--datapath=kernel']);
    t.same((await leaseOf(cluster, 2)).value, before, 'same lease value (same VtepMAC) after the restart');
    const q = await ping(cluster.pods.get(1)!, cluster.pods.get(2)!.ip, { count: 2, timeoutSec: 3 });
    t.ok(q.ok, 'pods talk after the restart');
  });

  await t.test('a removed lease takes its neighbour, FDB entry and route along', async (t) => {
    const s3 = cluster.subnetOf(3)!;
    const gw3 = s3.replace('/24', '');
    const mac3 = formatMac(stableMac(cluster.tb.hostIP(3), 1));
    await cluster.stopDaemon(3);
    await cluster.etcdctl(['del', `${PREFIX}/subnets/${s3.replace('/', '-')}`]);
    for (const n of [1, 2]) {
      const gone = await until(
        async () => {
          const r = await routeTo(cluster, n, s3);
          const ne = await ipJson(cluster, n, 'ip', ['-4', 'neigh', 'show', gw3, 'dev', 'flannel.1']);
          const f = await ipJson(cluster, n, 'bridge', ['fdb', 'show', 'dev', 'flannel.1']);
          return r === undefined && ne.length === 0 && !f.some((e) => e['mac'] === mac3);
        },
        RESYNC_BOUND_MS,
        POLL_MS,
      );
      t.ok(gone, `h${n}: route, neighbour and FDB entry for h3 removed`);
    }
    const p = await ping(cluster.pods.get(1)!, cluster.pods.get(2)!.ip, { count: 2, timeoutSec: 3 });
    t.ok(p.ok, 'the remaining pods still talk');
  });
});

t.test('kernel vxlan with DirectRouting: same-L2 peers get plain routes', async (t) => {
  const network = JSON.parse(
    readFileSync(new URL('../config/network-vxlan-directrouting.json', import.meta.url), 'utf8'),
  ) as Record<string, unknown>;
  const cluster = await clusterFor(t, 2, network);
  for (const n of [1, 2]) await cluster.startDaemon(n, ['--datapath=kernel']);
  for (const n of [1, 2]) await cluster.ensurePod(n);
  for (const [a, b] of [
    [1, 2],
    [2, 1],
  ] as const) {
    const ok = await until(
      async () => {
        const r = await routeTo(cluster, a, cluster.subnetOf(b)!);
        return r?.['gateway'] === cluster.tb.hostIP(b) && r['dev'] === 'eth0';
      },
      5_000,
      POLL_MS,
    );
    t.ok(ok, `h${a}: route to h${b}'s subnet via ${cluster.tb.hostIP(b)} dev eth0`);
    const neigh = await ipJson(cluster, a, 'ip', ['-4', 'neigh', 'show', 'dev', 'flannel.1', 'nud', 'permanent']);
    t.equal(neigh.length, 0, `h${a}: no overlay neighbour entries for a direct peer`);
  }
  await pingMatrix(t, cluster, [1, 2]);
});

t.test("host-gw: routes via the peers' PublicIP", async (t) => {
  const cluster = await clusterFor(t, 3, netConfig('10.6.0.0/16', 'host-gw'));
  const H = [1, 2, 3];
  // A peer outside our L2 (a reservation in TEST-NET-1): reported and skipped, never routed.
  await cluster.etcdctl([
    'put',
    `${PREFIX}/subnets/10.6.200.0-24`,
    JSON.stringify({ PublicIP: '192.0.2.99', PublicIPv6: null, BackendType: 'host-gw' }),
  ]);
  for (const n of H) await cluster.startDaemon(n, ['--datapath=kernel']);
  for (const n of H) await cluster.ensurePod(n);

  for (const n of H) {
    const env = readFileSync(cluster.daemons.get(n)!.subnetFile, 'utf8');
    t.match(env, new RegExp(`FLANNEL_MTU=${cluster.tb.mtu}\\b`), `h${n}: FLANNEL_MTU = underlay MTU`);
  }
  const lease = (await leaseOf(cluster, 1)).value;
  t.same(
    lease,
    { PublicIP: cluster.tb.hostIP(1), PublicIPv6: null, BackendType: 'host-gw' },
    'lease as flanneld writes it (no BackendData)',
  );
  await pingMatrix(t, cluster, H);

  const s2 = cluster.subnetOf(2)!;
  const r = await routeTo(cluster, 1, s2);
  t.equal(r?.['gateway'], cluster.tb.hostIP(2), "route via the peer's PublicIP");
  t.equal(r?.['dev'], 'eth0', 'route dev eth0');
  t.equal(await routeTo(cluster, 1, '10.6.200.0/24'), undefined, 'no route to the off-L2 peer');
  const log = readFileSync(cluster.daemons.get(1)!.logFile, 'utf8');
  t.match(
    log,
    /"level":50[^\n]*192\.0\.2\.99[^\n]*same L2|"level":50[^\n]*same L2[^\n]*192\.0\.2\.99/,
    'the off-L2 peer is logged as an error',
  );

  const del = await cluster.tb.exec(cluster.tb.host(1), ['ip', 'route', 'del', s2]);
  t.equal(del.code, 0, 'route deleted by hand');
  const back = await until(
    async () => (await routeTo(cluster, 1, s2))?.['gateway'] === cluster.tb.hostIP(2),
    RESYNC_BOUND_MS,
    POLL_MS,
  );
  t.ok(back, 'the route comes back within the re-sync period');
  const p = await ping(cluster.pods.get(1)!, cluster.pods.get(2)!.ip, { count: 2, timeoutSec: 3 });
  t.ok(p.ok, 'pods h1 -> h2 talk again');
});
