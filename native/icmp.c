/*
 * ICMPv4 error messages, RFC 792, with the limits of RFC 1812 section 4.3.2.7:
 * never about an ICMP error, a non-first fragment, or a packet whose source is not
 * a unicast host or whose destination is multicast/broadcast. The quote is the
 * original IP header plus the first 8 bytes of its payload (RFC 792).
 */
#include "weft.h"

#include <string.h>

static int icmp_is_error_type(uint8_t t) { return t == 3 || t == 4 || t == 5 || t == 11 || t == 12; }

static int unicast_host(uint32_t a) {
  return a != 0 && (a >> 24) != 127 && (a >> 28) < 14; /* not 0, loopback, multicast, class E */
}

int32_t weft_icmp_error_build(const uint8_t *pkt, int32_t pkt_len, uint8_t type, uint8_t code, uint32_t from_addr,
                              uint8_t *scratch, int32_t scratch_cap) {
  if (pkt_len < 20 || (pkt[0] >> 4) != 4) return 0;
  int32_t ihl = (pkt[0] & 0x0f) * 4;
  if (ihl < 20 || ihl > pkt_len) return 0;
  if (weft_rd16(pkt + 6) & 0x1fff) return 0; /* non-first fragment */
  int32_t tot = weft_rd16(pkt + 2);
  if (tot > pkt_len) tot = pkt_len;
  if (tot < ihl) return 0;
  if (pkt[9] == 1 && (tot == ihl || icmp_is_error_type(pkt[ihl]))) return 0;
  uint32_t src = weft_rd32(pkt + 12), dst = weft_rd32(pkt + 16);
  if (!unicast_host(src) || (dst >> 28) == 14 || dst == 0xffffffffu) return 0;

  int32_t quote = ihl + (tot - ihl < 8 ? tot - ihl : 8);
  int32_t out_len = 20 + 8 + quote;
  if (out_len > scratch_cap) return 0;
  uint8_t *ip = scratch, *icmp = scratch + 20;
  memset(scratch, 0, 28);
  ip[0] = 0x45;
  weft_wr16(ip + 2, (uint16_t)out_len);
  ip[8] = 64;
  ip[9] = 1;
  weft_wr32(ip + 12, from_addr);
  weft_wr32(ip + 16, src);
  weft_wr16(ip + 10, (uint16_t)~weft_csum_fold(weft_csum_add(0, ip, 20)));
  icmp[0] = type;
  icmp[1] = code;
  memcpy(icmp + 8, pkt, (size_t)quote);
  weft_wr16(icmp + 2, (uint16_t)~weft_csum_fold(weft_csum_add(0, icmp, (size_t)(8 + quote))));
  return out_len;
}
