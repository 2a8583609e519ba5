/*
 * libFuzzer harness: the offload tier's receive side, weft_decap_split (split a UDP_GRO receive into its datagrams
 * by the segment size, decapsulate each, check each inner IPv4 packet) followed by weft_gro_run (coalesce TCP
 * segments of one flow into a super-packet with a virtio header) into a memory sink, as binding.c's groBuild does.
 *
 * Input: byte 0 encap (mod 3), byte 1 flags (bit 0 coalesce; bit 1 two receive buffers; bit 2 raw: the datagrams
 * are inner packets, IPv4 or IPv6, cut from the buffers without decap, so IPv6 reaches GRO whatever decap takes;
 * bits 4..7 seg_max, 0 = 256),
 * bytes 2..3 and 4..5 the UDP_GRO segment size of buffer 0 and 1 (big-endian), bytes 6..7 the length of buffer 0
 * when there are two, then the received bytes. The slab is exactly count * slot_size bytes on the heap.
 *
 * Contract checked: decap leaves the slab alone, keeps exactly the datagrams a reference walk keeps (same offsets,
 * lengths, source addresses) and counts every other one once under its reason; every kept inner packet is IPv4 whose
 * total length (IPv6: 40 + payload length) is its length and lies inside its datagram. gro_run drops nothing of that,
 * hands the sink only bytes inside the slab, and consumes the packets in order: each output is either one packet, byte
 * for byte the input, with a virtio header that is empty or asks to finish a partial TCP/UDP checksum (which then
 * verifies), or a TCPv4 (TCPv6) super-packet of 2..64 segments of one flow whose virtio header (gso_size = first
 * payload, hdr_len, csum_start 20 (40), csum_offset 16) is consistent, whose headers are the first segment's with
 * length, IP checksum (IPv6: payload length), PSH and the pseudo-header checksum updated, and whose payload is the
 * concatenation of the inputs' payloads, cut back into the same segments by gso_size. IPv6 segments merged share the
 * first word (traffic class, flow label), next header TCP (no extension header), hop limit and addresses.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "../weft.h"

#define HDR 8
#define VNI 1
#define MAX_OUT 256
#define MAX_SEGS 256

typedef struct {
  const uint8_t *slab;
  size_t slab_len;
  uint8_t *buf; /* outputs back to back: virtio header + packet */
  size_t used, cap;
  int32_t n, at[MAX_OUT], len[MAX_OUT], parts[MAX_OUT];
} mem_sink;

static int sink(void *ctx, const struct iovec *iov, int iovcnt, double *counters) {
  (void)counters;
  mem_sink *m = ctx;
  if (iovcnt < 2 || iov[0].iov_len != WEFT_VNET_HDR_LEN || m->n >= MAX_OUT) abort();
  size_t total = 0;
  for (int k = 0; k < iovcnt; k++) {
    if (k > 0) {
      const uint8_t *b = iov[k].iov_base;
      if (b < m->slab || iov[k].iov_len == 0 || iov[k].iov_len > m->slab_len ||
          (size_t)(b - m->slab) > m->slab_len - iov[k].iov_len)
        abort();
    }
    total += iov[k].iov_len;
  }
  if (m->used + total > m->cap) abort();
  m->at[m->n] = (int32_t)m->used;
  m->len[m->n] = (int32_t)total;
  m->parts[m->n] = iovcnt - 1;
  for (int k = 0; k < iovcnt; k++) {
    memcpy(m->buf + m->used, iov[k].iov_base, iov[k].iov_len);
    m->used += iov[k].iov_len;
  }
  m->n++;
  return 1;
}

static uint16_t rd_le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

static int is_v6(const uint8_t *p) { return (p[0] >> 4) == 6; }
/* IP header length: IPv4's IHL, IPv6's fixed header (anything after it is the L4 header or an extension). */
static int32_t ip_hlen(const uint8_t *p) { return is_v6(p) ? 40 : (p[0] & 0x0f) * 4; }
static uint8_t l4_proto(const uint8_t *p) { return is_v6(p) ? p[6] : p[9]; }

/* The pseudo-header sum of either version, written out here rather than taken from csum.c. */
static uint64_t pseudo(const uint8_t *ip, uint8_t proto, int32_t l4len) {
  if (is_v6(ip)) return weft_csum_add(0, ip + 8, 32) + proto + (uint32_t)l4len;
  return weft_csum_add(0, ip + 12, 8) + proto + (uint32_t)l4len;
}

static int tcp_payload(const uint8_t *p, int32_t len) { return len - ip_hlen(p) - (p[ip_hlen(p) + 12] >> 4) * 4; }

/* One packet out alone: the bytes of the input, and a virtio header that asks at most for a checksum completion. */
static void check_single(const uint8_t *vh, const uint8_t *o, int32_t olen, const uint8_t *in, int32_t ilen) {
  if (olen != ilen || memcmp(o, in, (size_t)ilen) != 0) abort();
  if (vh[1] != WEFT_VNET_GSO_NONE || rd_le16(vh + 2) || rd_le16(vh + 4)) abort();
  if (vh[0] == 0) {
    if (rd_le16(vh + 6) || rd_le16(vh + 8)) abort();
    return;
  }
  if (vh[0] != WEFT_VNET_F_NEEDS_CSUM) abort();
  int32_t ihl = ip_hlen(in), start = rd_le16(vh + 6), off = rd_le16(vh + 8);
  uint8_t proto = l4_proto(in);
  if (start != ihl || off != (proto == 6 ? 16 : proto == 17 ? 6 : -1) || start + off + 2 > ilen) abort();
  if (!is_v6(in) && (weft_rd16(in + 6) & 0x3fff)) abort(); /* a fragment's checksum spans other packets */
  /* What the kernel does with NEEDS_CSUM: sum from csum_start, store at csum_offset. Then it must verify. */
  static uint8_t tmp[65536];
  memcpy(tmp, in, (size_t)ilen);
  uint16_t c = (uint16_t)~weft_csum_fold(weft_csum_add(0, tmp + start, (size_t)(ilen - start)));
  weft_wr16(tmp + start + off, c);
  uint64_t s = weft_csum_add(pseudo(tmp, proto, ilen - ihl), tmp + ihl, (size_t)(ilen - ihl));
  if (weft_csum_fold(s) != 0xffff) abort();
}

/* A super-packet built from in[0..k): see the contract at the top. */
static void check_super(const uint8_t *vh, const uint8_t *o, int32_t olen, const uint8_t *const *in,
                        const int32_t *ilen, int32_t k) {
  const uint8_t *f = in[0];
  int v6 = is_v6(f);
  int32_t ihl = v6 ? 40 : 20;
  const uint8_t *ft = f + ihl, *ot = o + ihl;
  if (k < 2 || k > 64) abort();
  if (vh[0] != WEFT_VNET_F_NEEDS_CSUM || vh[1] != (v6 ? WEFT_VNET_GSO_TCPV6 : WEFT_VNET_GSO_TCPV4)) abort();
  int32_t thl = (ft[12] >> 4) * 4, hdr = ihl + thl, mss = tcp_payload(f, ilen[0]);
  if (rd_le16(vh + 2) != hdr || rd_le16(vh + 4) != mss || rd_le16(vh + 6) != ihl || rd_le16(vh + 8) != 16) abort();
  if (mss <= 0 || olen > 65535 || olen < hdr) abort();
  int32_t total = 0;
  for (int32_t q = 0; q < k; q++) {
    const uint8_t *p = in[q], *pt = p + ihl;
    int32_t pay = tcp_payload(p, ilen[q]);
    /* Every input a plain TCP segment of the first's flow, contiguous, cut at mss, PSH only at the end. */
    if (v6) {
      if (ilen[q] < 60 || !is_v6(p) || p[6] != 6 || weft_rd16(p + 4) + 40 != ilen[q]) abort();
      if (memcmp(p, f, 4) != 0 || memcmp(p + 6, f + 6, 34) != 0) abort();
    } else {
      if (ilen[q] < 40 || p[0] != 0x45 || p[9] != 6 || (weft_rd16(p + 6) & 0x3fff)) abort();
      if (p[1] != f[1] || weft_rd16(p + 6) != weft_rd16(f + 6) || p[8] != f[8] || memcmp(p + 12, f + 12, 8) != 0)
        abort();
    }
    if (pay <= 0 || pay > mss || (q < k - 1 && pay != mss) || (pt[13] & 0xa7)) abort();
    if (q < k - 1 && (pt[13] & 0x08)) abort();
    if (memcmp(pt, ft, 4) != 0 || memcmp(pt + 8, ft + 8, 5) != 0 || (pt[13] & ~0x08) != (ft[13] & ~0x08) ||
        memcmp(pt + 14, ft + 14, 2) != 0 || memcmp(pt + 20, ft + 20, (size_t)(thl - 20)) != 0)
      abort();
    if (weft_rd32(pt + 4) != weft_rd32(ft + 4) + (uint32_t)total) abort();
    /* Its checksum was partial or correct: NEEDS_CSUM must not hide a bad one. */
    uint64_t ph = pseudo(p, 6, ilen[q] - ihl);
    if (weft_rd16(pt + 16) != weft_csum_fold(ph) &&
        weft_csum_fold(weft_csum_add(ph, pt, (size_t)(ilen[q] - ihl))) != 0xffff)
      abort();
    if (memcmp(o + hdr + total, p + hdr, (size_t)pay) != 0) abort();
    total += pay;
  }
  if (olen != hdr + total || (k - 1) * mss >= total || total > k * mss) abort();
  /* Headers: the first's, with the length, IP checksum, PSH of the last and the pseudo-header sum. */
  if (v6) {
    if (weft_rd16(o + 4) != olen - 40 || memcmp(o, f, 4) != 0 || memcmp(o + 6, f + 6, 34) != 0) abort();
  } else {
    if (weft_rd16(o + 2) != olen || weft_csum_fold(weft_csum_add(0, o, 20)) != 0xffff) abort();
    if (o[0] != f[0] || o[1] != f[1] || memcmp(o + 4, f + 4, 6) != 0 || memcmp(o + 12, f + 12, 8) != 0) abort();
  }
  if (memcmp(ot, ft, 12) != 0) abort();
  if (ot[13] != (ft[13] | (in[k - 1][ihl + 13] & 0x08)) || ot[12] != ft[12] || memcmp(ot + 14, ft + 14, 2) != 0)
    abort();
  if (memcmp(ot + 18, ft + 18, (size_t)(thl - 18)) != 0) abort();
  if (weft_rd16(ot + 16) != weft_csum_fold(pseudo(o, 6, olen - ihl))) abort();
}

/* Raw mode: the inner packet at the front of a datagram of `avail` bytes, as decap would frame it (IPv4 by its
 * total length, IPv6 by its payload length; link padding after it allowed), or -1. */
static int32_t raw_inner_len(const uint8_t *p, int32_t avail) {
  if (avail >= 40 && is_v6(p)) return weft_rd16(p + 4) + 40 <= avail ? weft_rd16(p + 4) + 40 : -1;
  return weft_ipv4_inner_len(p, avail);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < HDR || size - HDR > 2 * (size_t)WEFT_MAX_DATAGRAM) return 0;
  const weft_encap_ops *ops = weft_encap_get(data[0] % 3);
  int coalesce = data[1] & 1, two = (data[1] >> 1) & 1, raw = (data[1] >> 2) & 1;
  int32_t seg_max = data[1] >> 4 ? data[1] >> 4 : MAX_SEGS;
  int32_t rest = (int32_t)(size - HDR);
  int32_t len[2] = {rest, 0}, gso[2] = {weft_rd16(data + 2), weft_rd16(data + 4)};
  uint32_t addr[2] = {0x0a000001u, 0x0a000002u};
  int32_t count = 1;
  if (two) {
    len[0] = weft_rd16(data + 6) < rest ? weft_rd16(data + 6) : rest;
    len[1] = rest - len[0];
    count = 2;
  }
  if (len[0] > WEFT_MAX_DATAGRAM || len[1] > WEFT_MAX_DATAGRAM) return 0;
  int32_t slot = len[0] > len[1] ? len[0] : len[1];
  size_t slab_len = (size_t)slot * (size_t)count;
  uint8_t *slab = malloc(slab_len ? slab_len : 1);
  uint8_t *orig = malloc(slab_len ? slab_len : 1);
  if (!slab || !orig) abort();
  memset(slab, 0xee, slab_len);
  memcpy(slab, data + HDR, (size_t)len[0]);
  if (two) memcpy(slab + slot, data + HDR + len[0], (size_t)len[1]);
  memcpy(orig, slab, slab_len);

  static int32_t seg_off[MAX_SEGS], seg_len[MAX_SEGS];
  static uint32_t seg_addr[MAX_SEGS];
  double dc[WEFT_COUNTER_COUNT] = {0}, gc[WEFT_COUNTER_COUNT] = {0};
  int32_t ns;
  if (raw) {
    /* No decap: every datagram whose inner packet holds together goes to GRO as it is. */
    ns = 0;
    for (int32_t i = 0; i < count; i++) {
      int32_t g = gso[i] > 0 && gso[i] < len[i] ? gso[i] : len[i];
      for (int32_t p = 0; g > 0 && p < len[i] && ns < seg_max; p += g) {
        int32_t sl = len[i] - p < g ? len[i] - p : g, at = i * slot + p;
        int32_t il = raw_inner_len(slab + at, sl);
        if (il < 20) continue;
        seg_off[ns] = at, seg_len[ns] = il, seg_addr[ns] = addr[i];
        ns++;
      }
    }
    goto gro;
  }
  ns = weft_decap_split(ops, slab, slot, len, gso, addr, count, VNI, seg_off, seg_len, seg_addr, seg_max, dc);

  /* ---- decap against a reference walk ---- */
  if (memcmp(slab, orig, slab_len) != 0) abort();
  if (ns < 0 || ns > seg_max) abort();
  double want[WEFT_DROP_COUNT] = {0}, datagrams = 0;
  int32_t kept = 0;
  for (int32_t i = 0; i < count; i++) {
    int32_t g = gso[i] > 0 && gso[i] < len[i] ? gso[i] : len[i];
    if (g <= 0) {
      want[WEFT_DROP_MALFORMED] += 1;
      continue;
    }
    for (int32_t p = 0; p < len[i]; p += g) {
      int32_t sl = len[i] - p < g ? len[i] - p : g;
      size_t at = (size_t)i * (size_t)slot + (size_t)p;
      if (g < len[i]) datagrams += 1;
      int32_t v = ops->decode(orig + at, sl, VNI);
      if (v >= 0 && (v > sl || weft_ip_inner_len(orig + at + v, sl - v) < 0)) v = WEFT_VERDICT(WEFT_DROP_MALFORMED);
      if (v >= 0 && kept >= seg_max) v = WEFT_VERDICT(WEFT_DROP_NO_SLOT);
      if (v < 0) {
        if (-v - 1 >= WEFT_DROP_COUNT) abort();
        want[-v - 1] += 1;
        continue;
      }
      /* Kept: the inner packet at the decoded offset, IPv4 of exactly its total length or IPv6 of exactly its payload
       * length, inside this datagram. */
      if (kept >= ns || seg_off[kept] != (int32_t)(at + (size_t)v) || seg_addr[kept] != addr[i]) abort();
      const uint8_t *q = orig + seg_off[kept];
      int32_t ql = seg_len[kept];
      if (ql < 20 || ql > sl - v) abort();
      if (is_v6(q) ? ql < 40 || weft_rd16(q + 4) + 40 != ql
                   : (q[0] >> 4) != 4 || weft_rd16(q + 2) != ql || (q[0] & 0x0f) * 4 > ql)
        abort();
      kept++;
    }
  }
  if (kept != ns || dc[WEFT_C_UDP_GRO_DATAGRAMS] != datagrams) abort();
  for (int r = 0; r < WEFT_DROP_COUNT; r++)
    if (dc[WEFT_C_DROP_BASE + r] != want[r]) abort();

  /* ---- GRO into memory ---- */
gro:;
  static mem_sink m;
  static uint8_t outbuf[2 * WEFT_MAX_DATAGRAM + MAX_OUT * (WEFT_VNET_HDR_LEN + 64)];
  m.slab = slab, m.slab_len = slab_len, m.buf = outbuf, m.used = 0, m.cap = sizeof outbuf, m.n = 0;
  int32_t written = weft_gro_run(slab, slab_len, seg_off, seg_len, ns, coalesce, 0, sink, &m, gc);

  if (written != m.n) abort();
  for (int r = 0; r < WEFT_DROP_COUNT; r++)
    if (gc[WEFT_C_DROP_BASE + r] != 0) abort(); /* decap handed over only valid packets */
  int32_t c = 0, supers = 0, coalesced = 0;
  for (int32_t o = 0; o < m.n; o++) {
    const uint8_t *vh = outbuf + m.at[o], *pkt = vh + WEFT_VNET_HDR_LEN;
    int32_t olen = m.len[o] - WEFT_VNET_HDR_LEN, k = m.parts[o];
    if (c + k > ns) abort();
    if (k == 1) {
      if (vh[1] != WEFT_VNET_GSO_NONE) abort();
      check_single(vh, pkt, olen, orig + seg_off[c], seg_len[c]);
    } else {
      if (!coalesce) abort();
      const uint8_t *in[64];
      for (int32_t q = 0; q < k; q++) in[q] = orig + seg_off[c + q];
      check_super(vh, pkt, olen, in, seg_len + c, k);
      /* The first segment's headers were rewritten in place (tcp_gro_complete); nothing else in the slab was. */
      memcpy(orig + seg_off[c], slab + seg_off[c], (size_t)(ip_hlen(pkt) + (pkt[ip_hlen(pkt) + 12] >> 4) * 4));
      supers++;
      coalesced += k;
    }
    c += k;
  }
  if (c != ns) abort(); /* every kept packet went out exactly once */
  if (gc[WEFT_C_GRO_SUPERPACKETS] != supers || gc[WEFT_C_GRO_COALESCED] != coalesced) abort();
  if (memcmp(slab, orig, slab_len) != 0) abort();
  free(slab);
  free(orig);
  return 0;
}
