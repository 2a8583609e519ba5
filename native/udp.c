/*
 * Every call on the UDP underlay socket: open with large buffers, offload probes (UDP_SEGMENT, UDP_GRO), and
 * batched nonblocking I/O: recvmmsg, and sendmmsg of trains (one syscall per MMSG_CHUNK messages, a message
 * being one datagram or a UDP_SEGMENT train of up to 64). The mmsghdr arrays are on the stack: nothing is allocated
 * per packet.
 */
#include "weft.h"

#include <arpa/inet.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef SOL_UDP
#define SOL_UDP 17
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif
/* sendmmsg/recvmmsg vector length; arrays live on the stack, never per packet. */
#define MMSG_CHUNK 64

/* Root may exceed net.core.{r,w}mem_max with *BUFFORCE; others get what the cap allows. */
static int set_buf(int fd, int force_opt, int opt, int bytes) {
  if (setsockopt(fd, SOL_SOCKET, force_opt, &bytes, sizeof bytes) == 0) return 0;
  if (errno != EPERM) return -1;
  return setsockopt(fd, SOL_SOCKET, opt, &bytes, sizeof bytes);
}

/* bind_addr decides the family: an IPv4 address opens an AF_INET socket; an IPv6 one an AF_INET6 socket that
 * carries IPv6 only (IPV6_V6ONLY), the underlay between PublicIPv6 addresses. */
int weft_udp_open(const char *bind_addr, int port, int buf_bytes, int reuse_port, weft_err *e) {
  int fd = -1, one = 1;
  weft_sockaddr sa;
  socklen_t sl;
  memset(&sa, 0, sizeof sa);
  if (inet_pton(AF_INET, bind_addr, &sa.v4.sin_addr) == 1) {
    sa.v4.sin_family = AF_INET;
    sa.v4.sin_port = htons((uint16_t)port);
    sl = sizeof sa.v4;
  } else if (inet_pton(AF_INET6, bind_addr, &sa.v6.sin6_addr) == 1) {
    sa.v6.sin6_family = AF_INET6;
    sa.v6.sin6_port = htons((uint16_t)port);
    sl = sizeof sa.v6;
  } else {
    e->code = EINVAL, e->syscall = "inet_pton";
    return -1;
  }
  int family = sa.v4.sin_family;
  WEFT_TRY(e, fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), "socket(SOCK_DGRAM)");
  if (family == AF_INET6)
    WEFT_TRY(e, setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one), "setsockopt(IPV6_V6ONLY)");
  WEFT_TRY(e, setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one), "setsockopt(SO_REUSEADDR)");
  if (reuse_port) WEFT_TRY(e, setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one), "setsockopt(SO_REUSEPORT)");
  if (buf_bytes > 0) {
    WEFT_TRY(e, set_buf(fd, SO_RCVBUFFORCE, SO_RCVBUF, buf_bytes), "setsockopt(SO_RCVBUF)");
    WEFT_TRY(e, set_buf(fd, SO_SNDBUFFORCE, SO_SNDBUF, buf_bytes), "setsockopt(SO_SNDBUF)");
  }
  WEFT_TRY(e, bind(fd, (struct sockaddr *)&sa, sl), "bind");
  return fd;
fail:
  if (fd >= 0) close(fd);
  return -1;
}

/*
 * Multi-queue receive steering. Datagrams from one peer share one 4-tuple, so SO_REUSEPORT's hash puts all of them
 * in one socket, and the multi-queue TUN then steers every flow's outgoing packets to the queue that wrote the
 * flow's incoming ones: everything collapses onto one queue. This classic BPF program, attached to the reuseport
 * group, picks the socket from the inner packet instead: a multiplicative hash of (src ip ^ dst ip ^ src port ^
 * dst port), modulo `queues`. It is symmetric, so both directions of a flow use the same queue index on both hosts.
 *   inner_off: the inner IPv4 header's offset from the UDP payload (udp 0, vxlan 8 + 14 Ethernet, geneve 8),
 *   geneve: add Geneve's option length ((byte 0 & 0x3f) * 4) to it.
 * A short or odd packet makes a load fail, which returns index 0; an index past the group falls back to the hash.
 */
int weft_udp_steer_by_inner_flow(int fd, int inner_off, int geneve, int queues, weft_err *e) {
  const uint32_t o = (uint32_t)inner_off;
  struct sock_filter code[] = {
      /* A = variable part before the inner header (Geneve options), kept in M[2] and X */
      geneve ? (struct sock_filter)BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 0)
             : (struct sock_filter)BPF_STMT(BPF_LD | BPF_IMM, 0),
      BPF_STMT(BPF_ALU | BPF_AND | BPF_K, geneve ? 0x3f : 0),
      BPF_STMT(BPF_ALU | BPF_LSH | BPF_K, 2),
      BPF_STMT(BPF_ST, 2),
      BPF_STMT(BPF_MISC | BPF_TAX, 0),
      /* X = base + inner IHL * 4: where the inner ports are */
      BPF_STMT(BPF_LD | BPF_B | BPF_IND, o),
      BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 0x0f),
      BPF_STMT(BPF_ALU | BPF_LSH | BPF_K, 2),
      BPF_STMT(BPF_ALU | BPF_ADD | BPF_X, 0),
      BPF_STMT(BPF_MISC | BPF_TAX, 0),
      /* M[0] = src port ^ dst port */
      BPF_STMT(BPF_LD | BPF_H | BPF_IND, o),
      BPF_STMT(BPF_ST, 0),
      BPF_STMT(BPF_LD | BPF_H | BPF_IND, o + 2),
      BPF_STMT(BPF_LDX | BPF_MEM, 0),
      BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0),
      BPF_STMT(BPF_ST, 0),
      /* A = src ip ^ dst ip ^ M[0] */
      BPF_STMT(BPF_LDX | BPF_MEM, 2),
      BPF_STMT(BPF_LD | BPF_W | BPF_IND, o + 12),
      BPF_STMT(BPF_ST, 1),
      BPF_STMT(BPF_LD | BPF_W | BPF_IND, o + 16),
      BPF_STMT(BPF_LDX | BPF_MEM, 1),
      BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0),
      BPF_STMT(BPF_LDX | BPF_MEM, 0),
      BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0),
      /* multiplicative hash, high half: every input bit counts (connect() hands out even ports, so low bits alone
         would put every flow on one queue) */
      BPF_STMT(BPF_ALU | BPF_MUL | BPF_K, 0x9e3779b1u),
      BPF_STMT(BPF_ALU | BPF_RSH | BPF_K, 16),
      BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, (uint32_t)queues),
      BPF_STMT(BPF_RET | BPF_A, 0),
  };
  struct sock_fprog prog = {.len = (unsigned short)(sizeof code / sizeof code[0]), .filter = code};
  if (queues < 1 || inner_off < 0) {
    e->code = EINVAL, e->syscall = "weft_udp_steer_by_inner_flow";
    return -1;
  }
  WEFT_TRY(e, setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof prog),
           "setsockopt(SO_ATTACH_REUSEPORT_CBPF)");
  return 0;
fail:
  return -1;
}

int weft_udp_local_port(int fd, weft_err *e) {
  weft_sockaddr sa;
  socklen_t sl = sizeof sa;
  WEFT_TRY(e, getsockname(fd, (struct sockaddr *)&sa, &sl), "getsockname");
  return ntohs(sa.v4.sin_family == AF_INET6 ? sa.v6.sin6_port : sa.v4.sin_port);
fail:
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

/* Errors that mean the fd itself is wrong: throw, do not drop packet by packet. */
static int fd_error(int err) { return err == EBADF || err == ENOTSOCK || err == EFAULT; }

/* The message's destination from a peer record (IPv4 or, with WEFT_PEER_F_IPV6, IPv6); rec NULL: a receive. */
static void mmsg_set(struct mmsghdr *m, weft_sockaddr *sa, const uint8_t *rec, struct iovec *iov, size_t iovcnt) {
  socklen_t sl = sizeof *sa;
  if (rec) {
    memset(sa, 0, sizeof *sa);
    if (rec[WEFT_PEER_FLAGS] & WEFT_PEER_F_IPV6) {
      sa->v6.sin6_family = AF_INET6;
      memcpy(&sa->v6.sin6_addr, rec + WEFT_PEER_ADDR, 16);
      memcpy(&sa->v6.sin6_port, rec + WEFT_PEER_PORT, 2);
      sl = sizeof sa->v6;
    } else {
      sa->v4.sin_family = AF_INET;
      memcpy(&sa->v4.sin_addr.s_addr, rec + WEFT_PEER_ADDR, 4); /* both network order */
      memcpy(&sa->v4.sin_port, rec + WEFT_PEER_PORT, 2);
      sl = sizeof sa->v4;
    }
  }
  memset(m, 0, sizeof *m);
  m->msg_hdr.msg_name = sa;
  m->msg_hdr.msg_namelen = sl;
  m->msg_hdr.msg_iov = iov;
  m->msg_hdr.msg_iovlen = iovcnt;
}

int32_t weft_udp_send_train(int fd, int fd6, weft_train *t, const uint8_t *peers, int32_t peer_count,
                            int *udp_segment, int32_t *slot_verdict, double *counters, weft_err *e) {
  struct mmsghdr msgs[MMSG_CHUNK];
  weft_sockaddr sa[MMSG_CHUNK];
  union {
    char buf[CMSG_SPACE(sizeof(uint16_t))];
    struct cmsghdr align;
  } ctl[MMSG_CHUNK];
  int32_t idx[MMSG_CHUNK];                          /* message of each entry */
  int32_t after_m[MMSG_CHUNK], after_s[MMSG_CHUNK]; /* where to resume once the entry is out */
  uint8_t train[MMSG_CHUNK];                        /* 1: a whole UDP_SEGMENT train */
  t->refused = 0;
  while (t->next < t->msg_n) {
    /* Fill a chunk from (next, next_seg); a message sent segment by segment may span chunks. */
    int mm = 0, chunk6 = 0; /* one sendmmsg per socket: a chunk holds one family */
    int32_t m = t->next, seg = t->next_seg;
    while (m < t->msg_n && mm < MMSG_CHUNK) {
      int32_t peer = t->msg_peer[m];
      if (peer >= peer_count) { /* a stale index is a missing route, not a crash */
        t->msg_peer[m] = peer = WEFT_VERDICT(WEFT_DROP_NO_ROUTE);
        slot_verdict[t->msg_slot[m]] = peer;
        weft_drop(counters, WEFT_DROP_NO_ROUTE);
      }
      const uint8_t *rec = peer >= 0 ? peers + (size_t)peer * WEFT_PEER_RECORD_SIZE : NULL;
      int is6 = rec && (rec[WEFT_PEER_FLAGS] & WEFT_PEER_F_IPV6);
      if (is6 && fd6 < 0) { /* no IPv6 socket: JS routes no IPv6 peer then, so this is a stale table */
        t->msg_peer[m] = peer = WEFT_VERDICT(WEFT_DROP_NO_ROUTE);
        slot_verdict[t->msg_slot[m]] = peer;
        weft_drop(counters, WEFT_DROP_NO_ROUTE);
      }
      if (peer < 0) {
        m++, seg = 0;
        continue;
      }
      if (mm == 0) chunk6 = is6;
      else if (is6 != chunk6) break;
      int32_t gso = t->msg_gso[m];
      if (gso == 0 || *udp_segment) {
        mmsg_set(&msgs[mm], &sa[mm], rec, t->iov + t->msg_iov[m], (size_t)t->msg_iovcnt[m]);
        train[mm] = gso > 0;
        if (gso > 0) {
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
        idx[mm] = m++, seg = 0;
        after_m[mm] = m, after_s[mm] = 0;
        mm++;
        continue;
      }
      /* Segment by segment: two iovecs each (headers, payload). */
      int32_t nseg = t->msg_iovcnt[m] / 2;
      while (seg < nseg && mm < MMSG_CHUNK) {
        mmsg_set(&msgs[mm], &sa[mm], rec, t->iov + t->msg_iov[m] + 2 * seg, 2);
        train[mm] = 0;
        idx[mm] = m;
        seg++;
        after_m[mm] = seg < nseg ? m : m + 1, after_s[mm] = seg < nseg ? seg : 0;
        mm++;
      }
      if (seg < nseg) break; /* chunk full mid-message */
      m++, seg = 0;
    }
    if (mm == 0) {
      t->next = m, t->next_seg = 0; /* only dropped messages were left */
      break;
    }
    int k = 0;
    while (k < mm) {
      int r = sendmmsg(chunk6 ? fd6 : fd, msgs + k, (unsigned)(mm - k), 0);
      counters[WEFT_C_SYSCALLS_SEND] += 1;
      if (r < 0) {
        int err = errno;
        if (err == EINTR) continue;
        if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS) { /* wait until this socket is writable */
          t->refused = chunk6 ? WEFT_SOCK_V6 : WEFT_SOCK_V4;
          counters[WEFT_C_UDP_SEND_REFUSED] += 1;
          return t->msg_n - t->next;
        }
        if (fd_error(err)) {
          e->code = err, e->syscall = "sendmmsg";
          return -1;
        }
        if (err == EIO && train[k]) {
          /* The kernel cannot segment for us on this route (no checksum offload): remember it, as wireguard-go
           * does, and send this train and all later ones datagram by datagram. */
          *udp_segment = 0;
          counters[WEFT_C_UDP_GSO_FALLBACKS] += 1;
          break; /* refill from t->next, which is this message */
        }
        /* Drop the failing message (all its entries in this chunk), go on with the rest. */
        int32_t bad = idx[k];
        t->msg_peer[bad] = WEFT_VERDICT(WEFT_DROP_SEND_ERROR);
        slot_verdict[t->msg_slot[bad]] = t->msg_peer[bad];
        weft_drop(counters, WEFT_DROP_SEND_ERROR);
        while (k < mm && idx[k] == bad) k++;
        t->next = after_m[k - 1], t->next_seg = after_s[k - 1];
        continue;
      }
      for (int j = k; j < k + r; j++) {
        unsigned sent = msgs[j].msg_len;
        int32_t gso = t->msg_gso[idx[j]];
        counters[WEFT_C_UDP_TX_PACKETS] += train[j] ? (double)((sent + (unsigned)gso - 1) / (unsigned)gso) : 1;
        counters[WEFT_C_UDP_TX_BYTES] += sent;
        counters[WEFT_C_COPIED_USER_TO_KERNEL_BYTES] += sent;
        if (train[j]) counters[WEFT_C_UDP_GSO_SENDS] += 1;
      }
      k += r;
      t->next = after_m[k - 1], t->next_seg = after_s[k - 1];
    }
  }
  return 0;
}

int32_t weft_udp_recv(int fd, uint8_t *slab, int32_t slot_size, int32_t *len, uint32_t *addr, uint8_t *addr6,
                      uint32_t *port, int32_t *gso, int32_t max, double *counters, weft_err *e) {
  struct mmsghdr msgs[MMSG_CHUNK];
  struct iovec iov[MMSG_CHUNK];
  weft_sockaddr sa[MMSG_CHUNK];
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } ctl[MMSG_CHUNK];
  int32_t n = 0;
  while (n < max) {
    int want = max - n < MMSG_CHUNK ? max - n : MMSG_CHUNK;
    for (int j = 0; j < want; j++) {
      iov[j].iov_base = slab + (size_t)(n + j) * slot_size;
      iov[j].iov_len = (size_t)slot_size;
      mmsg_set(&msgs[j], &sa[j], NULL, &iov[j], 1);
      if (gso) {
        msgs[j].msg_hdr.msg_control = ctl[j].buf;
        msgs[j].msg_hdr.msg_controllen = sizeof ctl[j].buf;
      }
    }
    int r = recvmmsg(fd, msgs, (unsigned)want, MSG_DONTWAIT, NULL);
    counters[WEFT_C_SYSCALLS_RECV] += 1;
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (n > 0) break; /* hand over what we have; the error repeats on the next call */
      e->code = errno, e->syscall = "recvmmsg";
      return -1;
    }
    for (int j = 0; j < r; j++) {
      unsigned got = msgs[j].msg_len;
      int g = 0;
      if (gso) {
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msgs[j].msg_hdr); cm; cm = CMSG_NXTHDR(&msgs[j].msg_hdr, cm)) {
          if (cm->cmsg_level == SOL_UDP && cm->cmsg_type == UDP_GRO && cm->cmsg_len >= CMSG_LEN(sizeof(int)))
            memcpy(&g, CMSG_DATA(cm), sizeof g);
        }
        if (g < 0 || (unsigned)g >= got) g = 0; /* one datagram, or nothing we can trust */
        gso[n + j] = g;
      }
      int32_t verdict = 0;
      if (sa[j].v4.sin_family == AF_INET6) {
        /* addr holds the slot (0.0.0.0/8 is never a source, see weft.h), addr6 the address */
        addr[n + j] = (uint32_t)(n + j);
        if (addr6) memcpy(addr6 + (size_t)(n + j) * 16, &sa[j].v6.sin6_addr, 16);
        else verdict = WEFT_DROP_UNKNOWN_PEER + 1;
        if (port) port[n + j] = ntohs(sa[j].v6.sin6_port);
      } else {
        addr[n + j] = ntohl(sa[j].v4.sin_addr.s_addr);
        if ((addr[n + j] >> 24) == 0) verdict = WEFT_DROP_UNKNOWN_PEER + 1; /* RFC 1122 3.2.1.3: not a source */
        if (port) port[n + j] = ntohs(sa[j].v4.sin_port);
      }
      counters[WEFT_C_UDP_RX_PACKETS] += g ? (double)((got + (unsigned)g - 1) / (unsigned)g) : 1;
      counters[WEFT_C_UDP_RX_BYTES] += got;
      counters[WEFT_C_COPIED_KERNEL_TO_USER_BYTES] += got;
      if (verdict) {
        len[n + j] = WEFT_VERDICT(verdict - 1);
        weft_drop(counters, verdict - 1);
      } else if (msgs[j].msg_hdr.msg_flags & MSG_TRUNC) {
        len[n + j] = WEFT_VERDICT(WEFT_DROP_TRUNCATED);
        weft_drop(counters, WEFT_DROP_TRUNCATED);
      } else {
        len[n + j] = (int32_t)got;
      }
    }
    n += r;
    if (r < want) break; /* queue drained: skip the EAGAIN syscall */
  }
  return n;
}

int32_t weft_udp_send_to(int fd, const uint8_t *buf, size_t len, uint32_t addr, uint16_t port, double *counters,
                         weft_err *e) {
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(addr);
  sa.sin_port = htons(port);
  ssize_t r;
  do r = sendto(fd, buf, len, MSG_DONTWAIT, (const struct sockaddr *)&sa, sizeof sa);
  while (r < 0 && errno == EINTR);
  counters[WEFT_C_SYSCALLS_SEND] += 1;
  if (r < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    e->code = errno, e->syscall = "sendto";
    return -1;
  }
  counters[WEFT_C_UDP_TX_PACKETS] += 1;
  counters[WEFT_C_UDP_TX_BYTES] += (double)r;
  counters[WEFT_C_COPIED_USER_TO_KERNEL_BYTES] += (double)r;
  return (int32_t)r;
}
