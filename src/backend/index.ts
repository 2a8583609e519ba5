// Backends by name, as flannel registers them. `--datapath userspace` carries udp/vxlan/geneve through weft's own
// forwarder; `--datapath kernel` programs the kernel (vxlan, host-gw) the way flanneld does.
import { WeftError } from '../errors.js';
import type { Backend, BackendContext } from './backend.js';
import { UserspaceBackend } from './userspace.js';

export function createBackend(ctx: BackendContext): Backend {
  const type = ctx.network.backend.Type;
  if (ctx.config.datapath === 'userspace') {
    if (type === 'host-gw') {
      throw new WeftError('WEFT_ERR_BACKEND', 'backend host-gw has no userspace datapath: run with --datapath kernel');
    }
    return new UserspaceBackend(ctx);
  }
  throw new WeftError('WEFT_ERR_BACKEND', `the kernel datapath for backend "${type}" is not built yet`);
}

export type { Backend, BackendContext, ExternalInterface } from './backend.js';
