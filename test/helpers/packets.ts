// IPv4 and IPv6 packets and Internet checksums built and checked in TypeScript, to hold against what C writes.
import { parseIPv6 } from '../../src/ip/ipv6.js';
import { parseIPv4 } from '../../src/ip/subnet.js';

/** The one's-complement sum (RFC 1071, folded, not inverted) of b[start, end) added to `init`; odd tails pad a 0. */
export function csum(b: Uint8Array, start = 0, end = b.length, init = 0): number {
  let s = init;
  for (let i = start; i < end; i += 2) s += (b[i]! << 8) + (i + 1 < end ? b[i + 1]! : 0);
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return s;
}

const isV6 = (p: Buffer, off: number) => p[off]! >> 4 === 6;
/** The IP packet's length by its header: IPv4's total length, IPv6's 40 + payload length. */
const ipLen = (p: Buffer, off: number) => (isV6(p, off) ? 40 + p.readUInt16BE(off + 4) : p.readUInt16BE(off + 2));
/** IP header length: IPv4's IHL, IPv6's fixed 40 (the L4 header follows it: no extension headers). */
const ipHdrLen = (p: Buffer, off: number) => (isV6(p, off) ? 40 : (p[off]! & 15) * 4);

/** The TCP/UDP pseudo-header sum (addresses, protocol, L4 length) of the IP packet at p[off, off + len); IPv6's
 *  (RFC 8200 section 8.1) when its version is 6. */
export function pseudoSum(p: Buffer, off = 0, len = ipLen(p, off)): number {
  const ihl = ipHdrLen(p, off);
  if (isV6(p, off)) return csum(p, off + 8, off + 40, p[off + 6]! + (len - ihl));
  return csum(p, off + 12, off + 20, p[off + 9]! + (len - ihl));
}

/** Pseudo header plus L4 bytes of the IP packet at p[off, off + len): 0xffff when its TCP/UDP checksum is right. */
export function l4Sum(p: Buffer, off = 0, len = ipLen(p, off)): number {
  return csum(p, off + ipHdrLen(p, off), off + len, pseudoSum(p, off, len));
}

/** The TCP/UDP checksum of the IP packet at p[off] (as long as its header says) verifies. */
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

export interface Ipv6Options {
  src?: string;
  dst?: string;
  /** Next header; default 58 (ICMPv6). */
  next?: number;
  /** Default 64. */
  hopLimit?: number;
  trafficClass?: number;
  flowLabel?: number;
  /** What follows the 40-byte header; or `len`, the packet's length, with zeros after the header. */
  payload?: Uint8Array;
  len?: number;
}

/** An IPv6 packet with no extension headers, fd00:5:1::2 -> fd00:5:2::3 unless told otherwise. */
export function ipv6Packet(o: Ipv6Options): Buffer {
  const p = Buffer.alloc(o.payload ? 40 + o.payload.length : (o.len ?? 40));
  p.writeUInt32BE(((6 << 28) | ((o.trafficClass ?? 0) << 20) | (o.flowLabel ?? 0)) >>> 0, 0);
  p.writeUInt16BE(p.length - 40, 4);
  p[6] = o.next ?? 58;
  p[7] = o.hopLimit ?? 64;
  for (const [at, text] of [
    [8, o.src ?? 'fd00:5:1::2'],
    [24, o.dst ?? 'fd00:5:2::3'],
  ] as const) {
    const a = parseIPv6(text);
    if (a === null) throw new TypeError(`'${text}' is not IPv6`);
    p.writeBigUInt64BE(a >> 64n, at);
    p.writeBigUInt64BE(a & 0xffff_ffff_ffff_ffffn, at + 8);
  }
  if (o.payload) p.set(o.payload, 40);
  return p;
}
