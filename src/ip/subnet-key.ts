// flannel's lease key for both address families (pkg/subnet/subnet.go, MakeSubnetKey and ParseSubnetKey):
//
//   IPv4 only      10.5.3.0-24
//   dual-stack     10.5.3.0-24&fc00:0:0:3::-64
//   IPv6 only      0.0.0.0-0&fc00:0:0:3::-64      (flannel keeps an empty IPv4 net in the key: 0.0.0.0/0)
//
// Read leniently: upper-case hex, and a bare "fc00:0:0:3::-64" (no IPv4 part), are taken as well.
import { type Subnet, isAligned, parseIPv4, subnetToKey } from './subnet.js';
import { type Subnet6, formatIPv6, isAligned6, parseIPv6 } from './ipv6.js';

/** The subnets a lease key names. `subnet` is 0.0.0.0/0 (flannel's empty net) in an IPv6-only lease. */
export interface LeaseSubnets {
  readonly subnet: Subnet;
  readonly ipv6Subnet: Subnet6 | null;
}

/** flannel's empty IPv4 net, which an IPv6-only lease carries in its key. */
export const NO_IPV4: Subnet = { ip: 0, prefixLen: 0 };

/** True unless the subnet is flannel's empty IPv4 net (no real lease is a /0). */
export function hasIPv4(sn: Subnet): boolean {
  return sn.prefixLen > 0;
}

export function subnetsToKey(subnet: Subnet, ipv6Subnet: Subnet6 | null = null): string {
  const v4 = subnetToKey(subnet);
  return ipv6Subnet === null ? v4 : `${v4}&${formatIPv6(ipv6Subnet.ip)}-${ipv6Subnet.prefixLen}`;
}

const DUAL = /(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})-(\d{1,2})&([a-fA-F\d:]+)-(\d{1,3})$/;
const V4 = /(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})-(\d{1,2})$/;
const V6 = /(?:^|\/)([a-fA-F\d]*:[a-fA-F\d:]*)-(\d{1,3})$/;

function v4Part(ip: string, len: string): Subnet | null {
  const v = parseIPv4(ip);
  const prefixLen = Number(len);
  return v === null || prefixLen > 32 || !isAligned(v, prefixLen) ? null : { ip: v, prefixLen };
}

function v6Part(ip: string, len: string): Subnet6 | null {
  const v = parseIPv6(ip);
  const prefixLen = Number(len);
  return v === null || prefixLen > 128 || !isAligned6(v, prefixLen) ? null : { ip: v, prefixLen };
}

/** Parses a lease key (or a full etcd key ending in one); null when it names no subnet or a half is malformed. */
export function keyToSubnets(key: string): LeaseSubnets | null {
  const dual = DUAL.exec(key);
  if (dual !== null) {
    const subnet = v4Part(dual[1] ?? '', dual[2] ?? '');
    const ipv6Subnet = v6Part(dual[3] ?? '', dual[4] ?? '');
    return subnet === null || ipv6Subnet === null ? null : { subnet, ipv6Subnet };
  }
  const v4 = V4.exec(key);
  if (v4 !== null) {
    const subnet = v4Part(v4[1] ?? '', v4[2] ?? '');
    return subnet === null ? null : { subnet, ipv6Subnet: null };
  }
  const v6 = V6.exec(key);
  const ipv6Subnet = v6 === null ? null : v6Part(v6[1] ?? '', v6[2] ?? '');
  return ipv6Subnet === null ? null : { subnet: NO_IPV4, ipv6Subnet };
}
