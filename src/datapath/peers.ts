// Peers as the datapath sees them, and the table C reads to address datagrams.
//
// The peer table is a Buffer of fixed records that JS writes and C only reads (no native call to update it):
//   [0,4) PublicIP, network order   [4,6) UDP port, big-endian   [6,12) VtepMAC   [12,16) VNI, big-endian
// A new table and RouteTable are built on every peer change and swapped in together between batches.
import type { PeerEncapInfo } from '../encap/encap.js';
import { formatIPv4 } from '../ip/subnet.js';
import { PEER_RECORD_SIZE } from '../native.js';
import { type PeerEntry, type RouteEntry, RouteTable } from './routes.js';

export interface Peer {
  /** The peer's subnet (its lease key), the inner addresses it owns. */
  readonly net: number; // uint32
  readonly prefixLen: number;
  /** Outer address and port datagrams go to and come from. */
  readonly publicIp: number; // uint32
  readonly port: number;
  readonly encap: PeerEncapInfo;
}

export interface PeerSnapshot {
  readonly peers: readonly Peer[];
  readonly table: Buffer;
  readonly routes: RouteTable;
  /** Per peer index, "a.b.c.d": dgram's send wants a string; made once here, not per packet. */
  readonly addresses: readonly string[];
}

/** Writes record `index` of a peer table (layout above; the rest of the record is zero). */
export function writePeerRecord(
  table: Buffer,
  index: number,
  p: { readonly publicIp: number; readonly port: number; readonly mac: Uint8Array; readonly vni: number },
): void {
  const r = index * PEER_RECORD_SIZE;
  table.fill(0, r, r + PEER_RECORD_SIZE);
  table.writeUInt32BE(p.publicIp >>> 0, r);
  table.writeUInt16BE(p.port, r + 4);
  table.set(p.mac.subarray(0, 6), r + 6);
  table.writeUInt32BE(p.vni >>> 0, r + 12);
}

export function buildPeerSnapshot(peers: readonly Peer[]): PeerSnapshot {
  const table = Buffer.alloc(Math.max(1, peers.length) * PEER_RECORD_SIZE);
  const routes: RouteEntry[] = [];
  const entries: PeerEntry[] = [];
  peers.forEach((p, index) => {
    writePeerRecord(table, index, { publicIp: p.publicIp, port: p.port, mac: p.encap.mac, vni: p.encap.vni });
    routes.push({ net: p.net | 0, prefixLen: p.prefixLen, peer: index });
    entries.push({ index, publicIp: p.publicIp | 0, net: p.net | 0, prefixLen: p.prefixLen });
  });
  return { peers, table, routes: new RouteTable(routes, entries), addresses: peers.map((p) => formatIPv4(p.publicIp)) };
}
