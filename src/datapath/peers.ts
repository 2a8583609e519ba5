// Peers as the datapath sees them, and the table C reads to address datagrams.
//
// The peer table is a Buffer of fixed records that JS writes and C only reads (the queue is pointed at a new table
// between batches): PublicIP (IPv4 in the first 4 of 16 bytes, network order; all 16 for an IPv6 record), UDP port
// (big-endian), VtepMAC, VNI (big-endian), flags (native.PEER_* offsets).
// Records 0 .. peers.length - 1 are the peers' IPv4 halves, in peer order; after them come the IPv6 halves of the
// dual-stack peers (PublicIPv6, BackendV6Data's VtepMAC, PEER_F_IPV6), which inner IPv6 packets go to: as flannel,
// IPv6 overlay traffic travels between PublicIPv6 addresses.
// A new table and route tables are built on every peer change and swapped in together between batches.
import type { PeerEncapInfo } from '../encap/encap.js';
import type { PublicKey } from '../wireguard/keys.js';
import { formatIPv4 } from '../ip/subnet.js';
import { formatIPv6, type Subnet6 } from '../ip/ipv6.js';
import * as native from '../native.js';
import { type PeerEntry, type RouteEntry, RouteTable } from './routes.js';
import { type Peer6Entry, type Route6Entry, RouteTable6 } from './routes6.js';

export interface Peer {
  /** The peer's subnet (its lease key), the inner addresses it owns. */
  readonly net: number; // uint32
  readonly prefixLen: number;
  /** Outer address and port datagrams go to and come from. */
  readonly publicIp: number; // uint32
  readonly port: number;
  readonly encap: PeerEncapInfo;
  /** The peer's lease says it takes partial inner checksums (a weft offload-tier host): GSO skips the payload sum. */
  readonly partialCsum?: boolean;
  /**
   * With EnableIPv6, from a dual-stack lease: the peer's IPv6 subnet and PublicIPv6 (BackendV6Data's VtepMAC is in
   * `encap6`). All three present: the peer gets an IPv6 record and a route in RouteTable6.
   */
  readonly ipv6Subnet?: Subnet6;
  readonly publicIpv6?: bigint;
  readonly encap6?: PeerEncapInfo;
  /** A WireGuard peer's public key (its lease's BackendData.PublicKey): packets to it are sealed for it, packets
   *  opened with its key must come from its subnet. */
  readonly wgKey?: PublicKey;
}

export interface PeerSnapshot {
  readonly peers: readonly Peer[];
  readonly table: Buffer;
  readonly routes: RouteTable;
  readonly routes6: RouteTable6;
  /** Per record, its outer address as text ("a.b.c.d" or IPv6): dgram's send wants a string; made once here. */
  readonly addresses: readonly string[];
  /** Per record, the peer it belongs to (the index into peers and the per-peer counters). */
  readonly recordPeer: Int32Array;
}

/** The encap data of a record: the peer's, or for an IPv6 record (index >= peers.length) its IPv6 half's. */
export function recordEncap(snap: PeerSnapshot, record: number): PeerEncapInfo {
  const p = snap.peers[snap.recordPeer[record] as number]!;
  return record >= snap.peers.length && p.encap6 ? p.encap6 : p.encap;
}

/** What one record of the peer table holds. */
export interface PeerRecord {
  readonly publicIp: number;
  readonly port: number;
  readonly mac: Uint8Array;
  readonly vni: number;
  readonly partialCsum?: boolean;
  /** An IPv6 record: `publicIp` is unused and `publicIpv6` is the address. */
  readonly publicIpv6?: bigint;
}

/** Writes record `index` of a peer table (layout above; the rest of the record is zero). */
export function writePeerRecord(table: Buffer, index: number, p: PeerRecord): void {
  const r = index * native.PEER_RECORD_SIZE;
  table.fill(0, r, r + native.PEER_RECORD_SIZE);
  if (p.publicIpv6 !== undefined) {
    for (let i = 0; i < 16; i++)
      table[r + native.PEER_ADDR + i] = Number((p.publicIpv6 >> BigInt(120 - 8 * i)) & 0xffn);
  } else {
    table.writeUInt32BE(p.publicIp >>> 0, r + native.PEER_ADDR);
  }
  table.writeUInt16BE(p.port, r + native.PEER_PORT);
  table.set(p.mac.subarray(0, 6), r + native.PEER_MAC);
  table.writeUInt32BE(p.vni >>> 0, r + native.PEER_VNI);
  table[r + native.PEER_FLAGS] =
    (p.partialCsum === true ? native.PEER_F_CSUM_PARTIAL : 0) | (p.publicIpv6 !== undefined ? native.PEER_F_IPV6 : 0);
}

export function buildPeerSnapshot(peers: readonly Peer[]): PeerSnapshot {
  const halves6 = peers.flatMap((p, peer) => {
    const { ipv6Subnet, publicIpv6, encap6 } = p;
    return ipv6Subnet && publicIpv6 !== undefined && encap6 ? [{ peer, ipv6Subnet, publicIpv6, encap6 }] : [];
  });
  const records = peers.length + halves6.length;
  const table = Buffer.alloc(Math.max(1, records) * native.PEER_RECORD_SIZE);
  const routes: RouteEntry[] = [];
  const entries: PeerEntry[] = [];
  const recordPeer = new Int32Array(records);
  const addresses = peers.map((p) => formatIPv4(p.publicIp));
  peers.forEach((p, index) => {
    const { publicIp, port, encap, partialCsum } = p;
    writePeerRecord(table, index, { publicIp, port, mac: encap.mac, vni: encap.vni, partialCsum });
    routes.push({ net: p.net | 0, prefixLen: p.prefixLen, peer: index });
    entries.push({ index, publicIp: p.publicIp | 0, net: p.net | 0, prefixLen: p.prefixLen });
    recordPeer[index] = index;
  });
  const routes6: Route6Entry[] = [];
  const entries6: Peer6Entry[] = [];
  halves6.forEach((h, k) => {
    const record = peers.length + k;
    const { port } = peers[h.peer]!;
    writePeerRecord(table, record, {
      publicIp: 0,
      publicIpv6: h.publicIpv6,
      port,
      mac: h.encap6.mac,
      vni: h.encap6.vni,
    });
    const { ip: net, prefixLen } = h.ipv6Subnet;
    routes6.push({ net, prefixLen, record });
    entries6.push({ record, publicIp: h.publicIpv6, net, prefixLen });
    recordPeer[record] = h.peer;
    addresses.push(formatIPv6(h.publicIpv6));
  });
  return {
    peers,
    table,
    routes: new RouteTable(routes, entries),
    routes6: new RouteTable6(routes6, entries6, records),
    addresses,
    recordPeer,
  };
}
