// Observability: /metrics in Prometheus text, /healthz, /status and `weft status`; first against the metrics server
// with a fake source (no root), then against two real daemons on namespace hosts.
//
//   bridge netns: etcd    h1 ── h2   each: weft daemon --healthz-port=8471 (127.0.0.1 in its namespace), pod .2
import t from 'tap';
import type { AddressInfo } from 'node:net';
import { silentLogger } from '../src/log.js';
import {
  metricsRegistry,
  metricsText,
  startMetricsServer,
  type MetricsSource,
  type StatusDoc,
} from '../src/metrics/server.js';
import { peerTtlLabels } from '../src/metrics/labels.js';
import { formatStatus } from '../src/cli/status.js';
import { ping } from '../testbed/traffic.js';
import { clusterFor, netConfig } from './helpers/cluster.js';

interface FakeState {
  healthy: boolean;
  counters: Record<string, number>;
  sharing?: number;
}

function fakeSource(state: FakeState): MetricsSource {
  const doc = (): StatusDoc => ({
    version: '0.0.0',
    healthy: state.healthy,
    pid: 1,
    uptimeSeconds: 3,
    network: '10.5.0.0/16',
    backendType: 'udp',
    datapath: 'userspace/batch/udp',
    tier: 'batch',
    encap: 'udp',
    device: 'weft0',
    publicIp: '198.18.1.1',
    lease: { subnet: '10.5.3.0/24', key: '/coreos.com/network/subnets/10.5.3.0-24', secondsLeft: 86000 },
    peers: [{ subnet: '10.5.7.0/24', publicIp: '198.18.1.2', backendType: 'udp', leaseSecondsLeft: 500 }],
    control: {
      etcdReconnects: 2,
      etcdOutages: 2,
      watchRestarts: 1,
      acquisitions: 1,
      losses: 0,
      renewals: 4,
      peerEvents: 3,
    },
    counters: state.counters,
  });
  return {
    healthy: () => state.healthy,
    counters: () => state.counters,
    leaseSecondsLeft: () => 86000,
    peers: () => 1,
    ...(state.sharing !== undefined ? { peersSharingPublicIp: () => state.sharing ?? 0 } : {}),
    peerLeaseTtls: () => [
      { labels: peerTtlLabels('10.5.7.0/24', '198.18.1.2', 'udp'), expiresAt: Date.now() + 500_000 },
      { labels: peerTtlLabels('10.5.8.0/24', '198.18.1.3', 'odd "type"\\\n'), expiresAt: null },
    ],
    control: () => doc().control,
    status: doc,
  };
}

t.test('metrics text: counters are Prometheus counters, per-peer gauges, control-plane counters', async (t) => {
  const state = { healthy: true, counters: { udp_rx_packets: 10, drop_malformed: 3, drop_bad_vni: 0 } };
  const source = fakeSource(state);
  const reg = metricsRegistry(source);
  let text = await metricsText(reg, source);
  t.match(text, /# TYPE weft_datapath_total counter/, 'datapath counters typed counter');
  t.match(text, /^weft_datapath_total\{counter="udp_rx_packets"\} 10$/m);
  t.match(text, /^weft_datapath_total\{counter="drop_malformed"\} 3$/m);
  t.match(text, /^weft_datapath_total\{counter="drop_bad_vni"\} 0$/m, 'zero counters are still exported');
  t.match(
    text,
    /^weft_peer_lease_ttl_seconds\{subnet="10.5.7.0\/24",public_ip="198.18.1.2",backend_type="udp"\} (500|499\.\d)$/m,
    "a peer's lease TTL, seconds",
  );
  const escaped = 'backend_type="odd \\"type\\"\\\\\\n"';
  t.ok(
    text.includes(`weft_peer_lease_ttl_seconds{subnet="10.5.8.0/24",public_ip="198.18.1.3",${escaped}} -1\n`),
    'a reservation shows -1; quote, backslash and newline escaped in a label value',
  );
  t.match(text, /# TYPE weft_peer_lease_ttl_seconds gauge\n/, 'typed gauge');
  t.equal(text.match(/^# TYPE /gm)?.length, text.match(/^# HELP /gm)?.length, 'a HELP line per family');
  t.match(text, /# TYPE weft_etcd_reconnects_total counter\nweft_etcd_reconnects_total 2$/m);
  t.match(text, /^weft_lease_renewals_total 4$/m);
  t.match(text, /^weft_lease_ttl_seconds 86000$/m);
  t.match(text, /^weft_healthy 1$/m);
  state.counters.udp_rx_packets = 25;
  text = await metricsText(reg, source);
  t.match(text, /^weft_datapath_total\{counter="udp_rx_packets"\} 25$/m, 'a scrape shows the current value, not a sum');
});

t.test('metrics text: peers sharing a PublicIP, as the backend counts them', async (t) => {
  const none = metricsRegistry(fakeSource({ healthy: true, counters: {} }));
  t.notMatch(await none.metrics(), /weft_peers_sharing_public_ip/, 'no series where the backend does not count');
  const state: FakeState = { healthy: true, counters: {}, sharing: 2 };
  const reg = metricsRegistry(fakeSource(state));
  t.match(await reg.metrics(), /# TYPE weft_peers_sharing_public_ip gauge\nweft_peers_sharing_public_ip 2$/m);
  state.sharing = 0;
  t.match(await reg.metrics(), /^weft_peers_sharing_public_ip 0$/m, 'back to 0 when the stale lease goes');
});

t.test('/healthz follows health; /status is JSON; bound to the address asked for', async (t) => {
  const state = { healthy: true, counters: { udp_rx_packets: 1 } };
  const server = startMetricsServer('127.0.0.1', 0, fakeSource(state), silentLogger);
  t.teardown(() => void server.close());
  await new Promise<void>((r) => server.once('listening', () => r()));
  const addr = server.address() as AddressInfo;
  t.equal(addr.address, '127.0.0.1', 'listens on loopback only');
  const base = `http://127.0.0.1:${addr.port}`;
  t.equal((await fetch(`${base}/healthz`)).status, 200, 'healthy: 200');
  state.healthy = false;
  const r = await fetch(`${base}/healthz`);
  t.equal(r.status, 503, 'lease expired or datapath down: 503');
  t.equal(await r.text(), 'unhealthy\n');
  const doc = (await (await fetch(`${base}/status`)).json()) as StatusDoc;
  t.equal(doc.peers.length, 1);
  t.equal(doc.healthy, false);
  t.equal((await fetch(`${base}/nope`)).status, 404);
  t.equal((await fetch(`${base}/metrics`, { method: 'POST' })).status, 405, 'read-only');
  const text = formatStatus(doc);
  t.match(text, /health\s+UNHEALTHY/);
  t.match(text, /10\.5\.7\.0\/24\s+198\.18\.1\.2\s+udp\s+8m/, 'peer row: subnet, public ip, backend, lease left');
  t.match(text, /udp_rx_packets\s+1/);
});

t.test('/metrics?name= serves only the families asked for', async (t) => {
  const state = { healthy: true, counters: { udp_tx_packets: 7 } };
  const server = startMetricsServer('127.0.0.1', 0, fakeSource(state), silentLogger);
  t.teardown(() => void server.close());
  await new Promise<void>((r) => server.once('listening', () => r()));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`;
  const families = (text: string): string[] => [...text.matchAll(/^# TYPE (\S+)/gm)].map((m) => m[1]!);
  const all = await (await fetch(base)).text();
  t.ok(families(all).length > 5, `the whole page: ${families(all).length} families`);
  const two = await (await fetch(`${base}?name=weft_peers&name=weft_datapath_total`)).text();
  t.same(families(two).sort(), ['weft_datapath_total', 'weft_peers'], 'two families asked, two served');
  t.match(two, /^weft_datapath_total\{counter="udp_tx_packets"\} 7$/m);
  t.match(two, /^weft_peers 1$/m);
  const ttl = await (await fetch(`${base}?name=weft_peer_lease_ttl_seconds`)).text();
  t.same(families(ttl), ['weft_peer_lease_ttl_seconds'], 'the per-peer TTLs alone');
  t.equal(ttl.match(/^weft_peer_lease_ttl_seconds\{/gm)?.length, 2, 'one series per peer');
  const unknown = await fetch(`${base}?name=no_such_family`);
  t.equal(unknown.status, 200, 'an unknown family: an empty page, as Prometheus federation answers');
  t.equal(await unknown.text(), '');
});

t.test('weft status against two running daemons', async (t) => {
  const cluster = await clusterFor(t, 2, netConfig('10.31.0.0/16', 'vxlan'));
  for (const n of [1, 2]) await cluster.startDaemon(n, ['--healthz-port=8471']);
  for (const n of [1, 2]) await cluster.ensurePod(n);
  const p = await ping(cluster.pods.get(1)!, cluster.pods.get(2)!.ip, { count: 3, timeoutSec: 3 });
  t.ok(p.ok, 'pods ping through the overlay');
  const h1 = cluster.tb.host(1);
  const out = await cluster.weft(['status', '--healthz-port=8471'], h1.ns);
  t.comment(out);
  t.match(out, /health\s+healthy/, 'healthy');
  t.match(out, /tier\s+batch/, 'tier');
  t.match(out, /encap\s+vxlan/, 'encap');
  const peerSubnet = cluster.daemons.get(2)!.subnetGateway.replace(/\.1\/24$/, '.0/24');
  t.match(
    out,
    new RegExp(`${peerSubnet.replace(/\./g, '\\.')}\\s+${cluster.tb.hostIP(2).replace(/\./g, '\\.')}\\s+vxlan`),
    'the peer with its PublicIP',
  );
  t.match(out, /tun_tx_packets\s+[1-9]/, 'counters with traffic');
  const json = JSON.parse(await cluster.weft(['status', '--healthz-port=8471', '--json'], h1.ns)) as StatusDoc;
  t.equal(json.control.acquisitions, 1, 'one acquisition');
  t.ok(json.lease !== null && (json.lease.secondsLeft ?? 0) > 86000, 'lease TTL close to 24 h');
  const m = json.memory;
  t.ok(
    m !== undefined && m.heapUsed > 0 && m.heapUsed <= m.heapTotal && m.arrayBuffers <= m.external && m.rss > 0,
    `the daemon's memory breakdown (${JSON.stringify(m)})`,
  );
  const ttl = await cluster.tb.exec(
    h1,
    [
      process.execPath,
      '-e',
      "fetch('http://127.0.0.1:8471/metrics?name=weft_peer_lease_ttl_seconds').then(async (r) => " +
        'process.stdout.write(await r.text()))',
    ],
    { timeoutMs: 10_000 },
  );
  const series = [...ttl.stdout.matchAll(/^weft_peer_lease_ttl_seconds\{(.*)\} (\S+)$/gm)];
  t.equal(series.length, 1, 'one lease-TTL series: the one peer');
  t.equal(
    series[0]?.[1],
    `subnet="${peerSubnet}",public_ip="${cluster.tb.hostIP(2)}",backend_type="vxlan"`,
    "its labels: the peer's subnet, PublicIP and backend",
  );
  t.ok(Number(series[0]?.[2]) > 86000, `its lease TTL close to 24 h (${series[0]?.[2]} s)`);
  // Nothing listens on the underlay address: the default bind is 127.0.0.1.
  const r = await cluster.tb.exec(
    cluster.tb.host(2),
    [
      process.execPath,
      '-e',
      `fetch('http://${cluster.tb.hostIP(1)}:8471/healthz').then(() => process.exit(0), () => process.exit(7))`,
    ],
    { timeoutMs: 10_000 },
  );
  t.equal(r.code, 7, '/healthz is not reachable from another host');
  const none = await cluster.tb.exec(
    h1,
    [process.execPath, (await import('../testbed/cluster.js')).WEFT_CLI, 'status', '--healthz-port=8479'],
    { timeoutMs: 10_000 },
  );
  t.not(none.code, 0, 'no daemon: non-zero exit');
  t.match(none.stderr, /^weft: no weft daemon answers at http:\/\/127\.0\.0\.1:8479\/status/, 'one clear line');
});
