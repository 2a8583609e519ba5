// What every tier does the same way around its PathState: counters, per-peer traffic, peer-set swaps.
import type { PeerTraffic } from './datapath.js';
import type { PathState } from './path-state.js';
import type { Peer } from './peers.js';

export abstract class TierBase {
  protected constructor(protected readonly path: PathState) {}

  get counters(): Float64Array {
    return this.path.counters;
  }

  peerTraffic(): PeerTraffic[] {
    return this.path.peerTraffic();
  }

  setPeers(peers: readonly Peer[]): void {
    this.path.setPeers(peers);
  }
}
