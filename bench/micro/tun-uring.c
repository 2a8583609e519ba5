/*
 * Lever 3 of the datapath issue, measured before building it: does io_uring make TUN reads cheaper than one read()
 * each? N nonblocking reads on an idle TUN, as read() and as io_uring batches of 8..64 reads per io_uring_enter.
 * Without RWF_NOWAIT io_uring arms a poll for every read of an empty TUN instead of returning EAGAIN (the batch
 * never completes: there is no "drain until EAGAIN" in one call); with it, each read costs more than a read() here.
 *   apt-get install liburing-dev && cc -O2 -o /tmp/tun-uring bench/micro/tun-uring.c -luring && /tmp/tun-uring
 * (root; makes a TUN device wturing0 that goes away when the program exits).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <liburing.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(void) {
  static char buf[64][2048];
  struct ifreq ifr;
  struct io_uring ring;
  const int n = 200000;
  setvbuf(stdout, NULL, _IONBF, 0);
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK);
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  strcpy(ifr.ifr_name, "wturing0");
  if (fd < 0 || ioctl(fd, TUNSETIFF, &ifr) < 0) return perror("tun"), 1;
  double t0 = now();
  for (int i = 0; i < n; i++)
    if (read(fd, buf[0], sizeof buf[0]) >= 0) return 2;
  printf("read() of an empty TUN (EAGAIN): %.3f us each\n", (now() - t0) / n * 1e6);
  t0 = now();
  for (int i = 0; i < n; i++) getppid();
  printf("getppid(), the bare syscall: %.3f us each\n", (now() - t0) / n * 1e6);
  if (io_uring_queue_init(256, &ring, 0) < 0) return perror("io_uring_queue_init"), 3;
  for (int batch = 8; batch <= 64; batch *= 2) {
    int rounds = n / batch;
    t0 = now();
    for (int r = 0; r < rounds; r++) {
      for (int k = 0; k < batch; k++) {
        struct io_uring_sqe *s = io_uring_get_sqe(&ring);
        io_uring_prep_read(s, fd, buf[k], sizeof buf[k], 0);
        s->rw_flags = RWF_NOWAIT; /* without it the reads wait for packets (a poll armed per read) */
      }
      io_uring_submit_and_wait(&ring, (unsigned)batch);
      struct io_uring_cqe *c;
      unsigned head, seen = 0;
      io_uring_for_each_cqe(&ring, head, c) {
        if (c->res != -EAGAIN) return printf("unexpected res %d\n", c->res), 4;
        seen++;
      }
      io_uring_cq_advance(&ring, seen);
    }
    printf("io_uring, %2d reads per io_uring_enter: %.3f us per read\n", batch, (now() - t0) / (rounds * batch) * 1e6);
  }
  return 0;
}
