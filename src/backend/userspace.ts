// The userspace backend: a TUN device and a forwarding tier (dgram or batch) carrying one encap (udp, vxlan,
// geneve). Like flannel's UDP backend, the TUN device gets our subnet's network address with the prefix length of the
// whole overlay Network, so the kernel routes every other host's subnet into it; the local subnet itself lives on
// the container bridge (cni0/docker0) as a more specific route.
//
// With EnableIPv6 the lease carries the IPv6 subnet, PublicIPv6 and BackendV6Data (the encap's lease data with a
// VtepMAC of its own), and each peer's IPv6 half reaches the datapath in its Peer. The tiers forward inner IPv6
// between PublicIPv6 addresses, as flannel's VXLAN backend does: the TUN gets our IPv6 subnet's address (/128, as
// flannel-v6.<VNI>) and a route to the IPv6Network whose MTU leaves room for the longer IPv6 outer header. Not yet
// with backend wireguard or an offload tier of several queues: carriesIPv6 is false there and the daemon says so.
import { readFile, writeFile } from 'node:fs/promises';
import { WeftError, errorMessage } from '../errors.js';
import type { Encap, LocalEncapInfo } from '../encap/encap.js';
import { encapByName } from '../encap/index.js';
import { disabledOffloads, openDatapath, tunFlagsFor, type Datapath, type Peer } from '../datapath/index.js';
import type { DatapathIpv6 } from '../datapath/datapath.js';
import { C, IPV6_UNDERLAY_EXTRA } from '../datapath/path-state.js';
import { formatIPv4, parseIPv4 } from '../ip/subnet.js';
import { formatIPv6, formatSubnet6, parseIPv6 } from '../ip/ipv6.js';
import { hasIPv4 } from '../ip/subnet-key.js';
import type { Lease, LeaseEvent } from '../lease/lease.js';
import * as iproute from '../net/iproute.js';
import * as native from '../native.js';
import type { Backend, BackendContext, BackendStatus, QueueStatus } from './backend.js';
import { userspaceOptions, type UserspaceOptions } from './config.js';
import { stableMac } from './vtep-mac.js';
import { WIREGUARD_TYPE, WireguardSetup } from './wireguard.js';

/** Writes a sysctl unless it already holds the value (in a container /proc/sys is read-only, often preset). */
async function setSysctl(path: string, value: string): Promise<void> {
  if ((await readFile(path, 'utf8').catch(() => '')).trim() === value) return;
  await writeFile(path, value);
}

/**
 * BackendData key a weft offload-tier host adds to its lease: it takes inner TCP/UDP packets whose checksum holds
 * only the pseudo-header sum (the virtio header's NEEDS_CSUM, carried end to end as Linux's VXLAN remote checksum
 * offload carries it) and hands them to its kernel as NEEDS_CSUM, so neither side sums the payload. The outer UDP
 * checksum, which weft's sockets always send, covers the datagram on the wire. Kernel VXLAN and flannel hosts never
 * set it and get full checksums.
 */
export const PARTIAL_CSUM_KEY = 'WeftPartialCsum';

/** Window in which peer events are gathered into one route-table rebuild. */
const APPLY_DELAY_MS = 10;

/**
 * The next rebuild waits at least this many times as long as the last one took. A rebuild costs O(peers), so with a
 * fixed window a burst of N leases (a 5,000-host network loading, or a restart re-listing) cost N/window rebuilds of
 * O(N) each: O(N^2), 92 s to converge at 5,000 hosts. With the wait scaled to the rebuild, the rebuilds of a burst
 * take at most 1/(APPLY_COST_FACTOR + 1) of its time, and their number grows with log N; a route waits at most
 * APPLY_COST_FACTOR rebuilds (tens of ms at 5,000 peers).
 */
const APPLY_COST_FACTOR = 8;

/** Packets the kernel may queue for weft to read from the TUN device. */
const TUN_TXQUEUELEN = 4096;

export class UserspaceBackend implements Backend {
  readonly type: string;
  readonly mtu: number;
  readonly carriesIPv6: boolean;
  private readonly encap: Encap;
  private readonly opts: UserspaceOptions;
  private readonly local: LocalEncapInfo;
  /** What our IPv6 half publishes (its own VtepMAC, as flannel-v6.<VNI> has); null without EnableIPv6. */
  private readonly local6: LocalEncapInfo | null;
  private tun: { fd: number; name: string } | null = null;
  private datapath: Datapath | null = null;
  private readonly leases = new Map<string, Lease>();
  /** Usable peers by lease key, parsed when their event arrived. */
  private readonly parsed = new Map<string, Peer>();
  /** Parsed peers per PublicIP, kept with `parsed` (setParsed), so that a rebuild need not count them. */
  private readonly perPublicIp = new Map<number, number>();
  /** Parsed peers whose PublicIP another parsed peer names too (/status, /metrics). */
  private peersSharing = 0;
  /** PublicIPs that became shared since the last rebuild: the next one logs each, with its subnets. */
  private readonly newlyShared = new Set<number>();
  private applyTimer: NodeJS.Timeout | null = null;
  /** Earliest time (performance.now()) of the next rebuild: APPLY_COST_FACTOR times the last one's cost after it. */
  private nextApplyAt = 0;
  /** Peers in the datapath's current snapshot. */
  private applied = 0;
  /** Peers we ignore, by key, so each is logged once. */
  private readonly ignored = new Map<string, string>();
  private ownKey: string | null = null;
  /** This host takes (and sends to hosts that say so) partial inner checksums: the offload tier, unless disabled. */
  private readonly partialCsum: boolean;
  /** Backend wireguard: keys and options; the datapath seals every packet (no encap header on the wire). */
  private readonly wg: WireguardSetup | null;

  constructor(private readonly ctx: BackendContext) {
    const type = ctx.network.backend.Type;
    this.wg = type === WIREGUARD_TYPE ? new WireguardSetup(ctx) : null;
    // WireGuard's transport messages carry the bare inner packet, as flannel's UDP encap does (no header).
    const encap = encapByName(this.wg ? 'udp' : type);
    if (!encap)
      throw new WeftError('WEFT_ERR_BACKEND', `backend type "${type}" has no userspace encap (udp, vxlan, geneve)`);
    if (ctx.config.tier === 'offload' && encap.nativeId === null) {
      throw new WeftError(
        'WEFT_ERR_BACKEND',
        `--tier=offload needs a native encap (udp, vxlan, geneve); "${encap.name}" is TypeScript only: ` +
          'use --tier=batch',
      );
    }
    this.encap = encap;
    this.type = this.wg ? WIREGUARD_TYPE : encap.backendType;
    this.opts = this.wg ? { port: this.wg.options.listenPort, vni: 0 } : userspaceOptions(ctx.network.backend, encap);
    this.mtu = this.wg ? this.wg.mtu : ctx.external.mtu - encap.mtuOverhead;
    this.local = { mac: stableMac(ctx.external.publicIp, this.opts.vni), vni: this.opts.vni };
    this.partialCsum = ctx.config.tier === 'offload' && !disabledOffloads().has('partial_csum');
    const v6 = ctx.external.publicIpv6;
    this.local6 = v6 === null ? null : { mac: stableMac(v6, this.opts.vni), vni: this.opts.vni };
    const multiQueue = ctx.config.tier === 'offload' && (ctx.config.queues ?? 1) > 1;
    this.carriesIPv6 = this.local6 !== null && ctx.network.ipv6 !== null && this.wg === null && !multiQueue;
    if (this.wg) {
      ctx.log.info(
        { keyFile: this.wg.keyFile, created: this.wg.keyCreated, publicKey: this.wg.publicKey.toString() },
        'wireguard key',
      );
    }
  }

  get running(): boolean {
    return this.datapath !== null && (this.datapath.failure?.() ?? null) === null;
  }

  leaseData(): unknown {
    if (this.wg) return this.wg.leaseData();
    const data = this.encap.leaseData(this.local);
    if (!this.partialCsum) return data;
    // Our own key beside flannel's (flannel's backends read only the keys they know), and only on the offload
    // tier, so a batch or dgram host's lease stays byte for byte what flanneld writes.
    return { ...(typeof data === 'object' && data !== null ? data : {}), [PARTIAL_CSUM_KEY]: true };
  }

  leaseV6Data(): unknown {
    return this.local6 === null ? undefined : this.encap.leaseData(this.local6);
  }

  async start(lease: Lease): Promise<void> {
    const { ctx } = this;
    const name = ctx.config.tunName;
    this.ownKey = lease.key;
    if (!this.tun) {
      const napi = process.env['WEFT_TUN_NAPI'] === '1' ? native.TUN_NAPI : 0;
      this.tun = native.tunOpen(name, tunFlagsFor(ctx.config.tier, ctx.config.queues) | napi);
      // Without IPv6 forwarding, IPv6 goes off before the device comes up, else the kernel's own IPv6 chatter on a
      // new link (router solicitations, MLD reports) is already queued into the TUN and counted as drops on an idle
      // daemon. With it, that chatter is counted as no_route (multicast, outside the IPv6Network).
      native.linkSet(this.tun.name, this.mtu, false);
      const off = this.carriesIPv6 ? '0' : '1';
      await setSysctl(`/proc/sys/net/ipv6/conf/${this.tun.name}/disable_ipv6`, off).catch(() => undefined);
      native.linkSet(this.tun.name, this.mtu, true);
    }
    // Our subnet's network address with the overlay's prefix: the kernel then routes all peers' subnets here.
    const net = ctx.network.network;
    const cidr = `${formatIPv4(lease.subnet.ip)}/${net.prefixLen}`;
    const dev = this.tun.name;
    const current = await iproute.interfaceByName(dev);
    for (const old of current?.cidrs ?? []) if (old !== cidr) await iproute.addrDel(dev, old);
    await iproute.addrReplace(dev, cidr);
    // ICMP errors weft writes to TUN come from the TUN's own address; without accept_local the kernel drops them
    // as martians (a packet arriving with a local source) and senders only see a timeout.
    await setSysctl(`/proc/sys/net/ipv4/conf/${dev}/accept_local`, '1').catch((e: unknown) =>
      ctx.log.warn(
        { err: errorMessage(e), device: dev },
        'cannot set accept_local: ICMP errors from weft will be dropped',
      ),
    );
    const ipv6 = await this.addressIpv6(lease, dev);
    // The TUN's queue towards weft (500 packets by default) overflows in TCP bursts and the kernel drops there;
    // a longer queue absorbs a burst while weft drains it in batches.
    await iproute.ip(['link', 'set', 'dev', dev, 'txqueuelen', String(TUN_TXQUEUELEN)]);
    if (!this.datapath) {
      this.datapath = openDatapath(ctx.config.tier, {
        tunFd: this.tun.fd,
        encap: this.encap,
        local: this.local,
        bindAddress: ctx.external.bindIp,
        port: this.opts.port,
        networkIp: net.ip,
        networkPrefixLen: net.prefixLen,
        gatewayIp: lease.subnet.ip,
        tunMtu: this.mtu,
        queues: ctx.config.queues,
        log: ctx.log,
        ...(this.wg ? { wireguard: this.wg.datapath } : {}),
        ...(ipv6 ? { ipv6 } : {}),
      });
    }
    // Our own subnet may have been someone else's a moment ago.
    this.leases.delete(lease.key);
    this.setParsed(lease.key, null);
    this.apply();
    ctx.log.info(
      {
        device: dev,
        address: cidr,
        mtu: this.mtu,
        tier: ctx.config.tier,
        encap: this.wg ? WIREGUARD_TYPE : this.encap.name,
        port: this.opts.port,
      },
      'userspace datapath up',
    );
  }

  /**
   * Our IPv6 subnet's address on the TUN (/128, as flanneld gives flannel-v6.<VNI>) and a route to the IPv6Network
   * through it, its MTU the TUN's less the IPv6 outer header's extra 20 bytes, so the kernel sends packet-too-big
   * before weft has to. Returns what the datapath's IPv6 half needs, or null when this host forwards no IPv6.
   */
  private async addressIpv6(lease: Lease, dev: string): Promise<DatapathIpv6 | null> {
    const { ctx } = this;
    const net6 = ctx.network.ipv6?.network ?? null;
    const sn = lease.ipv6Subnet ?? null;
    const bind = ctx.external.publicIpv6;
    if (!this.carriesIPv6 || net6 === null || sn === null || bind === null || this.local6 === null) return null;
    const cidr = `${formatIPv6(sn.ip)}/128`;
    const current = await iproute.interfaceByName(dev);
    for (const old of current?.cidrs6 ?? []) {
      if (old !== cidr && !old.startsWith('fe80:')) await iproute.addrDel(dev, old);
    }
    await iproute.addrReplace(dev, cidr);
    const mtu6 = this.mtu - IPV6_UNDERLAY_EXTRA;
    await iproute.ip(['-6', 'route', 'replace', formatSubnet6(net6), 'dev', dev, 'mtu', String(mtu6)]);
    return { bindAddress: bind, network: net6, gateway: sn.ip, local: this.local6 };
  }

  peers(events: readonly LeaseEvent[]): void {
    for (const ev of events) {
      const key = ev.lease.key;
      if (key === this.ownKey) continue;
      if (ev.type === 'removed') {
        this.leases.delete(key);
        this.setParsed(key, null);
        this.ignored.delete(key);
        continue;
      }
      this.leases.set(key, ev.lease);
      this.parse(ev.lease);
    }
    this.scheduleApply();
  }

  // Each lease is parsed once, when its event arrives; the snapshot rebuild is O(peers), so event bursts (thousands
  // of hosts joining) are coalesced into few rebuilds (scheduleApply) instead of one per event.
  private parse(lease: Lease): void {
    const peer = this.peerProblem(lease) ?? this.toPeer(lease);
    if (typeof peer !== 'string') {
      this.setParsed(lease.key, peer);
      this.ignored.delete(lease.key);
      return;
    }
    this.setParsed(lease.key, null);
    if (this.ignored.get(lease.key) !== peer) {
      this.ignored.set(lease.key, peer);
      this.ctx.log.warn({ subnet: lease.key, publicIp: lease.attrs.PublicIP, reason: peer }, 'ignoring peer');
    }
  }

  private setParsed(key: string, peer: Peer | null): void {
    const old = this.parsed.get(key);
    if (old !== undefined) this.countPublicIp(old.publicIp, -1);
    if (peer === null) {
      this.parsed.delete(key);
      return;
    }
    this.parsed.set(key, peer);
    this.countPublicIp(peer.publicIp, 1);
  }

  private countPublicIp(ip: number, delta: 1 | -1): void {
    const before = this.perPublicIp.get(ip) ?? 0;
    const after = before + delta;
    if (after === 0) this.perPublicIp.delete(ip);
    else this.perPublicIp.set(ip, after);
    if (before >= 2) this.peersSharing -= before;
    if (after >= 2) this.peersSharing += after;
    if (before < 2 && after >= 2) this.newlyShared.add(ip);
    else if (before >= 2 && after < 2) this.newlyShared.delete(ip);
  }

  async settled(): Promise<void> {
    if (this.applyTimer === null) return;
    clearTimeout(this.applyTimer);
    this.applyTimer = null;
    this.apply();
  }

  private scheduleApply(): void {
    if (this.applyTimer !== null) return;
    // A lone event after a quiet spell waits only the window; one in a burst waits for the rebuild's share.
    const delay = Math.max(APPLY_DELAY_MS, this.nextApplyAt - performance.now());
    this.applyTimer = setTimeout(() => {
      this.applyTimer = null;
      this.apply();
    }, delay);
  }

  private apply(): void {
    const t0 = performance.now();
    const peers = [...this.parsed.values()];
    this.datapath?.setPeers(peers);
    this.applied = peers.length;
    if (this.newlyShared.size > 0) this.noteSharedPublicIps(peers);
    const t1 = performance.now();
    this.nextApplyAt = t1 + APPLY_COST_FACTOR * (t1 - t0);
    this.ctx.log.debug({ peers: peers.length, ms: Math.round((t1 - t0) * 10) / 10 }, 'peers applied');
  }

  // Two leases naming one PublicIP (a host that changed subnet while its old lease runs out, a stale key, hosts
  // behind one NAT address): both keep their routes and the datapath accepts from that address the subnets of
  // both (RouteTable.senderOf). Worth one line when it starts: one of them is usually stale. Not one per change of
  // the group: a network loading thousands of leases behind a few NAT addresses would log at every rebuild.
  private noteSharedPublicIps(peers: readonly Peer[]): void {
    const byIp = new Map<number, string[]>();
    for (const p of peers) {
      if (!this.newlyShared.has(p.publicIp)) continue;
      const nets = byIp.get(p.publicIp);
      const net = `${formatIPv4(p.net >>> 0)}/${p.prefixLen}`;
      if (nets) nets.push(net);
      else byIp.set(p.publicIp, [net]);
    }
    this.newlyShared.clear();
    for (const [ip, nets] of byIp) {
      this.ctx.log.warn(
        { publicIp: formatIPv4(ip >>> 0), subnets: nets.sort() },
        'several leases name one PublicIP: traffic from it is accepted for each of their subnets',
      );
    }
  }

  private peerProblem(lease: Lease): string | null {
    if (lease.attrs.BackendType !== this.type) {
      return `BackendType "${lease.attrs.BackendType}" is not ours ("${this.type}")`;
    }
    return null;
  }

  private toPeer(lease: Lease): Peer | string {
    if (!hasIPv4(lease.subnet)) return 'no IPv4 subnet (an IPv6-only lease)';
    const publicIp = parseIPv4(lease.attrs.PublicIP);
    if (publicIp === null) return `PublicIP ${JSON.stringify(lease.attrs.PublicIP)} is not IPv4`;
    if (this.wg) {
      const wg = this.wg.parsePeer(lease.attrs.BackendData);
      if (typeof wg === 'string') return wg;
      const none = { mac: Buffer.alloc(6), vni: 0 };
      return {
        net: lease.subnet.ip,
        prefixLen: lease.subnet.prefixLen,
        publicIp,
        port: wg.port,
        encap: none,
        wgKey: wg.publicKey,
      };
    }
    const info = this.encap.parsePeer(lease.attrs.BackendData, this.local);
    if (typeof info === 'string') return info;
    const data = lease.attrs.BackendData as Record<string, unknown> | null | undefined;
    const partialCsum =
      this.partialCsum && typeof data === 'object' && data !== null && data[PARTIAL_CSUM_KEY] === true;
    const peer = {
      net: lease.subnet.ip,
      prefixLen: lease.subnet.prefixLen,
      publicIp,
      port: this.opts.port,
      encap: info,
      partialCsum,
    };
    return { ...peer, ...this.toPeer6(lease) };
  }

  /** The IPv6 half of a dual-stack peer, when the network and the lease have one and it parses. */
  private toPeer6(lease: Lease): Pick<Peer, 'ipv6Subnet' | 'publicIpv6' | 'encap6'> {
    const sn = lease.ipv6Subnet ?? null;
    const v6 = lease.attrs.PublicIPv6;
    const publicIpv6 = typeof v6 === 'string' ? parseIPv6(v6) : null;
    if (this.local6 === null || sn === null || publicIpv6 === null) return {};
    const encap6 = this.encap.parsePeer(lease.attrs.BackendV6Data, this.local6);
    return typeof encap6 === 'string' ? {} : { ipv6Subnet: sn, publicIpv6, encap6 };
  }

  status(): BackendStatus {
    const counters: Record<string, number> = {};
    const values = this.datapath?.counters;
    native.counterNames.forEach((name, i) => (counters[name] = values ? (values[i] as number) : 0));
    Object.assign(counters, this.datapath?.extraCounters?.() ?? {});
    return {
      type: this.type,
      datapath: `userspace/${this.ctx.config.tier}/${this.wg ? WIREGUARD_TYPE : this.encap.name}`,
      device: this.tun?.name ?? this.ctx.config.tunName,
      peers: this.applied,
      peersSharingPublicIp: this.peersSharing,
      counters,
      // Only peers that exchanged packets: with thousands of peers and little traffic, /metrics would carry four
      // series of zeros per peer and build them at every scrape (a peer's series appear with its first packet).
      peerTraffic: (this.datapath?.peerTraffic() ?? [])
        .filter((t) => t.txPackets + t.rxPackets > 0)
        .map((t) => ({
          subnet: `${formatIPv4(t.net >>> 0)}/${t.prefixLen}`,
          publicIp: formatIPv4(t.publicIp >>> 0),
          txPackets: t.txPackets,
          txBytes: t.txBytes,
          rxPackets: t.rxPackets,
          rxBytes: t.rxBytes,
        })),
      queues: queueStatus(this.datapath?.queueCounters?.() ?? []),
    };
  }

  get counters(): Float64Array | null {
    return this.datapath?.counters ?? null;
  }

  async stop(): Promise<void> {
    if (this.applyTimer !== null) clearTimeout(this.applyTimer);
    this.applyTimer = null;
    this.datapath?.close();
    this.datapath = null;
    if (this.tun) {
      try {
        native.close(this.tun.fd); // a non-persistent TUN device disappears with its last fd
      } catch (e) {
        this.ctx.log.warn({ err: errorMessage(e) }, 'closing TUN');
      }
      this.tun = null;
    }
  }
}

function queueStatus(queues: readonly Float64Array[]): QueueStatus[] | undefined {
  if (queues.length < 2) return undefined;
  return queues.map((c, queue) => ({
    queue,
    tunRxPackets: c[C.tunRxPackets] ?? 0,
    udpTxPackets: c[C.udpTxPackets] ?? 0,
    udpRxPackets: c[C.udpRxPackets] ?? 0,
    tunTxPackets: c[C.tunTxPackets] ?? 0,
  }));
}
