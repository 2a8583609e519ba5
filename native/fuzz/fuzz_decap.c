/*
 * libFuzzer harness: weft_decap_split over one datagram (the batch tier's in_decap: decode of the encap header, the
 * inner IPv4 or IPv6 checks) and the partial-checksum completion its write step does (weft_ip_complete_l4_csum).
 * Built once per encap with -DWEFT_FUZZ_ENCAP=WEFT_ENCAP_UDP|VXLAN|GENEVE by scripts/fuzz.sh.
 *
 * The datagram sits alone in a heap slot of exactly its own size, so ASan reports any read or write past what the
 * kernel would have handed over. After the call the harness checks the contract: a kept packet lies inside its slot
 * and is a plausible IPv4 (IPv6) packet whose total length (40 + payload length) is its length; a drop has a known
 * verdict and was counted once; a completed TCP/UDP checksum verifies.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../weft.h"

#ifndef WEFT_FUZZ_ENCAP
#error "define WEFT_FUZZ_ENCAP"
#endif
#define FUZZ_VNI 1

/* The L4 header's offset and protocol of an IPv4 or IPv6 packet (IPv6: only what follows the fixed header). */
static int32_t l4_at(const uint8_t *p, uint8_t *proto) {
  int v6 = (p[0] >> 4) == 6;
  *proto = v6 ? p[6] : p[9];
  return v6 ? 40 : (p[0] & 0x0f) * 4;
}

static uint16_t l4_field(const uint8_t *p, int32_t len, int *has) {
  *has = 0;
  if (len < 20) return 0;
  uint8_t proto;
  int32_t ihl = l4_at(p, &proto);
  int32_t at = proto == 6 ? 16 : proto == 17 ? 6 : -1;
  if (at < 0 || ihl + at + 2 > len) return 0;
  *has = 1;
  return weft_rd16(p + ihl + at);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > WEFT_MAX_DATAGRAM) return 0; /* recvmmsg never hands more */
  int32_t slot = (int32_t)size;
  uint8_t *slab = malloc(size ? size : 1);
  if (!slab) return 0;
  if (size) memcpy(slab, data, size);
  int32_t in_len = slot, off = -1, len = -1;
  uint32_t addr = 0x0a000001u, seg_addr = 0;
  double counters[WEFT_COUNTER_COUNT] = {0};

  int32_t segs = weft_decap_split(weft_encap_get(WEFT_FUZZ_ENCAP), slab, slot, &in_len, NULL, &addr, 1, FUZZ_VNI, &off,
                                  &len, &seg_addr, 1, counters);
  if (segs == 1) weft_ip_complete_l4_csum(slab + off, len);

  double drops = 0;
  for (int i = 0; i < WEFT_DROP_COUNT; i++) drops += counters[WEFT_C_DROP_BASE + i];
  if (segs != 0 && segs != 1) abort();
  if (segs == 0) {
    if (drops != 1) abort(); /* exactly one reason, counted once */
  } else {
    if (seg_addr != addr) abort();
    if (drops != 0) abort();
    if (off < 0 || len < 20 || (int64_t)off + len > slot) abort();
    const uint8_t *p = slab + off;
    int v6 = (p[0] >> 4) == 6;
    if (v6 ? (len < 40 || 40 + weft_rd16(p + 4) != len) : ((p[0] >> 4) != 4 || weft_rd16(p + 2) != len)) abort();
    uint8_t proto;
    int32_t ihl = l4_at(p, &proto);
    if (ihl < 20 || ihl > len) abort();
    /* Completion rewrote the field: the L4 checksum must now verify over the pseudo-header. */
    int had, has;
    uint16_t before = l4_field(data + off, len, &had);
    uint16_t after = l4_field(p, len, &has);
    if (had && has && before != after && (v6 || !(weft_rd16(p + 6) & 0x3fff))) {
      uint64_t sum = weft_csum_add(0, p + (v6 ? 8 : 12), v6 ? 32 : 8) + proto + (uint32_t)(len - ihl);
      sum = weft_csum_add(sum, p + ihl, (size_t)(len - ihl));
      if (weft_csum_fold(sum) != 0xffff) abort();
    }
    /* Decap moves off/len only: every byte outside the L4 checksum field is untouched. */
    for (int32_t i = 0; i < slot; i++) {
      if (slab[i] == data[i]) continue;
      int32_t field = off + ihl + (proto == 6 ? 16 : 6);
      if (i != field && i != field + 1) abort();
    }
  }
  free(slab);
  return 0;
}
