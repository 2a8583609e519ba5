/*
 * Geneve, RFC 8926 section 3.4: Ver(2) Opt Len(6) | O C Rsvd(6) | Protocol Type(16) |
 * VNI(24) Rsvd(8), then Opt Len * 4 bytes of options. We send no options and the IP
 * packet directly (protocol 0x0800 for IPv4, 0x86DD for IPv6, by its version nibble).
 * Received options are skipped by their length; a packet with the C bit and options is
 * dropped because we process no option (section 3.5).
 * O marks a control message that must not be forwarded (section 3.4).
 */
#include "weft.h"

#define GENEVE_HLEN 8
#define GENEVE_FLAG_O 0x80
#define GENEVE_FLAG_C 0x40

static void geneve_encode(uint8_t *h, const uint8_t *peer_rec, const uint8_t *local_mac, uint32_t vni) {
  (void)peer_rec, (void)local_mac;
  h[0] = 0; /* version 0, no options */
  h[1] = 0; /* O = 0, C = 0 */
  weft_wr16(h + 2, weft_ip_ethertype(h + GENEVE_HLEN));
  weft_wr32(h + 4, vni << 8);
}

static int32_t geneve_decode(const uint8_t *d, int32_t len, uint32_t vni) {
  if (len < GENEVE_HLEN) return WEFT_VERDICT(WEFT_DROP_MALFORMED);
  if ((d[0] >> 6) != 0) return WEFT_VERDICT(WEFT_DROP_BAD_VERSION);
  int32_t opt_len = (d[0] & 0x3f) * 4;
  int32_t hlen = GENEVE_HLEN + opt_len;
  if (hlen > len) return WEFT_VERDICT(WEFT_DROP_MALFORMED);
  if (d[1] & GENEVE_FLAG_O) return WEFT_VERDICT(WEFT_DROP_BAD_FLAGS);
  if ((d[1] & GENEVE_FLAG_C) && opt_len > 0) return WEFT_VERDICT(WEFT_DROP_GENEVE_CRITICAL);
  uint16_t proto = weft_rd16(d + 2);
  if (proto != 0x0800 && proto != 0x86DD) return WEFT_VERDICT(WEFT_DROP_BAD_ETHERTYPE);
  if (len > hlen && weft_ip_ethertype(d + hlen) != proto) return WEFT_VERDICT(WEFT_DROP_BAD_ETHERTYPE);
  if ((weft_rd32(d + 4) >> 8) != vni) return WEFT_VERDICT(WEFT_DROP_BAD_VNI);
  return hlen;
}

const weft_encap_ops weft_encap_geneve = {"geneve", GENEVE_HLEN, geneve_encode, geneve_decode};
