// Route table of the userspace datapath: longest-prefix match from an inner destination to a peer index, plus the
// reverse checks the receive path needs (which peer owns an outer source address, which subnet it may send from).
//
// Several leases may name one PublicIP (a host that changed subnet while its old lease runs out, a stale key, two
// hosts behind one NAT address). Flannel's backends accept any inner source from a known host; weft accepts from a
// PublicIP the subnets of every lease that names it, and still drops any other source as spoofed: the live lease
// keeps working whichever of them came last.
//
// A table is immutable once built. Lease events build a new one and the forwarder swaps it in between batches, so
// forwarding never waits for the control plane. Lookups touch only typed arrays: no allocation per packet, and the
// work per lookup does not grow with the number of hosts (one hash probe per distinct prefix length, usually one).
// The time does, as the table outgrows the CPU caches: 6.9 ns with 10 routes, 15.2 ns with 5,000
// (bench/results/scale-2026-11-25-191225).
//
// Addresses are signed int32 here (`x | 0`): V8 keeps those unboxed, where uint32 above 2^30 would be heap numbers.

export interface RouteEntry {
  /** Network address of the peer's subnet (int32 form of the IPv4 address). */
  readonly net: number;
  readonly prefixLen: number;
  /** Index into the peer table (the record C reads to address the datagram). */
  readonly peer: number;
}

export interface PeerEntry {
  readonly index: number;
  /** Outer address the peer sends from (its lease's PublicIP), int32 form. */
  readonly publicIp: number;
  /** Inner subnet the peer may send from. */
  readonly net: number;
  readonly prefixLen: number;
}

export const NO_ROUTE = -1;

export function maskOf(prefixLen: number): number {
  return prefixLen === 0 ? 0 : (0xffffffff << (32 - prefixLen)) | 0;
}

// Open addressing with linear probing over int32 keys; empty slots hold EMPTY in `vals`.
const EMPTY = -1;

class IntMap {
  private readonly keys: Int32Array;
  private readonly vals: Int32Array;
  private readonly mask: number;
  private readonly shift: number;

  constructor(entries: ReadonlyArray<readonly [number, number]>) {
    let cap = 8;
    let bits = 3;
    while (cap < entries.length * 2) {
      cap <<= 1;
      bits++;
    }
    this.keys = new Int32Array(cap);
    this.vals = new Int32Array(cap).fill(EMPTY);
    this.mask = cap - 1;
    this.shift = 32 - bits;
    for (const [k, v] of entries) this.set(k | 0, v);
  }

  // Fibonacci hashing, taking the product's high bits: subnet addresses share their low (host) bits, all zero, and
  // the low bits of the product would be zero too, piling every key onto a few slots.
  private slot(key: number): number {
    return Math.imul(key, 0x9e3779b1) >>> this.shift;
  }

  private set(key: number, val: number): void {
    for (let i = this.slot(key) & this.mask; ; i = (i + 1) & this.mask) {
      if (this.vals[i] === EMPTY || this.keys[i] === key) {
        this.keys[i] = key;
        this.vals[i] = val;
        return;
      }
    }
  }

  get(key: number): number {
    for (let i = this.slot(key) & this.mask; ; i = (i + 1) & this.mask) {
      const v = this.vals[i] as number;
      if (v === EMPTY) return EMPTY;
      if (this.keys[i] === key) return v;
    }
  }
}

export class RouteTable {
  /** Distinct prefix lengths, longest first: the match order. */
  private readonly lengths: Int32Array;
  private readonly masks: Int32Array;
  private readonly byLength: IntMap[];
  /** The first peer (in table order) of each PublicIP. */
  private readonly byPublicIp: IntMap;
  /** Per peer index: the subnet it may send from (checked on receive). */
  private readonly peerNet: Int32Array;
  private readonly peerMask: Int32Array;
  /** Per peer index: the next peer with the same PublicIP, or NO_ROUTE. */
  private readonly samePublicIp: Int32Array;
  readonly size: number;

  constructor(routes: readonly RouteEntry[], peers: readonly PeerEntry[]) {
    const lengths = [...new Set(routes.map((r) => r.prefixLen))].sort((a, b) => b - a);
    this.lengths = Int32Array.from(lengths);
    this.masks = Int32Array.from(lengths.map(maskOf));
    this.byLength = lengths.map(
      (len) => new IntMap(routes.filter((r) => r.prefixLen === len).map((r) => [r.net & maskOf(len), r.peer] as const)),
    );
    const maxIndex = peers.reduce((m, p) => Math.max(m, p.index), -1);
    this.peerNet = new Int32Array(maxIndex + 1);
    this.peerMask = new Int32Array(maxIndex + 1).fill(-1); // mask /32 of 0.0.0.0: matches nothing useful by default
    this.samePublicIp = new Int32Array(maxIndex + 1).fill(NO_ROUTE);
    const first = new Map<number, number>();
    const last = new Map<number, number>();
    for (const p of peers) {
      this.peerNet[p.index] = p.net & maskOf(p.prefixLen);
      this.peerMask[p.index] = maskOf(p.prefixLen);
      const ip = p.publicIp | 0;
      const prev = last.get(ip);
      if (prev === undefined) first.set(ip, p.index);
      else this.samePublicIp[prev] = p.index;
      last.set(ip, p.index);
    }
    this.byPublicIp = new IntMap([...first]);
    this.size = routes.length;
  }

  static readonly empty = new RouteTable([], []);

  /** Peer index for an inner destination, or NO_ROUTE. */
  lookup(dst: number): number {
    const n = this.lengths.length;
    for (let i = 0; i < n; i++) {
      const peer = this.byLength[i]!.get(dst & (this.masks[i] as number));
      if (peer !== EMPTY) return peer;
    }
    return NO_ROUTE;
  }

  /** Peer index whose lease PublicIP is this outer source, or NO_ROUTE. */
  peerBySource(src: number): number {
    return this.byPublicIp.get(src | 0);
  }

  /**
   * Anti-spoofing for a datagram from `peer` (peerBySource's answer): the peer with the same PublicIP whose subnet
   * holds inner source `src`, or NO_ROUTE (spoofed).
   */
  senderOf(peer: number, src: number): number {
    for (let p = peer; p >= 0 && p < this.peerNet.length; p = this.samePublicIp[p] as number) {
      if ((src & (this.peerMask[p] as number)) === this.peerNet[p]) return p;
    }
    return NO_ROUTE;
  }
}
