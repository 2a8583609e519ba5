// Lease policy over the etcd registry, after flannel's LocalManager, with its known weaknesses fixed:
// a lost create race is retried, a lost lease is re-acquired (flannel exits: flannel-io/flannel #904 and #1240),
// and an unreachable etcd is waited out (backoff 100 ms .. 5 s), never fatal.
//
// Acquire order: 1. a lease already carrying our PublicIP (reservations included: that is how an operator
// pins a host), 2. the previous subnet from subnet.env if free, 3. a random free subnet in [SubnetMin, SubnetMax].
// Keys without etcd lease are reservations: never allocated to another host, never deleted.
//
// Dual-stack (EnableIPv6) leases a pair, an IPv4 and an IPv6 subnet under one key, as flannel's LocalManager does:
// step 1 matches the PublicIP (the PublicIPv6 in an IPv6-only network, where every lease's PublicIP is 0.0.0.0) and
// requires both subnets to fit the config; steps 2 and 3 pick each family on its own (subnet.env's previous
// FLANNEL_SUBNET and FLANNEL_IPV6_SUBNET when free, else a random free one of that family).
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
import { type Lease, type LeaseAttrs, type LeaseEvent, isReservation, sameAttrs, sameSubnets } from './lease.js';
import type { EtcdRegistry, WatchHandle } from './registry.js';
import { type Subnet, formatIPv4, formatSubnet, nthSubnet, overlaps } from '../ip/subnet.js';
import { type Subnet6, formatIPv6, formatSubnet6, nthSubnet6, overlaps6, parseIPv6 } from '../ip/ipv6.js';
import { NO_IPV4, hasIPv4 } from '../ip/subnet-key.js';
import { randomBytes } from 'node:crypto';
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
  /** "0.0.0.0" in an IPv6-only network (flannel's zero IP4). */
  publicIP: string;
  /** Required when the network enables IPv6. */
  publicIPv6?: string | null;
  backendType: string;
  backendData?: unknown;
  backendV6Data?: unknown;
  previousSubnet?: Subnet | null;
  previousIPv6Subnet?: Subnet6 | null;
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

/** A uniform random number in [0, n), n > 0 (64 spare bits make the modulo's bias negligible). */
function randomBelow(n: bigint): bigint {
  const bytes = randomBytes(Math.ceil(n.toString(16).length / 2) + 8);
  return BigInt(`0x${bytes.toString('hex')}`) % n;
}

/** A lease's subnets as log fields: `subnet` (IPv4) and/or `ipv6Subnet`. */
function subnetFields(l: Pick<Lease, 'subnet' | 'ipv6Subnet'>): { subnet?: string; ipv6Subnet?: string } {
  const six = l.ipv6Subnet ?? null;
  return {
    ...(hasIPv4(l.subnet) ? { subnet: formatSubnet(l.subnet) } : {}),
    ...(six !== null ? { ipv6Subnet: formatSubnet6(six) } : {}),
  };
}

/** The families a network config leases, for messages: "10.5.0.0/16 /24" and/or "fc00::/48 /64". */
function describeNetwork(n: NetworkConfig): string {
  const parts: string[] = [];
  if (n.enableIPv4) parts.push(`${formatSubnet(n.network)} /${n.subnetLen}`);
  if (n.ipv6 !== null) parts.push(`${formatSubnet6(n.ipv6.network)} /${n.ipv6.subnetLen}`);
  return parts.join(' + ');
}

/** The same IPv6 address however written (flannel prints it canonically; a flag may not). */
function sameIPv6(a: string | null | undefined, b: string | null): boolean {
  const x = typeof a === 'string' ? parseIPv6(a) : null;
  const y = b === null ? null : parseIPv6(b);
  return x !== null && x === y;
}

export class LeaseManager {
  private readonly registry: EtcdRegistry;
  private readonly network: NetworkConfig;
  private readonly publicIP: string;
  private readonly publicIPv6: string | null;
  private readonly attrs: LeaseAttrs;
  private previousSubnet: Subnet | null;
  private previousIPv6Subnet: Subnet6 | null;
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
    // flannel writes the address it parsed, canonically: "fd00::11" whatever the flag said.
    const v6 = opts.publicIPv6 === undefined || opts.publicIPv6 === null ? null : parseIPv6(opts.publicIPv6);
    this.publicIPv6 = v6 === null ? null : formatIPv6(v6);
    if (opts.network.enableIPv6 && this.publicIPv6 === null) {
      throw new WeftError(
        'WEFT_ERR_LEASE',
        `the network enables IPv6 but PublicIPv6 ${String(opts.publicIPv6)} is none`,
      );
    }
    this.attrs = {
      PublicIP: opts.publicIP,
      PublicIPv6: this.publicIPv6,
      BackendType: opts.backendType,
      ...(opts.backendData !== undefined ? { BackendData: opts.backendData } : {}),
      ...(opts.backendV6Data !== undefined ? { BackendV6Data: opts.backendV6Data } : {}),
    };
    this.previousSubnet = opts.previousSubnet ?? null;
    this.previousIPv6Subnet = opts.previousIPv6Subnet ?? null;
    this.ttlSeconds = opts.ttlSeconds ?? 86400;
    const margin = (opts.renewMarginSeconds ?? 3600) * 1000;
    this.renewMarginMs = Math.min(margin, (this.ttlSeconds * 1000) / 2);
    this.raceRetries = opts.raceRetries ?? 32;
    this.followNetworkConfig = opts.followNetworkConfig ?? false;
    this.checkNetworkConfig = opts.checkNetworkConfig ?? parseNetworkConfig;
    this.log = opts.log.child({
      component: 'lease',
      publicIP: opts.publicIP,
      ...(this.publicIPv6 !== null ? { publicIPv6: this.publicIPv6 } : {}),
    });
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
        this.remember(l);
        this.stats.acquisitions++;
        return l;
      }
    }
    throw new WeftError(
      'WEFT_ERR_LEASE',
      `gave up acquiring a subnet in ${describeNetwork(this.network)} after ${this.raceRetries} lost races`,
    );
  }

  /** The lease's subnets become the previous ones: a re-acquire tries them first. */
  private remember(l: Lease): void {
    this.previousSubnet = hasIPv4(l.subnet) ? l.subnet : null;
    this.previousIPv6Subnet = l.ipv6Subnet ?? null;
  }

  private compatible(sn: Subnet): boolean {
    return (
      sn.prefixLen === this.network.subnetLen && sn.ip >= this.network.subnetMin && sn.ip <= this.network.subnetMax
    );
  }

  private compatible6(sn: Subnet6): boolean {
    const v6 = this.network.ipv6;
    return v6 !== null && sn.prefixLen === v6.subnetLen && sn.ip >= v6.subnetMin && sn.ip <= v6.subnetMax;
  }

  /** Both halves of a lease fit the config: each enabled family has a subnet in range, a disabled one has none. */
  private fits(l: Pick<Lease, 'subnet' | 'ipv6Subnet'>): boolean {
    const six = l.ipv6Subnet ?? null;
    const v4 = this.network.enableIPv4 ? this.compatible(l.subnet) : !hasIPv4(l.subnet);
    const v6 = this.network.enableIPv6 ? six !== null && this.compatible6(six) : six === null;
    return v4 && v6;
  }

  /** The lease is this host's: its PublicIP (an IPv6-only network: its PublicIPv6) is ours. */
  private carriesUs(attrs: LeaseAttrs): boolean {
    return this.network.enableIPv4 ? attrs.PublicIP === this.publicIP : sameIPv6(attrs.PublicIPv6, this.publicIPv6);
  }

  // Null: lost a race, try again with a fresh list.
  private async tryAcquire(attempt: number): Promise<Lease | null> {
    const { leases } = await this.registry.listLeases();

    // 1. reuse the lease that carries our PublicIP
    const deleted = new Set<string>();
    for (const l of leases.filter((x) => this.carriesUs(x.attrs))) {
      if (!this.fits(l)) {
        if (isReservation(l)) {
          this.log.warn(subnetFields(l), 'reservation for this PublicIP is outside the network config, ignoring it');
        } else {
          this.log.info(subnetFields(l), 'lease for this PublicIP is outside the network config, deleting it');
          // Its subnets are free again: the previous subnet (subnet.env) may be among them.
          if (await this.registry.deleteLease(l)) deleted.add(l.key);
        }
        continue;
      }
      if (isReservation(l)) {
        if (sameAttrs(l.attrs, this.attrs)) {
          this.log.info(subnetFields(l), 'using reservation for this PublicIP');
          return l;
        }
        const u = await this.registry.updateLease(l, this.attrs, this.ttlSeconds);
        this.log.info(
          { ...subnetFields(l), updated: u !== null },
          'using reservation for this PublicIP, attrs updated',
        );
        return u;
      }
      // Renew on reuse, as flannel does: the TTL restarts and attrs (e.g. a new VtepMAC) are written.
      const u = await this.registry.updateLease(l, this.attrs, this.ttlSeconds);
      if (u === null) {
        this.log.info(subnetFields(l), 'lease for this PublicIP vanished while reusing it, retrying');
        return null;
      }
      this.log.info(
        { ...subnetFields(l), attrsChanged: !sameAttrs(l.attrs, this.attrs) },
        'reusing lease that carries this PublicIP',
      );
      return u;
    }

    // 2. the previous subnets (subnet.env), if still free; 3. else random free ones, each family on its own
    const live = leases.filter((l) => !deleted.has(l.key));
    const subnet = this.network.enableIPv4 ? this.pickIPv4(live) : { pick: NO_IPV4, why: '' };
    const ipv6 = this.network.ipv6 !== null ? this.pickIPv6(live) : null;
    const created = await this.registry.createLease(subnet.pick, this.attrs, this.ttlSeconds, ipv6?.pick ?? null);
    const fields = subnetFields({ subnet: subnet.pick, ipv6Subnet: ipv6?.pick ?? null });
    if (created === null) {
      this.log.info({ ...fields, attempt }, 'lost the race for a subnet, retrying');
      return null;
    }
    const reason = [subnet.why, ipv6?.why ?? ''].filter((w) => w !== '').join('; ');
    this.log.info({ ...fields, reason, ttlSeconds: this.ttlSeconds }, 'acquired lease');
    return created;
  }

  /** The IPv4 subnet for a new lease: the previous one when it fits and is free, else a random free one. */
  private pickIPv4(leases: readonly Lease[]): { pick: Subnet; why: string } {
    // IPv6-only leases carry 0.0.0.0/0, which would overlap everything: they take no IPv4 subnet.
    const taken = leases.map((l) => l.subnet).filter(hasIPv4);
    // Leases of our SubnetLen clash only when equal: a set lookup, so picking among 65,536 candidates next to
    // thousands of leases stays linear. Other lengths (odd reservations) are checked for overlap.
    const sameLen = new Set<number>();
    const otherLen: Subnet[] = [];
    for (const t of taken) {
      if (t.prefixLen === this.network.subnetLen) sameLen.add(t.ip);
      else otherLen.push(t);
    }
    const free = (sn: Subnet): boolean => !sameLen.has(sn.ip) && !otherLen.some((t) => overlaps(t, sn));

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
        return { pick: prev, why: 'previous subnet' };
      }
    }
    const pick = this.randomFree(free);
    if (pick === null) {
      const inRange = taken.filter((t) => t.ip >= this.network.subnetMin && t.ip <= this.network.subnetMax).length;
      const reservations = leases.filter((l) => isReservation(l) && hasIPv4(l.subnet)).length;
      throw new NetworkExhaustedError(
        `no free /${this.network.subnetLen} left in ${formatSubnet(this.network.network)} ` +
          `[${formatIPv4(this.network.subnetMin)} .. ${formatIPv4(this.network.subnetMax)}]: ` +
          `${this.network.subnetCount} subnets, ${inRange} taken (${reservations} reservations)`,
      );
    }
    return { pick, why: 'random free subnet' };
  }

  /** The IPv6 subnet for a new lease, as pickIPv4 picks the IPv4 one. */
  private pickIPv6(leases: readonly Lease[]): { pick: Subnet6; why: string } {
    const v6 = this.network.ipv6;
    if (v6 === null) throw new WeftError('WEFT_ERR_LEASE', 'no IPv6 network to pick from');
    const taken = leases.map((l) => l.ipv6Subnet ?? null).filter((t): t is Subnet6 => t !== null);
    const sameLen = new Set<bigint>();
    const otherLen: Subnet6[] = [];
    for (const t of taken) {
      if (t.prefixLen === v6.subnetLen) sameLen.add(t.ip);
      else otherLen.push(t);
    }
    const free = (sn: Subnet6): boolean => !sameLen.has(sn.ip) && !otherLen.some((t) => overlaps6(t, sn));

    const prev = this.previousIPv6Subnet;
    if (prev !== null) {
      if (!this.compatible6(prev)) {
        this.log.warn(
          { ipv6Subnet: formatSubnet6(prev) },
          'previous IPv6 subnet is not compatible with the network config, ignoring it',
        );
      } else if (!free(prev)) {
        this.log.info({ ipv6Subnet: formatSubnet6(prev) }, 'previous IPv6 subnet is taken, picking another');
      } else {
        return { pick: prev, why: 'previous IPv6 subnet' };
      }
    }
    const pick = this.randomFree6(free);
    if (pick === null) {
      const inRange = taken.filter((t) => t.ip >= v6.subnetMin && t.ip <= v6.subnetMax).length;
      throw new NetworkExhaustedError(
        `no free /${v6.subnetLen} left in ${formatSubnet6(v6.network)} ` +
          `[${formatIPv6(v6.subnetMin)} .. ${formatIPv6(v6.subnetMax)}]: ` +
          `${v6.subnetCount} subnets, ${inRange} taken`,
      );
    }
    return { pick, why: 'random free IPv6 subnet' };
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

  private randomFree6(free: (sn: Subnet6) => boolean): Subnet6 | null {
    const v6 = this.network.ipv6;
    if (v6 === null) return null;
    const { subnetMin, subnetLen, subnetCount } = v6;
    if (subnetCount <= BigInt(ENUMERATE_LIMIT)) {
      const candidates: bigint[] = [];
      for (let i = 0n; i < subnetCount; i++) if (free(nthSubnet6(subnetMin, subnetLen, i))) candidates.push(i);
      if (candidates.length === 0) return null;
      return nthSubnet6(subnetMin, subnetLen, candidates[Math.floor(Math.random() * candidates.length)]!);
    }
    // An IPv6 range can hold 2^64 subnets: probe at random (a uniform index from 64 random bits at a time).
    for (let probe = 0; probe < 4096; probe++) {
      const sn = nthSubnet6(subnetMin, subnetLen, randomBelow(subnetCount));
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
    const now = leases.find((l) => sameSubnets(l, held));
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
        for (const ev of events) if (sameSubnets(ev.lease, held)) box.ev = ev;
        if (box.ev !== null) box.wake?.();
      },
      (err) => {
        box.err = err;
        box.wake?.();
      },
      held.key,
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
          this.log.info({ ...subnetFields(r), expiresAt: new Date(r.expiresAt ?? 0).toISOString() }, 'lease renewed');
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
    if (!this.carriesUs(now.attrs)) return false;
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
          { err: why, running: `${runningNetworks(this.network)} ${this.network.backend.Type}` },
          'network config in etcd cannot be run; keeping the one this daemon runs',
        );
      }
      this.configRefusedSaid = why;
      return true;
    }
    this.configRefusedSaid = null;
    const a = this.network;
    const [a6, n6] = [a.ipv6, now.ipv6];
    if (
      now.enableIPv4 !== a.enableIPv4 ||
      now.network.ip !== a.network.ip ||
      now.network.prefixLen !== a.network.prefixLen ||
      now.subnetLen !== a.subnetLen ||
      now.subnetMin !== a.subnetMin ||
      now.subnetMax !== a.subnetMax ||
      (a6 === null) !== (n6 === null) ||
      (a6 !== null &&
        n6 !== null &&
        (a6.network.ip !== n6.network.ip ||
          a6.network.prefixLen !== n6.network.prefixLen ||
          a6.subnetLen !== n6.subnetLen ||
          a6.subnetMin !== n6.subnetMin ||
          a6.subnetMax !== n6.subnetMax)) ||
      now.backend.Type !== a.backend.Type
    ) {
      throw new WeftError(
        'WEFT_ERR_NETWORK_CONFIG',
        `network config in etcd changed (${describeNetwork(a)} ${a.backend.Type} -> ` +
          `${describeNetwork(now)} ${now.backend.Type}): restart weft to apply it`,
      );
    }
    return true;
  }

  private lost(l: Lease, why: string): void {
    this.stats.losses++;
    this.log.warn({ ...subnetFields(l), reason: why }, 'lease lost, re-acquiring (same subnet if still free)');
    this.remember(l);
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
      { registry: this.registry, log: this.log, stats: this.stats, ownLease: () => this.current },
      onEvents,
    );
    return watch.run(signal, onListed);
  }
}

/** The networks a config runs, for a log line: "10.5.0.0/16", "fc00::/48" (IPv6-only) or both. */
function runningNetworks(n: NetworkConfig): string {
  const v4 = n.enableIPv4 ? [formatSubnet(n.network)] : [];
  const v6 = n.enableIPv6 && n.ipv6Network !== null ? [n.ipv6Network] : [];
  return [...v4, ...v6].join(' ');
}
