// The batch tier: recvmmsg/sendmmsg and batched TUN I/O through one native queue (queue.ts), packets encapsulated
// in place in its slab. Wires the two directions (outbound.ts, inbound.ts) to the event loop through a PollPair.
import * as native from '../native.js';
import type { Datapath, DatapathOptions } from './datapath.js';
import { TierBase } from './tier-base.js';
import { Inbound } from './inbound.js';
import { Outbound } from './outbound.js';
import { PathState } from './path-state.js';
import { moved, PollPair } from './poll-pair.js';
import { Queue } from './queue.js';
import { WireguardTransform } from './wireguard.js';

export const BATCH_SIZE = 64;
/** Batches per wake-up: bounds the time one direction holds the event loop. */
export const ROUNDS = 4;
/**
 * Socket buffers. With Linux's default 208 KiB receive buffer about 12 % of overlay datagrams were dropped at the
 * receiving socket in a two-namespace test (RcvbufErrors in /proc/net/snmp), and TCP retransmitted them.
 */
export const SOCKET_BUFFER_BYTES = 8 << 20;

export class BatchTier extends TierBase implements Datapath {
  readonly tier = 'batch' as const;
  private readonly polls: PollPair;
  private readonly queue: Queue;
  private readonly wireguard: WireguardTransform | null;

  constructor(opts: DatapathOptions) {
    super(new PathState(opts));
    const wg = opts.wireguard;
    this.wireguard = wg ? new WireguardTransform(wg, this.path, opts.tunMtu ?? 0, opts.log) : null;
    const sockFd = native.udpOpen(opts.bindAddress, opts.port, SOCKET_BUFFER_BYTES, false);
    // The IPv6 underlay: a second socket on our PublicIPv6, same port (WireGuard stays IPv4 for now).
    let sock6Fd = -1;
    try {
      if (opts.ipv6 && !wg) sock6Fd = native.udpOpen(opts.ipv6.bindAddress, opts.port, SOCKET_BUFFER_BYTES, false);
      this.queue = new Queue({
        tunFd: opts.tunFd,
        sockFd,
        ...(sock6Fd >= 0 && opts.ipv6 ? { sock6Fd, localMac6: opts.ipv6.local.mac } : {}),
        // WireGuard: no encap header; the transform frames each sealed message (out_off/out_len).
        encap: wg ? null : opts.encap.nativeId,
        vni: opts.local.vni,
        localMac: opts.local.mac,
        mtu: opts.tunMtu ?? 0,
        slots: BATCH_SIZE,
        vnet: false,
        gro: false,
        udpSegment: false,
        counters: this.path.counters,
        sourcePorts: wg !== undefined,
      });
    } catch (e) {
      native.close(sockFd);
      if (sock6Fd >= 0) native.close(sock6Fd);
      this.wireguard?.close();
      throw e;
    }
    this.wireguard?.attach(sockFd, this.queue);
    const outbound = new Outbound(this.path, this.queue, this.wireguard);
    const inbound = new Inbound(this.path, this.queue, this.wireguard);
    this.polls = new PollPair(
      opts.tunFd,
      sockFd,
      {
        outbound: () => outbound.run(ROUNDS),
        flush: () => outbound.flush(),
        refused: () => outbound.refused(),
        inbound: () => inbound.run(ROUNDS),
        moved: () => moved(this.path.counters),
      },
      this.path.counters,
      sock6Fd,
    );
  }

  override setPeers(peers: Parameters<TierBase['setPeers']>[0]): void {
    super.setPeers(peers);
    this.wireguard?.setPeers(peers);
  }

  extraCounters(): Record<string, number> {
    return this.wireguard?.counterValues() ?? {};
  }

  close(): void {
    this.polls.close();
    this.queue.close();
    this.wireguard?.close();
  }
}
