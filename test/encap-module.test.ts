// An encap written in TypeScript alone (src/encap/example-xor.ts, built to dist/) loaded with --encap-module and
// carried by the batch tier, which calls its encode/decode per packet.
//
//   bridge netns: etcd     h1 ── h2: weft daemon --encap-module dist/src/encap/example-xor.js (Backend xor-example)
//
// Unit part: the codec round-trips and refuses bad input; the loader refuses modules that break the contract.
// Integration part: pods ping both ways through the XOR encap; the leases carry BackendType "xor-example".
import { join } from 'node:path';
import t from 'tap';
import { PACKAGE_ROOT, PREFIX } from '../testbed/cluster.js';
import { ping } from '../testbed/traffic.js';
import xorExampleEncap from '../src/encap/example-xor.js';
import { DecodeVerdict } from '../src/encap/encap.js';
import { encapProblem, loadEncapModule } from '../src/backend/encap-module.js';
import { encapByName } from '../src/encap/index.js';
import { clusterFor, netConfig } from './helpers/cluster.js';

const MODULE = join(PACKAGE_ROOT, 'dist', 'src', 'encap', 'example-xor.js');

t.test('xor-example codec', async (t) => {
  const ip = Buffer.from('4500001c0000400040110000c0a80001c0a800020009000900080000', 'hex');
  const buf = Buffer.alloc(64 + ip.length);
  ip.copy(buf, 64);
  const peer = { mac: Buffer.alloc(6), vni: 0 };
  const start = xorExampleEncap.encode(buf, 64, ip.length, peer, peer);
  t.equal(start, 60, 'header of 4 bytes in front');
  t.equal(buf.subarray(60, 64).toString('latin1'), 'WXR1', 'magic');
  t.not(buf.subarray(64).toString('hex'), ip.toString('hex'), 'payload is scrambled on the wire');
  const out = new Int32Array(1);
  const inner = xorExampleEncap.decode(buf, 60, buf.length - 60, peer, out);
  t.equal(inner, 64, 'decode finds the inner packet');
  t.equal(out[0], ip.length, 'inner length');
  t.equal(buf.subarray(64, 64 + ip.length).toString('hex'), ip.toString('hex'), 'round trip');
  t.equal(
    xorExampleEncap.decode(Buffer.from('WXR'), 0, 3, peer, out),
    DecodeVerdict.truncated,
    'short datagram: truncated',
  );
  t.equal(
    xorExampleEncap.decode(Buffer.from('XXXX0000000000000000000000000000'), 0, 32, peer, out),
    DecodeVerdict.badFlags,
    'wrong magic',
  );
  t.ok(
    xorExampleEncap.decode(Buffer.concat([Buffer.from('WXR1'), Buffer.alloc(30, 0x5a)]), 0, 34, peer, out) < 0,
    'not IPv4 inside',
  );
  t.type(xorExampleEncap.parsePeer(null, peer), 'string', 'a peer without the magic is refused');
});

t.test('encap module loader', async (t) => {
  t.equal(encapProblem(xorExampleEncap), null, 'the example satisfies the contract');
  t.match(encapProblem({ ...xorExampleEncap, nativeId: 1 }), /nativeId/, 'a module cannot claim a C twin');
  t.match(encapProblem({ ...xorExampleEncap, headerLength: 100 }), /headerLength/, 'header must fit the headroom');
  t.match(encapProblem({ ...xorExampleEncap, decode: 1 }), /decode/, 'decode must be a function');
  t.match(encapProblem(undefined), /exports no encap/, 'nothing exported');
  const e = await loadEncapModule(MODULE);
  t.equal(e.name, 'xor-example', 'loaded from dist/');
  t.equal(encapByName('xor-example'), e, 'registered by name');
  t.equal(await loadEncapModule(MODULE), e, 'loading twice registers once');
  await t.rejects(
    loadEncapModule(join(PACKAGE_ROOT, 'dist', 'src', 'encap', 'no-such-encap.js')),
    /cannot load/,
    'a missing module is a clear error',
  );
  await t.rejects(
    loadEncapModule(join(PACKAGE_ROOT, 'dist', 'src', 'encap', 'udp.js')),
    /exports no encap/,
    'a module without an encap export is refused',
  );
});

t.test('xor-example carries a ping between two namespace hosts', async (t) => {
  const cluster = await clusterFor(t, 2, netConfig('10.9.0.0/16', 'xor-example'));
  for (const n of [1, 2]) await cluster.startDaemon(n, [`--encap-module=${MODULE}`, '--tier=batch']);
  const pod1 = await cluster.ensurePod(1);
  const pod2 = await cluster.ensurePod(2);
  const a = await ping(pod1, pod2.ip, { count: 3, timeoutSec: 3 });
  t.ok(a.ok, `pod h1 ${pod1.ip} -> pod h2 ${pod2.ip}`);
  const b = await ping(pod2, pod1.ip, { count: 3, timeoutSec: 3 });
  t.ok(b.ok, `pod h2 ${pod2.ip} -> pod h1 ${pod1.ip}`);
  const leases = await cluster.etcdctl(['get', `${PREFIX}/subnets/`, '--prefix', '--print-value-only']);
  const types = leases
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => (JSON.parse(l) as { BackendType: string }).BackendType);
  t.same(types, ['xor-example', 'xor-example'], 'both leases carry BackendType xor-example');
});
