// Storage of flannel's network state in etcd v3: the config key and one key per subnet lease.
// No policy here (that is manager.ts); every call is bounded in time and fails as WeftError WEFT_ERR_ETCD.
//
// Layout (flannel pkg/subnet/etcd/registry.go):
//   <prefix>/config                 network config JSON
//   <prefix>/subnets/10.5.3.0-24     LeaseAttrs JSON, attached to an etcd lease (none: a reservation)
//   <prefix>/subnets/10.5.3.0-24&fc00:0:0:3::-64    the same for a dual-stack lease (ip/subnet-key.ts)
import type { DaemonConfig } from '../config/daemon.js';
import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
import { handleWhen, noop, retry } from 'cockatiel';
import {
  Etcd3,
  isRecoverableError,
  type ICompare,
  type IEvent,
  type IKeyValue,
  type IOptions,
  type IWatchResponse,
  type KVClient,
  type Watcher,
} from 'etcd3';
import { EtcdCompactedError, WeftError, errorMessage, ConfigError } from '../errors.js';
import type { Logger } from '../log.js';
import { type Lease, type LeaseAttrs, type LeaseEvent, parseLeaseAttrs, serializeLeaseAttrs } from './lease.js';
import { type Subnet, overlaps } from '../ip/subnet.js';
import { type Subnet6, overlaps6 } from '../ip/ipv6.js';
import { hasIPv4, keyToSubnets, subnetsToKey } from '../ip/subnet-key.js';

export interface RegistryOptions {
  endpoints: string[];
  prefix: string; // e.g. /coreos.com/network (no trailing "/")
  tls?: { ca?: string; cert?: string; key?: string }; // file paths
  auth?: { username: string; password: string };
  log: Logger;
  timeoutMs?: number; // per call; default 5000
}

export interface WatchHandle {
  cancel(): Promise<void>;
}

type CallOptions = NonNullable<Parameters<KVClient['range']>[1]>;

// Node's TLS verification errors (OpenSSL's X509 verify results and tls.checkServerIdentity), which gRPC passes on
// inside "14 UNAVAILABLE: No connection established. Last error: ...".
const UNTRUSTED_SERVER = new RegExp(
  [
    'unable to (?:verify the first|get local issuer|get issuer) certificate',
    'self[- ]signed certificate(?: in certificate chain)?',
    'certificate (?:has expired|is not yet valid|signature failure|has been revoked)',
    "Hostname/IP does not match certificate's altnames",
  ].join('|'),
  'i',
);

const NO_LEASE = '0';

/** The key exists and is attached to etcd lease `id` (NO_LEASE: to none, a reservation). */
function heldBy(key: string, id: string): ICompare[] {
  return [
    { key: Buffer.from(key), target: 'Version', result: 'Greater', version: 0 },
    { key: Buffer.from(key), target: 'Lease', result: 'Equal', lease: id },
  ];
}

// Range end for a prefix scan: the prefix with its last byte incremented (etcd's clientv3.GetPrefixRangeEnd).
function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]! += 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

/**
 * etcd3's fault handling for our calls. Its default puts a circuit breaker on each host (open for 5 s after 3
 * consecutive connection errors) under a retry of every call: the breaker stays open after etcd is back, so a daemon
 * could neither renew nor re-list for 5 s after every outage. Every loop here already bounds its calls and backs off
 * (100 ms .. 5 s), so: no breaker, and a call that fails on one member is tried once on each of the others (etcd3
 * picks another host per retry), so a dead member of a cluster costs no backoff.
 */
function faultHandling(hosts: number): IOptions['faultHandling'] {
  return {
    host: () => noop,
    global: hosts > 1 ? retry(handleWhen(isRecoverableError), { maxAttempts: hosts - 1 }) : noop,
  };
}

export class EtcdRegistry {
  readonly prefix: string;
  private readonly subnetsPrefix: string;
  private readonly client: Etcd3;
  private readonly log: Logger;
  private readonly timeoutMs: number;
  private readonly where: string;
  private closed = false;

  constructor(opts: RegistryOptions) {
    this.prefix = opts.prefix.replace(/\/+$/, '');
    this.subnetsPrefix = `${this.prefix}/subnets/`;
    this.log = opts.log;
    this.timeoutMs = opts.timeoutMs ?? 5000;
    this.where = opts.endpoints.join(',');
    const options: IOptions = {
      hosts: opts.endpoints,
      dialTimeout: this.timeoutMs,
      // Notice a silent etcd (no RST) on open streams; etcd accepts pings every 5 s or slower.
      grpcOptions: { 'grpc.keepalive_time_ms': 10_000, 'grpc.keepalive_timeout_ms': 5_000 },
      faultHandling: faultHandling(opts.endpoints.length),
    };
    if (opts.tls !== undefined && (opts.tls.ca !== undefined || opts.tls.cert !== undefined)) {
      options.credentials = {
        // Without a CA file, trust Node's bundled roots (flannel uses the system pool).
        rootCertificate:
          opts.tls.ca !== undefined ? readFileSync(opts.tls.ca) : Buffer.from(rootCertificates.join('\n')),
        ...(opts.tls.cert !== undefined ? { certChain: readFileSync(opts.tls.cert) } : {}),
        ...(opts.tls.key !== undefined ? { privateKey: readFileSync(opts.tls.key) } : {}),
      };
    }
    if (opts.auth !== undefined) {
      options.auth = { username: opts.auth.username, password: opts.auth.password };
    }
    this.client = new Etcd3(options);
  }

  keyOf(sn: Subnet, ipv6Subnet: Subnet6 | null = null): string {
    return this.subnetsPrefix + subnetsToKey(sn, ipv6Subnet);
  }

  /** The raw JSON of `<prefix>/config`, or null when the key is absent. */
  async getNetworkConfig(): Promise<string | null> {
    const res = await this.call('get config', (o) =>
      this.client.kv.range({ key: Buffer.from(`${this.prefix}/config`) }, o),
    );
    const kv = res.kvs[0];
    return kv === undefined ? null : kv.value.toString('utf8');
  }

  async putNetworkConfig(json: string): Promise<void> {
    await this.call('put config', (o) =>
      this.client.kv.put({ key: Buffer.from(`${this.prefix}/config`), value: Buffer.from(json) }, o),
    );
  }

  /** One range read of `<prefix>/subnets/`, each key's etcd lease TTL resolved; revision to watch from (+1). */
  async listLeases(): Promise<{ leases: Lease[]; revision: string }> {
    const key = Buffer.from(this.subnetsPrefix);
    const res = await this.call('list subnets', (o) => this.client.kv.range({ key, range_end: prefixEnd(key) }, o));
    const ttls = await this.resolveTTLs(res.kvs.map((kv) => kv.lease));
    const leases: Lease[] = [];
    for (const kv of res.kvs) {
      const l = this.toLease(kv, ttls.get(kv.lease) ?? null);
      if (l !== null) leases.push(l);
    }
    return { leases, revision: res.header.revision };
  }

  /** How many keys the subnets prefix holds: a count-only range, no values or TTL calls. */
  async countLeases(): Promise<number> {
    const key = Buffer.from(this.subnetsPrefix);
    const res = await this.call('count subnets', (o) =>
      this.client.kv.range({ key, range_end: prefixEnd(key), count_only: true }, o),
    );
    return Number(res.count);
  }

  async getLease(sn: Subnet, ipv6Subnet: Subnet6 | null = null): Promise<Lease | null> {
    const key = this.keyOf(sn, ipv6Subnet);
    const res = await this.call(`get ${key}`, (o) => this.client.kv.range({ key: Buffer.from(key) }, o));
    const kv = res.kvs[0];
    if (kv === undefined) return null;
    const ttls = await this.resolveTTLs([kv.lease]);
    return this.toLease(kv, ttls.get(kv.lease) ?? null);
  }

  /**
   * Creates the key attached to a new etcd lease, only if the key does not exist (one txn).
   * Null when another host won the race; the granted etcd lease is then revoked.
   *
   * A dual-stack key guards only its own pair: another host may create a key with one of the same halves at the same
   * moment (10.5.3.0-24&fd00:5:0:7::-64 and 10.5.4.0-24&fd00:5:0:7::-64). So after creating, the key created earlier
   * (lower create revision) wins and the later one is deleted again: null, as for a lost race.
   */
  async createLease(
    sn: Subnet,
    attrs: LeaseAttrs,
    ttlSeconds: number,
    ipv6Subnet: Subnet6 | null = null,
  ): Promise<Lease | null> {
    const key = this.keyOf(sn, ipv6Subnet);
    const absent: ICompare[] = [{ key: Buffer.from(key), target: 'Version', result: 'Equal', version: 0 }];
    const created = await this.putOnNewLease({ subnet: sn, ipv6Subnet, key }, attrs, ttlSeconds, 'create', absent);
    if (created === null || ipv6Subnet === null || !(await this.clashesWithEarlier(created))) return created;
    await this.deleteLease(created);
    return null;
  }

  /** True when a key created before `l`'s holds a subnet overlapping either of `l`'s halves. */
  private async clashesWithEarlier(l: Lease): Promise<boolean> {
    const key = Buffer.from(this.subnetsPrefix);
    const res = await this.call('list subnets', (o) => this.client.kv.range({ key, range_end: prefixEnd(key) }, o));
    const mine = res.kvs.find((kv) => kv.key.toString('utf8') === l.key);
    if (mine === undefined) return false; // gone already: the caller's watch finds out
    const six = l.ipv6Subnet ?? null;
    return res.kvs.some((kv) => {
      if (kv === mine || BigInt(kv.create_revision) >= BigInt(mine.create_revision)) return false;
      const other = keyToSubnets(kv.key.toString('utf8'));
      if (other === null) return false;
      const v4 = hasIPv4(l.subnet) && hasIPv4(other.subnet) && overlaps(l.subnet, other.subnet);
      const v6 = six !== null && other.ipv6Subnet !== null && overlaps6(six, other.ipv6Subnet);
      return v4 || v6;
    });
  }

  /**
   * Moves the key onto a fresh etcd lease of ttlSeconds (as flannel's updateSubnet does), only if the key is still
   * attached to `lease.etcdLeaseId`. Null when the key is gone or someone else holds it. Reservations are returned
   * as they are (they do not expire).
   */
  async renewLease(lease: Lease, ttlSeconds: number): Promise<Lease | null> {
    if (lease.etcdLeaseId === null) return lease;
    return this.replace(lease, lease.attrs, ttlSeconds, 'renew');
  }

  /** Writes new attrs for a lease we hold (same conditions as renewLease); the TTL restarts at ttlSeconds. */
  async updateLease(lease: Lease, attrs: LeaseAttrs, ttlSeconds: number): Promise<Lease | null> {
    if (lease.etcdLeaseId === null) {
      // A reservation stays without etcd lease: write only while it still is one.
      const key = lease.key;
      const res = await this.call(`update reservation ${key}`, (o) =>
        this.client.kv.txn(
          {
            compare: heldBy(key, NO_LEASE),
            success: [{ request_put: { key: Buffer.from(key), value: Buffer.from(serializeLeaseAttrs(attrs)) } }],
          },
          o,
        ),
      );
      return res.succeeded ? { ...lease, attrs } : null;
    }
    return this.replace(lease, attrs, ttlSeconds, 'update');
  }

  /** Deletes the key only while it is attached to this etcd lease (never a reservation), then revokes the lease. */
  async deleteLease(lease: Lease): Promise<boolean> {
    if (lease.etcdLeaseId === null) {
      throw new WeftError('WEFT_ERR_LEASE', `refusing to delete reservation ${lease.key}`);
    }
    const key = lease.key;
    const id = lease.etcdLeaseId;
    const res = await this.call(`delete ${key}`, (o) =>
      this.client.kv.txn(
        {
          compare: [{ key: Buffer.from(key), target: 'Lease', result: 'Equal', lease: id }],
          success: [{ request_delete_range: { key: Buffer.from(key) } }],
        },
        o,
      ),
    );
    await this.revokeQuietly(id);
    return res.succeeded;
  }

  /**
   * Watches `<prefix>/subnets/` (or only the key `onlyKey`) from `fromRevision`. Batches arrive in order with the
   * revision they bring the reader to. The watch ends at the first error: onError gets EtcdCompactedError when the
   * revision was compacted, else a WEFT_ERR_ETCD error (disconnect); the caller re-lists and watches again (no
   * silent resume here).
   */
  watchLeases(
    fromRevision: string,
    onEvents: (events: LeaseEvent[], revision: string) => void,
    onError: (err: WeftError) => void,
    onlyKey?: string,
  ): WatchHandle {
    const key = Buffer.from(this.subnetsPrefix);
    let done = false;
    let watcher: Watcher | null = null;
    let chain: Promise<void> = Promise.resolve();
    let cancelling: Promise<void> = Promise.resolve();
    // detach: false when etcd3 already dropped the watcher (a cancel response); cancelling it again would wait forever.
    const finish = (err: WeftError | null, detach: boolean): void => {
      if (done) return;
      done = true;
      const w = watcher;
      watcher = null;
      // etcd3 would reconnect on its own; the caller owns reconnection, so stop it.
      if (w !== null && detach) {
        cancelling = Promise.race([
          w.cancel().catch(() => undefined),
          new Promise<void>((r) => setTimeout(r, 1000).unref()),
        ]);
      }
      if (err !== null) chain = chain.then(() => onError(err));
    };

    // `onlyKey`: the daemon's own key, so its watch does not wake, and resolve TTLs, for every peer event.
    const builder = this.client.watch();
    const ranged = onlyKey === undefined ? builder.inRange({ start: key, end: prefixEnd(key) }) : builder.key(onlyKey);
    const w = ranged.startRevision(fromRevision).watcher();
    watcher = w;
    // Responses that arrive while a batch waits for its TTLs queue up and go out as one batch: under a burst each
    // round of TTL calls then serves every event that came meanwhile, not one response's few (the daemon's lag behind
    // a burst of 5,000 leases was these rounds, one after the other).
    let queued: IEvent[] = [];
    let queuedRevision = '';
    let draining = false;
    const drain = async (): Promise<void> => {
      while (!done && queued.length > 0) {
        const events = queued;
        const revision = queuedRevision;
        queued = [];
        const ttls = await this.resolveTTLs(
          events.filter((e) => e.type === 'Put').map((e) => e.kv.lease),
          true,
        );
        const out: LeaseEvent[] = [];
        for (const e of events) {
          if (e.type === 'Delete') {
            const sn = keyToSubnets(e.kv.key.toString('utf8'));
            if (sn === null) continue;
            const leaseId = e.prev_kv?.lease;
            out.push({
              type: 'removed',
              lease: {
                subnet: sn.subnet,
                ipv6Subnet: sn.ipv6Subnet,
                attrs: { PublicIP: '', BackendType: '' },
                key: e.kv.key.toString('utf8'),
                etcdLeaseId: leaseId === undefined || leaseId === NO_LEASE ? null : leaseId,
                expiresAt: null,
              },
            });
          } else {
            const l = this.toLease(e.kv, ttls.get(e.kv.lease) ?? null);
            if (l !== null) out.push({ type: 'added', lease: l });
          }
        }
        if (!done && out.length > 0) onEvents(out, revision);
      }
    };
    w.on('data', (res: IWatchResponse) => {
      if (done) return;
      if (res.canceled) return; // handled through 'error'
      if (res.events.length === 0) return;
      for (const e of res.events) queued.push(e);
      queuedRevision = res.header.revision;
      if (draining) return;
      draining = true;
      chain = chain
        .then(drain)
        .catch((e: unknown) => finish(this.wrap(`watch ${this.subnetsPrefix}`, e), true))
        .finally(() => (draining = false));
    });
    w.on('error', (err) => {
      const msg = errorMessage(err);
      const compacted = (): void =>
        finish(
          new EtcdCompactedError(
            `etcd watch of ${this.subnetsPrefix} at ${this.where}: revision ${fromRevision} compacted`,
            '',
          ),
          false,
        );
      if (/compacted/i.test(msg)) return compacted();
      // etcd 3.4 cancels a watch on a compacted revision with an empty reason (the compact revision is in a field
      // etcd3 drops): ask a range read at that revision, which names the compaction.
      void this.call('check watch revision', (o) =>
        this.client.kv.range({ key, revision: fromRevision, limit: 1 }, o),
      ).then(
        () => finish(this.wrap(`watch ${this.subnetsPrefix}`, err), false),
        (e: unknown) =>
          /compacted/i.test(errorMessage(e))
            ? compacted()
            : finish(this.wrap(`watch ${this.subnetsPrefix}`, err), false),
      );
    });
    w.on('disconnected', (err) => finish(this.wrap(`watch ${this.subnetsPrefix} (disconnected)`, err), true));
    return {
      cancel: async () => {
        finish(null, true);
        await cancelling;
      },
    };
  }

  /** Compacts history up to `revision` (tests and tools). */
  async compact(revision: string): Promise<void> {
    await this.call(`compact to ${revision}`, (o) => this.client.kv.compact({ revision, physical: true }, o));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.client.close();
  }

  // --- internals ---

  private async replace(lease: Lease, attrs: LeaseAttrs, ttlSeconds: number, op: string): Promise<Lease | null> {
    const oldId = lease.etcdLeaseId ?? NO_LEASE;
    const next = await this.putOnNewLease(lease, attrs, ttlSeconds, op, heldBy(lease.key, oldId));
    // The old etcd lease now holds no key: revoke it rather than let it linger until its TTL.
    if (next !== null && oldId !== NO_LEASE) await this.revokeQuietly(oldId);
    return next;
  }

  /**
   * Grants an etcd lease of `ttlSeconds` and puts the key on it with `attrs` if `compare` holds (one txn). Null when
   * it does not hold; the granted lease is then revoked.
   */
  private async putOnNewLease(
    at: Pick<Lease, 'subnet' | 'ipv6Subnet' | 'key'>,
    attrs: LeaseAttrs,
    ttlSeconds: number,
    op: string,
    compare: ICompare[],
  ): Promise<Lease | null> {
    const key = at.key;
    const grant = await this.call(`grant lease for ${key}`, (o) =>
      this.client.leaseClient.leaseGrant({ TTL: ttlSeconds }, o),
    );
    const granted = Date.now();
    let ok = false;
    try {
      const res = await this.call(`${op} ${key}`, (o) =>
        this.client.kv.txn(
          {
            compare,
            success: [
              {
                request_put: { key: Buffer.from(key), value: Buffer.from(serializeLeaseAttrs(attrs)), lease: grant.ID },
              },
            ],
          },
          o,
        ),
      );
      ok = res.succeeded;
    } finally {
      if (!ok) await this.revokeQuietly(grant.ID);
    }
    if (!ok) return null;
    return {
      subnet: at.subnet,
      ipv6Subnet: at.ipv6Subnet ?? null,
      key,
      attrs,
      etcdLeaseId: grant.ID,
      expiresAt: granted + Number(grant.TTL) * 1000,
    };
  }

  private toLease(kv: IKeyValue, expiresAt: number | null): Lease | null {
    const key = kv.key.toString('utf8');
    const sn = keyToSubnets(key);
    if (sn === null) {
      this.log.warn({ key }, 'ignoring key under subnets/ that is not a subnet');
      return null;
    }
    const attrs = parseLeaseAttrs(kv.value.toString('utf8'));
    if (attrs === null) {
      this.log.warn(
        { key, value: kv.value.toString('utf8').slice(0, 200) },
        'ignoring subnet key with unparsable value',
      );
      return null;
    }
    const reservation = kv.lease === NO_LEASE || kv.lease === '';
    return {
      subnet: sn.subnet,
      ipv6Subnet: sn.ipv6Subnet,
      attrs,
      key,
      etcdLeaseId: reservation ? null : kv.lease,
      expiresAt: reservation ? null : expiresAt,
    };
  }

  /** TTL of each distinct etcd lease id, as an absolute expiry; -1 (already expired) maps to now. */
  private async resolveTTLs(ids: string[], lenient = false): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    const uniq = [...new Set(ids.filter((id) => id !== NO_LEASE && id !== ''))];
    const now = Date.now();
    // A few at a time: a big cluster has thousands of leases.
    for (let i = 0; i < uniq.length; i += 32) {
      await Promise.all(
        uniq.slice(i, i + 32).map(async (id) => {
          try {
            const r = await this.call(`ttl of lease ${id}`, (o) =>
              this.client.leaseClient.leaseTimeToLive({ ID: id }, o),
            );
            out.set(id, now + Math.max(0, Number(r.TTL)) * 1000);
          } catch (e) {
            if (!lenient) throw e;
          }
        }),
      );
    }
    return out;
  }

  private async revokeQuietly(id: string): Promise<void> {
    try {
      await this.call(`revoke lease ${id}`, (o) => this.client.leaseClient.leaseRevoke({ ID: id }, o));
    } catch (e) {
      // It expires on its own; a leaked lease holds no key.
      this.log.debug({ leaseId: id, err: errorMessage(e) }, 'could not revoke etcd lease');
    }
  }

  private wrap(op: string, e: unknown): WeftError {
    if (e instanceof WeftError) return e;
    // Wrong credentials and an untrusted server are no outage to wait out: fail as a configuration error (the daemon
    // exits with one line).
    const msg = errorMessage(e);
    if (/authentication failed|permission denied|user name is empty|invalid user ID or password/i.test(msg)) {
      return new ConfigError(
        `etcd at ${this.where} refused ${op}: ${msg} (check --etcd-username/--etcd-password and the user's role)`,
        { cause: e },
      );
    }
    const untrusted = UNTRUSTED_SERVER.exec(msg);
    if (untrusted !== null) {
      return new ConfigError(
        `etcd at ${this.where}: its server certificate is not trusted (${untrusted[0]}): ` +
          'check --etcd-cafile (the CA that signed it) and the endpoint',
        { cause: e },
      );
    }
    return new WeftError('WEFT_ERR_ETCD', `etcd ${op} at ${this.where}: ${errorMessage(e)}`, { cause: e });
  }

  // Every call carries a gRPC deadline and a timer of our own (etcd3's retries and auth could outlast the deadline).
  private async call<T>(op: string, fn: (o: CallOptions) => Promise<T>): Promise<T> {
    if (this.closed) throw new WeftError('WEFT_ERR_ETCD', `etcd ${op} at ${this.where}: registry closed`);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(new WeftError('WEFT_ERR_ETCD', `etcd ${op} at ${this.where}: no answer within ${this.timeoutMs} ms`)),
        this.timeoutMs + 250,
      );
    });
    try {
      return await Promise.race([fn({ deadline: Date.now() + this.timeoutMs }), timeout]);
    } catch (e) {
      throw this.wrap(op, e);
    } finally {
      clearTimeout(timer);
    }
  }
}

/** The registry for the daemon's etcd flags (endpoints, prefix, TLS files, user and password). */
export function registryFromConfig(
  config: Pick<
    DaemonConfig,
    'etcdEndpoints' | 'etcdPrefix' | 'etcdCafile' | 'etcdCertfile' | 'etcdKeyfile' | 'etcdUsername' | 'etcdPassword'
  >,
  log: Logger,
): EtcdRegistry {
  return new EtcdRegistry({
    endpoints: config.etcdEndpoints,
    prefix: config.etcdPrefix,
    tls:
      config.etcdCafile || config.etcdCertfile
        ? { ca: config.etcdCafile, cert: config.etcdCertfile, key: config.etcdKeyfile }
        : undefined,
    auth: config.etcdUsername ? { username: config.etcdUsername, password: config.etcdPassword ?? '' } : undefined,
    log,
  });
}
