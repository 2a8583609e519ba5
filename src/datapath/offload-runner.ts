// Drives one offload queue from an event loop (the main thread's or a worker's) through a PollPair: the same
// forwarder as the batch tier (outbound.ts, inbound.ts) over a queue whose TUN carries a virtio header. Shared by
// offload-tier.ts (queue 0) and offload-worker.ts (queues 1..N-1), so every queue runs the same forwarding code.
import { readFileSync } from 'node:fs';
import { WeftError } from '../errors.js';
import * as native from '../native.js';
import { ROUNDS, SOCKET_BUFFER_BYTES } from './batch-tier.js';
import { Inbound } from './inbound.js';
import type { OffloadPart, TunOffloads } from './offload-config.js';
import { Outbound } from './outbound.js';
import type { PathState } from './path-state.js';
import { moved, PollPair } from './poll-pair.js';
import { Queue } from './queue.js';
import type { WireguardTransform } from './wireguard.js';

/** What WireGuard adds to a segment at most: header and tag (32) and padding to 16 (15). */
const WG_SEG_OVERHEAD = 47;

/** Super-packets per TUN batch and GRO buffers per receive batch. */
export const OFFLOAD_BATCH = 32;

export interface RunnerSetup {
  readonly bindAddress: string;
  /** Our PublicIPv6 and IPv6 VtepMAC: the queue's IPv6 socket binds there (absent: no inner IPv6). */
  readonly ipv6?: { readonly bindAddress: string; readonly mac: Buffer };
  readonly port: number;
  /** SO_REUSEPORT: several queues share the port. */
  readonly reusePort: boolean;
  /** Queue 0 of several: attach the reuseport group's steering by inner flow (native.udpSteerByInnerFlow). */
  readonly steerQueues?: number;
  readonly mtu: number;
  readonly tun: TunOffloads;
  readonly disabled: ReadonlySet<OffloadPart>;
  /** Seal and open with WireGuard (queue 0 only: the device's session table is not shared with workers). */
  readonly wireguard?: WireguardTransform | null;
}

/** What one queue ended up with, for the log line at start. */
export interface QueueReport {
  readonly udpSegment: boolean;
  readonly udpGro: boolean;
  readonly gro: boolean;
}

export class QueueRunner {
  readonly queue: Queue;
  readonly report: QueueReport;
  /** The queue's socket (closed by close()). */
  readonly sockFd: number;
  private readonly polls: PollPair;

  constructor(path: PathState, setup: RunnerSetup) {
    const sockFd = native.udpOpen(setup.bindAddress, setup.port, SOCKET_BUFFER_BYTES, setup.reusePort);
    this.sockFd = sockFd;
    let sock6Fd = -1;
    try {
      if (setup.ipv6 && !setup.wireguard) {
        sock6Fd = native.udpOpen(setup.ipv6.bindAddress, setup.port, SOCKET_BUFFER_BYTES, setup.reusePort);
        native.udpOffload(sock6Fd, !setup.disabled.has('udp_gro'));
      }
      if (setup.steerQueues !== undefined && setup.steerQueues > 1) {
        native.udpSteerByInnerFlow(
          sockFd,
          path.encap.headerLength,
          path.encap.nativeId === native.ENCAP_GENEVE,
          setup.steerQueues,
        );
      }
      const udp = native.udpOffload(sockFd, !setup.disabled.has('udp_gro'));
      // Coalescing writes GSO packets to TUN, which the kernel only takes once TSO is negotiated on it.
      this.report = {
        udpSegment: udp.segment && !setup.disabled.has('udp_segment'),
        udpGro: udp.gro,
        gro: setup.tun.tso && !setup.disabled.has('gro'),
      };
      if (path.encap.nativeId === null) {
        throw new WeftError('WEFT_ERR_BACKEND', `encap ${path.encap.name} has no native codec`);
      }
      this.queue = new Queue({
        tunFd: path.tunFd,
        sockFd,
        ...(sock6Fd >= 0 && setup.ipv6 ? { sock6Fd, localMac6: setup.ipv6.mac } : {}),
        encap: path.encap.nativeId,
        vni: path.local.vni,
        localMac: path.local.mac,
        mtu: setup.mtu,
        slots: OFFLOAD_BATCH,
        vnet: true,
        gro: this.report.gro,
        udpSegment: this.report.udpSegment,
        counters: path.counters,
        ...(setup.wireguard ? { sourcePorts: true, segOverhead: WG_SEG_OVERHEAD } : {}),
      });
      const wg = setup.wireguard ?? null;
      wg?.attach(sockFd, this.queue);
      const outbound = new Outbound(path, this.queue, wg);
      const inbound = new Inbound(path, this.queue, wg);
      this.polls = new PollPair(
        path.tunFd,
        sockFd,
        {
          outbound: () => outbound.run(ROUNDS),
          flush: () => outbound.flush(),
          refused: () => outbound.refused(),
          inbound: () => inbound.run(ROUNDS),
          moved: () => moved(path.counters),
        },
        path.counters,
        sock6Fd,
      );
    } catch (e) {
      native.close(sockFd);
      if (sock6Fd >= 0) native.close(sock6Fd);
      throw e;
    }
  }

  /** UDP_SEGMENT still in use (false after the kernel refused it with EIO). */
  get udpSegmentOn(): boolean {
    return this.queue.udpSegmentOn;
  }

  close(): void {
    this.polls.close();
    this.queue.close();
  }
}

/** The TUN MTU from sysfs (set by the backend before the datapath opens); 1500 if unreadable. */
export function tunMtu(name: string): number {
  try {
    const v = Number(readFileSync(`/sys/class/net/${name}/mtu`, 'utf8').trim());
    return Number.isInteger(v) && v >= 68 ? v : 1500;
  } catch {
    return 1500;
  }
}
