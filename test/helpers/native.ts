// The addon as the tests see it: everything of src/native.ts, plus what only tests use — peer records from dotted
// strings, address conversions, drop reasons by verdict, and the addon calls that write into Buffers instead of
// devices (GSO split, GRO coalescing) or read a socket's port. Queues without devices are in queue.ts.
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../../src/package-root.js';
import { formatIPv4, parseIPv4 } from '../../src/ip/subnet.js';
import { writePeerRecord as writeRecord } from '../../src/datapath/peers.js';
import { PEER_F_CSUM_PARTIAL, PEER_RECORD_SIZE } from '../../src/native.js';

export * from '../../src/native.js';
export { dropReasonOf } from '../../src/verdicts.js';

interface TestAddon {
  readonly ENCAP_UDP_HLEN: number;
  readonly ENCAP_VXLAN_HLEN: number;
  readonly ENCAP_GENEVE_HLEN: number;
  readonly GSO_TTL_DEC: number;
  readonly GSO_CSUM_PARTIAL: number;
  udpLocalPort(fd: number): number;
  groBuild(
    slab: Buffer,
    segOff: Int32Array,
    segLen: Int32Array,
    count: number,
    coalesce: boolean,
    out: Buffer,
    outLen: Int32Array,
    counters: Float64Array,
    mtu?: number,
  ): number;
  gsoSplit(
    buf: Buffer,
    pktOff: number,
    len: number,
    mtu: number,
    out: Buffer,
    room: number,
    flags: number,
    result: Int32Array,
    counters: Float64Array,
  ): number;
}

const addon = createRequire(import.meta.url)(join(PACKAGE_ROOT, 'build', 'Release', 'weft.node')) as TestAddon;

/** Header bytes outEncap writes in front of the inner packet, by encap id. */
export const ENCAP_HEADER_LEN: readonly number[] = Object.freeze([
  addon.ENCAP_UDP_HLEN,
  addon.ENCAP_VXLAN_HLEN,
  addon.ENCAP_GENEVE_HLEN,
]);
/** getsockname(2): the UDP socket's local port. */
export const udpLocalPort: TestAddon['udpLocalPort'] = addon.udpLocalPort;
/** Coalesce like inWrite but into a Buffer: outputs (virtio header + packet) back to back, lengths in outLen. mtu
 *  (the TUN's; absent = no limit): a lone TCP packet longer than it goes out as a GSO super-packet for the kernel. */
export const groBuild: TestAddon['groBuild'] = addon.groBuild;
/** One super-packet at buf[pktOff] (virtio header before it) split into `out` at a stride of room + result[0];
 *  result[1] is the last segment's length. Returns the segment count or a negative verdict. */
export const gsoSplit: TestAddon['gsoSplit'] = addon.gsoSplit;
/** gsoSplit flags: decrement each segment's TTL; leave TCP/UDP checksums partial (the peer takes them so). */
export const GSO_TTL_DEC: number = addon.GSO_TTL_DEC;
export const GSO_CSUM_PARTIAL: number = addon.GSO_CSUM_PARTIAL;

/** IPv4 dotted string -> host-order uint32 (as addr[] and icmpError's fromAddr use). */
export function ipv4ToU32(ip: string): number {
  const v = parseIPv4(ip);
  if (v === null) throw new TypeError(`'${ip}' is not dotted IPv4`);
  return v;
}

/** host-order uint32 -> dotted IPv4. */
export const u32ToIpv4 = formatIPv4;

/** Fills peer record `index` of a table through the datapath's writer. mac: 'aa:bb:..' or 6 bytes; flags: PEER_F_*. */
export function writePeerRecord(
  table: Buffer,
  index: number,
  ipv4: string,
  port: number,
  mac: string | Uint8Array,
  vni: number,
  flags = 0,
): void {
  if (!Number.isInteger(index) || index < 0 || (index + 1) * PEER_RECORD_SIZE > table.length) {
    throw new RangeError(`peer index ${index} outside a table of ${table.length / PEER_RECORD_SIZE} records`);
  }
  const macBytes = typeof mac === 'string' ? Buffer.from(mac.split(':').join(''), 'hex') : mac;
  if (macBytes.length !== 6) throw new TypeError('peer VtepMAC must be 6 bytes');
  const partialCsum = (flags & PEER_F_CSUM_PARTIAL) !== 0;
  writeRecord(table, index, { publicIp: ipv4ToU32(ipv4), port, mac: macBytes, vni, partialCsum });
}
