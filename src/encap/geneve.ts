// Geneve, RFC 8926: 8-byte base header (version 0, option length in 4-byte words, O and C bits, protocol type,
// 24-bit VNI) followed by options, then the inner packet. weft carries IP directly (protocol 0x0800 or 0x86DD by
// the packet's version, no inner Ethernet). Options are skipped by their length; a packet marked as carrying a
// critical option (C bit) is dropped, since weft understands no options (RFC 8926 3.4: a tunnel endpoint must
// drop critical options it does not know).
import { DecodeVerdict, type Encap, NO_MAC, OUTER_IP_UDP } from './encap.js';
import { ethertypeOf, innerIPLength } from './ipv4.js';

const GENEVE_HDR = 8;

export const geneveEncap: Encap = {
  name: 'geneve',
  backendType: 'geneve',
  defaultPort: 6081,
  headerLength: GENEVE_HDR,
  mtuOverhead: OUTER_IP_UDP + GENEVE_HDR,
  nativeId: 2,
  leaseData: (local) => ({ VNI: local.vni }),
  parsePeer(data, local) {
    const vni = typeof data === 'object' && data !== null ? (data as Record<string, unknown>)['VNI'] : undefined;
    if (vni !== undefined && vni !== local.vni) return `VNI ${JSON.stringify(vni)} differs from ours (${local.vni})`;
    return { mac: NO_MAC, vni: local.vni };
  },
  encode(buf, pktOff, _pktLen, _peer, local) {
    const h = pktOff - GENEVE_HDR;
    buf[h] = 0; // version 0, no options
    buf[h + 1] = 0; // O=0, C=0
    buf.writeUInt16BE(ethertypeOf(buf, pktOff), h + 2);
    buf.writeUIntBE(local.vni, h + 4, 3);
    buf[h + 7] = 0;
    return h;
  },
  decode(buf, off, len, local, out) {
    if (len < GENEVE_HDR) return DecodeVerdict.truncated;
    const b0 = buf[off] as number;
    if (b0 >> 6 !== 0) return DecodeVerdict.badVersion;
    const optLen = (b0 & 0x3f) * 4;
    if (GENEVE_HDR + optLen > len) return DecodeVerdict.truncated;
    if (((buf[off + 1] as number) & 0x40) !== 0 && optLen > 0) return DecodeVerdict.geneveCritical;
    const inner = off + GENEVE_HDR + optLen;
    const proto = buf.readUInt16BE(off + 2);
    if ((proto !== 0x0800 && proto !== 0x86dd) || (len > inner - off && ethertypeOf(buf, inner) !== proto)) {
      return DecodeVerdict.badEthertype;
    }
    if (buf.readUIntBE(off + 4, 3) !== local.vni) return DecodeVerdict.badVni;
    const n = innerIPLength(buf, inner, len - GENEVE_HDR - optLen);
    if (n < 0) return n;
    out[0] = n;
    return inner;
  },
};
