// The daemon's control plane on namespace hosts with a real etcd: flannel's keys and subnet.env, lifecycle (SIGTERM
// keeps the lease, restart reuses it), waiting for a missing config or an unreachable etcd, refusing a bad config,
// surviving an etcd restart, and the leases / network commands.
//
//   bridge netns: etcd 198.18.<id>.254:2379
//   h1 ── h2      each: weft daemon, subnet.env in a temp dir
import t, { type Test } from 'tap';
import { readFileSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { Cluster, WEFT_CLI } from '../testbed/cluster.js';
import { killChild } from '../testbed/exec.js';
import { ping } from '../testbed/traffic.js';
import { sleep, waitFor } from './helpers/wait.js';
import { clusterFor } from './helpers/cluster.js';

const NETWORK = { Network: '10.5.0.0/16', SubnetLen: 24, Backend: { Type: 'udp' } };

const WAIT_MS = 20_000;

/** A `weft daemon` started by hand: underlay eth0, a TUN and a subnet.env (cluster.subnetFile(k)) of its own. */
function daemonArgv(cluster: Cluster, k: number, tun: string, flags: string[]): string[] {
  const own = ['--iface=eth0', `--tun-name=${tun}`, `--subnet-file=${cluster.subnetFile(k)}`];
  return [process.execPath, WEFT_CLI, 'daemon', ...flags, ...own];
}

/** Starts argv in host h (killed at the end of the test); its stderr is collected. */
function startLogged(t: Test, cluster: Cluster, h: number, argv: string[]): { child: ChildProcess; log: () => string } {
  const child = cluster.tb.spawn(cluster.tb.host(h), argv, { stdio: ['ignore', 'ignore', 'pipe'] });
  t.teardown(() => killChild(child));
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  return { child, log: () => stderr };
}

function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((r) => child.once('exit', (code) => r(code)));
}

t.test('daemons on two hosts', async (t) => {
  const cluster = await clusterFor(t, 2, NETWORK);

  await t.test("distinct subnets in flannel's key format, correct subnet.env", async (t) => {
    const d1 = await cluster.startDaemon(1);
    const d2 = await cluster.startDaemon(2);
    const keys = (await cluster.etcdctl(['get', '--prefix', '--keys-only', '/coreos.com/network/subnets/']))
      .split('\n')
      .filter(Boolean);
    t.equal(keys.length, 2, 'two leases');
    for (const k of keys) t.match(k, /^\/coreos\.com\/network\/subnets\/10\.5\.\d+\.0-24$/);
    for (const [n, d] of [
      [1, d1],
      [2, d2],
    ] as const) {
      const env = readFileSync(d.subnetFile, 'utf8');
      t.match(env, /^FLANNEL_NETWORK=10\.5\.0\.0\/16$/m);
      t.match(env, new RegExp(`^FLANNEL_SUBNET=${d.subnetGateway.replace(/\./g, '\\.')}$`, 'm'));
      t.match(env, /^FLANNEL_MTU=1472$/m, 'underlay 1500 - 28 for the udp encap');
      t.match(env, /^FLANNEL_IPMASQ=false$/m);
      const key = `/coreos.com/network/subnets/${d.subnetGateway.replace(/\.1\/24$/, '.0-24')}`;
      const value = (await cluster.etcdctl(['get', '--print-value-only', key])).trim();
      t.equal(
        value,
        `{"PublicIP":"${cluster.tb.hostIP(n)}","PublicIPv6":null,"BackendType":"udp","BackendData":null}`,
        "flanneld's value, byte for byte",
      );
    }
    t.not(d1.subnetGateway, d2.subnetGateway);
  });

  await t.test('SIGTERM exits 0 and keeps the lease; a restart gets the same subnet', async (t) => {
    const before = cluster.daemons.get(1)!;
    const code = exited(before.child);
    before.child.kill('SIGTERM');
    t.equal(await code, 0, 'clean exit');
    await cluster.stopDaemon(1);
    const keys = await cluster.etcdctl(['get', '--prefix', '--keys-only', '/coreos.com/network/subnets/']);
    t.match(keys, before.subnetGateway.replace(/\.1\/24$/, '.0-24'), 'lease still in etcd');
    const after = await cluster.startDaemon(1);
    t.equal(after.subnetGateway, before.subnetGateway, 'same subnet after restart');
  });

  await t.test('kill -9 and restart: same subnet', async (t) => {
    const before = cluster.daemons.get(2)!;
    await cluster.stopDaemon(2, 'SIGKILL');
    const after = await cluster.startDaemon(2);
    t.equal(after.subnetGateway, before.subnetGateway);
  });

  await t.test('etcd restarted under running daemons: they survive and keep forwarding', async (t) => {
    await cluster.ensurePod(1);
    await cluster.ensurePod(2);
    await cluster.etcd.restart();
    await sleep(1500);
    for (const n of [1, 2]) t.equal(cluster.daemons.get(n)!.child.exitCode, null, `daemon h${n} still running`);
    const r = await ping(cluster.pods.get(1)!, cluster.pods.get(2)!.ip, { count: 2, timeoutSec: 3 });
    t.ok(r.ok, 'pods still reach each other');
    const keys = await cluster.etcdctl(['get', '--prefix', '--keys-only', '/coreos.com/network/subnets/']);
    t.equal(keys.split('\n').filter(Boolean).length, 2, 'both leases still there, none re-created elsewhere');
  });

  await t.test('a config in etcd the daemons cannot run: said once, they keep forwarding on theirs', async (t) => {
    const d1 = cluster.daemons.get(1)!;
    const key = cluster.leaseKeyOf(1)!;
    const subnet = cluster.subnetOf(1);
    // Written past `weft network set` (it would refuse it), as etcdctl allows. The daemon reads the config when it
    // re-acquires a lost lease; it used to exit on a Backend.Type it does not carry.
    const unrunnable = { ...NETWORK, Backend: { Type: 'nope' } };
    await cluster.etcdctl(['put', '/coreos.com/network/config', JSON.stringify(unrunnable)]);
    t.teardown(() => cluster.etcdctl(['put', '/coreos.com/network/config', JSON.stringify(NETWORK)]));
    for (let i = 0; i < 2; i++) {
      await cluster.etcdctl(['del', key]);
      const back = async () =>
        (await cluster.etcdctl(['get', '--print-value-only', key])).includes(`"${cluster.tb.hostIP(1)}"`);
      await waitFor(`h1's lease re-acquired (${i + 1})`, back, WAIT_MS);
    }
    const said = readFileSync(d1.logFile, 'utf8')
      .split('\n')
      .filter((l) => l.includes('cannot be run'));
    t.equal(said.length, 1, 'logged once over two re-acquisitions');
    t.match(said[0], /Backend\.Type \\"nope\\": no such backend/, 'with the reason');
    t.equal(d1.child.exitCode, null, 'still running');
    t.equal(cluster.subnetOf(1), subnet, 'same subnet, on the config it runs');
    const reach = async (a: number, b: number) =>
      (await ping(cluster.pods.get(a)!, cluster.pods.get(b)!.ip, { count: 1, timeoutSec: 2 })).ok;
    await waitFor('pod 1 reaches pod 2', () => reach(1, 2), WAIT_MS, 500);
    await waitFor('pod 2 reaches pod 1', () => reach(2, 1), WAIT_MS, 500);
    t.pass('pods reach each other both ways');
  });

  await t.test('network set refuses what a daemon refuses, with the same line', async (t) => {
    const configs = [
      { Network: '10.5.0.0/16', Backend: { Type: 'udp', Port: 70000 } },
      { Network: '10.5.0.0/16', Backend: { Type: 'vxlan', VNI: 'x' } },
      { Network: '10.5.0.0/16', Backend: { Type: 'nope' } },
    ];
    for (const [i, config] of configs.entries()) {
      const prefix = `/refused${i}/network`;
      const set = await cluster.tb.exec(cluster.tb.bridgeNs, [
        process.execPath,
        WEFT_CLI,
        'network',
        'set',
        JSON.stringify(config),
        `--etcd-endpoints=${cluster.endpoint}`,
        `--etcd-prefix=${prefix}`,
      ]);
      t.equal(set.code, 2, `set refuses ${JSON.stringify(config.Backend)} (exit 2)`);
      t.equal(await cluster.etcdctl(['get', `${prefix}/config`]), '', 'nothing written');
      // The daemon on the same config, put there by hand: it exits with its line.
      await cluster.etcdctl(['put', `${prefix}/config`, JSON.stringify(config)]);
      const flags = [`--etcd-endpoints=${cluster.endpoint}`, `--etcd-prefix=${prefix}`, '--log-level=silent'];
      const daemon = await cluster.tb.exec(cluster.tb.host(1), daemonArgv(cluster, 6, 'weftrefused', flags), {
        timeoutMs: 20_000,
      });
      t.equal(daemon.code, 1, 'the daemon refuses it at start (exit 1)');
      t.match(daemon.stderr, /^weft: network config: Backend\.\w+ .*\n$/, 'one line');
      t.equal(set.stderr, daemon.stderr, `the same line: ${set.stderr.trim()}`);
    }
  });

  await t.test('weft leases and weft network get/set', async (t) => {
    const table = await cluster.weft(['leases', `--etcd-endpoints=${cluster.endpoint}`]);
    t.match(table, /^SUBNET\s+PUBLIC IP\s+BACKEND\s+TTL LEFT$/m);
    for (const n of [1, 2])
      t.match(table, new RegExp(`10\\.5\\.\\d+\\.0/24\\s+${cluster.tb.hostIP(n).replace(/\./g, '\\.')}\\s+udp\\s+23h`));
    const json = JSON.parse(
      await cluster.weft(['leases', '--json', `--etcd-endpoints=${cluster.endpoint}`]),
    ) as unknown[];
    t.equal(json.length, 2);
    const got = await cluster.weft(['network', 'get', `--etcd-endpoints=${cluster.endpoint}`]);
    t.same(JSON.parse(got), NETWORK);
    const bad = await cluster.tb.exec(cluster.tb.bridgeNs, [
      process.execPath,
      WEFT_CLI,
      'network',
      'set',
      '{"Network":"10.5.0.0/33"}',
      `--etcd-endpoints=${cluster.endpoint}`,
      '--etcd-prefix=/scratch/network',
    ]);
    t.not(bad.code, 0, 'an invalid config is refused');
    t.match(bad.stderr, /^weft: network config: Network "10\.5\.0\.0\/33"/);
    t.equal(bad.stderr.trim().split('\n').length, 1, 'one line, no stack');
    await cluster.weft([
      'network',
      'set',
      '{"Network":"10.9.0.0/16"}',
      `--etcd-endpoints=${cluster.endpoint}`,
      '--etcd-prefix=/scratch/network',
    ]);
    t.match(await cluster.etcdctl(['get', '--print-value-only', '/scratch/network/config']), /10\.9\.0\.0\/16/);
  });

  await t.test('a missing network config is waited for, and said so', async (t) => {
    const flags = [`--etcd-endpoints=${cluster.endpoint}`, '--etcd-prefix=/later/network'];
    const { log } = startLogged(t, cluster, 1, daemonArgv(cluster, 9, 'weftlater', flags));
    await waitFor('the waiting log line', () => /waiting for the network config/.test(log()), WAIT_MS);
    await cluster.etcdctl([
      'put',
      '/later/network/config',
      JSON.stringify({ Network: '10.7.0.0/16', Backend: { Type: 'udp', Port: 8286 } }),
    ]);
    const leased = async (): Promise<boolean> =>
      (await cluster.etcdctl(['get', '--prefix', '--keys-only', '/later/network/subnets/'])).includes('10.7.');
    await waitFor('a lease under the new prefix', leased, WAIT_MS);
    t.pass('proceeded once the config appeared');
  });

  await t.test('unreachable etcd: the daemon waits and says so; it does not crash', async (t) => {
    const flags = [`--etcd-endpoints=http://${cluster.tb.bridgeIP}:1`];
    const { child, log } = startLogged(t, cluster, 2, daemonArgv(cluster, 8, 'weftnoetcd', flags));
    await waitFor('the unreachable log line', () => /etcd unreachable/.test(log()), WAIT_MS);
    await sleep(1000);
    t.equal(child.exitCode, null, 'still running');
  });

  await t.test('a bad network config: exit non-zero with one clear line', async (t) => {
    await cluster.etcdctl(['put', '/bad/network/config', '{"Network":"10.5.0.0/16","SubnetLen":31}']);
    const flags = [`--etcd-endpoints=${cluster.endpoint}`, '--etcd-prefix=/bad/network', '--log-level=silent'];
    const r = await cluster.tb.exec(cluster.tb.host(1), daemonArgv(cluster, 7, 'weftbad', flags), {
      timeoutMs: 20_000,
    });
    t.equal(r.code, 1);
    t.match(r.stderr, /^weft: network config: SubnetLen 31: must be at most 30\n$/);
  });

  await t.test('a bad flag: exit 2 with one clear line', async (t) => {
    const r = await cluster.tb.exec(cluster.tb.host(1), [process.execPath, WEFT_CLI, 'daemon', '--tier=warp'], {
      timeoutMs: 20_000,
    });
    t.equal(r.code, 2);
    t.match(r.stderr, /^weft: --tier="warp": /);
    t.equal(r.stderr.trim().split('\n').length, 1);
  });
});
