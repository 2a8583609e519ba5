/*
 * libFuzzer harness: weft_icmp6_error_build, which quotes an IPv6 packet read from TUN in an ICMPv6 error (RFC 4443).
 * Input: byte 0 = type, byte 1 = code, bytes 2-3 = scratch capacity (big-endian, 0..65535), bytes 4-7 = the param
 * (MTU), then the packet, held in a heap buffer of exactly its size. Checks: the result fits the capacity and the
 * minimum IPv6 MTU, is addressed back to the packet's source, carries type, code and param, quotes the packet's first
 * bytes, its checksum verifies over the pseudo-header, and it never answers an ICMPv6 error or a multicast source.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../weft.h"

static const uint8_t FROM[16] = {0xfd, 0, 0, 5, 0, 0, 0, 1};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 8 || size - 8 > WEFT_MAX_DATAGRAM) return 0;
  uint8_t type = data[0], code = data[1];
  int32_t cap = weft_rd16(data + 2);
  uint32_t param = weft_rd32(data + 4);
  int32_t n = (int32_t)(size - 8);
  uint8_t *pkt = malloc(n ? (size_t)n : 1);
  uint8_t *scratch = malloc(cap ? (size_t)cap : 1);
  if (!pkt || !scratch) abort();
  memcpy(pkt, data + 8, (size_t)n);

  int32_t out = weft_icmp6_error_build(pkt, n, type, code, param, FROM, scratch, cap);

  if (out < 0 || out > cap || out > WEFT_ICMP6_SCRATCH) abort();
  if (out > 0) {
    if (out < 40 + 8 + 40 || (scratch[0] >> 4) != 6 || weft_rd16(scratch + 4) != out - 40 || scratch[6] != 58) abort();
    if (memcmp(scratch + 8, FROM, 16) != 0 || memcmp(scratch + 24, pkt + 8, 16) != 0) abort();
    if (scratch[40] != type || scratch[41] != code || weft_rd32(scratch + 44) != param) abort();
    if (memcmp(scratch + 48, pkt, (size_t)(out - 48)) != 0) abort();
    uint64_t sum = weft_csum_add(0, scratch + 8, 32) + (uint32_t)(out - 40) + 58;
    if (weft_csum_fold(weft_csum_add(sum, scratch + 40, (size_t)(out - 40))) != 0xffff) abort();
    /* RFC 4443 2.4 (e): never about an ICMPv6 error, never to a multicast source. */
    if (pkt[6] == 58 && n > 40 && pkt[40] < 128) abort();
    if (pkt[8] == 0xff) abort();
  }
  free(pkt);
  free(scratch);
  return 0;
}
