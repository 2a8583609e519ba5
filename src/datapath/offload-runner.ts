// Drives one OffloadQueue from an event loop (the main thread's or a worker's): libuv polls the TUN queue and the
// socket; each wake-up moves a few batches so neither direction starves the other. Shared by offload-tier.ts
// (queue 0) and offload-worker.ts (queues 1..N-1), so every queue runs the same forwarding code.
import { readFileSync } from 'node:fs';
import * as native from '../native.js';
import { SOCKET_BUFFER_BYTES } from './batch-tier.js';
import type { OffloadPart, TunOffloads } from './offload-config.js';
import { OffloadQueue } from './offload-queue.js';
import type { PathState } from './path-state.js';

export interface RunnerSetup {
  readonly bindAddress: string;
  readonly port: number;
  /** SO_REUSEPORT: several queues share the port, the kernel spreads senders' 4-tuples over them. */
  readonly reusePort: boolean;
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
  private readonly sockFd: number;
  private readonly tunPoll: native.PollHandle;
  private readonly sockPoll: native.PollHandle;
  private closed = false;

  constructor(path: PathState, setup: RunnerSetup) {
    this.sockFd = native.udpOpen(setup.bindAddress, setup.port, SOCKET_BUFFER_BYTES, setup.reusePort);
    try {
      const udp = native.udpOffload(this.sockFd, !setup.disabled.has('udp_gro'));
      // Coalescing writes GSO packets to TUN, which the kernel only takes once TSO is negotiated on it.
      this.report = {
        udpSegment: udp.segment && !setup.disabled.has('udp_segment'),
        udpGro: udp.gro,
        gro: setup.tun.tso && !setup.disabled.has('gro'),
      };
      this.queue = new OffloadQueue(path, this.sockFd, { mtu: setup.mtu, udpSegment: this.report.udpSegment, gro: this.report.gro });
      this.tunPoll = native.pollStart(path.tunFd, native.READABLE, () => this.onTunReadable());
    } catch (e) {
      native.close(this.sockFd);
      throw e;
    }
    this.sockPoll = native.pollStart(this.sockFd, native.READABLE, (events) => this.onSocket(events));
  }

  /** UDP_SEGMENT still in use (false after the kernel refused it with EIO). */
  get udpSegmentOn(): boolean {
    return this.queue.sendState[0] === 1;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    native.pollStop(this.tunPoll);
    native.pollStop(this.sockPoll);
    native.close(this.sockFd);
  }

  private onTunReadable(): void {
    if (!this.queue.runOutbound()) this.pushBack(true);
  }

  private onSocket(events: number): void {
    if (events & native.WRITABLE && this.queue.flush()) {
      this.pushBack(false);
      this.onTunReadable();
    }
    if (events & native.READABLE) this.queue.runInbound();
  }

  private pushBack(on: boolean): void {
    if (this.closed) return;
    native.pollUpdate(this.tunPoll, on ? 0 : native.READABLE);
    native.pollUpdate(this.sockPoll, on ? native.READABLE | native.WRITABLE : native.READABLE);
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
