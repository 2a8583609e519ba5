/*
 * Internet checksum: one's-complement sum of big-endian 16-bit words (RFC 1071),
 * and the incremental update HC' = ~(~HC + ~m + m') of RFC 1624 (eqn. 3), which,
 * unlike eqn. 2 of RFC 1141, never yields 0x0000 for a non-zero header.
 */
#include "weft.h"

#include <string.h>

uint64_t weft_csum_add(uint64_t sum, const uint8_t *p, size_t n) {
  /* 64-bit accumulator: 64 KiB of words cannot overflow it, fold once at the end. */
  while (n >= 8) {
    sum += ((uint32_t)p[0] << 8 | p[1]) + ((uint32_t)p[2] << 8 | p[3]) + ((uint32_t)p[4] << 8 | p[5]) +
           ((uint32_t)p[6] << 8 | p[7]);
    p += 8;
    n -= 8;
  }
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
