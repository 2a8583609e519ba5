// Outages against a real etcd (the Cluster's, in the bridge namespace) and real daemons:
//   1. etcd stopped for twice the lease TTL (30 s, TTL 15 s) under traffic: pods keep pinging on the last known
//      routes; etcd back -> the daemon reconnects and renews; nothing is re-leased (same keys, same subnets, one
//      acquisition)
//   (the order below is 1, 3, 4, 2, 5: step 2's 5 s leases would expire across a restart of the daemons and the
//   pods would be left on old subnets)
//   2. lease expires during an outage: h1's path to etcd is blackholed (a route in h1's namespace only) while etcd
//      runs, so etcd expires the 5 s lease; the route removed -> the daemon re-acquires the same subnet
//   3. etcd restarted empty: the daemons say they wait for the network config and write no lease, then re-create
//      their leases (same subnets) once it is back
//   4. kill -9 and restart: same subnet, pods ping again
//   5. 16 daemons at once (4 hosts x 4 daemons, each on its own address): room for 16 -> 16 distinct subnets;
//      room for 8 -> 8 leases and 8 daemons exiting non-zero with one NetworkExhaustedError line
//
//   bridge netns: etcd 198.18.<id>.254:2379
//   h1 ── h2 (── h3, h4 for step 5)   weft daemon (udp) + pod each; h1 serves /status on 127.0.0.1:8471
import t, { type Test } from 'tap';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster, PREFIX, WEFT_CLI } from '../testbed/cluster.js';
import type { Host } from '../testbed/hosts.js';
import { killChild } from '../testbed/exec.js';
import { ping } from '../testbed/traffic.js';
import { readSubnetEnv } from '../src/lease/subnet-env.js';
import { formatSubnet } from '../src/ip/subnet.js';
import type { StatusDoc } from '../src/metrics/server.js';
import { statusOf } from './helpers/traffic.js';
import { until } from './helpers/wait.js';
import { clusterFor, netConfig } from './helpers/cluster.js';

/** The daemon's /status (healthz port 8471), or null when it does not answer. */
async function status(cluster: Cluster, n = 1): Promise<StatusDoc | null> {
  return statusOf(cluster.tb, cluster.tb.host(n), 8471).catch(() => null);
}

/** Until h1's /status answers and satisfies `ok`, polled every 500 ms for at most `ms`. */
async function untilStatus(
  cluster: Cluster,
  ok: (s: StatusDoc) => boolean | Promise<boolean>,
  ms: number,
): Promise<boolean> {
  return until(
    async () => {
      const s = await status(cluster);
      return s !== null && (await ok(s));
    },
    ms,
    500,
  );
}

async function subnetKeys(cluster: Cluster, prefix = PREFIX): Promise<string[]> {
  const out = await cluster.etcdctl(['get', '--prefix', '--keys-only', `${prefix}/subnets/`]);
  return out
    .split('\n')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .sort();
}

/** What daemon n logged after byte `from` of its log file. */
function logSince(cluster: Cluster, n: number, from: number): string {
  return readFileSync(cluster.daemons.get(n)!.logFile).subarray(from).toString();
}

async function pingPods(t: Test, cluster: Cluster, what: string): Promise<void> {
  const p = await ping(cluster.pods.get(1)!, cluster.pods.get(2)!.ip, { count: 3, timeoutSec: 3 });
  t.ok(p.ok, `pod h1 -> pod h2 pings ${what}`);
}

t.test('outages', { timeout: 600_000 }, async (t) => {
  const cluster = await clusterFor(t, 2, netConfig('10.47.0.0/16', 'udp'));

  // The two hosts' daemons stop and start side by side (each in its own namespace, with its own subnet file).
  const restartDaemons = async (args: string[]): Promise<void> => {
    await Promise.all([1, 2].map((n) => cluster.stopDaemon(n)));
    await Promise.all(
      [1, 2].map((n) => cluster.startDaemon(n, [...args, ...(n === 1 ? ['--healthz-port=8471'] : [])])),
    );
    for (const n of [1, 2]) await cluster.ensurePod(n);
  };

  await t.test(
    'etcd stopped for twice the lease TTL under traffic: forwarding continues, then reconnect and renew, no re-lease',
    async (t) => {
      // TTL 15 s, renewed every 7.5 s (the margin is clamped to half the TTL): renewals fail during the outage, and the
      // lease's TTL runs out twice over while etcd is away.
      await restartDaemons(['--subnet-lease-ttl=15', '--subnet-lease-renew-margin=1']);
      await pingPods(t, cluster, 'before the outage');
      const keys = await subnetKeys(cluster);
      const subnets = [cluster.subnetOf(1), cluster.subnetOf(2)];
      const before = (await status(cluster))!;
      await cluster.etcd.stop();
      // One ping per second for the whole outage; every one must come back.
      const loop = await ping(cluster.pods.get(1)!, cluster.pods.get(2)!.ip, {
        count: 30,
        intervalSec: 1,
        timeoutSec: 3,
      });
      t.ok(loop.ok, `pings during the 30 s outage: ${loop.received}/${loop.transmitted} came back`);
      const during = (await status(cluster))!;
      t.ok(during.control.etcdOutages > before.control.etcdOutages, 'the daemon noticed the outage');
      await cluster.etcd.restart();
      const renewed = await untilStatus(
        cluster,
        (s) =>
          s.control.etcdReconnects > before.control.etcdReconnects &&
          s.control.renewals > during.control.renewals &&
          s.healthy,
        45_000,
      );
      const after = (await status(cluster))!;
      t.ok(
        renewed,
        `reconnected (${after.control.etcdReconnects} reconnects) and renewed ` +
          `(${during.control.renewals} -> ${after.control.renewals} renewals), healthy again`,
      );
      t.equal(after.control.acquisitions, 1, 'nothing re-leased: still one acquisition');
      t.same(await subnetKeys(cluster), keys, 'same keys in etcd');
      t.same([cluster.subnetOf(1), cluster.subnetOf(2)], subnets, 'same subnets');
      await pingPods(t, cluster, 'after etcd is back');
    },
  );

  await t.test('etcd restarted empty: leases come back when the config does', async (t) => {
    await restartDaemons([]);
    const subnets = [cluster.subnetOf(1), cluster.subnetOf(2)];
    const before = (await status(cluster))!;
    const logFrom = [1, 2].map((n) => statSync(cluster.daemons.get(n)!.logFile).size);
    await cluster.etcd.wipe();
    await cluster.etcd.restart();
    // Each daemon finds its key gone, reads the config, finds none and logs that it waits: from then on it writes
    // no lease until the config is back.
    const waiting = await until(
      async () =>
        [1, 2].every((n, i) => logSince(cluster, n, logFrom[i]!).includes('waiting for it before re-acquiring')),
      45_000,
      500,
    );
    t.ok(waiting, 'both daemons wait for the network config');
    t.same(await subnetKeys(cluster), [], 'no lease written while the network config is missing');
    await cluster.etcdctl([
      'put',
      `${PREFIX}/config`,
      JSON.stringify({ Network: '10.47.0.0/16', SubnetLen: 24, Backend: { Type: 'udp' } }),
    ]);
    const back = await until(async () => (await subnetKeys(cluster)).length === 2, 45_000, 500);
    t.ok(back, 'both daemons re-created their leases once the config was back');
    t.same([cluster.subnetOf(1), cluster.subnetOf(2)], subnets, 'same subnets as before');
    t.same(
      await subnetKeys(cluster),
      subnets.map((s) => `${PREFIX}/subnets/${s?.replace('/', '-')}`).sort(),
      'keys match',
    );
    const after = (await status(cluster))!;
    t.equal(after.control.acquisitions, before.control.acquisitions + 1, 'one re-acquisition');
    const pinged = await until(
      async () => (await ping(cluster.pods.get(1)!, cluster.pods.get(2)!.ip, { count: 1, timeoutSec: 2 })).ok,
      20_000,
      500,
    );
    t.ok(pinged, 'pods ping again');
  });

  await t.test('kill -9 and restart: same subnet, routes back', async (t) => {
    const subnet = cluster.subnetOf(1);
    await cluster.stopDaemon(1, 'SIGKILL');
    await cluster.startDaemon(1, ['--healthz-port=8471']);
    t.equal(cluster.subnetOf(1), subnet, 'same subnet after a crash');
    const pinged = await until(
      async () => (await ping(cluster.pods.get(1)!, cluster.pods.get(2)!.ip, { count: 1, timeoutSec: 2 })).ok,
      20_000,
      500,
    );
    t.ok(pinged, 'pods ping after the restart');
    t.equal((await subnetKeys(cluster)).length, 2, 'still two leases');
  });

  await t.test('lease expires while h1 cannot reach etcd: the same subnet is re-acquired', async (t) => {
    await restartDaemons(['--subnet-lease-ttl=5', '--subnet-lease-renew-margin=1']);
    const subnet = cluster.subnetOf(1);
    const key = cluster.leaseKeyOf(1)!;
    const before = (await status(cluster))!;
    const h1 = cluster.tb.host(1);
    // Only h1 loses etcd: a blackhole route to the bridge address inside h1's namespace. Pod traffic goes host to
    // host on the same L2 and is untouched.
    const add = await cluster.tb.exec(h1, ['ip', 'route', 'add', 'blackhole', `${cluster.tb.bridgeIP}/32`]);
    t.equal(add.code, 0, 'h1 cut off from etcd');
    try {
      const expired = await until(async () => !(await subnetKeys(cluster)).includes(key), 30_000, 500);
      t.ok(expired, `etcd expired h1's lease ${key}`);
      // No ping check here: h2 sees h1's key expire and rightly drops h1's routes until h1 is back.
    } finally {
      await cluster.tb.exec(h1, ['ip', 'route', 'del', 'blackhole', `${cluster.tb.bridgeIP}/32`]);
    }
    const back = await untilStatus(
      cluster,
      async (s) => s.control.acquisitions > before.control.acquisitions && (await subnetKeys(cluster)).includes(key),
      90_000,
    );
    const after = await status(cluster);
    t.ok(
      back,
      `re-acquired after the path came back (acquisitions ${before.control.acquisitions} -> ` +
        `${after?.control.acquisitions}, losses ${after?.control.losses})`,
    );
    t.equal(cluster.subnetOf(1), subnet, 'the same subnet');
    t.equal(after?.lease?.subnet, subnet, '/status shows it');
    await pingPods(t, cluster, 'after re-acquiring');
  });

  await t.test('16 daemons started at once', async (t) => {
    for (const n of [1, 2]) await cluster.stopDaemon(n);
    while (cluster.tb.hosts.length < 4) await cluster.tb.addHost();
    const dir = mkdtempSync(join(tmpdir(), 'weft-16-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    // Daemon k (0..15) lives in host 1 + k/4 on its own address 198.18.<id>.<100+k>: its PublicIP, its socket.
    const hosts: Host[] = [1, 2, 3, 4].map((n) => cluster.tb.host(n));
    const addrOf = (k: number): string => cluster.tb.hostIP(100 + k);
    for (let k = 0; k < 16; k++) {
      const r = await cluster.tb.exec(hosts[k >> 2]!, ['ip', 'addr', 'add', `${addrOf(k)}/32`, 'dev', 'eth0']);
      if (r.code !== 0) throw new Error(`ip addr add: ${r.stderr}`);
    }

    const runAll = async (
      prefix: string,
      network: object,
    ): Promise<{ subnets: (string | null)[]; codes: (number | null)[]; lines: string[] }> => {
      await cluster.etcdctl(['put', `${prefix}/config`, JSON.stringify(network)]);
      const children: ChildProcess[] = [];
      const errs: string[] = Array.from({ length: 16 }, () => '');
      for (let k = 0; k < 16; k++) {
        const c = cluster.tb.spawn(
          hosts[k >> 2]!,
          [
            process.execPath,
            WEFT_CLI,
            'daemon',
            `--etcd-endpoints=${cluster.endpoint}`,
            `--etcd-prefix=${prefix}`,
            `--iface=${addrOf(k)}`,
            `--tun-name=wt${k}`,
            `--subnet-file=${join(dir, `${prefix.slice(1).replace(/\//g, '_')}-${k}.env`)}`,
            '--log-level=warn',
          ],
          { stdio: ['ignore', 'ignore', 'pipe'] },
        );
        c.stderr?.on('data', (d: Buffer) => (errs[k] += d.toString()));
        children.push(c);
      }
      try {
        const file = (k: number) => join(dir, `${prefix.slice(1).replace(/\//g, '_')}-${k}.env`);
        await until(
          async () => children.every((c, k) => c.exitCode !== null || readSubnetEnv(file(k)) !== null),
          120_000,
          500,
        );
        return {
          subnets: children.map((_, k) => {
            const env = readSubnetEnv(file(k));
            return env?.subnet ? formatSubnet(env.subnet) : null;
          }),
          codes: children.map((c) => c.exitCode),
          lines: errs.map((e) => e.trim().split('\n').pop() ?? ''),
        };
      } finally {
        // Side by side: each daemon's clean stop is its own (own TUN, own subnet file).
        await Promise.all(children.map((c) => killChild(c)));
      }
    };

    /** A network with room for `n` leases: 10.<octet>.1.0/24 .. 10.<octet>.<n>.0/24. */
    const roomFor = (octet: number, n: number) => ({
      ...netConfig(`10.${octet}.0.0/16`, 'udp'),
      SubnetMin: `10.${octet}.1.0`,
      SubnetMax: `10.${octet}.${n}.0`,
    });
    const room16 = await runAll('/weft-test/room16', roomFor(60, 16));
    const got16 = room16.subnets.filter((s): s is string => s !== null);
    t.equal(
      got16.length,
      16,
      `room for 16: all 16 leased (${room16.lines.filter((l) => l.startsWith('weft:')).join('; ')})`,
    );
    t.equal(new Set(got16).size, 16, 'all distinct');

    const room8 = await runAll('/weft-test/room8', roomFor(61, 8));
    const got8 = room8.subnets.filter((s): s is string => s !== null);
    t.equal(got8.length, 8, 'room for 8: 8 leased');
    t.equal(new Set(got8).size, 8, 'distinct');
    const failed = room8.codes
      .map((c, k) => ({ c, line: room8.lines[k]!, leased: room8.subnets[k] !== null }))
      .filter((x) => !x.leased);
    t.equal(failed.length, 8, '8 did not get a subnet');
    t.ok(
      failed.every((x) => x.c === 1),
      `each exited with code 1 (${failed.map((x) => x.c).join(',')})`,
    );
    t.ok(
      failed.every((x) =>
        /^weft: no free \/24 left in 10\.61\.0\.0\/16 \[10\.61\.1\.0 \.\. 10\.61\.8\.0\]: 8 subnets, 8 taken/.test(
          x.line,
        ),
      ),
      `with one clear line: ${failed[0]?.line}`,
    );
    t.equal((await subnetKeys(cluster, '/weft-test/room8')).length, 8, 'etcd holds exactly 8 leases');
  });
});
