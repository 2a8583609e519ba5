// The peer overlays the bench compares weft with, each measured by the same tests as weft's paths:
// install when missing -> temp folder -> the peer's own setup (wireguard-go.ts, nebula.ts, tinc.ts) -> one pod per
// host on 10.5.N.0/24 with the peer's MTU. Every cleanup (temp folder, wireguard-go's socket) is registered before
// the thing it removes exists, runs after the testbed has stopped the peer's processes, and also at process exit.
import type { Cluster } from '../../../testbed/cluster.js';
import type { Pod } from '../../../testbed/hosts.js';
import {
  ensurePeerInstalled,
  onCleanup,
  peerTempDir,
  podGateway,
  type PeerBuilt,
  type PeerContext,
  type PeerName,
} from './common.js';
import { buildNebula } from './nebula.js';
import { buildTinc } from './tinc.js';
import { buildWireguard } from './wireguard-go.js';

export { PEER_NAMES, isPeerName, ensurePeerInstalled, peerVersion, type PeerName } from './common.js';

const BUILDERS: Record<PeerName, (ctx: PeerContext) => Promise<PeerBuilt>> = {
  'wireguard-go': buildWireguard,
  nebula: buildNebula,
  tinc: buildTinc,
};

export interface PeerPath extends PeerBuilt {
  pods: [Pod, Pod];
  /** Version string of the peer's packages ("wireguard-go 0.0.20220316-1+b4, wireguard-tools ..."). */
  version: string;
}

/**
 * Installs (when missing) and starts `peer` on the cluster's hosts 1 and 2, with a pod on each. `cleanups` receives
 * the synchronous cleanups to run, last first, after cluster.destroy(), also when this throws.
 */
export async function buildPeer(peer: PeerName, cluster: Cluster, cleanups: (() => void)[]): Promise<PeerPath> {
  const version = await ensurePeerInstalled(peer);
  const tb = cluster.tb;
  const tmp = peerTempDir(peer, tb.id);
  cleanups.push(tmp.cleanup);
  const hosts = [tb.host(1), tb.host(2)] as const;
  const ctx: PeerContext = { tb, hosts, dir: tmp.dir, addCleanup: (fn) => cleanups.push(onCleanup(fn)) };
  const built = await BUILDERS[peer](ctx);
  const pods: Pod[] = [];
  for (const h of hosts) pods.push(await tb.addPod(h, podGateway(h.n), { mtu: built.mtu }));
  return { ...built, pods: [pods[0]!, pods[1]!], version };
}
