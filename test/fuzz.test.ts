// Fuzzing: the native parsers that see network input run under libFuzzer with ASan + UBSan (harnesses in
// native/fuzz/, built by scripts/fuzz.sh, seeds in native/fuzz/corpus/<target>/), each bounded in time; and
// property-based tests (fast-check) of the TypeScript parsers of untrusted text: daemon config, network config,
// lease JSON. WEFT_FUZZ_SECONDS sets the seconds per native target (default 20 in `npm test`: the targets run one per
// core, so the nine take ~1.7 min on 2 cores; `npm run fuzz` gives each 120 s; 0 skips the native part). Each run
// starts with the target's whole seed corpus.
import t from 'tap';
import fc from 'fast-check';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../testbed/cluster.js';
import { DAEMON_OPTIONS, camel, resolveDaemonConfig } from '../src/config/daemon.js';
import { parseNetworkConfig } from '../src/config/network.js';
import { parseWireguardOptions } from '../src/config/wireguard-options.js';
import { checkNetworkConfig } from '../src/backend/config.js';
import { parseWireguardLeaseData } from '../src/backend/wireguard.js';
import { PrivateKey } from '../src/wireguard/keys.js';
import { type LeaseAttrs, parseLeaseAttrs, sameAttrs, serializeLeaseAttrs } from '../src/lease/lease.js';
import { ConfigError, NetworkConfigError } from '../src/errors.js';
import {
  containsIP,
  formatIPv4,
  formatSubnet,
  isAligned,
  lastAddress,
  makeSubnet,
  subnetSize,
} from '../src/ip/subnet.js';

const SECONDS = Number(process.env['WEFT_FUZZ_SECONDS'] ?? 20);
const PARALLEL = Math.max(1, Math.min(availableParallelism(), 4));
// Every harness scripts/fuzz.sh must list: the decap path per encap, ICMP and ICMPv6 errors, and the offload tier's
// receive (offload_decap + GRO) and send (GSO split) sides, WireGuard's open and seal, and the batch and dgram tiers'
// cut of an inbound packet over the TUN MTU (tun_split). It may list more (any new native/fuzz/fuzz_*.c).
const EXPECTED_TARGETS = [
  'decap_udp',
  'decap_vxlan',
  'decap_geneve',
  'icmp',
  'icmp6',
  'gro',
  'gso',
  'wg_open',
  'wg_seal',
  'tun_split',
];
// This file's bound (the config's 300 s is too short): the harness build (up to 900 s when clang must be installed)
// plus the targets' runs, two spare targets' worth of room.
const RUN_MS = Math.ceil((EXPECTED_TARGETS.length + 2) / PARALLEL) * (SECONDS + 60) * 1000;
t.setTimeout(900_000 + RUN_MS);

function runFuzzer(bin: string, corpus: string, seconds: number): Promise<{ code: number | null; log: string }> {
  return new Promise((resolve) => {
    const work = mkdtempSync(join(tmpdir(), 'weft-fuzz-'));
    cpSync(corpus, work, { recursive: true });
    const child = spawn(
      bin,
      [
        `-max_total_time=${seconds}`,
        '-timeout=5',
        '-rss_limit_mb=1024',
        '-print_final_stats=1',
        `-artifact_prefix=${join(PACKAGE_ROOT, 'build', 'fuzz', `crash-${bin.split('fuzz_').pop()}-`)}`,
        work,
      ],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    // The head holds the seed-corpus lines (INITED), the tail the final stats and any report.
    let head = '';
    let log = '';
    child.stderr.on('data', (d: Buffer) => {
      if (head.length < 20_000) head = (head + d.toString()).slice(0, 20_000);
      log = (log + d.toString()).slice(-20_000);
    });
    // A hang past the bound is a failure too; kill only this child.
    const guard = setTimeout(() => child.kill('SIGKILL'), (seconds + 60) * 1000);
    child.on('exit', (code) => {
      clearTimeout(guard);
      rmSync(work, { recursive: true, force: true });
      resolve({ code, log: `${head}\n...\n${log}` });
    });
  });
}

t.test('native parsers under libFuzzer (ASan + UBSan)', { timeout: 900_000 + RUN_MS }, async (t) => {
  if (SECONDS <= 0) return void t.plan(0, 'WEFT_FUZZ_SECONDS=0'); // a plan of 0 with a reason is tap's skip
  const build = spawnSync('bash', [join(PACKAGE_ROOT, 'scripts', 'fuzz.sh'), 'build'], {
    encoding: 'utf8',
    timeout: 900_000,
  });
  // a plan of 0 with a reason is tap's skip
  if (build.status === 3) return void t.plan(0, `no clang with libFuzzer: ${build.stderr.trim()}`);
  t.equal(build.status, 0, `harnesses build: ${build.stderr.trim().slice(-2000)}`);
  if (build.status !== 0) return;
  const targets = spawnSync('bash', [join(PACKAGE_ROOT, 'scripts', 'fuzz.sh'), 'targets'], { encoding: 'utf8' })
    .stdout.trim()
    .split('\n');
  for (const want of EXPECTED_TARGETS)
    t.ok(targets.includes(want), `fuzz.sh lists target ${want} (has: ${targets.join(', ')})`);
  // One target per core at a time (tap runs the test files one by one, so nothing else competes).
  const results = new Map<string, { code: number | null; log: string }>();
  const queue = [...targets];
  await Promise.all(
    Array.from({ length: PARALLEL }, async () => {
      for (let target = queue.shift(); target !== undefined; target = queue.shift()) {
        results.set(
          target,
          await runFuzzer(
            join(PACKAGE_ROOT, 'build', 'fuzz', `fuzz_${target}`),
            join(PACKAGE_ROOT, 'native', 'fuzz', 'corpus', target),
            SECONDS,
          ),
        );
      }
    }),
  );
  for (const target of targets) {
    const r = results.get(target)!;
    const runs = /Done (\d+) runs in (\d+) second/.exec(r.log);
    const crash = /(ERROR: AddressSanitizer|runtime error|deadly signal|ERROR: libFuzzer)[^\n]*/.exec(r.log);
    t.equal(r.code, 0, `${target}: exited clean${crash ? `: ${crash[0]}` : ''}`);
    // libFuzzer prints INITED once every seed of the corpus has run, before it starts mutating.
    t.match(r.log, /INITED cov:/, `${target}: its whole seed corpus ran`);
    t.ok(
      runs !== null && Number(runs[1]) > 0,
      `${target}: ${runs?.[1] ?? 0} executions in ${runs?.[2] ?? '?'} s, no crash, no sanitizer report`,
    );
    t.comment(`fuzz ${target}: ${runs?.[1] ?? 0} executions ran clean in ${runs?.[2] ?? '?'} s`);
  }
});

// ---------------------------------------------------------------------------------------------------------------
// Properties of the TypeScript parsers.

const anyValue = fc.oneof(
  fc.string(),
  fc.integer(),
  fc.boolean(),
  fc.constant(''),
  fc.constantFrom('1', '0', '-3', 'true', 'x y', '10.0.0.1'),
);

t.test('daemon config: any flags, env and file values give a config or a ConfigError', async (t) => {
  const flagNames = DAEMON_OPTIONS.map((o) => camel(o.flag));
  const envNames = DAEMON_OPTIONS.flatMap((o) => [
    `WEFT_${o.flag.toUpperCase().replace(/-/g, '_')}`,
    `FLANNELD_${o.flag.toUpperCase().replace(/-/g, '_')}`,
  ]);
  fc.assert(
    fc.property(
      fc.dictionary(fc.constantFrom(...flagNames, 'bogusFlag'), anyValue, { maxKeys: 5 }),
      fc.dictionary(fc.constantFrom(...envNames), fc.string(), { maxKeys: 5 }),
      (flags, env) => {
        try {
          const c = resolveDaemonConfig(flags, env);
          // What it returns is always coherent.
          return (
            c.etcdEndpoints.length > 0 &&
            c.healthzPort >= 0 &&
            c.healthzPort <= 65535 &&
            c.subnetLeaseTtl >= 2 &&
            (c.etcdCertfile === undefined) === (c.etcdKeyfile === undefined)
          );
        } catch (e) {
          return e instanceof ConfigError && !e.message.includes('\n');
        }
      },
    ),
    { numRuns: 2000 },
  );
  t.pass('2000 random flag/env sets: a config or one ConfigError line each');
});

t.test('daemon config: a flag beats the environment, which beats the default', async (t) => {
  fc.assert(
    fc.property(
      fc.integer({ min: 2, max: 7 * 86400 }),
      fc.integer({ min: 2, max: 7 * 86400 }),
      fc.boolean(),
      (flag, env, both) => {
        const e = { WEFT_SUBNET_LEASE_TTL: String(env), ...(both ? { FLANNELD_SUBNET_LEASE_TTL: '999' } : {}) };
        return (
          resolveDaemonConfig({ subnetLeaseTtl: String(flag) }, e).subnetLeaseTtl === flag &&
          resolveDaemonConfig({}, e).subnetLeaseTtl === env
        );
      },
    ),
  );
  t.pass('precedence holds');
});

t.test('daemon config: the password never appears in an error', async (t) => {
  fc.assert(
    fc.property(
      fc.string({ minLength: 8 }).filter((s) => /^[a-z]+$/.test(s)),
      (pw) => {
        try {
          resolveDaemonConfig({ etcdPassword: pw, healthzPort: 'no' }, {});
        } catch (e) {
          return !(e as Error).message.includes(pw);
        }
        return false;
      },
    ),
  );
  t.pass('secret kept out of messages');
});

t.test('network config: any JSON gives a config or a NetworkConfigError', async (t) => {
  const field = fc.oneof(
    fc.jsonValue(),
    fc.string(),
    fc.constantFrom('10.5.0.0/16', '10.5.0.0/30', '10.5.1.0', '0.0.0.0', '10.5.255.0'),
  );
  fc.assert(
    fc.property(
      fc.oneof(
        fc.json(),
        fc
          .record(
            {
              Network: field,
              SubnetLen: fc.oneof(fc.integer({ min: -2, max: 40 }), fc.jsonValue()),
              SubnetMin: field,
              SubnetMax: field,
              Backend: fc.jsonValue(),
            },
            { requiredKeys: [] },
          )
          .map((o) => JSON.stringify(o)),
        fc.string(),
      ),
      (json) => {
        try {
          const c = parseNetworkConfig(json);
          return (
            containsIP(c.network, c.subnetMin) &&
            containsIP(c.network, c.subnetMax) &&
            c.subnetMin <= c.subnetMax &&
            c.subnetCount >= 1
          );
        } catch (e) {
          return e instanceof NetworkConfigError;
        }
      },
    ),
    { numRuns: 3000 },
  );
  t.pass('3000 random documents');
});

t.test('backend wireguard: any options give options or a NetworkConfigError that never echoes the PSK', async (t) => {
  const value = fc.oneof(fc.jsonValue(), fc.integer({ min: -5, max: 70_000 }), fc.string({ maxLength: 60 }));
  fc.assert(
    fc.property(
      fc.record(
        {
          ListenPort: value,
          ListenPortV6: value,
          MTU: value,
          PSK: fc.oneof(value, fc.base64String({ minLength: 44, maxLength: 44 })),
          PersistentKeepaliveInterval: value,
          Mode: fc.oneof(value, fc.constantFrom('separate', 'auto', 'ipv4', 'ipv6')),
        },
        { requiredKeys: [] },
      ),
      (backend) => {
        const json = JSON.stringify({ Network: '10.5.0.0/16', Backend: { Type: 'wireguard', ...backend } });
        try {
          const o = parseWireguardOptions(checkNetworkConfig(json).backend);
          return o.listenPort >= 1 && o.listenPort <= 65535 && (o.mtu === null || o.mtu >= 656);
        } catch (e) {
          const psk = backend.PSK;
          const echoed = typeof psk === 'string' && psk.length > 3 && (e as Error).message.includes(psk);
          return e instanceof NetworkConfigError && !echoed;
        }
      },
    ),
    { numRuns: 2000 },
  );
  t.pass('2000 random option sets');
});

t.test("backend wireguard: any peer's BackendData gives a peer or a reason, never a throw", async (t) => {
  const own = PrivateKey.generate().publicKey;
  const key = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString('base64'));
  fc.assert(
    fc.property(
      fc.oneof(
        fc.jsonValue(),
        fc.record({ PublicKey: fc.oneof(key, fc.jsonValue()), Port: fc.jsonValue() }, { requiredKeys: [] }),
      ),
      (data) => {
        const r = parseWireguardLeaseData(data, own, 51820);
        return typeof r === 'string' || (r.publicKey.bytes.length === 32 && r.port >= 1 && r.port <= 65535);
      },
    ),
    { numRuns: 2000 },
  );
  t.pass('2000 random BackendData');
});

t.test("network config: valid networks get flannel's defaults", async (t) => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 0xffffffff }),
      fc.integer({ min: 8, max: 28 }),
      fc.option(fc.integer({ min: 0, max: 30 })),
      (ip, len, sl) => {
        const net = makeSubnet(ip, len);
        const doc: Record<string, unknown> = { Network: formatSubnet(net) };
        if (sl !== null) doc['SubnetLen'] = sl;
        let c;
        try {
          c = parseNetworkConfig(JSON.stringify(doc));
        } catch (e) {
          // Only an explicit SubnetLen that cannot fit four subnets (or exceeds /30) may be refused.
          return e instanceof NetworkConfigError && sl !== null && sl > 0 && (sl > 30 || sl < len + 2);
        }
        const want = sl !== null && sl > 0 ? sl : len <= 22 ? 24 : len + 2;
        const size = subnetSize(want);
        return (
          c.subnetLen === want &&
          isAligned(c.subnetMin, want) &&
          isAligned(c.subnetMax, want) &&
          c.subnetMin === net.ip + size &&
          c.subnetMax === lastAddress(net) + 1 - size &&
          c.subnetCount === (c.subnetMax - c.subnetMin) / size + 1 &&
          c.backend.Type === 'udp'
        );
      },
    ),
    { numRuns: 2000 },
  );
  t.pass('defaults hold for 2000 networks');
});

t.test('lease JSON: parse never throws; serialize/parse round-trips byte for byte', async (t) => {
  fc.assert(
    fc.property(fc.string(), (s) => {
      const a = parseLeaseAttrs(s);
      return a === null || typeof a.PublicIP === 'string';
    }),
    { numRuns: 3000 },
  );
  fc.assert(
    fc.property(fc.json(), (s) => {
      const a = parseLeaseAttrs(s);
      return a === null || parseLeaseAttrs(serializeLeaseAttrs(a)) !== null;
    }),
    { numRuns: 3000 },
  );
  const attrs = fc
    .record({
      PublicIP: fc.oneof(fc.integer({ min: 0, max: 0xffffffff }).map(formatIPv4), fc.string()),
      PublicIPv6: fc.option(fc.string()),
      BackendType: fc.oneof(fc.constantFrom('udp', 'vxlan', 'geneve', ''), fc.string()),
      BackendData: fc.option(fc.jsonValue(), { nil: undefined }),
      Extra: fc.option(fc.jsonValue(), { nil: undefined }),
    })
    .map((r) => {
      const a: LeaseAttrs = { PublicIP: r.PublicIP, PublicIPv6: r.PublicIPv6, BackendType: r.BackendType };
      if (r.BackendData !== undefined) a.BackendData = r.BackendData;
      if (r.Extra !== undefined) a['Extra'] = r.Extra;
      return a;
    });
  fc.assert(
    fc.property(attrs, (a) => {
      const text = serializeLeaseAttrs(a);
      const back = parseLeaseAttrs(text);
      // Go's encoder escapes these; so must we, everywhere in the value.
      return (
        back !== null &&
        serializeLeaseAttrs(back) === text &&
        sameAttrs(a, back) &&
        !/[<>&\u2028\u2029]/.test(text) &&
        JSON.stringify(JSON.parse(text)) === JSON.stringify(JSON.parse(serializeLeaseAttrs(back)))
      );
    }),
    { numRuns: 3000 },
  );
  t.pass('9000 random values');
});
