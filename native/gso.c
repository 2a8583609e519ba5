/*
 * GSO: a TCP or UDP super-packet read from a virtio TUN (up to 64 KiB, TSO/USO) cut into segments that fit the
 * TUN MTU, by scatter-gather: each segment's headers go into a small header area and its payload stays where the
 * TUN read put it, so the send (udp.c) gathers them and nothing is copied in user space.
 *
 * What the kernel does and we mirror: tcp_gso_segment / __udp_gso_segment (sequence numbers, FIN/PSH only on the
 * last segment, CWR only on the first, IP ID + k as inet_gso_segment for a non-fixed ID), ipv6_gso_segment (IPv6:
 * payload length per segment, no ID, flow label and traffic class copied), virtio_net_hdr_to_skb (NEEDS_CSUM: the
 * checksum field holds the folded pseudo-header sum, csum_start/csum_offset locate it).
 * Input from TUN is checked length by length before it is used. An IPv6 super-packet with extension headers is
 * refused (drop unsupported): the kernel's TSO6 of a plain TCP socket never makes one, and each header type would
 * need its own walk.
 */
#include "weft.h"

#include <string.h>

#define TCP_FIN 0x01
#define TCP_PSH 0x08
#define TCP_CWR 0x80

static void ip_header_csum(uint8_t *ip, int32_t ihl) {
  ip[10] = ip[11] = 0;
  weft_wr16(ip + 10, (uint16_t)~weft_csum_fold(weft_csum_add(0, ip, (size_t)ihl)));
}

/* The TCP half of segment k, either IP version: sequence, flags (tcp_gso_segment: FIN/PSH only on the last, CWR
 * only on the first) and the checksum over the pseudo-header sum ph. */
static void tcp_segment_fix(uint8_t *tcp, int32_t thl, uint64_t ph, uint64_t chunk_sum, int partial, int32_t k,
                            int32_t nseg, int32_t mss, uint32_t seq0, uint8_t flags0) {
  uint8_t f = flags0;
  if (k != nseg - 1) f &= (uint8_t)~(TCP_FIN | TCP_PSH);
  if (k != 0) f &= (uint8_t)~TCP_CWR;
  weft_wr32(tcp + 4, seq0 + (uint32_t)k * (uint32_t)mss);
  tcp[13] = f;
  uint64_t s = ph;
  if (partial) {
    weft_wr16(tcp + 16, weft_csum_fold(s));
    return;
  }
  tcp[16] = tcp[17] = 0;
  s += weft_csum_add(0, tcp, (size_t)thl) + chunk_sum;
  weft_wr16(tcp + 16, (uint16_t)~weft_csum_fold(s));
}

void weft_tcp4_segment_headers(uint8_t *h, int32_t ihl, int32_t thl, int32_t chunk, uint64_t chunk_sum, int partial,
                               int32_t k, int32_t nseg, int32_t mss, uint16_t id0, uint32_t seq0, uint8_t flags0) {
  weft_wr16(h + 2, (uint16_t)(ihl + thl + chunk));
  weft_wr16(h + 4, (uint16_t)(id0 + k));
  ip_header_csum(h, ihl);
  uint64_t ph = weft_csum_add(0, h + 12, 8) + 6 + (uint32_t)(thl + chunk);
  tcp_segment_fix(h + ihl, thl, ph, chunk_sum, partial, k, nseg, mss, seq0, flags0);
}

/* IPv6 extension headers (RFC 8200 section 4, IANA's list): hop-by-hop, routing, fragment, ESP, AH, destination
 * options, mobility, HIP, shim6, experiments. */
static int ipv6_ext_header(uint8_t nh) {
  return nh == 0 || nh == 43 || nh == 44 || nh == 50 || nh == 51 || nh == 60 || nh == 135 || nh == 139 ||
         nh == 140 || nh == 253 || nh == 254;
}

/* A lone packet (GSO_NONE), fixed up in place. A partial checksum at the standard place for TCP/UDP may travel on
 * (the receiving weft host hands it to its kernel as NEEDS_CSUM); anything else is completed here. */
static int32_t none_in_place(uint8_t flags, uint16_t cs_start, uint16_t cs_off, uint8_t *pkt, int32_t len, int ihl,
                             uint8_t proto, int gflags, weft_gso_plan *plan, double *counters) {
  int v6 = ihl == 40 && (pkt[0] >> 4) == 6;
  if (flags & WEFT_VNET_F_NEEDS_CSUM) {
    if (cs_start < ihl || (int32_t)cs_start + cs_off + 2 > len) return WEFT_VERDICT(WEFT_DROP_MALFORMED);
    int standard = cs_start == ihl && ((proto == 6 && cs_off == 16) || (proto == 17 && cs_off == 6));
    if (!(gflags & WEFT_GSO_CSUM_PARTIAL) || !standard || (!v6 && (weft_rd16(pkt + 6) & 0x3fff))) {
      /* The field holds the pseudo-header sum: summing from csum_start completes it. */
      uint16_t c = (uint16_t)~weft_csum_fold(weft_csum_add(0, pkt + cs_start, (size_t)(len - cs_start)));
      if (proto == 17 && cs_off == 6 && c == 0) c = 0xffff; /* RFC 768: zero means none */
      weft_wr16(pkt + cs_start + cs_off, c);
      counters[WEFT_C_CSUM_COMPLETED] += 1;
    }
  }
  if ((gflags & WEFT_GSO_TTL_DEC) && v6) weft_ipv6_hop_decrement(pkt);
  else if (gflags & WEFT_GSO_TTL_DEC) weft_ipv4_ttl_decrement(pkt);
  plan->nseg = 1;
  plan->hdr = 0;
  plan->mss = plan->last = len;
  return 1;
}

int32_t weft_gso_segment(const uint8_t *vh, uint8_t *pkt, int32_t len, int32_t mtu, int gflags, uint8_t *hdrs,
                         size_t hdrs_cap, int32_t room, weft_gso_plan *plan, double *counters) {
  uint8_t flags = vh[0], type = vh[1] & (uint8_t)~WEFT_VNET_GSO_ECN;
  uint16_t gso_size = weft_rd_le16(vh + 4), cs_start = weft_rd_le16(vh + 6), cs_off = weft_rd_le16(vh + 8);
  int ttl_dec = gflags & WEFT_GSO_TTL_DEC, partial = (gflags & WEFT_GSO_CSUM_PARTIAL) != 0;
  int v6 = len >= 1 && (pkt[0] >> 4) == 6;
  int32_t ihl;
  uint8_t proto;
  if (v6) {
    if (!weft_ipv6_valid_exact(pkt, len)) return WEFT_VERDICT(WEFT_DROP_MALFORMED);
    if (ttl_dec && pkt[7] <= 1) return WEFT_VERDICT(WEFT_DROP_TTL_EXCEEDED);
    ihl = 40;
    proto = pkt[6];
  } else {
    if (!weft_ipv4_valid_exact(pkt, len)) return WEFT_VERDICT(WEFT_DROP_MALFORMED);
    if (ttl_dec && pkt[8] <= 1) return WEFT_VERDICT(WEFT_DROP_TTL_EXCEEDED);
    ihl = (pkt[0] & 0x0f) * 4;
    proto = pkt[9];
  }
  if (type == WEFT_VNET_GSO_NONE)
    return none_in_place(flags, cs_start, cs_off, pkt, len, ihl, proto, gflags, plan, counters);
  if (v6 && ipv6_ext_header(proto)) return WEFT_VERDICT(WEFT_DROP_UNSUPPORTED);

  /* A GSO packet always carries a partial checksum at the start of its L4 header. */
  if (!(flags & WEFT_VNET_F_NEEDS_CSUM) || cs_start != ihl) return WEFT_VERDICT(WEFT_DROP_MALFORMED);
  if (!v6 && (weft_rd16(pkt + 6) & 0x3fff)) return WEFT_VERDICT(WEFT_DROP_MALFORMED); /* MF or fragment offset */
  if (weft_rd_le16(vh + 2) > len || gso_size == 0) return WEFT_VERDICT(WEFT_DROP_MALFORMED);
  int tcp = type == (v6 ? WEFT_VNET_GSO_TCPV6 : WEFT_VNET_GSO_TCPV4);
  int32_t l4h;
  if (tcp) {
    if (proto != 6 || cs_off != 16 || len < ihl + 20) return WEFT_VERDICT(WEFT_DROP_MALFORMED);
    l4h = (pkt[ihl + 12] >> 4) * 4;
  } else if (type == WEFT_VNET_GSO_UDP_L4) {
    if (proto != 17 || cs_off != 6 || len < ihl + 8) return WEFT_VERDICT(WEFT_DROP_MALFORMED);
    l4h = 8;
  } else {
    return WEFT_VERDICT(WEFT_DROP_MALFORMED); /* TCP of the other IP version, or UFO */
  }
  if (l4h < (tcp ? 20 : 8) || ihl + l4h > len || ihl + l4h > WEFT_GSO_HDR_MAX) return WEFT_VERDICT(WEFT_DROP_MALFORMED);
  int32_t hdr = ihl + l4h, payload = len - hdr, mss = gso_size;
  /* TCP may be cut finer than the sender asked; UDP datagram boundaries belong to the app. */
  if (hdr + mss > mtu) {
    if (!tcp) return WEFT_VERDICT(WEFT_DROP_MALFORMED);
    mss = mtu - hdr;
    if (mss < 1) return WEFT_VERDICT(WEFT_DROP_MALFORMED);
  }
  if (payload < mss) mss = payload > 0 ? payload : 0;
  int32_t nseg = payload == 0 ? 1 : (payload + mss - 1) / mss;
  if (nseg > WEFT_GSO_MAX_SEGS) return WEFT_VERDICT(WEFT_DROP_MALFORMED);
  size_t stride = (size_t)room + (size_t)hdr;
  if (stride * (size_t)nseg > hdrs_cap) return WEFT_VERDICT(WEFT_DROP_NO_SLOT);

  uint16_t id = v6 ? 0 : weft_rd16(pkt + 4);
  uint32_t seq = tcp ? weft_rd32(pkt + ihl + 4) : 0;
  uint8_t tflags = tcp ? pkt[ihl + 13] : 0;
  /* The pseudo-header's addresses (RFC 768/793; RFC 8200 section 8.1 for IPv6), the same for every segment. */
  uint64_t addrs = v6 ? weft_csum_pseudo6(pkt, 0, 0) : weft_csum_add(0, pkt + 12, 8);
  for (int32_t k = 0; k < nseg; k++) {
    int32_t chunk = k == nseg - 1 ? payload - k * mss : mss;
    const uint8_t *data = pkt + hdr + (size_t)k * (size_t)mss;
    uint8_t *o = hdrs + (size_t)k * stride + room;
    memcpy(o, pkt, (size_t)hdr);
    if (ttl_dec) o[v6 ? 7 : 8] = (uint8_t)(o[v6 ? 7 : 8] - 1);
    /* The one pass over the payload, and none with partial checksums. */
    uint64_t sum = partial ? 0 : weft_csum_add(0, data, (size_t)chunk);
    if (tcp && !v6) {
      weft_tcp4_segment_headers(o, ihl, l4h, chunk, sum, partial, k, nseg, mss, id, seq, tflags);
      continue;
    }
    if (v6) {
      weft_wr16(o + 4, (uint16_t)(l4h + chunk));
    } else {
      weft_wr16(o + 2, (uint16_t)(hdr + chunk));
      weft_wr16(o + 4, (uint16_t)(id + k));
      ip_header_csum(o, ihl);
    }
    uint8_t *l4 = o + ihl;
    uint64_t ph = addrs + proto + (uint32_t)(l4h + chunk);
    if (tcp) {
      tcp_segment_fix(l4, l4h, ph, sum, partial, k, nseg, mss, seq, tflags);
      continue;
    }
    weft_wr16(l4 + 4, (uint16_t)(8 + chunk));
    if (partial) {
      weft_wr16(l4 + 6, weft_csum_fold(ph));
      continue;
    }
    weft_wr16(l4 + 6, 0);
    uint16_t c = (uint16_t)~weft_csum_fold(ph + weft_csum_add(0, l4, 8) + sum);
    weft_wr16(l4 + 6, c == 0 ? 0xffff : c);
  }
  plan->nseg = nseg;
  plan->hdr = hdr;
  plan->mss = mss;
  plan->last = payload - (nseg - 1) * mss;
  counters[WEFT_C_GSO_SUPERPACKETS] += 1;
  counters[WEFT_C_GSO_SEGMENTS] += nseg;
  return nseg;
}

int32_t weft_gso_split(const uint8_t *pkt, int32_t len, int32_t mtu, uint8_t *out, size_t cap, int32_t room, int flags,
                       int32_t *seg_len, int32_t *last_len, double *counters) {
  const uint8_t *vh = pkt - WEFT_VNET_HDR_LEN;
  uint8_t hdrs[WEFT_GSO_MAX_SEGS * WEFT_GSO_HDR_MAX];
  weft_gso_plan plan;
  if ((vh[1] & (uint8_t)~WEFT_VNET_GSO_ECN) == WEFT_VNET_GSO_NONE) {
    /* In place on a copy: the input stays as it was. */
    if (len < 0 || (size_t)room + (size_t)len > cap) return WEFT_VERDICT(WEFT_DROP_NO_SLOT);
    memcpy(out + room, pkt, (size_t)len);
    counters[WEFT_C_COPIED_USER_BYTES] += (double)len;
    int32_t n = weft_gso_segment(vh, out + room, len, mtu, flags, hdrs, 0, 0, &plan, counters);
    if (n < 0) return n;
    *seg_len = *last_len = len;
    return 1;
  }
  int32_t n = weft_gso_segment(vh, (uint8_t *)pkt, len, mtu, flags, hdrs, sizeof hdrs, 0, &plan, counters);
  if (n < 0) return n;
  int32_t full = plan.hdr + (n > 1 ? plan.mss : plan.last), last = plan.hdr + plan.last;
  size_t stride = (size_t)room + (size_t)full;
  if (stride * (size_t)(n - 1) + (size_t)room + (size_t)last > cap) return WEFT_VERDICT(WEFT_DROP_NO_SLOT);
  for (int32_t k = 0; k < n; k++) {
    uint8_t *o = out + (size_t)k * stride + room;
    int32_t chunk = k == n - 1 ? plan.last : plan.mss;
    memcpy(o, hdrs + (size_t)k * (size_t)plan.hdr, (size_t)plan.hdr);
    memcpy(o + plan.hdr, pkt + plan.hdr + (size_t)k * (size_t)plan.mss, (size_t)chunk);
    counters[WEFT_C_COPIED_USER_BYTES] += (double)chunk;
  }
  *seg_len = full;
  *last_len = last;
  return n;
}
