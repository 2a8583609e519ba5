// State the two directions of a tier share: devices, the current peer snapshot, counters. One object per tier; the
// snapshot is replaced whole by setPeers, never mutated, so a batch sees one consistent peer set.
import type { Encap, LocalEncapInfo } from '../encap/encap.js';
import { counterIndex, COUNTER_COUNT } from '../native.js';
import type { DatapathOptions } from './datapath.js';
import { maskOf } from './routes.js';
import { buildPeerSnapshot, type PeerSnapshot } from './peers.js';

export class PathState {
  readonly tunFd: number;
  readonly encap: Encap;
  readonly local: LocalEncapInfo;
  readonly counters: Float64Array;
  /** int32 form, for comparisons with addresses read by readIp. */
  readonly networkNet: number;
  readonly networkMask: number;
  readonly gatewayIp: number;
  /** TUN MTU for tunWrite/tunWriteOne (0 = no limit). */
  readonly tunMtu: number;
  /** Room for one ICMP error (IP + ICMP header + quoted IP header with options + 8 bytes). */
  readonly scratch = Buffer.alloc(128);
  snapshot: PeerSnapshot = buildPeerSnapshot([]);

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

  /** Destination inside the overlay Network (so no lease means unreachable, not "not ours"). */
  inNetwork(dst: number): boolean {
    return (dst & this.networkMask) === this.networkNet;
  }

  count(index: number, n = 1): void {
    this.counters[index] = (this.counters[index] as number) + n;
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
