// The host-gw backend (`--datapath kernel`, Backend.Type "host-gw"), as flanneld programs it: no device and no
// encapsulation, one kernel route per peer, `<peer subnet> via <peer PublicIP> dev <iface>`. That only works when
// the peer is on our L2 segment (its PublicIP inside our underlay interface's subnet); other peers are reported as
// errors in the log and skipped, as flannel does.
//
// This file also holds what both kernel backends (host-gw, kernel-vxlan) share: the peer table that logs each
// ignored lease once, the underlay's L2 test, the periodic re-sync loop, and the route reconciliation.
//
// Re-sync: every RESYNC_MS (and after each peer event) the wanted state is compared with the kernel's and only the
// differences are programmed, in one `ip -batch`; a route someone deleted comes back within one period, and routes
// of removed peers are deleted. On stop (SIGTERM) routes stay, as flanneld leaves them: traffic keeps flowing
// across a daemon restart, and the restarted daemon reconciles whatever changed meanwhile.
import { WeftError, errorMessage } from '../errors.js';
import type { Lease, LeaseEvent } from '../lease/lease.js';
import {
  containsSubnet,
  formatIPv4,
  formatSubnet,
  parseCIDR,
  parseIPv4,
  prefixMask,
  type Subnet,
} from '../ip/subnet.js';
import {
  type Subnet6,
  containsIP6,
  formatSubnet6,
  makeSubnet6,
  parseCIDR6,
  formatIPv6,
  parseIPv6,
  subnet6Equals,
} from '../ip/ipv6.js';
import { hasIPv4 } from '../ip/subnet-key.js';
import type { Logger } from '../log.js';
import * as iproute from '../net/iproute.js';
import type { Backend, BackendContext, BackendStatus, ExternalInterface } from './backend.js';

/** How often the kernel state is compared with the wanted one (flanneld: 10 s for routes). */
export const RESYNC_MS = 5_000;

// ---- the underlay's L2 segment ----

export interface UnderlayNet {
  readonly ip: number;
  readonly prefixLen: number;
}

/** The subnet of our underlay interface address (e.g. 198.18.7.0/24 for eth0 198.18.7.1/24). */
export async function underlayNet(ext: ExternalInterface): Promise<UnderlayNet> {
  const iface = await iproute.interfaceByName(ext.name);
  const cidr = iface?.cidrs.find((c) => c.startsWith(`${ext.ifaceIp}/`));
  const parsed = cidr === undefined ? null : parseCIDR(cidr);
  if (parsed === null) {
    throw new WeftError(
      'WEFT_ERR_BACKEND',
      `underlay ${ext.name} has no address ${ext.ifaceIp}: cannot tell which peers share its L2`,
    );
  }
  return { ip: (parsed.ip & prefixMask(parsed.prefixLen)) >>> 0, prefixLen: parsed.prefixLen };
}

/** True when `ip` is inside our underlay interface's subnet: reachable without a router. */
export function onSameL2(net: UnderlayNet, ip: number): boolean {
  const mask = prefixMask(net.prefixLen);
  return (ip & mask) >>> 0 === net.ip;
}

/** The IPv6 subnet of our underlay interface's IPv6 address (e.g. fd77:6566:74:9::/64 for eth0 ...::1/64). */
export async function underlayNet6(ext: ExternalInterface): Promise<Subnet6> {
  const want = ext.ifaceIpv6 === null ? null : parseIPv6(ext.ifaceIpv6);
  const iface = await iproute.interfaceByName(ext.name);
  for (const cidr of iface?.cidrs6 ?? []) {
    const c = parseCIDR6(cidr);
    if (c !== null && c.ip === want) return makeSubnet6(c.ip, c.prefixLen);
  }
  throw new WeftError(
    'WEFT_ERR_BACKEND',
    `underlay ${ext.name} has no IPv6 address ${String(ext.ifaceIpv6)}: cannot tell which peers share its L2`,
  );
}

// ---- peers ----

/** The address family a kernel backend programs a peer in. */
export type Family = 'IPv4' | 'IPv6';

/**
 * The peers' leases by key, as the lease watch delivers them. `usable` turns each into what a backend programs in one
 * address family, or a reason to skip it; each (lease, family, reason) is logged once, not on every re-sync.
 */
export class PeerLeases {
  readonly leases = new Map<string, Lease>();
  /** Lease key -> family -> why it is skipped there. */
  private readonly ignored = new Map<string, Map<Family, string>>();
  /** Per family, the keys the last `usable` call returned. */
  private readonly lastUsable = new Map<Family, Set<string>>();
  ownKey: string | null = null;
  private heard = false;
  private readonly since = Date.now();

  constructor(private readonly log: Logger) {}

  /**
   * True once the lease watch has delivered its first list (or, since it delivers nothing when there are no peers,
   * after two re-sync periods). Until then entries nobody wants must not be deleted: after a restart they are the
   * previous run's peers, still live, and deleting them would cut traffic the kept routes were meant to carry.
   */
  get complete(): boolean {
    return this.heard || Date.now() - this.since > 2 * RESYNC_MS;
  }

  apply(events: readonly LeaseEvent[]): void {
    this.heard = true;
    for (const ev of events) {
      if (ev.lease.key === this.ownKey) continue;
      if (ev.type === 'removed') this.leases.delete(ev.lease.key);
      else this.leases.set(ev.lease.key, ev.lease);
    }
    for (const key of this.ignored.keys()) if (!this.leases.has(key)) this.ignored.delete(key);
  }

  /**
   * `check` returns what to program for a lease in `family`, a Skip (the reason not to, and how loudly to log it), or
   * null when the lease has nothing in that family (an IPv4-only peer in a dual-stack network): silently passed over.
   */
  usable<T>(check: (lease: Lease) => T | Skip | null, family: Family = 'IPv4'): Array<{ lease: Lease; value: T }> {
    const out: Array<{ lease: Lease; value: T }> = [];
    for (const lease of this.leases.values()) {
      if (lease.key === this.ownKey) continue;
      const v = check(lease);
      const why = this.ignored.get(lease.key);
      if (isSkip(v)) {
        if (why?.get(family) !== v.skip) {
          this.ignored.set(lease.key, (why ?? new Map<Family, string>()).set(family, v.skip));
          const { PublicIP: publicIp, PublicIPv6: publicIpv6 } = lease.attrs;
          const where = family === 'IPv4' ? { publicIp } : { family, publicIpv6 };
          this.log[v.level]({ subnet: lease.key, ...where, reason: v.skip }, 'ignoring peer');
        }
        continue;
      }
      why?.delete(family);
      if (v !== null) out.push({ lease, value: v });
    }
    this.lastUsable.set(family, new Set(out.map((u) => u.lease.key)));
    return out;
  }

  /** Peers programmed in at least one family by the last `usable` calls. */
  get programmedCount(): number {
    const keys = new Set<string>();
    for (const set of this.lastUsable.values()) for (const k of set) if (this.leases.has(k)) keys.add(k);
    return keys.size;
  }
}

/** Why a lease is not programmed, and how loudly to say so. */
export interface Skip {
  readonly skip: string;
  readonly level: 'warn' | 'error';
}

function isSkip(v: unknown): v is Skip {
  return typeof v === 'object' && v !== null && typeof (v as { skip?: unknown }).skip === 'string';
}

/** The peer's PublicIP as a number, or a reason to skip it. */
export function peerPublicIp(lease: Lease): number | string {
  const ip = parseIPv4(lease.attrs.PublicIP);
  return ip === null ? `PublicIP ${JSON.stringify(lease.attrs.PublicIP)} is not IPv4` : ip;
}

/** The peer's PublicIPv6, or a reason to skip its IPv6 subnet. */
export function peerPublicIpv6(lease: Lease): bigint | string {
  const v6 = lease.attrs.PublicIPv6;
  const ip = typeof v6 === 'string' ? parseIPv6(v6) : null;
  return ip === null ? `PublicIPv6 ${JSON.stringify(v6 ?? null)} is not an IPv6 address` : ip;
}

// ---- the re-sync loop ----

/**
 * Runs `sync` at start, every `periodMs`, and on kick(); never two at once (a kick during a run runs it once more
 * afterwards). Errors are logged and counted; the next period tries again.
 */
export class Resync {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private again = false;
  runs = 0;
  errors = 0;

  constructor(
    private readonly sync: () => Promise<void>,
    private readonly periodMs: number,
    private readonly log: Logger,
  ) {}

  get active(): boolean {
    return this.timer !== null;
  }

  start(): void {
    if (this.timer === null) this.timer = setInterval(() => this.kick(), this.periodMs);
    this.kick();
  }

  kick(): void {
    if (this.timer === null) return;
    if (this.running !== null) {
      this.again = true;
      return;
    }
    this.running = this.loop().finally(() => (this.running = null));
  }

  /** Resolves when the run in progress (if any) has finished. */
  async settled(): Promise<void> {
    while (this.running !== null) await this.running;
  }

  private async loop(): Promise<void> {
    do {
      this.again = false;
      this.runs++;
      try {
        await this.sync();
      } catch (e) {
        this.errors++;
        this.log.error({ err: errorMessage(e) }, 'kernel re-sync failed; retrying next period');
      }
    } while (this.again && this.timer !== null);
  }

  async stop(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    await this.settled();
  }
}

// ---- routes ----

export interface WantedRoute {
  readonly dst: Subnet;
  readonly via: string;
  readonly dev: string;
  readonly onlink: boolean;
}

/**
 * Batch lines (for `ip -batch`) that bring the kernel's main table to `want` for routes inside the overlay `network`
 * on the devices in `devs`: missing or different routes are replaced, gatewayed routes there that nobody wants
 * (removed peers, a previous run's leftovers) are deleted. `own` (our subnet) is never touched.
 */
export function routeFixes(
  current: readonly iproute.Route[],
  want: readonly WantedRoute[],
  network: Subnet,
  own: Subnet | null,
  devs: readonly string[],
  deleteUnwanted = true,
): RouteFixes {
  const managed = (dst: string): boolean => {
    const sn = parseCIDR(dst);
    return sn !== null && containsSubnet(network, sn) && !(own !== null && sameSubnet(own, sn));
  };
  const wanted = want.map((w) => ({ ...w, dst: formatSubnet(w.dst) }));
  return fixRoutes(current, wanted, managed, 32, devs, deleteUnwanted);
}

export interface WantedRoute6 {
  readonly dst: Subnet6;
  readonly via: string; // as ip prints it
  readonly dev: string;
  readonly onlink: boolean;
}

/** routeFixes for the IPv6 main table (`ip -6 route`), inside the overlay's IPv6Network. */
export function routeFixes6(
  current: readonly iproute.Route[],
  want: readonly WantedRoute6[],
  network: Subnet6,
  own: Subnet6 | null,
  devs: readonly string[],
  deleteUnwanted = true,
): RouteFixes {
  const managed = (dst: string): boolean => {
    const c = parseCIDR6(dst);
    if (c === null) return false;
    const sn = makeSubnet6(c.ip, c.prefixLen);
    return (
      sn.prefixLen >= network.prefixLen && containsIP6(network, sn.ip) && !(own !== null && subnet6Equals(own, sn))
    );
  };
  const wanted = want.map((w) => ({ ...w, dst: formatSubnet6(w.dst) }));
  return fixRoutes(current, wanted, managed, 128, devs, deleteUnwanted);
}

export interface RouteFixes {
  readonly lines: string[][];
  readonly restored: string[];
  readonly deleted: string[];
}

/** Both families' reconciliation over destinations as ip prints them; `managed` says which routes are ours. */
function fixRoutes(
  current: readonly iproute.Route[],
  want: ReadonlyArray<{ dst: string; via: string; dev: string; onlink: boolean }>,
  managed: (dst: string) => boolean,
  hostLen: 32 | 128,
  devs: readonly string[],
  deleteUnwanted: boolean,
): RouteFixes {
  const lines: string[][] = [];
  const restored: string[] = [];
  const deleted: string[] = [];
  // ip prints host routes without "/32" ("/128").
  const normalDst = (dst: string): string => (dst.includes('/') ? dst : `${dst}/${hostLen}`);
  const byDst = new Map<string, iproute.Route>();
  for (const r of current) byDst.set(normalDst(r.dst), r);
  const wanted = new Set<string>();
  for (const w of want) {
    const dst = w.dst;
    wanted.add(dst);
    const have = byDst.get(dst);
    const ok =
      have !== undefined &&
      have.gateway === w.via &&
      have.dev === w.dev &&
      (!w.onlink || have.flags.includes('onlink'));
    if (ok) continue;
    const line = ['route', 'replace', dst, 'via', w.via, 'dev', w.dev];
    if (w.onlink) line.push('onlink');
    lines.push(line);
    restored.push(dst);
  }
  for (const r of deleteUnwanted ? current : []) {
    const dst = normalDst(r.dst);
    if (r.gateway === undefined || r.dev === undefined || !devs.includes(r.dev)) continue;
    if (wanted.has(dst) || !managed(dst)) continue;
    lines.push(['route', 'del', dst, 'via', r.gateway, 'dev', r.dev]);
    deleted.push(dst);
  }
  return { lines, restored, deleted };
}

function sameSubnet(a: Subnet, b: { ip: number; prefixLen: number }): boolean {
  return a.ip === b.ip && a.prefixLen === b.prefixLen;
}

/** Runs fix-up lines in one ip process; with -force a bad line does not stop the others. */
export async function applyLines(lines: string[][]): Promise<void> {
  if (lines.length > 0) await iproute.ipBatch(lines, { force: true });
}

// ---- what both kernel backends share ----

/**
 * The peer leases, a re-sync every RESYNC_MS that makes the kernel match them (sync), and the lease the host runs
 * for. A kernel backend says what to program and what it reports.
 */
export abstract class KernelBackend {
  /** The kernel routes IPv6 as it routes IPv4: both families are programmed. */
  readonly carriesIPv6 = true;
  protected readonly peerSet: PeerLeases;
  protected readonly resync: Resync;
  protected l2: UnderlayNet | null = null;
  protected own: Subnet | null = null;
  /** With EnableIPv6: the underlay's IPv6 subnet and our lease's IPv6 subnet. */
  protected l2v6: Subnet6 | null = null;
  protected own6: Subnet6 | null = null;

  constructor(protected readonly ctx: BackendContext) {
    this.peerSet = new PeerLeases(ctx.log);
    this.resync = new Resync(() => this.sync(), RESYNC_MS, ctx.log);
  }

  get running(): boolean {
    return this.resync.active;
  }

  peers(events: readonly LeaseEvent[]): void {
    this.peerSet.apply(events);
    this.resync.kick();
  }

  settled(): Promise<void> {
    return this.resync.settled();
  }

  /** Stops re-syncing; devices and routes stay (see the header). */
  async stop(): Promise<void> {
    await this.resync.stop();
  }

  /** Programs the kernel to match the peer leases; fixes only what differs. */
  protected abstract sync(): Promise<void>;

  /** Takes the lease (its subnets are never a peer's) and reads the underlay's network in each enabled family. */
  protected async adopt(lease: Lease): Promise<void> {
    const { network, external } = this.ctx;
    this.l2 = network.enableIPv4 ? await underlayNet(external) : null;
    this.l2v6 = network.enableIPv6 ? await underlayNet6(external) : null;
    this.own = hasIPv4(lease.subnet) ? lease.subnet : null;
    this.own6 = lease.ipv6Subnet ?? null;
    this.peerSet.ownKey = lease.key;
    this.peerSet.leases.delete(lease.key);
  }

  /** The underlay subnets for the start log line. */
  protected get l2Text(): { l2?: string; l2v6?: string } {
    const { l2, l2v6 } = this;
    return {
      ...(l2 !== null ? { l2: `${formatIPv4(l2.ip)}/${l2.prefixLen}` } : {}),
      ...(l2v6 !== null ? { l2v6: formatSubnet6(l2v6) } : {}),
    };
  }

  /** Peers for status: the leases programmed in some family at the last re-sync. */
  protected get peerCount(): number {
    return this.peerSet.programmedCount;
  }
}

// ---- the host-gw backend ----

export class HostGwBackend extends KernelBackend implements Backend {
  readonly type = 'host-gw';
  /** No encapsulation: the overlay MTU is the underlay's. */
  readonly mtu: number;
  private restoredTotal = 0;

  constructor(ctx: BackendContext) {
    super(ctx);
    this.mtu = ctx.external.mtu;
  }

  /** flanneld's host-gw lease carries no BackendData at all (the key is omitted), nor BackendV6Data. */
  leaseData(): unknown {
    return undefined;
  }

  async start(lease: Lease): Promise<void> {
    await this.adopt(lease);
    this.resync.start();
    this.ctx.log.info(
      { iface: this.ctx.external.name, mtu: this.mtu, ...this.l2Text },
      'host-gw datapath up (kernel routes)',
    );
  }

  protected async sync(): Promise<void> {
    const restored: string[] = [];
    const deleted: string[] = [];
    for (const fix of [await this.sync4(), await this.sync6()]) {
      restored.push(...fix.restored);
      deleted.push(...fix.deleted);
    }
    this.restoredTotal += restored.length;
    if (restored.length + deleted.length > 0) this.ctx.log.info({ replaced: restored, deleted }, 'routes synced');
  }

  private notOurs(lease: Lease): Skip | null {
    if (lease.attrs.BackendType === this.type) return null;
    return { skip: `BackendType "${lease.attrs.BackendType}" is not ours ("${this.type}")`, level: 'warn' };
  }

  /** `<subnet> via <PublicIP> dev <iface>` per IPv4 peer. */
  private async sync4(): Promise<RouteFixes> {
    const l2 = this.l2;
    if (l2 === null) return { lines: [], restored: [], deleted: [] };
    const dev = this.ctx.external.name;
    const want: WantedRoute[] = this.peerSet
      .usable<number>((lease) => {
        if (!hasIPv4(lease.subnet)) return null;
        const other = this.notOurs(lease);
        if (other !== null) return other;
        const ip = peerPublicIp(lease);
        if (typeof ip === 'string') return { skip: ip, level: 'warn' as const };
        if (!onSameL2(l2, ip)) {
          return {
            skip:
              `host-gw needs peers on the same L2: ${lease.attrs.PublicIP} is outside ` +
              `${formatIPv4(l2.ip)}/${l2.prefixLen}`,
            level: 'error' as const,
          };
        }
        return ip;
      })
      .map(({ lease, value }) => ({ dst: lease.subnet, via: formatIPv4(value), dev, onlink: false }));
    const current = await iproute.listRoutes({ dev });
    const fix = routeFixes(current, want, this.ctx.network.network, this.own, [dev], this.peerSet.complete);
    await applyLines(fix.lines);
    return fix;
  }

  /** `<IPv6 subnet> via <PublicIPv6> dev <iface>` per IPv6 peer (flannel's GetV6Route). */
  private async sync6(): Promise<RouteFixes> {
    const l2 = this.l2v6;
    const net = this.ctx.network.ipv6;
    if (l2 === null || net === null) return { lines: [], restored: [], deleted: [] };
    const dev = this.ctx.external.name;
    const want: WantedRoute6[] = this.peerSet
      .usable<{ dst: Subnet6; via: bigint }>((lease) => {
        const dst = lease.ipv6Subnet ?? null;
        if (dst === null) return null;
        const other = this.notOurs(lease);
        if (other !== null) return other;
        const ip = peerPublicIpv6(lease);
        if (typeof ip === 'string') return { skip: ip, level: 'warn' };
        if (!containsIP6(l2, ip)) {
          return {
            skip: `host-gw needs peers on the same L2: ${formatIPv6(ip)} is outside ${formatSubnet6(l2)}`,
            level: 'error',
          };
        }
        return { dst, via: ip };
      }, 'IPv6')
      .map(({ value }) => ({ dst: value.dst, via: formatIPv6(value.via), dev, onlink: false }));
    const current = await iproute.listRoutes({ dev, family: 6 });
    const fix = routeFixes6(current, want, net.network, this.own6, [dev], this.peerSet.complete);
    await applyLines(fix.lines);
    return fix;
  }

  status(): BackendStatus {
    return {
      type: this.type,
      datapath: 'kernel/host-gw',
      device: this.ctx.external.name,
      peers: this.peerCount,
      counters: {
        resync_runs: this.resync.runs,
        resync_errors: this.resync.errors,
        routes_replaced: this.restoredTotal,
      },
    };
  }
}
