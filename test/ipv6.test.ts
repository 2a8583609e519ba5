// IPv6 address math and flannel's text forms: addresses as Go prints them, and lease keys of both families.
import t from 'tap';
import fc from 'fast-check';
import {
  containsIP6,
  countSubnets6,
  firstHost6,
  formatIPv6,
  formatSubnet6,
  isAligned6,
  makeSubnet6,
  nthSubnet6,
  overlaps6,
  parseCIDR6,
  parseIPv6,
  parseSubnet6,
  prefixMask6,
} from '../src/ip/ipv6.js';
import { NO_IPV4, hasIPv4, keyToSubnets, subnetsToKey } from '../src/ip/subnet-key.js';
import { formatSubnet, parseSubnet } from '../src/ip/subnet.js';

const u128 = fc.bigInt({ min: 0n, max: (1n << 128n) - 1n });

t.test('parse as Go net.ParseIP reads IPv6 text', async (t) => {
  t.equal(parseIPv6('::'), 0n);
  t.equal(parseIPv6('::1'), 1n);
  t.equal(parseIPv6('fc00:0:0:3::'), 0xfc00_0000_0000_0003n << 64n);
  t.equal(parseIPv6('FC00::3'), (0xfc00n << 112n) | 3n, 'upper-case hex');
  t.equal(parseIPv6('1:2:3:4:5:6:7:8'), 0x0001_0002_0003_0004_0005_0006_0007_0008n);
  t.equal(parseIPv6('1:2:3:4:5:6:7::'), 0x0001_0002_0003_0004_0005_0006_0007_0000n, ':: for one group');
  t.equal(parseIPv6('::ffff:10.5.3.1'), (0xffffn << 32n) | 0x0a050301n, 'IPv4 tail');
  t.equal(parseIPv6('64:ff9b::192.0.2.33'), (0x64ff9bn << 96n) | 0xc0000221n);
  t.equal(parseIPv6('1:2:3:4:5:6:1.2.3.4'), 0x0001_0002_0003_0004_0005_0006_0102_0304n);
  for (const bad of [
    '',
    '10.5.3.1',
    ':',
    ':::',
    '1::2::3',
    '1:2:3:4:5:6:7:8:9',
    '1:2:3:4:5:6:7',
    '12345::',
    'g::',
    ':1::',
    '1:::2',
    'fe80::1%eth0',
    '[::1]',
    '::1.2.3',
    '::01.2.3.4',
    '1.2.3.4::',
    ' ::1',
  ])
    t.equal(parseIPv6(bad), null, JSON.stringify(bad));
});

t.test("format as flannel prints an ip.IP6 (Go's RFC 5952 form, flannel's quirks)", async (t) => {
  const cases: Array<[string, string]> = [
    ['::', '::'],
    ['::1', '::1'],
    ['fc00:0:0:3::', 'fc00:0:0:3::'],
    ['fd00:0000:0000:0001:0000:0000:0000:0011', 'fd00:0:0:1::11'],
    ['1:0:0:2:0:0:3:4', '1::2:0:0:3:4'],
    ['1:0:0:0:2:0:0:0', '1::2:0:0:0'],
    ['0:0:1:0:0:0:0:0', '0:0:1::'],
    ['1:2:3:4:5:6:7:0', '1:2:3:4:5:6:7:0'],
    ['1:0:2:3:4:5:6:7', '1:0:2:3:4:5:6:7'],
    ['FD00:5::', 'fd00:5::'],
    // big.Int.Bytes() of four bytes makes a 4-byte net.IP: printed as IPv4.
    ['::a05:301', '10.5.3.1'],
    ['::ffff:10.5.3.1', '10.5.3.1'],
    ['::ff:ffff', '::ff:ffff'],
    ['::1:0:0', '::1:0:0'],
  ];
  for (const [input, want] of cases) t.equal(formatIPv6(parseIPv6(input)!), want, input);
  // Oracle: the WHATWG URL parser compresses IPv6 hosts the same way (RFC 5952), outside flannel's IPv4 quirks.
  fc.assert(
    fc.property(u128, (ip) => {
      fc.pre(!formatIPv6(ip).includes('.'));
      const host = new URL(`http://[${formatIPv6(ip)}]/`).hostname;
      return host === `[${formatIPv6(ip)}]` && parseIPv6(formatIPv6(ip)) === ip;
    }),
    { numRuns: 2000 },
  );
});

t.test('subnet math', async (t) => {
  const net = parseSubnet6('fd00:5::/48')!;
  t.equal(formatSubnet6(net), 'fd00:5::/48');
  t.equal(parseSubnet6('fd00:5::1/48'), null, 'host bits');
  t.same(parseCIDR6('fd00:5::1/48'), { ip: parseIPv6('fd00:5::1'), prefixLen: 48 });
  t.equal(parseCIDR6('fd00::/129'), null);
  t.equal(parseCIDR6('fd00::'), null);
  t.equal(parseCIDR6('10.0.0.0/8'), null, 'IPv4 is no IPv6 CIDR');
  t.equal(prefixMask6(0), 0n);
  t.equal(prefixMask6(128), (1n << 128n) - 1n);
  t.equal(formatIPv6(prefixMask6(64)), 'ffff:ffff:ffff:ffff::');
  t.ok(isAligned6(parseIPv6('fd00:5:0:3::')!, 64));
  t.notOk(isAligned6(parseIPv6('fd00:5:0:3::1')!, 64));
  t.equal(formatSubnet6(makeSubnet6(parseIPv6('fd00:5:0:3::9')!, 64)), 'fd00:5:0:3::/64');
  t.ok(containsIP6(net, parseIPv6('fd00:5:0:ffff::1')!));
  t.notOk(containsIP6(net, parseIPv6('fd00:6::')!));
  t.ok(overlaps6(net, parseSubnet6('fd00:5:0:3::/64')!));
  t.notOk(overlaps6(net, parseSubnet6('fd00:6::/64')!));
  t.equal(formatIPv6(firstHost6(parseSubnet6('fd00:5:0:3::/64')!)), 'fd00:5:0:3::1');
  t.equal(countSubnets6(parseIPv6('fd00:5:0:1::')!, parseIPv6('fd00:5:0:ffff::')!, 64), 65535n);
  t.equal(formatSubnet6(nthSubnet6(parseIPv6('fd00:5:0:1::')!, 64, 2n)), 'fd00:5:0:3::/64');
  fc.assert(
    fc.property(u128, fc.integer({ min: 0, max: 128 }), (ip, len) => {
      const sn = makeSubnet6(ip, len);
      const back = parseSubnet6(formatSubnet6(sn));
      return isAligned6(sn.ip, len) && containsIP6(sn, ip) && (printsAsIPv4(sn.ip) || back?.ip === sn.ip);
    }),
  );
});

function printsAsIPv4(ip: bigint): boolean {
  return formatIPv6(ip).includes('.');
}

t.test("flannel's lease keys: IPv4, dual-stack, IPv6-only", async (t) => {
  const v4 = parseSubnet('10.5.3.0/24')!;
  const v6 = parseSubnet6('fc00:0:0:3::/64')!;
  t.equal(subnetsToKey(v4), '10.5.3.0-24');
  t.equal(subnetsToKey(v4, v6), '10.5.3.0-24&fc00:0:0:3::-64', 'dual-stack: joined with &');
  t.equal(subnetsToKey(NO_IPV4, v6), '0.0.0.0-0&fc00:0:0:3::-64', "IPv6-only: flannel's empty IPv4 net");
  t.same(keyToSubnets('/coreos.com/network/subnets/10.5.3.0-24'), { subnet: v4, ipv6Subnet: null });
  t.same(keyToSubnets('/coreos.com/network/subnets/10.5.3.0-24&fc00:0:0:3::-64'), { subnet: v4, ipv6Subnet: v6 });
  t.same(keyToSubnets('0.0.0.0-0&fc00:0:0:3::-64'), { subnet: NO_IPV4, ipv6Subnet: v6 });
  t.same(keyToSubnets('/p/subnets/fc00:0:0:3::-64'), { subnet: NO_IPV4, ipv6Subnet: v6 }, 'bare IPv6 key, read too');
  t.same(keyToSubnets('10.12.13.0-24&fd00:12:13::-56'), {
    subnet: parseSubnet('10.12.13.0/24'),
    ipv6Subnet: parseSubnet6('fd00:12:13::/56'),
  });
  t.notOk(hasIPv4(NO_IPV4));
  t.ok(hasIPv4(v4));
  // flannel's own invalid keys (pkg/subnet/subnet_test.go, TestSubnetNodeInvalid), and halves with host bits.
  for (const bad of [
    '10',
    '10.12.13.0',
    '10.12.13-24',
    '10.12.13.300-24',
    '10.12.13.0-24hi',
    '&2001::-56',
    '10.12.13.0-24&:12:13:-56',
    '10.12.13.0-24&20011::-56',
    '10.12.13.0-24&2001-56',
    '10.12.13.0-24&2001::',
    '10.12.13.0-24&2001::-56hi',
    '10.12.13.0-24&2001::1-64',
    '10.12.13.1-24&2001::-64',
    '10.12.13.0-24&2001::-129',
    'config',
  ])
    t.equal(keyToSubnets(bad), null, bad);
  fc.assert(
    fc.property(u128, fc.integer({ min: 1, max: 128 }), fc.boolean(), (ip, len, dual) => {
      const sn6 = makeSubnet6(ip, len);
      fc.pre(!printsAsIPv4(sn6.ip));
      const sn4 = dual ? v4 : NO_IPV4;
      const back = keyToSubnets(`/coreos.com/network/subnets/${subnetsToKey(sn4, sn6)}`);
      return back !== null && formatSubnet(back.subnet) === formatSubnet(sn4) && back.ipv6Subnet?.ip === sn6.ip;
    }),
  );
});
