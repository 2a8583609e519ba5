/*
 * The encap step of both directions. Outbound, the header is written in place in the room in front of the inner
 * packet (the slot's headroom, or a segment's room in the header area): the payload is never copied. Inbound,
 * decap only finds the inner packet: seg_off/seg_len frame it inside the received buffer.
 */
#include "weft.h"

const weft_encap_ops *weft_encap_get(int encap) {
  switch (encap) {
    case WEFT_ENCAP_UDP: return &weft_encap_udp;
    case WEFT_ENCAP_VXLAN: return &weft_encap_vxlan;
    case WEFT_ENCAP_GENEVE: return &weft_encap_geneve;
    default: return NULL;
  }
}

void weft_encap_one(const weft_encap_ops *ops, uint8_t *pkt, const uint8_t *rec, const uint8_t *local_mac,
                    uint32_t vni) {
  uint32_t rec_vni = weft_rd32(rec + WEFT_PEER_VNI);
  ops->encode(pkt - ops->hlen, rec, local_mac, rec_vni ? rec_vni : vni);
}

int32_t weft_decap_one(const weft_encap_ops *ops, const uint8_t *d, int32_t len, uint32_t vni, int32_t *inner_len) {
  int32_t v = ops->decode(d, len, vni);
  int32_t inner = v >= 0 ? weft_ip_inner_len(d + v, len - v) : -1;
  if (v >= 0 && inner < 0) v = WEFT_VERDICT(WEFT_DROP_MALFORMED);
  if (v >= 0) *inner_len = inner;
  return v;
}

int32_t weft_decap_split(const weft_encap_ops *ops, const uint8_t *slab, int32_t slot_size, const int32_t *len,
                         const int32_t *gso, const uint32_t *addr, int32_t count, uint32_t vni, int32_t *seg_off,
                         int32_t *seg_len, uint32_t *seg_addr, int32_t seg_max, double *counters) {
  int32_t ns = 0;
  for (int32_t i = 0; i < count; i++) {
    if (len[i] < 0) continue; /* already judged (e.g. truncated) */
    int32_t total = len[i] > slot_size ? slot_size : len[i]; /* JS may have written it: stay inside the slot */
    int32_t g = gso && gso[i] > 0 && gso[i] < total ? gso[i] : total;
    if (g <= 0) {
      weft_drop(counters, WEFT_DROP_MALFORMED); /* empty datagram */
      continue;
    }
    for (int32_t p = 0; p < total; p += g) {
      int32_t sl = total - p < g ? total - p : g;
      const uint8_t *d = slab + (size_t)i * slot_size + p;
      if (g < total) counters[WEFT_C_UDP_GRO_DATAGRAMS] += 1;
      int32_t inner = 0;
      int32_t v = weft_decap_one(ops, d, sl, vni, &inner);
      if (v >= 0 && ns >= seg_max) v = WEFT_VERDICT(WEFT_DROP_NO_SLOT);
      if (v < 0) {
        weft_drop(counters, -v - 1);
        continue;
      }
      seg_off[ns] = (int32_t)((size_t)i * slot_size + p + v);
      seg_len[ns] = inner;
      seg_addr[ns] = addr[i];
      ns++;
    }
  }
  return ns;
}
