/*
 * Internet checksum: one's-complement sum of big-endian 16-bit words (RFC 1071),
 * and the incremental update HC' = ~(~HC + ~m + m') of RFC 1624 (eqn. 3), which,
 * unlike eqn. 2 of RFC 1141, never yields 0x0000 for a non-zero header.
 *
 * The sum is byte-order independent (RFC 1071 section 2(B)): the bulk is summed as
 * native 32-bit words into a 64-bit accumulator and swapped once at the end. The
 * offload tier checksums every 64 KiB super-packet, so this loop is hot.
 */
#include "weft.h"

#include <string.h>

static uint16_t fold64(uint64_t s) {
  s = (s & 0xffffffffu) + (s >> 32);
  s = (s & 0xffffffffu) + (s >> 32);
  s = (s & 0xffff) + (s >> 16);
  s = (s & 0xffff) + (s >> 16);
  return (uint16_t)s;
}

uint64_t weft_csum_add(uint64_t sum, const uint8_t *p, size_t n) {
  uint64_t a = 0, b = 0;
  uint32_t w0, w1, w2, w3;
  while (n >= 16) {
    memcpy(&w0, p, 4), memcpy(&w1, p + 4, 4), memcpy(&w2, p + 8, 4), memcpy(&w3, p + 12, 4);
    a += (uint64_t)w0 + w1;
    b += (uint64_t)w2 + w3;
    p += 16;
    n -= 16;
  }
  while (n >= 4) {
    memcpy(&w0, p, 4);
    a += w0;
    p += 4;
    n -= 4;
  }
  uint16_t native = fold64(a + (b & 0xffffffffu) + (b >> 32));
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  native = (uint16_t)((native >> 8) | (native << 8));
#endif
  sum += native;
  while (n >= 2) {
    sum += (uint32_t)p[0] << 8 | p[1];
    p += 2;
    n -= 2;
  }
  if (n) sum += (uint32_t)p[0] << 8; /* odd byte is padded with zero */
  return sum;
}

uint16_t weft_csum_fold(uint64_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)sum;
}

uint16_t weft_csum_update16(uint16_t check, uint16_t old_word, uint16_t new_word) {
  uint64_t sum = (uint16_t)~check;
  sum += (uint16_t)~old_word;
  sum += new_word;
  return (uint16_t)~weft_csum_fold(sum);
}

/* The IPv6 pseudo-header of a TCP/UDP/ICMPv6 checksum (RFC 8200 section 8.1): source and destination address, the
 * 32-bit upper-layer length and the next header, summed (not folded). */
uint64_t weft_csum_pseudo6(const uint8_t *ip6, uint8_t next, uint32_t l4_len) {
  return weft_csum_add(0, ip6 + 8, 32) + (l4_len >> 16) + (l4_len & 0xffff) + next;
}
