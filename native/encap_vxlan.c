/*
 * VXLAN, RFC 7348 section 5: 8-byte header (flags with I = 0x08, 24 reserved bits,
 * 24-bit VNI, 8 reserved bits) followed by the inner Ethernet frame. Receivers must
 * ignore the reserved bits, so only a missing I flag is a drop. The inner frame's EtherType follows the inner
 * packet: IPv4 0x0800, IPv6 0x86DD (what flannel-v6.<VNI>, a VXLAN device with IPv6 inside, sends).
 */
#include "weft.h"

#include <string.h>

#define VXLAN_FLAG_I 0x08
#define VXLAN_HLEN (8 + 14)

static void vxlan_encode(uint8_t *h, const uint8_t *peer_rec, const uint8_t *local_mac, uint32_t vni) {
  h[0] = VXLAN_FLAG_I;
  h[1] = h[2] = h[3] = 0;
  weft_wr32(h + 4, vni << 8);
  memcpy(h + 8, peer_rec + WEFT_PEER_MAC, 6); /* dst: the peer's VtepMAC, as flannel's neighbour entry */
  memcpy(h + 14, local_mac, 6);
  weft_wr16(h + 20, weft_ip_ethertype(h + VXLAN_HLEN));
}

static int32_t vxlan_decode(const uint8_t *d, int32_t len, uint32_t vni) {
  if (len < VXLAN_HLEN) return WEFT_VERDICT(WEFT_DROP_MALFORMED);
  if (!(d[0] & VXLAN_FLAG_I)) return WEFT_VERDICT(WEFT_DROP_BAD_FLAGS);
  if ((weft_rd32(d + 4) >> 8) != vni) return WEFT_VERDICT(WEFT_DROP_BAD_VNI);
  /* No VLAN tags: flannel's vxlan devices send untagged IP only; the EtherType must name the packet inside. */
  uint16_t et = weft_rd16(d + 20);
  if (et != 0x0800 && et != 0x86DD) return WEFT_VERDICT(WEFT_DROP_BAD_ETHERTYPE);
  if (len > VXLAN_HLEN && weft_ip_ethertype(d + VXLAN_HLEN) != et) return WEFT_VERDICT(WEFT_DROP_BAD_ETHERTYPE);
  return VXLAN_HLEN;
}

const weft_encap_ops weft_encap_vxlan = {"vxlan", VXLAN_HLEN, vxlan_encode, vxlan_decode};
