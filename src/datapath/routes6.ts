// IPv6 routes of the userspace datapath: the questions routes.ts answers for IPv4 (longest-prefix match from an
// inner destination to a peer record; which record owns an outer source; may it send from this inner source), for
// 128-bit addresses. A table of its own, so the IPv4 lookup stays as it is.
//
// An address is read from the packet as four big-endian int32 words: no bigint and no allocation per packet. Each
// distinct prefix length has an open-addressing table keyed by the four masked words, probed longest first, as the
// IPv4 table does. Several leases may name one PublicIPv6; a datagram from it may carry any of their subnets.
import { maskOf, NO_ROUTE } from './routes.js';
import { readIp } from './ttl.js';

export interface Route6Entry {
  readonly net: bigint;
  readonly prefixLen: number;
  /** Index of the peer record (the IPv6 half's) C sends to. */
  readonly record: number;
}

export interface Peer6Entry {
  readonly record: number;
  /** Outer address the peer sends from (its lease's PublicIPv6). */
  readonly publicIp: bigint;
  /** Inner IPv6 subnet it may send from. */
  readonly net: bigint;
  readonly prefixLen: number;
}

const EMPTY = -1;

/** The four big-endian 32-bit words of an address, int32 form. */
export function words(a: bigint): [number, number, number, number] {
  const w = (i: number): number => Number((a >> BigInt(96 - 32 * i)) & 0xffffffffn) | 0;
  return [w(0), w(1), w(2), w(3)];
}

/** The masks of the four words of a /prefixLen. */
function masks(prefixLen: number): [number, number, number, number] {
  const m = (i: number): number => maskOf(Math.max(0, Math.min(32, prefixLen - 32 * i)));
  return [m(0), m(1), m(2), m(3)];
}

function hash(a: number, b: number, c: number, d: number): number {
  return Math.imul(a ^ Math.imul(b, 0x85ebca6b) ^ Math.imul(c, 0xc2b2ae35) ^ Math.imul(d, 0x27d4eb2f), 0x9e3779b1);
}

/** Open addressing with linear probing over 128-bit keys (four int32 words each). */
class Map128 {
  private readonly keys: Int32Array;
  private readonly vals: Int32Array;
  private readonly mask: number;
  private readonly shift: number;

  constructor(entries: ReadonlyArray<readonly [bigint, number]>) {
    let cap = 8;
    let bits = 3;
    while (cap < entries.length * 2) {
      cap <<= 1;
      bits++;
    }
    this.keys = new Int32Array(cap * 4);
    this.vals = new Int32Array(cap).fill(EMPTY);
    this.mask = cap - 1;
    this.shift = 32 - bits;
    for (const [k, v] of entries) this.set(words(k), v);
  }

  private set(w: readonly number[], val: number): void {
    const [a, b, c, d] = w as [number, number, number, number];
    for (let i = (hash(a, b, c, d) >>> this.shift) & this.mask; ; i = (i + 1) & this.mask) {
      if (this.vals[i] === EMPTY || this.is(i, a, b, c, d)) {
        this.keys.set([a, b, c, d], i * 4);
        this.vals[i] = val;
        return;
      }
    }
  }

  private is(i: number, a: number, b: number, c: number, d: number): boolean {
    const k = this.keys;
    const o = i * 4;
    return k[o] === a && k[o + 1] === b && k[o + 2] === c && k[o + 3] === d;
  }

  get(a: number, b: number, c: number, d: number): number {
    for (let i = (hash(a, b, c, d) >>> this.shift) & this.mask; ; i = (i + 1) & this.mask) {
      const v = this.vals[i] as number;
      if (v === EMPTY) return EMPTY;
      if (this.is(i, a, b, c, d)) return v;
    }
  }
}

export class RouteTable6 {
  /** Distinct prefix lengths, longest first, and their four word masks each. */
  private readonly masks: Int32Array;
  private readonly byLength: Map128[];
  private readonly byPublicIp: Map128;
  /** Per record: the subnet it may send from (four words, masked) and its masks; records without one match none. */
  private readonly peerNet: Int32Array;
  private readonly peerMask: Int32Array;
  private readonly samePublicIp: Int32Array;
  readonly size: number;

  constructor(routes: readonly Route6Entry[], peers: readonly Peer6Entry[], records: number) {
    const lengths = [...new Set(routes.map((r) => r.prefixLen))].sort((a, b) => b - a);
    this.masks = Int32Array.from(lengths.flatMap(masks));
    const netOf = (net: bigint, len: number): bigint =>
      len === 0 ? 0n : net & (((1n << BigInt(len)) - 1n) << BigInt(128 - len));
    this.byLength = lengths.map(
      (len) => new Map128(routes.filter((r) => r.prefixLen === len).map((r) => [netOf(r.net, len), r.record] as const)),
    );
    this.peerNet = new Int32Array(records * 4);
    this.peerMask = new Int32Array(records * 4);
    this.samePublicIp = new Int32Array(records).fill(NO_ROUTE);
    // A record with no subnet: mask /128 over the all-zero net, which no inner source (:: is never one) matches.
    this.peerMask.fill(-1);
    const first = new Map<bigint, number>();
    const last = new Map<bigint, number>();
    for (const p of peers) {
      this.peerNet.set(words(netOf(p.net, p.prefixLen)), p.record * 4);
      this.peerMask.set(masks(p.prefixLen), p.record * 4);
      const prev = last.get(p.publicIp);
      if (prev === undefined) first.set(p.publicIp, p.record);
      else this.samePublicIp[prev] = p.record;
      last.set(p.publicIp, p.record);
    }
    this.byPublicIp = new Map128([...first]);
    this.size = routes.length;
  }

  static readonly empty = new RouteTable6([], [], 0);

  /** Record for the IPv6 destination at buf[off, off + 16), or NO_ROUTE. */
  lookup(buf: Buffer, off: number): number {
    const a = readIp(buf, off);
    const b = readIp(buf, off + 4);
    const c = readIp(buf, off + 8);
    const d = readIp(buf, off + 12);
    const m = this.masks;
    for (let i = 0; i < this.byLength.length; i++) {
      const o = i * 4;
      const r = this.byLength[i]!.get(
        a & (m[o] as number),
        b & (m[o + 1] as number),
        c & (m[o + 2] as number),
        d & (m[o + 3] as number),
      );
      if (r !== EMPTY) return r;
    }
    return NO_ROUTE;
  }

  /** Record whose lease PublicIPv6 is the outer source at buf[off, off + 16), or NO_ROUTE. */
  peerBySource(buf: Buffer, off: number): number {
    return this.byPublicIp.get(readIp(buf, off), readIp(buf, off + 4), readIp(buf, off + 8), readIp(buf, off + 12));
  }

  /**
   * Anti-spoofing (peerBySource's record): the record with the same PublicIPv6 whose subnet holds the inner source
   * at buf[off, off + 16), or NO_ROUTE (spoofed).
   */
  senderOf(record: number, buf: Buffer, off: number): number {
    const a = readIp(buf, off);
    const b = readIp(buf, off + 4);
    const c = readIp(buf, off + 8);
    const d = readIp(buf, off + 12);
    const n = this.peerNet;
    const m = this.peerMask;
    for (let p = record; p >= 0 && p < this.samePublicIp.length; p = this.samePublicIp[p] as number) {
      const o = p * 4;
      if (
        (a & (m[o] as number)) === n[o] &&
        (b & (m[o + 1] as number)) === n[o + 1] &&
        (c & (m[o + 2] as number)) === n[o + 2] &&
        (d & (m[o + 3] as number)) === n[o + 3]
      ) {
        return p;
      }
    }
    return NO_ROUTE;
  }
}
