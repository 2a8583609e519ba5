// IPv6 subnet math on bigint (0 .. 2^128-1), and the text form of IPv6 addresses as flannel writes them in lease
// keys, lease values and subnet.env.
//
// flannel keeps an IPv6 address as a big.Int (pkg/ip/ip6net.go, type IP6) and prints it through
// net.IP(big.Int.Bytes()).String(): RFC 5952 (lowercase, no leading zeros, the longest run of two or more zero
// groups as "::", the first of equal runs), with two quirks kept here so keys match byte for byte: a value whose
// big-endian bytes are exactly four long (2^24 .. 2^32-1) prints as a dotted quad, as does an IPv4-mapped address.

export interface Subnet6 {
  readonly ip: bigint; // network address, host bits zero
  readonly prefixLen: number; // 0 .. 128
}

const ALL_ONES = (1n << 128n) - 1n;

/** An IPv4 address in dotted form as Go reads it (no leading zeros); null otherwise. */
function parseDotted(s: string): number | null {
  const parts = s.split('.');
  if (parts.length !== 4) return null;
  let v = 0;
  for (const p of parts) {
    if (!/^(0|[1-9]\d{0,2})$/.test(p) || Number(p) > 255) return null;
    v = v * 256 + Number(p);
  }
  return v;
}

/** The 16-bit groups of one side of "::"; an IPv4 tail counts as two groups. Null when malformed. */
function groups(side: string, mayEndInIPv4: boolean): number[] | null {
  if (side === '') return [];
  const words = side.split(':');
  const out: number[] = [];
  for (const [i, w] of words.entries()) {
    if (mayEndInIPv4 && i === words.length - 1 && w.includes('.')) {
      const v4 = parseDotted(w);
      if (v4 === null) return null;
      out.push(v4 >>> 16, v4 & 0xffff);
    } else if (/^[0-9a-fA-F]{1,4}$/.test(w)) {
      out.push(parseInt(w, 16));
    } else {
      return null;
    }
  }
  return out;
}

/**
 * Parses an IPv6 address as Go's net.ParseIP does for IPv6 text: hex groups of 1..4 digits, at most one "::", an
 * optional IPv4 tail; no zone, no brackets. Null for anything else (plain IPv4 text included).
 */
export function parseIPv6(s: string): bigint | null {
  if (!s.includes(':')) return null;
  const halves = s.split('::');
  if (halves.length > 2) return null;
  let words: number[];
  if (halves.length === 2) {
    const head = groups(halves[0] ?? '', false);
    const tail = groups(halves[1] ?? '', true);
    if (head === null || tail === null || head.length + tail.length > 7) return null;
    words = [...head, ...Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  } else {
    const all = groups(s, true);
    if (all === null || all.length !== 8) return null;
    words = all;
  }
  let v = 0n;
  for (const w of words) v = (v << 16n) | BigInt(w);
  return v;
}

function dotted(v: bigint): string {
  const n = Number(v & 0xffffffffn);
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/** The address as flannel prints it (see the header). */
export function formatIPv6(ip: bigint): string {
  if ((ip >= 1n << 24n && ip < 1n << 32n) || ip >> 32n === 0xffffn) return dotted(ip);
  const w: number[] = [];
  for (let i = 7; i >= 0; i--) w.push(Number((ip >> BigInt(i * 16)) & 0xffffn));
  // The longest run of zero groups, at least two long; the first one wins a tie.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (w[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (from: number, to: number): string =>
    w
      .slice(from, to)
      .map((g) => g.toString(16))
      .join(':');
  return best < 0 ? hex(0, 8) : `${hex(0, best)}::${hex(best + bestLen, 8)}`;
}

/** Netmask of a prefix length. */
export function prefixMask6(prefixLen: number): bigint {
  return (ALL_ONES << BigInt(128 - prefixLen)) & ALL_ONES;
}

/** Number of addresses in a subnet of this prefix length. */
export function subnetSize6(prefixLen: number): bigint {
  return 1n << BigInt(128 - prefixLen);
}

export function isAligned6(ip: bigint, prefixLen: number): boolean {
  return (ip & prefixMask6(prefixLen)) === ip;
}

/** Builds a subnet, clearing host bits. */
export function makeSubnet6(ip: bigint, prefixLen: number): Subnet6 {
  return { ip: ip & prefixMask6(prefixLen), prefixLen };
}

/** Parses "addr/len" (len 0..128, decimal). Host bits are kept as written; `isAligned6` checks them. */
export function parseCIDR6(s: string): { ip: bigint; prefixLen: number } | null {
  const slash = s.indexOf('/');
  if (slash < 0) return null;
  const ip = parseIPv6(s.slice(0, slash));
  const lenStr = s.slice(slash + 1);
  if (ip === null || !/^\d{1,3}$/.test(lenStr)) return null;
  const prefixLen = Number(lenStr);
  return prefixLen <= 128 ? { ip, prefixLen } : null;
}

/** Parses "addr/len" and requires host bits to be zero. */
export function parseSubnet6(s: string): Subnet6 | null {
  const c = parseCIDR6(s);
  return c === null || !isAligned6(c.ip, c.prefixLen) ? null : c;
}

export function formatSubnet6(sn: Subnet6): string {
  return `${formatIPv6(sn.ip)}/${sn.prefixLen}`;
}

export function subnet6Equals(a: Subnet6, b: Subnet6): boolean {
  return a.ip === b.ip && a.prefixLen === b.prefixLen;
}

export function lastAddress6(sn: Subnet6): bigint {
  return sn.ip + subnetSize6(sn.prefixLen) - 1n;
}

export function containsIP6(sn: Subnet6, ip: bigint): boolean {
  return ip >= sn.ip && ip <= lastAddress6(sn);
}

export function overlaps6(a: Subnet6, b: Subnet6): boolean {
  return a.ip <= lastAddress6(b) && b.ip <= lastAddress6(a);
}

/** First host address (network + 1): what subnet.env's FLANNEL_IPV6_SUBNET carries. */
export function firstHost6(sn: Subnet6): bigint {
  return sn.ip + 1n;
}

/** How many subnets of length `subnetLen` lie from `min` to `max` inclusive (both network addresses). */
export function countSubnets6(min: bigint, max: bigint, subnetLen: number): bigint {
  return max < min ? 0n : (max - min) / subnetSize6(subnetLen) + 1n;
}

/** The i-th subnet of the range (0-based). */
export function nthSubnet6(min: bigint, subnetLen: number, i: bigint): Subnet6 {
  return { ip: min + i * subnetSize6(subnetLen), prefixLen: subnetLen };
}
