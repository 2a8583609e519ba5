/*
 * flannel's UDP encap: the raw inner IP packet is the whole UDP payload,
 * no header of its own (flannel backend/udp, proxy.c); its version nibble tells IPv4 from IPv6.
 */
#include "weft.h"

static void udp_encode(uint8_t *hdr, const uint8_t *peer_rec, const uint8_t *local_mac, uint32_t vni) {
  (void)hdr, (void)peer_rec, (void)local_mac, (void)vni;
}

static int32_t udp_decode(const uint8_t *d, int32_t len, uint32_t vni) {
  (void)d, (void)len, (void)vni;
  return 0;
}

const weft_encap_ops weft_encap_udp = {"udp", 0, udp_encode, udp_decode};
