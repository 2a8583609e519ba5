import t from 'tap';
import fc from 'fast-check';
import {
  containsIP,
  containsSubnet,
  countSubnets,
  firstHost,
  formatIPv4,
  formatSubnet,
  iterateSubnets,
  keyToSubnet,
  makeSubnet,
  overlaps,
  parseCIDR,
  parseIPv4,
  parseSubnet,
  prefixMask,
  subnetToKey,
  lastAddress,
} from '../src/ip/subnet.js';
import { readSubnetEnv, writeSubnetEnv, formatSubnetEnv } from '../src/lease/subnet-env.js';
import { parseSubnet6 } from '../src/ip/ipv6.js';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tempDir } from './helpers/tmp.js';

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const subnetArb = fc.tuple(u32, fc.integer({ min: 0, max: 32 })).map(([ip, len]) => makeSubnet(ip, len));

t.test('dotted quads', async (t) => {
  t.equal(parseIPv4('10.5.3.0'), 0x0a050300);
  t.equal(parseIPv4('255.255.255.255'), 0xffffffff);
  t.equal(formatIPv4(0x0a050300), '10.5.3.0');
  for (const bad of ['10.5.3', '10.5.3.256', '1.2.3.4.5', ' 1.2.3.4', '1.2.3.-1', 'a.b.c.d', ''])
    t.equal(parseIPv4(bad), null, bad);
  fc.assert(fc.property(u32, (ip) => parseIPv4(formatIPv4(ip)) === ip));
});

t.test('CIDR and masks', async (t) => {
  t.same(parseSubnet('10.5.0.0/16'), { ip: 0x0a050000, prefixLen: 16 });
  t.equal(parseSubnet('10.5.0.1/16'), null, 'host bits');
  t.same(parseCIDR('10.5.0.1/16'), { ip: 0x0a050001, prefixLen: 16 });
  t.equal(parseSubnet('10.5.0.0/33'), null);
  t.equal(parseSubnet('10.5.0.0'), null);
  t.equal(prefixMask(0), 0);
  t.equal(prefixMask(32), 0xffffffff);
  t.equal(prefixMask(24), 0xffffff00);
  t.equal(formatSubnet(makeSubnet(0x0a050301, 24)), '10.5.3.0/24');
});

t.test('flannel key form', async (t) => {
  const sn = parseSubnet('10.5.3.0/24')!;
  t.equal(subnetToKey(sn), '10.5.3.0-24');
  t.same(keyToSubnet('/coreos.com/network/subnets/10.5.3.0-24'), sn);
  t.same(keyToSubnet('10.5.3.0-24&fc00::-64'), sn, 'dual-stack key: IPv4 half');
  t.equal(keyToSubnet('10.5.3.1-24'), null, 'unaligned');
  t.equal(keyToSubnet('config'), null);
  fc.assert(
    fc.property(subnetArb, (s) => {
      const back = keyToSubnet(subnetToKey(s));
      return back !== null && back.ip === s.ip && back.prefixLen === s.prefixLen;
    }),
  );
});

t.test('contains, overlaps, first host', async (t) => {
  const net = parseSubnet('10.5.0.0/16')!;
  const a = parseSubnet('10.5.3.0/24')!;
  t.ok(containsSubnet(net, a));
  t.notOk(containsSubnet(a, net));
  t.ok(overlaps(net, a));
  t.notOk(overlaps(a, parseSubnet('10.5.4.0/24')!));
  t.equal(formatIPv4(firstHost(a)), '10.5.3.1');
  t.equal(formatIPv4(lastAddress(a)), '10.5.3.255');
  t.ok(containsIP(parseSubnet('0.0.0.0/0')!, 0xffffffff));
  fc.assert(
    fc.property(subnetArb, subnetArb, (x, y) => overlaps(x, y) === (containsSubnet(x, y) || containsSubnet(y, x))),
  );
});

t.test('iteration covers the range without overlap', async (t) => {
  fc.assert(
    fc.property(
      fc.integer({ min: 8, max: 28 }),
      fc.integer({ min: 0, max: 6 }),
      fc.nat(),
      fc.nat(),
      fc.nat(),
      (netLen, extra, base, i, j) => {
        const subLen = Math.min(32, netLen + 2 + extra);
        const net = makeSubnet((base * 7919) >>> 0, netLen);
        const total = 2 ** (subLen - netLen);
        const lo = Math.min(i, j) % total;
        const hi = Math.max(lo, Math.max(i, j) % total);
        const size = 2 ** (32 - subLen);
        const min = net.ip + lo * size;
        const max = net.ip + hi * size;
        if (hi - lo > 4096) return true;
        const all = [...iterateSubnets(min, max, subLen)];
        if (all.length !== countSubnets(min, max, subLen) || all.length !== hi - lo + 1) return false;
        for (let k = 0; k < all.length; k++) {
          const s = all[k]!;
          if (!containsSubnet(net, s) || s.prefixLen !== subLen) return false;
          if (k > 0 && (overlaps(all[k - 1]!, s) || all[k - 1]!.ip + size !== s.ip)) return false;
        }
        return all[0]!.ip === min && all[all.length - 1]!.ip === max;
      },
    ),
  );
  t.pass();
});

t.test('subnet.env', async (t) => {
  const dir = tempDir(t, 'env');
  const path = join(dir, 'run', 'flannel', 'subnet.env');
  const env = { network: parseSubnet('10.5.0.0/16')!, subnet: parseSubnet('10.5.3.0/24')!, mtu: 1472, ipMasq: false };
  t.equal(
    formatSubnetEnv(env),
    'FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=10.5.3.1/24\nFLANNEL_MTU=1472\nFLANNEL_IPMASQ=false\n',
  );
  await writeSubnetEnv(path, env);
  t.same(readSubnetEnv(path), {
    subnet: env.subnet,
    network: env.network,
    ipv6Subnet: null,
    ipv6Network: null,
    mtu: 1472,
    ipMasq: false,
  });
  t.equal(readSubnetEnv(join(dir, 'missing')), null);
  await writeFile(join(dir, 'garbage'), '\x00\x01nonsense\nFLANNEL_SUBNET=10.5.300.1/24\n');
  t.equal(readSubnetEnv(join(dir, 'garbage')), null);
  t.equal(readSubnetEnv(dir), null, 'a directory');
});

t.test('subnet.env with IPv6, in the order and form flannel writes it', async (t) => {
  const dir = tempDir(t, 'env6');
  const path = join(dir, 'subnet.env');
  const ipv6 = { network: parseSubnet6('fd00:5::/48')!, subnet: parseSubnet6('fd00:5:0:3::/64')! };
  const dual = {
    network: parseSubnet('10.5.0.0/16')!,
    subnet: parseSubnet('10.5.3.0/24')!,
    ipv6,
    mtu: 1450,
    ipMasq: true,
  };
  // pkg/subnet/subnet.go WriteSubnetFile: the IPv4 pair, the IPv6 pair (first host each), then MTU and IPMASQ.
  t.equal(
    formatSubnetEnv(dual),
    'FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=10.5.3.1/24\n' +
      'FLANNEL_IPV6_NETWORK=fd00:5::/48\nFLANNEL_IPV6_SUBNET=fd00:5:0:3::1/64\n' +
      'FLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n',
  );
  await writeSubnetEnv(path, dual);
  t.same(readSubnetEnv(path), {
    subnet: dual.subnet,
    network: dual.network,
    ipv6Subnet: ipv6.subnet,
    ipv6Network: ipv6.network,
    mtu: 1450,
    ipMasq: true,
  });
  const only6 = { network: null, subnet: null, ipv6, mtu: 1450, ipMasq: false };
  t.equal(
    formatSubnetEnv(only6),
    'FLANNEL_IPV6_NETWORK=fd00:5::/48\nFLANNEL_IPV6_SUBNET=fd00:5:0:3::1/64\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n',
    'IPv6-only: no IPv4 lines',
  );
  await writeSubnetEnv(path, only6);
  const back = readSubnetEnv(path);
  t.equal(back?.subnet, null);
  t.same(back?.ipv6Subnet, ipv6.subnet, 'read back for reuse: the lease subnet, host bits cleared');
  await writeFile(path, 'FLANNEL_IPV6_SUBNET=fd00:5:0:3::1/64x\n');
  t.equal(readSubnetEnv(path), null, 'a malformed IPv6 subnet alone is no subnet.env');
});
