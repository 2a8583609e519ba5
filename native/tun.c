/*
 * Every TUN read and write: open (IFF_TUN | IFF_NO_PI, optionally multi-queue, virtio header, NAPI), offloads
 * (TUNSETOFFLOAD), link MTU and up/down, and batched nonblocking read/write with or without the virtio header. Each
 * read() or write() on TUN moves exactly one packet; there is no batch syscall for it. Inbound packets longer than
 * the TUN MTU on a TUN without the virtio header are cut into TCP segments on the way (weft_tun_write_mtu).
 */
#include "weft.h"

#include <fcntl.h>
#include <stdio.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* ifr named `name`; a name the kernel would cut is EINVAL, reported as the ioctl that would have failed. */
static int ifr_named(struct ifreq *ifr, const char *name, const char *syscall, weft_err *e) {
  memset(ifr, 0, sizeof *ifr);
  if (strlen(name) >= IFNAMSIZ) {
    e->code = EINVAL, e->syscall = syscall;
    return -1;
  }
  strncpy(ifr->ifr_name, name, IFNAMSIZ - 1);
  return 0;
}

int weft_tun_open(const char *name, int flags, char *out_name, size_t out_cap, weft_err *e) {
  int fd = -1;
  struct ifreq ifr;
  if (ifr_named(&ifr, name, "ioctl(TUNSETIFF)", e) < 0) return -1;
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  if (flags & WEFT_TUN_MULTI_QUEUE) ifr.ifr_flags |= IFF_MULTI_QUEUE;
  if (flags & WEFT_TUN_VNET_HDR) ifr.ifr_flags |= IFF_VNET_HDR;
  if (flags & WEFT_TUN_NAPI) ifr.ifr_flags |= IFF_NAPI;
  WEFT_TRY(e, fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC), "open(/dev/net/tun)");
  WEFT_TRY(e, ioctl(fd, TUNSETIFF, &ifr), "ioctl(TUNSETIFF)");
  snprintf(out_name, out_cap, "%.*s", IFNAMSIZ, ifr.ifr_name);
  return fd;
fail:
  if (fd >= 0) close(fd);
  return -1;
}

int weft_link_set(const char *name, int mtu, int up, weft_err *e) {
  int s = -1;
  struct ifreq ifr;
  if (ifr_named(&ifr, name, "ioctl(SIOCGIFFLAGS)", e) < 0) return -1;
  WEFT_TRY(e, s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), "socket(AF_INET, SOCK_DGRAM)");
  if (mtu > 0) {
    ifr.ifr_mtu = mtu;
    WEFT_TRY(e, ioctl(s, SIOCSIFMTU, &ifr), "ioctl(SIOCSIFMTU)");
  }
  WEFT_TRY(e, ioctl(s, SIOCGIFFLAGS, &ifr), "ioctl(SIOCGIFFLAGS)");
  if (up) ifr.ifr_flags |= IFF_UP;
  else ifr.ifr_flags &= ~IFF_UP;
  WEFT_TRY(e, ioctl(s, SIOCSIFFLAGS, &ifr), "ioctl(SIOCSIFFLAGS)");
  close(s);
  return 0;
fail:
  if (s >= 0) close(s);
  return -1;
}

int weft_close(int fd, weft_err *e) {
  /* Linux frees the fd even when close() says EINTR: never retry. */
  if (close(fd) < 0 && errno != EINTR) {
    e->code = errno, e->syscall = "close";
    return -1;
  }
  return 0;
}

int weft_tun_set_offload(int fd, unsigned flags, weft_err *e) {
  if (ioctl(fd, TUNSETOFFLOAD, (unsigned long)flags) == 0) return 1;
  if (errno == EINVAL) return 0; /* this kernel does not know one of the bits: JS asks for less */
  e->code = errno, e->syscall = "ioctl(TUNSETOFFLOAD)";
  return -1;
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

int32_t weft_tun_read_batch(int fd, int vnet, uint8_t *slab, int32_t slot_size, int32_t headroom, int32_t *len,
                            int32_t max, double *counters, weft_err *e) {
  int32_t hdr = vnet ? WEFT_VNET_HDR_LEN : 0, n = 0;
  while (n < max) {
    uint8_t *at = slab + (size_t)n * slot_size + headroom - hdr;
    ssize_t r = read(fd, at, (size_t)(slot_size - headroom - WEFT_TAILROOM + hdr));
    counters[WEFT_C_SYSCALLS_TUN_READ] += 1;
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      if (n > 0) break; /* hand over what we have; the error repeats on the next call */
      e->code = errno, e->syscall = "read";
      return -1;
    }
    if (r == 0) break;
    counters[WEFT_C_COPIED_KERNEL_TO_USER_BYTES] += (double)r;
    if (r < hdr) {
      len[n++] = WEFT_VERDICT(WEFT_DROP_MALFORMED);
      weft_drop(counters, WEFT_DROP_MALFORMED);
      continue;
    }
    len[n++] = (int32_t)(r - hdr);
    counters[WEFT_C_TUN_RX_PACKETS] += 1;
    counters[WEFT_C_TUN_RX_BYTES] += (double)(r - hdr);
  }
  return n;
}

/* One packet to TUN. A failure is a counted drop: TUN has no back-pressure to wait on,
 * the kernel queues the packet or drops it. */
int weft_tun_write_one(int fd, const uint8_t *buf, int32_t len, double *counters) {
  struct iovec iov = {(void *)buf, (size_t)len};
  return weft_tun_writev(fd, &iov, 1, 0, counters);
}

int weft_tun_writev(int fd, const struct iovec *iov, int iovcnt, int32_t hdr, double *counters) {
  ssize_t r;
  do {
    r = writev(fd, iov, iovcnt);
    counters[WEFT_C_SYSCALLS_TUN_WRITE] += 1;
  } while (r < 0 && errno == EINTR);
  if (r < 0) {
    weft_drop(counters, WEFT_DROP_TUN_WRITE_ERROR);
    return 0;
  }
  counters[WEFT_C_TUN_TX_PACKETS] += 1;
  counters[WEFT_C_TUN_TX_BYTES] += (double)(r - hdr);
  counters[WEFT_C_COPIED_USER_TO_KERNEL_BYTES] += (double)r;
  return 1;
}

int32_t weft_tun_write_batch(int fd, uint8_t *slab, size_t slab_len, const int32_t *off, int32_t *len, int32_t count,
                             int32_t mtu, double *counters) {
  int32_t n = 0;
  for (int32_t i = 0; i < count; i++) {
    if (len[i] <= 0) continue;
    if (off[i] < 0 || (size_t)off[i] + (size_t)len[i] > slab_len) {
      len[i] = WEFT_VERDICT(WEFT_DROP_MALFORMED);
      weft_drop(counters, WEFT_DROP_MALFORMED);
      continue;
    }
    /* No virtio header to say NEEDS_CSUM: a kernel sender's partial checksum must be finished here. */
    weft_ip_complete_l4_csum(slab + off[i], len[i]);
    int32_t r = weft_tun_write_mtu(fd, slab + off[i], len[i], mtu, counters);
    if (r > 0) n++;
    else len[i] = r;
  }
  return n;
}

int weft_tun_sink(void *ctx, const struct iovec *iov, int iovcnt, double *counters) {
  return weft_tun_writev(*(const int *)ctx, iov, iovcnt, WEFT_VNET_HDR_LEN, counters);
}

/* ---- packets longer than the TUN MTU ----
 *
 * A kernel VXLAN peer on veth never resolves GSO: one datagram carries a whole TCP burst as
 * one inner packet of up to 64 KiB. Written as it is to a TUN without IFF_VNET_HDR, the
 * kernel takes it as one ordinary packet, larger than the next hop's MTU with DF set, and
 * answers ICMP frag-needed: the sender's TCP stalls. So it is cut here into the segments
 * tcp_gso_segment would have made. */

#define TCP_SYN 0x02
#define TCP_RST 0x04

static inline uint16_t swap16(uint16_t v) { return (uint16_t)(v << 8 | v >> 8); }

static int32_t drop(double *counters, int reason) {
  weft_drop(counters, reason);
  return WEFT_VERDICT(reason);
}

/* Headers of segment k of an IPv6 TCP packet (what tcp_gso_segment does for IPv6): payload length, sequence, FIN/PSH
 * only on the last and CWR only on the first, the checksum over the IPv6 pseudo-header (RFC 8200 8.1). */
static void tcp6_segment_headers(uint8_t *h, int32_t thl, int32_t chunk, uint16_t chunk_sum, int32_t k, int32_t nseg,
                                 int32_t mss, uint32_t seq0, uint8_t flags0) {
  uint8_t *tcp = h + 40, f = flags0;
  if (k != nseg - 1) f &= (uint8_t)~(0x01 | 0x08); /* FIN, PSH */
  if (k != 0) f &= (uint8_t)~0x80;                 /* CWR */
  weft_wr16(h + 4, (uint16_t)(thl + chunk));
  weft_wr32(tcp + 4, seq0 + (uint32_t)k * (uint32_t)mss);
  tcp[13] = f;
  tcp[16] = tcp[17] = 0;
  uint64_t s = weft_csum_pseudo6(h, 6, (uint32_t)(thl + chunk)) + weft_csum_add(0, tcp, (size_t)thl);
  weft_wr16(tcp + 16, (uint16_t)~weft_csum_fold(s + chunk_sum));
}

static int32_t tun_write_tcp_segments(int fd, const uint8_t *p, int32_t len, int32_t mtu, double *counters) {
  /* Only what tcp_gso_segment would cut: unfragmented IPv4 TCP, or IPv6 with TCP right after the fixed header; no
   * SYN/RST (their sequence space is not plain payload). */
  int v6 = len > 0 && (p[0] >> 4) == 6;
  if (v6 ? !weft_ipv6_valid_exact(p, len) || p[6] != 6
         : !weft_ipv4_valid_exact(p, len) || p[9] != 6 || (weft_rd16(p + 6) & 0x3fff))
    return drop(counters, WEFT_DROP_TOO_BIG);
  int32_t ihl = v6 ? 40 : (p[0] & 0x0f) * 4;
  if (len < ihl + 20) return drop(counters, WEFT_DROP_TOO_BIG);
  const uint8_t *tcp = p + ihl;
  int32_t thl = (tcp[12] >> 4) * 4, hdr = ihl + thl;
  if (thl < 20 || hdr > len || (tcp[13] & (TCP_SYN | TCP_RST))) return drop(counters, WEFT_DROP_TOO_BIG);
  int32_t payload = len - hdr, mss = mtu - hdr;
  if (mss < 1) return drop(counters, WEFT_DROP_TOO_BIG);
  int32_t nseg = (payload + mss - 1) / mss; /* >= 2: len > mtu */
  if (nseg > WEFT_GSO_MAX_SEGS) return drop(counters, WEFT_DROP_TOO_BIG);

  /* One pass over the payload: each chunk's sum serves its segment's checksum, and together
   * they verify the original's. After decap the checksum must be complete; a wrong one is
   * corruption and must not get valid checksums from us. A chunk at an odd offset counts
   * byte-swapped (RFC 1071 2(B)). */
  uint16_t sums[WEFT_GSO_MAX_SEGS];
  uint64_t total = (v6 ? weft_csum_add(0, p + 8, 32) : weft_csum_add(0, p + 12, 8)) + 6 + (uint32_t)(len - ihl) +
                   weft_csum_add(0, tcp, (size_t)thl);
  for (int32_t k = 0; k < nseg; k++) {
    int32_t at = k * mss, chunk = k == nseg - 1 ? payload - at : mss;
    sums[k] = weft_csum_fold(weft_csum_add(0, p + hdr + at, (size_t)chunk));
    total += (at & 1) ? swap16(sums[k]) : sums[k];
  }
  if (weft_csum_fold(total) != 0xffff) return drop(counters, WEFT_DROP_BAD_CSUM);

  uint8_t h[60 + 60];
  uint16_t id = v6 ? 0 : weft_rd16(p + 4);
  uint32_t seq = weft_rd32(tcp + 4);
  uint8_t flags = tcp[13];
  for (int32_t k = 0; k < nseg; k++) {
    int32_t at = k * mss, chunk = k == nseg - 1 ? payload - at : mss;
    memcpy(h, p, (size_t)hdr);
    if (v6) tcp6_segment_headers(h, thl, chunk, sums[k], k, nseg, mss, seq, flags);
    else weft_tcp4_segment_headers(h, ihl, thl, chunk, sums[k], 0, k, nseg, mss, id, seq, flags);
    struct iovec iov[2] = {{h, (size_t)hdr}, {(void *)(p + hdr + at), (size_t)chunk}};
    /* The rest would fail the same way (the drop is counted); TCP resends what is missing. */
    if (!weft_tun_writev(fd, iov, 2, 0, counters)) return WEFT_VERDICT(WEFT_DROP_TUN_WRITE_ERROR);
  }
  return 1;
}

int32_t weft_tun_write_mtu(int fd, const uint8_t *pkt, int32_t len, int32_t mtu, double *counters) {
  if (mtu > 0 && len > mtu) return tun_write_tcp_segments(fd, pkt, len, mtu, counters);
  return weft_tun_write_one(fd, pkt, len, counters) ? 1 : WEFT_VERDICT(WEFT_DROP_TUN_WRITE_ERROR);
}

int32_t weft_tun_read_one(int fd, uint8_t *buf, int32_t max, double *counters, weft_err *e) {
  for (;;) {
    ssize_t r = read(fd, buf, (size_t)max);
    counters[WEFT_C_SYSCALLS_TUN_READ] += 1;
    if (r >= 0) {
      if (r > 0) {
        counters[WEFT_C_TUN_RX_PACKETS] += 1;
        counters[WEFT_C_TUN_RX_BYTES] += (double)r;
        counters[WEFT_C_COPIED_KERNEL_TO_USER_BYTES] += (double)r;
      }
      return (int32_t)r;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return 0;
    e->code = errno, e->syscall = "read";
    return -1;
  }
}
