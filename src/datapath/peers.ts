// Peers as the datapath sees them, and the table C reads to address datagrams.
//
// The peer table is a Buffer of fixed records that JS writes and C only reads (the queue is pointed at a new table
// between batches): PublicIP (IPv4 in the first 4 of 16 bytes, network order), UDP port (big-endian), VtepMAC, VNI
// (big-endian), flags (native.PEER_* offsets).
// A new table and RouteTable are built on every peer change and swapped in together between batches.
import type { PeerEncapInfo } from '../encap/encap.js';
import * as native from '../native.js';
import { type PeerEntry, type RouteEntry, RouteTable } from './routes.js';

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
}

export interface PeerSnapshot {
  readonly peers: readonly Peer[];
  readonly table: Buffer;
  readonly routes: RouteTable;
  /** Per peer index, "a.b.c.d": dgram's send wants a string; made once here, not per packet. */
  readonly addresses: readonly string[];
}

export function ipToString(ip: number): string {
  return `${(ip >>> 24) & 255}.${(ip >>> 16) & 255}.${(ip >>> 8) & 255}.${ip & 255}`;
}

export function buildPeerSnapshot(peers: readonly Peer[]): PeerSnapshot {
  const table = Buffer.alloc(Math.max(1, peers.length) * native.PEER_RECORD_SIZE);
  const routes: RouteEntry[] = [];
  const entries: PeerEntry[] = [];
  peers.forEach((p, index) => {
    const r = index * native.PEER_RECORD_SIZE;
    table.writeUInt32BE(p.publicIp >>> 0, r + native.PEER_ADDR);
    table.writeUInt16BE(p.port, r + native.PEER_PORT);
    p.encap.mac.copy(table, r + native.PEER_MAC, 0, 6);
    table.writeUInt32BE(p.encap.vni >>> 0, r + native.PEER_VNI);
    table[r + native.PEER_FLAGS] = p.partialCsum === true ? native.PEER_F_CSUM_PARTIAL : 0;
    routes.push({ net: p.net | 0, prefixLen: p.prefixLen, peer: index });
    entries.push({ index, publicIp: p.publicIp | 0, net: p.net | 0, prefixLen: p.prefixLen });
  });
  return { peers, table, routes: new RouteTable(routes, entries), addresses: peers.map((p) => ipToString(p.publicIp)) };
}
