// The offload tier's GSO split and GRO coalescing driven on hand-made packets through the addon's test-only calls
// (gsoSplit, groBuild): a virtio header in front of a super-packet, segments and outputs read back as Buffers.
import * as n from './native.js';
import { pseudoSum } from './packets.js';

const VH = n.VNET_HDR_LEN;

/** virtio_net_hdr fields (linux/virtio_net.h); defaults: NEEDS_CSUM, GSO_TCPV4, csum at 20 + 16. */
export interface Vnet {
  flags?: number;
  type?: number;
  hdrLen?: number;
  gsoSize?: number;
  csumStart?: number;
  csumOff?: number;
}
/** virtio_net_hdr + packet; for GSO the L4 checksum field is turned into the partial (pseudo-header) sum. */
export function withVnet(p: Buffer, v: Vnet, partial = true): Buffer {
  const b = Buffer.alloc(VH + p.length);
  b[0] = v.flags ?? 1;
  b[1] = v.type ?? 1;
  b.writeUInt16LE(v.hdrLen ?? 0, 2);
  b.writeUInt16LE(v.gsoSize ?? 0, 4);
  b.writeUInt16LE(v.csumStart ?? 20, 6);
  b.writeUInt16LE(v.csumOff ?? 16, 8);
  p.copy(b, VH);
  if (partial && (v.flags ?? 1) & 1) {
    const field = VH + (v.csumStart ?? 20) + (v.csumOff ?? 16);
    b.writeUInt16BE(pseudoSum(p, 0, p.length), field);
  }
  return b;
}

/** gsoSplit of a withVnet buffer: the count (or verdict), each segment, the counters and the stride. */
export function split(b: Buffer, mtu = 1450, room = 0, ttlDec = false, partial = false) {
  const out = Buffer.alloc(200_000);
  const result = new Int32Array(2);
  const counters = new Float64Array(n.COUNTER_COUNT);
  const flags = (ttlDec ? n.GSO_TTL_DEC : 0) | (partial ? n.GSO_CSUM_PARTIAL : 0);
  const count = n.gsoSplit(b, VH, b.length - VH, mtu, out, room, flags, result, counters);
  const segs: Buffer[] = [];
  for (let k = 0; k < count; k++) {
    const at = k * (room + (result[0] as number)) + room;
    segs.push(out.subarray(at, at + (k === count - 1 ? (result[1] as number) : (result[0] as number))));
  }
  return { count, segs, counters, stride: room + (result[0] as number) };
}

/** len bytes of a fixed, non-repeating-per-byte pattern. */
export const payload = (len: number) => Buffer.from(Array.from({ length: len }, (_, i) => (i * 7 + 3) & 255));

/** groBuild over `packets` laid back to back: each output's virtio header and packet. extra may rewrite the segment
 *  offsets and lengths first; mtu as groBuild's. */
export function gro(
  packets: Buffer[],
  coalesce = true,
  extra?: (off: Int32Array, len: Int32Array) => void,
  mtu?: number,
) {
  const slab = Buffer.concat(packets);
  const off = new Int32Array(packets.length);
  const len = new Int32Array(packets.length);
  let at = 0;
  packets.forEach((p, i) => {
    off[i] = at;
    len[i] = p.length;
    at += p.length;
  });
  extra?.(off, len);
  const out = Buffer.alloc(slab.length + packets.length * VH + 100);
  const outLen = new Int32Array(packets.length);
  const counters = new Float64Array(n.COUNTER_COUNT);
  const count = n.groBuild(slab, off, len, packets.length, coalesce, out, outLen, counters, mtu);
  const res: { vh: Buffer; pkt: Buffer }[] = [];
  let pos = 0;
  for (let i = 0; i < count; i++) {
    const l = outLen[i] as number;
    res.push({ vh: out.subarray(pos, pos + VH), pkt: out.subarray(pos + VH, pos + l) });
    pos += l;
  }
  return { res, counters, len };
}
