// The IPv6 half of flannel's network config: IPv6Network, IPv6SubnetLen, IPv6SubnetMin, IPv6SubnetMax, with
// flannel's defaults and checks (pkg/subnet/config.go, CheckNetworkConfig under EnableIPv6):
//   IPv6SubnetLen  default /64 when IPv6Network is /62 or larger, else its prefix + 2; at most 126, at least
//                  prefix + 2 (four subnets); without it an IPv6Network longer than /124 is too small
//   IPv6SubnetMin  default: the second subnet (the first is skipped, as for IPv4); "::" means unset
//   IPv6SubnetMax  default: the last subnet
// Errors name the field and its value in one line, as the IPv4 half's do.
import { NetworkConfigError } from '../errors.js';
import {
  type Subnet6,
  countSubnets6,
  formatIPv6,
  formatSubnet6,
  containsIP6,
  isAligned6,
  parseCIDR6,
  parseIPv6,
  subnetSize6,
} from '../ip/ipv6.js';

export interface Ipv6NetworkConfig {
  readonly network: Subnet6;
  readonly subnetLen: number;
  readonly subnetMin: bigint; // network address of the first allocatable subnet
  readonly subnetMax: bigint; // network address of the last allocatable subnet
  readonly subnetCount: bigint; // subnets in [subnetMin, subnetMax]
}

/** The IPv6 keys as they came out of the JSON (types already checked). */
export interface Ipv6Fields {
  readonly IPv6Network?: string | null;
  readonly IPv6SubnetLen?: number;
  readonly IPv6SubnetMin?: string | null;
  readonly IPv6SubnetMax?: string | null;
}

function fail(field: string, value: unknown, why: string): never {
  throw new NetworkConfigError(`network config: ${field} ${JSON.stringify(value) ?? String(value)}: ${why}`);
}

// flannel prints addresses in ::/96 and ::ffff:0:0/96 as dotted quads, which its own key parser cannot read back.
function printsAsIPv4(ip: bigint): boolean {
  return formatIPv6(ip).includes('.');
}

/**
 * Checks what flannel's JSON decoding checks even with IPv6 off: IPv6Network must be a CIDR and the bounds
 * addresses. Returns the parsed network (host bits refused) or null when absent.
 */
function parseNetwork(f: Ipv6Fields): Subnet6 | null {
  const s = f.IPv6Network;
  if (s === undefined || s === null || s === '') return null;
  const c = parseCIDR6(s);
  if (c === null) fail('IPv6Network', s, 'not an IPv6 CIDR');
  if (!isAligned6(c.ip, c.prefixLen)) fail('IPv6Network', s, 'has host bits set');
  return c;
}

function parseBound(field: 'IPv6SubnetMin' | 'IPv6SubnetMax', s: string | null | undefined): bigint | null {
  if (s === undefined || s === null || s === '') return null;
  const ip = parseIPv6(s);
  if (ip === null) fail(field, s, 'not an IPv6 address');
  // flannel's IsEmpty: the zero address means unset.
  return ip === 0n ? null : ip;
}

/** The canonical IPv6Network ("fc00::/48"), checked as flannel's decoding does; null when absent. */
export function ipv6NetworkText(f: Ipv6Fields): string | null {
  const net = parseNetwork(f);
  parseBound('IPv6SubnetMin', f.IPv6SubnetMin);
  parseBound('IPv6SubnetMax', f.IPv6SubnetMax);
  return net === null ? null : formatSubnet6(net);
}

/** The IPv6 half of an EnableIPv6 network, defaults applied; throws NetworkConfigError naming the field. */
export function parseIpv6Network(f: Ipv6Fields): Ipv6NetworkConfig {
  const network = parseNetwork(f);
  if (network === null)
    fail('IPv6Network', f.IPv6Network ?? null, 'required with EnableIPv6 (a CIDR such as "fc00::/48")');
  if (printsAsIPv4(network.ip)) {
    fail('IPv6Network', f.IPv6Network, "lies in ::/96 or ::ffff:0:0/96, which flannel's lease keys cannot carry");
  }
  const shown = formatSubnet6(network);

  let subnetLen: number;
  if (f.IPv6SubnetLen !== undefined && f.IPv6SubnetLen > 0) {
    subnetLen = f.IPv6SubnetLen;
    if (subnetLen > 126) fail('IPv6SubnetLen', subnetLen, 'must be at most 126');
    if (subnetLen < network.prefixLen + 2) {
      fail('IPv6SubnetLen', subnetLen, `must be at least ${network.prefixLen + 2} so that ${shown} holds four subnets`);
    }
  } else {
    if (network.prefixLen > 124) {
      fail('IPv6Network', f.IPv6Network, 'too small: the smallest useful IPv6Network is a /124');
    }
    subnetLen = network.prefixLen <= 62 ? 64 : network.prefixLen + 2;
  }
  const size = subnetSize6(subnetLen);

  const minGiven = parseBound('IPv6SubnetMin', f.IPv6SubnetMin);
  const maxGiven = parseBound('IPv6SubnetMax', f.IPv6SubnetMax);
  if (minGiven !== null && !containsIP6(network, minGiven)) {
    fail('IPv6SubnetMin', f.IPv6SubnetMin, `not within IPv6Network ${shown}`);
  }
  if (maxGiven !== null && !containsIP6(network, maxGiven)) {
    fail('IPv6SubnetMax', f.IPv6SubnetMax, `not within IPv6Network ${shown}`);
  }
  const subnetMin = minGiven ?? network.ip + size;
  const subnetMax = maxGiven ?? network.ip + subnetSize6(network.prefixLen) - size;
  if (!isAligned6(subnetMin, subnetLen)) {
    fail('IPv6SubnetMin', formatIPv6(subnetMin), `not on a /${subnetLen} boundary`);
  }
  if (!isAligned6(subnetMax, subnetLen)) {
    fail('IPv6SubnetMax', formatIPv6(subnetMax), `not on a /${subnetLen} boundary`);
  }
  if (subnetMin > subnetMax) {
    fail('IPv6SubnetMin', formatIPv6(subnetMin), `is above IPv6SubnetMax ${formatIPv6(subnetMax)}`);
  }
  return { network, subnetLen, subnetMin, subnetMax, subnetCount: countSubnets6(subnetMin, subnetMax, subnetLen) };
}
