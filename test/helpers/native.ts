// The addon as the tests see it: everything of src/native.ts, plus what only tests use — batch state with any slot
// size, peer records from dotted strings, address conversions, and the addon calls that write into Buffers instead
// of devices (GSO split, GRO coalescing) or read a socket's port.
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../../src/package-root.js';
import { formatIPv4, parseIPv4 } from '../../src/ip/subnet.js';
import { writePeerRecord as writeRecord } from '../../src/datapath/peers.js';
import { COUNTER_COUNT, PEER_RECORD_SIZE, SLOT_SIZE, dropNames, type DropName } from '../../src/native.js';

export * from '../../src/native.js';

interface TestAddon {
  readonly ENCAP_UDP_HLEN: number;
  readonly ENCAP_VXLAN_HLEN: number;
  readonly ENCAP_GENEVE_HLEN: number;
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
  ): number;
  gsoSplit(
    buf: Buffer,
    pktOff: number,
    len: number,
    mtu: number,
    out: Buffer,
    room: number,
    ttlDec: boolean,
    result: Int32Array,
    counters: Float64Array,
  ): number;
}

const addon = createRequire(import.meta.url)(join(PACKAGE_ROOT, 'build', 'Release', 'weft.node')) as TestAddon;

/** Header bytes encapBatch writes in front of the inner packet, by encap id. */
export const ENCAP_HEADER_LEN: readonly number[] = Object.freeze([
  addon.ENCAP_UDP_HLEN,
  addon.ENCAP_VXLAN_HLEN,
  addon.ENCAP_GENEVE_HLEN,
]);
/** getsockname(2): the UDP socket's local port. */
export const udpLocalPort: TestAddon['udpLocalPort'] = addon.udpLocalPort;
/** groWrite into a Buffer instead of TUN: outputs (virtio header + packet) back to back, lengths in outLen. */
export const groBuild: TestAddon['groBuild'] = addon.groBuild;
/** One super-packet at buf[pktOff] (virtio header before it) split into `out` at a stride of room + result[0];
 *  result[1] is the last segment's length. Returns the segment count or a negative verdict. */
export const gsoSplit: TestAddon['gsoSplit'] = addon.gsoSplit;

/** The drop reason of a negative verdict (undefined for a value that is not one). */
export function dropReasonOf(verdict: number): DropName | undefined {
  return dropNames[-verdict - 1];
}

/** A direction's batch state with any slot size, as the datapath's Batch holds it. */
export interface BatchState {
  readonly slots: number;
  readonly slotSize: number;
  readonly slab: Buffer;
  readonly len: Int32Array;
  readonly off: Int32Array;
  readonly peer: Int32Array;
  readonly addr: Uint32Array;
  readonly counters: Float64Array;
}

export function createBatch(
  slots: number,
  slotSize: number = SLOT_SIZE,
  counters: Float64Array = new Float64Array(COUNTER_COUNT),
): BatchState {
  if (!Number.isInteger(slots) || slots < 1 || slots * slotSize > 0x7fffffff) {
    throw new RangeError(`createBatch: slots ${slots} * slotSize ${slotSize} out of range`);
  }
  return {
    slots,
    slotSize,
    slab: Buffer.alloc(slots * slotSize),
    len: new Int32Array(slots),
    off: new Int32Array(slots),
    peer: new Int32Array(slots),
    addr: new Uint32Array(slots),
    counters,
  };
}

/** IPv4 dotted string -> host-order uint32 (as addr[] and icmpError's fromAddr use). */
export function ipv4ToU32(ip: string): number {
  const v = parseIPv4(ip);
  if (v === null) throw new TypeError(`'${ip}' is not dotted IPv4`);
  return v;
}

/** host-order uint32 -> dotted IPv4. */
export const u32ToIpv4 = formatIPv4;

/** Fills peer record `index` of a table through the datapath's writer. mac: 'aa:bb:..' or 6 bytes. */
export function writePeerRecord(
  table: Buffer,
  index: number,
  ipv4: string,
  port: number,
  mac: string | Uint8Array,
  vni: number,
): void {
  if (!Number.isInteger(index) || index < 0 || (index + 1) * PEER_RECORD_SIZE > table.length) {
    throw new RangeError(`peer index ${index} outside a table of ${table.length / PEER_RECORD_SIZE} records`);
  }
  const macBytes = typeof mac === 'string' ? Buffer.from(mac.split(':').join(''), 'hex') : mac;
  if (macBytes.length !== 6) throw new TypeError('peer VtepMAC must be 6 bytes');
  writeRecord(table, index, { publicIp: ipv4ToU32(ipv4), port, mac: macBytes, vni });
}
