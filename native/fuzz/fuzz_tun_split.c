/*
 * libFuzzer harness: weft_tun_write_mtu, the inbound write to a TUN without the virtio header, which cuts a packet
 * longer than the TUN MTU into the TCP segments tcp_gso_segment would have made (tun_write_tcp_segments in tun.c).
 * The packet is the inner packet of a peer's datagram after decap: network input on the batch and dgram tiers.
 *
 * Input: bytes 0..1 the TUN MTU (big-endian, clamped to 68..65535), byte 2 fix-ups that keep mutations plausible
 * (bit 0 set the IP total length to the packet's length; bit 1 set the TCP checksum right over the whole packet),
 * then the packet, in a heap block of exactly its length so ASan sees any stray read. The "TUN" is one end of a
 * SOCK_SEQPACKET socketpair: each write is one message, read back from the other end.
 *
 * Contract checked: the packet is read only; a negative verdict is a known drop reason counted once, and a too_big
 * or bad_csum drop wrote nothing; a packet within the MTU is written once as it is; a longer one comes out as
 * segments no longer than the MTU, each an IPv4 (IPv6) packet of exactly its length with verifying IP and TCP
 * checksums, the original's addresses, ports, ack, window and options, IP IDs (IPv4) and sequence numbers counted
 * up, FIN/PSH on the last segment only and CWR on the first only, and their payloads concatenated equal the
 * original's payload; and only an original whose TCP checksum verified was cut.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../weft.h"

#define HDR 3

static int tun[2] = {-1, -1};
static uint8_t msg[65536 + 1];

static int csum_ok(const uint8_t *p, size_t n, uint64_t init) {
  return weft_csum_fold(weft_csum_add(init, p, n)) == 0xffff;
}

static int is_v6(const uint8_t *p, int32_t len) { return len > 0 && (p[0] >> 4) == 6; }

/* The TCP pseudo-header sum of an IPv4 or IPv6 packet (RFC 793, RFC 8200 8.1). */
static uint64_t pseudo(const uint8_t *p, int32_t len, int32_t ihl) {
  if (is_v6(p, len)) return weft_csum_add(0, p + 8, 32) + 6 + (uint32_t)(len - ihl);
  return weft_csum_add(0, p + 12, 8) + 6 + (uint32_t)(len - ihl);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* weft_tun_write_batch never writes an empty packet. */
  if (size <= HDR || size - HDR > WEFT_MAX_DATAGRAM) return 0;
  if (tun[0] < 0) {
    /* Room for the most a call can write: 64 KiB of payload plus WEFT_GSO_MAX_SEGS headers and their overhead. */
    int bytes = 4 << 20;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, tun) < 0) abort();
    setsockopt(tun[0], SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
    setsockopt(tun[1], SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
  }
  int32_t mtu = weft_rd16(data);
  if (mtu < 68) mtu = 68;
  uint8_t fix = data[2];
  int32_t len = (int32_t)(size - HDR);
  uint8_t *pkt = malloc((size_t)len), *orig = malloc((size_t)len);
  if (!pkt || !orig) abort();
  memcpy(pkt, data + HDR, (size_t)len);
  int v6 = is_v6(pkt, len);
  int32_t ihl = v6 ? 40 : (pkt[0] & 0x0f) * 4;
  if ((fix & 1) && !v6 && len >= 4 && len <= 65535) weft_wr16(pkt + 2, (uint16_t)len);
  if ((fix & 1) && v6 && len >= 40 && len - 40 <= 65535) weft_wr16(pkt + 4, (uint16_t)(len - 40));
  if ((fix & 2) && len >= 20 && ihl >= 20 && len >= ihl + 20) {
    pkt[ihl + 16] = pkt[ihl + 17] = 0;
    weft_wr16(pkt + ihl + 16, (uint16_t)~weft_csum_fold(weft_csum_add(pseudo(pkt, len, ihl), pkt + ihl,
                                                                        (size_t)(len - ihl))));
  }
  memcpy(orig, pkt, (size_t)len);
  double counters[WEFT_COUNTER_COUNT] = {0};

  int32_t r = weft_tun_write_mtu(tun[0], pkt, len, mtu, counters);

  if (memcmp(pkt, orig, (size_t)len) != 0) abort();
  int32_t n = 0, seen = 0;
  ssize_t got;
  const uint8_t *tcp = orig + ihl;
  int32_t thl = len > ihl + 12 ? (tcp[12] >> 4) * 4 : 0, hdr = ihl + thl;
  while ((got = recv(tun[1], msg, sizeof msg, 0)) >= 0) {
    const uint8_t *o = msg;
    int32_t sl = (int32_t)got;
    if (r <= 0 && counters[WEFT_C_DROP_BASE + WEFT_DROP_TUN_WRITE_ERROR] == 0) abort(); /* written, yet dropped */
    if (len <= mtu) {
      /* Within the MTU: written once, as it is. */
      if (n++ != 0 || sl != len || memcmp(o, orig, (size_t)len) != 0) abort();
      continue;
    }
    if (v6) {
      if (sl > mtu || !weft_ipv6_valid_exact(o, sl) || o[6] != 6) abort();
      if (!csum_ok(o + ihl, (size_t)(sl - ihl), pseudo(o, sl, ihl))) abort();
      if (memcmp(o, orig, 4) != 0 || memcmp(o + 6, orig + 6, 34) != 0) abort();
    } else {
      if (sl > mtu || !weft_ipv4_valid_exact(o, sl) || (o[0] & 0x0f) * 4 != ihl || o[9] != 6) abort();
      if (!csum_ok(o, (size_t)ihl, 0) || !csum_ok(o + ihl, (size_t)(sl - ihl), pseudo(o, sl, ihl))) abort();
      if (o[1] != orig[1] || weft_rd16(o + 4) != (uint16_t)(weft_rd16(orig + 4) + n) || o[8] != orig[8] ||
          memcmp(o + 6, orig + 6, 2) != 0 || memcmp(o + 12, orig + 12, (size_t)(ihl - 12)) != 0)
        abort();
    }
    const uint8_t *l4 = o + ihl;
    if ((l4[12] >> 4) * 4 != thl || memcmp(l4, tcp, 4) != 0 || memcmp(l4 + 8, tcp + 8, 4) != 0 ||
        memcmp(l4 + 14, tcp + 14, 2) != 0 || memcmp(l4 + 18, tcp + 18, (size_t)(thl - 18)) != 0)
      abort();
    if (weft_rd32(l4 + 4) != weft_rd32(tcp + 4) + (uint32_t)seen) abort();
    int32_t chunk = sl - hdr;
    if (chunk < 1 || seen + chunk > len - hdr || memcmp(o + hdr, orig + hdr + seen, (size_t)chunk) != 0) abort();
    seen += chunk;
    n++;
    /* The flags of segment n-1; which one is the last shows once all are read. */
    uint8_t f = tcp[13] & (uint8_t)~(n > 1 ? 0x80 : 0);
    if ((l4[13] & (uint8_t)~0x09) != (f & (uint8_t)~0x09)) abort();
    if (seen < len - hdr && (l4[13] & 0x09)) abort(); /* FIN, PSH on the last only */
    if (seen == len - hdr && (l4[13] & 0x09) != (tcp[13] & 0x09)) abort();
  }

  int drops = 0;
  for (int i = 0; i < WEFT_DROP_COUNT; i++) drops += (int)counters[WEFT_C_DROP_BASE + i];
  if (r == 1) {
    if (drops != 0 || n == 0) abort();
    if (len > mtu) {
      /* Cut: only a TCP packet whose checksum verified, wholly and in segments of the MTU but the last. */
      if (seen != len - hdr || !csum_ok(orig + ihl, (size_t)(len - ihl), pseudo(orig, len, ihl))) abort();
      if (n != (seen + (mtu - hdr) - 1) / (mtu - hdr)) abort();
    }
  } else {
    if (r >= 0 || -r - 1 >= WEFT_DROP_COUNT || drops != 1 || counters[WEFT_C_DROP_BASE + (-r - 1)] != 1) abort();
    if ((-r - 1 == WEFT_DROP_TOO_BIG || -r - 1 == WEFT_DROP_BAD_CSUM) && n != 0) abort();
  }
  free(pkt);
  free(orig);
  return 0;
}
