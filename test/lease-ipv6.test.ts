// Dual-stack and IPv6-only leases against a real etcd (startEtcd on loopback): flannel's key forms, the values byte for
// byte as flanneld's Go encoder writes them, pair acquisition (reuse, previous subnets, random), exhaustion,
// reservations, renewal, re-acquire, and a flanneld-written dual-stack lease delivered as a peer.
import t from 'tap';
import { join } from 'node:path';
import { EtcdRegistry } from '../src/lease/registry.js';
import { LeaseManager } from '../src/lease/manager.js';
import { parseNetworkConfig, type NetworkConfig } from '../src/config/network.js';
import { type Lease, type LeaseEvent, serializeLeaseAttrs } from '../src/lease/lease.js';
import { formatSubnet, parseSubnet } from '../src/ip/subnet.js';
import { formatSubnet6, parseSubnet6 } from '../src/ip/ipv6.js';
import { NO_IPV4 } from '../src/ip/subnet-key.js';
import { readSubnetEnv, writeSubnetEnv } from '../src/lease/subnet-env.js';
import { NetworkExhaustedError } from '../src/errors.js';
import { silentLogger } from '../src/log.js';
import { sleep, waitFor } from './helpers/wait.js';
import { tempDir } from './helpers/tmp.js';
import { leaseEtcd } from './helpers/lease-etcd.js';

const env = leaseEtcd(t);
let n = 0;

const MAC4 = { VNI: 1, VtepMAC: 'aa:bb:cc:dd:ee:01' };
const MAC6 = { VNI: 1, VtepMAC: 'aa:bb:cc:dd:ee:02' };
const WAIT_MS = 15_000;

function setup(extra: Record<string, unknown> = {}) {
  const prefix = `/weft-test6-${++n}/network`;
  const json = JSON.stringify({
    Network: '10.5.0.0/16',
    EnableIPv6: true,
    IPv6Network: 'fd00:5::/48',
    Backend: { Type: 'vxlan' },
    ...extra,
  });
  const cfg = parseNetworkConfig(json);
  const reg = (): EtcdRegistry => env.registry(prefix);
  return { prefix, cfg, reg };
}

function manager(
  registry: EtcdRegistry,
  cfg: NetworkConfig,
  ip: string,
  ip6: string,
  more: Partial<ConstructorParameters<typeof LeaseManager>[0]> = {},
): LeaseManager {
  return new LeaseManager({
    registry,
    network: cfg,
    publicIP: cfg.enableIPv4 ? ip : '0.0.0.0',
    publicIPv6: ip6,
    backendType: 'vxlan',
    ...(cfg.enableIPv4 ? { backendData: MAC4 } : {}),
    backendV6Data: MAC6,
    log: silentLogger,
    ...more,
  });
}

/** The key's last part, as etcdctl would show it under <prefix>/subnets/. */
function keyTail(l: Lease): string {
  return l.key.slice(l.key.lastIndexOf('/') + 1);
}

t.test('dual-stack: one key for the pair, the value as flanneld writes it', async (t) => {
  const { cfg, reg } = setup();
  const r = reg();
  // The flag's spelling does not matter: flannel writes the address it parsed, canonically.
  const l = await manager(r, cfg, '192.0.2.1', 'FD00:0:0:0::11').acquire();
  t.match(keyTail(l), /^10\.5\.\d+\.0-24&fd00:5:0:[0-9a-f]+::-64$/, `key ${keyTail(l)}`);
  t.equal(l.subnet.prefixLen, 24);
  t.equal(l.ipv6Subnet?.prefixLen, 64);
  t.ok(l.ipv6Subnet!.ip >= cfg.ipv6!.subnetMin && l.ipv6Subnet!.ip <= cfg.ipv6!.subnetMax, 'in the IPv6 range');
  t.equal(
    await env.raw.get(l.key).string(),
    '{"PublicIP":"192.0.2.1","PublicIPv6":"fd00::11","BackendType":"vxlan",' +
      '"BackendData":{"VNI":1,"VtepMAC":"aa:bb:cc:dd:ee:01"},"BackendV6Data":{"VNI":1,"VtepMAC":"aa:bb:cc:dd:ee:02"}}',
    "flanneld's bytes: key order, canonical PublicIPv6, both backend data",
  );
  // host-gw in flannel writes no backend data at all, in neither family.
  const hg = await manager(reg(), cfg, '192.0.2.2', 'fd00::12', {
    backendType: 'host-gw',
    backendData: undefined,
    backendV6Data: undefined,
  }).acquire();
  t.equal(
    await env.raw.get(hg.key).string(),
    '{"PublicIP":"192.0.2.2","PublicIPv6":"fd00::12","BackendType":"host-gw"}',
  );
  const { leases } = await r.listLeases();
  const back = leases.find((x) => x.key === l.key)!;
  t.same(back.ipv6Subnet, l.ipv6Subnet, 'listed with its IPv6 subnet');
  t.equal(back.attrs.PublicIPv6, 'fd00::11');
});

t.test('IPv6-only: key 0.0.0.0-0&..., PublicIP 0.0.0.0, no BackendData; hosts told apart by PublicIPv6', async (t) => {
  const { cfg, reg } = setup({ EnableIPv4: false, Network: undefined });
  t.equal(cfg.enableIPv4, false);
  const a = await manager(reg(), cfg, '', 'fd00::21').acquire();
  t.match(keyTail(a), /^0\.0\.0\.0-0&fd00:5:0:[0-9a-f]+::-64$/);
  t.equal(
    await env.raw.get(a.key).string(),
    '{"PublicIP":"0.0.0.0","PublicIPv6":"fd00::21","BackendType":"vxlan",' +
      '"BackendV6Data":{"VNI":1,"VtepMAC":"aa:bb:cc:dd:ee:02"}}',
  );
  // flannel's LocalManager would find the first host's lease by PublicIP 0.0.0.0 and share it; weft matches PublicIPv6.
  const b = await manager(reg(), cfg, '', 'fd00::22').acquire();
  t.not(keyTail(b), keyTail(a), 'a second IPv6-only host gets its own subnet');
  const again = await manager(reg(), cfg, '', 'fd00::21').acquire();
  t.equal(again.key, a.key, 'a restart with the same PublicIPv6 reuses its lease');
});

t.test('restart reuses the pair by PublicIP; a lease without IPv6 from before EnableIPv6 is replaced', async (t) => {
  const { prefix, cfg, reg } = setup();
  const l1 = await manager(reg(), cfg, '192.0.2.7', 'fd00::7').acquire();
  const l2 = await manager(reg(), cfg, '192.0.2.7', 'fd00::77', {
    backendV6Data: { VNI: 1, VtepMAC: 'aa:bb:cc:dd:ee:99' },
  }).acquire();
  t.equal(l2.key, l1.key, 'same key');
  t.match(
    await env.raw.get(l1.key).string(),
    /"PublicIPv6":"fd00::77".*"BackendV6Data":\{"VNI":1,"VtepMAC":"aa:bb:cc:dd:ee:99"\}/,
  );

  // An IPv4-only lease of this host (written before the network enabled IPv6) no longer fits: it goes, and the host
  // gets a pair, its IPv4 half the previous subnet from subnet.env.
  const old = env.raw.lease(60, { autoKeepAlive: false });
  await old
    .put(`${prefix}/subnets/10.5.99.0-24`)
    .value('{"PublicIP":"192.0.2.8","PublicIPv6":null,"BackendType":"vxlan"}');
  const l3 = await manager(reg(), cfg, '192.0.2.8', 'fd00::8', {
    previousSubnet: parseSubnet('10.5.99.0/24'),
  }).acquire();
  t.match(keyTail(l3), /^10\.5\.99\.0-24&fd00:5:/, `key ${keyTail(l3)}`);
  t.equal(await env.raw.get(`${prefix}/subnets/10.5.99.0-24`).string(), null, 'the IPv4-only key is gone');
});

t.test('previous subnets from subnet.env: both halves when free, each family on its own', async (t) => {
  const { cfg, reg } = setup();
  const dir = tempDir(t, 'lease6');
  const path = join(dir, 'subnet.env');
  await writeSubnetEnv(path, {
    network: cfg.network,
    subnet: parseSubnet('10.5.77.0/24')!,
    ipv6: { network: cfg.ipv6!.network, subnet: parseSubnet6('fd00:5:0:77::/64')! },
    mtu: 1450,
    ipMasq: false,
  });
  const env = readSubnetEnv(path)!;
  const prev = { previousSubnet: env.subnet, previousIPv6Subnet: env.ipv6Subnet };
  const l = await manager(reg(), cfg, '192.0.2.8', 'fd00::8', prev).acquire();
  t.equal(keyTail(l), '10.5.77.0-24&fd00:5:0:77::-64');
  // Another host with the same previous pair (a copied subnet.env): both halves are taken, it gets others.
  const l2 = await manager(reg(), cfg, '192.0.2.9', 'fd00::9', prev).acquire();
  t.not(formatSubnet(l2.subnet), '10.5.77.0/24');
  t.not(formatSubnet6(l2.ipv6Subnet!), 'fd00:5:0:77::/64');
  // Only the IPv6 half of a third host's previous pair is free: it keeps that one.
  const l3 = await manager(reg(), cfg, '192.0.2.10', 'fd00::10', {
    previousSubnet: parseSubnet('10.5.77.0/24'),
    previousIPv6Subnet: parseSubnet6('fd00:5:0:78::/64'),
  }).acquire();
  t.not(formatSubnet(l3.subnet), '10.5.77.0/24', 'taken IPv4 half: another one');
  t.equal(formatSubnet6(l3.ipv6Subnet!), 'fd00:5:0:78::/64', 'free IPv6 half: kept');
});

t.test('the IPv6 range runs out: NetworkExhaustedError naming it', async (t) => {
  const { cfg, reg } = setup({ IPv6Network: 'fd00:5::/124' }); // /126 subnets, the first skipped: 3
  t.equal(cfg.ipv6!.subnetCount, 3n);
  const got = await Promise.all([1, 2, 3].map((i) => manager(reg(), cfg, `192.0.2.${i}`, `fd00::${i}`).acquire()));
  t.equal(new Set(got.map((l) => formatSubnet6(l.ipv6Subnet!))).size, 3, 'three distinct IPv6 subnets');
  const e = await manager(reg(), cfg, '192.0.2.4', 'fd00::4')
    .acquire()
    .catch((x: unknown) => x);
  t.ok(e instanceof NetworkExhaustedError);
  t.match((e as Error).message, /no free \/126 left in fd00:5::\/124 .*3 subnets, 3 taken/);
});

t.test('reservations: neither half is taken, the named host gets the pair and it stays a reservation', async (t) => {
  const { prefix, cfg, reg } = setup({ Network: '10.8.0.0/28', IPv6Network: 'fd00:8::/124' }); // 3 of each
  const keys = ['10.8.0.4-30&fd00:8::4-126', '10.8.0.8-30&fd00:8::8-126'].map((k) => `${prefix}/subnets/${k}`);
  for (const k of keys) {
    await env.raw.put(k).value('{"PublicIP":"198.51.100.1","PublicIPv6":"fd00::99","BackendType":"vxlan"}');
  }
  const l = await manager(reg(), cfg, '192.0.2.1', 'fd00::1').acquire();
  t.equal(keyTail(l), '10.8.0.12-30&fd00:8::c-126', 'the only pair nobody reserved');
  await t.rejects(manager(reg(), cfg, '192.0.2.2', 'fd00::2').acquire(), NetworkExhaustedError);
  const owner = await manager(reg(), cfg, '198.51.100.1', 'fd00::99').acquire();
  t.equal(owner.etcdLeaseId, null, 'a reservation');
  t.ok(keys.includes(owner.key));
  for (const k of keys) t.ok(await env.raw.get(k).string(), `${k} still there`);
});

t.test('renewal and re-acquire keep the dual-stack key', async (t) => {
  const { cfg, reg } = setup();
  const r = reg();
  const m = manager(r, cfg, '192.0.2.1', 'fd00::1', { ttlSeconds: 3 });
  const l = await m.acquire();
  const got: Lease[] = [];
  m.onLease((x) => got.push(x));
  const a = env.abortAtEnd();
  void m.run(a.signal);
  await sleep(6500); // 2x TTL: without renewal the key would be gone
  const now = await r.getLease(l.subnet, l.ipv6Subnet ?? null);
  t.ok(now, 'key still present after 2x TTL');
  t.not(now?.etcdLeaseId, l.etcdLeaseId, 'moved onto a fresh etcd lease');
  t.equal(m.stats.losses, 0);
  await env.raw.delete().key(l.key);
  await waitFor('re-acquired', () => got.length > 0, WAIT_MS);
  t.equal(got[0]!.key, l.key, 'the same pair again');
  a.abort();
});

t.test('a flanneld-written dual-stack lease (and an IPv6-only one) reach the peer watch', async (t) => {
  const { prefix, cfg, reg } = setup();
  const me = manager(reg(), cfg, '192.0.2.1', 'fd00::1');
  const mine = await me.acquire();
  // What flanneld's vxlan backend writes (json.Marshal of lease.LeaseAttrs: PublicIPv6 through ip.IP6's MarshalJSON,
  // BackendData and BackendV6Data as vxlanLeaseAttrs), under MakeSubnetKey's key.
  const flanneld =
    '{"PublicIP":"192.0.2.11","PublicIPv6":"fd00::b","BackendType":"vxlan",' +
    '"BackendData":{"VNI":1,"VtepMAC":"0e:4c:5e:21:0a:01"},"BackendV6Data":{"VNI":1,"VtepMAC":"0e:4c:5e:21:0a:02"}}';
  const only6 = '{"PublicIP":"0.0.0.0","PublicIPv6":"fd00::c","BackendType":"vxlan","BackendV6Data":null}';
  const lease = env.raw.lease(60, { autoKeepAlive: false });
  await lease.put(`${prefix}/subnets/10.5.52.0-24&fd00:5:0:34::-64`).value(flanneld);
  await lease.put(`${prefix}/subnets/0.0.0.0-0&fd00:5:0:35::-64`).value(only6);
  const events: LeaseEvent[] = [];
  const a = env.abortAtEnd();
  const done = me.watchPeers(a.signal, (evs) => events.push(...evs));
  await waitFor('both peers', () => events.length >= 2, WAIT_MS);
  const dual = events.find((e) => e.lease.attrs.PublicIP === '192.0.2.11')!.lease;
  t.equal(formatSubnet(dual.subnet), '10.5.52.0/24');
  t.equal(formatSubnet6(dual.ipv6Subnet!), 'fd00:5:0:34::/64');
  t.equal(dual.attrs.PublicIPv6, 'fd00::b');
  t.same(dual.attrs.BackendV6Data, { VNI: 1, VtepMAC: '0e:4c:5e:21:0a:02' });
  t.equal(serializeLeaseAttrs(dual.attrs), flanneld, 'written back byte for byte');
  const v6 = events.find((e) => e.lease.attrs.PublicIPv6 === 'fd00::c')!.lease;
  t.same(v6.subnet, NO_IPV4);
  t.equal(formatSubnet6(v6.ipv6Subnet!), 'fd00:5:0:35::/64');
  t.equal(serializeLeaseAttrs(v6.attrs), only6, 'null BackendV6Data kept as null');
  t.notOk(
    events.some((e) => e.lease.key === mine.key),
    'own lease never delivered',
  );
  await lease.revoke();
  await waitFor('removals', () => events.filter((e) => e.type === 'removed').length >= 2, WAIT_MS);
  t.same(
    events
      .filter((e) => e.type === 'removed')
      .map((e) => formatSubnet6(e.lease.ipv6Subnet!))
      .sort(),
    ['fd00:5:0:34::/64', 'fd00:5:0:35::/64'],
    'removals carry the IPv6 subnet',
  );
  a.abort();
  await done;
});

t.test('the network config gains IPv6 under a running manager: it stops with WEFT_ERR_NETWORK_CONFIG', async (t) => {
  const { cfg, reg } = setup({ EnableIPv6: false });
  const r = reg();
  await r.putNetworkConfig(JSON.stringify({ Network: '10.5.0.0/16', Backend: { Type: 'vxlan' } }));
  const m = new LeaseManager({
    registry: r,
    network: cfg,
    publicIP: '192.0.2.1',
    backendType: 'vxlan',
    followNetworkConfig: true,
    log: silentLogger,
  });
  const l = await m.acquire();
  const a = env.abortAtEnd();
  const run = m.run(a.signal).then(
    () => null,
    (e: unknown) => e as Error & { code?: string },
  );
  await sleep(300);
  await r.putNetworkConfig(
    JSON.stringify({
      Network: '10.5.0.0/16',
      EnableIPv6: true,
      IPv6Network: 'fd00:5::/48',
      Backend: { Type: 'vxlan' },
    }),
  );
  await env.raw.delete().key(l.key); // the manager re-reads the config before re-acquiring
  const e = await run;
  t.equal(e?.code, 'WEFT_ERR_NETWORK_CONFIG');
  t.match(e?.message, /10\.5\.0\.0\/16 \/24 vxlan -> 10\.5\.0\.0\/16 \/24 \+ fd00:5::\/48 \/64 vxlan/);
});
