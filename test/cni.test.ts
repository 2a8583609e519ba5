// weft-cni end to end, exec'd from a CNI_PATH as a runtime would, delegating to Debian's real bridge and host-local
// plugins, on namespace hosts running weft daemons with a real etcd:
//
//   bridge netns: etcd 198.18.<id>.254:2379
//   h1: weft daemon (TUN weft0), cni0 <- weft-cni ADD -> pods w<id>-h1-pod, w<id>-h1-pod2 (host-local picks)
//   h2: the same
//
// Checks: ADD results, pods ping across hosts, CHECK, DEL removes the address and host-local's reservation, DEL
// twice, DEL after subnet.env is gone, spec-shaped errors (missing subnet.env, bad JSON, bad field, bad version),
// VERSION, and the 0.4.0 and 1.1.0 (STATUS, GC) paths.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { buildDelegateConf, parseNetConf } from '../src/cni/config.js';
import { CniError } from '../src/cni/spec.js';
import { readSubnetEnv } from '../src/lease/subnet-env.js';
import type { CniPod, CniRun } from '../testbed/cluster.js';
import { ping } from '../testbed/traffic.js';
import { clusterFor, netConfig } from './helpers/cluster.js';

function errorShape(t: Test, r: CniRun, code: number, what: string): void {
  t.not(r.code, 0, `${what}: non-zero exit`);
  const e = r.json as { cniVersion?: unknown; code?: unknown; msg?: unknown } | undefined;
  t.type(e?.cniVersion, 'string', `${what}: error has cniVersion`);
  t.equal(e?.code, code, `${what}: error code ${code}`);
  t.ok(typeof e?.msg === 'string' && e.msg.length > 0, `${what}: error has msg (${String(e?.msg)})`);
}

t.test('delegate config follows flannel (unit)', async (t) => {
  const env = readSubnetEnvFrom(
    'FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=10.5.3.1/24\nFLANNEL_MTU=1472\nFLANNEL_IPMASQ=true\n',
  );
  const conf = parseNetConf(
    JSON.stringify({
      cniVersion: '1.0.0',
      name: 'weft',
      type: 'weft-cni',
      delegate: { hairpinMode: true, mtu: 1400 },
      ipam: { dataDir: '/tmp/x', routes: [{ dst: '192.0.2.0/24' }] },
    }),
  );
  t.equal(conf.subnetFile, '/run/flannel/subnet.env', 'default subnetFile');
  t.equal(conf.dataDir, '/var/lib/cni/weft', 'default dataDir');
  const d = buildDelegateConf(conf, env, conf.subnetFile);
  t.match(d, { type: 'bridge', name: 'weft', cniVersion: '1.0.0', bridge: 'cni0', isGateway: true, hairpinMode: true });
  t.equal(d.ipMasq, false, 'FLANNEL_IPMASQ=true: the bridge does not masquerade');
  t.equal(d.mtu, 1400, 'delegate override wins over FLANNEL_MTU');
  t.same(d.ipam, {
    dataDir: '/tmp/x',
    type: 'host-local',
    ranges: [[{ subnet: '10.5.3.0/24' }]],
    routes: [{ dst: '192.0.2.0/24' }, { dst: '10.5.0.0/16', gw: '10.5.3.1' }],
  });
  const d2 = buildDelegateConf(
    parseNetConf('{"cniVersion":"0.4.0","name":"n","type":"weft-cni"}'),
    readSubnetEnvFrom(
      'FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=10.5.3.1/24\nFLANNEL_MTU=1472\nFLANNEL_IPMASQ=false\n',
    ),
    'f',
  );
  t.equal(d2.ipMasq, true, 'FLANNEL_IPMASQ=false: the bridge masquerades');
  t.equal(d2.mtu, 1472, 'FLANNEL_MTU');
  t.throws(() => parseNetConf('{"cniVersion":"1.0.0","name":"n","type":"weft-cni","delegate":[]}'), CniError);
  t.throws(() => parseNetConf('{"cniVersion":"1.0.0","name":"n","type":"weft-cni","dataDir":"rel"}'), { code: 7 });
});

t.test('dual-stack subnet.env: two range sets and a route to each network, as flannel (unit)', async (t) => {
  const conf = parseNetConf(
    JSON.stringify({
      cniVersion: '1.0.0',
      name: 'weft',
      type: 'weft-cni',
      ipam: { routes: [{ dst: 'fd00:5::/48' }, { dst: '2001:db8::/32' }] },
    }),
  );
  const dual = readSubnetEnvFrom(
    'FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=10.5.3.1/24\n' +
      'FLANNEL_IPV6_NETWORK=fd00:5::/48\nFLANNEL_IPV6_SUBNET=fd00:5:0:3::1/64\n' +
      'FLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n',
  );
  t.same(buildDelegateConf(conf, dual, 'f').ipam, {
    routes: [
      { dst: '2001:db8::/32' },
      { dst: '10.5.0.0/16', gw: '10.5.3.1' },
      { dst: 'fd00:5::/48', gw: 'fd00:5:0:3::1' },
    ],
    type: 'host-local',
    ranges: [[{ subnet: '10.5.3.0/24' }], [{ subnet: 'fd00:5:0:3::/64' }]],
  });
  const only6 = readSubnetEnvFrom(
    'FLANNEL_IPV6_NETWORK=fd00:5::/48\nFLANNEL_IPV6_SUBNET=fd00:5:0:3::1/64\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n',
  );
  t.match(buildDelegateConf(conf, only6, 'f').ipam, {
    ranges: [[{ subnet: 'fd00:5:0:3::/64' }]],
    routes: [{ dst: '2001:db8::/32' }, { dst: 'fd00:5::/48', gw: 'fd00:5:0:3::1' }],
  });
  const noNet6 = readSubnetEnvFrom(
    'FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=10.5.3.1/24\nFLANNEL_IPV6_SUBNET=fd00:5:0:3::1/64\nFLANNEL_MTU=1450\n',
  );
  t.throws(() => buildDelegateConf(conf, noNet6, 'f'), { code: 11, message: /no valid FLANNEL_IPV6_NETWORK/ });
});

t.test('config/10-weft.conflist parses as a runtime hands it over', async (t) => {
  const list = JSON.parse(readFileSync(new URL('../config/10-weft.conflist', import.meta.url), 'utf8')) as {
    name: string;
    cniVersion: string;
    plugins: Record<string, unknown>[];
  };
  t.equal(list.plugins[0]?.type, 'weft-cni', 'weft-cni comes first (portmap chains on its result)');
  // libcni gives each plugin of a list the list's name and cniVersion.
  const conf = parseNetConf(JSON.stringify({ ...list.plugins[0], name: list.name, cniVersion: list.cniVersion }));
  t.match(conf, {
    name: 'weft',
    subnetFile: '/run/flannel/subnet.env',
    dataDir: '/var/lib/cni/weft',
    delegate: { isDefaultGateway: true },
  });
});

// readSubnetEnv reads a file; the unit test writes one into a temp dir.
function readSubnetEnvFrom(text: string): NonNullable<ReturnType<typeof readSubnetEnv>> {
  const dir = mkdtempSync(join(tmpdir(), 'weft-cni-unit-'));
  try {
    writeFileSync(join(dir, 'subnet.env'), text);
    const env = readSubnetEnv(join(dir, 'subnet.env'));
    if (env === null) throw new Error('unit fixture: subnet.env did not parse');
    return env;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

t.test('weft-cni with the real bridge and host-local plugins', async (t) => {
  const cluster = await clusterFor(t, 2, netConfig('10.5.0.0/16', 'udp'));
  for (const n of [1, 2]) await cluster.startDaemon(n, ['--tier=batch']);
  const reservation = (n: number, ip: string): string => {
    const ipam = cluster.cniNetConf(n).ipam as { dataDir: string };
    return join(ipam.dataDir, 'weft', ip);
  };

  const pods = new Map<string, CniPod>();
  await t.test('ADD: two pods on each host', async (t) => {
    for (const n of [1, 2]) {
      for (const k of ['a', 'b']) {
        const pod = await cluster.addCniPod(n);
        pods.set(`h${n}${k}`, pod);
        const gw = cluster.daemons.get(n)!.subnetGateway.split('/')[0];
        t.equal(pod.gateway, gw, `h${n}${k}: gateway is FLANNEL_SUBNET's first host`);
        t.match(
          pod.result,
          { cniVersion: '1.0.0', routes: [{ dst: '10.5.0.0/16' }] },
          `h${n}${k}: result (${pod.cidr})`,
        );
        t.ok(existsSync(reservation(n, pod.ip)), `h${n}${k}: host-local reserved ${pod.ip} in the cluster's dataDir`);
        const mtu = await cluster.tb.exec(pod, ['cat', '/sys/class/net/eth0/mtu']);
        const env = readSubnetEnv(cluster.subnetFile(n))!;
        t.equal(Number(mtu.stdout.trim()), env.mtu, `h${n}${k}: eth0 MTU is FLANNEL_MTU`);
      }
    }
    t.equal(new Set([...pods.values()].map((p) => p.ip)).size, 4, 'four distinct addresses');
  });

  await t.test('pods ping across hosts', async (t) => {
    for (const [from, to] of [
      ['h1a', 'h2a'],
      ['h1b', 'h2b'],
      ['h2a', 'h1b'],
      ['h2b', 'h1a'],
    ] as const) {
      const r = await ping(pods.get(from)!, pods.get(to)!.ip, { count: 2, timeoutSec: 3, intervalSec: 0.2 });
      t.ok(r.ok, `${from} ${pods.get(from)!.ip} -> ${to} ${pods.get(to)!.ip}`);
    }
  });

  await t.test('CHECK', async (t) => {
    const pod = pods.get('h1a')!;
    const conf = { ...cluster.cniNetConf(1), prevResult: pod.result };
    const ok = await cluster.cni(1, 'CHECK', { containerId: pod.containerId, netns: pod.netnsPath, conf });
    t.equal(ok.code, 0, `CHECK of a live pod passes ${ok.stdout}`);
    const unknown = await cluster.cni(1, 'CHECK', { containerId: 'nobody', netns: pod.netnsPath, conf });
    errorShape(t, unknown, 3, 'CHECK of an unknown container');
    const old = await cluster.cni(1, 'CHECK', {
      containerId: pod.containerId,
      netns: pod.netnsPath,
      conf: { ...conf, cniVersion: '0.3.1' },
    });
    errorShape(t, old, 1, 'CHECK at 0.3.1');
  });

  await t.test('DEL removes the address and the reservation; twice is fine', async (t) => {
    const pod = pods.get('h1b')!;
    const r = await cluster.delCniPod(pod);
    t.equal(r.code, 0, `DEL ${r.stdout}`);
    const link = await cluster.tb.exec(pod, ['ip', '-o', '-4', 'addr', 'show']);
    t.notMatch(link.stdout, pod.ip, 'the pod has no address any more');
    t.notOk(existsSync(reservation(1, pod.ip)), 'host-local released the address');
    const again = await cluster.cni(1, 'DEL', { containerId: pod.containerId, netns: pod.netnsPath });
    t.equal(again.code, 0, 'DEL a second time succeeds');
    const still = await ping(pods.get('h2a')!, pods.get('h1a')!.ip, { count: 1, timeoutSec: 3 });
    t.ok(still.ok, 'the other pod on h1 still answers');
  });

  await t.test('0.4.0 and 1.1.0 configs', async (t) => {
    const p04 = await cluster.addCniPod(1, { ...cluster.cniNetConf(1), cniVersion: '0.4.0' });
    t.match(p04.result, { cniVersion: '0.4.0', ips: [{ version: '4' }] }, '0.4.0 result shape');
    const c04 = await cluster.cni(1, 'CHECK', {
      containerId: p04.containerId,
      netns: p04.netnsPath,
      conf: { ...cluster.cniNetConf(1), cniVersion: '0.4.0', prevResult: p04.result },
    });
    t.equal(c04.code, 0, `CHECK at 0.4.0 ${c04.stdout}`);
    const conf11 = { ...cluster.cniNetConf(1), cniVersion: '1.1.0' };
    const p11 = await cluster.addCniPod(1, conf11);
    t.match(p11.result, { cniVersion: '1.1.0' }, '1.1.0 result (Debian delegates run at 1.0.0, same shape)');
    const c11 = await cluster.cni(1, 'CHECK', {
      containerId: p11.containerId,
      netns: p11.netnsPath,
      conf: { ...conf11, prevResult: p11.result },
    });
    t.equal(c11.code, 0, `CHECK at 1.1.0 ${c11.stdout}`);
    const st = await cluster.cni(1, 'STATUS', { conf: conf11 });
    t.equal(st.code, 0, 'STATUS: ready while subnet.env is there');
    const st10 = await cluster.cni(1, 'STATUS', { conf: cluster.cniNetConf(1) });
    errorShape(t, st10, 1, 'STATUS at 1.0.0');
    // GC: every attachment but h1a and the 1.1.0 pod is stale, so the 0.4.0 pod is DEL'd.
    const valid = [pods.get('h1a')!, p11].map((p) => ({ containerID: p.containerId, ifname: 'eth0' }));
    const gc = await cluster.cni(1, 'GC', { conf: { ...conf11, 'cni.dev/valid-attachments': valid } });
    t.equal(gc.code, 0, `GC ${gc.stdout}`);
    t.notOk(existsSync(reservation(1, p04.ip)), 'GC released the stale 0.4.0 pod');
    t.ok(existsSync(reservation(1, p11.ip)), 'GC kept the valid 1.1.0 pod');
    t.ok(existsSync(reservation(1, pods.get('h1a')!.ip)), 'GC kept h1a');
    const gcNoList = await cluster.cni(1, 'GC', { conf: conf11 });
    errorShape(t, gcNoList, 7, 'GC without valid-attachments');
    cluster.cniPods.delete(p04.containerId); // GC did its DEL
  });

  await t.test('spec-shaped errors and VERSION', async (t) => {
    const version = await cluster.cni(1, 'VERSION', { conf: '{"cniVersion":"0.4.0"}' });
    t.equal(version.code, 0, 'VERSION exits 0');
    t.same(
      version.json,
      { cniVersion: '0.4.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] },
      'VERSION output',
    );
    const ns = pods.get('h1a')!.netnsPath;
    errorShape(
      t,
      await cluster.cni(1, 'ADD', { containerId: 'bad-json', netns: ns, conf: '{"cniVersion": ' }),
      6,
      'ADD with a config that is not JSON',
    );
    errorShape(
      t,
      await cluster.cni(1, 'ADD', {
        containerId: 'bad-field',
        netns: ns,
        conf: { cniVersion: '1.0.0', type: 'weft-cni' },
      }),
      7,
      'ADD without name',
    );
    errorShape(
      t,
      await cluster.cni(1, 'ADD', {
        containerId: 'bad-version',
        netns: ns,
        conf: { ...cluster.cniNetConf(1), cniVersion: '9.9.9' },
      }),
      1,
      'ADD at an unknown version',
    );
    errorShape(
      t,
      await cluster.cni(1, 'ADD', { containerId: '../etc', netns: ns }),
      4,
      'ADD with an invalid container ID',
    );
    const missing = await cluster.cni(1, 'ADD', {
      containerId: 'no-subnet',
      netns: ns,
      conf: { ...cluster.cniNetConf(1), subnetFile: '/nonexistent/subnet.env' },
    });
    errorShape(t, missing, 11, 'ADD with a missing subnet file');
    t.equal((missing.json as { cniVersion: string }).cniVersion, '1.0.0', "error labelled with the config's version");
  });

  await t.test('DEL after the subnet file is gone', async (t) => {
    await cluster.stopDaemon(2);
    await rm(cluster.subnetFile(2), { force: true });
    const pod = pods.get('h2b')!;
    const r = await cluster.delCniPod(pod);
    t.equal(r.code, 0, `DEL without subnet.env ${r.stdout}`);
    t.notOk(existsSync(reservation(2, pod.ip)), 'host-local released the address');
    const link = await cluster.tb.exec(pod, ['ip', '-o', '-4', 'addr', 'show']);
    t.notMatch(link.stdout, pod.ip, 'the pod has no address any more');
    const add = await cluster.cni(2, 'ADD', { containerId: 'late', netns: pod.netnsPath });
    errorShape(t, add, 11, 'ADD once the subnet file is gone');
  });
});

t.test('without the CNI plugins a cluster refuses pods, naming the package (no hand-made stand-in)', async (t) => {
  const empty = mkdtempSync(join(tmpdir(), 'weft-no-cni-'));
  t.teardown(() => rmSync(empty, { recursive: true, force: true }));
  const cluster = await clusterFor(t, 1, netConfig('10.5.0.0/16', 'udp'), { cniDir: empty });
  await cluster.startDaemon(1);
  await t.rejects(
    cluster.ensurePod(1),
    {
      code: 'WEFT_ERR_CONFIG',
      message: /CNI plugins missing in .*: bridge, host-local, loopback; .*containernetworking/,
    },
    'ensurePod fails loudly',
  );
  t.equal(cluster.pods.size, 0, 'and made no pod');
  const manual = await cluster.ensurePod(1, { via: 'manual' });
  t.ok(manual.ip.startsWith('10.5.'), `a hand-made pod only when asked for (${manual.ip})`);
});
