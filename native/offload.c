/*
 * The offload tier's byte work and syscalls: TUN with a virtio_net_hdr (IFF_VNET_HDR,
 * TUNSETOFFLOAD), segmentation of TCP/UDP super-packets (GSO), UDP_SEGMENT trains with a
 * sendmmsg fallback, splitting of UDP_GRO receives (the receive itself is weft_udp_recv
 * in udp.c), and coalescing of TCP segments back into super-packets (GRO) before they
 * are written to TUN. The contract is in weft.h.
 *
 * What the kernel does and we mirror: tcp_gso_segment / __udp_gso_segment (sequence
 * numbers, FIN/PSH only on the last segment, CWR only on the first, IP ID + k),
 * tcp_gro_receive (same flow, contiguous sequence, same ACK and options, no
 * SYN/FIN/RST/URG/CWR, PSH ends a run), virtio_net_hdr_to_skb (NEEDS_CSUM: the checksum
 * field holds the folded pseudo-header sum, csum_start/csum_offset locate it).
 * Input from the network and from TUN is checked length by length before it is used.
 */
#include "weft.h"

#include <linux/if.h>
#include <linux/if_tun.h>
#include <stdio.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>


#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_PSH 0x08
#define TCP_URG 0x20
#define TCP_CWR 0x80

/* virtio_net_hdr fields are little-endian (legacy header on a little-endian host, or
 * TUNSETVNETLE); read them byte by byte so the layout never depends on the compiler. */
static inline uint16_t rd_le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline void wr_le16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}

static inline uint64_t pseudo_sum(const uint8_t *ip, uint8_t proto, uint32_t l4_len) {
  return weft_csum_add(0, ip + 12, 8) + proto + l4_len;
}

static void ip_header_csum(uint8_t *ip, int32_t ihl) {
  ip[10] = ip[11] = 0;
  weft_wr16(ip + 10, (uint16_t)~weft_csum_fold(weft_csum_add(0, ip, (size_t)ihl)));
}

/* ---- setup ---- */

int weft_tun_set_offload(int fd, unsigned flags, weft_err *e) {
  if (ioctl(fd, TUNSETOFFLOAD, (unsigned long)flags) == 0) return 1;
  if (errno == EINVAL) return 0; /* this kernel does not know one of the bits: JS asks for less */
  e->code = errno, e->syscall = "ioctl(TUNSETOFFLOAD)";
  return -1;
}

int weft_udp_offload(int fd, int want_gro, int *has_segment, int *has_gro, weft_err *e) {
  int v = 0, one = 1;
  socklen_t l = sizeof v;
  /* wireguard-go probes UDP_SEGMENT the same way: the option exists when getsockopt works. */
  *has_segment = getsockopt(fd, SOL_UDP, UDP_SEGMENT, &v, &l) == 0;
  *has_gro = 0;
  if (!want_gro) return 0;
  if (setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof one) == 0) {
    *has_gro = 1;
  } else if (errno != ENOPROTOOPT && errno != EINVAL) {
    e->code = errno, e->syscall = "setsockopt(UDP_GRO)";
    return -1;
  }
  return 0;
}

int weft_tun_get_iff(int fd, char *name, size_t cap, weft_err *e) {
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  if (ioctl(fd, TUNGETIFF, &ifr) < 0) {
    e->code = errno, e->syscall = "ioctl(TUNGETIFF)";
    return -1;
  }
  snprintf(name, cap, "%.*s", IFNAMSIZ, ifr.ifr_name);
  return ifr.ifr_flags & 0xffff;
}

/* ---- outbound ---- */

int32_t weft_tun_read_vnet(int fd, uint8_t *slab, int32_t slot_size, int32_t headroom, int32_t *len, int32_t max,
                           double *counters, weft_err *e) {
  int32_t n = 0;
  while (n < max) {
    uint8_t *at = slab + (size_t)n * slot_size + headroom - WEFT_VNET_HDR_LEN;
    ssize_t r = read(fd, at, (size_t)(slot_size - headroom + WEFT_VNET_HDR_LEN));
    counters[WEFT_C_SYSCALLS_TUN_READ] += 1;
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      if (n > 0) break;
      e->code = errno, e->syscall = "read";
      return -1;
    }
    if (r == 0) break;
    counters[WEFT_C_COPIED_KERNEL_TO_USER_BYTES] += (double)r;
    if (r < WEFT_VNET_HDR_LEN) {
      len[n++] = WEFT_VERDICT(WEFT_DROP_MALFORMED);
      weft_drop(counters, WEFT_DROP_MALFORMED);
      continue;
    }
    len[n++] = (int32_t)(r - WEFT_VNET_HDR_LEN);
    counters[WEFT_C_TUN_RX_PACKETS] += 1;
    counters[WEFT_C_TUN_RX_BYTES] += (double)(r - WEFT_VNET_HDR_LEN);
  }
  return n;
}

int32_t weft_gso_split(const uint8_t *pkt, int32_t len, int32_t mtu, uint8_t *out, size_t cap, int32_t room,
                       int ttl_dec, int32_t *seg_len, int32_t *last_len, double *counters) {
  const uint8_t *vh = pkt - WEFT_VNET_HDR_LEN;
  uint8_t flags = vh[0], type = vh[1] & (uint8_t)~WEFT_VNET_GSO_ECN;
  uint16_t hdr_len = rd_le16(vh + 2), gso_size = rd_le16(vh + 4);
  uint16_t cs_start = rd_le16(vh + 6), cs_off = rd_le16(vh + 8);
  if (!weft_ipv4_valid_exact(pkt, len)) return WEFT_VERDICT(WEFT_DROP_MALFORMED);
  if (ttl_dec && pkt[8] <= 1) return WEFT_VERDICT(WEFT_DROP_TTL_EXCEEDED);
  int32_t ihl = (pkt[0] & 0x0f) * 4;
  uint8_t proto = pkt[9];

  if (type == WEFT_VNET_GSO_NONE) {
    if ((size_t)room + (size_t)len > cap) return WEFT_VERDICT(WEFT_DROP_NO_SLOT);
    uint8_t *o = out + room;
    if ((flags & WEFT_VNET_F_NEEDS_CSUM) && (cs_start < ihl || (int32_t)cs_start + cs_off + 2 > len))
      return WEFT_VERDICT(WEFT_DROP_MALFORMED);
    memcpy(o, pkt, (size_t)len);
    if (flags & WEFT_VNET_F_NEEDS_CSUM) {
      /* The field holds the pseudo-header sum: summing from csum_start completes it. */
      uint16_t c = (uint16_t)~weft_csum_fold(weft_csum_add(0, o + cs_start, (size_t)(len - cs_start)));
      if (proto == 17 && cs_off == 6 && c == 0) c = 0xffff; /* RFC 768: zero means none */
      weft_wr16(o + cs_start + cs_off, c);
      counters[WEFT_C_CSUM_COMPLETED] += 1;
    }
    if (ttl_dec) weft_ipv4_ttl_decrement(o);
    *seg_len = *last_len = len;
    return 1;
  }

  /* A GSO packet always carries a partial checksum at the start of its L4 header. */
  if (!(flags & WEFT_VNET_F_NEEDS_CSUM) || cs_start != ihl) return WEFT_VERDICT(WEFT_DROP_MALFORMED);
  if (weft_rd16(pkt + 6) & 0x3fff) return WEFT_VERDICT(WEFT_DROP_MALFORMED); /* MF or fragment offset */
  if (hdr_len > len || gso_size == 0) return WEFT_VERDICT(WEFT_DROP_MALFORMED);
  int tcp = type == WEFT_VNET_GSO_TCPV4;
  int32_t l4h, field;
  if (tcp) {
    if (proto != 6 || cs_off != 16 || len < ihl + 20) return WEFT_VERDICT(WEFT_DROP_MALFORMED);
    l4h = (pkt[ihl + 12] >> 4) * 4;
    field = 16;
  } else if (type == WEFT_VNET_GSO_UDP_L4) {
    if (proto != 17 || cs_off != 6 || len < ihl + 8) return WEFT_VERDICT(WEFT_DROP_MALFORMED);
    l4h = 8;
    field = 6;
  } else {
    return WEFT_VERDICT(WEFT_DROP_MALFORMED); /* TCPv6 or UFO: the overlay carries IPv4 only */
  }
  if (l4h < (tcp ? 20 : 8) || ihl + l4h > len) return WEFT_VERDICT(WEFT_DROP_MALFORMED);
  int32_t hdr = ihl + l4h, payload = len - hdr, mss = gso_size;
  /* TCP may be cut finer than the sender asked; UDP datagram boundaries belong to the app. */
  if (hdr + mss > mtu) {
    if (!tcp) return WEFT_VERDICT(WEFT_DROP_MALFORMED);
    mss = mtu - hdr;
    if (mss < 1) return WEFT_VERDICT(WEFT_DROP_MALFORMED);
  }
  int32_t nseg = payload == 0 ? 1 : (payload + mss - 1) / mss;
  if (nseg > WEFT_GSO_MAX_SEGS) return WEFT_VERDICT(WEFT_DROP_MALFORMED);
  int32_t full = hdr + (payload < mss ? payload : mss), stride = room + full;
  int32_t last = hdr + (payload - (nseg - 1) * mss);
  if ((size_t)stride * (size_t)(nseg - 1) + (size_t)room + (size_t)last > cap) return WEFT_VERDICT(WEFT_DROP_NO_SLOT);

  uint16_t id = weft_rd16(pkt + 4);
  uint32_t seq = tcp ? weft_rd32(pkt + ihl + 4) : 0;
  uint8_t tflags = tcp ? pkt[ihl + 13] : 0;
  uint64_t addrs = weft_csum_add(0, pkt + 12, 8);
  for (int32_t k = 0; k < nseg; k++) {
    int32_t chunk = k == nseg - 1 ? payload - k * mss : mss;
    int32_t tot = hdr + chunk;
    uint8_t *o = out + (size_t)k * stride + room;
    memcpy(o, pkt, (size_t)hdr);
    memcpy(o + hdr, pkt + hdr + (size_t)k * mss, (size_t)chunk);
    if (ttl_dec) o[8] = (uint8_t)(o[8] - 1);
    if (tcp) {
      /* The same fix-ups as the batch tier's TUN-side split (tun.c). */
      weft_tcp4_segment_headers(o, ihl, l4h, chunk, weft_csum_add(0, o + hdr, (size_t)chunk), k, nseg, mss, id, seq,
                                tflags);
      continue;
    }
    weft_wr16(o + 2, (uint16_t)tot);
    weft_wr16(o + 4, (uint16_t)(id + k)); /* as inet_gso_segment does for a non-fixed ID */
    ip_header_csum(o, ihl);
    uint8_t *l4 = o + ihl;
    weft_wr16(l4 + 4, (uint16_t)(8 + chunk));
    weft_wr16(l4 + field, 0);
    uint16_t c = (uint16_t)~weft_csum_fold(addrs + proto + (uint32_t)(tot - ihl) +
                                            weft_csum_add(0, l4, (size_t)(tot - ihl)));
    if (c == 0) c = 0xffff;
    weft_wr16(l4 + field, c);
  }
  *seg_len = full;
  *last_len = last;
  counters[WEFT_C_GSO_SUPERPACKETS] += 1;
  counters[WEFT_C_GSO_SEGMENTS] += nseg;
  return nseg;
}

int32_t weft_offload_encap(const weft_encap_ops *ops, uint8_t *slab, int32_t slot_size, int32_t headroom,
                           const int32_t *len, int32_t *peer, int32_t count, const uint8_t *peer_table,
                           int32_t peer_count, const uint8_t *local_mac, uint32_t vni, int32_t mtu, uint8_t *train,
                           size_t train_cap, int32_t *msg_off, int32_t *msg_len, int32_t *msg_gso, int32_t *msg_peer,
                           int32_t max_msgs, double *counters) {
  size_t cur = 0;
  int32_t m = 0;
  for (int32_t i = 0; i < count; i++) {
    if (peer[i] < 0) continue;
    int32_t v = 0;
    if (peer[i] >= peer_count) v = WEFT_VERDICT(WEFT_DROP_NO_ROUTE);
    else if (len[i] < 0 || len[i] > slot_size - headroom) v = WEFT_VERDICT(WEFT_DROP_MALFORMED);
    else if (m >= max_msgs) v = WEFT_VERDICT(WEFT_DROP_NO_SLOT);
    int32_t seg = 0, last = 0, n = 0;
    if (v == 0) {
      uint8_t *pkt = slab + (size_t)i * slot_size + headroom;
      n = weft_gso_split(pkt, len[i], mtu, train + cur, train_cap - cur, ops->hlen, 1, &seg, &last, counters);
      if (n < 0) v = n;
    }
    int32_t stride = ops->hlen + seg;
    int32_t per = WEFT_UDP_GSO_MAX_BYTES / (stride > 0 ? stride : 1);
    if (per > WEFT_UDP_GSO_MAX_SEGS) per = WEFT_UDP_GSO_MAX_SEGS;
    if (per < 1) per = 1;
    if (v == 0 && m + (n + per - 1) / per > max_msgs) v = WEFT_VERDICT(WEFT_DROP_NO_SLOT);
    if (v < 0) {
      peer[i] = v;
      weft_drop(counters, -v - 1);
      continue;
    }
    const uint8_t *rec = peer_table + (size_t)peer[i] * WEFT_PEER_RECORD_SIZE;
    uint32_t rec_vni = weft_rd32(rec + WEFT_PEER_VNI);
    for (int32_t k = 0; k < n; k++)
      ops->encode(train + cur + (size_t)k * stride, rec, local_mac, rec_vni ? rec_vni : vni);
    for (int32_t k = 0; k < n; k += per) {
      int32_t c = n - k < per ? n - k : per;
      msg_off[m] = (int32_t)(cur + (size_t)k * stride);
      msg_len[m] = (c - 1) * stride + (k + c == n ? ops->hlen + last : stride);
      msg_gso[m] = c > 1 ? stride : 0;
      msg_peer[m] = peer[i];
      m++;
    }
    cur += (size_t)(n - 1) * stride + ops->hlen + last;
  }
  return m;
}

static int fd_error(int err) { return err == EBADF || err == ENOTSOCK || err == EFAULT; }

int32_t weft_send_train(int fd, const uint8_t *train, size_t train_len, int32_t *msg_off, int32_t *msg_len,
                        const int32_t *msg_gso, int32_t *msg_peer, int32_t start, int32_t count,
                        const uint8_t *peer_table, int32_t peer_count, int32_t *state, double *counters, weft_err *e) {
  struct mmsghdr msgs[WEFT_MMSG_CHUNK];
  struct iovec iov[WEFT_MMSG_CHUNK];
  struct sockaddr_in sa[WEFT_MMSG_CHUNK];
  union {
    char buf[CMSG_SPACE(sizeof(uint16_t))];
    struct cmsghdr align;
  } ctl[WEFT_MMSG_CHUNK];
  int32_t idx[WEFT_MMSG_CHUNK];
  uint8_t whole[WEFT_MMSG_CHUNK]; /* 1: the entry is the whole message; 0: one segment of it */
  int32_t i = start;
refill:
  while (i < count) {
    int mm = 0;
    while (i < count && mm < WEFT_MMSG_CHUNK) {
      if (msg_peer[i] < 0 || msg_len[i] <= 0) {
        i++;
        continue;
      }
      if (msg_peer[i] >= peer_count) {
        msg_peer[i] = WEFT_VERDICT(WEFT_DROP_NO_ROUTE);
        weft_drop(counters, WEFT_DROP_NO_ROUTE);
        i++;
        continue;
      }
      if (msg_off[i] < 0 || (size_t)msg_off[i] + (size_t)msg_len[i] > train_len || msg_gso[i] < 0) {
        msg_peer[i] = WEFT_VERDICT(WEFT_DROP_MALFORMED);
        weft_drop(counters, WEFT_DROP_MALFORMED);
        i++;
        continue;
      }
      const uint8_t *rec = peer_table + (size_t)msg_peer[i] * WEFT_PEER_RECORD_SIZE;
      int32_t gso = msg_gso[i];
      int split = gso > 0 && !state[0];
      int32_t pos = 0; /* bytes of message i queued in this chunk */
      while (pos < msg_len[i] && mm < WEFT_MMSG_CHUNK) {
        int32_t piece = split ? (msg_len[i] - pos < gso ? msg_len[i] - pos : gso) : msg_len[i];
        weft_mmsg_set(&msgs[mm], &sa[mm], rec, &iov[mm], train + msg_off[i] + pos, (size_t)piece);
        if (gso > 0 && !split) {
          struct cmsghdr *cm = (struct cmsghdr *)ctl[mm].buf;
          uint16_t g = (uint16_t)gso;
          memset(ctl[mm].buf, 0, sizeof ctl[mm].buf);
          cm->cmsg_level = SOL_UDP;
          cm->cmsg_type = UDP_SEGMENT;
          cm->cmsg_len = CMSG_LEN(sizeof g);
          memcpy(CMSG_DATA(cm), &g, sizeof g);
          msgs[mm].msg_hdr.msg_control = ctl[mm].buf;
          msgs[mm].msg_hdr.msg_controllen = sizeof ctl[mm].buf;
        }
        whole[mm] = !split;
        idx[mm++] = i;
        pos += piece;
      }
      if (pos < msg_len[i]) break; /* chunk full mid-message: the rest goes in the next chunk */
      i++;
    }
    int k = 0;
    while (k < mm) {
      int r = sendmmsg(fd, msgs + k, (unsigned)(mm - k), 0);
      counters[WEFT_C_SYSCALLS_SEND] += 1;
      if (r < 0) {
        int err = errno;
        if (err == EINTR) continue;
        if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS) return idx[k];
        if (fd_error(err)) {
          e->code = err, e->syscall = "sendmmsg";
          return -1;
        }
        if (err == EIO && msgs[k].msg_hdr.msg_control) {
          /* The kernel cannot segment for us on this route (no checksum offload): remember it,
           * as wireguard-go does, and send this message and all later ones datagram by datagram. */
          state[0] = 0;
          counters[WEFT_C_UDP_GSO_FALLBACKS] += 1;
          i = idx[k];
          goto refill;
        }
        /* Drop the failing message (all its entries), go on with the rest. */
        int32_t bad = idx[k];
        msg_peer[bad] = WEFT_VERDICT(WEFT_DROP_SEND_ERROR);
        weft_drop(counters, WEFT_DROP_SEND_ERROR);
        while (k < mm && idx[k] == bad) k++;
        continue;
      }
      for (int j = k; j < k + r; j++) {
        unsigned sent = msgs[j].msg_len;
        int32_t gso = msg_gso[idx[j]];
        double segs = whole[j] && gso > 0 ? (double)((sent + (unsigned)gso - 1) / (unsigned)gso) : 1;
        counters[WEFT_C_UDP_TX_PACKETS] += segs;
        counters[WEFT_C_UDP_TX_BYTES] += sent;
        counters[WEFT_C_COPIED_USER_TO_KERNEL_BYTES] += sent;
        if (whole[j] && gso > 0) counters[WEFT_C_UDP_GSO_SENDS] += 1;
        /* Progress is kept in the message itself, so a resume after EAGAIN never resends. */
        msg_off[idx[j]] += (int32_t)iov[j].iov_len;
        msg_len[idx[j]] -= (int32_t)iov[j].iov_len;
      }
      k += r;
    }
  }
  return count;
}

/* ---- inbound ---- */

int32_t weft_offload_decap(const weft_encap_ops *ops, const uint8_t *slab, int32_t slot_size, const int32_t *len,
                           const int32_t *gso, const uint32_t *addr, int32_t count, uint32_t vni, int32_t *seg_off,
                           int32_t *seg_len, uint32_t *seg_addr, int32_t seg_max, double *counters) {
  int32_t ns = 0;
  for (int32_t i = 0; i < count; i++) {
    if (len[i] < 0) continue;
    int32_t total = len[i] > slot_size ? slot_size : len[i];
    int32_t g = gso[i] > 0 && gso[i] < total ? gso[i] : total;
    if (g <= 0) {
      weft_drop(counters, WEFT_DROP_MALFORMED); /* empty datagram */
      continue;
    }
    for (int32_t p = 0; p < total; p += g) {
      int32_t sl = total - p < g ? total - p : g;
      const uint8_t *d = slab + (size_t)i * slot_size + p;
      if (g < total) counters[WEFT_C_UDP_GRO_DATAGRAMS] += 1;
      int32_t v = ops->decode(d, sl, vni);
      int32_t inner = v >= 0 ? weft_ipv4_inner_len(d + v, sl - v) : -1;
      if (v >= 0 && inner < 0) v = WEFT_VERDICT(WEFT_DROP_MALFORMED);
      if (v >= 0 && ns >= seg_max) v = WEFT_VERDICT(WEFT_DROP_NO_SLOT);
      if (v < 0) {
        weft_drop(counters, -v - 1);
        continue;
      }
      seg_off[ns] = (int32_t)((size_t)i * slot_size + p + v);
      seg_len[ns] = inner;
      seg_addr[ns] = addr[i];
      ns++;
    }
  }
  return ns;
}

/* TCP segment that may start or join a run: plain IPv4 header, not a fragment, payload,
 * none of SYN/FIN/RST/URG/CWR. Returns its payload length, or -1. */
static int32_t tcp_candidate(const uint8_t *p, int32_t len) {
  if (len < 40 || p[0] != 0x45 || p[9] != 6) return -1;
  if (weft_rd16(p + 6) & 0x3fff) return -1;
  /* A merged super-packet gets a fresh IP checksum: never let one hide a bad header (inet_gro_receive checks too). */
  if (weft_csum_fold(weft_csum_add(0, p, 20)) != 0xffff) return -1;
  int32_t thl = (p[32] >> 4) * 4;
  if (thl < 20 || 20 + thl >= len) return -1;
  if (p[33] & (TCP_SYN | TCP_FIN | TCP_RST | TCP_URG | TCP_CWR)) return -1;
  return len - 20 - thl;
}

/* 1 when the L4 checksum holds only the pseudo-header sum (a CHECKSUM_PARTIAL sender). */
static int l4_partial(const uint8_t *p, int32_t len, int32_t ihl, int32_t field) {
  uint64_t ph = pseudo_sum(p, p[9], (uint32_t)(len - ihl));
  return weft_rd16(p + ihl + field) == weft_csum_fold(ph);
}

/* Checksum is partial (will be completed by the kernel) or correct. */
static int tcp_csum_usable(const uint8_t *p, int32_t len) {
  if (l4_partial(p, len, 20, 16)) return 1;
  uint64_t s = pseudo_sum(p, 6, (uint32_t)(len - 20)) + weft_csum_add(0, p + 20, (size_t)(len - 20));
  return weft_csum_fold(s) == 0xffff;
}

/* Same flow and same headers apart from length, ID, checksum, sequence and PSH. */
static int tcp_same_flow(const uint8_t *a, const uint8_t *b) {
  int32_t thl = (a[32] >> 4) * 4;
  if (a[1] != b[1] || a[6] != b[6] || a[7] != b[7] || a[8] != b[8] || a[32] != b[32]) return 0;
  if (memcmp(a + 12, b + 12, 8) != 0) return 0;             /* addresses */
  if (memcmp(a + 20, b + 20, 4) != 0) return 0;             /* ports */
  if (memcmp(a + 28, b + 28, 4) != 0) return 0;             /* ACK */
  if ((a[33] & ~TCP_PSH) != (b[33] & ~TCP_PSH)) return 0;   /* flags */
  return memcmp(a + 40, b + 40, (size_t)(thl - 20)) == 0; /* options, e.g. timestamps */
}

#define GRO_MAX_RUN 64

int32_t weft_gro_run(uint8_t *slab, size_t slab_len, const int32_t *seg_off, int32_t *seg_len, int32_t count,
                     int coalesce, weft_sink sink, void *ctx, double *counters) {
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
    int32_t mss = coalesce ? tcp_candidate(p, plen) : -1;
    if (mss > 0 && !tcp_csum_usable(p, plen)) {
      counters[WEFT_C_GRO_CSUM_BAD] += 1;
      mss = -1; /* written alone: the kernel drops it and counts TcpInCsumErrors */
    }
    if (mss > 0 && !(p[33] & TCP_PSH)) {
      int32_t thl = (p[32] >> 4) * 4, hdr = 20 + thl, total = mss;
      uint32_t seq = weft_rd32(p + 24);
      uint8_t last_flags = p[33];
      while (j < count && iovcnt < 2 + GRO_MAX_RUN) {
        int32_t ql = seg_len[j];
        if (ql <= 0 || seg_off[j] < 0 || (size_t)seg_off[j] + (size_t)ql > slab_len) break;
        const uint8_t *q = slab + seg_off[j];
        int32_t qpay = tcp_candidate(q, ql);
        if (qpay <= 0 || qpay > mss || ql - qpay != hdr || hdr + total + qpay > 65535) break;
        if (!tcp_same_flow(p, q) || weft_rd32(q + 24) != seq + (uint32_t)total) break;
        if (!tcp_csum_usable(q, ql)) {
          counters[WEFT_C_GRO_CSUM_BAD] += 1;
          break;
        }
        iov[iovcnt].iov_base = (void *)(q + hdr);
        iov[iovcnt].iov_len = (size_t)qpay;
        iovcnt++;
        total += qpay;
        last_flags = q[33];
        j++;
        if (qpay < mss || (q[33] & TCP_PSH)) break; /* a short or pushed segment ends the run */
      }
      if (iovcnt > 2) {
        /* The first segment's headers become the super-packet's (tcp_gro_complete). */
        weft_wr16(p + 2, (uint16_t)(hdr + total));
        ip_header_csum(p, 20);
        p[33] |= last_flags & TCP_PSH;
        weft_wr16(p + 36, weft_csum_fold(pseudo_sum(p, 6, (uint32_t)(thl + total))));
        vh[0] = WEFT_VNET_F_NEEDS_CSUM;
        vh[1] = WEFT_VNET_GSO_TCPV4;
        wr_le16(vh + 2, (uint16_t)hdr);
        wr_le16(vh + 4, (uint16_t)mss);
        wr_le16(vh + 6, 20);
        wr_le16(vh + 8, 16);
        counters[WEFT_C_GRO_SUPERPACKETS] += 1;
        counters[WEFT_C_GRO_COALESCED] += iovcnt - 1;
      }
    }
    if (iovcnt == 2 && p[0] >> 4 == 4 && !(weft_rd16(p + 6) & 0x3fff)) {
      /* Alone: a kernel sender's partial checksum is finished by the kernel (NEEDS_CSUM). */
      int32_t ihl = (p[0] & 0x0f) * 4;
      int32_t field = p[9] == 6 ? 16 : p[9] == 17 ? 6 : -1;
      if (field > 0 && ihl >= 20 && plen >= ihl + field + 2 && !(p[9] == 17 && weft_rd16(p + ihl + 6) == 0) &&
          l4_partial(p, plen, ihl, field)) {
        vh[0] = WEFT_VNET_F_NEEDS_CSUM;
        wr_le16(vh + 6, (uint16_t)ihl);
        wr_le16(vh + 8, (uint16_t)field);
      }
    }
    written += sink(ctx, iov, iovcnt, counters);
    i = j;
  }
  return written;
}

int weft_tun_sink(void *ctx, const struct iovec *iov, int iovcnt, double *counters) {
  return weft_tun_writev(*(const int *)ctx, iov, iovcnt, WEFT_VNET_HDR_LEN, counters);
}
