// IPv4 subnet math on uint32 numbers, plus flannel's etcd key form ("10.5.3.0-24").
// Addresses are plain numbers in 0 .. 2^32-1; `>>> 0` keeps every result unsigned.

export interface Subnet {
  readonly ip: number; // network address, host bits zero
  readonly prefixLen: number; // 0 .. 32
}

const QUAD = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** Parses a dotted quad; null when it is not exactly four octets 0..255 (no leading "+", no spaces). */
export function parseIPv4(s: string): number | null {
  const m = QUAD.exec(s);
  if (m === null) return null;
  let v = 0;
  for (let i = 1; i <= 4; i++) {
    const o = Number(m[i]);
    if (o > 255) return null;
    v = v * 256 + o;
  }
  return v;
}

export function formatIPv4(ip: number): string {
  return `${(ip >>> 24) & 255}.${(ip >>> 16) & 255}.${(ip >>> 8) & 255}.${ip & 255}`;
}

/** Netmask of a prefix length as uint32 (prefix 0 is mask 0: `<< 32` is a no-op in JS). */
export function prefixMask(prefixLen: number): number {
  return prefixLen === 0 ? 0 : (0xffffffff << (32 - prefixLen)) >>> 0;
}

/** Number of addresses in a subnet of this prefix length. */
export function subnetSize(prefixLen: number): number {
  return 2 ** (32 - prefixLen);
}

function validPrefix(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= 32;
}

/** Builds a subnet, clearing host bits. */
export function makeSubnet(ip: number, prefixLen: number): Subnet {
  return { ip: (ip & prefixMask(prefixLen)) >>> 0, prefixLen };
}

/**
 * Parses "a.b.c.d/len". Host bits are kept as written (flannel keeps "10.5.0.1/16" as is);
 * use `isAligned` to check them. Null when malformed.
 */
export function parseCIDR(s: string): { ip: number; prefixLen: number } | null {
  const slash = s.indexOf('/');
  if (slash < 0) return null;
  const ip = parseIPv4(s.slice(0, slash));
  const lenStr = s.slice(slash + 1);
  if (ip === null || !/^\d{1,2}$/.test(lenStr)) return null;
  const prefixLen = Number(lenStr);
  if (!validPrefix(prefixLen)) return null;
  return { ip, prefixLen };
}

/** Parses "a.b.c.d/len" and requires host bits to be zero. */
export function parseSubnet(s: string): Subnet | null {
  const c = parseCIDR(s);
  if (c === null || !isAligned(c.ip, c.prefixLen)) return null;
  return c;
}

export function isAligned(ip: number, prefixLen: number): boolean {
  return (ip & prefixMask(prefixLen)) >>> 0 === ip;
}

export function formatSubnet(sn: Subnet): string {
  return `${formatIPv4(sn.ip)}/${sn.prefixLen}`;
}

/** flannel's key form: "10.5.3.0-24" (MakeSubnetKey without IPv6). */
export function subnetToKey(sn: Subnet): string {
  return `${formatIPv4(sn.ip)}-${sn.prefixLen}`;
}

// flannel's ParseSubnetKey matches the end of the key; a dual-stack key carries "&<ipv6>-<len>" after it.
const KEY = /(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})-(\d{1,2})(?:&([a-fA-F\d:]+)-(\d{1,3}))?$/;

/** Parses a subnet key (or a full etcd key ending in one); the IPv6 half of a dual-stack key is ignored. */
export function keyToSubnet(key: string): Subnet | null {
  const m = KEY.exec(key);
  if (m === null) return null;
  const ip = parseIPv4(m[1] ?? '');
  const prefixLen = Number(m[2]);
  if (ip === null || !validPrefix(prefixLen) || !isAligned(ip, prefixLen)) return null;
  return { ip, prefixLen };
}

export function subnetEquals(a: Subnet, b: Subnet): boolean {
  return a.ip === b.ip && a.prefixLen === b.prefixLen;
}

/** Last address of the subnet (broadcast). */
export function lastAddress(sn: Subnet): number {
  return sn.ip + subnetSize(sn.prefixLen) - 1;
}

export function containsIP(sn: Subnet, ip: number): boolean {
  return ip >= sn.ip && ip <= lastAddress(sn);
}

/** True when `inner` lies entirely within `outer`. */
export function containsSubnet(outer: Subnet, inner: Subnet): boolean {
  return inner.prefixLen >= outer.prefixLen && containsIP(outer, inner.ip);
}

export function overlaps(a: Subnet, b: Subnet): boolean {
  return a.ip <= lastAddress(b) && b.ip <= lastAddress(a);
}

/** First host address (network + 1): what subnet.env's FLANNEL_SUBNET carries. */
export function firstHost(sn: Subnet): number {
  return sn.ip + 1;
}

/**
 * Subnets of length `subnetLen` from `min` to `max` inclusive (both are network addresses of such subnets),
 * in ascending order.
 */
export function* iterateSubnets(min: number, max: number, subnetLen: number): Generator<Subnet> {
  const step = subnetSize(subnetLen);
  for (let ip = min; ip <= max; ip += step) yield { ip, prefixLen: subnetLen };
}

/** How many subnets `iterateSubnets` yields. */
export function countSubnets(min: number, max: number, subnetLen: number): number {
  return max < min ? 0 : Math.floor((max - min) / subnetSize(subnetLen)) + 1;
}

/** The i-th subnet of the range (0-based), without iterating. */
export function nthSubnet(min: number, subnetLen: number, i: number): Subnet {
  return { ip: min + i * subnetSize(subnetLen), prefixLen: subnetLen };
}
