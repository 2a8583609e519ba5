/*
 * TUN device: open (IFF_TUN | IFF_NO_PI, optionally multi-queue / vnet header),
 * link MTU and up/down, and batched nonblocking read/write. Each read() or write()
 * on TUN moves exactly one packet; there is no batch syscall for it.
 */
#include "weft.h"

#include <fcntl.h>
#include <stdio.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

int weft_tun_open(const char *name, int multi_queue, int vnet_hdr, char *out_name, size_t out_cap, weft_err *e) {
  int fd = -1;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  if (strlen(name) >= IFNAMSIZ) {
    e->code = EINVAL, e->syscall = "ioctl(TUNSETIFF)";
    return -1;
  }
  strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  if (multi_queue) ifr.ifr_flags |= IFF_MULTI_QUEUE;
  if (vnet_hdr) ifr.ifr_flags |= IFF_VNET_HDR;
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
  memset(&ifr, 0, sizeof ifr);
  if (strlen(name) >= IFNAMSIZ) {
    e->code = EINVAL, e->syscall = "ioctl(SIOCGIFFLAGS)";
    return -1;
  }
  strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
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

int32_t weft_tun_read_batch(int fd, uint8_t *slab, int32_t slot_size, int32_t headroom, int32_t *len, int32_t max,
                            double *counters, weft_err *e) {
  int32_t n = 0;
  while (n < max) {
    ssize_t r = read(fd, slab + (size_t)n * slot_size + headroom, (size_t)(slot_size - headroom));
    counters[WEFT_C_SYSCALLS_TUN_READ] += 1;
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      if (n > 0) break; /* hand over what we have; the error repeats on the next call */
      e->code = errno, e->syscall = "read";
      return -1;
    }
    if (r == 0) break;
    len[n++] = (int32_t)r;
    counters[WEFT_C_TUN_RX_PACKETS] += 1;
    counters[WEFT_C_TUN_RX_BYTES] += (double)r;
    counters[WEFT_C_COPIED_KERNEL_TO_USER_BYTES] += (double)r;
  }
  return n;
}

/* One packet to TUN. A failure is a counted drop: TUN has no back-pressure to wait on,
 * the kernel queues the packet or drops it. */
int weft_tun_write_one(int fd, const uint8_t *buf, int32_t len, double *counters) {
  ssize_t r;
  do {
    r = write(fd, buf, (size_t)len);
    counters[WEFT_C_SYSCALLS_TUN_WRITE] += 1;
  } while (r < 0 && errno == EINTR);
  if (r < 0) {
    weft_drop(counters, WEFT_DROP_TUN_WRITE_ERROR);
    return 0;
  }
  counters[WEFT_C_TUN_TX_PACKETS] += 1;
  counters[WEFT_C_TUN_TX_BYTES] += (double)r;
  counters[WEFT_C_COPIED_USER_TO_KERNEL_BYTES] += (double)r;
  return 1;
}

int32_t weft_tun_write_batch(int fd, const uint8_t *slab, size_t slab_len, const int32_t *off, int32_t *len,
                             int32_t count, double *counters) {
  int32_t n = 0;
  for (int32_t i = 0; i < count; i++) {
    if (len[i] <= 0) continue;
    if (off[i] < 0 || (size_t)off[i] + (size_t)len[i] > slab_len) {
      len[i] = WEFT_VERDICT(WEFT_DROP_MALFORMED);
      weft_drop(counters, WEFT_DROP_MALFORMED);
      continue;
    }
    if (weft_tun_write_one(fd, slab + off[i], len[i], counters)) n++;
    else len[i] = WEFT_VERDICT(WEFT_DROP_TUN_WRITE_ERROR);
  }
  return n;
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
