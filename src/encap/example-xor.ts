// An example of an encap written in TypeScript alone, loaded at run time with `weft daemon --encap-module
// dist/src/encap/example-xor.js` and chosen with Backend.Type "xor-example". A toy, not a protocol: no RFC, no security
// (XOR with a fixed byte hides nothing). It shows the whole contract of src/encap/encap.ts in one file:
//
//   UDP payload = magic "WXR1" (4 bytes) | inner IPv4 packet with every byte XORed with 0x5a
//
// To write your own: copy this file, pick a new `name`/`backendType` and port, keep `nativeId: null` (there is no C
// twin, so the batch and dgram tiers call encode/decode once per packet), keep `headerLength` within the forwarder's
// 64 bytes of headroom, and make `decode` check every length it reads (the bytes come from the network). Export the
// object as the module's default export; build it to JavaScript (ES module) and give its path to --encap-module on
// every host. Other hosts' leases must carry the same BackendType, or they are ignored with a log line.
import { DecodeVerdict, type Encap, NO_MAC, OUTER_IP_UDP } from './encap.js';
import { innerIPLength } from './ipv4.js';

const MAGIC = Buffer.from('WXR1', 'latin1');
const HDR = MAGIC.length;
const KEY = 0x5a;

function xorInPlace(buf: Buffer, off: number, len: number): void {
  for (let i = off, end = off + len; i < end; i++) buf[i] = (buf[i] as number) ^ KEY;
}

const xorExampleEncap: Encap = {
  name: 'xor-example',
  backendType: 'xor-example',
  defaultPort: 8299,
  headerLength: HDR,
  mtuOverhead: OUTER_IP_UDP + HDR,
  nativeId: null,
  leaseData: () => ({ Magic: MAGIC.toString('latin1') }),
  parsePeer(data) {
    const magic = typeof data === 'object' && data !== null ? (data as Record<string, unknown>)['Magic'] : undefined;
    if (magic !== MAGIC.toString('latin1')) return `Magic ${JSON.stringify(magic)} is not ${MAGIC.toString('latin1')}`;
    return { mac: NO_MAC, vni: 0 };
  },
  encode(buf, pktOff, pktLen) {
    xorInPlace(buf, pktOff, pktLen);
    const h = pktOff - HDR;
    MAGIC.copy(buf, h);
    return h;
  },
  decode(buf, off, len, _local, out) {
    if (len < HDR) return DecodeVerdict.truncated;
    if (buf.compare(MAGIC, 0, HDR, off, off + HDR) !== 0) return DecodeVerdict.badFlags;
    const inner = off + HDR;
    xorInPlace(buf, inner, len - HDR);
    const n = innerIPLength(buf, inner, len - HDR);
    if (n < 0) return n;
    out[0] = n;
    return inner;
  },
};

export default xorExampleEncap;
