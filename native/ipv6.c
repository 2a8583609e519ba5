/*
 * IPv6 header work shared by both directions (RFC 8200): validation, the hop-limit decrement (no header checksum in
 * IPv6, so nothing else changes), and completing a partial TCP/UDP checksum with the IPv6 pseudo-header (RFC 8200
 * section 8.1). The ipv4.c counterparts take the same arguments; weft_ip_* pick by the version nibble.
 */
#include "weft.h"

#define IPV6_HLEN 40

/* Outbound: a TUN read is exactly one IPv6 packet (no jumbogram: payload length 0 is refused). */
int weft_ipv6_valid_exact(const uint8_t *p, int32_t len) {
  if (len < IPV6_HLEN || (p[0] >> 4) != 6) return 0;
  int32_t plen = weft_rd16(p + 4);
  return plen > 0 && IPV6_HLEN + plen == len;
}

/* Inbound: the payload may carry link padding; return the inner total length or -1. */
int32_t weft_ipv6_inner_len(const uint8_t *p, int32_t avail) {
  if (avail < IPV6_HLEN || (p[0] >> 4) != 6) return -1;
  int32_t tot = IPV6_HLEN + weft_rd16(p + 4);
  if (tot == IPV6_HLEN || tot > avail) return -1;
  return tot;
}

/* Returns 0 when the packet must not be forwarded (hop limit <= 1); else decrements. */
int weft_ipv6_hop_decrement(uint8_t *p) {
  if (p[7] <= 1) return 0;
  p[7]--;
  return 1;
}

/* As weft_ipv4_complete_l4_csum: only when TCP or UDP follows the fixed header directly (a partial checksum behind
 * extension headers is left alone) and the field holds exactly the folded pseudo-header sum. */
void weft_ipv6_complete_l4_csum(uint8_t *p, int32_t len) {
  uint8_t proto = p[6];
  if (proto != 6 && proto != 17) return;
  int32_t seg = len - IPV6_HLEN, field_at = proto == 6 ? 16 : 6;
  if (seg < (proto == 6 ? 20 : 8)) return;
  uint8_t *l4 = p + IPV6_HLEN;
  uint16_t field = weft_rd16(l4 + field_at);
  uint64_t pseudo = weft_csum_pseudo6(p, proto, (uint32_t)seg);
  if (field != weft_csum_fold(pseudo)) return;
  weft_wr16(l4 + field_at, 0);
  uint16_t c = (uint16_t)~weft_csum_fold(weft_csum_add(pseudo, l4, (size_t)seg));
  if (proto == 17 && c == 0) c = 0xffff; /* RFC 8200 8.1: a zero UDP checksum is sent as 0xffff */
  weft_wr16(l4 + field_at, c);
}

int weft_ip_valid_exact(const uint8_t *p, int32_t len) {
  return len > 0 && (p[0] >> 4) == 6 ? weft_ipv6_valid_exact(p, len) : weft_ipv4_valid_exact(p, len);
}

int32_t weft_ip_inner_len(const uint8_t *p, int32_t avail) {
  return avail > 0 && (p[0] >> 4) == 6 ? weft_ipv6_inner_len(p, avail) : weft_ipv4_inner_len(p, avail);
}

void weft_ip_complete_l4_csum(uint8_t *p, int32_t len) {
  if (len > 0 && (p[0] >> 4) == 6) weft_ipv6_complete_l4_csum(p, len);
  else weft_ipv4_complete_l4_csum(p, len);
}
