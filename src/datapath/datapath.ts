// The datapath contract: what a backend hands a tier and what it gets back. A tier moves packets between one TUN
// device and one UDP socket; the backend owns the lease, the device's address and the peer list.
import type { Encap, LocalEncapInfo } from '../encap/encap.js';
import type { Subnet6 } from '../ip/ipv6.js';
import type { Logger } from '../log.js';
import type { Peer } from './peers.js';
import type { PresharedKey, PrivateKey } from '../wireguard/keys.js';

/** Inner packets and bytes exchanged with one peer (a super-packet counts once on the offload tier). */
export interface PeerTraffic {
  readonly net: number;
  readonly prefixLen: number;
  readonly publicIp: number;
  readonly txPackets: number;
  readonly txBytes: number;
  readonly rxPackets: number;
  readonly rxBytes: number;
}

/** What a datapath needs to run WireGuard: this host's key and the options every peer shares. */
export interface WireguardDatapathOptions {
  readonly privateKey: PrivateKey;
  readonly presharedKey: PresharedKey | null;
  readonly persistentKeepaliveSeconds: number;
}

export type Tier = 'dgram' | 'batch' | 'offload';

/** The IPv6 half of a dual-stack datapath: inner IPv6 between PublicIPv6 addresses, as flannel sends it. */
export interface DatapathIpv6 {
  /** Where the IPv6 socket binds: this host's PublicIPv6 (the backend's port, as the IPv4 socket). */
  readonly bindAddress: string;
  /** IPv6Network: a destination inside it with no lease gets ICMPv6 no-route. */
  readonly network: Subnet6;
  /** Source of the ICMPv6 errors weft writes back to TUN (the TUN device's IPv6 address). */
  readonly gateway: bigint;
  /** Our IPv6 half's encap data (its own VtepMAC, as flannel-v6.<VNI> has). */
  readonly local: LocalEncapInfo;
}

export interface DatapathOptions {
  /** TUN device, already opened, addressed and up. */
  readonly tunFd: number;
  readonly encap: Encap;
  readonly local: LocalEncapInfo;
  /** Where the UDP socket binds: this host's PublicIP (or 0.0.0.0) and the backend's port. */
  readonly bindAddress: string;
  readonly port: number;
  /** The overlay Network: a destination inside it with no lease gets ICMP net-unreachable, as flannel does. */
  readonly networkIp: number; // uint32
  readonly networkPrefixLen: number;
  /** Source address of the ICMP errors weft writes back to TUN (the TUN device's own address). */
  readonly gatewayIp: number; // uint32
  readonly log: Logger;
  /** The TUN device's MTU. The batch and dgram tiers cut a received packet longer than this (a kernel VXLAN peer's
   *  TCP burst) into TCP segments before writing it to TUN; absent or 0 = no limit. */
  readonly tunMtu?: number;
  /** Offload tier: TUN queues and sockets, one worker each (default 1). The TUN must then be multi-queue. */
  readonly queues?: number;
  /** Seal and open every packet with WireGuard (the batch tier; the encap is then unused on the wire). */
  readonly wireguard?: WireguardDatapathOptions;
  /** Inner IPv6 too (dual-stack network, a PublicIPv6 here); absent: IPv6 packets are no_route drops. The offload
   *  tier asks the TUN for TSO6 only then, so a v4-only overlay never gets IPv6 TCP super-packets. */
  readonly ipv6?: DatapathIpv6;
}

export interface Datapath {
  readonly tier: Tier;
  /** Counters named by `counterNames` of the native module; C and JS add to the same array. */
  readonly counters: Float64Array;
  /** Replaces the peer set; takes effect from the next batch. */
  setPeers(peers: readonly Peer[]): void;
  /**
   * Inner packets and bytes per current peer (offload tier: every queue; the worker queues' share lags by up to
   * 1 s).
   */
  peerTraffic(): PeerTraffic[];
  /** Offload tier with --queues > 1: each queue's own counters, to see how the kernel spread the flows. */
  queueCounters?(): readonly Float64Array[];
  /** Why the tier stopped forwarding on some queue (a worker that kept dying), or null: /healthz fails then. */
  failure?(): string | null;
  /** Counters beyond the datapath's own array (WireGuard: transport verdicts and handshakes), by name. */
  extraCounters?(): Record<string, number>;
  /** Stops polling and closes the socket. The TUN fd stays the caller's. Safe to call twice. */
  close(): void;
}
