// Peers as the datapath sees them, and the table C reads to address datagrams.
//
// The peer table is a Buffer of fixed records that JS writes and C only reads (the queue is pointed at a new table
// between batches): PublicIP (IPv4 in the first 4 of 16 bytes, network order), UDP port (big-endian), VtepMAC, VNI
// (big-endian), flags (native.PEER_* offsets).
// A new table and RouteTable are built on every peer change and swapped in together between batches.
import type { PeerEncapInfo } from '../encap/encap.js';
import type { PublicKey } from '../wireguard/keys.js';
import { formatIPv4 } from '../ip/subnet.js';
import type { Subnet6 } from '../ip/ipv6.js';
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
  /**
   * With EnableIPv6, from a dual-stack lease: the peer's IPv6 subnet and PublicIPv6 (BackendV6Data's VtepMAC is in
   * `encap6`). The tiers do not forward IPv6 yet; the route table and peer records ignore these.
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
  /** Per peer index, "a.b.c.d": dgram's send wants a string; made once here, not per packet. */
  readonly addresses: readonly string[];
}

/** What one record of the peer table holds. */
export interface PeerRecord {
  readonly publicIp: number;
  readonly port: number;
  readonly mac: Uint8Array;
  readonly vni: number;
  readonly partialCsum?: boolean;
}

/** Writes record `index` of a peer table (layout above; the rest of the record is zero). */
export function writePeerRecord(table: Buffer, index: number, p: PeerRecord): void {
  const r = index * native.PEER_RECORD_SIZE;
  table.fill(0, r, r + native.PEER_RECORD_SIZE);
  table.writeUInt32BE(p.publicIp >>> 0, r + native.PEER_ADDR);
  table.writeUInt16BE(p.port, r + native.PEER_PORT);
  table.set(p.mac.subarray(0, 6), r + native.PEER_MAC);
  table.writeUInt32BE(p.vni >>> 0, r + native.PEER_VNI);
  table[r + native.PEER_FLAGS] = p.partialCsum === true ? native.PEER_F_CSUM_PARTIAL : 0;
}

export function buildPeerSnapshot(peers: readonly Peer[]): PeerSnapshot {
  const table = Buffer.alloc(Math.max(1, peers.length) * native.PEER_RECORD_SIZE);
  const routes: RouteEntry[] = [];
  const entries: PeerEntry[] = [];
  peers.forEach((p, index) => {
    const { publicIp, port, encap, partialCsum } = p;
    writePeerRecord(table, index, { publicIp, port, mac: encap.mac, vni: encap.vni, partialCsum });
    routes.push({ net: p.net | 0, prefixLen: p.prefixLen, peer: index });
    entries.push({ index, publicIp: p.publicIp | 0, net: p.net | 0, prefixLen: p.prefixLen });
  });
  return { peers, table, routes: new RouteTable(routes, entries), addresses: peers.map((p) => formatIPv4(p.publicIp)) };
}
