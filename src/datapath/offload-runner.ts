// Drives one OffloadQueue from an event loop (the main thread's or a worker's) through a PollPair. Shared by
// offload-tier.ts (queue 0) and offload-worker.ts (queues 1..N-1), so every queue runs the same forwarding code.
import { readFileSync } from 'node:fs';
import * as native from '../native.js';
import { SOCKET_BUFFER_BYTES } from './batch-tier.js';
import type { OffloadPart, TunOffloads } from './offload-config.js';
import { OffloadQueue } from './offload-queue.js';
import type { PathState } from './path-state.js';
import { PollPair } from './poll-pair.js';

export interface RunnerSetup {
  readonly bindAddress: string;
  readonly port: number;
  /** SO_REUSEPORT: several queues share the port. */
  readonly reusePort: boolean;
  /** Queue 0 of several: attach the reuseport group's steering by inner flow (native.udpSteerByInnerFlow). */
  readonly steerQueues?: number;
  readonly mtu: number;
  readonly tun: TunOffloads;
  readonly disabled: ReadonlySet<OffloadPart>;
}

/** What one queue ended up with, for the log line at start. */
export interface QueueReport {
  readonly udpSegment: boolean;
  readonly udpGro: boolean;
  readonly gro: boolean;
}

export class QueueRunner {
  readonly queue: OffloadQueue;
  readonly report: QueueReport;
  private readonly polls: PollPair;

  constructor(path: PathState, setup: RunnerSetup) {
    const sockFd = native.udpOpen(setup.bindAddress, setup.port, SOCKET_BUFFER_BYTES, setup.reusePort);
    try {
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
      const queue = new OffloadQueue(path, sockFd, {
        mtu: setup.mtu,
        udpSegment: this.report.udpSegment,
        gro: this.report.gro,
      });
      this.queue = queue;
      this.polls = new PollPair(path.tunFd, sockFd, {
        outbound: () => queue.runOutbound(),
        flush: () => queue.flush(),
        inbound: () => queue.runInbound(),
      });
    } catch (e) {
      native.close(sockFd);
      throw e;
    }
  }

  /** UDP_SEGMENT still in use (false after the kernel refused it with EIO). */
  get udpSegmentOn(): boolean {
    return this.queue.sendState[0] === 1;
  }

  close(): void {
    this.polls.close();
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
