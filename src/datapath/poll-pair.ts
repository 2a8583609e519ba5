// The event-loop side of a batched tier (the batch tier, and each offload queue): libuv polls the TUN fd and the UDP
// socket, and each wake-up moves a few batches so neither direction starves the other or the control plane.
import * as native from '../native.js';

/** What the wake-ups run. */
export interface PollPairIo {
  /** TUN -> socket; false when the socket filled up mid-batch. */
  outbound(): boolean;
  /** Sends what the full socket held back; true once all of it is out. */
  flush(): boolean;
  /** socket -> TUN. */
  inbound(): void;
}

export class PollPair {
  private readonly tunPoll: native.PollHandle;
  private readonly sockPoll: native.PollHandle;
  private closed = false;

  /** Once constructed the pair owns sockFd (close() closes it); if this throws, the caller still does. */
  constructor(
    tunFd: number,
    private readonly sockFd: number,
    private readonly io: PollPairIo,
  ) {
    this.tunPoll = native.pollStart(tunFd, native.READABLE, () => this.onTunReadable());
    try {
      this.sockPoll = native.pollStart(sockFd, native.READABLE, (events) => this.onSocket(events));
    } catch (e) {
      native.pollStop(this.tunPoll);
      throw e;
    }
  }

  /** Stops both polls and closes the socket. Safe to call twice. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    native.pollStop(this.tunPoll);
    native.pollStop(this.sockPoll);
    native.close(this.sockFd);
  }

  private onTunReadable(): void {
    if (!this.io.outbound()) this.pushBack(true);
  }

  private onSocket(events: number): void {
    if (events & native.WRITABLE && this.io.flush()) {
      this.pushBack(false);
      this.onTunReadable();
    }
    if (events & native.READABLE) this.io.inbound();
  }

  // The socket is full: stop reading TUN (the kernel queues or drops there, where TCP sees it) until it drains.
  private pushBack(on: boolean): void {
    if (this.closed) return;
    native.pollUpdate(this.tunPoll, on ? 0 : native.READABLE);
    native.pollUpdate(this.sockPoll, on ? native.READABLE | native.WRITABLE : native.READABLE);
  }
}
