// Opens the tier the daemon was asked for.
import { BatchTier } from './batch-tier.js';
import type { Datapath, DatapathOptions, Tier } from './datapath.js';
import { DgramTier } from './dgram-tier.js';
import { OffloadTier } from './offload-tier.js';

export function openDatapath(tier: Tier, opts: DatapathOptions): Datapath {
  switch (tier) {
    case 'dgram':
      return new DgramTier(opts);
    case 'batch':
      return new BatchTier(opts);
    case 'offload':
      return new OffloadTier(opts);
  }
}

export type { Datapath, DatapathOptions, Tier } from './datapath.js';
export type { Peer } from './peers.js';
export { tunFlagsFor } from './offload-tier.js';
export { disabledOffloads } from './offload-config.js';
