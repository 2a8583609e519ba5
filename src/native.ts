// The one typed door to the native addon (native/*.c, built to build/Release/weft.node).
// TypeScript decides per batch (routes, peers, policy); C does the syscalls and byte work.
//
// Batch contract (wireguard-go style): a direction owns one BatchState, allocated once by
// createBatch() and passed to every call. Slot i starts at i * slotSize in `slab`.
//   len[i]   packet length, or a negative verdict (VERDICT_*)
//   off[i]   absolute byte offset into `slab` of the packet (inbound) or of its encap header (outbound)
//   peer[i]  peer-table index chosen by JS, or a negative verdict
//   addr[i]  outer IPv4 source of a received datagram, host-order uint32
//   counters Float64Array(COUNTER_COUNT); C adds to it, JS reads and adds with no allocation
// Arrays must hold at least `count` / `max` elements and the slab `count * slotSize` bytes,
// else the call throws a TypeError/RangeError naming the argument before touching anything.
// Syscall failures throw an Error with code = errno name ('EPERM'), errno, syscall, and a
// message naming the syscall and its argument. No call allocates per packet.

import { createRequire } from 'node:module';

declare const pollHandleBrand: unique symbol;
/** Opaque handle of a uv_poll_t watching one fd; from pollStart, ended by pollStop. */
export interface PollHandle {
  readonly [pollHandleBrand]: true;
}

export type EncapId = 0 | 1 | 2;

interface Addon {
  readonly HEADROOM: number;
  readonly SLOT_SIZE: number;
  readonly MAX_DATAGRAM: number;
  readonly PEER_RECORD_SIZE: number;
  readonly ENCAP_UDP: number;
  readonly ENCAP_VXLAN: number;
  readonly ENCAP_GENEVE: number;
  readonly ENCAP_UDP_HLEN: number;
  readonly ENCAP_VXLAN_HLEN: number;
  readonly ENCAP_GENEVE_HLEN: number;
  readonly READABLE: number;
  readonly WRITABLE: number;
  readonly COUNTER_COUNT: number;
  readonly ICMP_SCRATCH_MIN: number;
  readonly counterNames: readonly string[];
  readonly dropNames: readonly string[];
  tunOpen(name: string, multiQueue: boolean, vnetHdr: boolean): { fd: number; name: string };
  linkSet(name: string, mtu: number, up: boolean): void;
  close(fd: number): void;
  udpOpen(bindAddr: string, port: number, bufBytes: number, reusePort: boolean): number;
  udpLocalPort(fd: number): number;
  pollStart(fd: number, events: number, cb: (events: number) => void): PollHandle;
  pollUpdate(h: PollHandle, events: number): void;
  pollStop(h: PollHandle): void;
  tunRead(fd: number, slab: Buffer, slotSize: number, headroom: number, len: Int32Array, max: number,
    counters: Float64Array): number;
  encapBatch(encap: number, slab: Buffer, slotSize: number, headroom: number, len: Int32Array, off: Int32Array,
    peer: Int32Array, count: number, peerTable: Buffer, localMac: Buffer, vni: number, counters: Float64Array): void;
  sendBatch(fd: number, slab: Buffer, off: Int32Array, len: Int32Array, peer: Int32Array, start: number, count: number,
    peerTable: Buffer, counters: Float64Array): number;
  udpRecv(fd: number, slab: Buffer, slotSize: number, len: Int32Array, addr: Uint32Array, max: number,
    counters: Float64Array): number;
  decapBatch(encap: number, slab: Buffer, slotSize: number, len: Int32Array, off: Int32Array, count: number,
    vni: number, counters: Float64Array): void;
  tunWrite(fd: number, slab: Buffer, off: Int32Array, len: Int32Array, count: number, counters: Float64Array): number;
  icmpError(tunFd: number, slab: Buffer, pktOff: number, pktLen: number, type: number, code: number,
    fromAddr: number, scratch: Buffer, counters: Float64Array): boolean;
  tunReadOne(fd: number, buf: Buffer, off: number, max: number, counters: Float64Array): number;
  tunWriteOne(fd: number, buf: Buffer, off: number, len: number, counters: Float64Array): boolean;
}

const require = createRequire(import.meta.url);
// src/native.ts (ts-node) and dist/native.js both sit one level below the package root.
const addon = require('../build/Release/weft.node') as Addon;

// ---- constants ----

/** Bytes in front of each TUN-read packet for the encap header (and, later, a virtio header). */
export const HEADROOM: number = addon.HEADROOM;
/** Slot size: a whole 64 KiB datagram plus HEADROOM, rounded up to 64. */
export const SLOT_SIZE: number = addon.SLOT_SIZE;
export const MAX_DATAGRAM: number = addon.MAX_DATAGRAM;
/** Peer record: [0,4) IPv4 network order, [4,6) port BE, [6,12) VtepMAC, [12,16) VNI BE. */
export const PEER_RECORD_SIZE: number = addon.PEER_RECORD_SIZE;
export const ENCAP_UDP = addon.ENCAP_UDP as 0;
export const ENCAP_VXLAN = addon.ENCAP_VXLAN as 1;
export const ENCAP_GENEVE = addon.ENCAP_GENEVE as 2;
/** Header bytes encapBatch writes in front of the inner packet, by encap id. */
export const ENCAP_HEADER_LEN: readonly number[] = Object.freeze([
  addon.ENCAP_UDP_HLEN,
  addon.ENCAP_VXLAN_HLEN,
  addon.ENCAP_GENEVE_HLEN,
]);
export const READABLE: number = addon.READABLE;
export const WRITABLE: number = addon.WRITABLE;
export const COUNTER_COUNT: number = addon.COUNTER_COUNT;
/** Smallest scratch Buffer icmpError accepts. */
export const ICMP_SCRATCH_MIN: number = addon.ICMP_SCRATCH_MIN;

// ---- counters and verdicts: the names come from C (weft.h X-macros); the TS unions
// below only give them types and are checked against C when this module loads. ----

export type DropName =
  | 'malformed' | 'truncated' | 'ttl_exceeded' | 'bad_flags' | 'bad_vni' | 'bad_ethertype' | 'bad_version'
  | 'geneve_critical' | 'send_error' | 'tun_write_error' | 'no_route' | 'unknown_peer' | 'spoofed_source'
  | 'no_slot';
export type CounterName =
  | 'tun_rx_packets' | 'tun_rx_bytes' | 'tun_tx_packets' | 'tun_tx_bytes' | 'udp_tx_packets' | 'udp_tx_bytes'
  | 'udp_rx_packets' | 'udp_rx_bytes' | 'syscalls_tun_read' | 'syscalls_tun_write' | 'syscalls_send'
  | 'syscalls_recv' | 'copied_user_to_kernel_bytes' | 'copied_kernel_to_user_bytes' | 'icmp_sent'
  | `drop_${DropName}`;

/** Counter names in index order, straight from C. */
export const counterNames = addon.counterNames as readonly CounterName[];
/** Drop reasons in C order; reason r has verdict -(r + 1) and counter `drop_${name}`. */
export const dropNames = addon.dropNames as readonly DropName[];

function indexMap<K extends string>(names: readonly K[]): Readonly<Record<K, number>> {
  const m = {} as Record<K, number>;
  names.forEach((n, i) => {
    m[n] = i;
  });
  return Object.freeze(m);
}

/** Index of each counter in a counters array: counters[Counter.udp_rx_packets]. */
export const Counter: Readonly<Record<CounterName, number>> = indexMap(counterNames);
const dropIndex: Readonly<Record<DropName, number>> = indexMap(dropNames);

/** Index of a counter by name (same as Counter[name]). */
export function counterIndex(name: CounterName): number {
  return Counter[name];
}

/** Negative verdict stored in len[] or peer[] for a drop reason. */
export function verdictOf(reason: DropName): number {
  return -dropIndex[reason] - 1;
}
/** The drop reason of a negative verdict (undefined for a value that is not one). */
export function dropReasonOf(verdict: number): DropName | undefined {
  return dropNames[-verdict - 1];
}
/** The counter index a negative verdict is counted under. */
export function dropCounterOf(verdict: number): number {
  return Counter[`drop_${dropNames[-verdict - 1] ?? 'malformed'}`];
}

export const VERDICT_MALFORMED = verdictOf('malformed');
export const VERDICT_TRUNCATED = verdictOf('truncated');
export const VERDICT_TTL_EXCEEDED = verdictOf('ttl_exceeded');
export const VERDICT_BAD_FLAGS = verdictOf('bad_flags');
export const VERDICT_BAD_VNI = verdictOf('bad_vni');
export const VERDICT_BAD_ETHERTYPE = verdictOf('bad_ethertype');
export const VERDICT_BAD_VERSION = verdictOf('bad_version');
export const VERDICT_GENEVE_CRITICAL = verdictOf('geneve_critical');
export const VERDICT_SEND_ERROR = verdictOf('send_error');
export const VERDICT_TUN_WRITE_ERROR = verdictOf('tun_write_error');
export const VERDICT_NO_ROUTE = verdictOf('no_route');
export const VERDICT_UNKNOWN_PEER = verdictOf('unknown_peer');
export const VERDICT_SPOOFED_SOURCE = verdictOf('spoofed_source');
/** Alias of VERDICT_SPOOFED_SOURCE (src/datapath uses this name). */
export const VERDICT_SPOOFED = VERDICT_SPOOFED_SOURCE;
export const VERDICT_NO_SLOT = verdictOf('no_slot');

// A stale build must fail loudly at load, not miscount silently.
{
  const want: readonly string[] = [
    'tun_rx_packets', 'tun_rx_bytes', 'tun_tx_packets', 'tun_tx_bytes', 'udp_tx_packets', 'udp_tx_bytes',
    'udp_rx_packets', 'udp_rx_bytes', 'syscalls_tun_read', 'syscalls_tun_write', 'syscalls_send', 'syscalls_recv',
    'copied_user_to_kernel_bytes', 'copied_kernel_to_user_bytes', 'icmp_sent',
  ] satisfies readonly CounterName[];
  const drops: readonly DropName[] = [
    'malformed', 'truncated', 'ttl_exceeded', 'bad_flags', 'bad_vni', 'bad_ethertype', 'bad_version',
    'geneve_critical', 'send_error', 'tun_write_error', 'no_route', 'unknown_peer', 'spoofed_source', 'no_slot',
  ];
  const c = new Set<string>(counterNames);
  const d = new Set<string>(dropNames);
  const ok = counterNames.length === COUNTER_COUNT && c.size === want.length + drops.length &&
    want.every((n) => c.has(n)) && drops.every((n) => d.has(n) && c.has(`drop_${n}`)) && d.size === drops.length;
  if (!ok) throw new Error(`weft.node counters do not match src/native.ts: ${counterNames.join(',')}`);
}

// ---- batch state ----

export interface BatchState {
  readonly slots: number;
  readonly slotSize: number;
  readonly slab: Buffer;
  readonly len: Int32Array;
  readonly off: Int32Array;
  readonly peer: Int32Array;
  readonly addr: Uint32Array;
  readonly counters: Float64Array;
}

/** Allocate a direction's batch state once; every batch call reuses it. */
export function createBatch(slots: number, slotSize: number = SLOT_SIZE,
  counters: Float64Array = new Float64Array(COUNTER_COUNT)): BatchState {
  if (!Number.isInteger(slots) || slots < 1 || slots * slotSize > 0x7fffffff) {
    throw new RangeError(`createBatch: slots ${slots} * slotSize ${slotSize} out of range`);
  }
  return {
    slots,
    slotSize,
    slab: Buffer.alloc(slots * slotSize),
    len: new Int32Array(slots),
    off: new Int32Array(slots),
    peer: new Int32Array(slots),
    addr: new Uint32Array(slots),
    counters,
  };
}

/** Fill peer record `index` of a JS-owned table (no native call). mac: 'aa:bb:..' or 6 bytes. */
export function writePeerRecord(table: Buffer, index: number, ipv4: string, port: number,
  mac: string | Uint8Array, vni: number): void {
  const at = index * PEER_RECORD_SIZE;
  if (!Number.isInteger(index) || index < 0 || at + PEER_RECORD_SIZE > table.length) {
    throw new RangeError(`peer index ${index} outside a table of ${table.length / PEER_RECORD_SIZE} records`);
  }
  const octets = ipv4.split('.').map(Number);
  if (octets.length !== 4 || octets.some((o) => !Number.isInteger(o) || o < 0 || o > 255)) {
    throw new TypeError(`peer address '${ipv4}' is not dotted IPv4`);
  }
  const macBytes = typeof mac === 'string' ? Buffer.from(mac.split(':').join(''), 'hex') : mac;
  if (macBytes.length !== 6) throw new TypeError('peer VtepMAC must be 6 bytes');
  table.fill(0, at, at + PEER_RECORD_SIZE);
  octets.forEach((o, i) => {
    table[at + i] = o;
  });
  table.writeUInt16BE(port, at + 4);
  table.set(macBytes, at + 6);
  table.writeUInt32BE(vni, at + 12);
}

/** IPv4 dotted string -> host-order uint32 (as addr[] and icmpError's fromAddr use). */
export function ipv4ToU32(ip: string): number {
  const o = ip.split('.').map(Number);
  if (o.length !== 4 || o.some((x) => !Number.isInteger(x) || x < 0 || x > 255)) {
    throw new TypeError(`'${ip}' is not dotted IPv4`);
  }
  return ((o[0]! << 24) >>> 0) + (o[1]! << 16) + (o[2]! << 8) + o[3]!;
}

/** host-order uint32 -> dotted IPv4. */
export function u32ToIpv4(a: number): string {
  return `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`;
}

// ---- 1. devices ----

/** Open /dev/net/tun as IFF_TUN|IFF_NO_PI (+MULTI_QUEUE, +VNET_HDR), O_NONBLOCK|O_CLOEXEC. name '' lets the kernel pick. */
export const tunOpen: Addon['tunOpen'] = addon.tunOpen;
/** Set MTU (0 leaves it) and IFF_UP on a link via SIOCSIFMTU/SIOCSIFFLAGS. */
export const linkSet: Addon['linkSet'] = addon.linkSet;
/** close(2). Stop any PollHandle on the fd first. */
export const close: Addon['close'] = addon.close;

// ---- 2. underlay socket ----

/** AF_INET UDP socket, nonblocking, cloexec, SO_REUSEADDR (+SO_REUSEPORT), buffers forced to bufBytes (0 = default). */
export const udpOpen: Addon['udpOpen'] = addon.udpOpen;
export const udpLocalPort: Addon['udpLocalPort'] = addon.udpLocalPort;

// ---- 3. event loop ----

/** Watch fd on Node's loop. cb gets READABLE|WRITABLE, or a negative errno on a poll error.
 *  One handle per fd. A throw in cb surfaces as 'uncaughtException'. */
export const pollStart: Addon['pollStart'] = addon.pollStart;
/** Change the watched events (0 pauses). Throws EBADF on a stopped handle. */
export const pollUpdate: Addon['pollUpdate'] = addon.pollUpdate;
/** Stop and release the handle (memory freed after libuv's close callback). Idempotent. */
export const pollStop: Addon['pollStop'] = addon.pollStop;

// ---- 4. outbound: TUN -> encap -> socket ----

/** read() TUN until EAGAIN or max packets; packet i at i*slotSize+headroom, len[i] its length. Returns count. */
export const tunRead: Addon['tunRead'] = addon.tunRead;
/** For i < count with peer[i] >= 0: check IPv4, decrement TTL (RFC 1624), write the encap header
 *  in place before the packet; off[i] = header start, len[i] += header length. Failures set peer[i]
 *  to VERDICT_MALFORMED / VERDICT_TTL_EXCEEDED (JS sends the ICMP) / VERDICT_NO_ROUTE (index past
 *  the table). VNI: the record's, or `vni` when the record holds 0. */
export const encapBatch: Addon['encapBatch'] = addon.encapBatch;
/** sendmmsg slots [start, count) with peer[i] >= 0 to their peer record. Returns the index to resume
 *  from: count when done, less on EAGAIN/ENOBUFS (wait for WRITABLE). Other errors: peer[i] =
 *  VERDICT_SEND_ERROR, counted, skipped. */
export const sendBatch: Addon['sendBatch'] = addon.sendBatch;

// ---- 5. inbound: socket -> decap -> TUN ----

/** recvmmsg up to max datagrams into slots at offset 0; addr[i] = source (host order); a truncated
 *  datagram gets len[i] = VERDICT_TRUNCATED. Returns count (0 when nothing is queued). */
export const udpRecv: Addon['udpRecv'] = addon.udpRecv;
/** Validate each datagram (len[i] >= 0) and find its inner IPv4 packet: off[i]/len[i] point at it
 *  (trimmed to its total length), or len[i] = negative verdict, counted. Completes TCP/UDP checksums
 *  left partial by a kernel VXLAN sender. Inner source: slab.readUInt32BE(off[i] + 12). */
export const decapBatch: Addon['decapBatch'] = addon.decapBatch;
/** write() each slot with len[i] > 0 to TUN; a failure sets len[i] = VERDICT_TUN_WRITE_ERROR, counted.
 *  Returns packets written. */
export const tunWrite: Addon['tunWrite'] = addon.tunWrite;

// ---- 6. ICMP ----

/** Build an ICMPv4 error about slab[pktOff, pktOff+pktLen) from fromAddr into scratch and write it
 *  to TUN. false when none may be sent (ICMP error, non-first fragment, non-unicast) or the write failed. */
export const icmpError: Addon['icmpError'] = addon.icmpError;
export const ICMP_DEST_UNREACH = 3;
export const ICMP_NET_UNREACH = 0;
export const ICMP_TIME_EXCEEDED = 11;
export const ICMP_EXC_TTL = 0;

// ---- 7. one packet per call (dgram tier) ----

/** One read() from TUN into buf[off, off+max). Returns its length, 0 on EAGAIN. */
export const tunReadOne: Addon['tunReadOne'] = addon.tunReadOne;
/** One write() to TUN. false (counted as drop_tun_write_error) when it failed. */
export const tunWriteOne: Addon['tunWriteOne'] = addon.tunWriteOne;
