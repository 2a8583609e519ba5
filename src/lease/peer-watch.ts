// The peer watch: other hosts' leases, delivered to the datapath as events. It lists the subnets once, watches from
// the listing's revision + 1, and after a disconnect or a compaction lists again and delivers only the difference, so
// the consumer converges whatever it missed. Renewals that change nothing but the etcd lease are not delivered;
// the host's own subnet never is.
import { EtcdCompactedError, type WeftError, errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { sleep } from '../util/sleep.js';
import { Backoff } from './backoff.js';
import { type Lease, type LeaseEvent, isReservation, sameAttrs, sameSubnets } from './lease.js';
import type { EtcdRegistry } from './registry.js';

export interface PeerWatchOptions {
  registry: EtcdRegistry;
  log: Logger;
  /** Counted here (the lease manager's stats): events delivered, and interruptions. */
  stats: { peerEvents: number; watchRestarts: number };
  /** The host's own lease, read at every event (it may change with a re-acquire); null before the first lease. */
  ownLease: () => Pick<Lease, 'subnet' | 'ipv6Subnet'> | null;
}

/** Whether a consumer that knows `old` must hear about `now`: a new lease, other attributes, or a reservation flip. */
function changed(old: Lease | undefined, now: Lease): boolean {
  return old === undefined || !sameAttrs(old.attrs, now.attrs) || isReservation(old) !== isReservation(now);
}

export class PeerWatch {
  /** What the consumer has, by key. */
  private readonly known = new Map<string, Lease>();

  constructor(
    private readonly opts: PeerWatchOptions,
    private readonly onEvents: (events: LeaseEvent[]) => void,
  ) {}

  /**
   * Delivers until `signal` aborts: first one batch of 'added' for every current lease (reservations included,
   * recognisable by etcdLeaseId === null), then changes as they happen. `onListed` is called once, after the first
   * listing was delivered (even when it held no peers).
   */
  async run(signal: AbortSignal, onListed?: () => void): Promise<void> {
    const backoff = new Backoff();
    let interrupted = false;
    while (!signal.aborted) {
      try {
        const { leases, revision } = await this.opts.registry.listLeases();
        if (interrupted) this.opts.log.info({ peers: leases.length }, 'peer watch re-listed after an interruption');
        interrupted = false;
        backoff.reset();
        this.deliver(this.difference(leases));
        onListed?.();
        onListed = undefined;
        const err = await this.follow(revision, signal);
        if (err === null || signal.aborted) break;
        if (err instanceof EtcdCompactedError) {
          this.opts.log.warn('peer watch fell behind compaction, re-listing');
          continue;
        }
        throw err;
      } catch (e) {
        if (signal.aborted) break;
        if (!interrupted) {
          this.opts.log.warn({ err: errorMessage(e) }, 'peer watch interrupted, re-listing with backoff');
          this.opts.stats.watchRestarts++;
        }
        interrupted = true;
        await sleep(backoff.next(), signal);
      }
    }
  }

  /** Takes a listing into what the consumer has; returns the difference as events. */
  private difference(leases: readonly Lease[]): LeaseEvent[] {
    const batch: LeaseEvent[] = [];
    const seen = new Set<string>();
    for (const l of leases) {
      if (this.isOwn(l)) continue;
      seen.add(l.key);
      if (changed(this.known.get(l.key), l)) batch.push({ type: 'added', lease: l });
      this.known.set(l.key, l);
    }
    for (const [key, old] of this.known) {
      if (!seen.has(key)) {
        this.known.delete(key);
        batch.push({ type: 'removed', lease: old });
      }
    }
    return batch;
  }

  /**
   * Watches from `revision` + 1 until the watch fails (resolves with its error) or `signal` aborts (null). The signal
   * outlives every watch, so the one listener a watch adds to it goes when the watch ends: a listener left behind
   * would hold the old watch, one more per etcd outage or compaction.
   */
  private follow(revision: string, signal: AbortSignal): Promise<WeftError | null> {
    return new Promise<WeftError | null>((resolve) => {
      if (signal.aborted) return resolve(null);
      const end = (err: WeftError | null): void => {
        signal.removeEventListener('abort', onAbort);
        void handle.cancel();
        resolve(err);
      };
      const onAbort = (): void => end(null);
      // The registry reports errors asynchronously, so `handle` is set before `end` can run.
      const handle = this.opts.registry.watchLeases(
        (BigInt(revision) + 1n).toString(),
        (events) => this.deliver(this.apply(events)),
        end,
      );
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Takes watch events into what the consumer has; returns those it must hear about. */
  private apply(events: readonly LeaseEvent[]): LeaseEvent[] {
    const out: LeaseEvent[] = [];
    for (const ev of events) {
      if (this.isOwn(ev.lease)) {
        this.known.delete(ev.lease.key);
        continue;
      }
      const old = this.known.get(ev.lease.key);
      if (ev.type === 'removed') {
        if (old !== undefined) {
          this.known.delete(ev.lease.key);
          out.push({ type: 'removed', lease: old });
        }
      } else {
        this.known.set(ev.lease.key, ev.lease);
        if (changed(old, ev.lease)) out.push(ev);
      }
    }
    return out;
  }

  private deliver(events: LeaseEvent[]): void {
    if (events.length === 0) return;
    this.opts.stats.peerEvents += events.length;
    try {
      this.onEvents(events);
    } catch (e) {
      this.opts.log.error({ err: errorMessage(e) }, 'watchPeers consumer threw');
    }
  }

  private isOwn(l: Lease): boolean {
    const own = this.opts.ownLease();
    return own !== null && sameSubnets(own, l);
  }
}
