/*
 * One queue: a TUN fd (or queue) and a UDP socket, both directions' memory registered once (binding.c checks every
 * size when the queue is opened), so each batch call is (queue, n). The steps below run in the order a packet meets
 * them; TypeScript decides between them (routes per packet or super-packet, sender checks) over the same memory.
 *
 * Out (forwarder: src/datapath/outbound.ts):
 *   1. out_read    tun.c     TUN -> out slots, each at HEADROOM (virtio header in front on the offload tier)
 *      [TS: route lookup -> out_peer[i], or a verdict; ICMP net-unreachable via out_icmp]
 *      [transform, batch tier: out_hop checks the header and decrements the TTL as out_encap would, before the
 *       transform seals the packet in place; out_encap then frames what it sealed]
 *   2. out_encap   gso.c + encap.c -> the train: batch tier: the encap header in place in front of each packet, one
 *                  datagram each; offload tier: each super-packet cut into segments (headers in the train's header
 *                  area, payload left in the slot) with the encap header in front of each, one UDP_SEGMENT message
 *                  per up to 64 segments
 *      [transform: a per-batch pass over the train's messages goes here (WireGuard seals each segment; its header
 *       fits in the room in front, its tag in WEFT_TAILROOM), before anything is sent]
 *   3. out_send    udp.c     sendmmsg of the train, resumable after EAGAIN
 * In (forwarder: src/datapath/inbound.ts):
 *   1. in_recv     udp.c     recvmmsg (UDP_GRO on the offload tier) -> in slots
 *      [transform: WireGuard opens here, before anything reads the inner packet]
 *   2. in_decap    encap.c   split GRO buffers, check and strip the encap header -> segments (seg_off/len/addr)
 *      [TS: sender checks per segment -> seg_len[k] = verdict]
 *   3. in_write    gro.c + tun.c  offload tier: coalesce TCP, writev with a virtio header; batch tier: complete
 *                  partial checksums, write (cut at the TUN MTU)
 * Inner IPv6 takes the same steps: hop limit for TTL, the encap's protocol 0x86DD, a peer record with
 * WEFT_PEER_F_IPV6 sent from the queue's IPv6 socket (sock6_fd), which in_recv reads beside the IPv4 one. On the
 * offload tier gso.c cuts TSO6 / USO super-packets of IPv6 as of IPv4, and gro.c coalesces IPv6 TCP.
 */
#include "weft.h"

#include <stdlib.h>
#include <string.h>

/* Train room: per TUN packet up to WEFT_GSO_MAX_SEGS segments, each two iovecs and one header-area entry; messages
 * one per segment at worst (segments go one by one only after a UDP_SEGMENT refusal, and then from the same
 * message). */
#define HDR_ROOM_PER_SEG (64 + WEFT_GSO_HDR_MAX)

int weft_queue_init(weft_queue *q, weft_err *e) {
  weft_train *t = &q->train;
  int32_t slots = q->out_slots > 0 ? q->out_slots : 0;
  int32_t segs = q->vnet ? slots * WEFT_GSO_MAX_SEGS : slots;
  memset(t, 0, sizeof *t);
  if (slots == 0) return 0;
  t->iov_cap = 2 * segs;
  t->msg_cap = segs;
  t->hdrs_cap = q->vnet ? (size_t)segs * HDR_ROOM_PER_SEG : 0;
  t->iov = calloc((size_t)t->iov_cap, sizeof *t->iov);
  int32_t *ints = calloc((size_t)t->msg_cap * 5, sizeof(int32_t));
  t->hdrs = t->hdrs_cap ? malloc(t->hdrs_cap) : NULL;
  /* Every super-packet sealed: its bytes, up to seg_overhead per segment and a header's room per message. */
  q->wg_out_cap = q->vnet && q->seg_overhead > 0
                      ? (size_t)slots * (WEFT_MAX_DATAGRAM + (size_t)WEFT_GSO_MAX_SEGS * (size_t)(q->seg_overhead + 16))
                      : 0;
  q->wg_out = q->wg_out_cap ? malloc(q->wg_out_cap) : NULL;
  if (!t->iov || !ints || (t->hdrs_cap && !t->hdrs) || (q->wg_out_cap && !q->wg_out)) {
    free(t->iov), free(ints), free(t->hdrs), free(q->wg_out);
    q->wg_out = NULL, q->wg_out_cap = 0;
    memset(t, 0, sizeof *t);
    e->code = ENOMEM, e->syscall = "calloc";
    return -1;
  }
  t->msg_iov = ints;
  t->msg_iovcnt = ints + t->msg_cap;
  t->msg_gso = ints + 2 * t->msg_cap;
  t->msg_peer = ints + 3 * t->msg_cap;
  t->msg_slot = ints + 4 * t->msg_cap;
  return 0;
}

void weft_queue_free(weft_queue *q) {
  free(q->train.iov);
  free(q->train.msg_iov);
  free(q->train.hdrs);
  free(q->wg_out);
  q->wg_out = NULL, q->wg_out_cap = 0;
  memset(&q->train, 0, sizeof q->train);
}

/* ---- out ---- */

int32_t weft_queue_out_read(weft_queue *q, weft_err *e) {
  return weft_tun_read_batch(q->tun_fd, q->vnet, q->out_slab, q->slot_size, WEFT_HEADROOM, q->out_len, q->out_slots,
                             q->counters, e);
}

static void out_drop(weft_queue *q, int32_t i, int32_t verdict) {
  q->out_peer[i] = verdict;
  weft_drop(q->counters, -verdict - 1);
}

static void train_msg(weft_train *t, int32_t iov, int32_t iovcnt, int32_t gso, int32_t peer, int32_t slot) {
  int32_t m = t->msg_n++;
  t->msg_iov[m] = iov;
  t->msg_iovcnt[m] = iovcnt;
  t->msg_gso[m] = gso;
  t->msg_peer[m] = peer;
  t->msg_slot[m] = slot;
}

/* The inner frame's source MAC (VXLAN): an IPv6 packet comes from our IPv6 half's VtepMAC, as from flannel-v6. */
static const uint8_t *local_mac_for(const weft_queue *q, const uint8_t *pkt) {
  return (pkt[0] >> 4) == 6 ? q->local_mac6 : q->local_mac;
}

/* Batch tier, as a router forwards (RFC 1812 5.3.1): the header checked, the TTL (IPv4) or hop limit (IPv6)
 * decremented. 0 when packet i got a verdict instead (TTL exceeded: JS sends the ICMP). */
static int out_hop(weft_queue *q, int32_t i, uint8_t *pkt) {
  int32_t len = q->out_len[i];
  int v6 = len > 0 && (pkt[0] >> 4) == 6;
  if (!(v6 ? weft_ipv6_valid_exact(pkt, len) : weft_ipv4_valid_exact(pkt, len)))
    return out_drop(q, i, WEFT_VERDICT(WEFT_DROP_MALFORMED)), 0;
  if (!(v6 ? weft_ipv6_hop_decrement(pkt) : weft_ipv4_ttl_decrement(pkt)))
    return out_drop(q, i, WEFT_VERDICT(WEFT_DROP_TTL_EXCEEDED)), 0;
  return 1;
}

/* Batch tier: the hop, encap header in place; one datagram per packet. */
static void encap_in_place(weft_queue *q, int32_t i, uint8_t *pkt, const uint8_t *rec) {
  weft_train *t = &q->train;
  int32_t len = q->out_len[i], hlen = q->ops->hlen;
  if (!out_hop(q, i, pkt)) return;
  weft_encap_one(q->ops, pkt, rec, local_mac_for(q, pkt), q->vni);
  q->out_off[i] = (int32_t)(pkt - q->out_slab) - hlen;
  q->out_len[i] = len + hlen;
  t->iov[t->iov_n].iov_base = pkt - hlen;
  t->iov[t->iov_n].iov_len = (size_t)(len + hlen);
  train_msg(t, t->iov_n++, 1, 0, q->out_peer[i], i);
}

/* Offload tier: one super-packet into segments with the encap header in front of each (scatter-gather). */
static void encap_segments(weft_queue *q, int32_t i, uint8_t *pkt, const uint8_t *rec) {
  weft_train *t = &q->train;
  int32_t hlen = q->ops->hlen, peer = q->out_peer[i];
  weft_gso_plan plan;
  int flags = WEFT_GSO_TTL_DEC | (rec[WEFT_PEER_FLAGS] & WEFT_PEER_F_CSUM_PARTIAL ? WEFT_GSO_CSUM_PARTIAL : 0);
  uint8_t *hdrs = t->hdrs + t->hdrs_used;
  int32_t n = weft_gso_segment(pkt - WEFT_VNET_HDR_LEN, pkt, q->out_len[i], q->mtu, flags, hdrs,
                               t->hdrs_cap - t->hdrs_used, hlen, &plan, q->counters);
  if (n < 0) return out_drop(q, i, n);
  if (t->iov_n + 2 * n > t->iov_cap || t->msg_n + n > t->msg_cap)
    return out_drop(q, i, WEFT_VERDICT(WEFT_DROP_NO_SLOT));
  if (plan.hdr == 0) { /* GSO_NONE: fixed up in place, one datagram like the batch tier's */
    int32_t len = q->out_len[i];
    weft_encap_one(q->ops, pkt, rec, local_mac_for(q, pkt), q->vni);
    t->iov[t->iov_n].iov_base = pkt - hlen;
    t->iov[t->iov_n].iov_len = (size_t)(len + hlen);
    return train_msg(t, t->iov_n++, 1, 0, peer, i);
  }
  int32_t stride = hlen + plan.hdr + plan.mss; /* one segment on the wire */
  int32_t per = WEFT_UDP_GSO_MAX_BYTES / (stride + q->seg_overhead); /* a transform's growth counted */
  if (per > WEFT_UDP_GSO_MAX_SEGS) per = WEFT_UDP_GSO_MAX_SEGS;
  if (per < 1) per = 1;
  for (int32_t k = 0; k < n; k++) {
    uint8_t *h = hdrs + (size_t)k * (size_t)(hlen + plan.hdr);
    weft_encap_one(q->ops, h + hlen, rec, local_mac_for(q, pkt), q->vni);
    struct iovec *v = t->iov + t->iov_n + 2 * k;
    v[0].iov_base = h;
    v[0].iov_len = (size_t)(hlen + plan.hdr);
    v[1].iov_base = pkt + plan.hdr + (size_t)k * (size_t)plan.mss;
    v[1].iov_len = (size_t)(k == n - 1 ? plan.last : plan.mss);
  }
  for (int32_t k = 0; k < n; k += per) {
    int32_t c = n - k < per ? n - k : per;
    train_msg(t, t->iov_n + 2 * k, 2 * c, c > 1 ? stride : 0, peer, i);
  }
  t->iov_n += 2 * n;
  t->hdrs_used += (size_t)n * (size_t)(hlen + plan.hdr);
}

/* A TypeScript encap already wrote its header in place: out_off/out_len frame the datagram. */
static void js_encapped(weft_queue *q, int32_t i) {
  weft_train *t = &q->train;
  int32_t off = q->out_off[i], len = q->out_len[i];
  size_t slot = (size_t)i * (size_t)q->slot_size;
  if (off < 0 || len <= 0 || (size_t)off < slot || (size_t)off + (size_t)len > slot + (size_t)q->slot_size)
    return out_drop(q, i, WEFT_VERDICT(WEFT_DROP_MALFORMED));
  t->iov[t->iov_n].iov_base = q->out_slab + off;
  t->iov[t->iov_n].iov_len = (size_t)len;
  train_msg(t, t->iov_n++, 1, 0, q->out_peer[i], i);
}

/* A slot's packet length as JS left it: within the slot, room kept for the headroom and the tail. */
static int out_len_ok(const weft_queue *q, int32_t i) {
  return q->out_len[i] >= 0 && q->out_len[i] <= q->slot_size - WEFT_HEADROOM - WEFT_TAILROOM;
}

void weft_queue_out_hop(weft_queue *q, int32_t n) {
  if (q->vnet) return; /* the offload tier's GSO decrements per segment (WEFT_GSO_TTL_DEC) */
  if (n > q->out_slots) n = q->out_slots;
  for (int32_t i = 0; i < n; i++) {
    if (q->out_peer[i] < 0) continue; /* JS already decided: no route, etc. */
    if (!out_len_ok(q, i)) {
      out_drop(q, i, WEFT_VERDICT(WEFT_DROP_MALFORMED)); /* JS wrote it */
      continue;
    }
    out_hop(q, i, q->out_slab + (size_t)i * q->slot_size + WEFT_HEADROOM);
  }
}

void weft_queue_out_encap(weft_queue *q, int32_t n) {
  weft_train *t = &q->train;
  t->iov_n = t->msg_n = t->next = t->next_seg = 0;
  t->hdrs_used = 0;
  if (n > q->out_slots) n = q->out_slots;
  for (int32_t i = 0; i < n; i++) {
    int32_t peer = q->out_peer[i];
    if (peer < 0) continue; /* JS already decided: no route, etc. */
    if (peer >= q->peer_count) { /* a stale index is a missing route, not a crash */
      out_drop(q, i, WEFT_VERDICT(WEFT_DROP_NO_ROUTE));
      continue;
    }
    if (!q->ops) {
      js_encapped(q, i);
      continue;
    }
    if (!out_len_ok(q, i)) {
      out_drop(q, i, WEFT_VERDICT(WEFT_DROP_MALFORMED)); /* JS wrote it */
      continue;
    }
    uint8_t *pkt = q->out_slab + (size_t)i * q->slot_size + WEFT_HEADROOM;
    const uint8_t *rec = q->peers + (size_t)peer * WEFT_PEER_RECORD_SIZE;
    if (q->vnet) encap_segments(q, i, pkt, rec);
    else encap_in_place(q, i, pkt, rec);
  }
}

/* Plaintext bytes of iovecs [from, from + n) of a message. */
static int32_t iov_bytes(const struct iovec *v, int32_t n) {
  size_t b = 0;
  for (int32_t j = 0; j < n; j++) b += v[j].iov_len;
  return b > INT32_MAX ? INT32_MAX : (int32_t)b;
}

static void msg_drop(weft_queue *q, int32_t m, int32_t verdict) {
  q->train.msg_peer[m] = verdict;
  q->out_peer[q->train.msg_slot[m]] = verdict;
}

/* A message's segments: two iovecs each in a UDP_SEGMENT train (headers, payload), else one datagram of all its
 * iovecs. Copied into wg_out at the sealed stride (one pass, the cache then warm for the cipher's pass), sealed in
 * place, and the iovecs repointed: two per segment (header, rest), so that a one-by-one resend after a UDP_SEGMENT
 * refusal still finds its pairs. */
void weft_queue_out_wg_seal(weft_queue *q, uint8_t *table, int32_t nslots, const int32_t *send_slot, int32_t npeers,
                            double now_ms, double *wg_counters) {
  weft_train *t = &q->train;
  size_t used = 0;
  for (int32_t m = 0; m < t->msg_n; m++) {
    int32_t peer = t->msg_peer[m];
    if (peer < 0) continue;
    struct iovec *v = t->iov + t->msg_iov[m];
    int32_t cnt = t->msg_iovcnt[m], gso = t->msg_gso[m];
    int32_t per = gso > 0 ? 2 : cnt, nseg = gso > 0 ? cnt / 2 : 1;
    int32_t last_len = iov_bytes(v + cnt - per, per);
    int32_t seg_len = nseg > 1 ? iov_bytes(v, per) : last_len;
    int32_t slot = peer < npeers ? send_slot[peer] : -1;
    int32_t stride = weft_wg_sealed_len(seg_len, q->mtu), last = weft_wg_sealed_len(last_len, q->mtu);
    size_t first = used + WEFT_WG_HEADER_LEN;
    size_t end = first - WEFT_WG_HEADER_LEN + (size_t)(nseg - 1) * (size_t)stride + (size_t)last;
    if (slot >= 0 && end <= q->wg_out_cap) {
      for (int32_t k = 0; k < nseg; k++) {
        uint8_t *d = q->wg_out + first + (size_t)k * (size_t)stride;
        for (int32_t j = 0; j < per; j++) {
          memcpy(d, v[k * per + j].iov_base, v[k * per + j].iov_len);
          d += v[k * per + j].iov_len;
          q->counters[WEFT_C_COPIED_USER_BYTES] += (double)v[k * per + j].iov_len;
        }
      }
    }
    int32_t r = weft_wg_seal_segments(table, nslots, slot, q->wg_out, q->wg_out_cap, (int32_t)first, seg_len, nseg,
                                      last_len, q->mtu, now_ms, wg_counters);
    if (r < 0) {
      msg_drop(q, m, r);
      continue;
    }
    uint8_t *base = q->wg_out + first - WEFT_WG_HEADER_LEN;
    for (int32_t k = 0; k < nseg; k++) {
      size_t len = (size_t)(k == nseg - 1 ? last : stride);
      uint8_t *msg = base + (size_t)k * (size_t)stride;
      if (cnt >= 2 * (k + 1) || (gso == 0 && cnt >= 2)) {
        v[2 * k].iov_base = msg, v[2 * k].iov_len = WEFT_WG_HEADER_LEN;
        v[2 * k + 1].iov_base = msg + WEFT_WG_HEADER_LEN, v[2 * k + 1].iov_len = len - WEFT_WG_HEADER_LEN;
      } else {
        v[0].iov_base = msg, v[0].iov_len = len;
      }
    }
    if (gso == 0 && cnt > 2) t->msg_iovcnt[m] = 2; /* one datagram: the rest of its iovecs are gone */
    if (gso > 0) t->msg_gso[m] = stride;
    used = (end + 15) & ~(size_t)15;
  }
}

int32_t weft_queue_out_send(weft_queue *q, weft_err *e) {
  return weft_udp_send_train(q->sock_fd, q->sock6_fd, &q->train, q->peers, q->peer_count, &q->udp_segment, q->out_peer,
                             q->counters, e);
}

/* The error in scratch (n bytes) back into TUN, with an empty virtio header on the offload tier. */
static int tun_write_icmp(weft_queue *q, int32_t n) {
  int ok;
  if (q->vnet) {
    uint8_t vh[WEFT_VNET_HDR_LEN] = {0};
    struct iovec iov[2] = {{vh, sizeof vh}, {q->scratch, (size_t)n}};
    ok = weft_tun_writev(q->tun_fd, iov, 2, WEFT_VNET_HDR_LEN, q->counters);
  } else {
    ok = weft_tun_write_one(q->tun_fd, q->scratch, n, q->counters);
  }
  if (ok) q->counters[WEFT_C_ICMP_SENT] += 1;
  return ok;
}

int weft_queue_out_icmp(weft_queue *q, int32_t slot, uint8_t type, uint8_t code, uint32_t from) {
  if (slot < 0 || slot >= q->out_slots) return 0;
  int32_t len = q->out_len[slot];
  if (len <= 0 || len > q->slot_size - WEFT_HEADROOM) return 0;
  const uint8_t *pkt = q->out_slab + (size_t)slot * q->slot_size + WEFT_HEADROOM;
  int32_t n = weft_icmp_error_build(pkt, len, type, code, from, q->scratch, (int32_t)sizeof q->scratch);
  return n > 0 ? tun_write_icmp(q, n) : 0;
}

int weft_queue_out_icmp6(weft_queue *q, int32_t slot, uint8_t type, uint8_t code, uint32_t param,
                         const uint8_t from[16]) {
  if (slot < 0 || slot >= q->out_slots) return 0;
  int32_t len = q->out_len[slot];
  if (len <= 0 || len > q->slot_size - WEFT_HEADROOM) return 0;
  const uint8_t *pkt = q->out_slab + (size_t)slot * q->slot_size + WEFT_HEADROOM;
  int32_t n = weft_icmp6_error_build(pkt, len, type, code, param, from, q->scratch, (int32_t)sizeof q->scratch);
  return n > 0 ? tun_write_icmp(q, n) : 0;
}

/* ---- in ---- */

/* Both sockets into one batch: the IPv6 one (when open) gets the slots the IPv4 one left, and goes first every other
 * call, so neither starves the other under load. */
int32_t weft_queue_in_recv(weft_queue *q, weft_err *e) {
  if (q->sock6_fd < 0)
    return weft_udp_recv(q->sock_fd, q->in_slab, q->slot_size, q->in_len, q->in_addr, NULL, q->in_port, q->in_gso,
                         q->in_slots, q->counters, e);
  int fds[2] = {q->sock_fd, q->sock6_fd};
  int first = q->recv_turn;
  q->recv_turn ^= 1;
  int32_t n = 0;
  for (int k = 0; k < 2 && n < q->in_slots; k++) {
    int fd = fds[first ^ k];
    size_t at = (size_t)n * (size_t)q->slot_size;
    int32_t r = weft_udp_recv(fd, q->in_slab + at, q->slot_size, q->in_len + n, q->in_addr + n,
                              q->in_addr6 ? q->in_addr6 + (size_t)n * 16 : NULL, q->in_port ? q->in_port + n : NULL,
                              q->in_gso ? q->in_gso + n : NULL, q->in_slots - n, q->counters, e);
    if (r < 0) return n > 0 ? n : -1;
    /* addr[] of an IPv6 datagram holds its slot: relative to this call's first slot, made absolute */
    if (fd == q->sock6_fd)
      for (int32_t j = n; j < n + r; j++) q->in_addr[j] += (uint32_t)n;
    n += r;
  }
  return n;
}

int32_t weft_queue_in_decap(weft_queue *q, int32_t n) {
  if (n > q->in_slots) n = q->in_slots;
  if (!q->ops) return 0; /* a TypeScript encap decodes and fills the segments itself */
  return weft_decap_split(q->ops, q->in_slab, q->slot_size, q->in_len, q->in_gso, q->in_addr, n, q->vni, q->seg_off,
                          q->seg_len, q->seg_addr, q->seg_max, q->counters);
}

int32_t weft_queue_in_write(weft_queue *q, int32_t segs) {
  size_t slab_len = (size_t)q->in_slots * (size_t)q->slot_size;
  if (segs > q->seg_max) segs = q->seg_max;
  if (q->vnet)
    return weft_gro_run(q->in_slab, slab_len, q->seg_off, q->seg_len, segs, q->gro, q->gro ? q->mtu : 0,
                        weft_tun_sink, &q->tun_fd, q->counters);
  return weft_tun_write_batch(q->tun_fd, q->in_slab, slab_len, q->seg_off, q->seg_len, segs, q->mtu, q->counters);
}
