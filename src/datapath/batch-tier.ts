// The batch tier: recvmmsg/sendmmsg and batched TUN I/O through the native addon, packets encapsulated in place in a
// pooled slab. Wires the two directions (outbound.ts, inbound.ts) to the event loop: libuv polls the TUN fd and the
// socket, and each wake-up moves at most a few batches so neither direction starves the other or the control plane.
import * as native from '../native.js';
import type { Datapath, DatapathOptions } from './datapath.js';
import { Inbound } from './inbound.js';
import { Outbound } from './outbound.js';
import { PathState } from './path-state.js';
import { buildPeerSnapshot, type Peer } from './peers.js';

export const BATCH_SIZE = 64;
/** Batches per wake-up: bounds the time one direction holds the event loop. */
const ROUNDS = 4;
/** Socket buffers: the default 208 KiB drops bursts (RcvbufErrors), see NOTES.md. */
export const SOCKET_BUFFER_BYTES = 8 << 20;

export class BatchTier implements Datapath {
  readonly tier = 'batch' as const;
  private readonly path: PathState;
  private readonly sockFd: number;
  private readonly outbound: Outbound;
  private readonly inbound: Inbound;
  private readonly tunPoll: native.PollHandle;
  private readonly sockPoll: native.PollHandle;
  private closed = false;

  constructor(opts: DatapathOptions) {
    this.path = new PathState(opts);
    this.sockFd = native.udpOpen(opts.bindAddress, opts.port, SOCKET_BUFFER_BYTES, false);
    this.outbound = new Outbound(this.path, this.sockFd, BATCH_SIZE);
    this.inbound = new Inbound(this.path, this.sockFd, BATCH_SIZE);
    this.tunPoll = native.pollStart(opts.tunFd, native.READABLE, () => this.onTunReadable());
    this.sockPoll = native.pollStart(this.sockFd, native.READABLE, (events) => this.onSocket(events));
  }

  get counters(): Float64Array {
    return this.path.counters;
  }

  setPeers(peers: readonly Peer[]): void {
    this.path.snapshot = buildPeerSnapshot(peers);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    native.pollStop(this.tunPoll);
    native.pollStop(this.sockPoll);
    native.close(this.sockFd);
  }

  private onTunReadable(): void {
    if (!this.outbound.run(ROUNDS)) this.pushBack(true);
  }

  private onSocket(events: number): void {
    if (events & native.WRITABLE && this.outbound.flush()) {
      this.pushBack(false);
      this.onTunReadable();
    }
    if (events & native.READABLE) this.inbound.run(ROUNDS);
  }

  // The socket is full: stop reading TUN (the kernel queues or drops there, where TCP sees it) until it drains.
  private pushBack(on: boolean): void {
    if (this.closed) return;
    native.pollUpdate(this.tunPoll, on ? 0 : native.READABLE);
    native.pollUpdate(this.sockPoll, on ? native.READABLE | native.WRITABLE : native.READABLE);
  }
}
