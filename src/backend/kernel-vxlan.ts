// The kernel VXLAN backend (`--datapath kernel`, Backend.Type "vxlan"), programmed exactly as flanneld does, so
// flannel nodes, weft kernel nodes and weft userspace VXLAN nodes share one cluster:
//
//   device   ip link add flannel.<VNI> address <VtepMAC> type vxlan id <VNI> dstport <Port> local <iface IP>
//              dev <iface> nolearning ; mtu underlay-50 ; address <our subnet>.0/32 ; up
//   per peer ip neigh replace <peer subnet>.0 lladdr <peer VtepMAC> dev flannel.<VNI> nud permanent
//            bridge fdb append <peer VtepMAC> dev flannel.<VNI> dst <peer PublicIP>
//            ip route replace <peer subnet> via <peer subnet>.0 dev flannel.<VNI> onlink
//   DirectRouting: a peer whose PublicIP is inside our underlay interface's subnet gets
//            ip route replace <peer subnet> via <peer PublicIP> dev <iface>     (no neighbour, no FDB entry)
//
// With EnableIPv6 a second device carries the IPv6 subnets the same way (flannel pkg/backend/vxlan: the v6 device,
// AddV6ARP, AddV6FDB, the v6 routes), with its own VtepMAC published as the lease's BackendV6Data:
//
//   device   ip link add flannel-v6.<VNI> address <VtepMAC6> type vxlan id <VNI> dstport <Port>
//              local <iface IPv6> dev <iface> nolearning ; mtu underlay-70 ; accept_ra 0 ;
//              address <our IPv6 subnet>::/128 (other global IPv6 addresses go, link-local stays) ; up
//   per peer ip neigh replace <peer IPv6 subnet>:: lladdr <peer VtepMAC6> dev flannel-v6.<VNI> nud permanent
//            bridge fdb append <peer VtepMAC6> dev flannel-v6.<VNI> dst <peer PublicIPv6>
//            ip route replace <peer IPv6 subnet> via <peer IPv6 subnet>:: dev flannel-v6.<VNI> onlink
//   DirectRouting: a peer whose PublicIPv6 is inside our underlay's IPv6 subnet gets
//            ip route replace <peer IPv6 subnet> via <peer PublicIPv6> dev <iface>
// An IPv6-only network (EnableIPv4 false) has only flannel-v6.<VNI>. flanneld gives the device its public address as
// `local`; weft gives it the interface's own address in both families (the same unless --public-ip(v6) names a NAT
// address, which no socket can send from). flanneld asks for underlay-50 on both devices; the kernel caps an IPv6
// VXLAN device at underlay-70 (its outer header is 20 bytes longer) and refuses more, so flannel-v6.<VNI> ends up at
// underlay-70, and so does weft's. FLANNEL_MTU stays underlay-50, as flanneld writes it: IPv6 packets larger than
// the device get Packet Too Big, and path MTU discovery settles on the smaller size.
//
// VtepMAC is stableMac(PublicIP, VNI) (IPv6: stableMac(PublicIPv6, VNI)), set on the device when it is created, so it
// survives restarts. An existing device with other settings (VNI, port, local address, learning, MAC) is deleted and
// created again.
//
// Every RESYNC_MS, and after each peer event, routes, neighbours and FDB entries are compared with the wanted state
// and only the differences are programmed (deleted entries come back; removed peers' entries go). On stop (SIGTERM)
// the devices, neighbours, FDB entries and routes stay, as flanneld leaves them: pods keep talking across a daemon
// restart, and the restarted daemon finds the devices as it wants them and reconciles the rest.
import { writeFile } from 'node:fs/promises';
import { WeftError } from '../errors.js';
import type { Lease } from '../lease/lease.js';
import { formatIPv4 } from '../ip/subnet.js';
import { containsIP6, formatIPv6 } from '../ip/ipv6.js';
import { hasIPv4 } from '../ip/subnet-key.js';
import { formatMac, parseMac } from '../encap/vxlan.js';
import * as iproute from '../net/iproute.js';
import type { Backend, BackendContext, BackendStatus } from './backend.js';
import { kernelVxlanOptions, type KernelVxlanOptions } from './config.js';
import {
  applyLines,
  KernelBackend,
  onSameL2,
  peerPublicIp,
  peerPublicIpv6,
  routeFixes,
  routeFixes6,
  type Family,
  type RouteFixes,
  type Skip,
  type WantedRoute,
  type WantedRoute6,
} from './host-gw.js';
import { stableMac } from './vtep-mac.js';

/** Outer IPv4 (20) + UDP (8) + VXLAN (8) + inner Ethernet (14). */
export const VXLAN_OVERHEAD = 50;

/** The same over an IPv6 underlay (outer IPv6 is 40 bytes): the kernel's VXLAN6_HEADROOM. */
const VXLAN6_OVERHEAD = 70;

/** One VXLAN device: flannel.<VNI> for IPv4, flannel-v6.<VNI> for IPv6. */
interface VxlanDevice {
  readonly family: Family;
  readonly name: string;
  /** The VtepMAC the lease publishes (BackendData, or BackendV6Data for IPv6). */
  readonly mac: string;
  /** The underlay address it sends from. */
  readonly local: string;
  readonly mtu: number;
}

/** What one usable peer gets in one family: an overlay route (with neighbour and FDB entry) or, with DirectRouting, a
 * plain one. Addresses as ip prints them. */
interface PeerPlan {
  readonly kind: 'vxlan' | 'direct';
  readonly gw: string; // vxlan: the peer subnet's network address; direct: the peer's public address
  readonly mac: string;
  readonly publicIp: string;
}

type Planned = { lease: Lease; value: PeerPlan };

export class KernelVxlanBackend extends KernelBackend implements Backend {
  readonly type = 'vxlan';
  readonly mtu: number;
  /** The IPv4 device's name (flannel.<VNI>), whether or not IPv4 is on. */
  readonly device: string;
  private readonly opts: KernelVxlanOptions;
  /** The devices of the enabled families, IPv4 first. */
  private readonly devices: readonly VxlanDevice[];
  private readonly repaired = { routes: 0, neighbours: 0, fdb: 0, device: 0 };

  constructor(ctx: BackendContext) {
    super(ctx);
    this.opts = kernelVxlanOptions(ctx.network.backend);
    this.mtu = ctx.external.mtu - VXLAN_OVERHEAD;
    this.device = `flannel.${this.opts.vni}`;
    const devices: VxlanDevice[] = [];
    const { external, network } = ctx;
    if (network.enableIPv4) {
      const mac = formatMac(stableMac(external.publicIp, this.opts.vni));
      devices.push({ family: 'IPv4', name: this.device, mac, local: external.ifaceIp, mtu: this.mtu });
    }
    if (network.enableIPv6) {
      if (external.publicIpv6 === null || external.ifaceIpv6 === null) {
        throw new WeftError('WEFT_ERR_BACKEND', 'the network enables IPv6 but the underlay has no IPv6 address');
      }
      const mac = formatMac(stableMac(external.publicIpv6, this.opts.vni));
      const name = `flannel-v6.${this.opts.vni}`;
      devices.push({ family: 'IPv6', name, mac, local: external.ifaceIpv6, mtu: external.mtu - VXLAN6_OVERHEAD });
    }
    for (const d of devices) {
      if (d.name.length > 15)
        throw new WeftError('WEFT_ERR_BACKEND', `device name ${d.name} is longer than 15 characters`);
    }
    this.devices = devices;
  }

  private dev(family: Family): VxlanDevice | undefined {
    return this.devices.find((d) => d.family === family);
  }

  /** flanneld's shape and key order: {"VNI":1,"VtepMAC":"aa:bb:..."}; none in an IPv6-only network. */
  leaseData(): unknown {
    const d = this.dev('IPv4');
    return d === undefined ? undefined : { VNI: this.opts.vni, VtepMAC: d.mac };
  }

  /** BackendV6Data, the same shape with flannel-v6.<VNI>'s MAC. */
  leaseV6Data(): unknown {
    const d = this.dev('IPv6');
    return d === undefined ? undefined : { VNI: this.opts.vni, VtepMAC: d.mac };
  }

  async start(lease: Lease): Promise<void> {
    await this.adopt(lease);
    for (const d of this.devices) await this.ensureDevice(d);
    this.resync.start();
    this.ctx.log.info(
      {
        devices: this.devices.map((d) => d.name),
        vtepMac: this.dev('IPv4')?.mac,
        vtepMac6: this.dev('IPv6')?.mac,
        mtu: this.mtu,
        port: this.opts.port,
        directRouting: this.opts.directRouting,
      },
      'kernel vxlan datapath up',
    );
  }

  // ---- the devices ----

  /** Creates the device as wanted (replacing one with other settings); sets MTU, our subnet's address, up. */
  private async ensureDevice(d: VxlanDevice): Promise<void> {
    const { ctx } = this;
    const have = await iproute.linkByName(d.name);
    const why = have === null ? null : this.deviceMismatch(d, have);
    if (have !== null && why !== null) {
      ctx.log.warn({ device: d.name, reason: why }, 'existing vxlan device has other settings: replacing it');
      await iproute.linkDel(d.name);
    }
    if (have === null || why !== null) {
      await iproute.linkAddVxlan({
        name: d.name,
        vni: this.opts.vni,
        port: this.opts.port,
        local: d.local,
        dev: ctx.external.name,
        learning: false,
        mtu: d.mtu,
        mac: d.mac,
      });
      if (have === null && this.resync.runs > 0) this.repaired.device++;
      // flannel's newVXLANDevice: no router advertisements on the overlay device (ignored when it cannot be set).
      await writeFile(`/proc/sys/net/ipv6/conf/${d.name}/accept_ra`, '0').catch(() => undefined);
      ctx.log.info({ device: d.name, vni: this.opts.vni, vtepMac: d.mac }, 'vxlan device created');
    }
    const cidr = this.deviceAddress(d);
    if (cidr === null) return;
    const iface = await iproute.interfaceByName(d.name);
    const lines: string[][] = [];
    // IPv6: only global addresses are listed (cidrs6), so the link-local one stays, as flannel leaves it.
    const current = (d.family === 'IPv4' ? iface?.cidrs : iface?.cidrs6) ?? [];
    for (const old of current) if (old !== cidr) lines.push(['addr', 'del', old, 'dev', d.name]);
    if (!current.includes(cidr)) lines.push(['addr', 'replace', cidr, 'dev', d.name]);
    if (iface === null || iface.mtu !== d.mtu || !iface.up)
      lines.push(['link', 'set', 'dev', d.name, 'mtu', String(d.mtu), 'up']);
    await applyLines(lines);
  }

  /** <our subnet>.0/32, or <our IPv6 subnet>::/128: the source of host-to-pod traffic, as flannel sets it. */
  private deviceAddress(d: VxlanDevice): string | null {
    if (d.family === 'IPv4') return this.own === null ? null : `${formatIPv4(this.own.ip)}/32`;
    return this.own6 === null ? null : `${formatIPv6(this.own6.ip)}/128`;
  }

  private deviceMismatch(d: VxlanDevice, l: iproute.LinkInfo): string | null {
    const data = l.data;
    // ip -d -json names an IPv6 local address "local6".
    const local = data[d.family === 'IPv4' ? 'local' : 'local6'];
    if (l.kind !== 'vxlan') return `kind ${l.kind ?? 'none'}, not vxlan`;
    if (data['id'] !== this.opts.vni) return `VNI ${String(data['id'])}, want ${this.opts.vni}`;
    if (data['port'] !== this.opts.port) return `port ${String(data['port'])}, want ${this.opts.port}`;
    if (local !== d.local) return `local ${String(local)}, want ${d.local}`;
    if (data['learning'] !== false) return 'learning on';
    if (l.mac?.toLowerCase() !== d.mac) return `MAC ${l.mac ?? 'none'}, want ${d.mac}`;
    return null;
  }

  // ---- re-sync ----

  /** The IPv4 half of each usable peer. */
  private plan4(): Planned[] {
    const l2 = this.l2;
    return this.peerSet.usable<PeerPlan>((lease) => {
      if (!hasIPv4(lease.subnet)) return null;
      const other = this.notOurs(lease);
      if (other !== null) return other;
      const ip = peerPublicIp(lease);
      if (typeof ip === 'string') return skip(ip);
      const publicIp = formatIPv4(ip);
      if (this.opts.directRouting && l2 !== null && onSameL2(l2, ip)) {
        return { kind: 'direct', gw: publicIp, mac: '', publicIp };
      }
      const mac = this.peerMac(lease.attrs.BackendData);
      if (mac.startsWith('!')) return skip(mac.slice(1));
      return { kind: 'vxlan', gw: formatIPv4(lease.subnet.ip), mac, publicIp };
    }, 'IPv4');
  }

  /** The IPv6 half of each usable dual-stack (or IPv6-only) peer. */
  private plan6(): Planned[] {
    const l2 = this.l2v6;
    return this.peerSet.usable<PeerPlan>((lease) => {
      const sn = lease.ipv6Subnet ?? null;
      if (sn === null) return null;
      const other = this.notOurs(lease);
      if (other !== null) return other;
      const ip = peerPublicIpv6(lease);
      if (typeof ip === 'string') return skip(ip);
      const publicIp = formatIPv6(ip);
      if (this.opts.directRouting && l2 !== null && containsIP6(l2, ip)) {
        return { kind: 'direct', gw: publicIp, mac: '', publicIp };
      }
      const mac = this.peerMac(lease.attrs.BackendV6Data, 'BackendV6Data');
      if (mac.startsWith('!')) return skip(mac.slice(1));
      return { kind: 'vxlan', gw: formatIPv6(sn.ip), mac, publicIp };
    }, 'IPv6');
  }

  private notOurs(lease: Lease): Skip | null {
    return lease.attrs.BackendType === this.type
      ? null
      : skip(`BackendType "${lease.attrs.BackendType}" is not ours ("${this.type}")`);
  }

  /** The VtepMAC in a lease's backend data when its VNI is ours; else "!" and the reason. */
  private peerMac(data: unknown, field = 'BackendData'): string {
    if (typeof data !== 'object' || data === null) return `!${field} missing`;
    const o = data as Record<string, unknown>;
    const mac = parseMac(o['VtepMAC']);
    if (mac === null) return `!VtepMAC ${JSON.stringify(o['VtepMAC'])} is not a MAC address`;
    const vni = o['VNI'] ?? 1;
    if (vni !== this.opts.vni) return `!VNI ${JSON.stringify(vni)} differs from ours (${this.opts.vni})`;
    return formatMac(mac);
  }

  protected async sync(): Promise<void> {
    let changes = 0;
    const summary: Record<string, unknown> = {};
    for (const d of this.devices) {
      await this.ensureDevice(d);
      const plans = d.family === 'IPv4' ? this.plan4() : this.plan6();
      const n = await this.syncDevice(d, plans);
      changes += n.routes.lines.length + n.neighbours + n.fdb;
      summary[d.name] = {
        routesReplaced: n.routes.restored,
        routesDeleted: n.routes.deleted,
        neighbourChanges: n.neighbours,
        fdbChanges: n.fdb,
      };
    }
    if (changes > 0) this.ctx.log.info(summary, 'kernel vxlan state synced');
  }

  /** Routes, neighbours and FDB entries of one device's family brought to `plans`. */
  private async syncDevice(
    d: VxlanDevice,
    plans: readonly Planned[],
  ): Promise<{ routes: RouteFixes; neighbours: number; fdb: number }> {
    const { ctx } = this;
    const iface = ctx.external.name;
    const direct = this.opts.directRouting;

    // Routes, both kinds, against the whole main table (a peer may move between direct and overlay).
    const devs = direct ? [d.name, iface] : [d.name];
    // Until the peer list is known, nothing is deleted (see PeerLeases.complete).
    const prune = this.peerSet.complete;
    const routes =
      d.family === 'IPv4' ? await this.routes4(plans, devs, prune) : await this.routes6(plans, devs, prune);

    // Neighbours: permanent <subnet address> -> VtepMAC; permanent ones nobody wants go.
    const neighLines: string[][] = [];
    const wantNeigh = new Map<string, string>();
    for (const { value: p } of plans) if (p.kind === 'vxlan') wantNeigh.set(p.gw, p.mac);
    const haveNeigh = await this.listNeighbours(d);
    for (const [dst, mac] of wantNeigh) {
      const h = haveNeigh.get(dst);
      if (h !== undefined && h.mac === mac && h.permanent) continue;
      neighLines.push(['neigh', 'replace', dst, 'lladdr', mac, 'dev', d.name, 'nud', 'permanent']);
    }
    for (const [dst, h] of haveNeigh)
      if (prune && h.permanent && !wantNeigh.has(dst)) neighLines.push(['neigh', 'del', dst, 'dev', d.name]);

    // Neighbours before routes: a route via a gateway without its neighbour would send one frame to nowhere.
    await applyLines([...neighLines, ...routes.lines]);

    // FDB: VtepMAC -> public address. `bridge` has no batch helper in iproute.ts; a change is one call per entry,
    // and in the steady state there are none.
    const wantFdb = new Set<string>();
    for (const { value: p } of plans) if (p.kind === 'vxlan') wantFdb.add(`${p.mac} ${p.publicIp}`);
    const haveFdb = new Set<string>();
    let fdb = 0;
    for (const e of await iproute.listFdb(d.name)) {
      if (e.dst === undefined) continue;
      const k = `${e.mac.toLowerCase()} ${e.dst}`;
      haveFdb.add(k);
      if (prune && !wantFdb.has(k)) {
        await iproute.fdbDel({ mac: e.mac, dev: d.name, dst: e.dst });
        fdb++;
      }
    }
    for (const k of wantFdb) {
      if (haveFdb.has(k)) continue;
      const [mac, dst] = k.split(' ') as [string, string];
      await iproute.fdbAppend({ mac, dev: d.name, dst });
      fdb++;
    }

    this.repaired.routes += routes.restored.length;
    this.repaired.neighbours += neighLines.length;
    this.repaired.fdb += fdb;
    return { routes, neighbours: neighLines.length, fdb };
  }

  private async routes4(plans: readonly Planned[], devs: string[], prune: boolean): Promise<RouteFixes> {
    const want: WantedRoute[] = plans.map(({ lease, value: p }) => ({
      dst: lease.subnet,
      via: p.gw,
      dev: p.kind === 'vxlan' ? this.device : this.ctx.external.name,
      onlink: p.kind === 'vxlan',
    }));
    return routeFixes(await iproute.listRoutes(), want, this.ctx.network.network, this.own, devs, prune);
  }

  private async routes6(plans: readonly Planned[], devs: string[], prune: boolean): Promise<RouteFixes> {
    const net = this.ctx.network.ipv6;
    const d = this.dev('IPv6');
    if (net === null || d === undefined) return { lines: [], restored: [], deleted: [] };
    const want: WantedRoute6[] = [];
    for (const { lease, value: p } of plans) {
      const dst = lease.ipv6Subnet ?? null;
      if (dst === null) continue;
      want.push({
        dst,
        via: p.gw,
        dev: p.kind === 'vxlan' ? d.name : this.ctx.external.name,
        onlink: p.kind === 'vxlan',
      });
    }
    const current = await iproute.listRoutes({ family: 6 });
    return routeFixes6(current, want, net.network, this.own6, devs, prune);
  }

  private async listNeighbours(d: VxlanDevice): Promise<Map<string, { mac: string; permanent: boolean }>> {
    const family = d.family === 'IPv4' ? '-4' : '-6';
    const json = await iproute.ip([family, 'neigh', 'show', 'dev', d.name], { json: true });
    const out = new Map<string, { mac: string; permanent: boolean }>();
    if (!Array.isArray(json)) return out;
    for (const o of json as unknown[]) {
      if (typeof o !== 'object' || o === null) continue;
      const r = o as Record<string, unknown>;
      const dst = r['dst'];
      const mac = r['lladdr'];
      const state = r['state'];
      if (typeof dst !== 'string') continue;
      out.set(dst, {
        mac: typeof mac === 'string' ? mac.toLowerCase() : '',
        permanent: Array.isArray(state) && state.includes('PERMANENT'),
      });
    }
    return out;
  }

  status(): BackendStatus {
    return {
      type: this.type,
      datapath: 'kernel/vxlan',
      device: this.devices.map((d) => d.name).join(','),
      peers: this.peerCount,
      counters: {
        resync_runs: this.resync.runs,
        resync_errors: this.resync.errors,
        routes_replaced: this.repaired.routes,
        neighbour_changes: this.repaired.neighbours,
        fdb_changes: this.repaired.fdb,
        device_recreated: this.repaired.device,
      },
    };
  }
}

function skip(why: string): Skip {
  return { skip: why, level: 'warn' };
}
