// etcd failover under traffic: weft hosts on a 3-member etcd cluster, members killed one at a time while a ping loop
// runs pod -> pod. Returns what it saw (the integration test asserts on it; `weft scale --failover` reports it).
//
//   bridge netns w<id>-br 198.18.<id>.254 (etcdctl runs here)
//   h1..hN: weft daemon (udp, short lease TTL: renewals during the run) + pod each, /metrics on 127.0.0.1:9471
//   hN+1..hN+3: one etcd member each on its underlay IP (:2379 client, :2380 peer)
//
//   1. kill -9 the raft leader      -> renewals, a new peer lease, pods ping; same keys, same create revisions
//   2. start it again               -> the same checks
//   3. kill -9 the member h1's daemon has most connections to (ss in h1) -> the same checks
//   4. start it again               -> the same checks
// One member down at a time: with two of three down there is no quorum and no client can renew.
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { type Logger, silentLogger } from '../../src/log.js';
import { Cluster, PREFIX } from '../../testbed/cluster.js';
import type { EtcdCluster, EtcdMember } from '../../testbed/etcd.js';
import { killChild } from '../../testbed/exec.js';
import { ping, type PingOptions } from '../../testbed/traffic.js';
import { daemonMetrics, leaseHex, median, parseGetJson, parseTimeToLive, sample, type StoredKey } from './observe.js';
import { sleep } from '../../src/util/sleep.js';
import { WeftError } from '../../src/errors.js';

export const FAILOVER_METRICS_PORT = 9471;

export interface FailoverOptions {
  /** weft hosts (>= 2: the ping loop runs h1's pod -> h2's pod). Default 2. */
  hosts?: number;
  /** --subnet-lease-ttl; renewals come every ttl/2 s. Default 10. */
  ttlSeconds?: number;
  /** Bound on each wait (renewal, peer event). Default 20 s. */
  waitMs?: number;
  log?: Logger;
}

export interface FailoverEvent {
  event: 'leader killed' | 'leader back' | 'member in use killed' | 'member in use back';
  member: string;
  /** Seconds from the event until every host's key sat on a fresh etcd lease with its TTL refreshed; null: not seen. */
  firstRenewalAfterS: number | null;
  /** Longest interval, over hosts, between the last renewal before the event and the first after (daemon logs). */
  renewalGapS: number;
  /** Every host's lease: same key, same create revision, attached, TTL refreshed. */
  sameKeys: boolean;
  /** Seconds until a lease created after the event showed in every daemon's weft_peers; null: not seen. */
  peerSeenS: number | null;
  pingOk: boolean;
  daemonsRunning: boolean;
  /** For 'leader killed': the member that took over. */
  newLeader?: string;
}

export interface FailoverResult {
  hosts: number;
  ttlS: number;
  renewEveryS: number;
  /** Median interval between consecutive renewals of a daemon over the whole run (the undisturbed period). */
  medianRenewalGapS: number;
  events: FailoverEvent[];
  /**
   * The ping loop over the whole run: echo requests sent up to the stop, and how many of them were answered (each
   * had REPLY_GRACE_MS after the stop to be).
   */
  ping: { transmitted: number; received: number };
  /** Per host from /metrics at the end. */
  acquisitions: number[];
  losses: number[];
  errors: string[];
}

async function until<T>(check: () => Promise<T | null>, ms: number, every = 250): Promise<T | null> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const v = await check().catch(() => null);
    if (v !== null) return v;
    await sleep(every);
  }
  return null;
}

function keyOf(cluster: Cluster, n: number): string {
  const key = cluster.leaseKeyOf(n);
  if (key === null) throw new WeftError('WEFT_ERR_BACKEND', `h${n} has no subnet.env`);
  return key;
}

async function stored(ec: EtcdCluster, key: string): Promise<StoredKey | null> {
  return parseGetJson(await ec.etcdctl(['get', key, '-w', 'json']))[0] ?? null;
}

/** The running member the daemon in host n holds most established connections to (its gRPC channels). */
export async function memberInUse(cluster: Cluster, ec: EtcdCluster, n: number): Promise<EtcdMember | null> {
  const r = await cluster.tb.exec(cluster.tb.host(n), ['ss', '-Htn', 'state', 'established', '( dport = :2379 )']);
  const counts = new Map<string, number>();
  for (const line of r.stdout.split('\n')) {
    const m = /(\d+\.\d+\.\d+\.\d+):2379\s*$/.exec(line.trim());
    if (m) counts.set(m[1]!, (counts.get(m[1]!) ?? 0) + 1);
  }
  const ranked = [...counts.entries()].sort((a, b) => b[1] - a[1]);
  for (const [ip] of ranked) {
    const m = ec.members.find((x) => x.running && x.host === ip);
    if (m !== undefined) return m;
  }
  return null;
}

/** Times (ms since epoch) of the daemon's "lease renewed" log lines. */
function renewalTimes(logFile: string): number[] {
  let text: string;
  try {
    text = readFileSync(logFile, 'utf8');
  } catch {
    return [];
  }
  const out: number[] = [];
  for (const line of text.split('\n')) {
    if (!line.includes('lease renewed')) continue;
    try {
      const j = JSON.parse(line) as { time?: unknown; msg?: unknown };
      if (j.msg === 'lease renewed' && typeof j.time === 'number') out.push(j.time);
    } catch {
      // not a JSON line
    }
  }
  return out;
}

/** How long a request sent before the ping loop's stop may take to be answered. */
const REPLY_GRACE_MS = 5000;

/** A ping loop pod h1 -> pod h2 that keeps, per icmp_seq, what was sent and what was answered. */
interface PingLoop {
  readonly child: ChildProcess;
  /** Highest icmp_seq ping has reported so far: requests 1..sent were sent. */
  sent: number;
  /** icmp_seq of every echo reply. */
  readonly answered: Set<number>;
}

function startPingLoop(cluster: Cluster): PingLoop {
  const from = cluster.pods.get(1)!;
  const to = cluster.pods.get(2)!.ip;
  // -O: a request still unanswered when the next one goes is reported ("no answer yet for icmp_seq=N"), so every
  // request shows in the output, answered or not. -w caps the loop even if nothing stops it.
  const child = cluster.tb.spawn(from, ['ping', '-n', '-O', '-i', '0.2', '-W', '1', '-w', '600', to], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const loop: PingLoop = { child, sent: 0, answered: new Set() };
  let partial = '';
  child.stdout?.setEncoding('utf8');
  child.stdout?.on('data', (d: string) => {
    const lines = (partial + d).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      const m = /icmp_seq=(\d+)/.exec(line);
      if (m === null) continue;
      const seq = Number(m[1]);
      loop.sent = Math.max(loop.sent, seq);
      if (/bytes from/.test(line)) loop.answered.add(seq);
    }
  });
  return loop;
}

export async function runFailover(opts: FailoverOptions = {}): Promise<FailoverResult> {
  const hosts = Math.max(2, opts.hosts ?? 2);
  const cluster = await Cluster.create({
    hosts,
    etcdMembers: 3,
    network: { Network: '10.61.0.0/16', SubnetLen: 24, Backend: { Type: 'udp' } },
  });
  const run = new FailoverRun(cluster, hosts, opts);
  try {
    await run.setUp();
    await run.events();
    return await run.finish();
  } finally {
    await run.stopPingLoop();
    await cluster.destroy();
  }
}

/** Steps 1 to 4 of the header on one cluster, and what each showed. */
class FailoverRun {
  private readonly ec: EtcdCluster;
  private readonly ttl: number;
  private readonly waitMs: number;
  private readonly log: Logger;
  /** Host numbers 1..hosts, their lease keys and the keys' create revisions at the start. */
  private readonly ns: number[];
  private keys: string[] = [];
  private createRevs: string[] = [];
  private loop: PingLoop | null = null;
  /** Peer leases written by the run, one per event. */
  private extra = 0;
  private readonly result: FailoverResult;

  constructor(
    private readonly cluster: Cluster,
    hosts: number,
    opts: FailoverOptions,
  ) {
    this.ec = cluster.etcdCluster!;
    this.ttl = opts.ttlSeconds ?? 10;
    this.waitMs = opts.waitMs ?? 20_000;
    this.log = opts.log ?? silentLogger;
    this.ns = Array.from({ length: hosts }, (_, i) => i + 1);
    this.result = {
      hosts,
      ttlS: this.ttl,
      renewEveryS: this.ttl / 2,
      medianRenewalGapS: Number.NaN,
      events: [],
      ping: { transmitted: 0, received: 0 },
      acquisitions: [],
      losses: [],
      errors: [],
    };
  }

  /** Daemons and pods up, the ping loop running, every daemon renewed once. */
  async setUp(): Promise<void> {
    const flags = [`--subnet-lease-ttl=${this.ttl}`, `--healthz-port=${FAILOVER_METRICS_PORT}`];
    await Promise.all(this.ns.map((n) => this.cluster.startDaemon(n, flags)));
    for (const n of this.ns) await this.cluster.ensurePod(n);
    this.keys = this.ns.map((n) => keyOf(this.cluster, n));
    this.createRevs = (await Promise.all(this.keys.map((k) => stored(this.ec, k)))).map((s) => s?.createRevision ?? '');
    // Wait until the pods reach each other before the loop starts (the first ARP and route).
    await until(async () => ((await this.podsPing({ count: 1, timeoutSec: 2 })) ? true : null), 15_000);
    this.loop = startPingLoop(this.cluster);
    // Let every daemon renew once first, so the gap around the first event has a renewal on both sides.
    const renewedOnce = await until(
      async () => (this.ns.every((n) => this.renewals(n).length > 0) ? true : null),
      this.ttl * 1000 + this.waitMs,
    );
    if (renewedOnce === null) this.result.errors.push('no renewal before the first event');
  }

  /** The raft leader killed and started again, then the member h1's daemon talks to. */
  async events(): Promise<void> {
    const leader = await this.ec.leader();
    let at = Date.now();
    await leader.kill();
    const next = await this.ec.leader();
    this.result.events.push(await this.observe('leader killed', leader.name, at, next.name));
    at = Date.now();
    await leader.start();
    this.result.events.push(await this.observe('leader back', leader.name, at));

    const used = await until(() => memberInUse(this.cluster, this.ec, 1), 10_000);
    if (used === null) {
      this.result.errors.push('could not tell which etcd member h1 talks to (no established connection to :2379)');
      return;
    }
    at = Date.now();
    await used.kill();
    this.result.events.push(await this.observe('member in use killed', used.name, at));
    at = Date.now();
    await used.start();
    this.result.events.push(await this.observe('member in use back', used.name, at));
  }

  /** The ping loop's count, the undisturbed renewal period, and each daemon's lease counters. */
  async finish(): Promise<FailoverResult> {
    this.result.ping = await this.stopPingLoop();
    const gaps: number[] = [];
    for (const n of this.ns) {
      const times = this.renewals(n);
      for (let i = 1; i < times.length; i++) gaps.push((times[i]! - times[i - 1]!) / 1000);
    }
    this.result.medianRenewalGapS = median(gaps);
    for (const n of this.ns) {
      const mm = await daemonMetrics(this.cluster.tb, this.cluster.tb.host(n), FAILOVER_METRICS_PORT);
      this.result.acquisitions.push(sample(mm, 'weft_lease_acquisitions_total') ?? -1);
      this.result.losses.push(sample(mm, 'weft_lease_losses_total') ?? -1);
    }
    return this.result;
  }

  /**
   * Stops the ping loop: the requests sent so far are counted, each gets REPLY_GRACE_MS to be answered, then ping
   * goes. Counting only those keeps the request in flight at the stop out of the loss (ping's own summary counts it
   * as lost). Zeros when the loop does not run.
   */
  async stopPingLoop(): Promise<{ transmitted: number; received: number }> {
    const l = this.loop;
    if (l === null) return { transmitted: 0, received: 0 };
    this.loop = null;
    const sent = l.sent;
    const received = (): number => [...l.answered].filter((seq) => seq <= sent).length;
    const end = Date.now() + REPLY_GRACE_MS;
    while (received() < sent && Date.now() < end && l.child.exitCode === null) await sleep(100);
    const count = { transmitted: sent, received: received() };
    await killChild(l.child);
    return count;
  }

  private async observe(
    event: FailoverEvent['event'],
    member: string,
    at: number,
    newLeader?: string,
  ): Promise<FailoverEvent> {
    this.log.info({ event, member }, 'failover: observing');
    const { firstRenewal, sameKeys } = await this.keysRenewed(at);
    const peerSeenS = await this.newPeerSeen();
    const pingOk = await this.podsPing({ count: 3, timeoutSec: 5 });
    return {
      event,
      member,
      firstRenewalAfterS: firstRenewal,
      renewalGapS: this.renewalGap(at),
      sameKeys,
      peerSeenS,
      pingOk,
      daemonsRunning: this.ns.every((n) => this.cluster.daemons.get(n)?.child.exitCode === null),
      ...(newLeader !== undefined ? { newLeader } : {}),
    };
  }

  /**
   * Seconds from `at` until every host's key sat on a fresh etcd lease with its TTL refreshed (null: not seen), and
   * whether every key kept its create revision and TTL.
   */
  private async keysRenewed(at: number): Promise<{ firstRenewal: number | null; sameKeys: boolean }> {
    const before = await Promise.all(this.keys.map((k) => stored(this.ec, k).catch(() => null)));
    let sameKeys = true;
    let firstRenewal: number | null = 0;
    for (const [i, key] of this.keys.entries()) {
      const renewed = await until(async () => {
        const s = await stored(this.ec, key);
        if (s === null || s.lease === '0' || s.lease === before[i]?.lease) return null;
        const t = parseTimeToLive(await this.ec.etcdctl(['lease', 'timetolive', leaseHex(s.lease), '-w', 'json']));
        return t.ttl > 0 ? { s, t, seenAt: Date.now() } : null;
      }, this.waitMs);
      if (renewed === null) {
        firstRenewal = null;
        sameKeys = false;
        continue;
      }
      if (renewed.s.key !== key || renewed.s.createRevision !== this.createRevs[i] || renewed.t.grantedTtl !== this.ttl)
        sameKeys = false;
      if (firstRenewal !== null) firstRenewal = Math.max(firstRenewal, (renewed.seenAt - at) / 1000);
    }
    return { firstRenewal, sameKeys };
  }

  /** Writes a new peer lease; seconds until every daemon's weft_peers counts it (null: not within waitMs). */
  private async newPeerSeen(): Promise<number | null> {
    this.extra++;
    const fake = `${PREFIX}/subnets/10.61.${200 + this.extra}.0-24`;
    const p0 = Date.now();
    await this.ec.etcdctl([
      'put',
      fake,
      JSON.stringify({
        PublicIP: `198.18.${this.cluster.tb.id}.${200 + this.extra}`,
        PublicIPv6: null,
        BackendType: 'udp',
        BackendData: null,
      }),
    ]);
    const want = this.ns.length - 1 + this.extra;
    const seen = await until(
      async () => ((await Promise.all(this.ns.map((n) => this.peers(n)))).every((p) => p === want) ? true : null),
      this.waitMs,
      100,
    );
    return seen === null ? null : (Date.now() - p0) / 1000;
  }

  /** Longest interval, over hosts, between the last renewal before `at` and the first after (the daemons' logs). */
  private renewalGap(at: number): number {
    let gap = 0;
    for (const n of this.ns) {
      const times = this.renewals(n);
      const last = times.filter((x) => x <= at).pop();
      const next = times.find((x) => x > at);
      if (last !== undefined && next !== undefined) gap = Math.max(gap, (next - last) / 1000);
    }
    return gap;
  }

  private renewals(n: number): number[] {
    return renewalTimes(this.cluster.daemons.get(n)!.logFile);
  }

  private async peers(n: number): Promise<number> {
    const m = await daemonMetrics(this.cluster.tb, this.cluster.tb.host(n), FAILOVER_METRICS_PORT);
    return sample(m, 'weft_peers') ?? -1;
  }

  /** h1's pod pings h2's pod, every reply back. */
  private async podsPing(opts: PingOptions): Promise<boolean> {
    return (await ping(this.cluster.pods.get(1)!, this.cluster.pods.get(2)!.ip, opts)).ok;
  }
}
