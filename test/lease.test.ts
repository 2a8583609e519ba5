// Lease registry + manager against a real etcd (startEtcd on loopback). Each subtest uses its own prefix.
import t from 'tap';
import { getEventListeners } from 'node:events';
import { join } from 'node:path';
import { EtcdRegistry } from '../src/lease/registry.js';
import { LeaseManager } from '../src/lease/manager.js';
import { parseNetworkConfig, type NetworkConfig } from '../src/config/network.js';
import { type Lease, type LeaseEvent, parseLeaseAttrs, serializeLeaseAttrs } from '../src/lease/lease.js';
import { formatSubnet, parseSubnet, subnetToKey } from '../src/ip/subnet.js';
import { readSubnetEnv, writeSubnetEnv } from '../src/lease/subnet-env.js';
import { NetworkExhaustedError } from '../src/errors.js';
import { silentLogger } from '../src/log.js';
import { sleep, until, waitFor } from './helpers/wait.js';
import { tempDir } from './helpers/tmp.js';
import { leaseEtcd } from './helpers/lease-etcd.js';

const env = leaseEtcd(t);
let n = 0;

function setup(network = '10.5.0.0/16', extra: Record<string, unknown> = {}) {
  const prefix = `/weft-test-${++n}/network`;
  const json = JSON.stringify({ Network: network, Backend: { Type: 'vxlan' }, ...extra });
  const cfg = parseNetworkConfig(json);
  const reg = (): EtcdRegistry => env.registry(prefix);
  return { prefix, cfg, reg, json };
}

function manager(
  registry: EtcdRegistry,
  cfg: NetworkConfig,
  ip: string,
  more: Partial<ConstructorParameters<typeof LeaseManager>[0]> = {},
) {
  return new LeaseManager({
    registry,
    network: cfg,
    publicIP: ip,
    backendType: 'vxlan',
    backendData: { VNI: 1, VtepMAC: 'aa:bb:cc:dd:ee:01' },
    log: silentLogger,
    ...more,
  });
}

function runInBackground(m: LeaseManager): AbortController {
  const a = env.abortAtEnd();
  void m.run(a.signal);
  return a;
}

/** How long a lease change may take to show (etcd may be down for a moment meanwhile). */
const WAIT_MS = 15_000;

t.test('config round trip and acquire', async (t) => {
  const { cfg, reg, json } = setup();
  const r = reg();
  t.equal(await r.getNetworkConfig(), null);
  await r.putNetworkConfig(json);
  t.equal(await r.getNetworkConfig(), json);
  const m = manager(r, cfg, '192.0.2.1');
  const l = await m.acquire();
  t.equal(l.subnet.prefixLen, 24);
  t.ok(l.subnet.ip >= cfg.subnetMin && l.subnet.ip <= cfg.subnetMax);
  t.not(l.etcdLeaseId, null);
  t.ok(l.expiresAt! > Date.now() + 86000_000);
  const { leases } = await r.listLeases();
  t.equal(leases.length, 1);
  t.equal(leases[0]!.attrs.PublicIP, '192.0.2.1');
  t.same(m.lease, l);
});

t.test('renew with a short TTL keeps the key', async (t) => {
  const { cfg, reg } = setup();
  const r = reg();
  const m = manager(r, cfg, '192.0.2.1', { ttlSeconds: 3 });
  const l = await m.acquire();
  const a = runInBackground(m);
  await sleep(6500); // 2x TTL: without renewal the key would be gone
  const now = await r.getLease(l.subnet);
  t.ok(now, 'key still present after 2x TTL');
  t.not(now!.etcdLeaseId, l.etcdLeaseId, 'moved onto a fresh etcd lease');
  a.abort();
});

t.test('restart with the same PublicIP reuses the subnet, attrs updated', async (t) => {
  const { cfg, reg } = setup();
  const l1 = await manager(reg(), cfg, '192.0.2.7').acquire();
  const m2 = manager(reg(), cfg, '192.0.2.7', { backendData: { VNI: 1, VtepMAC: 'aa:bb:cc:dd:ee:99' } });
  const l2 = await m2.acquire();
  t.same(l2.subnet, l1.subnet);
  const stored = await reg().getLease(l1.subnet);
  t.same(stored!.attrs.BackendData, { VNI: 1, VtepMAC: 'aa:bb:cc:dd:ee:99' });
});

t.test('previous subnet from subnet.env is honored', async (t) => {
  const { cfg, reg } = setup();
  const dir = tempDir(t, 'lease');
  const path = join(dir, 'subnet.env');
  await writeSubnetEnv(path, { network: cfg.network, subnet: parseSubnet('10.5.77.0/24')!, mtu: 1450, ipMasq: false });
  const prev = readSubnetEnv(path)?.subnet ?? null;
  const l = await manager(reg(), cfg, '192.0.2.8', { previousSubnet: prev }).acquire();
  t.equal(formatSubnet(l.subnet), '10.5.77.0/24');
  // Taken by someone else now: a different subnet.
  const l2 = await manager(reg(), cfg, '192.0.2.9', { previousSubnet: prev }).acquire();
  t.not(formatSubnet(l2.subnet), '10.5.77.0/24');
});

t.test('16 concurrent managers share 16 subnets; a 17th is refused', async (t) => {
  // /26 network with /30 subnets: 16 subnets, minus the first = 15; widen with SubnetMin at the network.
  const { cfg, reg } = setup('10.9.0.0/26', { SubnetLen: 30, SubnetMin: '10.9.0.0' });
  t.equal(cfg.subnetCount, 16);
  const ms = Array.from({ length: 16 }, (_, i) => manager(reg(), cfg, `192.0.2.${100 + i}`));
  const leases = await Promise.all(ms.map((m) => m.acquire()));
  t.equal(new Set(leases.map((l) => formatSubnet(l.subnet))).size, 16, '16 distinct subnets');
  await t.rejects(manager(reg(), cfg, '192.0.2.200').acquire(), NetworkExhaustedError);
  try {
    await manager(reg(), cfg, '192.0.2.200').acquire();
  } catch (e) {
    t.match((e as Error).message, /10\.9\.0\.0\/26.*16 subnets, 16 taken/);
  }
});

t.test('reservations are never taken and never deleted', async (t) => {
  const { prefix, cfg, reg } = setup('10.8.0.0/28'); // /30 subnets: 3 allocatable
  const keys = ['10.8.0.4-30', '10.8.0.8-30'].map((k) => `${prefix}/subnets/${k}`);
  for (const k of keys)
    await env.raw.put(k).value('{"PublicIP":"198.51.100.1","PublicIPv6":null,"BackendType":"vxlan"}');
  const l = await manager(reg(), cfg, '192.0.2.1').acquire();
  t.equal(formatSubnet(l.subnet), '10.8.0.12/30', 'the only non-reserved subnet');
  await t.rejects(manager(reg(), cfg, '192.0.2.2').acquire(), NetworkExhaustedError);
  for (const k of keys) t.ok(await env.raw.get(k).string(), `${k} still there`);
  // The host named in a reservation gets it, and it stays a reservation.
  const owner = await manager(reg(), cfg, '198.51.100.1').acquire();
  t.equal(owner.etcdLeaseId, null);
  t.match(formatSubnet(owner.subnet), /10\.8\.0\.(4|8)\/30/);
  const kv = await env.raw.get(keys[0]!).exec();
  t.equal(kv.kvs[0]!.lease, '0', 'still without etcd lease');
});

t.test('own key deleted -> re-acquired (same subnet), lease event emitted', async (t) => {
  const { cfg, reg } = setup();
  const r = reg();
  const m = manager(r, cfg, '192.0.2.1');
  const l = await m.acquire();
  const got: Lease[] = [];
  m.onLease((x) => got.push(x));
  const a = runInBackground(m);
  await sleep(300);
  await env.raw.delete().key(l.key);
  await waitFor('re-acquired', () => got.length > 0, WAIT_MS);
  t.same(got[0]!.subnet, l.subnet);
  await waitFor('key back', async () => (await r.getLease(l.subnet)) !== null, WAIT_MS);
  a.abort();
});

t.test('peers: add and remove events; own subnet excluded', async (t) => {
  const { cfg, reg } = setup();
  const me = manager(reg(), cfg, '192.0.2.1');
  const mine = await me.acquire();
  const other = manager(reg(), cfg, '192.0.2.2');
  const first = await other.acquire();
  const batches: LeaseEvent[][] = [];
  const a = env.abortAtEnd();
  const done = me.watchPeers(a.signal, (evs) => batches.push(evs));
  await waitFor('initial batch', () => batches.length >= 1, WAIT_MS);
  t.same(
    batches[0]!.map((e) => [e.type, formatSubnet(e.lease.subnet)]),
    [['added', formatSubnet(first.subnet)]],
  );
  const third = await manager(reg(), cfg, '192.0.2.3').acquire();
  await waitFor(
    'add event',
    () => batches.flat().some((e) => e.type === 'added' && e.lease.attrs.PublicIP === '192.0.2.3'),
    WAIT_MS,
  );
  await env.raw.delete().key(third.key);
  await waitFor(
    'remove event',
    () => batches.flat().some((e) => e.type === 'removed' && e.lease.attrs.PublicIP === '192.0.2.3'),
    WAIT_MS,
  );
  t.notOk(
    batches.flat().some((e) => formatSubnet(e.lease.subnet) === formatSubnet(mine.subnet)),
    'own lease never delivered',
  );
  a.abort();
  await done;
});

t.test('a burst of puts and deletes while TTLs resolve: every event, in order, each Put with its TTL', async (t) => {
  const { prefix, reg } = setup();
  const r = reg();
  const { revision } = await r.listLeases();
  const batches: { events: LeaseEvent[]; revision: string }[] = [];
  const failed: Error[] = [];
  const w = r.watchLeases(
    (BigInt(revision) + 1n).toString(),
    (events, rev) => batches.push({ events, revision: rev }),
    (e) => failed.push(e),
  );
  t.teardown(() => w.cancel());
  // 200 keys, each on its own etcd lease (as flannel's hosts), 20 writers at a time; then every third one deleted.
  const key = (i: number): string => `${prefix}/subnets/10.5.${i}.0-24`;
  const expected = new Map<string, string>();
  let head = '';
  const write = async (i: number): Promise<void> => {
    const publicIp = `198.18.${i >> 8}.${i & 255}`;
    await env.raw
      .lease(600, { autoKeepAlive: false })
      .put(key(i))
      .value(JSON.stringify({ PublicIP: publicIp, BackendType: 'vxlan' }));
    expected.set(key(i), publicIp);
  };
  for (let i = 0; i < 200; i += 20) await Promise.all(Array.from({ length: 20 }, (_, j) => write(i + j)));
  for (let i = 0; i < 200; i += 3) {
    head = (await env.raw.delete().key(key(i))).header.revision;
    expected.delete(key(i));
  }
  await waitFor('the last delete delivered', () => batches.at(-1)?.revision === head, WAIT_MS);
  const state = new Map<string, string>();
  for (const e of batches.flatMap((b) => b.events)) {
    if (e.type === 'added') state.set(e.lease.key, e.lease.attrs.PublicIP);
    else state.delete(e.lease.key);
  }
  t.same([...state].sort(), [...expected].sort(), 'the watcher ends where etcd is: 133 keys, each with its PublicIP');
  const events = batches.flatMap((b) => b.events);
  t.equal(events.length, 200 + 67, 'each put and each delete once');
  const putsFirst = events.findIndex((e) => e.type === 'removed');
  t.equal(putsFirst, 200, 'in etcd order: the 200 puts, then the deletes');
  const now = Date.now();
  t.ok(
    events.every((e) => e.type === 'removed' || (e.lease.expiresAt !== null && e.lease.expiresAt - now > 500_000)),
    'every Put came with its lease TTL resolved (~600 s)',
  );
  t.ok(
    batches.every((b, i) => i === 0 || BigInt(b.revision) > BigInt(batches[i - 1]!.revision)),
    `revisions rise from batch to batch (${batches.length} batches)`,
  );
  t.same(failed, [], 'no watch error');
});

t.test('compaction while the watcher is away: re-list converges', async (t) => {
  const { cfg, reg } = setup();
  const r = reg();
  const me = manager(r, cfg, '192.0.2.1');
  await me.acquire();
  const p1 = await manager(reg(), cfg, '192.0.2.2').acquire();
  const state = new Map<string, string>();
  const apply = (evs: LeaseEvent[]) => {
    for (const e of evs) {
      if (e.type === 'added') state.set(e.lease.key, e.lease.attrs.PublicIP);
      else state.delete(e.lease.key);
    }
  };
  // Watch from an old revision after changes + compaction: the registry must report compaction.
  const { revision } = await r.listLeases();
  await env.raw.delete().key(p1.key);
  const p2 = await manager(reg(), cfg, '192.0.2.3').acquire();
  const head = (await env.raw.get('x').exec()).header.revision;
  await r.compact(head);
  const err = await new Promise<Error>((resolve) => {
    r.watchLeases((BigInt(revision) + 1n).toString(), () => undefined, resolve);
  });
  t.equal(err.name, 'EtcdCompactedError', err.message);

  // The manager's peer watch: start, kill etcd, change + compact while it is away, restart.
  const a = env.abortAtEnd();
  const p3 = await manager(reg(), cfg, '192.0.2.4').acquire();
  const done = me.watchPeers(a.signal, apply);
  await waitFor('initial', () => state.size === 2, WAIT_MS);
  await env.etcd.stop();
  await env.etcd.restart();
  // etcd is back; change things and compact before the watcher's backoff reconnect (it re-lists in any case).
  await env.raw
    .delete()
    .key(p3.key)
    .catch(() => undefined);
  const p4 = await manager(reg(), cfg, '192.0.2.5').acquire();
  const head2 = (await env.raw.get('x').exec()).header.revision;
  await r.compact(head2);
  await waitFor(
    'converged',
    () => state.size === 2 && state.has(p2.key) && state.has(p4.key) && !state.has(p3.key),
    20000,
  );
  t.pass('converged');
  a.abort();
  await done;
});

// The real registry on the real etcd; once `between` is armed, the first listing (before the caller's watch starts
// from that listing's revision + 1) runs it: changes and a compaction past them, so the watch meets compaction.
class CompactAfterFirstList extends EtcdRegistry {
  /** Listings since `between` was armed (acquiring lists too). */
  lists = 0;
  between: (() => Promise<void>) | null = null;
  override async listLeases(): Promise<{ leases: Lease[]; revision: string }> {
    const listed = await super.listLeases();
    const between = this.between;
    if (between === null) return listed;
    if (++this.lists === 1) await between();
    return listed;
  }
}

t.test("the manager's own peer watch falls behind compaction: it re-lists and converges", async (t) => {
  const { cfg, prefix } = setup();
  const r = env.track(
    new CompactAfterFirstList({ endpoints: [env.etcd.endpoint], prefix, log: silentLogger, timeoutMs: 2000 }),
  );
  const other = (): EtcdRegistry => {
    const o = env.registry(prefix);
    return o;
  };
  const me = manager(r, cfg, '192.0.2.1');
  await me.acquire();
  const p1 = await manager(other(), cfg, '192.0.2.2').acquire();
  let p2: Lease | null = null;
  r.between = async () => {
    await env.raw.delete().key(p1.key);
    p2 = await manager(other(), cfg, '192.0.2.3').acquire();
    await r.compact((await env.raw.get('x').exec()).header.revision);
  };
  const state = new Map<string, string>();
  const a = env.abortAtEnd();
  const done = me.watchPeers(a.signal, (evs) => {
    for (const e of evs) {
      if (e.type === 'added') state.set(e.lease.key, e.lease.attrs.PublicIP);
      else state.delete(e.lease.key);
    }
  });
  await waitFor('converged', () => p2 !== null && state.size === 1 && state.has(p2.key), 20000);
  t.ok(!state.has(p1.key), 'the peer that left during the gap is gone');
  t.equal(r.lists, 2, 'one re-list after the compacted watch');
  t.equal(me.stats.watchRestarts, 0, 'taken as compaction, not as an interrupted watch');
  a.abort();
  await done;
});

t.test("the manager's own-lease watch falls behind compaction: it re-reads and keeps the lease", async (t) => {
  const { cfg, prefix } = setup();
  const r = env.track(
    new CompactAfterFirstList({ endpoints: [env.etcd.endpoint], prefix, log: silentLogger, timeoutMs: 2000 }),
  );
  const me = manager(r, cfg, '192.0.2.1', { ttlSeconds: 30 });
  const held = await me.acquire();
  r.between = async () => {
    // Two writes, so the compaction (at the head) lies past the watch's start (the listing's revision + 1).
    await env.raw.put(`${prefix}/unrelated`).value('x');
    await env.raw.put(`${prefix}/unrelated`).value('y');
    await r.compact((await env.raw.get('x').exec()).header.revision);
  };
  runInBackground(me);
  await waitFor('re-read', () => r.lists >= 2, WAIT_MS);
  t.equal(me.lease?.key, held.key, 'still holds its key');
  t.equal(me.stats.losses, 0, 'no loss');
  t.equal(me.stats.acquisitions, 1, 'no re-acquire');
  const value = await env.raw.get(held.key).string();
  t.ok(value !== null && value.includes('192.0.2.1'), 'the key in etcd is still ours');
});

t.test('etcd killed and restarted under a running manager', async (t) => {
  const { cfg, reg } = setup();
  const r = reg();
  const m = manager(r, cfg, '192.0.2.1', { ttlSeconds: 4 });
  const l = await m.acquire();
  let running = true;
  const a = env.abortAtEnd();
  const p = m.run(a.signal).finally(() => (running = false));
  await sleep(500);
  await env.etcd.kill();
  await sleep(2500);
  t.ok(running, 'manager survives etcd being down');
  await env.etcd.restart();
  // The lease may have expired while etcd was down (TTL 4 s): either way the key must come back and be renewed.
  await waitFor('lease present after restart', async () => (await r.getLease(l.subnet)) !== null, 20000);
  const before = (await r.getLease(l.subnet))!.etcdLeaseId;
  await waitFor('renewed after restart', async () => (await r.getLease(l.subnet))?.etcdLeaseId !== before, 20000);
  t.ok(running);
  a.abort();
  await p;
});

t.test('20 etcd restarts under both lease loops: the abort signal keeps the same listeners', async (t) => {
  const { prefix, cfg, reg } = setup();
  const m = manager(reg(), cfg, '192.0.2.1');
  await m.acquire();
  const a = env.abortAtEnd();
  const seen = new Set<string>();
  // As the daemon runs them: the lease loop and the peer watch on one signal.
  const loops = Promise.all([
    m.run(a.signal),
    m.watchPeers(a.signal, (evs) => {
      for (const e of evs) if (e.type === 'added') seen.add(e.lease.attrs.PublicIP);
    }),
  ]);
  const listeners = (): number => getEventListeners(a.signal, 'abort').length;
  // A reservation written now reaches the consumer only through a watch started after the restart.
  const watching = async (i: number): Promise<void> => {
    const ip = `198.51.100.${i + 1}`;
    const value = JSON.stringify({ PublicIP: ip, PublicIPv6: null, BackendType: 'vxlan' });
    await waitFor(
      `peer ${ip} delivered`,
      async () => {
        if (!seen.has(ip)) await env.raw.put(`${prefix}/subnets/10.5.${200 + i}.0-24`).value(value);
        return seen.has(ip);
      },
      WAIT_MS,
    );
  };
  await watching(0);
  // Each loop waits with one listener: the lease loop on its key, the peer watch on its watch.
  await waitFor('both loops wait', () => listeners() >= 2, WAIT_MS);
  const start = listeners();
  const counts: number[] = [];
  for (let i = 1; i <= 20; i++) {
    await env.etcd.kill();
    await env.etcd.restart();
    await watching(i);
    // Both loops are back once the manager waits on its key again; a leaked listener would stay on top.
    await until(() => listeners() === start, 5_000);
    counts.push(listeners());
  }
  t.ok(m.stats.watchRestarts >= 20, `the peer watch restarted after every outage (${m.stats.watchRestarts})`);
  t.same(counts, Array<number>(20).fill(start), `${start} listeners on the signal after every restart`);
  a.abort();
  await loops;
  t.equal(listeners(), 0, 'none left once the loops stopped');
});

t.test('after an etcd outage the first call goes through (no client-side circuit breaker)', async (t) => {
  const { json, reg } = setup();
  const r = reg();
  await r.putNetworkConfig(json);
  await env.etcd.kill();
  for (let i = 1; i <= 3; i++) {
    await t.rejects(r.getNetworkConfig(), { code: 'WEFT_ERR_ETCD' }, `call ${i} fails while etcd is down`);
  }
  await env.etcd.restart();
  t.equal(await r.getNetworkConfig(), json, 'the first call after the restart answers');
});

t.test('flanneld lease value: parsed, and written byte for byte', async (t) => {
  const { prefix, cfg, reg } = setup();
  const flanneld =
    '{"PublicIP":"192.0.2.11","PublicIPv6":null,"BackendType":"vxlan",' +
    '"BackendData":{"VNI":1,"VtepMAC":"aa:bb:cc:dd:ee:ff"},"BackendV6Data":null}';
  const lease = env.raw.lease(60, { autoKeepAlive: false });
  await lease.put(`${prefix}/subnets/10.5.52.0-24`).value(flanneld);
  const r = reg();
  const { leases } = await r.listLeases();
  t.equal(leases.length, 1);
  const got = leases[0]!;
  t.equal(formatSubnet(got.subnet), '10.5.52.0/24');
  t.equal(got.attrs.PublicIP, '192.0.2.11');
  t.equal(got.attrs.BackendType, 'vxlan');
  t.same(got.attrs.BackendData, { VNI: 1, VtepMAC: 'aa:bb:cc:dd:ee:ff' });
  t.ok(got.expiresAt! > Date.now());
  t.equal(serializeLeaseAttrs(got.attrs), flanneld, 'round trip of what flanneld wrote');
  // What flanneld writes for fresh attrs (BackendV6Data nil: omitted).
  const fresh =
    '{"PublicIP":"192.0.2.12","PublicIPv6":null,"BackendType":"vxlan",' +
    '"BackendData":{"VNI":1,"VtepMAC":"aa:bb:cc:dd:ee:01"}}';
  const m = manager(r, cfg, '192.0.2.12');
  const mine = await m.acquire();
  t.equal(await env.raw.get(mine.key).string(), fresh);
  t.equal(subnetToKey(mine.subnet), mine.key.split('/').pop());
  t.same(parseLeaseAttrs('{"PublicIP":"1.2.3.4","BackendType":"udp","Future":true}'), {
    PublicIP: '1.2.3.4',
    PublicIPv6: null,
    BackendType: 'udp',
    Future: true,
  });
  t.equal(
    serializeLeaseAttrs({ PublicIP: '1.2.3.4', BackendType: 'x', BackendData: { s: '<&>' } }),
    '{"PublicIP":"1.2.3.4","PublicIPv6":null,"BackendType":"x","BackendData":{"s":"\\u003c\\u0026\\u003e"}}',
  );
  await lease.revoke();
});
