/*
 * libFuzzer harness: the WireGuard send path, weft_wg_seal_batch (batch tier) and weft_wg_seal_segments (offload
 * tier), with every geometry JS could pass: slot size, headroom, lengths (also negative or past the slot), peer
 * indices and the peer -> session map, MTU, the train's first offset, segment size and count, buffer size. The slab
 * and the train are heap buffers of exactly their size, so ASan reports any write past them. Checks: a sealed packet
 * lies inside its slot (or the train inside its buffer), has the size weft_wg_sealed_len gives, and opens on the
 * receiving session back to the original bytes; a refusal is a known verdict, counted once.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../weft.h"

#define SLOTS 4
#define TX_INDEX 0x10000002u /* slot 2 */
#define RX_INDEX 0x20000001u /* slot 1 */

static uint8_t tx[SLOTS * WEFT_WG_SESSION_SIZE], rx[SLOTS * WEFT_WG_SESSION_SIZE];
static const uint8_t k1[32] = {7, 7, 7}, k2[32] = {9, 9, 9};

static int known(int32_t verdict) {
  int v = -verdict - 1 - WEFT_DROP_COUNT;
  return v == WEFT_WG_V_NO_SESSION || v == WEFT_WG_V_NO_ROOM || v == WEFT_WG_V_COUNTER_LIMIT;
}

/* Opens the message at m (n bytes) on the receiving table; 1 when it gives back plain (plen bytes). */
static int opens_to(const uint8_t *m, int32_t n, const uint8_t *plain, int32_t plen) {
  uint8_t *b = malloc((size_t)n);
  if (!b) abort();
  memcpy(b, m, (size_t)n);
  int32_t off = 0, len = n, peer = -1;
  double c[WEFT_WG_COUNTER_COUNT] = {0};
  weft_wg_open_list(rx, SLOTS, b, (size_t)n, &off, &len, &peer, 1, 0, c);
  /* The plaintext here is arbitrary bytes, so the inner-length check may refuse it: compare the decrypted bytes. */
  int ok = (peer >= 0 || peer == WEFT_WG_VERDICT(WEFT_WG_V_BAD_INNER)) &&
           memcmp(b + WEFT_WG_HEADER_LEN, plain, (size_t)plen) == 0;
  for (int32_t i = WEFT_WG_HEADER_LEN + plen; ok && i < n - WEFT_WG_TAG_LEN; i++) ok = b[i] == 0; /* padding */
  free(b);
  return ok;
}

/* The input, read front to back; zeros once it runs out. */
static const uint8_t *in;
static size_t in_len, in_at;
static uint8_t next8(void) { return in_at < in_len ? in[in_at++] : 0; }
static int32_t next16(void) {
  int32_t hi = next8();
  return (hi << 8) | next8();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 16) return 0;
  in = data, in_len = size, in_at = 0;
#define NEXT() next8()
#define NEXT16() next16()
  weft_wg_session_set(tx, SLOTS, TX_INDEX, RX_INDEX, 0, k1, k2, 1e9);
  weft_wg_session_set(rx, SLOTS, RX_INDEX, TX_INDEX, 0, k2, k1, 1e9);

  /* Batch tier. */
  int32_t slot_size = 33 + NEXT16() % 4000, headroom = 16 + NEXT16() % (slot_size - 31), count = 1 + NEXT() % 4;
  int32_t mtu = NEXT16(), npeers = NEXT() % 4, send_slot[4], len[4], off[4], peer[4], orig[4];
  for (int i = 0; i < 4; i++) send_slot[i] = (int8_t)NEXT() % 5;
  uint8_t *slab = malloc((size_t)count * (size_t)slot_size), *copy = malloc((size_t)count * (size_t)slot_size);
  if (!slab || !copy) abort();
  for (int32_t i = 0; i < count * slot_size; i++) slab[i] = NEXT();
  memcpy(copy, slab, (size_t)count * (size_t)slot_size);
  for (int i = 0; i < count; i++) {
    orig[i] = len[i] = NEXT16() - 200; /* negative and past the slot too */
    peer[i] = (int8_t)NEXT() % 5;
    off[i] = -1;
  }
  int32_t peer_in[4];
  memcpy(peer_in, peer, sizeof peer);
  double c[WEFT_WG_COUNTER_COUNT] = {0};
  weft_wg_seal_batch(tx, SLOTS, slab, slot_size, headroom, len, off, peer, send_slot, npeers, count, mtu, 0, c);
  double sealed = 0, refused = 0;
  for (int i = 0; i < count; i++) {
    if (peer_in[i] < 0) {
      if (peer[i] != peer_in[i]) abort(); /* skipped untouched */
      continue;
    }
    if (peer[i] < 0) {
      if (!known(peer[i])) abort();
      refused++;
      continue;
    }
    sealed++;
    int64_t lo = (int64_t)i * slot_size, hi = lo + slot_size;
    if (off[i] < lo || (int64_t)off[i] + len[i] > hi) abort(); /* inside its slot */
    if (len[i] != weft_wg_sealed_len(orig[i], mtu)) abort();
    if (!opens_to(slab + off[i], len[i], copy + lo + headroom, orig[i])) abort();
  }
  if (c[WEFT_WG_C_TX_PACKETS] != sealed) abort();
  double verdicts = 0;
  for (int v = 0; v < WEFT_WG_V_COUNT; v++) verdicts += c[WEFT_WG_C_BASE + v];
  if (verdicts != refused) abort();
  free(slab);
  free(copy);

  /* Offload tier: one super-packet's segments. */
  int32_t buf_len = NEXT16() % 8192, first = NEXT16() % 256, seg_len = NEXT16() % 1600, nseg = 1 + NEXT() % 8;
  int32_t last_len = seg_len ? NEXT16() % (seg_len + 1) : 0;
  mtu = NEXT16() % 2000;
  uint8_t *buf = malloc(buf_len ? (size_t)buf_len : 1), *orig_buf = malloc(buf_len ? (size_t)buf_len : 1);
  if (!buf || !orig_buf) abort();
  for (int32_t i = 0; i < buf_len; i++) buf[i] = NEXT();
  memcpy(orig_buf, buf, (size_t)buf_len);
  double c2[WEFT_WG_COUNTER_COUNT] = {0};
  int32_t r = weft_wg_seal_segments(tx, SLOTS, 2, buf, (size_t)buf_len, first, seg_len, nseg, last_len, mtu, 0, c2);
  if (r < 0) {
    if (!known(r) || c2[WEFT_WG_C_BASE + (-r - 1 - WEFT_DROP_COUNT)] != nseg) abort();
  } else {
    int32_t stride = weft_wg_sealed_len(seg_len, mtu);
    if (r != (nseg - 1) * stride + weft_wg_sealed_len(last_len, mtu)) abort();
    if (first < WEFT_WG_HEADER_LEN || (int64_t)first - WEFT_WG_HEADER_LEN + r > buf_len) abort();
    for (int32_t k = 0; k < nseg; k++) {
      int32_t l = k == nseg - 1 ? last_len : seg_len;
      int32_t m = first - WEFT_WG_HEADER_LEN + k * stride;
      if (!opens_to(buf + m, weft_wg_sealed_len(l, mtu), orig_buf + first + k * stride, l)) abort();
    }
  }
  free(buf);
  free(orig_buf);
#undef NEXT
#undef NEXT16
  return 0;
}
