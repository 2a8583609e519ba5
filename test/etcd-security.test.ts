// Security: etcd over TLS with client certificates and with username/password (a real etcd 3.4 configured each way,
// certificates made here with openssl), a Network overlapping the underlay refused, --ip-masq rules added and
// removed in the host's namespace, and no shell strings anywhere in src/.
//
//   bridge netns w<id>-br: etcd 198.18.<id>.254:2379 (TLS + client certs, then plain + auth)
//   h1: weft daemon with --etcd-cafile/--etcd-certfile/--etcd-keyfile, then --etcd-username/--etcd-password
import t from 'tap';
import { execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestbed, type Testbed } from '../testbed/hosts.js';
import { killChild } from '../testbed/exec.js';
import { PACKAGE_ROOT, PREFIX, WEFT_CLI } from '../testbed/cluster.js';
import { readSubnetEnv } from '../src/lease/subnet-env.js';
import { formatSubnet } from '../src/ip/subnet.js';
import { clusterFor, netConfig } from './helpers/cluster.js';
import { sleep } from './helpers/wait.js';

const NETWORK = JSON.stringify({ Network: '10.44.0.0/16', SubnetLen: 24, Backend: { Type: 'udp' } });

function run(
  file: string,
  args: string[],
  env?: NodeJS.ProcessEnv,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: 30_000, encoding: 'utf8', env: env ?? process.env }, (err, stdout, stderr) => {
      const code =
        err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

async function openssl(args: string[]): Promise<void> {
  const r = await run('openssl', args);
  if (r.code !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
}

/** CA, server certificate for `ip`, client certificate, and another CA with a server certificate; all in `dir`. */
async function makeCerts(dir: string, ip: string): Promise<void> {
  const f = (n: string) => join(dir, n);
  /** A self-signed CA valid for 2 days: <name>.key and <name>.crt. */
  const ca = (cn: string, name: string) => {
    const subject = ['-days', '2', '-subj', `/CN=${cn}`];
    return openssl([
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      ...subject,
      '-keyout',
      f(`${name}.key`),
      '-out',
      f(`${name}.crt`),
    ]);
  };
  await ca('weft-test-ca', 'ca');
  // A second CA: etcd must refuse its client certificate, weft its server certificate.
  await ca('rogue', 'rogue');
  const serverExt = `subjectAltName=IP:${ip},IP:127.0.0.1\nextendedKeyUsage=serverAuth`;
  for (const [name, ext, signer] of [
    ['server', serverExt, 'ca'],
    ['client', 'extendedKeyUsage=clientAuth', 'ca'],
    ['rogue-server', serverExt, 'rogue'],
  ] as const) {
    writeFileSync(f(`${name}.ext`), ext + '\n');
    await openssl([
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-subj',
      `/CN=weft-${name}`,
      '-keyout',
      f(`${name}.key`),
      '-out',
      f(`${name}.csr`),
    ]);
    await openssl([
      'x509',
      '-req',
      '-in',
      f(`${name}.csr`),
      '-CA',
      f(`${signer}.crt`),
      '-CAkey',
      f(`${signer}.key`),
      '-CAcreateserial',
      '-days',
      '2',
      '-extfile',
      f(`${name}.ext`),
      '-out',
      f(`${name}.crt`),
    ]);
  }
}

/** etcd in the bridge namespace with extra flags; killed by the returned stop(). */
async function startEtcdIn(
  tb: Testbed,
  dir: string,
  scheme: 'http' | 'https',
  extra: string[],
  ctl: string[],
): Promise<{ endpoint: string; stop: () => Promise<void> }> {
  const endpoint = `${scheme}://${tb.bridgeIP}:2379`;
  const data = mkdtempSync(join(dir, 'etcd-'));
  const child = tb.spawn(
    tb.bridgeNs,
    [
      'etcd',
      '--name',
      'sec',
      '--data-dir',
      data,
      '--listen-client-urls',
      endpoint,
      '--advertise-client-urls',
      endpoint,
      '--listen-peer-urls',
      'http://127.0.0.1:2390',
      '--initial-advertise-peer-urls',
      'http://127.0.0.1:2390',
      '--initial-cluster',
      'sec=http://127.0.0.1:2390',
      '--log-level',
      'warn',
      ...extra,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let tail = '';
  child.stderr?.on('data', (d: Buffer) => (tail = (tail + d.toString()).slice(-3000)));
  for (let i = 0; ; i++) {
    const r = await tb.exec(
      tb.bridgeNs,
      ['etcdctl', `--endpoints=${endpoint}`, ...ctl, '--command-timeout=1s', 'endpoint', 'health'],
      { env: { ...process.env, ETCDCTL_API: '3' }, timeoutMs: 5000 },
    );
    if (r.code === 0) break;
    if (i > 100 || child.exitCode !== null) throw new Error(`etcd (${scheme}) did not come up: ${tail} ${r.stderr}`);
    await sleep(100);
  }
  return {
    endpoint,
    stop: async () => {
      await killChild(child);
      rmSync(data, { recursive: true, force: true });
    },
  };
}

async function etcdctl(
  tb: Testbed,
  endpoint: string,
  ctl: string[],
  args: string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return tb.exec(tb.bridgeNs, ['etcdctl', `--endpoints=${endpoint}`, ...ctl, ...args], {
    env: { ...process.env, ETCDCTL_API: '3' },
    timeoutMs: 10_000,
  });
}

/** Starts `weft daemon` in h1; resolves with its subnet.env or its exit and stderr (bounded). */
async function daemon(
  tb: Testbed,
  dir: string,
  args: string[],
  ms = 20_000,
): Promise<{ child: ChildProcess; subnet: string | null; code: number | null; stderr: string }> {
  const subnetFile = join(dir, `subnet-${Math.random().toString(36).slice(2)}.env`);
  const child = tb.spawn(
    tb.host(1),
    [process.execPath, WEFT_CLI, 'daemon', '--iface=eth0', `--subnet-file=${subnetFile}`, '--log-level=warn', ...args],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const start = Date.now();
  for (;;) {
    const env = readSubnetEnv(subnetFile);
    if (env?.subnet)
      return {
        child,
        subnet: formatSubnet(env.subnet),
        code: null,
        stderr,
      };
    if (child.exitCode !== null) return { child, subnet: null, code: child.exitCode, stderr };
    if (Date.now() - start > ms) return { child, subnet: null, code: null, stderr };
    await sleep(100);
  }
}

t.test('etcd over TLS with client certificates, then with username/password', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-sec-'));
  const tb = await createTestbed({ hosts: 1 });
  const children: ChildProcess[] = [];
  t.teardown(async () => {
    for (const c of children) await killChild(c);
    await tb.destroy();
    rmSync(dir, { recursive: true, force: true });
  });
  await makeCerts(dir, tb.bridgeIP);
  const f = (n: string) => join(dir, n);

  await t.test('TLS + client certificate auth', async (t) => {
    const ctl = [`--cacert=${f('ca.crt')}`, `--cert=${f('client.crt')}`, `--key=${f('client.key')}`];
    const etcd = await startEtcdIn(
      tb,
      dir,
      'https',
      [
        '--cert-file',
        f('server.crt'),
        '--key-file',
        f('server.key'),
        '--trusted-ca-file',
        f('ca.crt'),
        '--client-cert-auth',
      ],
      ctl,
    );
    t.teardown(etcd.stop);
    const put = await etcdctl(tb, etcd.endpoint, ctl, ['put', `${PREFIX}/config`, NETWORK]);
    t.equal(put.code, 0, 'network config written over TLS');
    const noCert = await etcdctl(tb, etcd.endpoint, [`--cacert=${f('ca.crt')}`], ['get', `${PREFIX}/config`]);
    t.not(noCert.code, 0, 'etcd refuses a client without a certificate');

    const d = await daemon(tb, dir, [
      `--etcd-endpoints=${etcd.endpoint}`,
      `--etcd-cafile=${f('ca.crt')}`,
      `--etcd-certfile=${f('client.crt')}`,
      `--etcd-keyfile=${f('client.key')}`,
    ]);
    children.push(d.child);
    t.match(
      d.subnet ?? `no subnet: ${d.stderr}`,
      /^10\.44\.\d+\.0\/24$/,
      `daemon leased ${d.subnet} over TLS with a client certificate`,
    );
    const keys = await etcdctl(tb, etcd.endpoint, ctl, ['get', '--prefix', '--keys-only', `${PREFIX}/subnets/`]);
    t.match(keys.stdout, /subnets\/10\.44\.\d+\.0-24/, 'the lease key is in etcd');
    await killChild(d.child);

    // Leases listing (same registry code) with a certificate from another CA: refused, bounded, one line.
    const leasesAs = (client: string) =>
      tb.exec(
        tb.host(1),
        [
          process.execPath,
          WEFT_CLI,
          'leases',
          `--etcd-endpoints=${etcd.endpoint}`,
          `--etcd-cafile=${f('ca.crt')}`,
          `--etcd-certfile=${f(`${client}.crt`)}`,
          `--etcd-keyfile=${f(`${client}.key`)}`,
        ],
        { timeoutMs: 30_000 },
      );
    const rogue = await leasesAs('rogue');
    t.not(rogue.code, 0, `a client certificate from another CA is refused (${rogue.stderr.trim().split('\n').pop()})`);
    const plain = await leasesAs('client');
    t.equal(plain.code, 0, 'weft leases over TLS');
    t.match(plain.stdout, /10\.44\.\d+\.0\/24/, 'lists the lease');
  });

  await t.test('a server certificate from another CA is refused with one line', async (t) => {
    const etcd = await startEtcdIn(
      tb,
      dir,
      'https',
      [
        '--cert-file',
        f('rogue-server.crt'),
        '--key-file',
        f('rogue-server.key'),
        '--trusted-ca-file',
        f('ca.crt'),
        '--client-cert-auth',
      ],
      [`--cacert=${f('rogue.crt')}`, `--cert=${f('client.crt')}`, `--key=${f('client.key')}`],
    );
    t.teardown(etcd.stop);
    const tls = [
      `--etcd-cafile=${f('ca.crt')}`,
      `--etcd-certfile=${f('client.crt')}`,
      `--etcd-keyfile=${f('client.key')}`,
    ];
    const d = await daemon(tb, dir, [`--etcd-endpoints=${etcd.endpoint}`, ...tls]);
    children.push(d.child);
    t.equal(d.subnet, null, 'no lease taken');
    t.equal(d.code, 2, 'the daemon stops (exit 2) instead of retrying forever');
    // Node's own warnings (gRPC names an IP address as the TLS server name: DEP0123) are not weft's lines.
    const lines = d.stderr
      .trim()
      .split('\n')
      .filter((l) => !/^\(node:\d+\)|^\(Use `node --trace/.test(l));
    t.equal(lines.length, 1, `one line: ${lines.join(' / ')}`);
    t.match(lines[0], /^weft: etcd at https:\S+ .*certificate.*--etcd-cafile/, 'naming the certificate and the flag');
    const leases = await tb.exec(
      tb.host(1),
      [process.execPath, WEFT_CLI, 'leases', `--etcd-endpoints=${etcd.endpoint}`, ...tls],
      {
        timeoutMs: 30_000,
      },
    );
    t.equal(leases.code, 2, `weft leases too: ${leases.stderr.trim()}`);
  });

  await t.test('username/password (auth enabled)', async (t) => {
    const etcd = await startEtcdIn(tb, dir, 'http', [], []);
    t.teardown(etcd.stop);
    for (const args of [
      ['user', 'add', 'root:rootpw'],
      ['user', 'grant-role', 'root', 'root'],
      ['put', `${PREFIX}/config`, NETWORK],
      ['role', 'add', 'weft'],
      ['role', 'grant-permission', 'weft', '--prefix=true', 'readwrite', `${PREFIX}/`],
      ['user', 'add', 'weft:weftpw'],
      ['user', 'grant-role', 'weft', 'weft'],
      ['auth', 'enable'],
    ]) {
      const r = await etcdctl(tb, etcd.endpoint, [], args);
      t.equal(r.code, 0, `etcdctl ${args.join(' ')}`);
    }
    const anon = await etcdctl(tb, etcd.endpoint, [], ['get', `${PREFIX}/config`]);
    t.not(anon.code, 0, 'anonymous reads are refused once auth is on');

    const d = await daemon(tb, dir, [
      `--etcd-endpoints=${etcd.endpoint}`,
      '--etcd-username=weft',
      '--etcd-password=weftpw',
    ]);
    children.push(d.child);
    t.match(d.subnet ?? `no subnet: ${d.stderr}`, /^10\.44\.\d+\.0\/24$/, `daemon leased ${d.subnet} as user weft`);
    await killChild(d.child);

    const bad = await daemon(tb, dir, [
      `--etcd-endpoints=${etcd.endpoint}`,
      '--etcd-username=weft',
      '--etcd-password=wrong',
    ]);
    children.push(bad.child);
    t.equal(bad.code, 2, 'a wrong password stops the daemon (exit 2), it does not retry forever');
    const last = bad.stderr.trim().split('\n').pop() ?? '';
    t.match(last, /^weft: etcd at .* refused .*authentication failed/, `one clear line: ${last}`);
    t.notMatch(bad.stderr, /wrong/, 'the password is not printed');
  });
});

t.test('a Network overlapping the underlay is refused with one line', async (t) => {
  const cluster = await clusterFor(t, 1, netConfig('198.16.0.0/13', 'udp'));
  const dir = mkdtempSync(join(tmpdir(), 'weft-ovl-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const d = await daemon(cluster.tb, dir, [`--etcd-endpoints=${cluster.endpoint}`]);
  t.equal(d.subnet, null, 'no lease taken');
  t.equal(d.code, 1, 'exit 1');
  const last = d.stderr.trim().split('\n').pop() ?? '';
  t.match(last, /^weft: network config: Network 198\.16\.0\.0\/13 contains the underlay address 198\.18\.\d+\.1/, last);
  t.equal(
    (await cluster.etcdctl(['get', '--prefix', '--keys-only', `${PREFIX}/subnets/`])).trim(),
    '',
    'nothing leased in etcd',
  );
});

t.test("--ip-masq: flannel's rules in the host namespace, removed on stop", async (t) => {
  const cluster = await clusterFor(t, 1, netConfig('10.45.0.0/16', 'udp'));
  const probe = await cluster.tb.exec(cluster.tb.host(1), ['iptables', '-t', 'nat', '-S', 'POSTROUTING'], {
    timeoutMs: 10_000,
  });
  // scripts/setup.sh installs iptables for --ip-masq: without it this machine is not set up, which is no skip.
  t.equal(probe.code, 0, `iptables works in a namespace host${probe.code === 0 ? '' : `: ${probe.stderr.trim()}`}`);
  if (probe.code !== 0) return;
  const d = await cluster.startDaemon(1, ['--ip-masq']);
  const subnet = d.subnetGateway.replace(/\.1\/24$/, '.0/24');
  const rules = (await cluster.tb.exec(d.host, ['iptables', '-t', 'nat', '-S'], { timeoutMs: 10_000 })).stdout;
  t.match(rules, /-A POSTROUTING .*-j WEFT-POSTRTG/, 'jump from POSTROUTING');
  t.match(
    rules,
    /-A WEFT-POSTRTG -s 10\.45\.0\.0\/16 -d 10\.45\.0\.0\/16 .*-j RETURN/,
    'within the overlay: no masquerade',
  );
  t.match(
    rules,
    /-A WEFT-POSTRTG -s 10\.45\.0\.0\/16 ! -d 224\.0\.0\.0\/4 .*-j MASQUERADE/,
    'leaving the overlay: masquerade',
  );
  t.match(
    rules,
    new RegExp(`-A WEFT-POSTRTG ! -s 10\\.45\\.0\\.0/16 -d ${subnet.replace(/\./g, '\\.')} .*-j RETURN`),
    'to our pods: kept',
  );
  t.match(
    rules,
    /-A WEFT-POSTRTG ! -s 10\.45\.0\.0\/16 -d 10\.45\.0\.0\/16 .*-j MASQUERADE/,
    'host into the overlay: masquerade',
  );
  const root = await run('iptables', ['-t', 'nat', '-S']);
  t.notMatch(root.stdout, /WEFT-POSTRTG/, 'nothing in the root namespace');
  t.match(readFileSync(d.subnetFile, 'utf8'), /FLANNEL_IPMASQ=true/);
  await cluster.stopDaemon(1);
  const after = (await cluster.tb.exec(d.host, ['iptables', '-t', 'nat', '-S'], { timeoutMs: 10_000 })).stdout;
  t.notMatch(after, /WEFT/, 'rules and chain removed on SIGTERM');
});

t.test('no shell strings in src/', async (t) => {
  const files: string[] = [];
  const walk = (d: string): void => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else if (p.endsWith('.ts')) files.push(p);
    }
  };
  walk(join(PACKAGE_ROOT, 'src'));
  t.ok(files.length > 20, `${files.length} source files`);
  const bad: string[] = [];
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    text.split('\n').forEach((line, i) => {
      const code = line.replace(/\/\/.*$/, '');
      if (
        /shell:\s*true/.test(code) ||
        /\bexecSync\s*\(/.test(code) ||
        /(?<![.\w])exec\s*\(\s*[`'"]/.test(code) ||
        /\b(child_process|cp)\.exec\s*\(/.test(code) ||
        /import\s*\{[^}]*\bexec\b[^}]*\}\s*from\s*'node:child_process'/.test(code) ||
        /spawn\(\s*['"`](sh|bash)['"`]/.test(code)
      ) {
        bad.push(`${file.slice(PACKAGE_ROOT.length + 1)}:${i + 1}: ${line.trim()}`);
      }
    });
  }
  t.same(bad, [], 'no shell: true, exec(string), execSync or sh -c in src/');
});
