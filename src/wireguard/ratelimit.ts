// Per-source rate limit of handshake messages while under load (wireguard-go ratelimiter/ratelimiter.go): a token
// bucket per source IP of 20 messages per second with a burst of 5. Only sources that proved their address (a valid
// mac2, i.e. they received our cookie) reach it. Entries idle for a second are dropped, so a flood from many
// addresses costs memory for one second at most.

export const PACKETS_PER_SECOND = 20;
export const PACKETS_BURSTABLE = 5;
const PACKET_COST_MS = 1000 / PACKETS_PER_SECOND;
const MAX_TOKENS_MS = PACKET_COST_MS * PACKETS_BURSTABLE;
const GC_AFTER_MS = 1000;

interface Entry {
  tokens: number;
  last: number;
}

export class RateLimiter {
  readonly #table = new Map<string, Entry>();
  #lastGc = -Infinity;

  /** Whether a message from `address` may be processed now (and charge it). */
  allow(address: string, nowMs: number): boolean {
    if (nowMs - this.#lastGc >= GC_AFTER_MS) this.#gc(nowMs);
    const e = this.#table.get(address);
    if (!e) {
      this.#table.set(address, { tokens: MAX_TOKENS_MS - PACKET_COST_MS, last: nowMs });
      return true;
    }
    e.tokens = Math.min(MAX_TOKENS_MS, e.tokens + (nowMs - e.last));
    e.last = nowMs;
    if (e.tokens > PACKET_COST_MS) {
      e.tokens -= PACKET_COST_MS;
      return true;
    }
    return false;
  }

  get size(): number {
    return this.#table.size;
  }

  #gc(nowMs: number): void {
    this.#lastGc = nowMs;
    for (const [k, e] of this.#table) if (nowMs - e.last > GC_AFTER_MS) this.#table.delete(k);
  }
}
