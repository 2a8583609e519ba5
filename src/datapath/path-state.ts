// State the two directions of a tier share: devices, the current peer snapshot, counters. One object per tier; the
// snapshot is replaced whole by setPeers, never mutated, so a batch sees one consistent peer set.
import type { Encap, LocalEncapInfo } from '../encap/encap.js';
import * as native from '../native.js';
import {
  counterIndex,
  COUNTER_COUNT,
  ICMP_DEST_UNREACH,
  ICMP_EXC_TTL,
  ICMP_NET_UNREACH,
  ICMP_SCRATCH_MIN,
  ICMP_TIME_EXCEEDED,
} from '../native.js';
import type { DatapathIpv6, DatapathOptions, PeerTraffic } from './datapath.js';
import { maskOf } from './routes.js';
import { words } from './routes6.js';
import { readIp } from './ttl.js';
import { buildPeerSnapshot, type Peer, type PeerSnapshot } from './peers.js';

/** ICMP errors per batch: enough to tell a sender, not enough to let a scan turn weft into an amplifier. */
export const ICMP_PER_BATCH = 8;

/** An outer IPv6 header is 20 bytes longer than IPv4's: what an inner IPv6 packet has less room for on the wire. */
export const IPV6_UNDERLAY_EXTRA = 20;

export const PEER_COUNTERS = 4;

/** A peer's subnet as one number (no string per peer in a rebuild); its PublicIP is compared apart. */
function subnetKey(p: Peer): number {
  return (p.net >>> 0) * 64 + p.prefixLen;
}

export class PathState {
  readonly tunFd: number;
  readonly encap: Encap;
  readonly local: LocalEncapInfo;
  readonly counters: Float64Array;
  /** int32 form, for comparisons with addresses read by readIp. */
  readonly networkNet: number;
  readonly networkMask: number;
  readonly gatewayIp: number;
  /** TUN MTU for the dgram tier's tunWriteOne (0 = no limit). */
  readonly tunMtu: number;
  /** Room for one ICMP error (IP + ICMP header + quoted IP header with options + 8 bytes). */
  readonly scratch = Buffer.alloc(ICMP_SCRATCH_MIN);
  /** The IPv6 half, or null: IPv6 packets are then no_route drops. */
  readonly ipv6: DatapathIpv6 | null;
  /** Our TUN's IPv6 address, the source of ICMPv6 errors (16 bytes, once). */
  readonly gateway6 = Buffer.alloc(16);
  /** IPv6Network as four masked words and their masks. */
  private readonly net6 = new Int32Array(4);
  private readonly mask6 = new Int32Array(4);
  /** The largest inner IPv6 packet the IPv6 underlay carries (the TUN MTU less the longer outer header); 0: none. */
  readonly mtu6: number;
  /** Room for one ICMPv6 error (the dgram tier's). */
  private scratch6: Buffer | null = null;
  snapshot: PeerSnapshot = buildPeerSnapshot([]);
  /**
   * Per peer index of the current snapshot, PEER_COUNTERS doubles: packets and bytes sent to it, packets and bytes
   * accepted from it. JS adds to them in the per-batch loops it already runs (no allocation); setPeers carries each
   * peer's totals over to its new index.
   */
  peerCounters = new Float64Array(0);

  /** counters: where this direction pair adds (a worker's share of a SharedArrayBuffer on the offload tier). */
  constructor(opts: DatapathOptions, counters: Float64Array = new Float64Array(COUNTER_COUNT)) {
    this.counters = counters;
    this.tunFd = opts.tunFd;
    this.encap = opts.encap;
    this.local = opts.local;
    this.networkMask = maskOf(opts.networkPrefixLen);
    this.networkNet = opts.networkIp & this.networkMask;
    this.gatewayIp = opts.gatewayIp >>> 0;
    this.tunMtu = opts.tunMtu ?? 0;
    this.ipv6 = opts.ipv6 ?? null;
    this.mtu6 = this.tunMtu > 0 ? this.tunMtu - IPV6_UNDERLAY_EXTRA : 0;
    if (this.ipv6) {
      const { network, gateway } = this.ipv6;
      const [a, b, c, d] = words(gateway);
      for (const [i, w] of [a, b, c, d].entries()) this.gateway6.writeInt32BE(w, i * 4);
      const len = network.prefixLen;
      this.mask6.set([0, 1, 2, 3].map((i) => maskOf(Math.max(0, Math.min(32, len - 32 * i)))));
      this.net6.set(words(network.ip).map((w, i) => w & (this.mask6[i] as number)));
    }
  }

  /** The IPv6 destination at buf[off, off + 16) lies in IPv6Network (so no lease means unreachable). */
  inNetwork6(buf: Buffer, off: number): boolean {
    if (!this.ipv6) return false;
    for (let i = 0; i < 4; i++) {
      if ((readIp(buf, off + 4 * i) & (this.mask6[i] as number)) !== this.net6[i]) return false;
    }
    return true;
  }

  /** The dgram tier's ICMPv6 error about slab[pkt, pkt + len), back through TUN; C decides whether one may go. */
  icmp6(slab: Buffer, pkt: number, len: number, type: number, code: number, param = 0): void {
    this.scratch6 ??= Buffer.alloc(native.ICMP6_SCRATCH);
    const { tunFd, gateway6, scratch6, counters } = this;
    native.icmp6Error(tunFd, slab, pkt, len, type, code, param, gateway6, scratch6, counters);
  }

  /** Swaps in a new peer set, keeping each remaining peer's counters. */
  setPeers(peers: readonly Peer[]): void {
    // Only peers that exchanged packets have counts to carry: usually a few of thousands.
    const before = this.snapshot.peers;
    const counts = this.peerCounters;
    const old = new Map<number, number>();
    before.forEach((p, i) => {
      if (counts[i * PEER_COUNTERS] !== 0 || counts[i * PEER_COUNTERS + 2] !== 0) old.set(subnetKey(p), i);
    });
    const next = new Float64Array(peers.length * PEER_COUNTERS);
    if (old.size > 0) {
      peers.forEach((p, i) => {
        const was = old.get(subnetKey(p));
        if (was !== undefined && before[was]?.publicIp === p.publicIp)
          next.set(counts.subarray(was * PEER_COUNTERS, (was + 1) * PEER_COUNTERS), i * PEER_COUNTERS);
      });
    }
    this.snapshot = buildPeerSnapshot(peers);
    this.peerCounters = next;
  }

  /** Traffic per peer, for /metrics and weft status. */
  peerTraffic(): PeerTraffic[] {
    return this.snapshot.peers.map((p, i) => {
      const c = this.peerCounters.subarray(i * PEER_COUNTERS, (i + 1) * PEER_COUNTERS);
      return {
        net: p.net,
        prefixLen: p.prefixLen,
        publicIp: p.publicIp,
        txPackets: c[0]!,
        txBytes: c[1]!,
        rxPackets: c[2]!,
        rxBytes: c[3]!,
      };
    });
  }

  sentTo(peer: number, bytes: number): void {
    const c = this.peerCounters;
    const i = peer * PEER_COUNTERS;
    c[i] = (c[i] as number) + 1;
    c[i + 1] = (c[i + 1] as number) + bytes;
  }

  receivedFrom(peer: number, bytes: number): void {
    const c = this.peerCounters;
    const i = peer * PEER_COUNTERS + 2;
    c[i] = (c[i] as number) + 1;
    c[i + 1] = (c[i + 1] as number) + bytes;
  }

  /** Destination inside the overlay Network (so no lease means unreachable, not "not ours"). */
  inNetwork(dst: number): boolean {
    return (dst & this.networkMask) === this.networkNet;
  }

  count(index: number, n = 1): void {
    this.counters[index] = (this.counters[index] as number) + n;
  }

  // The dgram tier's ICMP answers; the batched tiers answer through their queue (outIcmp: it knows the TUN's header).

  /** ICMP net-unreachable back through TUN about the packet at slab[pkt, pkt + len); C decides whether one may go. */
  netUnreachable(slab: Buffer, pkt: number, len: number): void {
    const { tunFd, gatewayIp, scratch, counters } = this;
    native.icmpError(tunFd, slab, pkt, len, ICMP_DEST_UNREACH, ICMP_NET_UNREACH, gatewayIp, scratch, counters);
  }

  /** ICMP time-exceeded (TTL) back through TUN about the packet at slab[pkt, pkt + len). */
  ttlExceeded(slab: Buffer, pkt: number, len: number): void {
    const { tunFd, gatewayIp, scratch, counters } = this;
    native.icmpError(tunFd, slab, pkt, len, ICMP_TIME_EXCEEDED, ICMP_EXC_TTL, gatewayIp, scratch, counters);
  }
}

export const C = {
  dropNoRoute: counterIndex('drop_no_route'),
  dropUnknownPeer: counterIndex('drop_unknown_peer'),
  dropSpoofedSource: counterIndex('drop_spoofed_source'),
  dropTtlExceeded: counterIndex('drop_ttl_exceeded'),
  dropMalformed: counterIndex('drop_malformed'),
  dropSendError: counterIndex('drop_send_error'),
  dropTooBig: counterIndex('drop_too_big'),
  tunRxPackets: counterIndex('tun_rx_packets'),
  tunRxBytes: counterIndex('tun_rx_bytes'),
  tunTxPackets: counterIndex('tun_tx_packets'),
  tunTxBytes: counterIndex('tun_tx_bytes'),
  udpTxPackets: counterIndex('udp_tx_packets'),
  udpTxBytes: counterIndex('udp_tx_bytes'),
  udpRxPackets: counterIndex('udp_rx_packets'),
  udpRxBytes: counterIndex('udp_rx_bytes'),
  syscallsTunRead: counterIndex('syscalls_tun_read'),
  syscallsTunWrite: counterIndex('syscalls_tun_write'),
  syscallsSend: counterIndex('syscalls_send'),
  syscallsRecv: counterIndex('syscalls_recv'),
  copiedUserToKernel: counterIndex('copied_user_to_kernel_bytes'),
  copiedKernelToUser: counterIndex('copied_kernel_to_user_bytes'),
} as const;
