// Namespace testbed and iproute2 wrapper, on real namespaces (needs root).
//
//   netns w<id>-br: wbr<id> 198.18.<id>.254/24
//     h1 198.18.<id>.1 ─┐
//     h2 198.18.<id>.2 ─┼─ wbr<id>        hN: cni0 10.250.N.1/24 ── pod w<id>-hN-pod 10.250.N.2
//     h3 198.18.<id>.3 ─┤
//     h4 (joins later) ─┘
//
// Load is bounded: pings of 2 probes, one 1-second iperf3 run. Everything is removed by destroy() in teardown,
// and by the testbed's exit/signal handlers if this process is interrupted.
import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { WeftError } from '../src/errors.js';
import {
  addrReplace,
  bridge,
  defaultRouteInterface,
  fdbAppend,
  interfaceByAddress,
  interfaceByName,
  ip,
  ipBatch,
  IprouteError,
  linkAddVxlan,
  linkByName,
  linkDel,
  linkSetUp,
  listFdb,
  listRoutes,
  neighReplace,
  routeDel,
  routeReplace,
} from '../src/net/iproute.js';
import { createTestbed } from '../testbed/hosts.js';
import { ping, runIperf, startIperfServer } from '../testbed/traffic.js';
import { cleanupStale, RUN_DIR } from '../testbed/cleanup.js';

async function namespaces(prefix: string): Promise<string[]> {
  const out = await ip(['netns', 'list']);
  return out
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => n.startsWith(prefix));
}

const tb = await createTestbed({ hosts: 3 });
t.teardown(() => tb.destroy());
const prefix = `w${tb.id}-`;

t.test('underlay: every host pings every other host', async (t) => {
  t.equal(tb.hosts.length, 3);
  t.equal(tb.hostIP(2), `198.18.${tb.id}.2`);
  const pairs = tb.hosts.flatMap((a) => tb.hosts.filter((b) => b !== a).map((b) => [a, b] as const));
  const results = await Promise.all(pairs.map(([a, b]) => ping(a, b.ip, { count: 2, timeoutSec: 2 })));
  results.forEach((r, i) => t.ok(r.ok, `${pairs[i]![0].name} -> ${pairs[i]![1].name}: ${r.received}/${r.transmitted}`));
  const toBridge = await ping(tb.host(1), tb.bridgeIP, { count: 1 });
  t.ok(toBridge.ok, 'host reaches the bridge netns address (where etcd runs)');
  t.ok(toBridge.rttAvgMs !== undefined && toBridge.rttAvgMs > 0, 'rtt parsed');
  const lost = await ping(tb.host(1), `198.18.${tb.id}.200`, { count: 1, timeoutSec: 1 });
  t.notOk(lost.ok, 'nobody at .200');
  t.equal(lost.lossPercent, 100);
});

t.test('iproute: routes, interfaces, batch, vxlan/neigh/fdb inside h1', async (t) => {
  const h1 = tb.host(1);
  const h2 = tb.host(2);
  const netns = h1.ns;

  const eth0 = await interfaceByAddress(h1.ip, { netns });
  t.equal(eth0?.name, 'eth0');
  t.equal(eth0?.mtu, 1500);
  t.same(eth0?.addresses, [h1.ip]);
  t.same(eth0?.cidrs, [h1.cidr]);
  t.equal((await interfaceByName('eth0', { netns }))?.index, eth0?.index);
  t.equal(await interfaceByName('nope0', { netns }), null, 'missing interface is null');
  t.equal(await interfaceByAddress('192.0.2.99', { netns }), null);
  t.equal((await defaultRouteInterface({ netns }))?.name, 'eth0', 'default route leaves through eth0');

  await routeReplace({ dst: '10.99.0.0/16', via: h2.ip, dev: 'eth0' }, { netns });
  await routeReplace({ dst: '10.98.0.0/24', via: '10.98.0.0', dev: 'eth0', onlink: true }, { netns });
  await routeReplace({ dst: '10.99.0.0/16', via: h2.ip, dev: 'eth0' }, { netns }); // idempotent
  const routes = await listRoutes('eth0', { netns });
  const r99 = routes.find((r) => r.dst === '10.99.0.0/16');
  t.equal(r99?.gateway, h2.ip);
  t.equal(r99?.dev, 'eth0', 'dev filled in when the filter fixes it');
  t.ok(routes.find((r) => r.dst === '10.98.0.0/24')?.flags.includes('onlink'), 'onlink flag');
  const got = await ip(['route', 'get', '10.99.1.1'], { netns, json: true });
  t.ok(Array.isArray(got), 'json mode returns parsed JSON');
  t.equal(await routeDel({ dst: '10.99.0.0/16' }, { netns }), true);
  t.equal(await routeDel({ dst: '10.99.0.0/16' }, { netns }), false, 'deleting a missing route is false');
  t.notOk((await listRoutes({}, { netns })).some((r) => r.dst === '10.99.0.0/16'));

  const err = await ip(['route', 'add', 'not-a-prefix', 'dev', 'eth0'], { netns }).catch((e: unknown) => e);
  t.ok(err instanceof IprouteError && err instanceof WeftError, 'IprouteError is a WeftError');
  if (err instanceof IprouteError) {
    t.equal(err.code, 'WEFT_ERR_IPROUTE');
    t.same(err.argv.slice(0, 3), ['ip', '-n', netns]);
    t.ok(err.stderr.length > 0, 'carries stderr');
  }

  await ipBatch(
    [
      ['route', 'replace', '10.97.1.0/24', 'via', h2.ip, 'dev', 'eth0'],
      ['route', 'replace', '10.97.2.0/24', 'via', h2.ip, 'dev', 'eth0'],
    ],
    { netns },
  );
  t.equal((await listRoutes({ dev: 'eth0' }, { netns })).filter((r) => r.dst.startsWith('10.97.')).length, 2);
  for (const bad of [
    ['route', 'add', '10.0.0.0/8 dev eth0'],
    ['addr', 'add', '#x'],
    ['link', "'q"],
    ['x', ''],
  ]) {
    await t.rejects(ipBatch([bad], { netns }), { code: 'WEFT_ERR_IPROUTE' }, `rejects ${JSON.stringify(bad)}`);
  }
  const failing = await ipBatch(
    [
      ['route', 'del', '10.97.1.0/24'],
      ['route', 'del', '10.96.0.0/24'],
    ],
    { netns },
  ).catch((e: unknown) => e);
  t.ok(failing instanceof IprouteError && /Command failed/.test(failing.stderr), 'batch failure names the line');
  await t.rejects(ip(['link', 'show'], { netns: 'bad ns' }), { code: 'WEFT_ERR_IPROUTE' });

  // Kernel VXLAN helpers, flannel layout.
  await linkAddVxlan({ name: 'flannel.1', vni: 1, port: 8472, local: h1.ip, dev: 'eth0', mtu: 1450 }, { netns });
  await addrReplace('flannel.1', '10.250.1.0/32', { netns });
  await linkSetUp('flannel.1', 1450, { netns });
  const vx = await linkByName('flannel.1', { netns });
  t.equal(vx?.kind, 'vxlan');
  t.equal(vx?.data['id'], 1);
  t.equal(vx?.data['learning'], false);
  t.equal(vx?.mtu, 1450);
  t.equal(await linkByName('nope0', { netns }), null);
  const mac = 'aa:bb:cc:00:00:02';
  await neighReplace({ dst: '10.250.2.0', lladdr: mac, dev: 'flannel.1' }, { netns });
  await fdbAppend({ mac, dev: 'flannel.1', dst: h2.ip }, { netns });
  await fdbAppend({ mac, dev: 'flannel.1', dst: h2.ip }, { netns }); // again: still fine
  await routeReplace({ dst: '10.250.2.0/24', via: '10.250.2.0', dev: 'flannel.1', onlink: true }, { netns });
  const fdb = await listFdb('flannel.1', { netns });
  t.ok(
    fdb.some((f) => f.mac === mac && f.dst === h2.ip),
    'fdb entry present',
  );
  const neigh = await ip(['neigh', 'show', 'dev', 'flannel.1'], { netns, json: true });
  t.match(neigh, [{ dst: '10.250.2.0', lladdr: mac, state: ['PERMANENT'] }]);
  t.ok(typeof (await bridge(['fdb', 'show', 'dev', 'flannel.1'], { netns })) === 'string');
  t.equal(await linkDel('flannel.1', { netns }), true);
  t.equal(await linkDel('flannel.1', { netns }), false);
});

t.test('pods behind cni0 reach their gateway', async (t) => {
  const pods = await Promise.all(tb.hosts.map((h) => tb.addPod(h, `10.250.${h.n}.1/24`)));
  for (const [i, pod] of pods.entries()) {
    const n = tb.hosts[i]!.n;
    t.equal(pod.ip, `10.250.${n}.2`);
    t.equal(pod.gateway, `10.250.${n}.1`);
    t.equal(pod.ns, `${prefix}h${n}-pod`);
  }
  const res = await Promise.all(pods.map((p) => ping(p, p.gateway, { count: 2 })));
  res.forEach((r, i) => t.ok(r.ok, `pod ${pods[i]!.ns} -> gateway`));
  // The pod's default route leads to the host: it can reach the host's underlay address too.
  t.ok((await ping(pods[0]!, tb.host(1).ip, { count: 1 })).ok, 'pod -> its host underlay address');
  const second = await tb.addPod(1, '10.250.1.1/24');
  t.equal(second.ip, '10.250.1.3', 'second pod on h1 gets the next address');
  t.ok((await ping(second, pods[0]!.ip, { count: 1 })).ok, 'pod -> pod on the same host');
  await t.rejects(tb.addPod(1, '10.251.1.1/24'), { code: 'WEFT_ERR_IPROUTE' }, 'one pod subnet per host');
  const fwd = await tb.exec(tb.host(1), ['sysctl', '-n', 'net.ipv4.ip_forward']);
  t.equal(fwd.stdout.trim(), '1');
});

t.test('a 4th host joins, is reachable, and leaves', async (t) => {
  const h4 = await tb.addHost();
  t.equal(h4.n, 4);
  t.equal(h4.ip, `198.18.${tb.id}.4`);
  t.ok((await ping(h4, tb.host(1).ip, { count: 2 })).ok, 'h4 -> h1');
  t.ok((await ping(tb.host(3), h4.ip, { count: 2 })).ok, 'h3 -> h4');
  const r = await tb.exec(h4, ['ip', '-br', 'addr', 'show', 'dev', 'eth0']);
  t.equal(r.code, 0);
  t.match(r.stdout, h4.cidr);
  await tb.removeHost(h4);
  t.notOk((await namespaces(prefix)).includes(h4.ns), 'h4 netns gone');
  t.notOk((await ping(tb.host(1), h4.ip, { count: 1, timeoutSec: 1 })).ok, 'h4 unreachable after removal');
  const bridgePorts = await ip(['link', 'show', 'master', tb.bridgeDev], { netns: tb.bridgeNs });
  t.notMatch(bridgePorts, /\bh4@/, 'bridge-side veth went with the netns');
  const again = await tb.addHost();
  t.equal(again.n, 4, 'the number is reused at once');
  t.ok((await ping(again, tb.host(1).ip, { count: 1 })).ok, 'new h4 -> h1');
  await tb.removeHost(again);
});

t.test('iperf3 TCP for 1 s between h1 and h2', async (t) => {
  const server = await startIperfServer(tb.host(2), 5201);
  const r = await runIperf(tb.host(1), tb.host(2).ip, { seconds: 1, streams: 1, port: 5201 });
  t.ok(r.receivedBps > 0, `received ${(r.receivedBps / 1e9).toFixed(2)} Gb/s`);
  t.ok(r.sentBps > 0);
  t.ok(r.json !== null && typeof r.json === 'object');
  const udp = await runIperf(tb.host(1), tb.host(2).ip, { seconds: 1, udp: true, bitrate: '10M', length: 1000 });
  t.ok(udp.receivedBps > 0, 'UDP run at a bounded 10 Mbit/s');
  t.ok(udp.lostPercent !== undefined);
  await t.rejects(
    runIperf(tb.host(1), tb.host(2).ip, { seconds: 1, port: 5999 }),
    { code: 'WEFT_ERR_IPROUTE' },
    'no server',
  );
  t.equal(server.exitCode, null, 'server still running; destroy() stops it');
});

t.test('exec and spawn are bounded and tracked', async (t) => {
  const r = await tb.exec(tb.host(1), ['sleep', '5'], { timeoutMs: 200 });
  t.ok(r.timedOut, 'exec timeout kills');
  t.throws(() => tb.exec('not-ours', ['true']), { code: 'WEFT_ERR_IPROUTE' });
  await tb.removeHost(3);
  t.notOk(
    (await namespaces(prefix)).some((n) => n.startsWith(`${prefix}h3`)),
    'h3 and its pod gone',
  );
});

// Runs testbed/hosts.ts in a child node (with tap's TypeScript loader), which builds a testbed and prints its id.
function childWithTestbed(): { id: Promise<number>; child: ReturnType<typeof spawn> } {
  const loader = process.execArgv.filter((a) => a.includes('typescript'));
  const mod = pathToFileURL(new URL('../testbed/hosts.ts', import.meta.url).pathname).href;
  const code = `const m = await import(${JSON.stringify(mod)});
const tb = await m.createTestbed({ hosts: 2 });
process.stdout.write('ID ' + tb.id + '\\n');
setTimeout(() => {}, 20000);`;
  const child = spawn(process.execPath, [...loader, '--input-type=module', '-e', code], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const id = new Promise<number>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`child gave no id: ${out}`)), 20_000);
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /ID (\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.once('exit', (c, s) => {
      clearTimeout(timer);
      reject(new Error(`child exited ${c ?? s}: ${out}`));
    });
  });
  return { id, child };
}

t.test('SIGTERM to a testbed owner removes its namespaces', async (t) => {
  const { id, child } = childWithTestbed();
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const n = await id;
  t.equal((await namespaces(`w${n}-`)).length, 3, 'bridge + 2 hosts');
  const gone = new Promise<NodeJS.Signals | null>((r) => child.once('exit', (_c, s) => r(s)));
  child.kill('SIGTERM');
  t.equal(await gone, 'SIGTERM', 'child died by the re-raised signal');
  t.same(await namespaces(`w${n}-`), [], 'signal handler removed the namespaces');
  t.notOk(existsSync(`${RUN_DIR}/${n}.pid`), 'marker removed');
});

t.test('cleanupStale removes what a SIGKILLed run left', async (t) => {
  const { id, child } = childWithTestbed();
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const n = await id;
  const gone = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGKILL');
  await gone;
  t.equal((await namespaces(`w${n}-`)).length, 3, 'leftovers after SIGKILL');
  t.ok(existsSync(`${RUN_DIR}/${n}.pid`), 'marker left behind');
  const deleted = await cleanupStale('w');
  t.same(deleted.filter((d) => d.startsWith(`w${n}-`)).sort(), [`w${n}-br`, `w${n}-h1`, `w${n}-h2`]);
  t.same(await namespaces(`w${n}-`), []);
  t.notOk(existsSync(`${RUN_DIR}/${n}.pid`), 'marker removed');
  t.ok((await namespaces(prefix)).length > 0, 'our own live testbed untouched');
});

t.test('destroy stops tracked children and leaves no namespace with the testbed prefix', async (t) => {
  const child = tb.spawn(tb.bridgeNs, ['sleep', '30']);
  t.ok(child.pid !== undefined);
  const exited = new Promise<NodeJS.Signals | null>((r) => child.once('exit', (_c, s) => r(s)));
  await tb.destroy();
  t.equal(await exited, 'SIGTERM', 'child stopped by destroy()');
  t.same(await namespaces(prefix), []);
  t.notOk(existsSync(`${RUN_DIR}/${tb.id}.pid`));
  await tb.destroy(); // idempotent
});
