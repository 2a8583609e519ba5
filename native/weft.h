/*
 * weft native core: pure C11, no Node headers (binding.c alone speaks N-API).
 *
 * A packet's way through C, one file per step (queue.c runs the steps over one queue's memory):
 *   out: tun.c (read, virtio header) -> gso.c (split super-packets, headers in a header area) + encap.c (encap
 *        header in front of each segment) -> [transform] -> udp.c (sendmmsg trains by scatter-gather)
 *   in:  udp.c (recvmmsg, UDP_GRO) -> [transform] -> encap.c (split GRO buffers, decap) -> gro.c (coalesce TCP)
 *        -> tun.c (write, virtio header or MTU-sized segments)
 * TypeScript decides between the steps (route per packet or super-packet, sender checks): C never owns routes.
 *
 * Memory shared with JS (allocated once by JS, registered with weft_queue once):
 *   slab      slots * slot_size bytes; slot i starts at i * slot_size
 *   len[i]    packet length, or a negative verdict (see WEFT_DROPS)
 *   off[i]    absolute byte offset of the packet (or its encap header) in the slab
 *   peer[i]   index into the peer table, or a negative verdict
 *   addr[i]   outer IPv4 source of a received datagram, host order (from the IPv6 socket: the slot, see udp.c)
 *   counters  WEFT_COUNTER_COUNT doubles; C only ever adds to them
 * The core still checks each off/len that JS may have written before touching the slab.
 */
#ifndef WEFT_H
#define WEFT_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <netinet/in.h>

/* Room in front of each TUN-read packet: VXLAN needs 8 + 14, Geneve 8, the virtio header 10, and a transform
 * (WireGuard's 16-byte header) fits beside them in 64. */
#define WEFT_HEADROOM 64
/* Room after each packet for a transform's trailer (WireGuard's 16-byte tag). */
#define WEFT_TAILROOM 16
/* A kernel VXLAN peer sends whole 64 KiB inner TCP packets in one datagram. */
#define WEFT_MAX_DATAGRAM 65536
#define WEFT_SLOT_SIZE (((WEFT_MAX_DATAGRAM + WEFT_HEADROOM + WEFT_TAILROOM) + 63) & ~63)
#define WEFT_PEER_RECORD_SIZE 32
/* An ICMPv6 error quotes up to the minimum IPv6 MTU (RFC 4443 2.4 (c)): the room one needs. */
#define WEFT_ICMP6_SCRATCH 1280
#define WEFT_ICMP6_DEST_UNREACH 1
#define WEFT_ICMP6_PACKET_TOO_BIG 2
#define WEFT_ICMP6_TIME_EXCEEDED 3

/* Peer record layout (written by JS). The address field has room for IPv6. */
#define WEFT_PEER_ADDR 0   /* IPv4 in the first 4 bytes, network order (16 bytes reserved) */
#define WEFT_PEER_PORT 16  /* UDP port, big-endian */
#define WEFT_PEER_MAC 18   /* VtepMAC */
#define WEFT_PEER_VNI 24   /* VNI, big-endian u32; 0 = the queue's */
#define WEFT_PEER_FLAGS 28 /* WEFT_PEER_F_* */
/* The peer is a weft host that said in its lease that it takes partial inner checksums (a virtio NEEDS_CSUM
 * carried end to end, as Linux's VXLAN remote checksum offload does): GSO then writes the pseudo-header sum instead
 * of summing the payload. Kernel VXLAN and flannel peers never set it and get full checksums. */
#define WEFT_PEER_F_CSUM_PARTIAL 1
/* The address is IPv6 (all 16 bytes, network order): the datagram goes out of the queue's IPv6 socket. The record
 * of a peer's IPv6 half (its PublicIPv6 and BackendV6Data's VtepMAC), which inner IPv6 packets are sent to. */
#define WEFT_PEER_F_IPV6 2

enum weft_encap { WEFT_ENCAP_UDP = 0, WEFT_ENCAP_VXLAN = 1, WEFT_ENCAP_GENEVE = 2, WEFT_ENCAP_COUNT };

/* The one verdict table of C and TypeScript (src/verdicts.ts lists the same names in the same order; native.ts
 * checks it at load). Drop reasons, X(ID, name). Reason r has verdict -(r + 1) and counter drop_<name>.
 * no_route, unknown_peer and spoofed_source are counted by JS (routing and anti-spoof live
 * there). New reasons go at the end so existing verdicts keep their values. */
#define WEFT_DROPS(X)                 \
  X(MALFORMED, malformed)             \
  X(TRUNCATED, truncated)             \
  X(TTL_EXCEEDED, ttl_exceeded)       \
  X(BAD_FLAGS, bad_flags)             \
  X(BAD_VNI, bad_vni)                 \
  X(BAD_ETHERTYPE, bad_ethertype)     \
  X(BAD_VERSION, bad_version)         \
  X(GENEVE_CRITICAL, geneve_critical) \
  X(SEND_ERROR, send_error)           \
  X(TUN_WRITE_ERROR, tun_write_error) \
  X(NO_ROUTE, no_route)               \
  X(UNKNOWN_PEER, unknown_peer)       \
  X(SPOOFED_SOURCE, spoofed_source)   \
  X(NO_SLOT, no_slot)                 \
  X(TOO_BIG, too_big)                 \
  X(BAD_CSUM, bad_csum)               \
  X(UNSUPPORTED, unsupported)

/* Counters other than drops, X(ID, name). One list: binding.c exports the names.
 * udp_send_refused counts sendmmsg calls the kernel answered EAGAIN or ENOBUFS (the train waits for writable);
 * poll_writable_wakeups counts the loop's wake-ups for a writable socket while it waits (JS adds to it).
 * copied_*_to_*_bytes are the kernel's copies at the user/kernel boundary (TUN read and write, socket send and
 * receive), counted at the syscall; copied_user_bytes are packet bytes user space copies from one buffer into
 * another (a memcpy of payload). Per-segment header copies (at most 120 bytes each, written to build a segment's
 * own headers) are left out of it. */
#define WEFT_COUNTERS(X)                                    \
  X(TUN_RX_PACKETS, tun_rx_packets)                         \
  X(TUN_RX_BYTES, tun_rx_bytes)                             \
  X(TUN_TX_PACKETS, tun_tx_packets)                         \
  X(TUN_TX_BYTES, tun_tx_bytes)                             \
  X(UDP_TX_PACKETS, udp_tx_packets)                         \
  X(UDP_TX_BYTES, udp_tx_bytes)                             \
  X(UDP_RX_PACKETS, udp_rx_packets)                         \
  X(UDP_RX_BYTES, udp_rx_bytes)                             \
  X(SYSCALLS_TUN_READ, syscalls_tun_read)                   \
  X(SYSCALLS_TUN_WRITE, syscalls_tun_write)                 \
  X(SYSCALLS_SEND, syscalls_send)                           \
  X(SYSCALLS_RECV, syscalls_recv)                           \
  X(COPIED_USER_TO_KERNEL_BYTES, copied_user_to_kernel_bytes) \
  X(COPIED_KERNEL_TO_USER_BYTES, copied_kernel_to_user_bytes) \
  X(COPIED_USER_BYTES, copied_user_bytes)                   \
  X(ICMP_SENT, icmp_sent)                                   \
  X(GSO_SUPERPACKETS, gso_superpackets)                     \
  X(GSO_SEGMENTS, gso_segments)                             \
  X(CSUM_COMPLETED, csum_completed)                         \
  X(UDP_GSO_SENDS, udp_gso_sends)                           \
  X(UDP_GSO_FALLBACKS, udp_gso_fallbacks)                   \
  X(UDP_GRO_DATAGRAMS, udp_gro_datagrams)                   \
  X(GRO_SUPERPACKETS, gro_superpackets)                     \
  X(GRO_COALESCED, gro_coalesced)                           \
  X(GRO_CSUM_BAD, gro_csum_bad)                             \
  X(UDP_SEND_REFUSED, udp_send_refused)                     \
  X(POLL_WRITABLE_WAKEUPS, poll_writable_wakeups)

enum weft_drop {
#define WEFT_X(id, name) WEFT_DROP_##id,
  WEFT_DROPS(WEFT_X)
#undef WEFT_X
  WEFT_DROP_COUNT
};

enum weft_counter {
#define WEFT_X(id, name) WEFT_C_##id,
  WEFT_COUNTERS(WEFT_X)
#undef WEFT_X
  WEFT_C_DROP_BASE,
  WEFT_COUNTER_COUNT = WEFT_C_DROP_BASE + WEFT_DROP_COUNT
};

#define WEFT_VERDICT(drop) (-(int32_t)(drop) - 1)

static inline void weft_drop(double *counters, int drop) { counters[WEFT_C_DROP_BASE + drop] += 1; }

/* A failed syscall: errno value and the call's name, for binding.c to throw. */
typedef struct {
  int code;
  const char *syscall;
} weft_err;

/* Setup calls check every libc call through this: on -1 record errno and name, jump to fail. */
#define WEFT_TRY(e, call, name)  \
  do {                           \
    if ((call) < 0) {            \
      (e)->code = errno;         \
      (e)->syscall = (name);     \
      goto fail;                 \
    }                            \
  } while (0)

/* Byte helpers: packets are unaligned, so always go through bytes. */
static inline uint16_t weft_rd16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static inline uint32_t weft_rd32(const uint8_t *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline void weft_wr16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}
static inline void weft_wr32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}


/* csum.c: Internet checksum (RFC 1071) and incremental update (RFC 1624). */
uint64_t weft_csum_add(uint64_t sum, const uint8_t *p, size_t n);
uint16_t weft_csum_fold(uint64_t sum);
uint16_t weft_csum_update16(uint16_t check, uint16_t old_word, uint16_t new_word);
/* The IPv6 pseudo-header sum (addresses at ip6 + 8, upper-layer length, next header), to add before folding. */
uint64_t weft_csum_pseudo6(const uint8_t *ip6, uint8_t next, uint32_t l4_len);

/* ipv4.c: the inner-packet checks both directions share. */
int weft_ipv4_valid_exact(const uint8_t *p, int32_t len);
int32_t weft_ipv4_inner_len(const uint8_t *p, int32_t avail);
int weft_ipv4_ttl_decrement(uint8_t *p);
void weft_ipv4_complete_l4_csum(uint8_t *p, int32_t len);
/* ipv6.c: the same for inner IPv6, and weft_ip_* that pick the family by the version nibble. */
int weft_ipv6_valid_exact(const uint8_t *p, int32_t len);
int32_t weft_ipv6_inner_len(const uint8_t *p, int32_t avail);
int weft_ipv6_hop_decrement(uint8_t *p);
void weft_ipv6_complete_l4_csum(uint8_t *p, int32_t len);
int weft_ip_valid_exact(const uint8_t *p, int32_t len);
int32_t weft_ip_inner_len(const uint8_t *p, int32_t avail);
void weft_ip_complete_l4_csum(uint8_t *p, int32_t len);
/* EtherType of an inner packet by its version nibble (the encaps' protocol field): IPv6 or IPv4. */
static inline uint16_t weft_ip_ethertype(const uint8_t *p) { return (p[0] >> 4) == 6 ? 0x86DD : 0x0800; }

/* One object per encap, same operations. encode writes hlen bytes at hdr (just
 * before the packet); decode returns the payload offset within the datagram or a
 * negative verdict. */
typedef struct {
  const char *name;
  int32_t hlen;
  void (*encode)(uint8_t *hdr, const uint8_t *peer_rec, const uint8_t *local_mac, uint32_t vni);
  int32_t (*decode)(const uint8_t *d, int32_t len, uint32_t vni);
} weft_encap_ops;

extern const weft_encap_ops weft_encap_udp;
extern const weft_encap_ops weft_encap_vxlan;
extern const weft_encap_ops weft_encap_geneve;
const weft_encap_ops *weft_encap_get(int encap);

/* ---- virtio_net_hdr (IFF_VNET_HDR TUN), as in linux/virtio_net.h ---- */
#define WEFT_VNET_HDR_LEN 10
#define WEFT_VNET_F_NEEDS_CSUM 1
#define WEFT_VNET_GSO_NONE 0
#define WEFT_VNET_GSO_TCPV4 1
#define WEFT_VNET_GSO_UDP 3
#define WEFT_VNET_GSO_TCPV6 4
#define WEFT_VNET_GSO_UDP_L4 5
#define WEFT_VNET_GSO_ECN 0x80
/* virtio_net_hdr fields are little-endian (legacy header on a little-endian host, or TUNSETVNETLE); read them byte
 * by byte so the layout never depends on the compiler. */
static inline uint16_t weft_rd_le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline void weft_wr_le16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}
/* TUNSETOFFLOAD bits weft asks for, as in linux/if_tun.h. */
#define WEFT_TUN_F_CSUM 0x01
#define WEFT_TUN_F_TSO4 0x02
#define WEFT_TUN_F_TSO6 0x04
#define WEFT_TUN_F_TSO_ECN 0x08
#define WEFT_TUN_F_USO4 0x20
#define WEFT_TUN_F_USO6 0x40

/* Segments one super-packet may be split into (64 KiB at an MSS of 256 bytes). */
#define WEFT_GSO_MAX_SEGS 256
/* Largest inner IP + TCP header a segment repeats (IPv4 60 + 60, IPv6 40 + 60). */
#define WEFT_GSO_HDR_MAX 120
/* Kernel limits of one UDP_SEGMENT send: UDP_MAX_SEGMENTS (64 before 6.x raised it) and
 * an IP datagram of 64 KiB. */
#define WEFT_UDP_GSO_MAX_SEGS 64
#define WEFT_UDP_GSO_MAX_BYTES (65535 - 20 - 8)
/* A UDP_GRO receive holds at most UDP_GRO_CNT_MAX (64) datagrams. */
#define WEFT_GRO_MAX_SEGS 64

/* ---- tun.c: every TUN read and write, with or without the virtio header ---- */
int weft_tun_open(const char *name, int flags, char *out_name, size_t out_cap, weft_err *e);
#define WEFT_TUN_MULTI_QUEUE 1
#define WEFT_TUN_VNET_HDR 2
#define WEFT_TUN_NAPI 4 /* IFF_NAPI: the kernel runs GRO over what weft writes */
int weft_link_set(const char *name, int mtu, int up, weft_err *e);
int weft_close(int fd, weft_err *e);
int weft_tun_set_offload(int fd, unsigned flags, weft_err *e);
/* TUNGETIFF: the device name into name, returns its IFF_* flags (IFF_VNET_HDR 0x4000, IFF_MULTI_QUEUE 0x100). */
int weft_tun_get_iff(int fd, char *name, size_t cap, weft_err *e);
/* read() until EAGAIN or max packets, packet i at slot i + headroom; vnet: its virtio header in the
 * WEFT_VNET_HDR_LEN bytes before it (len[i] excludes it). Returns the count, -1 with e on a first failure. */
int32_t weft_tun_read_batch(int fd, int vnet, uint8_t *slab, int32_t slot_size, int32_t headroom, int32_t *len,
                            int32_t max, double *counters, weft_err *e);
int32_t weft_tun_read_one(int fd, uint8_t *buf, int32_t max, double *counters, weft_err *e);
int weft_tun_write_one(int fd, const uint8_t *buf, int32_t len, double *counters);
/* One writev to TUN, the first hdr bytes a virtio header (not counted in tun_tx_bytes). A failure is a
 * counted drop. Returns 1 when written. */
int weft_tun_writev(int fd, const struct iovec *iov, int iovcnt, int32_t hdr, double *counters);
/* One inbound packet to a TUN without a virtio header. Up to mtu bytes (or mtu 0): one write.
 * Longer: an unfragmented IPv4 TCP packet (or IPv6 with TCP after the fixed header) whose checksum
 * verifies is written as segments of at most mtu bytes (one writev each: header copy on the stack +
 * payload slice in place); anything else is dropped as too_big, a wrong TCP checksum as bad_csum.
 * Returns 1 when written, else the negative verdict (already counted). */
int32_t weft_tun_write_mtu(int fd, const uint8_t *pkt, int32_t len, int32_t mtu, double *counters);
/* Decapsulated packets (off/len, len <= 0 skipped) to a TUN without a virtio header: partial checksums a kernel
 * sender left are completed first (weft_ip_complete_l4_csum), then weft_tun_write_mtu. A failure sets len[i] to
 * its verdict. Returns packets written. */
int32_t weft_tun_write_batch(int fd, uint8_t *slab, size_t slab_len, const int32_t *off, int32_t *len, int32_t count,
                             int32_t mtu, double *counters);

/* ---- gso.c: a super-packet from a virtio TUN cut into segments, by scatter-gather ----
 *
 * weft_gso_segment reads the virtio header at vh and the packet at pkt. GSO_NONE: the packet is fixed up in place
 * (TTL or hop limit, a partial checksum completed unless WEFT_GSO_CSUM_PARTIAL may keep it) and returns 1 with
 * plan->hdr = 0. TCPv4 / TCPv6 / UDP_L4 (either IP version): pkt is only read; segment k's inner IP + L4 header
 * (plan->hdr bytes) is written at hdrs + k * (room + plan->hdr) + room (the room in front is for the encap header)
 * and its payload is the slice pkt + plan->hdr + k * plan->mss, plan->mss bytes (plan->last for the last).
 * Checksums come from one pass over the payload, each slice summed once (tcp_gso_segment's fix-ups otherwise:
 * sequence, IP ID + k for IPv4, payload length for IPv6, FIN/PSH on the last, CWR on the first); an IPv6 GSO packet
 * with extension headers is refused as unsupported; with WEFT_GSO_CSUM_PARTIAL the L4 checksum is the
 * pseudo-header sum and the payload is not read at all. Returns the segment count or a negative verdict (nothing
 * counted). */
#define WEFT_GSO_TTL_DEC 1
#define WEFT_GSO_CSUM_PARTIAL 2
typedef struct {
  int32_t nseg, hdr, mss, last;
} weft_gso_plan;
int32_t weft_gso_segment(const uint8_t *vh, uint8_t *pkt, int32_t len, int32_t mtu, int flags, uint8_t *hdrs,
                         size_t hdrs_cap, int32_t room, weft_gso_plan *plan, double *counters);
/* The same split written out whole (tests, fuzzing): segment k at out + k * (room + *seg_len) + room. The input
 * (virtio header at pkt - WEFT_VNET_HDR_LEN) is not modified. */
int32_t weft_gso_split(const uint8_t *pkt, int32_t len, int32_t mtu, uint8_t *out, size_t cap, int32_t room, int flags,
                       int32_t *seg_len, int32_t *last_len, double *counters);
/* Headers of TCP segment k of nseg cut from one IPv4 TCP packet at h (ihl + thl bytes, a copy
 * of the original's): total length, IP ID id0 + k, IP checksum, sequence seq0 + k * mss, FIN/PSH
 * only on the last segment and CWR only on the first (tcp_gso_segment), and the TCP checksum
 * over pseudo header + h's TCP header + the chunk, whose weft_csum_add sum is chunk_sum (partial:
 * the pseudo-header sum only, as CHECKSUM_PARTIAL leaves it). */
void weft_tcp4_segment_headers(uint8_t *h, int32_t ihl, int32_t thl, int32_t chunk, uint64_t chunk_sum, int partial,
                               int32_t k, int32_t nseg, int32_t mss, uint16_t id0, uint32_t seq0, uint8_t flags0);

/* ---- udp.c: every socket call ---- */
/* A socket address of either family (the queue's IPv4 socket and its IPv6 one). */
typedef union {
  struct sockaddr_in v4;
  struct sockaddr_in6 v6;
} weft_sockaddr;
/* bind_addr's family picks the socket's: IPv4, or IPv6 only (IPV6_V6ONLY). */
int weft_udp_open(const char *bind_addr, int port, int buf_bytes, int reuse_port, weft_err *e);
/* SO_REUSEPORT group: pick the socket by the inner packet's flow (multi-queue); see udp.c. */
int weft_udp_steer_by_inner_flow(int fd, int inner_off, int geneve, int queues, weft_err *e);
int weft_udp_local_port(int fd, weft_err *e);
/* Probe UDP_SEGMENT (getsockopt) and, with want_gro, turn UDP_GRO on. */
int weft_udp_offload(int fd, int want_gro, int *has_segment, int *has_gro, weft_err *e);
/* recvmmsg into slot i of the slab. gso NULL: plain datagrams (batch tier). gso given: with UDP_GRO on the socket,
 * gso[i] = the segment size of a coalesced datagram, 0 for a single one (offload tier). port NULL: not recorded;
 * else port[i] = the source port (a WireGuard handshake is answered to the address and port it came from).
 * addr[i] is the IPv4 source, host order. From an IPv6 socket, addr[i] = i, the slot (0.0.0.0/8 is never a source
 * on the wire, RFC 1122 3.2.1.3, and an IPv4 datagram from it is dropped as unknown_peer), and the source address is
 * in addr6[16 * i] (NULL: the datagram is dropped as unknown_peer). */
int32_t weft_udp_recv(int fd, uint8_t *slab, int32_t slot_size, int32_t *len, uint32_t *addr, uint8_t *addr6,
                      uint32_t *port, int32_t *gso, int32_t max, double *counters, weft_err *e);
/* One datagram to addr:port (host order), for the rare message outside a train (a WireGuard handshake or
 * keepalive). Returns the bytes sent, 0 when the socket buffer is full (dropped: the sender retries on its timer),
 * -1 with e. */
int32_t weft_udp_send_to(int fd, const uint8_t *buf, size_t len, uint32_t addr, uint16_t port, double *counters,
                         weft_err *e);

/* A train: what one outbound batch sends. Each message is a run of iovecs (header-area slices and payload slices in
 * the TUN read buffer, or one in-place encapsulated packet) to one peer; gso > 0 makes it a UDP_SEGMENT train of
 * segments of gso bytes, each exactly two iovecs (headers, payload). slot names the TUN packet it came from, for its
 * verdict. Built by the encap step, read by a transform, sent by weft_udp_send_train. */
typedef struct {
  struct iovec *iov;
  int32_t iov_n, iov_cap;
  int32_t *msg_iov, *msg_iovcnt, *msg_gso, *msg_peer, *msg_slot;
  int32_t msg_n, msg_cap;
  uint8_t *hdrs; /* header area: encap + inner headers of every segment */
  size_t hdrs_used, hdrs_cap;
  int32_t next;     /* first message not sent yet (resume point after EAGAIN) */
  int32_t next_seg; /* segments of message `next` already sent one by one (after a UDP_SEGMENT refusal) */
  int32_t refused;  /* after EAGAIN: the socket that refused message `next`, WEFT_SOCK_V4 or WEFT_SOCK_V6; else 0 */
} weft_train;
/* A queue's two underlay sockets, as bits: only the one a send was refused on is polled for writable (the other,
 * idle and always writable, would wake the loop for nothing until the full one drains). */
#define WEFT_SOCK_V4 1
#define WEFT_SOCK_V6 2
/* sendmmsg the train's messages from t->next on. *udp_segment: 1 while the kernel takes UDP_SEGMENT; on EIO it is
 * cleared (counted as udp_gso_fallbacks) and trains go segment by segment from then on, as wireguard-go does.
 * A message that fails otherwise is dropped: slot_verdict[msg_slot] = WEFT_DROP_SEND_ERROR's verdict. Returns the
 * messages left (0: all sent; more: the socket is full, t->refused says which; call again when it is writable),
 * -1 with e for a bad fd. */
/* Messages to a peer whose record says WEFT_PEER_F_IPV6 go out of fd6 (none: -1, and they are dropped as no_route). */
int32_t weft_udp_send_train(int fd, int fd6, weft_train *t, const uint8_t *peers, int32_t peer_count,
                            int *udp_segment, int32_t *slot_verdict, double *counters, weft_err *e);

/* ---- encap.c: encap in place, and decap of received buffers ---- */
/* The inner packet at pkt gets its encap header in front (pkt - ops->hlen), for the peer record rec. */
void weft_encap_one(const weft_encap_ops *ops, uint8_t *pkt, const uint8_t *rec, const uint8_t *local_mac,
                    uint32_t vni);
/* One datagram: the inner packet's offset in d (its length in *inner_len), or a negative verdict (not counted). */
int32_t weft_decap_one(const weft_encap_ops *ops, const uint8_t *d, int32_t len, uint32_t vni, int32_t *inner_len);
/* Splits each received buffer i (len[i] bytes at slot i; gso NULL or gso[i] 0: one datagram, else datagrams of
 * gso[i] bytes as UDP_GRO joined them) and decapsulates each datagram: seg_off/seg_len frame its inner IPv4 packet
 * (trimmed to its total length), seg_addr its outer source. Returns the segment count; drops are counted by
 * reason. The slab is not modified. */
int32_t weft_decap_split(const weft_encap_ops *ops, const uint8_t *slab, int32_t slot_size, const int32_t *len,
                         const int32_t *gso, const uint32_t *addr, int32_t count, uint32_t vni, int32_t *seg_off,
                         int32_t *seg_len, uint32_t *seg_addr, int32_t seg_max, double *counters);

/* ---- gro.c: TCP segments of one flow coalesced back into super-packets (tcp_gro_receive) ---- */
/* Where gro_run hands each output packet: iov[0] is the virtio header. Returns 1 if taken. */
typedef int (*weft_sink)(void *ctx, const struct iovec *iov, int iovcnt, double *counters);
/* mtu: the TUN's MTU (0: no limit); a lone TCP packet longer than it (a kernel VXLAN peer's whole burst) goes to the
 * sink as a GSO_TCPV4 super-packet for the kernel to cut, its full checksum verified and made partial. */
int32_t weft_gro_run(uint8_t *slab, size_t slab_len, const int32_t *seg_off, int32_t *seg_len, int32_t count,
                     int coalesce, int32_t mtu, weft_sink sink, void *ctx, double *counters);
int weft_tun_sink(void *ctx, const struct iovec *iov, int iovcnt, double *counters);

/* ---- queue.c: one queue's memory and fds, registered once; every batch call is (queue, n) ---- */
#define WEFT_Q_VNET 1        /* the TUN carries a virtio header: GSO out, GRO in (the offload tier) */
#define WEFT_Q_GRO 2         /* coalesce TCP before writing to TUN (TSO accepted on the TUN) */
#define WEFT_Q_UDP_SEGMENT 4 /* send trains with UDP_SEGMENT */
typedef struct {
  int tun_fd, sock_fd;
  int sock6_fd; /* the IPv6 underlay socket (bound to our PublicIPv6), or -1 */
  const weft_encap_ops *ops; /* NULL: a TypeScript encap (batch tier) writes and reads headers between the steps */
  uint32_t vni;
  uint8_t local_mac[6];
  uint8_t local_mac6[6]; /* our IPv6 half's VtepMAC: the inner source MAC of IPv6 frames */
  int32_t mtu; /* the TUN's MTU: the largest inner segment, and where inbound packets are cut (no virtio header) */
  int vnet, gro, udp_segment;
  int32_t slot_size;
  double *counters;
  const uint8_t *peers; /* records of WEFT_PEER_RECORD_SIZE, JS's; replaced between batches */
  int32_t peer_count;
  /* outbound (JS sees slab, len, off, peer) */
  uint8_t *out_slab;
  int32_t out_slots;
  int32_t *out_len, *out_off, *out_peer;
  weft_train train;
  /* inbound (JS sees slab, len, addr, and the segments) */
  uint8_t *in_slab;
  int32_t in_slots;
  int32_t *in_len, *in_gso;
  uint32_t *in_addr;
  uint8_t *in_addr6; /* 16 bytes per slot: the IPv6 source of a datagram from sock6_fd (addr then holds the slot) */
  int recv_turn;
  uint32_t *in_port; /* NULL unless JS asked for source ports (WireGuard) */
  int32_t *seg_off, *seg_len;
  uint32_t *seg_addr;
  int32_t seg_max;
  uint8_t scratch[WEFT_ICMP6_SCRATCH]; /* one ICMP or ICMPv6 error */
  /* WireGuard on the offload tier: bytes a transform adds per segment (the train's messages are sized with them
   * counted) and the area segments are sealed into (allocated by weft_queue_init when seg_overhead > 0). */
  int32_t seg_overhead;
  uint8_t *wg_out;
  size_t wg_out_cap;
} weft_queue;
/* Allocates the train for out_slots packets (header area, iovecs, messages). 0, or -1 with e. */
int weft_queue_init(weft_queue *q, weft_err *e);
void weft_queue_free(weft_queue *q);
int32_t weft_queue_out_read(weft_queue *q, weft_err *e);
void weft_queue_out_encap(weft_queue *q, int32_t n);
/* Batch tier, for a transform that seals packets in place before out_encap frames them (WireGuard): out_encap's
 * header check and TTL / hop-limit decrement alone, for i < n with out_peer[i] >= 0; failures become verdicts,
 * counted. Nothing on a vnet queue: there GSO decrements per segment. */
void weft_queue_out_hop(weft_queue *q, int32_t n);
int32_t weft_queue_out_send(weft_queue *q, weft_err *e);
int weft_queue_out_icmp(weft_queue *q, int32_t slot, uint8_t type, uint8_t code, uint32_t from);
/* An ICMPv6 error about the IPv6 packet in out slot `slot`, from `from` (16 bytes); param: the MTU of a packet too
 * big, else 0. 1 when written. */
int weft_queue_out_icmp6(weft_queue *q, int32_t slot, uint8_t type, uint8_t code, uint32_t param,
                         const uint8_t from[16]);
/* The offload tier's WireGuard transform (between out_encap and out_send): every message of the train is copied
 * segment by segment into wg_out at WireGuard's stride and sealed there for send_slot[its peer], and its iovecs
 * are pointed at the sealed messages; a message that cannot be sealed (no session, no room) is dropped, counted in
 * wg_counters. */
void weft_queue_out_wg_seal(weft_queue *q, uint8_t *table, int32_t nslots, const int32_t *send_slot, int32_t npeers,
                            double now_ms, double *wg_counters);
int32_t weft_queue_in_recv(weft_queue *q, weft_err *e);
int32_t weft_queue_in_decap(weft_queue *q, int32_t n);
int32_t weft_queue_in_write(weft_queue *q, int32_t segs);

/* icmp.c: returns total length built into scratch, or 0 when no error may be sent. */
int32_t weft_icmp_error_build(const uint8_t *pkt, int32_t pkt_len, uint8_t type, uint8_t code, uint32_t from_addr,
                              uint8_t *scratch, int32_t scratch_cap);
#define WEFT_ICMP_SCRATCH_MIN (20 + 8 + 60 + 8)
/* icmp6.c: an ICMPv6 error about the IPv6 packet pkt, from from_addr (16 bytes) to its source, into scratch; param
 * is the 32-bit field after the checksum (the MTU of a packet too big, else 0). Returns the total length, or 0 when
 * no error may be sent. A scratch of WEFT_ICMP6_SCRATCH bytes quotes all that RFC 4443 asks. */
int32_t weft_icmp6_error_build(const uint8_t *pkt, int32_t pkt_len, uint8_t type, uint8_t code, uint32_t param,
                               const uint8_t from[16], uint8_t *scratch, int32_t scratch_cap);

/* ---- wg.c: WireGuard transport data (WireGuard whitepaper §5.4.6), batched ----
 *
 * The handshake runs in TypeScript (src/wireguard/); it installs each derived keypair in a session table that JS
 * allocates once (nslots records of WEFT_WG_SESSION_SIZE bytes, nslots a power of two, 8-byte aligned; a
 * SharedArrayBuffer when worker threads share it). A session's local index carries its slot in the low bits
 * (index & (nslots - 1)), so the receive path finds it without a hash table; the record must also hold that exact
 * index. Seal and open may run on several threads over one table: the send counter is reserved atomically, the
 * replay window and key reads sit under the record's spinlock, and session_set/clear take the same lock.
 *
 * Transport message (little-endian): type 4, 3 zero bytes | receiver index u32 | counter u64 | ChaCha20-Poly1305
 * of the packet padded with zeros to a multiple of 16 (never past the TUN MTU), nonce = 4 zero bytes + counter,
 * no associated data | 16-byte tag. A keepalive is the empty packet: 32 bytes.
 *
 * Verdicts are numbered after WEFT_DROPS, so they never collide with an encap verdict in the same len[]/peer[]
 * arrays: verdict r is WEFT_WG_VERDICT(r) = -(WEFT_DROP_COUNT + r + 1) and is counted in counters[WEFT_WG_C_BASE + r].
 * HANDSHAKE is not a drop: the datagram is a handshake message (type 1, 2 or 3 of its exact length) for TypeScript.
 */
#define WEFT_WG_HEADER_LEN 16
#define WEFT_WG_TAG_LEN 16
#define WEFT_WG_OVERHEAD (WEFT_WG_HEADER_LEN + WEFT_WG_TAG_LEN)
/* WireGuard whitepaper §6.1 (wireguard-go device/constants.go): a keypair sends at most 2^64 - 2^13 - 1 messages. */
#define WEFT_WG_REJECT_AFTER_MESSAGES (UINT64_MAX - (UINT64_C(1) << 13))
/* Replay window as RFC 6479 and wireguard-go replay/replay.go: a ring of 128 64-bit blocks, 8128 counters wide. */
#define WEFT_WG_RING_BLOCKS 128
#define WEFT_WG_WINDOW ((WEFT_WG_RING_BLOCKS - 1) * 64)

/* Session record layout (host byte order; JS reads the counters at these offsets without a native call). */
#define WEFT_WG_S_STATE 0     /* u32: 1 while the session may be used */
#define WEFT_WG_S_LOCK 4      /* u32 spinlock */
#define WEFT_WG_S_LOCAL 8     /* u32 our index: the receiver index of incoming messages */
#define WEFT_WG_S_REMOTE 12   /* u32 the peer's index, written into outgoing messages */
#define WEFT_WG_S_PEER 16     /* i32 peer-table index reported by open */
#define WEFT_WG_S_FLAGS 20    /* u32, WEFT_WG_F_* */
#define WEFT_WG_S_GEN 24      /* u32, bumped by every set and clear */
#define WEFT_WG_S_SEND_CTR 32 /* u64 next send counter */
#define WEFT_WG_S_EXPIRES 40  /* f64 caller's clock (ms) from which the keypair is rejected (REJECT_AFTER_TIME) */
#define WEFT_WG_S_TX_PACKETS 48
#define WEFT_WG_S_TX_BYTES 56 /* u64 message bytes sealed */
#define WEFT_WG_S_RX_PACKETS 64
#define WEFT_WG_S_RX_BYTES 72 /* u64 message bytes opened */
#define WEFT_WG_S_RX_LAST 80  /* u64 highest counter accepted */
#define WEFT_WG_S_SEND_KEY 96
#define WEFT_WG_S_RECV_KEY 128
#define WEFT_WG_S_RING 192 /* WEFT_WG_RING_BLOCKS u64 */
#define WEFT_WG_SESSION_SIZE (WEFT_WG_S_RING + WEFT_WG_RING_BLOCKS * 8)
#define WEFT_WG_F_RECEIVED 1u /* an authenticated message was opened with this session (key confirmation) */

#define WEFT_WG_VERDICTS(X)       \
  X(HANDSHAKE, handshake)         \
  X(MALFORMED, malformed)         \
  X(UNKNOWN_INDEX, unknown_index) \
  X(NO_SESSION, no_session)       \
  X(REPLAY, replay)               \
  X(BAD_TAG, bad_tag)             \
  X(BAD_INNER, bad_inner)         \
  X(COUNTER_LIMIT, counter_limit) \
  X(NO_ROOM, no_room)             \
  X(CRYPTO_ERROR, crypto_error)

#define WEFT_WG_COUNTERS(X)         \
  X(TX_PACKETS, wg_tx_packets)      \
  X(TX_BYTES, wg_tx_bytes)          \
  X(RX_PACKETS, wg_rx_packets)      \
  X(RX_BYTES, wg_rx_bytes)          \
  X(KEEPALIVES_RX, wg_keepalives_rx)

enum weft_wg_verdict {
#define WEFT_X(id, name) WEFT_WG_V_##id,
  WEFT_WG_VERDICTS(WEFT_X)
#undef WEFT_X
  WEFT_WG_V_COUNT
};

enum weft_wg_counter {
#define WEFT_X(id, name) WEFT_WG_C_##id,
  WEFT_WG_COUNTERS(WEFT_X)
#undef WEFT_X
  WEFT_WG_C_BASE,
  WEFT_WG_COUNTER_COUNT = WEFT_WG_C_BASE + WEFT_WG_V_COUNT
};

#define WEFT_WG_VERDICT(v) (-(int32_t)(WEFT_DROP_COUNT + (v)) - 1)

/* Message bytes of a packet of len bytes once sealed: 32 + len padded to 16 (not past mtu when 0 < len <= mtu). */
int32_t weft_wg_sealed_len(int32_t len, int32_t mtu);
/* Installs a keypair in slot (local & (nslots - 1)) with send counter 0 and an empty replay window. -1: bad slot. */
int weft_wg_session_set(uint8_t *table, int32_t nslots, uint32_t local, uint32_t remote, int32_t peer,
                        const uint8_t send_key[32], const uint8_t recv_key[32], double expires_ms);
/* Deactivates the slot and zeroes its keys. */
void weft_wg_session_clear(uint8_t *table, int32_t nslots, int32_t slot);
/* Batch tier, outbound. Packet i (peer[i] >= 0) is at slot i + headroom (as tunRead put it), len[i] bytes; its
 * session is send_slot[peer[i]]. Seals in place: header at off[i] = slot + headroom - 16, len[i] = message bytes.
 * A failure sets peer[i] to a verdict (no_session, counter_limit, no_room), counted; sendBatch then skips it. */
void weft_wg_seal_batch(uint8_t *table, int32_t nslots, uint8_t *slab, int32_t slot_size, int32_t headroom,
                        int32_t *len, int32_t *off, int32_t *peer, const int32_t *send_slot, int32_t npeers,
                        int32_t count, int32_t mtu, double now_ms, double *counters);
/* Offload tier, outbound: the nseg segments of one super-packet for session `slot`, segment k's plaintext at
 * buf + first + k * stride with stride = weft_wg_sealed_len(seg_len, mtu) (seg_len bytes each, the last last_len).
 * Reserves nseg counters at once and seals each in place, so the messages lie back to back from first - 16: one
 * UDP_SEGMENT send of gso size `stride`. Returns the bytes from first - 16 to the end of the last message, or a
 * verdict, counted. */
int32_t weft_wg_seal_segments(uint8_t *table, int32_t nslots, int32_t slot, uint8_t *buf, size_t buf_len,
                              int32_t first, int32_t seg_len, int32_t nseg, int32_t last_len, int32_t mtu,
                              double now_ms, double *counters);
/* Batch tier, inbound. Datagram i is at slot i (as udpRecv put it), len[i] bytes (negative: already judged, copied to
 * peer[i]). An authenticated transport message: off[i]/len[i] = the inner packet decrypted in place (len 0 for a
 * keepalive), peer[i] = its session's peer. Else len[i] = peer[i] = a verdict, counted; for HANDSHAKE off[i] is the
 * datagram's offset. The counter is checked against the replay window before decrypting and recorded only after the
 * tag verified. */
void weft_wg_open_batch(uint8_t *table, int32_t nslots, uint8_t *slab, int32_t slot_size, int32_t *len, int32_t *off,
                        int32_t *peer, int32_t count, double now_ms, double *counters);
/* The same over a list: datagram i at buf + off[i], len[i] bytes, each inside buf (offload tier, after UDP_GRO). */
void weft_wg_open_list(uint8_t *table, int32_t nslots, uint8_t *buf, size_t buf_len, int32_t *off, int32_t *len,
                       int32_t *peer, int32_t count, double now_ms, double *counters);
/* Primitives Node lacks, for the handshake: keyed BLAKE2s with an outlen-byte output (OpenSSL EVP_MAC BLAKE2SMAC;
 * MAC1/MAC2 use 16) and XChaCha20-Poly1305 (libsodium; cookie replies). 0 on success, -1 on failure. */
int weft_wg_blake2s_mac(const uint8_t *key, size_t key_len, const uint8_t *data, size_t len, uint8_t *out,
                        size_t outlen);
int weft_wg_xaead_seal(const uint8_t key[32], const uint8_t nonce[24], const uint8_t *pt, size_t len,
                       const uint8_t *ad, size_t ad_len, uint8_t *out);
int weft_wg_xaead_open(const uint8_t key[32], const uint8_t nonce[24], const uint8_t *ct, size_t len,
                       const uint8_t *ad, size_t ad_len, uint8_t *out);

#endif
