// docker-compose.yml end to end, on a real Docker engine: etcd, the network config writer and three weft host
// containers, each with its workload on FLANNEL_SUBNET (cni0 + iperf3 -s, see scripts/compose-host.sh).
//
//   compose network "underlay" 198.19.250.0/24 (private to the compose project; no NAT, no published ports)
//     etcd .2      netconf .3 (one shot)      weft1 .11   weft2 .12   weft3 .13      ready (exits once all healthy)
//                                             weft0 (TUN) + cni0 = 10.5.N.1/24 (the "pod" address)
//
// Uses the engine DOCKER_HOST (or the default socket) points at when `docker info` answers; otherwise starts a
// private one (scripts/docker-engine.sh: its own socket, data root and exec root in a temp folder, no iptables) and
// stops it at the end, also on failure. Skips, saying why, only when Docker cannot be installed at all.
// Images are built offline: scripts/build-base-image.sh (BASE_IMAGE=weft-base:local) + the Dockerfile's prebuilt
// target, unless BASE_IMAGE/WEFT_BUILD are set in the environment.
//
// Checks, per backend in WEFT_COMPOSE_BACKENDS (default "udp"; e.g. "udp,vxlan,geneve"): three leases appear; every
// container pair pings over the overlay between pod addresses; a 2 s iperf3 between two hosts over the overlay;
// a host container killed and brought back gets its lease and subnet back (same PublicIP) and is reachable again;
// `up -d` with another tier recreates the containers, etcd's too, and every lease and subnet stays (etcd's data is
// in a volume); `down` keeps that volume and `down -v` removes it.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { PACKAGE_ROOT } from '../testbed/cluster.js';
import { waitFor } from './helpers/wait.js';

const HOSTS = ['weft1', 'weft2', 'weft3'] as const;
const PREFIX = '/coreos.com/network';
const PROJECT = `weft-compose-test-${process.pid}`;
const BACKENDS = (process.env['WEFT_COMPOSE_BACKENDS'] ?? 'udp')
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean);

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs argv (no shell) with a time bound; never throws for a non-zero exit. */
function run(argv: string[], env: NodeJS.ProcessEnv, timeoutMs = 60_000): Promise<Run> {
  const [cmd, ...args] = argv as [string, ...string[]];
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd: PACKAGE_ROOT, env, timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
      const why =
        err !== null && err.killed
          ? `\n(killed after ${timeoutMs} ms)`
          : err !== null && code === -1
            ? `\n${err.message}`
            : '';
      resolve({ code, stdout: String(stdout), stderr: String(stderr) + why });
    });
  });
}

async function must(argv: string[], env: NodeJS.ProcessEnv, timeoutMs?: number): Promise<string> {
  const r = await run(argv, env, timeoutMs);
  if (r.code !== 0)
    throw new Error(`${argv.join(' ')} exited ${r.code}: ${(r.stderr || r.stdout).trim().slice(-2000)}`);
  return r.stdout;
}

interface Engine {
  env: NodeJS.ProcessEnv;
  /** Set when this test started the engine (and so stops it). */
  privateDir: string | null;
}

/**
 * An engine to use: the one already answering, else a private one. null (with the reason) when Docker cannot be
 * installed.
 */
async function getEngine(t: Test): Promise<Engine | { skip: string }> {
  const env = { ...process.env };
  if (process.env['WEFT_COMPOSE_ENGINE'] !== 'private') {
    const info = await run(['docker', 'info', '--format', '{{.ServerVersion}}'], env, 15_000);
    if (info.code === 0) {
      t.comment(`using the running Docker engine ${info.stdout.trim()} (${env['DOCKER_HOST'] ?? 'default socket'})`);
      return { env, privateDir: null };
    }
  }
  const r = await run(['bash', join(PACKAGE_ROOT, 'scripts', 'docker-engine.sh'), 'start'], env, 240_000);
  if (r.code === 3)
    return { skip: `Docker cannot be installed or started here: ${r.stderr.trim().split('\n').slice(-2).join(' ')}` };
  if (r.code !== 0) throw new Error(`scripts/docker-engine.sh start exited ${r.code}: ${r.stderr.trim().slice(-2000)}`);
  const vars = Object.fromEntries(
    r.stdout
      .trim()
      .split('\n')
      .map((l) => l.split('=', 2) as [string, string])
      .filter((kv) => kv.length === 2),
  );
  const dir = vars['WEFT_DOCKER_DIR'];
  const host = vars['DOCKER_HOST'];
  if (dir === undefined || host === undefined)
    throw new Error(`scripts/docker-engine.sh start printed no engine: ${r.stdout}`);
  t.comment(`started a private Docker engine in ${dir}`);
  return { env: { ...env, DOCKER_HOST: host }, privateDir: dir };
}

/** `docker compose` (v2) when the plugin is there, else Debian's `docker-compose` (v1). */
async function composeCommand(env: NodeJS.ProcessEnv): Promise<string[]> {
  if ((await run(['docker', 'compose', 'version'], env, 15_000)).code === 0) return ['docker', 'compose'];
  if ((await run(['docker-compose', 'version'], env, 15_000)).code === 0) return ['docker-compose'];
  throw new Error('neither `docker compose` nor `docker-compose` works');
}

t.test('docker-compose cluster: three weft hosts over a real Docker engine', async (t) => {
  const engine = await getEngine(t);
  if ('skip' in engine) {
    // "1..0 # reason": TAP's skip of a whole test, shown with its reason.
    t.plan(0, engine.skip);
    return;
  }
  const stopEngine = async () => {
    if (engine.privateDir === null) return;
    const r = await run(
      ['bash', join(PACKAGE_ROOT, 'scripts', 'docker-engine.sh'), 'stop', engine.privateDir],
      process.env,
      60_000,
    );
    if (r.code !== 0) t.comment(`stopping the engine: ${r.stderr.trim()}`);
  };
  t.teardown(stopEngine);

  const compose = await composeCommand(engine.env);
  t.comment(`compose: ${compose.join(' ')}`);
  const offline = process.env['BASE_IMAGE'] === undefined;
  const baseEnv: NodeJS.ProcessEnv = {
    ...engine.env,
    BASE_IMAGE: process.env['BASE_IMAGE'] ?? 'weft-base:local',
    WEFT_BUILD: process.env['WEFT_BUILD'] ?? (offline ? 'prebuilt' : 'runtime'),
    WEFT_IMAGE: `weft:${PROJECT}`,
  };

  await t.test('compose file is valid', async (t) => {
    const r = await run([...compose, '-p', PROJECT, 'config', '-q'], baseEnv, 30_000);
    t.equal(r.code, 0, `${compose.join(' ')} config -q: ${r.stderr.trim() || 'ok'}`);
  });

  await t.test('images build', async (t) => {
    if (offline) {
      await must(['bash', join(PACKAGE_ROOT, 'scripts', 'build-base-image.sh'), 'weft-base:local'], baseEnv, 120_000);
      await must(['bash', join(PACKAGE_ROOT, 'scripts', 'compose-prebuilt.sh')], baseEnv, 120_000);
    }
    // Every service shares one image; building it once for etcd builds it for all.
    await must([...compose, '-p', PROJECT, 'build', 'etcd'], baseEnv, 180_000);
    const id = await must(
      ['docker', 'image', 'inspect', '--format', '{{.Id}}', baseEnv['WEFT_IMAGE'] as string],
      baseEnv,
    );
    t.match(
      id.trim(),
      /^sha256:/,
      `image ${baseEnv['WEFT_IMAGE']} built (${baseEnv['WEFT_BUILD']} on ${baseEnv['BASE_IMAGE']})`,
    );
  });
  t.teardown(async () => {
    await run(['docker', 'image', 'rm', '-f', baseEnv['WEFT_IMAGE'] as string], baseEnv, 60_000);
  });

  for (const backend of BACKENDS) {
    await t.test(`backend ${backend}`, (t) => clusterScenario(t, compose, { ...baseEnv, WEFT_BACKEND: backend }));
  }
});

async function clusterScenario(t: Test, compose: string[], env: NodeJS.ProcessEnv): Promise<void> {
  const dc = (args: string[], timeoutMs?: number) => must([...compose, '-p', PROJECT, ...args], env, timeoutMs);
  // Container ids by service; `compose ps` is slow (v1 starts Python), so ask once per (re)start.
  const ids = new Map<string, string>();
  const idOf = async (service: string) => {
    const have = ids.get(service);
    if (have !== undefined) return have;
    const id = (await dc(['ps', '-q', service])).trim();
    if (!/^[0-9a-f]{12,64}$/.test(id)) throw new Error(`no container for ${service}: "${id}"`);
    ids.set(service, id);
    return id;
  };
  const exec = (id: string, argv: string[], timeoutMs = 30_000) => run(['docker', 'exec', id, ...argv], env, timeoutMs);

  // A project left by an interrupted earlier run would hold the same subnet.
  await run([...compose, '-p', PROJECT, 'down', '-v', '--remove-orphans'], env, 120_000);
  t.teardown(async () => {
    if (!t.passing()) {
      const logs = await run([...compose, '-p', PROJECT, 'logs', '--no-color', '--tail', '30'], env, 60_000);
      t.comment(logs.stdout.slice(-6000));
    }
    const r = await run([...compose, '-p', PROJECT, 'down', '-v', '--remove-orphans', '-t', '5'], env, 120_000);
    if (r.code !== 0) t.comment(`compose down: ${r.stderr.trim()}`);
  });
  await dc(['up', '-d', '--no-build'], 180_000);

  const leaseKeys = async () => {
    const r = await exec(
      await idOf('etcd'),
      ['etcdctl', '--endpoints=http://127.0.0.1:2379', 'get', '--prefix', '--keys-only', `${PREFIX}/subnets/`],
      15_000,
    );
    return r.code === 0 ? r.stdout.split('\n').filter((l) => l.trim().length > 0) : [];
  };
  let keys: string[] = [];
  await waitFor('three leases in etcd', async () => (keys = await leaseKeys()).length >= 3, 60_000, 250);
  t.equal(keys.length, 3, `three leases: ${keys.map((k) => k.slice(PREFIX.length + 9)).join(' ')}`);
  const exitCode = async (service: string) =>
    (await run(['docker', 'inspect', '--format', '{{.State.ExitCode}}', await idOf(service)], env)).stdout.trim();
  t.equal(await exitCode('netconf'), '0', 'the network config writer exited 0');
  // `up -d` returned after `ready` ran, and it runs only once every host is healthy (README's commands rely on it).
  t.equal(await exitCode('ready'), '0', 'up -d returned with the three hosts healthy');

  /** The host's pod address, once its entrypoint has set up cni0 on FLANNEL_SUBNET (bounded). */
  const podIp = async (service: string) => {
    const id = await idOf(service);
    let ip = '';
    const podEnv = async (): Promise<boolean> => {
      const r = await exec(id, ['cat', '/run/weft/pod.env'], 10_000);
      ip = /^POD_IP=(\d+\.\d+\.\d+\.\d+)$/m.exec(r.stdout)?.[1] ?? '';
      return ip !== '';
    };
    await waitFor(`${service}'s pod side`, podEnv, 60_000, 250);
    return ip;
  };
  const subnetOf = async (service: string) => {
    const r = await exec(await idOf(service), ['cat', '/run/flannel/subnet.env'], 10_000);
    return /^FLANNEL_SUBNET=(.*)$/m.exec(r.stdout)?.[1] ?? null;
  };
  const pods = new Map<string, string>();
  for (const h of HOSTS) pods.set(h, await podIp(h));
  for (const [h, ip] of pods)
    t.match(ip, /^10\.5\.\d+\.1$/, `${h} pod address ${ip} is on its FLANNEL_SUBNET (${await subnetOf(h)})`);

  const pingPair = async (t: Test, from: string, to: string) => {
    const src = pods.get(from) as string;
    const dst = pods.get(to) as string;
    const r = await exec(await idOf(from), ['ping', '-c', '2', '-i', '0.2', '-W', '3', '-I', src, dst], 20_000);
    t.equal(
      r.code,
      0,
      `${from} ${src} -> ${to} ${dst} over the overlay` +
        (r.code === 0 ? '' : ': ' + (r.stdout + r.stderr).trim().slice(-300)),
    );
  };

  await t.test('every container pair pings over the overlay', async (t) => {
    for (const from of HOSTS) for (const to of HOSTS) if (from !== to) await pingPair(t, from, to);
  });

  await t.test('iperf3 for 2 s between two hosts over the overlay', async (t) => {
    const src = pods.get('weft1') as string;
    const dst = pods.get('weft2') as string;
    const r = await exec(await idOf('weft1'), ['iperf3', '-c', dst, '-B', src, '-t', '2', '-J'], 30_000);
    t.equal(r.code, 0, `iperf3 -c ${dst} -B ${src}${r.code === 0 ? '' : ': ' + r.stderr.trim().slice(-300)}`);
    if (r.code !== 0) return;
    const report = JSON.parse(r.stdout) as { end?: { sum_received?: { bits_per_second?: number; bytes?: number } } };
    const got = report.end?.sum_received;
    t.ok((got?.bytes ?? 0) > 0, 'bytes arrived at the other host');
    t.comment(
      `weft1 -> weft2 (${env['WEFT_BACKEND']}): ${((got?.bits_per_second ?? 0) / 1e6).toFixed(0)} Mbit/s received`,
    );
  });

  await t.test('a killed host comes back with the same subnet', async (t) => {
    const before = await subnetOf('weft2');
    t.ok(before, `weft2 had ${before}`);
    await dc(['kill', 'weft2'], 60_000);
    t.equal((await leaseKeys()).length, 3, 'its lease stays in etcd while it is down');
    await dc(['up', '-d', '--no-deps', '--no-build', 'weft2'], 120_000);
    ids.delete('weft2');
    // podIp waits for a subnet.env written by the new run (the entrypoint removes pod.env at start).
    pods.set('weft2', await podIp('weft2'));
    t.equal(await subnetOf('weft2'), before, 'same FLANNEL_SUBNET after the restart (lease reused: same PublicIP)');
    t.equal((await leaseKeys()).length, 3, 'still three leases');
    for (const other of ['weft1', 'weft3']) {
      await pingPair(t, other, 'weft2');
      await pingPair(t, 'weft2', other);
    }
  });

  await t.test('up -d with another tier: containers recreated, etcd too; leases and subnets stay', async (t) => {
    const before = new Map<string, string | null>();
    for (const h of HOSTS) before.set(h, await subnetOf(h));
    const keys = (await leaseKeys()).sort();
    const etcdBefore = await idOf('etcd');
    // README's "compare tiers" line. --force-recreate stands for what recreates etcd in real use (a changed build
    // argument or a rebuilt image): etcd's data must outlive its container.
    const tier = env['WEFT_TIER'] === 'dgram' ? 'batch' : 'dgram';
    await must(
      [...compose, '-p', PROJECT, 'up', '-d', '--no-build', '--force-recreate'],
      { ...env, WEFT_TIER: tier },
      180_000,
    );
    ids.clear();
    t.not(await idOf('etcd'), etcdBefore, 'etcd runs in a new container');
    for (const h of HOSTS) pods.set(h, await podIp(h));
    t.same((await leaseKeys()).sort(), keys, 'the same three leases');
    for (const h of HOSTS) t.equal(await subnetOf(h), before.get(h), `${h} has its subnet back`);
    // `weft` is on the image's PATH (Dockerfile), as README's compose commands use it.
    const status = await exec(await idOf('weft1'), ['weft', 'status', '--healthz-port=8471', '--json']);
    t.match(status.stdout, new RegExp(`"tier": "${tier}"`), `weft1 runs the ${tier} tier`);
    await pingPair(t, 'weft1', 'weft2');
    await pingPair(t, 'weft3', 'weft1');
  });

  await t.test('down keeps the leases (the volume), down -v removes them', async (t) => {
    const volumes = async () =>
      (await must(['docker', 'volume', 'ls', '-q', '--filter', `label=com.docker.compose.project=${PROJECT}`], env))
        .split('\n')
        .filter((l) => l.trim().length > 0);
    await dc(['down', '-t', '5'], 120_000);
    t.equal((await volumes()).length, 1, `down keeps etcd's volume (${(await volumes()).join(' ')})`);
    await dc(['down', '-v', '-t', '5'], 120_000);
    t.same(await volumes(), [], 'down -v removes it');
  });
}
