import t from 'tap';
import { parseNetworkConfig } from '../src/config/network.js';
import { NetworkConfigError } from '../src/errors.js';
import { formatIPv4, formatSubnet } from '../src/ip/subnet.js';
import { formatIPv6, formatSubnet6 } from '../src/ip/ipv6.js';

const p = (o: unknown) => parseNetworkConfig(JSON.stringify(o));

t.test('defaults', async (t) => {
  const c = p({ Network: '10.5.0.0/16' });
  t.equal(formatSubnet(c.network), '10.5.0.0/16');
  t.equal(c.subnetLen, 24);
  t.equal(formatIPv4(c.subnetMin), '10.5.1.0', 'skips the first subnet');
  t.equal(formatIPv4(c.subnetMax), '10.5.255.0', 'last subnet');
  t.equal(c.subnetCount, 255);
  t.equal(c.enableIPv4, true);
  t.equal(c.enableIPv6, false);
  t.equal(c.ipv6Network, null);
  t.same(c.backend, { Type: 'udp' });
  t.equal(p({ Network: '10.0.0.0/22' }).subnetLen, 24, '/22 -> /24');
  t.equal(p({ Network: '10.0.0.0/23' }).subnetLen, 25, '/23 -> prefix + 2');
  const small = p({ Network: '10.0.0.0/28' });
  t.equal(small.subnetLen, 30);
  t.equal(small.subnetCount, 3);
});

t.test('explicit values and opaque backend', async (t) => {
  const c = p({
    Network: '10.5.0.0/16',
    SubnetLen: 26,
    SubnetMin: '10.5.10.0',
    SubnetMax: '10.5.20.192',
    Backend: { Type: 'vxlan', VNI: 4, DirectRouting: true },
    Extra: { anything: 1 },
    EnableIPv6: true,
    IPv6Network: 'fc00::/48',
  });
  t.equal(c.subnetLen, 26);
  t.equal(formatIPv4(c.subnetMin), '10.5.10.0');
  t.equal(formatIPv4(c.subnetMax), '10.5.20.192');
  t.same(c.backend, { Type: 'vxlan', VNI: 4, DirectRouting: true });
  t.equal(c.enableIPv6, true);
  t.equal(c.ipv6Network, 'fc00::/48');
  t.same(
    p({ Network: '10.5.0.0/16', Backend: { Port: 9000 } }).backend,
    { Port: 9000, Type: 'udp' },
    'Type defaults inside Backend too',
  );
  t.equal(p({ network: '10.6.0.0/16' }).network.ip >>> 24, 10, 'case-insensitive keys as Go decodes them');
  t.equal(
    p({ Network: '10.5.0.0/16', SubnetMin: '0.0.0.0' }).subnetMin,
    p({ Network: '10.5.0.0/16' }).subnetMin,
    '0.0.0.0 = unset',
  );
});

const N = '10.5.0.0/16';

const bad: Array<[string, unknown, RegExp]> = [
  ['bad JSON', '{"Network":', /not valid JSON/],
  ['not an object', '[1]', /must be a JSON object/],
  ['missing Network', {}, /Network .*required/],
  ['Network not CIDR', { Network: '10.5.0.0' }, /Network "10.5.0.0": not an IPv4 CIDR/],
  ['Network with host bits', { Network: '10.5.0.1/16' }, /Network "10.5.0.1\/16": has host bits/],
  ['Network wrong type', { Network: 42 }, /Network 42/],
  ['Network too small', { Network: '10.5.0.0/29' }, /Network "10.5.0.0\/29": too small/],
  ['SubnetLen > 30', { Network: '10.5.0.0/16', SubnetLen: 31 }, /SubnetLen 31: must be at most 30/],
  ['SubnetLen too short', { Network: '10.5.0.0/16', SubnetLen: 17 }, /SubnetLen 17: must be at least 18/],
  ['SubnetLen fractional', { Network: '10.5.0.0/16', SubnetLen: 24.5 }, /SubnetLen 24.5/],
  ['SubnetLen negative', { Network: '10.5.0.0/16', SubnetLen: -1 }, /SubnetLen -1/],
  ['SubnetMin outside', { Network: '10.5.0.0/16', SubnetMin: '10.6.0.0' }, /SubnetMin "10.6.0.0": not within Network/],
  ['SubnetMax outside', { Network: '10.5.0.0/16', SubnetMax: '10.4.0.0' }, /SubnetMax "10.4.0.0": not within Network/],
  ['SubnetMin not an IP', { Network: '10.5.0.0/16', SubnetMin: 'x' }, /SubnetMin "x": not an IPv4/],
  [
    'SubnetMin unaligned',
    { Network: '10.5.0.0/16', SubnetMin: '10.5.1.1' },
    /SubnetMin "10.5.1.1": not on a \/24 boundary/,
  ],
  [
    'SubnetMax unaligned',
    { Network: '10.5.0.0/16', SubnetMax: '10.5.9.128' },
    /SubnetMax "10.5.9.128": not on a \/24 boundary/,
  ],
  [
    'min > max',
    { Network: '10.5.0.0/16', SubnetMin: '10.5.9.0', SubnetMax: '10.5.8.0' },
    /SubnetMin "10.5.9.0": is above SubnetMax 10.5.8.0/,
  ],
  ['nothing enabled', { EnableIPv4: false }, /EnableIPv4 false: and EnableIPv6 is not true: no address family/],
  ['EnableIPv4 wrong type', { Network: '10.5.0.0/16', EnableIPv4: 'yes' }, /EnableIPv4 "yes"/],
  ['Backend not an object', { Network: '10.5.0.0/16', Backend: 'vxlan' }, /Backend "vxlan"/],
  ['Backend.Type not a string', { Network: '10.5.0.0/16', Backend: { Type: 3 } }, /Backend.Type 3/],
  // IPv6: flannel's CheckNetworkConfig under EnableIPv6, and its JSON decoding
  ['IPv6Network missing', { Network: N, EnableIPv6: true }, /IPv6Network null: required with EnableIPv6/],
  ['IPv6Network empty', { Network: N, EnableIPv6: true, IPv6Network: '' }, /IPv6Network "": required/],
  ['IPv6Network not CIDR', { Network: N, EnableIPv6: true, IPv6Network: 'fd00::' }, /"fd00::": not an IPv6 CIDR/],
  ['IPv6Network is IPv4', { Network: N, EnableIPv6: true, IPv6Network: '10.0.0.0/8' }, /not an IPv6 CIDR/],
  ['IPv6Network bad, IPv6 off', { Network: N, IPv6Network: 'nope' }, /IPv6Network "nope": not an IPv6 CIDR/],
  ['IPv6Network host bits', { Network: N, EnableIPv6: true, IPv6Network: 'fd00::1/48' }, /has host bits set/],
  [
    'IPv6Network too small',
    { Network: N, EnableIPv6: true, IPv6Network: 'fd00::/125' },
    /IPv6Network "fd00::\/125": too small: the smallest useful IPv6Network is a \/124/,
  ],
  [
    'IPv6SubnetLen > 126',
    { Network: N, EnableIPv6: true, IPv6Network: 'fd00::/48', IPv6SubnetLen: 127 },
    /IPv6SubnetLen 127: must be at most 126/,
  ],
  [
    'IPv6SubnetLen too short',
    { Network: N, EnableIPv6: true, IPv6Network: 'fd00::/48', IPv6SubnetLen: 49 },
    /IPv6SubnetLen 49: must be at least 50 so that fd00::\/48 holds four subnets/,
  ],
  [
    'IPv6SubnetLen negative',
    { Network: N, EnableIPv6: true, IPv6Network: 'fd00::/48', IPv6SubnetLen: -64 },
    /IPv6SubnetLen -64/,
  ],
  [
    'IPv6SubnetMin outside',
    { Network: N, EnableIPv6: true, IPv6Network: 'fd00::/48', IPv6SubnetMin: 'fd01::' },
    /IPv6SubnetMin "fd01::": not within IPv6Network fd00::\/48/,
  ],
  [
    'IPv6SubnetMax outside',
    { Network: N, EnableIPv6: true, IPv6Network: 'fd00::/48', IPv6SubnetMax: 'fc00::' },
    /IPv6SubnetMax "fc00::": not within IPv6Network/,
  ],
  [
    'IPv6SubnetMin not an address',
    { Network: N, EnableIPv6: true, IPv6Network: 'fd00::/48', IPv6SubnetMin: '10.5.0.0' },
    /IPv6SubnetMin "10.5.0.0": not an IPv6 address/,
  ],
  [
    'IPv6SubnetMin unaligned',
    { Network: N, EnableIPv6: true, IPv6Network: 'fd00::/48', IPv6SubnetMin: 'fd00:0:0:1::1' },
    /IPv6SubnetMin "fd00:0:0:1::1": not on a \/64 boundary/,
  ],
  [
    'IPv6SubnetMax unaligned',
    { Network: N, EnableIPv6: true, IPv6Network: 'fd00::/48', IPv6SubnetMax: 'fd00:0:0:9:8000::' },
    /IPv6SubnetMax "fd00:0:0:9:8000::": not on a \/64 boundary/,
  ],
  [
    'IPv6 min > max',
    {
      Network: N,
      EnableIPv6: true,
      IPv6Network: 'fd00::/48',
      IPv6SubnetMin: 'fd00:0:0:9::',
      IPv6SubnetMax: 'fd00:0:0:8::',
    },
    /IPv6SubnetMin "fd00:0:0:9::": is above IPv6SubnetMax fd00:0:0:8::/,
  ],
  [
    'IPv6Network printed as IPv4 by flannel',
    { Network: N, EnableIPv6: true, IPv6Network: '::ffff:0:0/96' },
    /lies in ::\/96 or ::ffff:0:0\/96/,
  ],
  ['IPv6-only without IPv6Network', { EnableIPv4: false, EnableIPv6: true }, /IPv6Network null: required/],
  ['EnableIPv6 wrong type', { Network: N, EnableIPv6: 'true' }, /EnableIPv6 "true"/],
];

t.test('dual-stack: IPv6 defaults as flannel computes them', async (t) => {
  const c = p({ Network: '10.5.0.0/16', EnableIPv6: true, IPv6Network: 'fd00:5::/48' });
  t.equal(c.enableIPv4, true);
  t.equal(c.enableIPv6, true);
  t.equal(c.ipv6Network, 'fd00:5::/48');
  const v6 = c.ipv6!;
  t.equal(formatSubnet6(v6.network), 'fd00:5::/48');
  t.equal(v6.subnetLen, 64, '/62 or larger -> /64');
  t.equal(formatIPv6(v6.subnetMin), 'fd00:5:0:1::', 'skips the first subnet');
  t.equal(formatIPv6(v6.subnetMax), 'fd00:5:0:ffff::', 'last subnet');
  t.equal(v6.subnetCount, 65535n);
  t.equal(p({ Network: '10.5.0.0/16', EnableIPv6: true, IPv6Network: 'fd00::/62' }).ipv6!.subnetLen, 64, '/62');
  t.equal(p({ Network: '10.5.0.0/16', EnableIPv6: true, IPv6Network: 'fd00::/63' }).ipv6!.subnetLen, 65, 'prefix+2');
  const tiny = p({ Network: '10.5.0.0/16', EnableIPv6: true, IPv6Network: 'fd00::/124' }).ipv6!;
  t.equal(tiny.subnetLen, 126);
  t.equal(tiny.subnetCount, 3n);
  t.equal(p({ Network: '10.5.0.0/16', IPv6Network: 'fd00:5::/48' }).ipv6, null, 'EnableIPv6 off: no IPv6 half');
  const given = p({
    Network: '10.5.0.0/16',
    EnableIPv6: true,
    IPv6Network: 'fd00:5::/48',
    IPv6SubnetLen: 80,
    IPv6SubnetMin: 'fd00:5:0:10::',
    IPv6SubnetMax: 'FD00:5:0:20::',
  }).ipv6!;
  t.equal(given.subnetLen, 80);
  t.equal(formatIPv6(given.subnetMin), 'fd00:5:0:10::');
  t.equal(formatIPv6(given.subnetMax), 'fd00:5:0:20::');
  t.equal(given.subnetCount, 0x10n * 0x10000n + 1n);
  t.equal(
    p({ Network: '10.5.0.0/16', EnableIPv6: true, IPv6Network: 'fd00:5::/48', IPv6SubnetMin: '::' }).ipv6!.subnetMin,
    v6.subnetMin,
    ':: = unset',
  );
  t.equal(p({ network: '10.5.0.0/16', enableipv6: true, ipv6network: 'fd00::/48' }).ipv6!.subnetLen, 64, 'any case');
});

t.test('IPv6-only: EnableIPv4 false keeps flannel empty IPv4 fields', async (t) => {
  const c = p({ EnableIPv4: false, EnableIPv6: true, IPv6Network: 'fd00:5::/48', Backend: { Type: 'vxlan' } });
  t.equal(c.enableIPv4, false);
  t.equal(formatSubnet(c.network), '0.0.0.0/0');
  t.equal(c.subnetCount, 0);
  t.equal(c.ipv6!.subnetLen, 64);
  t.same(c.backend, { Type: 'vxlan' });
  t.equal(
    p({ EnableIPv4: false, EnableIPv6: true, IPv6Network: 'fd00::/48', Network: 'x' }).enableIPv4,
    false,
    'Network ignored',
  );
});

t.test('validation errors name the field and the value', async (t) => {
  for (const [name, input, re] of bad) {
    const json = typeof input === 'string' ? input : JSON.stringify(input);
    t.throws(() => parseNetworkConfig(json), NetworkConfigError, name);
    try {
      parseNetworkConfig(json);
    } catch (e) {
      t.match((e as Error).message, re, name);
      t.equal((e as NetworkConfigError).code, 'WEFT_ERR_NETWORK_CONFIG');
    }
  }
});
