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
import type { DatapathOptions, PeerTraffic } from './datapath.js';
import { maskOf } from './routes.js';
import { buildPeerSnapshot, type Peer, type PeerSnapshot } from './peers.js';

/** ICMP errors per batch: enough to tell a sender, not enough to let a scan turn weft into an amplifier. */
export const ICMP_PER_BATCH = 8;

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
