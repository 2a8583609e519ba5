/*
 * ICMPv6 error messages, RFC 4443: destination unreachable (1), packet too big (2, with the MTU), time exceeded (3).
 * Section 2.4 (e): never about an ICMPv6 error or a redirect, never to a multicast destination (except packet too
 * big), never to an unspecified, loopback or multicast source; weft also stays silent about a non-first fragment,
 * whose upper-layer header it cannot see. Section 2.4 (c): the message quotes as much of the packet as fits in the
 * minimum IPv6 MTU (1280). The checksum covers the IPv6 pseudo-header (RFC 8200 section 8.1) and the message.
 */
#include "weft.h"

#include <string.h>

#define IPV6_HLEN 40
#define ICMP6_HLEN 8
#define IPV6_MIN_MTU 1280
#define NH_ICMPV6 58

/* Whether the packet may be answered: the checks of section 2.4 (e) over the header chain. */
static int may_answer(const uint8_t *p, int32_t len, uint8_t type) {
  const uint8_t *src = p + 8, *dst = p + 24;
  static const uint8_t zero[16], loopback[16] = {[15] = 1};
  if (src[0] == 0xff || !memcmp(src, zero, 16) || !memcmp(src, loopback, 16)) return 0;
  if (dst[0] == 0xff && type != WEFT_ICMP6_PACKET_TOO_BIG) return 0;
  uint8_t next = p[6];
  int32_t off = IPV6_HLEN;
  for (int hops = 0; hops < 8; hops++) { /* hop-by-hop, routing, destination options, fragment */
    if (next == 0 || next == 43 || next == 60) {
      if (off + 2 > len) return 0;
      next = p[off];
      off += (p[off + 1] + 1) * 8;
    } else if (next == 44) {
      if (off + 8 > len || (weft_rd16(p + off + 2) & 0xfff8)) return 0; /* a non-first fragment */
      next = p[off];
      off += 8;
    } else {
      break;
    }
  }
  if (next != NH_ICMPV6) return 1;
  if (off >= len) return 0;
  return p[off] >= 128 && p[off] != 137; /* informational, but not a redirect */
}

int32_t weft_icmp6_error_build(const uint8_t *pkt, int32_t pkt_len, uint8_t type, uint8_t code, uint32_t param,
                               const uint8_t from[16], uint8_t *scratch, int32_t scratch_cap) {
  if (pkt_len < IPV6_HLEN || (pkt[0] >> 4) != 6 || !may_answer(pkt, pkt_len, type)) return 0;
  int32_t quote = pkt_len;
  if (quote > IPV6_MIN_MTU - IPV6_HLEN - ICMP6_HLEN) quote = IPV6_MIN_MTU - IPV6_HLEN - ICMP6_HLEN;
  if (quote > scratch_cap - IPV6_HLEN - ICMP6_HLEN) quote = scratch_cap - IPV6_HLEN - ICMP6_HLEN;
  if (quote < IPV6_HLEN) return 0; /* not even the header fits */
  int32_t plen = ICMP6_HLEN + quote;
  uint8_t *ip = scratch, *icmp = scratch + IPV6_HLEN;
  memset(scratch, 0, IPV6_HLEN + ICMP6_HLEN);
  ip[0] = 0x60;
  weft_wr16(ip + 4, (uint16_t)plen);
  ip[6] = NH_ICMPV6;
  ip[7] = 64;
  memcpy(ip + 8, from, 16);
  memcpy(ip + 24, pkt + 8, 16);
  icmp[0] = type;
  icmp[1] = code;
  weft_wr32(icmp + 4, param);
  memcpy(icmp + ICMP6_HLEN, pkt, (size_t)quote);
  uint64_t sum = weft_csum_pseudo6(ip, NH_ICMPV6, (uint32_t)plen);
  weft_wr16(icmp + 2, (uint16_t)~weft_csum_fold(weft_csum_add(sum, icmp, (size_t)plen)));
  return IPV6_HLEN + plen;
}
