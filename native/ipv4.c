/*
 * IPv4 header work shared by both directions (RFC 791): validation, TTL decrement
 * with incremental checksum (RFC 1624), and completing a partial TCP/UDP checksum.
 */
#include "weft.h"

/* Outbound: a TUN read is exactly one IPv4 packet, so total length must equal len. */
int weft_ipv4_valid_exact(const uint8_t *p, int32_t len) {
  if (len < 20) return 0;
  if ((p[0] >> 4) != 4) return 0;
  int32_t ihl = (p[0] & 0x0f) * 4;
  if (ihl < 20 || ihl > len) return 0;
  return weft_rd16(p + 2) == len;
}

/* Inbound: the payload may carry link padding; return the inner total length or -1. */
int32_t weft_ipv4_inner_len(const uint8_t *p, int32_t avail) {
  if (avail < 20) return -1;
  if ((p[0] >> 4) != 4) return -1;
  int32_t ihl = (p[0] & 0x0f) * 4;
  int32_t tot = weft_rd16(p + 2);
  if (ihl < 20 || ihl > avail || tot < ihl || tot > avail) return -1;
  return tot;
}

/* Returns 0 when the packet must not be forwarded (TTL <= 1); else decrements. */
int weft_ipv4_ttl_decrement(uint8_t *p) {
  uint8_t ttl = p[8];
  if (ttl <= 1) return 0;
  /* TTL shares a 16-bit word with the protocol byte. */
  uint16_t old_word = weft_rd16(p + 8);
  p[8] = (uint8_t)(ttl - 1);
  weft_wr16(p + 10, weft_csum_update16(weft_rd16(p + 10), old_word, weft_rd16(p + 8)));
  return 1;
}

/*
 * A kernel sender with CHECKSUM_PARTIAL leaves only the folded pseudo-header sum in
 * the TCP/UDP checksum field, and nothing completes it across veth + VXLAN. When the
 * field holds exactly that value, compute the real checksum; anything else is left
 * alone so real corruption still fails at the receiver. p is a valid IPv4 packet.
 */
void weft_ipv4_complete_l4_csum(uint8_t *p, int32_t len) {
  uint8_t proto = p[9];
  if (proto != 6 && proto != 17) return;
  if (weft_rd16(p + 6) & 0x3fff) return; /* fragment: checksum spans other packets */
  int32_t ihl = (p[0] & 0x0f) * 4;
  int32_t seg = len - ihl;
  int32_t field_at = proto == 6 ? 16 : 6;
  if (seg < (proto == 6 ? 20 : 8)) return;
  uint8_t *l4 = p + ihl;
  uint16_t field = weft_rd16(l4 + field_at);
  if (proto == 17 && field == 0) return; /* UDP: no checksum */
  uint64_t pseudo = weft_csum_add(0, p + 12, 8);
  pseudo += proto;
  pseudo += (uint32_t)seg;
  if (field != weft_csum_fold(pseudo)) return;
  weft_wr16(l4 + field_at, 0);
  uint16_t c = (uint16_t)~weft_csum_fold(weft_csum_add(pseudo, l4, (size_t)seg));
  if (proto == 17 && c == 0) c = 0xffff; /* RFC 768: zero means none */
  weft_wr16(l4 + field_at, c);
}
