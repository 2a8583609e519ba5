// The encapsulation contract. Each encap is one object with the same operations, so the datapath never branches on
// protocol internals. Built-in encaps also name their native twin (`nativeId`): on the batch and offload tiers C runs
// encode/decode over a whole batch with no JS call per packet. An encap with `nativeId === null` is TypeScript only:
// the forwarder hands it each packet of a batch as a view into the slab (slower, but any tier can carry it).
//
// encode writes the header in place, in the headroom in front of the inner packet; nothing is copied.
// decode reads an outer UDP payload and finds the inner IPv4 packet; it must check every length it reads, since the
// bytes come from the network.

import { Verdict } from '../verdicts.js';

/** What a peer's lease says about how to reach it, parsed once per lease event. */
export interface PeerEncapInfo {
  /** VtepMAC for VXLAN: the inner Ethernet destination. Zero bytes for encaps without one. */
  readonly mac: Buffer;
  readonly vni: number;
}

/** This host's side of the encap, from the network config and the daemon's state. */
export interface LocalEncapInfo {
  readonly mac: Buffer;
  readonly vni: number;
}

/** Outcome of decode: 0 or a positive inner offset is success; negative values are verdicts of the one table both
 *  C and TypeScript use (src/verdicts.ts), so the forwarder counts them as they are. */
export const DecodeVerdict = {
  truncated: Verdict.truncated,
  badFlags: Verdict.badFlags,
  badVni: Verdict.badVni,
  badEthertype: Verdict.badEthertype,
  badVersion: Verdict.badVersion,
  geneveCritical: Verdict.geneveCritical,
  malformed: Verdict.malformed,
} as const;
export type DecodeVerdict = (typeof DecodeVerdict)[keyof typeof DecodeVerdict];

export interface Encap {
  /** Name in configs and logs: udp, vxlan, geneve, ... */
  readonly name: string;
  /** BackendType this encap publishes in its lease, and accepts in peers' leases. */
  readonly backendType: string;
  readonly defaultPort: number;
  /** Bytes written in front of the inner IPv4 packet (must fit in the slab's headroom). */
  readonly headerLength: number;
  /** Underlay MTU minus TUN MTU: outer IPv4 (20) + UDP (8) + headerLength. */
  readonly mtuOverhead: number;
  /** ENCAP_* id of the native implementation, or null for a TypeScript-only encap. */
  readonly nativeId: number | null;
  /** BackendData published in this host's lease (flanneld's exact shape where flannel has the backend). */
  leaseData(local: LocalEncapInfo): unknown;
  /** Reads a peer's BackendData; a string is the reason the lease cannot be used. */
  parsePeer(backendData: unknown, local: LocalEncapInfo): PeerEncapInfo | string;
  /** Writes the header ending at `pktOff`; returns the offset where the datagram starts (pktOff - headerLength). */
  encode(buf: Buffer, pktOff: number, pktLen: number, peer: PeerEncapInfo, local: LocalEncapInfo): number;
  /**
   * Finds the inner packet in the datagram at buf[off, off+len): returns the inner offset and stores the inner length
   * in `out[0]`, or returns a negative DecodeVerdict.
   */
  decode(buf: Buffer, off: number, len: number, local: LocalEncapInfo, out: Int32Array): number;
}

export const OUTER_IP_UDP = 28;
export const NO_MAC = Buffer.alloc(6);
