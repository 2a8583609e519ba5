import t from 'tap';
import { parseNetworkConfig } from '../src/config/network.js';
import { NetworkConfigError } from '../src/errors.js';
import { formatIPv4, formatSubnet } from '../src/ip/subnet.js';

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
  [
    'IPv6 only',
    { EnableIPv4: false, EnableIPv6: true, IPv6Network: 'fc00::/48' },
    /EnableIPv4 false: IPv6-only networks are not supported/,
  ],
  ['nothing enabled', { EnableIPv4: false }, /EnableIPv4 false: weft needs an IPv4 network/],
  ['EnableIPv4 wrong type', { Network: '10.5.0.0/16', EnableIPv4: 'yes' }, /EnableIPv4 "yes"/],
  ['Backend not an object', { Network: '10.5.0.0/16', Backend: 'vxlan' }, /Backend "vxlan"/],
  ['Backend.Type not a string', { Network: '10.5.0.0/16', Backend: { Type: 3 } }, /Backend.Type 3/],
];

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
