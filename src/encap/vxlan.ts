// VXLAN, RFC 7348: 8-byte header (flags with the I bit, 24-bit VNI) then an inner Ethernet frame. Byte-compatible with
// Linux's vxlan device as flannel sets it up (port 8472, VNI 1, learning off): the inner Ethernet destination is the
// peer's VtepMAC from its lease, so a kernel peer accepts the frame without ARP.
import { DecodeVerdict, type Encap, OUTER_IP_UDP } from './encap.js';
import { ethertypeOf, innerIPLength } from './ipv4.js';

const VXLAN_HDR = 8;
const ETH_HDR = 14;
const FLAG_I = 0x08;

export function parseMac(s: unknown): Buffer | null {
  if (typeof s !== 'string' || !/^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/.test(s)) return null;
  return Buffer.from(s.split(':').map((h) => parseInt(h, 16)));
}

export function formatMac(b: Buffer): string {
  return [...b.subarray(0, 6)].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

export const vxlanEncap: Encap = {
  name: 'vxlan',
  backendType: 'vxlan',
  defaultPort: 8472,
  headerLength: VXLAN_HDR + ETH_HDR,
  mtuOverhead: OUTER_IP_UDP + VXLAN_HDR + ETH_HDR,
  nativeId: 1,
  // flanneld writes {"VNI":1,"VtepMAC":"aa:bb:..."}: same keys, same order.
  leaseData: (local) => ({ VNI: local.vni, VtepMAC: formatMac(local.mac) }),
  parsePeer(data, local) {
    if (typeof data !== 'object' || data === null) return 'BackendData missing';
    const d = data as Record<string, unknown>;
    const mac = parseMac(d['VtepMAC']);
    if (!mac) return `VtepMAC ${JSON.stringify(d['VtepMAC'])} is not a MAC address`;
    const vni = d['VNI'] === undefined ? 1 : d['VNI'];
    if (vni !== local.vni) return `VNI ${JSON.stringify(vni)} differs from ours (${local.vni})`;
    return { mac, vni: local.vni };
  },
  encode(buf, pktOff, _pktLen, peer, local) {
    const h = pktOff - VXLAN_HDR - ETH_HDR;
    buf[h] = FLAG_I;
    buf[h + 1] = 0;
    buf[h + 2] = 0;
    buf[h + 3] = 0;
    buf.writeUIntBE(local.vni, h + 4, 3);
    buf[h + 7] = 0;
    peer.mac.copy(buf, h + 8, 0, 6);
    local.mac.copy(buf, h + 14, 0, 6);
    buf.writeUInt16BE(ethertypeOf(buf, pktOff), h + 20); // IPv6 inside: 0x86DD, as flannel-v6.<VNI> sends
    return h;
  },
  decode(buf, off, len, local, out) {
    if (len < VXLAN_HDR + ETH_HDR) return DecodeVerdict.truncated;
    // RFC 7348 5: receivers ignore the reserved bits; only the I flag must be set.
    if (((buf[off] as number) & FLAG_I) === 0) return DecodeVerdict.badFlags;
    if (buf.readUIntBE(off + 4, 3) !== local.vni) return DecodeVerdict.badVni;
    const inner = off + VXLAN_HDR + ETH_HDR;
    const et = buf.readUInt16BE(off + 20);
    if ((et !== 0x0800 && et !== 0x86dd) || (len > inner - off && ethertypeOf(buf, inner) !== et)) {
      return DecodeVerdict.badEthertype;
    }
    const n = innerIPLength(buf, inner, len - VXLAN_HDR - ETH_HDR);
    if (n < 0) return n;
    out[0] = n;
    return inner;
  },
};
