// Checks shared by every decoder: the inner packet must be a whole IPv4 packet. Returns its length (the IP total
// length, which drops link padding) or a negative DecodeVerdict.
import { DecodeVerdict } from './encap.js';

export function innerIPv4Length(buf: Buffer, off: number, avail: number): number {
  if (avail < 20) return DecodeVerdict.truncated;
  const vihl = buf[off] as number;
  if (vihl >> 4 !== 4) return DecodeVerdict.malformed;
  const ihl = (vihl & 0x0f) * 4;
  const total = ((buf[off + 2] as number) << 8) | (buf[off + 3] as number);
  if (ihl < 20 || total < ihl) return DecodeVerdict.malformed;
  if (total > avail) return DecodeVerdict.truncated;
  return total;
}
