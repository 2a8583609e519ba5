// The one typed door to the native addon (native/*.c, built to build/Release/weft.node).
// TypeScript decides per batch (routes, peers, policy); C does the syscalls and byte work.
//
// Batch contract (wireguard-go style): a direction owns one batch (src/datapath/batch.ts), allocated once and
// passed to every call. Slot i starts at i * slotSize in `slab`.
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
import { join } from 'node:path';
import { PACKAGE_ROOT } from './package-root.js';
import { WeftError } from './errors.js';

declare const pollHandleBrand: unique symbol;
/** Opaque handle of a uv_poll_t watching one fd; from pollStart, ended by pollStop. */
export interface PollHandle {
  readonly [pollHandleBrand]: true;
}

/** The numbers the addon exports (weft.h's constants), each read once below. */
type AddonConstant =
  | 'HEADROOM'
  | 'SLOT_SIZE'
  | 'MAX_DATAGRAM'
  | 'PEER_RECORD_SIZE'
  | 'ENCAP_UDP'
  | 'ENCAP_VXLAN'
  | 'ENCAP_GENEVE'
  | 'READABLE'
  | 'WRITABLE'
  | 'COUNTER_COUNT'
  | 'ICMP_SCRATCH_MIN'
  | 'VNET_HDR_LEN'
  | 'TRAIN_PER_PACKET'
  | 'GRO_MAX_SEGS'
  | 'GSO_MAX_SEGS';

interface Addon extends Readonly<Record<AddonConstant, number>> {
  readonly counterNames: readonly string[];
  readonly dropNames: readonly string[];
  tunOpen(name: string, multiQueue: boolean, vnetHdr: boolean): { fd: number; name: string };
  linkSet(name: string, mtu: number, up: boolean): void;
  close(fd: number): void;
  udpOpen(bindAddr: string, port: number, bufBytes: number, reusePort: boolean): number;
  udpSteerByInnerFlow(fd: number, innerOffset: number, geneve: boolean, queues: number): void;
  pollStart(fd: number, events: number, cb: (events: number) => void): PollHandle;
  pollUpdate(h: PollHandle, events: number): void;
  pollStop(h: PollHandle): void;
  tunRead(
    fd: number,
    slab: Buffer,
    slotSize: number,
    headroom: number,
    len: Int32Array,
    max: number,
    counters: Float64Array,
  ): number;
  encapBatch(
    encap: number,
    slab: Buffer,
    slotSize: number,
    headroom: number,
    len: Int32Array,
    off: Int32Array,
    peer: Int32Array,
    count: number,
    peerTable: Buffer,
    localMac: Buffer,
    vni: number,
    counters: Float64Array,
  ): void;
  sendBatch(
    fd: number,
    slab: Buffer,
    off: Int32Array,
    len: Int32Array,
    peer: Int32Array,
    start: number,
    count: number,
    peerTable: Buffer,
    counters: Float64Array,
  ): number;
  udpRecv(
    fd: number,
    slab: Buffer,
    slotSize: number,
    len: Int32Array,
    addr: Uint32Array,
    max: number,
    counters: Float64Array,
  ): number;
  decapBatch(
    encap: number,
    slab: Buffer,
    slotSize: number,
    len: Int32Array,
    off: Int32Array,
    count: number,
    vni: number,
    counters: Float64Array,
  ): void;
  tunWrite(
    fd: number,
    slab: Buffer,
    off: Int32Array,
    len: Int32Array,
    count: number,
    counters: Float64Array,
    mtu?: number,
  ): number;
  icmpError(
    tunFd: number,
    slab: Buffer,
    pktOff: number,
    pktLen: number,
    type: number,
    code: number,
    fromAddr: number,
    scratch: Buffer,
    counters: Float64Array,
  ): boolean;
  tunReadOne(fd: number, buf: Buffer, off: number, max: number, counters: Float64Array): number;
  tunWriteOne(fd: number, buf: Buffer, off: number, len: number, counters: Float64Array, mtu?: number): boolean;
  tunSetOffload(fd: number, flags: number): boolean;
  tunGetIff(fd: number): { name: string; flags: number };
  udpOffload(fd: number, wantGro: boolean): { segment: boolean; gro: boolean };
  /** The same arguments as tunRead. */
  tunReadVnet: Addon['tunRead'];
  offloadEncap(
    encap: number,
    slab: Buffer,
    slotSize: number,
    headroom: number,
    len: Int32Array,
    peer: Int32Array,
    count: number,
    peerTable: Buffer,
    localMac: Buffer,
    vni: number,
    mtu: number,
    train: Buffer,
    msgOff: Int32Array,
    msgLen: Int32Array,
    msgGso: Int32Array,
    msgPeer: Int32Array,
    maxMsgs: number,
    counters: Float64Array,
  ): number;
  sendTrain(
    fd: number,
    train: Buffer,
    msgOff: Int32Array,
    msgLen: Int32Array,
    msgGso: Int32Array,
    msgPeer: Int32Array,
    start: number,
    count: number,
    peerTable: Buffer,
    state: Int32Array,
    counters: Float64Array,
  ): number;
  udpRecvGro(
    fd: number,
    slab: Buffer,
    slotSize: number,
    len: Int32Array,
    addr: Uint32Array,
    gso: Int32Array,
    max: number,
    counters: Float64Array,
  ): number;
  offloadDecap(
    encap: number,
    slab: Buffer,
    slotSize: number,
    len: Int32Array,
    gso: Int32Array,
    addr: Uint32Array,
    count: number,
    vni: number,
    segOff: Int32Array,
    segLen: Int32Array,
    segAddr: Uint32Array,
    segMax: number,
    counters: Float64Array,
  ): number;
  groWrite(
    tunFd: number,
    slab: Buffer,
    segOff: Int32Array,
    segLen: Int32Array,
    count: number,
    coalesce: boolean,
    counters: Float64Array,
  ): number;
}

const require = createRequire(import.meta.url);
const addon = require(join(PACKAGE_ROOT, 'build', 'Release', 'weft.node')) as Addon;

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
export const READABLE: number = addon.READABLE;
export const WRITABLE: number = addon.WRITABLE;
export const COUNTER_COUNT: number = addon.COUNTER_COUNT;
/** Smallest scratch Buffer icmpError accepts. */
export const ICMP_SCRATCH_MIN: number = addon.ICMP_SCRATCH_MIN;

// ---- counters and verdicts: the names come from C (weft.h X-macros); the TS unions
// below only give them types and are checked against C when this module loads. ----

export type DropName =
  | 'malformed'
  | 'truncated'
  | 'ttl_exceeded'
  | 'bad_flags'
  | 'bad_vni'
  | 'bad_ethertype'
  | 'bad_version'
  | 'geneve_critical'
  | 'send_error'
  | 'tun_write_error'
  | 'no_route'
  | 'unknown_peer'
  | 'spoofed_source'
  | 'no_slot'
  | 'too_big'
  | 'bad_csum';
export type CounterName =
  | 'tun_rx_packets'
  | 'tun_rx_bytes'
  | 'tun_tx_packets'
  | 'tun_tx_bytes'
  | 'udp_tx_packets'
  | 'udp_tx_bytes'
  | 'udp_rx_packets'
  | 'udp_rx_bytes'
  | 'syscalls_tun_read'
  | 'syscalls_tun_write'
  | 'syscalls_send'
  | 'syscalls_recv'
  | 'copied_user_to_kernel_bytes'
  | 'copied_kernel_to_user_bytes'
  | 'icmp_sent'
  | OffloadCounterName
  | `drop_${DropName}`;
/** Counters only the offload tier moves (zero on the others). */
export type OffloadCounterName =
  | 'gso_superpackets'
  | 'gso_segments'
  | 'csum_completed'
  | 'udp_gso_sends'
  | 'udp_gso_fallbacks'
  | 'udp_gro_datagrams'
  | 'gro_superpackets'
  | 'gro_coalesced'
  | 'gro_csum_bad';

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
export const VERDICT_NO_ROUTE = verdictOf('no_route');
export const VERDICT_UNKNOWN_PEER = verdictOf('unknown_peer');
export const VERDICT_SPOOFED_SOURCE = verdictOf('spoofed_source');
/**
 * Alias of VERDICT_SPOOFED_SOURCE (src/datapath uses this name).
 * @alias
 */
export const VERDICT_SPOOFED = VERDICT_SPOOFED_SOURCE;
export const VERDICT_NO_SLOT = verdictOf('no_slot');
export const VERDICT_TOO_BIG = verdictOf('too_big');
export const VERDICT_BAD_CSUM = verdictOf('bad_csum');

// A stale build must fail loudly at load, not miscount silently.
{
  const want: readonly string[] = [
    'tun_rx_packets',
    'tun_rx_bytes',
    'tun_tx_packets',
    'tun_tx_bytes',
    'udp_tx_packets',
    'udp_tx_bytes',
    'udp_rx_packets',
    'udp_rx_bytes',
    'syscalls_tun_read',
    'syscalls_tun_write',
    'syscalls_send',
    'syscalls_recv',
    'copied_user_to_kernel_bytes',
    'copied_kernel_to_user_bytes',
    'icmp_sent',
    'gso_superpackets',
    'gso_segments',
    'csum_completed',
    'udp_gso_sends',
    'udp_gso_fallbacks',
    'udp_gro_datagrams',
    'gro_superpackets',
    'gro_coalesced',
    'gro_csum_bad',
  ] satisfies readonly CounterName[];
  const drops: readonly DropName[] = [
    'malformed',
    'truncated',
    'ttl_exceeded',
    'bad_flags',
    'bad_vni',
    'bad_ethertype',
    'bad_version',
    'geneve_critical',
    'send_error',
    'tun_write_error',
    'no_route',
    'unknown_peer',
    'spoofed_source',
    'no_slot',
    'too_big',
    'bad_csum',
  ];
  const c = new Set<string>(counterNames);
  const d = new Set<string>(dropNames);
  const ok =
    counterNames.length === COUNTER_COUNT &&
    c.size === want.length + drops.length &&
    want.every((n) => c.has(n)) &&
    drops.every((n) => d.has(n) && c.has(`drop_${n}`)) &&
    d.size === drops.length;
  if (!ok) {
    throw new WeftError('WEFT_ERR_NATIVE', `weft.node counters do not match src/native.ts: ${counterNames.join(',')}`);
  }
}

// ---- 1. devices ----

/**
 * Open /dev/net/tun as IFF_TUN|IFF_NO_PI (+MULTI_QUEUE, +VNET_HDR), O_NONBLOCK|O_CLOEXEC. name '' lets the kernel
 * pick.
 */
export const tunOpen: Addon['tunOpen'] = addon.tunOpen;
/** Set MTU (0 leaves it) and IFF_UP on a link via SIOCSIFMTU/SIOCSIFFLAGS. */
export const linkSet: Addon['linkSet'] = addon.linkSet;
/** close(2). Stop any PollHandle on the fd first. */
export const close: Addon['close'] = addon.close;

// ---- 2. underlay socket ----

/** AF_INET UDP socket, nonblocking, cloexec, SO_REUSEADDR (+SO_REUSEPORT), buffers forced to bufBytes (0 = default). */
export const udpOpen: Addon['udpOpen'] = addon.udpOpen;
/**
 * On a SO_REUSEPORT socket: the group picks the receiving socket by the inner packet's flow, `% queues` (the order
 * in which the sockets joined). innerOffset: the inner IPv4 header's offset in the UDP payload; geneve: plus options.
 */
export const udpSteerByInnerFlow: Addon['udpSteerByInnerFlow'] = addon.udpSteerByInnerFlow;

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
/** write() each slot with len[i] > 0 to TUN; a failure sets len[i] = verdictOf('tun_write_error'), counted.
 *  mtu (the TUN's MTU; absent or 0 = no limit): a longer packet, as a kernel VXLAN peer sends a whole TCP burst, is
 *  written as MTU-sized TCP segments (one writev each, payload not copied) after its TCP checksum verifies;
 *  len[i] = VERDICT_BAD_CSUM when it does not, VERDICT_TOO_BIG when it is not unfragmented IPv4 TCP. Counters move
 *  per segment written. Returns packets written. */
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
/** One write() to TUN. false (counted as drop_tun_write_error) when it failed. mtu: as for tunWrite (a longer
 *  packet is split into TCP segments or dropped as too_big / bad_csum, counted; false then). */
export const tunWriteOne: Addon['tunWriteOne'] = addon.tunWriteOne;

// ---- 8. offload tier (virtio_net_hdr on TUN, GSO/GRO, UDP_SEGMENT/UDP_GRO; native/offload.c) ----
//
// Outbound: tunReadVnet -> (JS: one route lookup per super-packet) -> offloadEncap -> sendTrain.
// Inbound:  udpRecvGro -> offloadDecap -> (JS: sender checks per segment) -> groWrite.

/** Bytes of the virtio_net_hdr in front of every packet on a TUN opened with vnetHdr. */
export const VNET_HDR_LEN: number = addon.VNET_HDR_LEN;
/** Train bytes to allow per super-packet given to offloadEncap. */
export const TRAIN_PER_PACKET: number = addon.TRAIN_PER_PACKET;
/** Most datagrams one UDP_GRO receive holds (the kernel's UDP_GRO_CNT_MAX). */
export const GRO_MAX_SEGS: number = addon.GRO_MAX_SEGS;
export const GSO_MAX_SEGS: number = addon.GSO_MAX_SEGS;
/** TUNSETOFFLOAD bits (linux/if_tun.h: TUN_F_CSUM, ...). */
export const TUN_F = Object.freeze({ CSUM: 0x01, TSO4: 0x02, TSO6: 0x04, TSO_ECN: 0x08, USO4: 0x20, USO6: 0x40 });

/** ioctl(TUNSETOFFLOAD, flags) on a TUN opened with vnetHdr. false when the kernel refuses the set (EINVAL): ask
 *  for less. Other errors throw. */
export const tunSetOffload: Addon['tunSetOffload'] = addon.tunSetOffload;
/** ioctl(TUNGETIFF): the device's name and IFF_* flags (IFF_VNET_HDR, IFF_MULTI_QUEUE below). */
export const tunGetIff: Addon['tunGetIff'] = addon.tunGetIff;
export const IFF_MULTI_QUEUE = 0x100;
export const IFF_VNET_HDR = 0x4000;
/** Probe UDP_SEGMENT (getsockopt) and, with wantGro, turn UDP_GRO on. Reports what this kernel has. */
export const udpOffload: Addon['udpOffload'] = addon.udpOffload;
/** Like tunRead on a vnetHdr TUN: packet i at i*slotSize+headroom, its virtio_net_hdr in the VNET_HDR_LEN bytes
 *  just before it; len[i] excludes the header (VERDICT_MALFORMED for a read shorter than the header). */
export const tunReadVnet: Addon['tunReadVnet'] = addon.tunReadVnet;
/** For each slot with peer[i] >= 0: split per its virtio header (TCPv4/UDP GSO, or complete a NEEDS_CSUM checksum)
 *  into segments of at most `mtu` bytes, decrement TTL, write the encap header in front of each, back to back in
 *  `train`, and describe the sends: msgOff/msgLen/msgGso(UDP_SEGMENT size, 0 for one datagram)/msgPeer.
 *  Returns the message count. Failures set peer[i] to a verdict, counted. The slab is not modified. */
export const offloadEncap: Addon['offloadEncap'] = addon.offloadEncap;
/** sendmmsg messages [start, count), each a UDP_SEGMENT train while state[0] is 1; on EIO C sets state[0] = 0
 *  (counted as udp_gso_fallbacks) and sends datagram by datagram from then on. Returns the index to resume from
 *  (count when done; partial progress is kept in msgOff/msgLen). */
export const sendTrain: Addon['sendTrain'] = addon.sendTrain;
/** recvmmsg with UDP_GRO: gso[i] = the segment size of a coalesced datagram, 0 for a single one. */
export const udpRecvGro: Addon['udpRecvGro'] = addon.udpRecvGro;
/** Split each received buffer into its datagrams (by gso[i]), decapsulate and check each inner IPv4 packet:
 *  segOff/segLen/segAddr (outer source) per good one. Returns the count; drops are counted by reason. */
export const offloadDecap: Addon['offloadDecap'] = addon.offloadDecap;
/** Write segments with segLen[k] > 0 to TUN (writev, virtio header first). With coalesce, consecutive TCP segments
 *  of one flow become one GSO super-packet (headers of the first are rewritten in the slab). Returns writes done. */
export const groWrite: Addon['groWrite'] = addon.groWrite;
