// The event-loop side of a batched tier (the batch tier, and each offload queue): libuv polls the TUN fd and the UDP
// socket, and each wake-up moves a few batches so neither direction starves the other or the control plane.
//
// WEFT_SPIN_US (default 0, off): after a wake-up, keep polling both fds without sleeping for up to that many
// microseconds, so a reply that comes back within the window (a pod answering a packet just written to TUN) is
// forwarded without another sleep and wake-up. It never spins when nothing moved, so an idle daemon stays idle.
import * as native from '../native.js';

const TUN_RX = native.Counter.tun_rx_packets;
const UDP_RX = native.Counter.udp_rx_packets;
const WOKEN = native.Counter.poll_writable_wakeups;
const SPIN_MS = Math.max(0, Math.min(Number(process.env['WEFT_SPIN_US'] ?? 0) || 0, 1000)) / 1000;

/** What the wake-ups run. */
export interface PollPairIo {
  /** TUN -> socket; false when the socket filled up mid-batch. */
  outbound(): boolean;
  /** Sends what the full socket held back; true once all of it is out. */
  flush(): boolean;
  /** While held back: the socket that refused the send (native.SOCK_V4 or SOCK_V6; 0 for none). */
  refused(): number;
  /** socket -> TUN. */
  inbound(): void;
  /** Packets moved so far (any monotonic count): the spin stops when it does not change. */
  moved(): number;
}

export class PollPair {
  private readonly tunPoll: native.PollHandle;
  private readonly sockPoll: native.PollHandle;
  /** The queue's IPv6 socket, polled the same way (either socket may fill up; both wake the same directions). */
  private readonly sock6Poll: native.PollHandle | null = null;
  private closed = false;

  /**
   * Once constructed the pair owns sockFd and sock6Fd (close() closes them); if this throws, the caller still does.
   * counters: the queue's; each wake-up for a writable socket is counted there (poll_writable_wakeups).
   */
  constructor(
    tunFd: number,
    private readonly sockFd: number,
    private readonly io: PollPairIo,
    private readonly counters: Float64Array,
    private readonly sock6Fd = -1,
  ) {
    this.tunPoll = native.pollStart(tunFd, native.READABLE, () => this.onTunReadable());
    try {
      this.sockPoll = native.pollStart(sockFd, native.READABLE, (events) => this.onSocket(events));
    } catch (e) {
      native.pollStop(this.tunPoll);
      throw e;
    }
    if (sock6Fd < 0) return;
    try {
      this.sock6Poll = native.pollStart(sock6Fd, native.READABLE, (events) => this.onSocket(events));
    } catch (e) {
      native.pollStop(this.tunPoll);
      native.pollStop(this.sockPoll);
      throw e;
    }
  }

  /** Stops the polls and closes the sockets. Safe to call twice. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    native.pollStop(this.tunPoll);
    native.pollStop(this.sockPoll);
    native.close(this.sockFd);
    if (this.sock6Poll) {
      native.pollStop(this.sock6Poll);
      native.close(this.sock6Fd);
    }
  }

  private onTunReadable(): void {
    if (!this.io.outbound()) return this.pushBack(true);
    this.spin();
  }

  private onSocket(events: number): void {
    if (events & native.WRITABLE) {
      this.counters[WOKEN] = (this.counters[WOKEN] as number) + 1;
      if (this.io.flush()) {
        this.pushBack(false);
        this.onTunReadable();
      } else {
        this.pushBack(true); // the rest of the train may wait on the other socket now
      }
    }
    if (events & native.READABLE) {
      this.io.inbound();
      this.spin();
    }
  }

  // Poll both directions until SPIN_MS has passed without a packet.
  private spin(): void {
    if (SPIN_MS === 0 || this.closed) return;
    let seen = this.io.moved();
    let until = performance.now() + SPIN_MS;
    while (performance.now() < until) {
      if (!this.io.outbound()) return this.pushBack(true);
      this.io.inbound();
      const now = this.io.moved();
      if (now !== seen) {
        seen = now;
        until = performance.now() + SPIN_MS;
      }
    }
  }

  // A socket is full: stop reading TUN (the kernel queues or drops there, where TCP sees it) until it drains. Only
  // the socket that refused the send is polled for writable: the other one, idle, is always writable and would wake
  // the loop on every turn (a flush that sends nothing) until the full one drains. The train goes out in order, so
  // one socket at a time holds it back; after a flush that moved on to the other, the polls follow it.
  private pushBack(on: boolean): void {
    if (this.closed) return;
    const refused = on ? this.io.refused() : 0;
    // Nothing named (not expected while held back): poll both rather than wait for nothing.
    const wait = on && refused === 0 ? native.SOCK_V4 | native.SOCK_V6 : refused;
    native.pollUpdate(this.tunPoll, on ? 0 : native.READABLE);
    native.pollUpdate(this.sockPoll, native.READABLE | (wait & native.SOCK_V4 ? native.WRITABLE : 0));
    if (this.sock6Poll)
      native.pollUpdate(this.sock6Poll, native.READABLE | (wait & native.SOCK_V6 ? native.WRITABLE : 0));
  }
}

/** Packets in from TUN and from the socket: what `moved` counts for a queue's counters. */
export function moved(counters: Float64Array): number {
  return (counters[TUN_RX] as number) + (counters[UDP_RX] as number);
}
