/*
 * GRO: consecutive TCP segments of one flow, as decapsulated from UDP_GRO receives, coalesced back into one
 * super-packet and handed to a sink (TUN, with a virtio header) as one writev: headers of the first segment in
 * place, payloads gathered from where recvmmsg put them.
 *
 * What the kernel does and we mirror: tcp_gro_receive (same flow, contiguous sequence, same ACK, window and
 * options, no SYN/FIN/RST/URG/CWR, PSH ends a run), ipv6_gro_receive (IPv6: same traffic class, flow label, hop
 * limit and addresses, no extension headers), tcp_gro_complete (the first segment's headers become the super-packet's),
 * virtio_net_hdr_to_skb (NEEDS_CSUM: the checksum field holds the folded pseudo-header sum). A segment whose
 * checksum is partial (a kernel VXLAN sender on veth, or a weft sender that carries partial checksums end to end)
 * is merged without reading its payload; a full checksum is verified first.
 */
#include "weft.h"

#include <string.h>
#include <sys/uio.h>

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_PSH 0x08
#define TCP_URG 0x20
#define TCP_CWR 0x80

/* The pseudo-header sum of the packet at ip (IPv4 or IPv6 by its version) for an L4 part of l4_len bytes. */
static inline uint64_t pseudo_sum(const uint8_t *ip, uint8_t proto, uint32_t l4_len) {
  if ((ip[0] >> 4) == 6) return weft_csum_pseudo6(ip, proto, l4_len);
  return weft_csum_add(0, ip + 12, 8) + proto + l4_len;
}

static void ip_header_csum(uint8_t *ip, int32_t ihl) {
  ip[10] = ip[11] = 0;
  weft_wr16(ip + 10, (uint16_t)~weft_csum_fold(weft_csum_add(0, ip, (size_t)ihl)));
}

/* TCP segment that may start or join a run: a plain IPv4 header (not a fragment) or an IPv6 header with TCP as its
 * next header (no extension headers) whose payload length is the packet's, then payload, and none of
 * SYN/FIN/RST/URG/CWR. Returns its payload length, or -1; *ihl is the IP header's length. */
static int32_t tcp_candidate(const uint8_t *p, int32_t len, int32_t *ihl) {
  if (len < 40) return -1;
  if ((p[0] >> 4) == 6) {
    if (p[6] != 6 || len < 60 || weft_rd16(p + 4) + 40 != len) return -1;
    *ihl = 40;
  } else {
    if (p[0] != 0x45 || p[9] != 6) return -1;
    if (weft_rd16(p + 6) & 0x3fff) return -1;
    /* A merged super-packet gets a fresh IP checksum: never let one hide a bad header (inet_gro_receive checks too). */
    if (weft_csum_fold(weft_csum_add(0, p, 20)) != 0xffff) return -1;
    *ihl = 20;
  }
  const uint8_t *tcp = p + *ihl;
  int32_t thl = (tcp[12] >> 4) * 4;
  if (thl < 20 || *ihl + thl >= len) return -1;
  if (tcp[13] & (TCP_SYN | TCP_FIN | TCP_RST | TCP_URG | TCP_CWR)) return -1;
  return len - *ihl - thl;
}

/* 1 when the L4 checksum holds only the pseudo-header sum (a CHECKSUM_PARTIAL sender). */
static int l4_partial(const uint8_t *p, int32_t len, int32_t ihl, uint8_t proto, int32_t field) {
  uint64_t ph = pseudo_sum(p, proto, (uint32_t)(len - ihl));
  return weft_rd16(p + ihl + field) == weft_csum_fold(ph);
}

/* Checksum is partial (will be completed by the kernel) or correct. */
static int tcp_csum_usable(const uint8_t *p, int32_t len, int32_t ihl) {
  if (l4_partial(p, len, ihl, 6, 16)) return 1;
  uint64_t s = pseudo_sum(p, 6, (uint32_t)(len - ihl)) + weft_csum_add(0, p + ihl, (size_t)(len - ihl));
  return weft_csum_fold(s) == 0xffff;
}

/* Same flow and same headers apart from length, ID, checksum, sequence and PSH. IPv4: TOS, DF, TTL, addresses.
 * IPv6 (ipv6_gro_receive): version, traffic class and flow label (the first word), next header, hop limit,
 * addresses. TCP (tcp_gro_receive): ports, ACK, data offset, flags but PSH, window, options. */
static int tcp_same_flow(const uint8_t *a, const uint8_t *b, int32_t ihl) {
  if (ihl == 40) {
    if (memcmp(a, b, 4) != 0 || memcmp(a + 6, b + 6, 34) != 0) return 0;
  } else {
    if (a[1] != b[1] || a[6] != b[6] || a[7] != b[7] || a[8] != b[8]) return 0;
    if (memcmp(a + 12, b + 12, 8) != 0) return 0; /* addresses */
  }
  const uint8_t *x = a + ihl, *y = b + ihl;
  int32_t thl = (x[12] >> 4) * 4;
  if (memcmp(x, y, 4) != 0 || memcmp(x + 8, y + 8, 5) != 0) return 0; /* ports; ACK, data offset */
  if ((x[13] & ~TCP_PSH) != (y[13] & ~TCP_PSH) || memcmp(x + 14, y + 14, 2) != 0) return 0; /* flags, window */
  return memcmp(x + 20, y + 20, (size_t)(thl - 20)) == 0; /* options, e.g. timestamps */
}

#define GRO_MAX_RUN 64

/* A lone TCP packet longer than the TUN MTU: a kernel VXLAN peer's GSO sends a whole TCP burst as one inner packet
 * of up to 64 KiB. Handed to TUN as a GSO_TCPV4/GSO_TCPV6 super-packet (gso_size = what fits the MTU), the kernel
 * segments it on its way out (virtio_net_hdr_to_skb); written plain, it would meet a smaller MTU with DF set (IPv6:
 * no fragmentation on the way) and stall the sender. A full checksum is verified (one pass) and turned into the
 * partial one NEEDS_CSUM wants. Returns 0 when it must be dropped (counted). */
static int big_tcp(uint8_t *p, int32_t plen, int32_t ihl, uint8_t proto, int32_t mtu, uint8_t *vh, double *counters) {
  int32_t thl = plen >= ihl + 20 ? (p[ihl + 12] >> 4) * 4 : 0, hdr = ihl + thl;
  if (proto != 6 || thl < 20 || hdr >= plen || hdr >= mtu || (p[ihl + 13] & (TCP_SYN | TCP_RST))) {
    weft_drop(counters, WEFT_DROP_TOO_BIG);
    return 0;
  }
  if (!(vh[0] & WEFT_VNET_F_NEEDS_CSUM)) {
    uint64_t ph = pseudo_sum(p, 6, (uint32_t)(plen - ihl));
    if (weft_csum_fold(weft_csum_add(ph, p + ihl, (size_t)(plen - ihl))) != 0xffff) {
      weft_drop(counters, WEFT_DROP_BAD_CSUM);
      return 0;
    }
    weft_wr16(p + ihl + 16, weft_csum_fold(ph));
    vh[0] = WEFT_VNET_F_NEEDS_CSUM;
    weft_wr_le16(vh + 6, (uint16_t)ihl);
    weft_wr_le16(vh + 8, 16);
  }
  uint8_t type = (p[0] >> 4) == 6 ? WEFT_VNET_GSO_TCPV6 : WEFT_VNET_GSO_TCPV4;
  vh[1] = type | (p[ihl + 13] & TCP_CWR ? WEFT_VNET_GSO_ECN : 0);
  weft_wr_le16(vh + 2, (uint16_t)hdr);
  weft_wr_le16(vh + 4, (uint16_t)(mtu - hdr));
  return 1;
}

/* A packet written alone: the IP version's header length and L4 protocol when it has a checksum at the standard
 * place that the kernel could finish (IPv4 not a fragment, IPv6 without extension headers), else 0. */
static int32_t lone_l4(const uint8_t *p, int32_t plen, uint8_t *proto) {
  if ((p[0] >> 4) == 6) {
    if (plen < 40) return 0;
    *proto = p[6];
    return 40;
  }
  if ((p[0] >> 4) != 4 || (weft_rd16(p + 6) & 0x3fff)) return 0;
  *proto = p[9];
  return (p[0] & 0x0f) * 4;
}

int32_t weft_gro_run(uint8_t *slab, size_t slab_len, const int32_t *seg_off, int32_t *seg_len, int32_t count,
                     int coalesce, int32_t mtu, weft_sink sink, void *ctx, double *counters) {
  struct iovec iov[2 + GRO_MAX_RUN];
  uint8_t vh[WEFT_VNET_HDR_LEN];
  int32_t written = 0;
  int32_t i = 0;
  while (i < count) {
    int32_t plen = seg_len[i];
    if (plen <= 0) {
      i++;
      continue;
    }
    if (seg_off[i] < 0 || (size_t)seg_off[i] + (size_t)plen > slab_len || plen < 20) {
      seg_len[i] = WEFT_VERDICT(WEFT_DROP_MALFORMED);
      weft_drop(counters, WEFT_DROP_MALFORMED);
      i++;
      continue;
    }
    uint8_t *p = slab + seg_off[i];
    memset(vh, 0, sizeof vh);
    iov[0].iov_base = vh;
    iov[0].iov_len = sizeof vh;
    iov[1].iov_base = p;
    iov[1].iov_len = (size_t)plen;
    int iovcnt = 2;
    int32_t j = i + 1;
    int32_t ihl = 20;
    int32_t mss = coalesce ? tcp_candidate(p, plen, &ihl) : -1;
    if (mss > 0 && !tcp_csum_usable(p, plen, ihl)) {
      counters[WEFT_C_GRO_CSUM_BAD] += 1;
      mss = -1; /* written alone: the kernel drops it and counts TcpInCsumErrors */
    }
    uint8_t *tcp = p + ihl;
    if (mss > 0 && !(tcp[13] & TCP_PSH)) {
      int32_t thl = (tcp[12] >> 4) * 4, hdr = ihl + thl, total = mss;
      uint32_t seq = weft_rd32(tcp + 4);
      uint8_t last_flags = tcp[13];
      while (j < count && iovcnt < 2 + GRO_MAX_RUN) {
        int32_t ql = seg_len[j];
        if (ql <= 0 || seg_off[j] < 0 || (size_t)seg_off[j] + (size_t)ql > slab_len) break;
        const uint8_t *q = slab + seg_off[j];
        int32_t qihl = 0;
        int32_t qpay = tcp_candidate(q, ql, &qihl);
        /* At most 64 KiB in all, for either IP version, as the kernel's GRO keeps it. */
        if (qpay <= 0 || qihl != ihl || qpay > mss || ql - qpay != hdr || hdr + total + qpay > 65535) break;
        if (!tcp_same_flow(p, q, ihl) || weft_rd32(q + ihl + 4) != seq + (uint32_t)total) break;
        if (!tcp_csum_usable(q, ql, ihl)) {
          counters[WEFT_C_GRO_CSUM_BAD] += 1;
          break;
        }
        iov[iovcnt].iov_base = (void *)(q + hdr);
        iov[iovcnt].iov_len = (size_t)qpay;
        iovcnt++;
        total += qpay;
        last_flags = q[ihl + 13];
        j++;
        if (qpay < mss || (last_flags & TCP_PSH)) break; /* a short or pushed segment ends the run */
      }
      if (iovcnt > 2) {
        /* The first segment's headers become the super-packet's (tcp_gro_complete). */
        if (ihl == 40) {
          weft_wr16(p + 4, (uint16_t)(thl + total));
        } else {
          weft_wr16(p + 2, (uint16_t)(hdr + total));
          ip_header_csum(p, 20);
        }
        tcp[13] |= last_flags & TCP_PSH;
        weft_wr16(tcp + 16, weft_csum_fold(pseudo_sum(p, 6, (uint32_t)(thl + total))));
        vh[0] = WEFT_VNET_F_NEEDS_CSUM;
        vh[1] = ihl == 40 ? WEFT_VNET_GSO_TCPV6 : WEFT_VNET_GSO_TCPV4;
        weft_wr_le16(vh + 2, (uint16_t)hdr);
        weft_wr_le16(vh + 4, (uint16_t)mss);
        weft_wr_le16(vh + 6, (uint16_t)ihl);
        weft_wr_le16(vh + 8, 16);
        counters[WEFT_C_GRO_SUPERPACKETS] += 1;
        counters[WEFT_C_GRO_COALESCED] += iovcnt - 1;
      }
    }
    uint8_t proto = 0;
    int32_t lihl = iovcnt == 2 ? lone_l4(p, plen, &proto) : 0;
    if (lihl > 0) {
      /* Alone: a kernel sender's partial checksum is finished by the kernel (NEEDS_CSUM). */
      int32_t field = proto == 6 ? 16 : proto == 17 ? 6 : -1;
      if (field > 0 && lihl >= 20 && plen >= lihl + field + 2 && !(proto == 17 && weft_rd16(p + lihl + 6) == 0) &&
          l4_partial(p, plen, lihl, proto, field)) {
        vh[0] = WEFT_VNET_F_NEEDS_CSUM;
        weft_wr_le16(vh + 6, (uint16_t)lihl);
        weft_wr_le16(vh + 8, (uint16_t)field);
      }
      if (mtu > 0 && plen > mtu && !big_tcp(p, plen, lihl, proto, mtu, vh, counters)) {
        i = j;
        continue;
      }
    }
    written += sink(ctx, iov, iovcnt, counters);
    i = j;
  }
  return written;
}
