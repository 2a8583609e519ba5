// TTL decrement with the incremental checksum update of RFC 1624 (HC' = ~(~HC + ~m + m')), for the tiers and encaps
// that work in JS, and the header reads their route step makes. The native batch path does the same in C.

/** Decrements the TTL of the IPv4 header at `off`; returns false (and changes nothing) when it would reach zero. */
export function decrementTtl(buf: Buffer, off: number): boolean {
  const ttl = buf[off + 8] as number;
  if (ttl <= 1) return false;
  const oldWord = (ttl << 8) | (buf[off + 9] as number);
  const newWord = oldWord - 0x100;
  buf[off + 8] = ttl - 1;
  let sum = (~buf.readUInt16BE(off + 10) & 0xffff) + (~oldWord & 0xffff) + newWord;
  sum = (sum & 0xffff) + (sum >>> 16);
  sum = (sum & 0xffff) + (sum >>> 16);
  buf.writeUInt16BE(~sum & 0xffff, off + 10);
  return true;
}

/** Big-endian int32 at `off` (an IPv4 address in the int32 form the route table uses), without allocating. */
export function readIp(buf: Buffer, off: number): number {
  return (
    ((buf[off] as number) << 24) |
    ((buf[off + 1] as number) << 16) |
    ((buf[off + 2] as number) << 8) |
    (buf[off + 3] as number)
  );
}

/**
 * Whether the packet at `off` is IPv6 (version 6, at least its 40-byte header): routed by RouteTable6, or without
 * an IPv6 half dropped as no_route, not as malformed.
 */
export function isIPv6(buf: Buffer, off: number, len: number): boolean {
  return len >= 40 && (buf[off] as number) >> 4 === 6;
}

/** Decrements the hop limit of the IPv6 header at `off` (no header checksum in IPv6); false when it would reach 0. */
export function decrementHopLimit(buf: Buffer, off: number): boolean {
  const hops = buf[off + 7] as number;
  if (hops <= 1) return false;
  buf[off + 7] = hops - 1;
  return true;
}
