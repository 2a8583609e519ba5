// IPv4 packets and Internet checksums built and checked in TypeScript, to hold against what C writes.
import { parseIPv4 } from '../../src/ip/subnet.js';

/** The one's-complement sum (RFC 1071, folded, not inverted) of b[start, end) added to `init`; odd tails pad a 0. */
export function csum(b: Uint8Array, start = 0, end = b.length, init = 0): number {
  let s = init;
  for (let i = start; i < end; i += 2) s += (b[i]! << 8) + (i + 1 < end ? b[i + 1]! : 0);
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return s;
}

/** The TCP/UDP pseudo-header sum (addresses, protocol, L4 length) of the IPv4 packet at p[off, off + len). */
export function pseudoSum(p: Buffer, off = 0, len = p.readUInt16BE(off + 2)): number {
  const ihl = (p[off]! & 15) * 4;
  return csum(p, off + 12, off + 20, p[off + 9]! + (len - ihl));
}

/** Pseudo header plus L4 bytes of the IPv4 packet at p[off, off + len): 0xffff when its TCP/UDP checksum is right. */
export function l4Sum(p: Buffer, off = 0, len = p.readUInt16BE(off + 2)): number {
  const ihl = (p[off]! & 15) * 4;
  return csum(p, off + ihl, off + len, pseudoSum(p, off, len));
}

/** The TCP/UDP checksum of the IPv4 packet at p[off] (as long as its total length) verifies. */
export function l4Valid(p: Buffer, off = 0): boolean {
  return l4Sum(p, off) === 0xffff;
}

/** The header checksum of the IPv4 packet at p[off] verifies. */
export function ipValid(p: Buffer, off = 0): boolean {
  return csum(p, off, off + (p[off]! & 15) * 4) === 0xffff;
}

export interface Ipv4Options {
  src?: string;
  dst?: string;
  /** Default 1 (ICMP). */
  proto?: number;
  ttl?: number;
  /** Default 0x1234. */
  id?: number;
  /** Flags and fragment offset; default 0x4000 (DF). */
  frag?: number;
  /** What follows the 20-byte header; or `len`, the total length, with zeros after the header. */
  payload?: Uint8Array;
  len?: number;
}

function addr(s: string): number {
  const ip = parseIPv4(s);
  if (ip === null) throw new TypeError(`'${s}' is not dotted IPv4`);
  return ip;
}

/** An IPv4 packet with a 20-byte header (valid checksum), 10.5.1.2 -> 10.5.2.3 unless told otherwise. */
export function ipv4Packet(o: Ipv4Options): Buffer {
  const p = Buffer.alloc(o.payload ? 20 + o.payload.length : (o.len ?? 20));
  p[0] = 0x45;
  p.writeUInt16BE(p.length, 2);
  p.writeUInt16BE(o.id ?? 0x1234, 4);
  p.writeUInt16BE(o.frag ?? 0x4000, 6);
  p[8] = o.ttl ?? 64;
  p[9] = o.proto ?? 1;
  p.writeUInt32BE(addr(o.src ?? '10.5.1.2'), 12);
  p.writeUInt32BE(addr(o.dst ?? '10.5.2.3'), 16);
  p.writeUInt16BE(~csum(p, 0, 20) & 0xffff, 10);
  if (o.payload) p.set(o.payload, 20);
  return p;
}
