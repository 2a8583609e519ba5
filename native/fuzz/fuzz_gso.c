/*
 * libFuzzer harness: weft_gso_split, the offload tier's send-side split of a TUN super-packet by its
 * virtio_net_hdr. The header comes from the local kernel, but every length and offset in it is checked, so it is
 * fuzzed like network input.
 *
 * Input: bytes 0..9 the virtio header, 10..11 mtu (big-endian, clamped to 68..65535 as binding.c does), 12 room,
 * 13 flags (bit 0 ttl_dec; bit 1 out capacity from bytes 14..15 instead of TRAIN_PER_PACKET; bit 2 set the IP
 * total length (IPv6: payload length) to the packet's length, so mutations of the packet stay plausible; bit 3
 * partial checksums, as for a peer that announced them), 14..15 that capacity
 * (big-endian), then the packet. The packet sits
 * in a heap block of exactly header + packet, `out` in one of exactly its capacity, so ASan sees any stray access.
 *
 * Contract checked: a negative verdict is a known drop reason and nothing was counted as a drop (the caller counts);
 * otherwise every segment lies inside `out` at its documented place, the gaps (room) are untouched, each segment is
 * an IPv4 packet whose total length is its length and whose IP checksum verifies, or an IPv6 packet whose payload
 * length is its length less 40, with the input's first word (traffic class, flow label), next header and addresses
 * and no extension header; GSO segments are no longer than the MTU, carry a verifying TCP/UDP checksum over the
 * pseudo-header of their IP version (with partial checksums: exactly the folded pseudo-header sum, which the
 * receiver's kernel completes), the sequence numbers and flags tcp_gso_segment gives, and their payloads
 * concatenated equal the input payload. A GSO_NONE packet comes out as it went in, apart from TTL (hop limit) and
 * the checksum the header asked to complete.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../weft.h"

#define CANARY 0xa5
#define HDR 16
/* Output bytes one super-packet may need when written out whole: payload + per-segment headers at the limit. */
#define TRAIN_PER_PACKET (65536 + WEFT_GSO_MAX_SEGS * (64 + 120))

static uint16_t rd_le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

static int ip_csum_ok(const uint8_t *p, int32_t ihl) {
  return (p[0] >> 4) == 6 || weft_csum_fold(weft_csum_add(0, p, (size_t)ihl)) == 0xffff; /* IPv6 has none */
}

static int is_v6(const uint8_t *p) { return (p[0] >> 4) == 6; }
static uint8_t l4_proto(const uint8_t *p) { return is_v6(p) ? p[6] : p[9]; }

/* The pseudo-header sum, written out here rather than taken from csum.c (RFC 768 / RFC 8200 section 8.1). */
static uint64_t pseudo(const uint8_t *p, int32_t len, int32_t ihl) {
  uint32_t l4 = (uint32_t)(len - ihl);
  if (is_v6(p)) return weft_csum_add(0, p + 8, 32) + p[6] + (l4 >> 16) + (l4 & 0xffff);
  return weft_csum_add(0, p + 12, 8) + p[9] + l4;
}

static int l4_partial_ok(const uint8_t *p, int32_t len, int32_t ihl) {
  return weft_rd16(p + ihl + (l4_proto(p) == 6 ? 16 : 6)) == weft_csum_fold(pseudo(p, len, ihl));
}

static int l4_csum_ok(const uint8_t *p, int32_t len, int32_t ihl) {
  return weft_csum_fold(weft_csum_add(pseudo(p, len, ihl), p + ihl, (size_t)(len - ihl))) == 0xffff;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < HDR || size - HDR > WEFT_MAX_DATAGRAM) return 0;
  int32_t mtu = weft_rd16(data + 10);
  if (mtu < 68) mtu = 68;
  int32_t room = data[12];
  uint8_t mode = data[13];
  int ttl_dec = mode & 1, partial = (mode & 8) != 0;
  size_t cap = (mode & 2) ? weft_rd16(data + 14) : TRAIN_PER_PACKET;
  const uint8_t *pkt_in = data + HDR;
  int32_t len = (int32_t)(size - HDR);

  uint8_t *buf = malloc((size_t)WEFT_VNET_HDR_LEN + (size_t)len);
  uint8_t *out = malloc(cap ? cap : 1);
  if (!buf || !out) abort();
  memcpy(buf, data, WEFT_VNET_HDR_LEN);
  memcpy(buf + WEFT_VNET_HDR_LEN, pkt_in, (size_t)len);
  uint8_t *pkt = buf + WEFT_VNET_HDR_LEN;
  if ((mode & 4) && len >= 4 && len <= 65535) weft_wr16(pkt + 2, (uint16_t)len);
  if ((mode & 4) && len >= 40 && len <= 65535 + 40 && (pkt[0] >> 4) == 6) weft_wr16(pkt + 4, (uint16_t)(len - 40));
  uint8_t *orig = malloc((size_t)len + 1);
  if (!orig) abort();
  memcpy(orig, pkt, (size_t)len);
  memset(out, CANARY, cap);
  double counters[WEFT_COUNTER_COUNT] = {0};
  int32_t seg = -1, last = -1;

  int32_t n = weft_gso_split(pkt, len, mtu, out, cap, room,
                             (ttl_dec ? WEFT_GSO_TTL_DEC : 0) | (partial ? WEFT_GSO_CSUM_PARTIAL : 0), &seg, &last,
                             counters);

  if (memcmp(pkt, orig, (size_t)len) != 0) abort(); /* the input is read only */
  for (int i = 0; i < WEFT_DROP_COUNT; i++)
    if (counters[WEFT_C_DROP_BASE + i] != 0) abort();
  if (n <= 0) {
    if (n == 0 || -n - 1 >= WEFT_DROP_COUNT) abort();
    goto done;
  }
  const uint8_t *vh = buf;
  uint8_t vflags = vh[0], type = vh[1] & (uint8_t)~WEFT_VNET_GSO_ECN;
  uint16_t cs_start = rd_le16(vh + 6), cs_off = rd_le16(vh + 8);
  int v6 = len >= 1 && is_v6(orig);
  int32_t ihl = v6 ? 40 : (orig[0] & 0x0f) * 4;
  int32_t hop = v6 ? 7 : 8; /* TTL or hop limit */
  if (n > WEFT_GSO_MAX_SEGS || seg < 20 || last < 20 || last > seg) abort();
  size_t stride = (size_t)room + (size_t)seg;
  size_t end = stride * (size_t)(n - 1) + (size_t)room + (size_t)last;
  if (end > cap) abort();
  /* Nothing written outside the segments. */
  for (int32_t k = 0; k < n; k++)
    for (int32_t r = 0; r < room; r++)
      if (out[(size_t)k * stride + (size_t)r] != CANARY) abort();
  for (size_t i = end; i < cap; i++)
    if (out[i] != CANARY) abort();
  /* Only the input was accepted as an IP packet of exactly its length. */
  if (v6 && (len < 40 || weft_rd16(orig + 4) + 40 != len)) abort();
  if (!v6 && (len < 20 || (orig[0] >> 4) != 4 || weft_rd16(orig + 2) != len || ihl < 20 || ihl > len)) abort();
  if (ttl_dec && orig[hop] <= 1) abort();

  if (type == WEFT_VNET_GSO_NONE) {
    if (n != 1 || seg != len || last != len) abort();
    uint8_t *o = out + room;
    int32_t field = (vflags & WEFT_VNET_F_NEEDS_CSUM) ? cs_start + cs_off : -1;
    if (field >= 0 && (cs_start < ihl || field + 2 > len)) abort();
    for (int32_t i = 0; i < len; i++) {
      if (o[i] == orig[i]) continue;
      if (ttl_dec && (i == hop || (!v6 && (i == 10 || i == 11)))) continue;
      if (field >= 0 && (i == field || i == field + 1)) continue;
      abort();
    }
    if (ttl_dec && o[hop] != orig[hop] - 1) abort();
    if (ip_csum_ok(orig, ihl) && !ip_csum_ok(o, ihl)) abort();
    /* A kernel's partial checksum (pseudo-header sum at the standard place) comes out complete. */
    uint8_t proto = l4_proto(orig);
    int32_t std = proto == 6 ? 16 : proto == 17 ? 6 : -1;
    /* a partial peer gets the standard partial sum as is */
    int kept = partial && (v6 || !(weft_rd16(orig + 6) & 0x3fff));
    if (field >= 0 && std > 0 && cs_start == ihl && cs_off == std && !kept) {
      if (weft_rd16(orig + field) == weft_csum_fold(pseudo(orig, len, ihl)) && !l4_csum_ok(o, len, ihl)) abort();
    }
    goto done;
  }

  /* GSO: TCP of the packet's IP version or UDP_L4 only, with the checks the split made. */
  int tcp = type == (v6 ? WEFT_VNET_GSO_TCPV6 : WEFT_VNET_GSO_TCPV4);
  if (!tcp && type != WEFT_VNET_GSO_UDP_L4) abort();
  if (!(vflags & WEFT_VNET_F_NEEDS_CSUM) || cs_start != ihl || (!v6 && (weft_rd16(orig + 6) & 0x3fff))) abort();
  if (l4_proto(orig) != (tcp ? 6 : 17)) abort(); /* so no IPv6 extension header either */
  int32_t l4h = tcp ? (orig[ihl + 12] >> 4) * 4 : 8, hdr = ihl + l4h, payload = len - hdr;
  if (l4h < (tcp ? 20 : 8) || hdr > len) abort();
  if (seg > mtu) abort();
  int32_t mss = seg - hdr;
  if (n > 1 && (mss < 1 || mss > rd_le16(vh + 4))) abort();
  if (!tcp && n > 1 && mss != rd_le16(vh + 4)) abort(); /* UDP datagram boundaries are kept */
  int32_t seen = 0;
  uint16_t id0 = weft_rd16(orig + 4);
  for (int32_t k = 0; k < n; k++) {
    int32_t sl = k == n - 1 ? last : seg;
    const uint8_t *o = out + (size_t)k * stride + room;
    int32_t chunk = sl - hdr;
    if (chunk < 0 || (chunk == 0 && !(n == 1 && payload == 0))) abort();
    if (o[hop] != (uint8_t)(orig[hop] - (ttl_dec ? 1 : 0))) abort();
    if (v6) {
      /* ipv6_gso_segment: the first word (flow label) and addresses kept, the payload length per segment, no ID. */
      if (memcmp(o, orig, 4) != 0 || weft_rd16(o + 4) != sl - 40 || o[6] != orig[6]) abort();
      if (memcmp(o + 8, orig + 8, 32) != 0) abort();
    } else {
      if ((o[0] >> 4) != 4 || (o[0] & 0x0f) * 4 != ihl || weft_rd16(o + 2) != sl) abort();
      if (weft_rd16(o + 4) != (uint16_t)(id0 + k) || o[9] != orig[9]) abort();
      if (memcmp(o + 12, orig + 12, 8) != 0 || !ip_csum_ok(o, ihl)) abort();
      if (o[1] != orig[1] || weft_rd16(o + 6) != weft_rd16(orig + 6) ||
          memcmp(o + 20, orig + 20, (size_t)(ihl - 20)) != 0)
        abort();
    }
    if (partial ? !l4_partial_ok(o, sl, ihl) : !l4_csum_ok(o, sl, ihl)) abort();
    const uint8_t *l4 = o + ihl, *l4in = orig + ihl;
    if (memcmp(l4, l4in, 4) != 0) abort(); /* ports */
    if (tcp) {
      if (weft_rd32(l4 + 4) != weft_rd32(l4in + 4) + (uint32_t)seen) abort();
      uint8_t f = l4in[13];
      if (k != n - 1) f &= (uint8_t)~0x09; /* FIN, PSH on the last only */
      if (k != 0) f &= (uint8_t)~0x80;     /* CWR on the first only */
      if (l4[13] != f) abort();
      if (memcmp(l4 + 8, l4in + 8, 5) != 0 || memcmp(l4 + 14, l4in + 14, 2) != 0 ||
          memcmp(l4 + 18, l4in + 18, (size_t)(l4h - 18)) != 0)
        abort();
    } else {
      if (weft_rd16(l4 + 4) != 8 + chunk || weft_rd16(l4 + 6) == 0) abort();
    }
    if (seen + chunk > payload || memcmp(o + hdr, orig + hdr + seen, (size_t)chunk) != 0) abort();
    seen += chunk;
  }
  if (seen != payload) abort();
  if (counters[WEFT_C_GSO_SUPERPACKETS] != 1 || counters[WEFT_C_GSO_SEGMENTS] != n) abort();
done:
  free(orig);
  free(buf);
  free(out);
  return 0;
}
