// Checks shared by every decoder: the inner packet must be a whole IPv4 or IPv6 packet. Returns its length (the IP
// total length, which drops link padding) or a negative DecodeVerdict.
import { DecodeVerdict } from './encap.js';

/** The EtherType (VXLAN) or Geneve protocol of the inner packet at `off`, by its version nibble. */
export function ethertypeOf(buf: Buffer, off: number): number {
  return (buf[off] as number) >> 4 === 6 ? 0x86dd : 0x0800;
}

/** innerIPv4Length, or for an IPv6 packet its 40-byte header plus payload length (no jumbograms). */
export function innerIPLength(buf: Buffer, off: number, avail: number): number {
  if (avail < 1 || (buf[off] as number) >> 4 !== 6) return innerIPv4Length(buf, off, avail);
  if (avail < 40) return DecodeVerdict.truncated;
  const payload = ((buf[off + 4] as number) << 8) | (buf[off + 5] as number);
  if (payload === 0) return DecodeVerdict.malformed;
  return 40 + payload > avail ? DecodeVerdict.truncated : 40 + payload;
}

function innerIPv4Length(buf: Buffer, off: number, avail: number): number {
  if (avail < 20) return DecodeVerdict.truncated;
  const vihl = buf[off] as number;
  if (vihl >> 4 !== 4) return DecodeVerdict.malformed;
  const ihl = (vihl & 0x0f) * 4;
  const total = ((buf[off + 2] as number) << 8) | (buf[off + 3] as number);
  if (ihl < 20 || total < ihl) return DecodeVerdict.malformed;
  if (total > avail) return DecodeVerdict.truncated;
  return total;
}
