/*
 * libFuzzer harness: weft_wg_open_list, the WireGuard receive path (type and length checks, session lookup by
 * receiver index, replay window before and after decryption, tag check, padding cut by the inner length).
 *
 * The input is a script of operations on one receiving session (and the sending mirror of it):
 *   op % 4 == 0  a raw datagram of the next byte(s) as length; with op & 8 the receiver index is forced to the
 *                session's, so the bytes reach the tag check
 *   op % 4 == 1  a genuine message sealed by weft_wg_seal_batch with a counter from the input (small, near
 *                REJECT_AFTER_MESSAGES, or any), a plaintext IPv4 packet (or a keepalive), and maybe one byte flipped
 *   op % 4 == 2  the clock moves on (past REJECT_AFTER_TIME eventually)
 *   op % 4 == 3  the session is installed again (a new keypair under the same index: empty window)
 * Each datagram sits alone in a heap buffer of exactly its size. Checks after every open: one count per datagram, a
 * known verdict, an opened packet inside the datagram; a raw or altered datagram never opens; a genuine one opens
 * exactly when a model of the window (accepted iff new and at most WINDOW behind the highest) says so, with its
 * plaintext intact.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../weft.h"

#define SLOTS 4
#define LOCAL_INDEX 0x5a5a0001u /* slot 1 */
#define REMOTE_INDEX 0x33330002u
#define PEER 7
#define SLOT_SIZE 2048
#define LIFETIME_MS 180000.0
#define MAX_ACCEPTED 4096

static uint8_t rx_table[SLOTS * WEFT_WG_SESSION_SIZE], tx_table[SLOTS * WEFT_WG_SESSION_SIZE];
static const uint8_t key_a[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                  17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
static const uint8_t key_b[32] = {99};

/* The model of the replay window: counters accepted so far and the highest. */
static uint64_t accepted[MAX_ACCEPTED], highest;
static int naccepted;

static int model_accepts(uint64_t c) {
  if (c >= WEFT_WG_REJECT_AFTER_MESSAGES) return 0;
  for (int i = 0; i < naccepted; i++)
    if (accepted[i] == c) return 0;
  return c > highest || highest - c <= WEFT_WG_WINDOW;
}

static void install(double now) {
  weft_wg_session_set(rx_table, SLOTS, LOCAL_INDEX, REMOTE_INDEX, PEER, key_b, key_a, now + LIFETIME_MS);
  weft_wg_session_set(tx_table, SLOTS, REMOTE_INDEX, LOCAL_INDEX, 0, key_a, key_b, now + LIFETIME_MS);
  naccepted = 0;
  highest = 0;
}

static double total(const double *c) {
  double s = 0;
  for (int i = 0; i < WEFT_WG_COUNTER_COUNT; i++) s += c[i];
  return s - c[WEFT_WG_C_RX_BYTES] - c[WEFT_WG_C_KEEPALIVES_RX] - c[WEFT_WG_C_TX_PACKETS] - c[WEFT_WG_C_TX_BYTES];
}

/* Opens d (n bytes) alone in a heap buffer; returns the verdict (>= 0: opened, the peer) after the common checks. */
static int32_t open_checked(const uint8_t *d, int32_t n, uint8_t *plain_out, int32_t *plain_len, double now) {
  uint8_t *buf = malloc(n ? (size_t)n : 1);
  if (!buf) abort();
  if (n) memcpy(buf, d, (size_t)n);
  int32_t off = 0, len = n, peer = -1;
  double counters[WEFT_WG_COUNTER_COUNT] = {0};
  weft_wg_open_list(rx_table, SLOTS, buf, (size_t)n, &off, &len, &peer, 1, now, counters);
  if (total(counters) != 1) abort(); /* one count per datagram */
  if (peer >= 0) {
    if (peer != PEER || len < 0 || off != WEFT_WG_HEADER_LEN || len > n - WEFT_WG_OVERHEAD) abort();
    if (counters[WEFT_WG_C_RX_PACKETS] != 1) abort();
    memcpy(plain_out, buf + off, (size_t)len);
    *plain_len = len;
  } else {
    int v = -peer - 1 - WEFT_DROP_COUNT; /* the verdict's index in WEFT_WG_VERDICTS */
    if (v < 0 || v >= WEFT_WG_V_COUNT || len != peer || counters[WEFT_WG_C_BASE + v] != 1) abort();
  }
  free(buf);
  return peer;
}

/* A plaintext: an IPv4 header claiming plen bytes and a pattern, or nothing (keepalive). */
static int32_t make_plain(uint8_t *p, uint8_t b) {
  if (b == 0) return 0;
  int32_t plen = 20 + b * 5;
  memset(p, 0, 20);
  p[0] = 0x45;
  weft_wr16(p + 2, (uint16_t)plen);
  for (int32_t i = 20; i < plen; i++) p[i] = (uint8_t)(i * 31 + b);
  return plen;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static uint8_t slab[SLOT_SIZE], plain[SLOT_SIZE], got[SLOT_SIZE];
  double now = 1000;
  size_t at = 0;
  install(now);
#define NEXT() (at < size ? data[at++] : 0)
  while (at < size) {
    uint8_t op = NEXT();
    switch (op & 3) {
      case 0: { /* raw datagram */
        int32_t n = NEXT();
        if (op & 4) n += NEXT() << 8;
        if ((size_t)n > size - at) n = (int32_t)(size - at);
        uint8_t *d = malloc(n ? (size_t)n : 1);
        if (!d) abort();
        memcpy(d, data + at, (size_t)n);
        at += (size_t)n;
        if ((op & 8) && n >= 8) { /* type 4 and our index, little-endian */
          d[0] = 4, d[1] = d[2] = d[3] = 0;
          d[4] = (uint8_t)LOCAL_INDEX, d[5] = (uint8_t)(LOCAL_INDEX >> 8);
          d[6] = (uint8_t)(LOCAL_INDEX >> 16), d[7] = (uint8_t)(LOCAL_INDEX >> 24);
        }
        int32_t glen;
        if (open_checked(d, n, got, &glen, now) >= 0) abort(); /* nobody forges Poly1305 */
        free(d);
        break;
      }
      case 1: { /* genuine message, maybe altered */
        uint64_t c = 0;
        for (int i = 0; i < 8; i++) c = (c << 8) | NEXT();
        switch ((op >> 2) & 3) {
          case 0: c &= 0x3fff; break;
          case 1: c = WEFT_WG_REJECT_AFTER_MESSAGES - (c & 0xff); break;
          case 2: c &= 0xffffff; break;
          default: break;
        }
        int32_t plen = make_plain(plain, NEXT());
        uint8_t flip = NEXT();
        uint16_t where = (uint16_t)(NEXT() << 8);
        where |= NEXT();
        /* Seal with counter c: the sender's record holds its next counter. */
        if (c >= WEFT_WG_REJECT_AFTER_MESSAGES) break; /* a sender never uses it */
        memcpy(tx_table + WEFT_WG_SESSION_SIZE * (REMOTE_INDEX & (SLOTS - 1)) + WEFT_WG_S_SEND_CTR, &c, 8);
        memcpy(slab + 16, plain, (size_t)plen);
        int32_t len = plen, off = 0, peer = 0, send_slot = (int32_t)(REMOTE_INDEX & (SLOTS - 1));
        double counters[WEFT_WG_COUNTER_COUNT] = {0};
        weft_wg_seal_batch(tx_table, SLOTS, slab, SLOT_SIZE, 16, &len, &off, &peer, &send_slot, 1, 1, 1420, now,
                           counters);
        if (peer < 0) break; /* expired: nothing to send */
        if (flip) slab[off + where % len] ^= flip;
        int32_t glen = -1;
        int ok = open_checked(slab + off, len, got, &glen, now) >= 0;
        if (flip) {
          if (ok) abort(); /* an altered message never opens */
        } else if (ok != model_accepts(c)) {
          abort(); /* the window disagrees with the model */
        } else if (ok) {
          if (glen != plen || memcmp(got, plain, (size_t)plen)) abort();
          if (naccepted == MAX_ACCEPTED) return 0; /* the model is full: stop this run here */
          accepted[naccepted++] = c;
          if (c > highest) highest = c;
        }
        break;
      }
      case 2: now += NEXT() * 1000.0; break;
      default: install(now); break;
    }
  }
#undef NEXT
  return 0;
}
