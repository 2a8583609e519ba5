// The backend contract, in flannel's shape (pkg/backend: RegisterNetwork -> Network { Lease(), MTU(), Run(ctx) }).
// The daemon owns the lease; a backend turns our lease and the peers' leases into a forwarding path.
//
//   daemon                      backend
//   leaseData()   ─────────────> what to publish (BackendData, and BackendV6Data with EnableIPv6) before acquiring
//   start(lease)  ─────────────> set up devices for our subnet; called again after a re-acquire
//   peers(events) ─────────────> add/remove/change routes; called from the lease watch, any time after start
//   settled()     ─────────────> resolves once the peers given so far are in the forwarding path
//   stop()        ─────────────> remove what start made, except what keeps the node routable across a restart
import type { NetworkConfig } from '../config/network.js';
import type { DaemonConfig } from '../config/daemon.js';
import type { Lease, LeaseEvent } from '../lease/lease.js';
import type { Logger } from '../log.js';

/** The host's underlay: where other hosts reach us. */
export interface ExternalInterface {
  readonly name: string;
  readonly mtu: number;
  /** "0.0.0.0" in an IPv6-only network, as flannel writes it in the lease. */
  readonly publicIp: string;
  /** The interface's address (the public IP may be a NAT address). */
  readonly ifaceIp: string;
  /**
   * Address the overlay sockets send from: the public IP when the host has it (a secondary or floating address;
   * peers take datagrams only from a lease's PublicIP), else ifaceIp (the public IP is a NAT address).
   */
  readonly bindIp: string;
  /** With EnableIPv6: where other hosts reach us over IPv6 (the lease's PublicIPv6), else null. */
  readonly publicIpv6: string | null;
  /** With EnableIPv6: the interface's own global IPv6 address, which the VXLAN device sends from. */
  readonly ifaceIpv6: string | null;
}

export interface BackendContext {
  readonly network: NetworkConfig;
  readonly config: DaemonConfig;
  readonly external: ExternalInterface;
  readonly log: Logger;
}

export interface BackendStatus {
  readonly type: string;
  readonly datapath: string;
  readonly device: string;
  readonly peers: number;
  /** Peers whose PublicIP another peer's lease also names (userspace tiers; see RouteTable.senderOf). */
  readonly peersSharingPublicIp?: number;
  readonly counters: Record<string, number>;
  /** Per-peer inner traffic where the datapath counts it (userspace tiers): peers that exchanged packets. */
  readonly peerTraffic?: readonly {
    subnet: string;
    publicIp: string;
    txPackets: number;
    txBytes: number;
    rxPackets: number;
    rxBytes: number;
  }[];
  /** Packets per queue where there are several (offload tier, --queues > 1). */
  readonly queues?: readonly QueueStatus[];
}

export interface QueueStatus {
  readonly queue: number;
  readonly tunRxPackets: number;
  readonly udpTxPackets: number;
  readonly udpRxPackets: number;
  readonly tunTxPackets: number;
}

export interface Backend {
  /** BackendType written in our lease and expected in peers'. */
  readonly type: string;
  /** MTU of the overlay device: FLANNEL_MTU in subnet.env. */
  readonly mtu: number;
  /** Whether the forwarding path carries the network's IPv6 half (EnableIPv6). */
  readonly carriesIPv6: boolean;
  leaseData(): unknown;
  /** BackendV6Data for a lease with an IPv6 subnet; absent or undefined: the key is left out (host-gw). */
  leaseV6Data?(): unknown;
  start(lease: Lease): Promise<void>;
  peers(events: readonly LeaseEvent[]): void;
  /** Resolves once every peers() call so far has reached the forwarding path (peers() may batch its work). */
  settled(): Promise<void>;
  /** True while the datapath runs (for /healthz). */
  readonly running: boolean;
  status(): BackendStatus;
  stop(): Promise<void>;
}
