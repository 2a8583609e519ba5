// Lease policy over the etcd registry, after flannel's LocalManager, with its known weaknesses fixed:
// a lost create race is retried, a lost lease is re-acquired (flannel exits: flannel-io/flannel #904 and #1240),
// and an unreachable etcd is waited out (backoff 100 ms .. 5 s), never fatal.
//
// Acquire order: 1. a lease already carrying our PublicIP (reservations included: that is how an operator
// pins a host), 2. the previous subnet from subnet.env if free, 3. a random free subnet in [SubnetMin, SubnetMax].
// Keys without etcd lease are reservations: never allocated to another host, never deleted.
//
// With followNetworkConfig (the daemon's setting): when etcd comes back empty (restored or wiped), the network
// config is gone too, and the manager waits for it to reappear before re-acquiring, rather than leasing in a network
// nobody defines. If it reappears with another Network, SubnetLen, SubnetMin/SubnetMax or Backend.Type, run()
// rejects with WEFT_ERR_NETWORK_CONFIG: the daemon exits and its supervisor restarts it on the new config (devices
// and routes depend on it). A config the daemon cannot run (checkNetworkConfig refuses it) is logged once and the
// manager goes on with the config it has: exiting would take the host down, and a restart would refuse it anyway.
import { NetworkExhaustedError, EtcdCompactedError, WeftError, errorMessage } from '../errors.js';
import { type NetworkConfig, parseNetworkConfig } from '../config/network.js';
import type { Logger } from '../log.js';
import { type Lease, type LeaseAttrs, type LeaseEvent, isReservation, sameAttrs } from './lease.js';
import type { EtcdRegistry, WatchHandle } from './registry.js';
import { type Subnet, formatIPv4, formatSubnet, nthSubnet, overlaps, subnetEquals } from '../ip/subnet.js';
import { sleep } from '../util/sleep.js';
import { Backoff } from './backoff.js';
import { PeerWatch } from './peer-watch.js';

/** Control-plane events since start, for /metrics; all monotonic. */
export interface LeaseStats {
  /** etcd became reachable again after the lease loop saw it unreachable. */
  etcdReconnects: number;
  /** The lease loop found etcd unreachable (each outage counts once). */
  etcdOutages: number;
  /** Peer watch restarts after a disconnect or compaction. */
  watchRestarts: number;
  /** Successful acquisitions: the first one and each re-acquisition. */
  acquisitions: number;
  /** Our key was found gone or taken over. */
  losses: number;
  renewals: number;
  /** Peer lease events delivered to the datapath. */
  peerEvents: number;
}

export interface LeaseManagerOptions {
  registry: EtcdRegistry;
  network: NetworkConfig;
  publicIP: string;
  backendType: string;
  backendData?: unknown;
  previousSubnet?: Subnet | null;
  ttlSeconds?: number; // default 86400 (flannel's 24 h)
  renewMarginSeconds?: number; // default 3600; clamped to half the TTL
  raceRetries?: number; // default 32: one lost race per concurrent winner at worst
  /** Re-acquire only while `<prefix>/config` exists and describes our network (the daemon sets this). Default false. */
  followNetworkConfig?: boolean;
  /** How a config read from etcd is checked (the daemon's: backend options too). Default parseNetworkConfig. */
  checkNetworkConfig?: (json: string) => NetworkConfig;
  log: Logger;
}

// Above this many candidate subnets we probe at random instead of listing every free one.
const ENUMERATE_LIMIT = 65536;

function abortError(): WeftError {
  return new WeftError('WEFT_ERR_LEASE', 'aborted');
}

export class LeaseManager {
  private readonly registry: EtcdRegistry;
  private readonly network: NetworkConfig;
  private readonly publicIP: string;
  private readonly attrs: LeaseAttrs;
  private previousSubnet: Subnet | null;
  private readonly ttlSeconds: number;
  private readonly renewMarginMs: number;
  private readonly raceRetries: number;
  private readonly log: Logger;
  private current: Lease | null = null;
  private readonly leaseListeners = new Set<(l: Lease) => void>();
  private etcdOk = true;
  private configMissingSaid = false;
  /** The last refusal logged of a config in etcd we cannot run, so each is logged once. */
  private configRefusedSaid: string | null = null;
  private readonly followNetworkConfig: boolean;
  private readonly checkNetworkConfig: (json: string) => NetworkConfig;
  readonly stats: LeaseStats = {
    etcdReconnects: 0,
    etcdOutages: 0,
    watchRestarts: 0,
    acquisitions: 0,
    losses: 0,
    renewals: 0,
    peerEvents: 0,
  };

  constructor(opts: LeaseManagerOptions) {
    this.registry = opts.registry;
    this.network = opts.network;
    this.publicIP = opts.publicIP;
    this.attrs = {
      PublicIP: opts.publicIP,
      PublicIPv6: null,
      BackendType: opts.backendType,
      ...(opts.backendData !== undefined ? { BackendData: opts.backendData } : {}),
    };
    this.previousSubnet = opts.previousSubnet ?? null;
    this.ttlSeconds = opts.ttlSeconds ?? 86400;
    const margin = (opts.renewMarginSeconds ?? 3600) * 1000;
    this.renewMarginMs = Math.min(margin, (this.ttlSeconds * 1000) / 2);
    this.raceRetries = opts.raceRetries ?? 32;
    this.followNetworkConfig = opts.followNetworkConfig ?? false;
    this.checkNetworkConfig = opts.checkNetworkConfig ?? parseNetworkConfig;
    this.log = opts.log.child({ component: 'lease', publicIP: opts.publicIP });
  }

  /** The lease we hold, or null before the first acquire. */
  get lease(): Lease | null {
    return this.current;
  }

  /** Called with the new lease after a re-acquire (the subnet may differ). Returns an unsubscribe function. */
  onLease(cb: (l: Lease) => void): () => void {
    this.leaseListeners.add(cb);
    return () => this.leaseListeners.delete(cb);
  }

  // ---------------------------------------------------------------------------------------------------------------
  // acquire

  /** Gets a lease (see the order at the top). Throws NetworkExhaustedError, or WEFT_ERR_ETCD when etcd fails. */
  async acquire(signal?: AbortSignal): Promise<Lease> {
    for (let attempt = 1; attempt <= this.raceRetries; attempt++) {
      if (signal?.aborted === true) throw abortError();
      const l = await this.tryAcquire(attempt);
      if (l !== null) {
        this.current = l;
        this.previousSubnet = l.subnet;
        this.stats.acquisitions++;
        return l;
      }
    }
    throw new WeftError(
      'WEFT_ERR_LEASE',
      `gave up acquiring a subnet in ${formatSubnet(this.network.network)} after ${this.raceRetries} lost races`,
    );
  }

  private compatible(sn: Subnet): boolean {
    return (
      sn.prefixLen === this.network.subnetLen && sn.ip >= this.network.subnetMin && sn.ip <= this.network.subnetMax
    );
  }

  // Null: lost a race, try again with a fresh list.
  private async tryAcquire(attempt: number): Promise<Lease | null> {
    const { leases } = await this.registry.listLeases();

    // 1. reuse the lease that carries our PublicIP
    for (const l of leases.filter((x) => x.attrs.PublicIP === this.publicIP)) {
      if (!this.compatible(l.subnet)) {
        if (isReservation(l)) {
          this.log.warn(
            { subnet: formatSubnet(l.subnet) },
            'reservation for this PublicIP is outside the network config, ignoring it',
          );
        } else {
          this.log.info(
            { subnet: formatSubnet(l.subnet) },
            'lease for this PublicIP is outside the network config, deleting it',
          );
          await this.registry.deleteLease(l);
        }
        continue;
      }
      if (isReservation(l)) {
        if (sameAttrs(l.attrs, this.attrs)) {
          this.log.info({ subnet: formatSubnet(l.subnet) }, 'using reservation for this PublicIP');
          return l;
        }
        const u = await this.registry.updateLease(l, this.attrs, this.ttlSeconds);
        this.log.info(
          { subnet: formatSubnet(l.subnet), updated: u !== null },
          'using reservation for this PublicIP, attrs updated',
        );
        return u;
      }
      // Renew on reuse, as flannel does: the TTL restarts and attrs (e.g. a new VtepMAC) are written.
      const u = await this.registry.updateLease(l, this.attrs, this.ttlSeconds);
      if (u === null) {
        this.log.info(
          { subnet: formatSubnet(l.subnet) },
          'lease for this PublicIP vanished while reusing it, retrying',
        );
        return null;
      }
      this.log.info(
        { subnet: formatSubnet(l.subnet), attrsChanged: !sameAttrs(l.attrs, this.attrs) },
        'reusing lease that carries this PublicIP',
      );
      return u;
    }

    const taken = leases.map((l) => l.subnet);
    // Leases of our SubnetLen clash only when equal: a set lookup, so picking among 65,536 candidates next to
    // thousands of leases stays linear. Other lengths (odd reservations) are checked for overlap.
    const sameLen = new Set<number>();
    const otherLen: Subnet[] = [];
    for (const t of taken) {
      if (t.prefixLen === this.network.subnetLen) sameLen.add(t.ip);
      else otherLen.push(t);
    }
    const free = (sn: Subnet): boolean => !sameLen.has(sn.ip) && !otherLen.some((t) => overlaps(t, sn));

    // 2. the previous subnet (subnet.env), if still free
    let pick: Subnet | null = null;
    let why = '';
    const prev = this.previousSubnet;
    if (prev !== null) {
      if (!this.compatible(prev)) {
        this.log.warn(
          { subnet: formatSubnet(prev) },
          'previous subnet is not compatible with the network config, ignoring it',
        );
      } else if (!free(prev)) {
        this.log.info({ subnet: formatSubnet(prev) }, 'previous subnet is taken, picking another');
      } else {
        pick = prev;
        why = 'previous subnet';
      }
    }

    // 3. a random free subnet
    if (pick === null) {
      pick = this.randomFree(free);
      why = 'random free subnet';
      if (pick === null) {
        const inRange = taken.filter((t) => t.ip >= this.network.subnetMin && t.ip <= this.network.subnetMax).length;
        const reservations = leases.filter(isReservation).length;
        throw new NetworkExhaustedError(
          `no free /${this.network.subnetLen} left in ${formatSubnet(this.network.network)} ` +
            `[${formatIPv4(this.network.subnetMin)} .. ${formatIPv4(this.network.subnetMax)}]: ` +
            `${this.network.subnetCount} subnets, ${inRange} taken (${reservations} reservations)`,
        );
      }
    }

    const created = await this.registry.createLease(pick, this.attrs, this.ttlSeconds);
    if (created === null) {
      this.log.info({ subnet: formatSubnet(pick), attempt }, 'lost the race for a subnet, retrying');
      return null;
    }
    this.log.info({ subnet: formatSubnet(pick), reason: why, ttlSeconds: this.ttlSeconds }, 'acquired lease');
    return created;
  }

  private randomFree(free: (sn: Subnet) => boolean): Subnet | null {
    const { subnetMin, subnetLen, subnetCount } = this.network;
    if (subnetCount <= ENUMERATE_LIMIT) {
      const candidates: number[] = [];
      for (let i = 0; i < subnetCount; i++) {
        if (free(nthSubnet(subnetMin, subnetLen, i))) candidates.push(i);
      }
      if (candidates.length === 0) return null;
      return nthSubnet(subnetMin, subnetLen, candidates[Math.floor(Math.random() * candidates.length)]!);
    }
    // Huge ranges are mostly empty: random probes find a hole quickly.
    for (let probe = 0; probe < 4096; probe++) {
      const sn = nthSubnet(subnetMin, subnetLen, Math.floor(Math.random() * subnetCount));
      if (free(sn)) return sn;
    }
    return null;
  }

  // ---------------------------------------------------------------------------------------------------------------
  // run: keep the lease

  /**
   * Keeps the lease until `signal` aborts: renews it `renewMargin` before expiry, watches its key, and re-acquires
   * (the same subnet when still free) when the key disappears, emitting the new lease through onLease.
   * Never throws for etcd trouble; resolves on abort.
   */
  async run(signal: AbortSignal): Promise<void> {
    const backoff = new Backoff();
    while (!signal.aborted) {
      try {
        if (this.current === null) {
          if (this.followNetworkConfig && !(await this.networkConfigPresent())) {
            this.etcdBack();
            await sleep(backoff.next(), signal);
            continue;
          }
          const l = await this.acquire(signal);
          this.etcdBack();
          this.emitLease(l);
        }
        await this.keep(signal);
        backoff.reset();
      } catch (e) {
        if (signal.aborted) break;
        if (e instanceof WeftError && e.code === 'WEFT_ERR_NETWORK_CONFIG') throw e;
        if (e instanceof WeftError && e.code === 'WEFT_ERR_ETCD') {
          this.etcdDown(e);
        } else {
          // Exhausted or too many races: someone may free a subnet; keep trying, loudly.
          this.log.error(
            { err: errorMessage(e), code: e instanceof WeftError ? e.code : undefined },
            'lease acquire failed, retrying',
          );
        }
        await sleep(backoff.next(), signal);
      }
    }
  }

  // Returns when the lease was lost (this.current = null) or the watch broke; throws on etcd errors.
  private async keep(signal: AbortSignal): Promise<void> {
    const held = this.current;
    if (held === null) return;
    const { leases, revision } = await this.registry.listLeases();
    this.etcdBack();
    const now = leases.find((l) => subnetEquals(l.subnet, held.subnet));
    if (!this.stillOurs(held, now)) {
      this.lost(held, 'lease key is gone or taken over');
      return;
    }
    this.current = now;
    let lease: Lease = now;

    // Wake-ups from the watch: our key changed, or the watch ended.
    const box: { ev: LeaseEvent | null; err: WeftError | null; wake: (() => void) | null } = {
      ev: null,
      err: null,
      wake: null,
    };
    const handle: WatchHandle = this.registry.watchLeases(
      (BigInt(revision) + 1n).toString(),
      (events) => {
        for (const ev of events) if (subnetEquals(ev.lease.subnet, held.subnet)) box.ev = ev;
        if (box.ev !== null) box.wake?.();
      },
      (err) => {
        box.err = err;
        box.wake?.();
      },
      held.subnet,
    );
    try {
      for (;;) {
        if (signal.aborted) return;
        const renewIn = isReservation(lease)
          ? Number.POSITIVE_INFINITY
          : (lease.expiresAt ?? 0) - this.renewMarginMs - Date.now();
        if (renewIn <= 0) {
          const r = await this.registry.renewLease(lease, this.ttlSeconds);
          if (r === null) {
            this.lost(lease, 'renewal found the key gone or taken over');
            return;
          }
          lease = r;
          this.current = r;
          this.stats.renewals++;
          this.log.info(
            { subnet: formatSubnet(r.subnet), expiresAt: new Date(r.expiresAt ?? 0).toISOString() },
            'lease renewed',
          );
          continue;
        }
        if (box.ev === null && box.err === null) {
          await new Promise<void>((resolve) => {
            const t = Number.isFinite(renewIn) ? setTimeout(done, Math.min(renewIn, 2 ** 31 - 1)) : null;
            signal.addEventListener('abort', done, { once: true });
            box.wake = done;
            function done(): void {
              if (t !== null) clearTimeout(t);
              signal.removeEventListener('abort', done);
              resolve();
            }
          });
          box.wake = null;
        }
        const ev = box.ev;
        box.ev = null;
        if (ev !== null) {
          if (ev.type === 'removed') {
            this.lost(lease, 'lease key was deleted or expired');
            return;
          }
          if (!this.stillOurs(lease, ev.lease)) {
            this.lost(lease, 'lease key now carries another host');
            return;
          }
          // Our own renewal, or another instance with our PublicIP: follow the key (keep a known expiry when the
          // watch could not resolve the TTL).
          lease =
            ev.lease.etcdLeaseId === lease.etcdLeaseId && ev.lease.expiresAt === null
              ? { ...ev.lease, expiresAt: lease.expiresAt }
              : ev.lease;
          this.current = lease;
        }
        if (box.err !== null) {
          if (box.err instanceof EtcdCompactedError) {
            this.log.info('lease watch fell behind compaction, re-reading');
            return;
          }
          throw box.err;
        }
      }
    } finally {
      await handle.cancel();
    }
  }

  private stillOurs(held: Lease, now: Lease | undefined): now is Lease {
    if (now === undefined) return false;
    if (now.attrs.PublicIP !== this.publicIP) return false;
    return isReservation(held) ? isReservation(now) : true;
  }

  /**
   * False while `<prefix>/config` is missing (etcd restored empty); throws WEFT_ERR_NETWORK_CONFIG when it came back
   * describing another network than the one this daemon was set up for. True, logged once, for a config we cannot
   * run: we go on with ours.
   */
  private async networkConfigPresent(): Promise<boolean> {
    const json = await this.registry.getNetworkConfig();
    if (json === null) {
      if (!this.configMissingSaid)
        this.log.warn(
          { key: `${this.registry.prefix}/config` },
          'network config is gone from etcd; waiting for it before re-acquiring',
        );
      this.configMissingSaid = true;
      return false;
    }
    if (this.configMissingSaid) this.log.info('network config is back');
    this.configMissingSaid = false;
    let now: NetworkConfig;
    try {
      now = this.checkNetworkConfig(json);
    } catch (e) {
      // Written past `weft network set` (etcdctl) or mid-edit: keep forwarding and leasing on the config we run.
      const why = errorMessage(e);
      if (this.configRefusedSaid !== why) {
        this.log.error(
          { err: why, running: `${formatSubnet(this.network.network)} ${this.network.backend.Type}` },
          'network config in etcd cannot be run; keeping the one this daemon runs',
        );
      }
      this.configRefusedSaid = why;
      return true;
    }
    this.configRefusedSaid = null;
    const a = this.network;
    if (
      now.network.ip !== a.network.ip ||
      now.network.prefixLen !== a.network.prefixLen ||
      now.subnetLen !== a.subnetLen ||
      now.subnetMin !== a.subnetMin ||
      now.subnetMax !== a.subnetMax ||
      now.backend.Type !== a.backend.Type
    ) {
      throw new WeftError(
        'WEFT_ERR_NETWORK_CONFIG',
        `network config in etcd changed (${formatSubnet(a.network)} /${a.subnetLen} ${a.backend.Type} -> ` +
          `${formatSubnet(now.network)} /${now.subnetLen} ${now.backend.Type}): restart weft to apply it`,
      );
    }
    return true;
  }

  private lost(l: Lease, why: string): void {
    this.stats.losses++;
    this.log.warn(
      { subnet: formatSubnet(l.subnet), reason: why },
      'lease lost, re-acquiring (same subnet if still free)',
    );
    this.previousSubnet = l.subnet;
    this.current = null;
  }

  private emitLease(l: Lease): void {
    for (const cb of this.leaseListeners) {
      try {
        cb(l);
      } catch (e) {
        this.log.error({ err: errorMessage(e) }, 'onLease listener threw');
      }
    }
  }

  private etcdDown(e: unknown): void {
    if (!this.etcdOk) return;
    this.etcdOk = false;
    this.stats.etcdOutages++;
    this.log.warn({ err: errorMessage(e) }, 'etcd unreachable, retrying with backoff');
  }

  private etcdBack(): void {
    if (this.etcdOk) return;
    this.etcdOk = true;
    this.stats.etcdReconnects++;
    this.log.info('etcd reachable again');
  }

  // ---------------------------------------------------------------------------------------------------------------
  // watchPeers

  /** Delivers other hosts' leases until `signal` aborts (peer-watch.ts); `onListed` after the first listing. */
  watchPeers(signal: AbortSignal, onEvents: (events: LeaseEvent[]) => void, onListed?: () => void): Promise<void> {
    const watch = new PeerWatch(
      { registry: this.registry, log: this.log, stats: this.stats, ownSubnet: () => this.current?.subnet ?? null },
      onEvents,
    );
    return watch.run(signal, onListed);
  }
}
