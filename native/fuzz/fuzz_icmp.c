/*
 * libFuzzer harness: weft_icmp_error_build, which quotes a packet read from TUN (or a decapsulated one) in an ICMP
 * error. Input: byte 0 = type, byte 1 = code, byte 2 = scratch capacity (0..255), then the packet, held in a heap
 * buffer of exactly its size. Checks: the result fits the capacity, never answers an ICMP error, and both the IP
 * header checksum and the ICMP checksum verify.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../weft.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 3 || size - 3 > WEFT_MAX_DATAGRAM) return 0;
  uint8_t type = data[0], code = data[1];
  int32_t cap = data[2];
  int32_t n = (int32_t)(size - 3);
  uint8_t *pkt = malloc(n ? (size_t)n : 1);
  uint8_t *scratch = malloc(cap ? (size_t)cap : 1);
  if (!pkt || !scratch) abort();
  memcpy(pkt, data + 3, (size_t)n);

  int32_t out = weft_icmp_error_build(pkt, n, type, code, 0x0a050001u, scratch, cap);

  if (out < 0 || out > cap) abort();
  if (out > 0) {
    if (out < 28 + 20 || weft_rd16(scratch + 2) != out) abort();
    if (weft_csum_fold(weft_csum_add(0, scratch, 20)) != 0xffff) abort();
    if (weft_csum_fold(weft_csum_add(0, scratch + 20, (size_t)(out - 20))) != 0xffff) abort();
    if (scratch[9] != 1 || scratch[20] != type || scratch[21] != code) abort();
    /* Never about an ICMP error: RFC 1812 4.3.2.7. */
    int32_t ihl = (pkt[0] & 0x0f) * 4;
    if (pkt[9] == 1 && ihl < n) {
      uint8_t t = pkt[ihl];
      if (t == 3 || t == 4 || t == 5 || t == 11 || t == 12) abort();
    }
    if (memcmp(scratch + 28, pkt, (size_t)(out - 28)) != 0) abort();
  }
  free(pkt);
  free(scratch);
  return 0;
}
