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
// VtepMAC is stableMac(PublicIP, VNI), set on the device when it is created, so it survives restarts. An existing
// flannel.<VNI> with other settings (VNI, port, local address, learning, MAC) is deleted and created again.
//
// Every RESYNC_MS, and after each peer event, routes, neighbours and FDB entries are compared with the wanted state
// and only the differences are programmed (deleted entries come back; removed peers' entries go). On stop (SIGTERM)
// the device, neighbours, FDB entries and routes stay, as flanneld leaves them: pods keep talking across a daemon
// restart, and the restarted daemon finds the device as it wants it and reconciles the rest.
import { WeftError } from '../errors.js';
import type { Lease } from '../lease/lease.js';
import { formatIPv4 } from '../ip/subnet.js';
import { formatMac, parseMac } from '../encap/vxlan.js';
import * as iproute from '../net/iproute.js';
import type { Backend, BackendContext, BackendStatus } from './backend.js';
import { kernelVxlanOptions, type KernelVxlanOptions } from './config.js';
import { applyLines, KernelBackend, onSameL2, peerPublicIp, routeFixes, type WantedRoute } from './host-gw.js';
import { stableMac } from './vtep-mac.js';

/** Outer IPv4 (20) + UDP (8) + VXLAN (8) + inner Ethernet (14). */
export const VXLAN_OVERHEAD = 50;

/** What one usable peer gets: an overlay route (with neighbour and FDB entry) or, with DirectRouting, a plain one. */
type PeerPlan = { kind: 'vxlan'; gw: string; mac: string; publicIp: string } | { kind: 'direct'; publicIp: string };

export class KernelVxlanBackend extends KernelBackend implements Backend {
  readonly type = 'vxlan';
  readonly mtu: number;
  readonly device: string;
  private readonly opts: KernelVxlanOptions;
  private readonly mac: string;
  private readonly repaired = { routes: 0, neighbours: 0, fdb: 0, device: 0 };

  constructor(ctx: BackendContext) {
    super(ctx);
    this.opts = kernelVxlanOptions(ctx.network.backend);
    this.mtu = ctx.external.mtu - VXLAN_OVERHEAD;
    this.device = `flannel.${this.opts.vni}`;
    if (this.device.length > 15)
      throw new WeftError('WEFT_ERR_BACKEND', `device name ${this.device} is longer than 15 characters`);
    this.mac = formatMac(stableMac(ctx.external.publicIp, this.opts.vni));
  }

  /** flanneld's shape and key order: {"VNI":1,"VtepMAC":"aa:bb:..."}. */
  leaseData(): unknown {
    return { VNI: this.opts.vni, VtepMAC: this.mac };
  }

  async start(lease: Lease): Promise<void> {
    await this.adopt(lease);
    await this.ensureDevice();
    this.resync.start();
    this.ctx.log.info(
      {
        device: this.device,
        vtepMac: this.mac,
        mtu: this.mtu,
        port: this.opts.port,
        directRouting: this.opts.directRouting,
      },
      'kernel vxlan datapath up',
    );
  }

  // ---- the device ----

  /** Creates flannel.<VNI> as wanted (replacing one with other settings); sets MTU, our /32 address, up. */
  private async ensureDevice(): Promise<void> {
    const { ctx, device } = this;
    const have = await iproute.linkByName(device);
    const why = have === null ? null : this.deviceMismatch(have);
    if (have !== null && why !== null) {
      ctx.log.warn({ device, reason: why }, 'existing vxlan device has other settings: replacing it');
      await iproute.linkDel(device);
    }
    if (have === null || why !== null) {
      await iproute.linkAddVxlan({
        name: device,
        vni: this.opts.vni,
        port: this.opts.port,
        local: ctx.external.ifaceIp,
        dev: ctx.external.name,
        learning: false,
        mtu: this.mtu,
        mac: this.mac,
      });
      if (have === null && this.resync.runs > 0) this.repaired.device++;
      ctx.log.info({ device, vni: this.opts.vni, vtepMac: this.mac }, 'vxlan device created');
    }
    if (this.own === null) return;
    const cidr = `${formatIPv4(this.own.ip)}/32`;
    const iface = await iproute.interfaceByName(device);
    const lines: string[][] = [];
    for (const old of iface?.cidrs ?? []) if (old !== cidr) lines.push(['addr', 'del', old, 'dev', device]);
    if (!(iface?.cidrs ?? []).includes(cidr)) lines.push(['addr', 'replace', cidr, 'dev', device]);
    if (iface === null || iface.mtu !== this.mtu || !iface.up)
      lines.push(['link', 'set', 'dev', device, 'mtu', String(this.mtu), 'up']);
    await applyLines(lines);
  }

  private deviceMismatch(l: iproute.LinkInfo): string | null {
    const d = l.data;
    if (l.kind !== 'vxlan') return `kind ${l.kind ?? 'none'}, not vxlan`;
    if (d['id'] !== this.opts.vni) return `VNI ${String(d['id'])}, want ${this.opts.vni}`;
    if (d['port'] !== this.opts.port) return `port ${String(d['port'])}, want ${this.opts.port}`;
    if (d['local'] !== this.ctx.external.ifaceIp)
      return `local ${String(d['local'])}, want ${this.ctx.external.ifaceIp}`;
    if (d['learning'] !== false) return 'learning on';
    if (l.mac?.toLowerCase() !== this.mac) return `MAC ${l.mac ?? 'none'}, want ${this.mac}`;
    return null;
  }

  // ---- re-sync ----

  private plan(): Array<{ lease: Lease; value: PeerPlan }> {
    const l2 = this.l2;
    return this.peerSet.usable<PeerPlan>((lease) => {
      const skip = (why: string) => ({ skip: why, level: 'warn' as const });
      if (lease.attrs.BackendType !== this.type)
        return skip(`BackendType "${lease.attrs.BackendType}" is not ours ("${this.type}")`);
      const ip = peerPublicIp(lease);
      if (typeof ip === 'string') return skip(ip);
      const publicIp = formatIPv4(ip);
      if (this.opts.directRouting && l2 !== null && onSameL2(l2, ip)) return { kind: 'direct', publicIp };
      const data = lease.attrs.BackendData;
      if (typeof data !== 'object' || data === null) return skip('BackendData missing');
      const d = data as Record<string, unknown>;
      const mac = parseMac(d['VtepMAC']);
      if (mac === null) return skip(`VtepMAC ${JSON.stringify(d['VtepMAC'])} is not a MAC address`);
      const vni = d['VNI'] ?? 1;
      if (vni !== this.opts.vni) return skip(`VNI ${JSON.stringify(vni)} differs from ours (${this.opts.vni})`);
      return { kind: 'vxlan', gw: formatIPv4(lease.subnet.ip), mac: formatMac(mac), publicIp };
    });
  }

  protected async sync(): Promise<void> {
    const { device, ctx } = this;
    await this.ensureDevice();
    const plans = this.plan();
    const iface = ctx.external.name;

    // Routes, both kinds, against the whole main table (a peer may move between direct and overlay).
    const want: WantedRoute[] = plans.map(({ lease, value }) =>
      value.kind === 'vxlan'
        ? { dst: lease.subnet, via: value.gw, dev: device, onlink: true }
        : { dst: lease.subnet, via: value.publicIp, dev: iface, onlink: false },
    );
    const devs = this.opts.directRouting ? [device, iface] : [device];
    // Until the peer list is known, nothing is deleted (see PeerLeases.complete).
    const prune = this.peerSet.complete;
    const fix = routeFixes(await iproute.listRoutes(), want, ctx.network.network, this.own, devs, prune);

    // Neighbours: permanent <subnet>.0 -> VtepMAC; permanent ones nobody wants go.
    const neighLines: string[][] = [];
    const wantNeigh = new Map<string, string>();
    for (const { value } of plans) if (value.kind === 'vxlan') wantNeigh.set(value.gw, value.mac);
    const haveNeigh = await this.listNeighbours();
    for (const [dst, mac] of wantNeigh) {
      const h = haveNeigh.get(dst);
      if (h !== undefined && h.mac === mac && h.permanent) continue;
      neighLines.push(['neigh', 'replace', dst, 'lladdr', mac, 'dev', device, 'nud', 'permanent']);
    }
    for (const [dst, h] of haveNeigh)
      if (prune && h.permanent && !wantNeigh.has(dst)) neighLines.push(['neigh', 'del', dst, 'dev', device]);

    // Neighbours before routes: a route via a gateway without its neighbour would send one frame to nowhere.
    await applyLines([...neighLines, ...fix.lines]);

    // FDB: VtepMAC -> PublicIP. `bridge` has no batch helper in iproute.ts; a change is one call per entry, and in
    // the steady state there are none.
    const wantFdb = new Set<string>();
    for (const { value } of plans) if (value.kind === 'vxlan') wantFdb.add(`${value.mac} ${value.publicIp}`);
    const haveFdb = new Set<string>();
    let fdbChanges = 0;
    for (const e of await iproute.listFdb(device)) {
      if (e.dst === undefined) continue;
      const k = `${e.mac.toLowerCase()} ${e.dst}`;
      haveFdb.add(k);
      if (prune && !wantFdb.has(k)) {
        await iproute.fdbDel({ mac: e.mac, dev: device, dst: e.dst });
        fdbChanges++;
      }
    }
    for (const k of wantFdb) {
      if (haveFdb.has(k)) continue;
      const [mac, dst] = k.split(' ') as [string, string];
      await iproute.fdbAppend({ mac, dev: device, dst });
      fdbChanges++;
    }

    this.repaired.routes += fix.restored.length;
    this.repaired.neighbours += neighLines.length;
    this.repaired.fdb += fdbChanges;
    if (neighLines.length + fix.lines.length + fdbChanges > 0) {
      ctx.log.info(
        { routesReplaced: fix.restored, routesDeleted: fix.deleted, neighbourChanges: neighLines.length, fdbChanges },
        'kernel vxlan state synced',
      );
    }
  }

  private async listNeighbours(): Promise<Map<string, { mac: string; permanent: boolean }>> {
    const json = await iproute.ip(['-4', 'neigh', 'show', 'dev', this.device], { json: true });
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
      device: this.device,
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
