// Daemon configuration: precedence flag > env > file > default, both env spellings, and each validation error.
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DAEMON_OPTIONS, resolveDaemonConfig } from '../src/config/daemon.js';
import { ConfigError } from '../src/errors.js';
import { tempDir } from './helpers/tmp.js';

const dir = tempDir(t, 'cfg');
function file(obj: unknown): string {
  const p = join(dir, `c${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(p, typeof obj === 'string' ? obj : JSON.stringify(obj));
  return p;
}

function caught(fn: () => unknown): Error | undefined {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  return undefined;
}

t.test("defaults are flannel's", async (t) => {
  const c = resolveDaemonConfig({}, {});
  t.same(c.etcdEndpoints, ['http://127.0.0.1:2379']);
  t.equal(c.etcdPrefix, '/coreos.com/network');
  t.equal(c.subnetFile, '/run/flannel/subnet.env');
  t.equal(c.subnetLeaseRenewMargin, 60);
  t.equal(c.tunName, 'weft0');
  t.equal(c.tier, 'batch');
  t.equal(c.healthzIp, '127.0.0.1');
  t.equal(c.ipMasq, false);
});

t.test('precedence: flag > env > file > default', async (t) => {
  const f = file({ 'etcd-prefix': '/from/file', 'tun-name': 'filetun', tier: 'offload', queues: 3 });
  const env = { WEFT_TUN_NAME: 'envtun', FLANNELD_ETCD_PREFIX: '/from/env' };
  const c = resolveDaemonConfig({ config: f, tunName: 'flagtun' }, env);
  t.equal(c.tunName, 'flagtun', 'flag beats env and file');
  t.equal(c.etcdPrefix, '/from/env', 'env beats file');
  t.equal(c.tier, 'offload', 'file beats default');
  t.equal(c.queues, 3);
});

t.test('environment: FLANNELD_ and WEFT_ names, WEFT_ wins', async (t) => {
  const c = resolveDaemonConfig(
    {},
    {
      FLANNELD_ETCD_ENDPOINTS: 'http://10.0.0.1:2379,http://10.0.0.2:2379',
      FLANNELD_IP_MASQ: 'true',
      FLANNELD_TUN_NAME: 'a',
      WEFT_TUN_NAME: 'b',
      FLANNELD_SUBNET_LEASE_RENEW_MARGIN: '30',
    },
  );
  t.same(c.etcdEndpoints, ['http://10.0.0.1:2379', 'http://10.0.0.2:2379']);
  t.equal(c.ipMasq, true);
  t.equal(c.tunName, 'b');
  t.equal(c.subnetLeaseRenewMargin, 30);
});

t.test('--public-ipv6: flag, WEFT_PUBLIC_IPV6, FLANNELD_PUBLIC_IPV6, file', async (t) => {
  t.equal(resolveDaemonConfig({}, {}).publicIpv6, undefined, "default: unset (the interface's first global IPv6)");
  t.equal(resolveDaemonConfig({ publicIpv6: 'fd00::11' }, {}).publicIpv6, 'fd00::11');
  t.equal(resolveDaemonConfig({}, { FLANNELD_PUBLIC_IPV6: 'fd00::12' }).publicIpv6, 'fd00::12');
  t.equal(
    resolveDaemonConfig({}, { FLANNELD_PUBLIC_IPV6: 'fd00::12', WEFT_PUBLIC_IPV6: 'fd00::13' }).publicIpv6,
    'fd00::13',
  );
  t.equal(resolveDaemonConfig({ config: file({ 'public-ipv6': '2001:db8::1' }) }, {}).publicIpv6, '2001:db8::1');
});

t.test('file keys may be camelCase; lists as arrays', async (t) => {
  const c = resolveDaemonConfig({ config: file({ etcdEndpoints: ['https://e:2379'], ipMasq: true }) }, {});
  t.same(c.etcdEndpoints, ['https://e:2379']);
  t.equal(c.ipMasq, true);
});

const bad: [string, Record<string, unknown>, NodeJS.ProcessEnv, RegExp][] = [
  ['endpoint not a URL', { etcdEndpoints: 'nope' }, {}, /--etcd-endpoints=\["nope"\]/],
  ['tier unknown', { tier: 'fast' }, {}, /--tier="fast"/],
  ['datapath unknown', { datapath: 'ebpf' }, {}, /--datapath="ebpf"/],
  ['queues not a number', { queues: 'many' }, {}, /--queues: expected an integer, got "many"/],
  ['queues out of range', { queues: '0' }, {}, /--queues=0/],
  ['queues on the batch tier', { queues: '2' }, {}, /--queues=2: only --tier=offload has queues, not --tier=batch/],
  [
    'a tier with the kernel datapath',
    { datapath: 'kernel', tier: 'offload' },
    {},
    /--tier=offload: the kernel datapath/,
  ],
  [
    'queues with the kernel datapath',
    { datapath: 'kernel', queues: '2' },
    {},
    /only --tier=offload has queues, not the kernel/,
  ],
  [
    'a tier from the environment with the kernel datapath',
    { datapath: 'kernel' },
    { WEFT_TIER: 'dgram' },
    /^WEFT_TIER=dgram: the kernel datapath has no tiers/,
  ],
  ['queues from the environment', {}, { WEFT_QUEUES: '2' }, /^WEFT_QUEUES=2: only --tier=offload has queues/],
  ['env bool garbage', {}, { WEFT_IP_MASQ: 'perhaps' }, /WEFT_IP_MASQ: expected true or false/],
  ['public ip invalid', { publicIp: '300.1.1.1' }, {}, /--public-ip="300.1.1.1": an IPv4 address/],
  ['public ipv6 is IPv4', { publicIpv6: '192.0.2.1' }, {}, /--public-ipv6="192.0.2.1": an IPv6 address/],
  [
    'public ipv6 with zone',
    {},
    { WEFT_PUBLIC_IPV6: 'fe80::1%eth0' },
    /WEFT_PUBLIC_IPV6="fe80::1%eth0": an IPv6 address/,
  ],
  ['tun name too long', { tunName: 'averyveryverylongname' }, {}, /--tun-name=/],
  ['prefix relative', { etcdPrefix: 'coreos.com/network' }, {}, /--etcd-prefix=/],
  ['cert without key', { etcdCertfile: '/c.pem' }, {}, /--etcd-certfile and --etcd-keyfile go together/],
  ['unknown flag', { frobnicate: 'x' }, {}, /unknown option --frobnicate/],
];
for (const [name, flags, env, re] of bad) {
  t.test(`error: ${name}`, async (t) => {
    const e = caught(() => resolveDaemonConfig(flags, env));
    t.ok(e instanceof ConfigError, 'a ConfigError');
    t.match(e?.message, re);
  });
}

t.test('errors name where the value came from: the flag, the variable, the file and key', async (t) => {
  const from = (flags: Record<string, unknown>, env: NodeJS.ProcessEnv) =>
    caught(() => resolveDaemonConfig(flags, env));
  t.match(from({ tier: 'fast' }, {})?.message, /^--tier="fast": /, 'a flag');
  t.match(from({}, { WEFT_TIER: 'fast' })?.message, /^WEFT_TIER="fast": /, 'a WEFT_ variable');
  t.match(from({}, { FLANNELD_SUBNET_LEASE_TTL: '1' })?.message, /^FLANNELD_SUBNET_LEASE_TTL=1: /, 'a FLANNELD_ one');
  t.match(from({}, { WEFT_QUEUES: 'many' })?.message, /^WEFT_QUEUES: expected an integer, got "many"$/);
  const f = file({ tier: 'fast', tunName: 'averyveryverylongname' });
  t.match(from({ config: f }, {})?.message, new RegExp(`^--config ${f}: tunName="averyveryverylongname": `), 'a key');
  const g = file({ 'log-level': 'loud' });
  t.match(from({ config: g }, {})?.message, new RegExp(`^--config ${g}: log-level="loud": `), 'as written there');
  t.match(from({ config: file({ queues: 'many' }) }, {})?.message, /: queues: expected an integer, got "many"$/);
  t.ok(
    from({ config: file({ tier: 'fast' }) }, { WEFT_TIER: 'dgram' }) === undefined,
    'a bad value that a variable overrides is no error',
  );
  t.equal(from({}, {}), undefined, 'nothing given: no error');
});

t.test('--log-level takes every pino level its help lists', async (t) => {
  const help = DAEMON_OPTIONS.find((o) => o.flag === 'log-level')?.describe ?? '';
  for (const level of ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']) {
    t.equal(resolveDaemonConfig({ logLevel: level }, {}).logLevel, level, `${level} is accepted`);
    t.match(help, new RegExp(`\\b${level}\\b`), `${level} is in the help`);
  }
  t.match(caught(() => resolveDaemonConfig({ logLevel: 'loud' }, {}))?.message, /--log-level="loud"/);
});

t.test('file errors name the file and key', async (t) => {
  t.throws(() => resolveDaemonConfig({ config: file({ wat: 1 }) }, {}), /unknown key "wat"/);
  t.throws(() => resolveDaemonConfig({ config: file('{not json') }, {}), /not valid JSON/);
  t.throws(() => resolveDaemonConfig({ config: join(dir, 'missing.json') }, {}), /missing\.json: ENOENT/);
  t.throws(() => resolveDaemonConfig({ config: file([1, 2]) }, {}), /expected a JSON object/);
});

t.test('password never echoed in errors', async (t) => {
  // Only a type error can carry the value; the message must mask it.
  const e = caught(() => resolveDaemonConfig({ config: file({ 'etcd-password': 12345 }) }, {}));
  t.ok(e instanceof ConfigError);
  t.notMatch(e?.message, /12345/);
});
