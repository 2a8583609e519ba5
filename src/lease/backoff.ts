// The retry delay of every etcd loop (the lease manager, the peer watch, the daemon at startup): 100 ms, doubling up
// to 5 s, back to 100 ms on success.

const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 5000;

export class Backoff {
  private ms = BACKOFF_MIN_MS;
  next(): number {
    const d = this.ms;
    this.ms = Math.min(this.ms * 2, BACKOFF_MAX_MS);
    return d;
  }
  reset(): void {
    this.ms = BACKOFF_MIN_MS;
  }
}
