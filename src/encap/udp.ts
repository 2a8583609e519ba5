// flannel's UDP encapsulation: the inner IP packet is the whole UDP payload, no header of its own (flannel
// backend/udp, port 8285). Lease: BackendType "udp", BackendData null, as flanneld writes it.
import { type Encap, NO_MAC, OUTER_IP_UDP } from './encap.js';
import { innerIPLength } from './ipv4.js';

export const udpEncap: Encap = {
  name: 'udp',
  backendType: 'udp',
  defaultPort: 8285,
  headerLength: 0,
  mtuOverhead: OUTER_IP_UDP,
  nativeId: 0,
  leaseData: () => null,
  parsePeer: () => ({ mac: NO_MAC, vni: 0 }),
  encode: (_buf, pktOff) => pktOff,
  decode(buf, off, len, _local, out) {
    const n = innerIPLength(buf, off, len);
    if (n < 0) return n;
    out[0] = n;
    return off;
  },
};
