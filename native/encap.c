/*
 * The per-batch encap/decap loops. Headers are written in place in the headroom in
 * front of each packet and decap only moves off/len: the payload is never copied.
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

void weft_encap_batch(const weft_encap_ops *ops, uint8_t *slab, int32_t slot_size, int32_t headroom,
                      int32_t *len, int32_t *off, int32_t *peer, int32_t count, const uint8_t *peer_table,
                      int32_t peer_count, const uint8_t *local_mac, uint32_t vni, double *counters) {
  for (int32_t i = 0; i < count; i++) {
    if (peer[i] < 0) continue; /* JS already decided: no route, etc. */
    if (peer[i] >= peer_count) { /* a stale index is a missing route, not a crash */
      peer[i] = WEFT_VERDICT(WEFT_DROP_NO_ROUTE);
      weft_drop(counters, WEFT_DROP_NO_ROUTE);
      continue;
    }
    int32_t at = i * slot_size + headroom;
    if (len[i] > slot_size - headroom) len[i] = 0; /* JS wrote it: fails the check below */
    uint8_t *p = slab + at;
    if (!weft_ipv4_valid_exact(p, len[i])) {
      peer[i] = WEFT_VERDICT(WEFT_DROP_MALFORMED);
      weft_drop(counters, WEFT_DROP_MALFORMED);
      continue;
    }
    if (!weft_ipv4_ttl_decrement(p)) {
      peer[i] = WEFT_VERDICT(WEFT_DROP_TTL_EXCEEDED);
      weft_drop(counters, WEFT_DROP_TTL_EXCEEDED);
      continue;
    }
    const uint8_t *rec = peer_table + (size_t)peer[i] * WEFT_PEER_RECORD_SIZE;
    uint32_t rec_vni = weft_rd32(rec + WEFT_PEER_VNI);
    ops->encode(p - ops->hlen, rec, local_mac, rec_vni ? rec_vni : vni);
    off[i] = at - ops->hlen;
    len[i] += ops->hlen;
  }
}

void weft_decap_batch(const weft_encap_ops *ops, uint8_t *slab, int32_t slot_size, int32_t *len, int32_t *off,
                      int32_t count, uint32_t vni, double *counters) {
  for (int32_t i = 0; i < count; i++) {
    if (len[i] < 0) continue; /* already judged (e.g. truncated) */
    if (len[i] > slot_size) len[i] = slot_size; /* JS wrote it: stay inside the slot */
    uint8_t *d = slab + (size_t)i * slot_size;
    int32_t v = ops->decode(d, len[i], vni);
    int32_t inner = v >= 0 ? weft_ipv4_inner_len(d + v, len[i] - v) : -1;
    if (v >= 0 && inner < 0) v = WEFT_VERDICT(WEFT_DROP_MALFORMED);
    if (v < 0) {
      len[i] = v;
      weft_drop(counters, -v - 1);
      continue;
    }
    weft_ipv4_complete_l4_csum(d + v, inner);
    off[i] = i * slot_size + v;
    len[i] = inner;
  }
}
