// The PublicIP a lease names, as peers check it.
// 1. A host whose --public-ip is a secondary address of its interface (a floating or service IP): peers take overlay
//    datagrams only from a lease's PublicIP, so the daemon must send from it, not from the interface's first address.
//   bridge netns: etcd 198.18.<id>.254:2379
//   h1: eth0 198.18.<id>.1/24 + secondary 198.18.<id>.101/24; weft daemon --public-ip=198.18.<id>.101 (each tier)
//   h2: weft daemon (batch tier), the peer that checks sources
// 2. Two leases naming one PublicIP (here: a stale copy of h1's lease on another subnet, written after h1's): h2
//    keeps forwarding for h1's live lease, logs the pair once and shows it in /status.
import t from 'tap';
import { ping } from '../testbed/traffic.js';
import { metricsOf, metricsText, statusOf } from './helpers/traffic.js';
import { readFileSync } from 'node:fs';
import { PREFIX } from '../testbed/cluster.js';
import { clusterFor, netConfig } from './helpers/cluster.js';
import { sleep, waitFor } from './helpers/wait.js';

const PORT = 8471;

t.test('--public-ip on a secondary address: peers accept what the host sends', { timeout: 180_000 }, async (t) => {
  const cluster = await clusterFor(t, 2, netConfig('10.48.0.0/16', 'udp'));
  const { tb } = cluster;
  const secondary = tb.hostIP(1).replace(/\.1$/, '.101');
  const add = await tb.exec(tb.host(1), ['ip', 'addr', 'add', `${secondary}/24`, 'dev', 'eth0']);
  t.equal(add.code, 0, `h1 has ${secondary} as a secondary address: ${add.stderr.trim()}`);
  await cluster.startDaemon(2, [`--healthz-port=${PORT}`]);
  await cluster.ensurePod(2);
  const p2 = cluster.pods.get(2)!;

  for (const tier of ['dgram', 'batch', 'offload']) {
    await t.test(`h1 on the ${tier} tier`, async (t) => {
      await cluster.startDaemon(1, [`--public-ip=${secondary}`, `--tier=${tier}`]);
      t.teardown(() => cluster.stopDaemon(1));
      await cluster.ensurePod(1);
      const p1 = cluster.pods.get(1)!;
      const lease = await cluster.etcdctl(['get', '--print-value-only', cluster.leaseKeyOf(1)!]);
      t.equal((JSON.parse(lease) as { PublicIP: string }).PublicIP, secondary, "h1's lease names the secondary");
      const before = await metricsOf(tb, tb.host(2), PORT);
      t.ok((await ping(p1, p2.ip, { count: 3, timeoutSec: 5, intervalSec: 0.2 })).ok, 'pod h1 -> pod h2');
      t.ok((await ping(p2, p1.ip, { count: 3, timeoutSec: 5, intervalSec: 0.2 })).ok, 'pod h2 -> pod h1');
      const after = await metricsOf(tb, tb.host(2), PORT);
      const delta = (k: string): number => (after[k] ?? 0) - (before[k] ?? 0);
      t.equal(delta('drop_unknown_peer'), 0, 'h2 dropped nothing from h1 as unknown_peer');
      t.ok(delta('udp_rx_packets') >= 6, `h2 received h1's datagrams (${delta('udp_rx_packets')})`);
    });
  }
});

t.test('two leases with one PublicIP: the live one keeps forwarding', { timeout: 120_000 }, async (t) => {
  const cluster = await clusterFor(t, 2, netConfig('10.49.0.0/16', 'udp'));
  const { tb } = cluster;
  for (const n of [1, 2]) await cluster.startDaemon(n, [`--healthz-port=${PORT}`]);
  for (const n of [1, 2]) await cluster.ensurePod(n);
  const [p1, p2] = [cluster.pods.get(1)!, cluster.pods.get(2)!];
  t.ok((await ping(p1, p2.ip, { count: 2, timeoutSec: 5, intervalSec: 0.2 })).ok, 'pod h1 -> pod h2 before');
  // A stale lease of h1's: its value (same PublicIP and VtepMAC) under a subnet nobody holds, after h1's own.
  const value = await cluster.etcdctl(['get', '--print-value-only', cluster.leaseKeyOf(1)!]);
  const stale = `${PREFIX}/subnets/10.49.250.0-24`;
  await cluster.etcdctl(['put', stale, value.trim()]);
  await waitFor(
    'h2 to know the stale lease',
    async () => (await statusOf(tb, tb.host(2), PORT)).peers.length === 2,
    10_000,
  );
  await sleep(200); // the backend gathers peer events for 10 ms before it rebuilds the table
  const before = await metricsOf(tb, tb.host(2), PORT);
  t.ok((await ping(p1, p2.ip, { count: 3, timeoutSec: 5, intervalSec: 0.2 })).ok, 'pod h1 -> pod h2');
  t.ok((await ping(p2, p1.ip, { count: 3, timeoutSec: 5, intervalSec: 0.2 })).ok, 'pod h2 -> pod h1');
  const after = await metricsOf(tb, tb.host(2), PORT);
  t.equal((after['drop_spoofed_source'] ?? 0) - (before['drop_spoofed_source'] ?? 0), 0, "nothing of h1's dropped");
  t.equal((await statusOf(tb, tb.host(2), PORT)).peersSharingPublicIp, 2, '/status counts the two leases');
  t.match(await metricsText(tb, tb.host(2), PORT), /^weft_peers_sharing_public_ip 2$/m, 'and /metrics');
  const said = readFileSync(cluster.daemons.get(2)!.logFile, 'utf8')
    .split('\n')
    .filter((l) => l.includes('several leases name one PublicIP'));
  t.equal(said.length, 1, `h2 said it once: ${said[0] ?? '(nothing)'}`);
  await cluster.etcdctl(['del', stale]);
  await waitFor(
    "h2's /metrics to count no shared PublicIP once the stale lease is gone",
    async () => /^weft_peers_sharing_public_ip 0$/m.test(await metricsText(tb, tb.host(2), PORT)),
    10_000,
  );
});
