// The VtepMAC a node publishes in its VXLAN lease. Both VXLAN datapaths use it: the userspace one as the inner
// Ethernet source, the kernel one as the flannel.<VNI> device's address. Deriving it from what identifies the node
// (PublicIP, VNI) keeps it the same across restarts without state on disk, so peers' neighbour and FDB entries for
// us stay valid while we are down.
import { createHash } from 'node:crypto';

/** A locally administered unicast MAC (bit 1 of the first byte set, bit 0 clear), stable for (publicIp, vni). */
export function stableMac(publicIp: string, vni: number): Buffer {
  const mac = createHash('sha256').update(`weft ${publicIp} ${vni}`).digest().subarray(0, 6);
  mac[0] = ((mac[0] as number) & 0xfe) | 0x02;
  return Buffer.from(mac);
}
