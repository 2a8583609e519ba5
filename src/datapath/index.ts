// Opens the tier the daemon was asked for.
import { WeftError } from '../errors.js';
import { BatchTier } from './batch-tier.js';
import type { Datapath, DatapathOptions, Tier } from './datapath.js';
import { DgramTier } from './dgram-tier.js';

export function openDatapath(tier: Tier, opts: DatapathOptions): Datapath {
  switch (tier) {
    case 'dgram':
      return new DgramTier(opts);
    case 'batch':
      return new BatchTier(opts);
    case 'offload':
      throw new WeftError('WEFT_ERR_BACKEND', 'the offload tier is not built yet: use --tier batch');
  }
}

export type { Datapath, DatapathOptions, Tier } from './datapath.js';
export type { Peer } from './peers.js';
