// Backends by name, as flannel registers them. `--datapath userspace` carries udp/vxlan/geneve (and encaps loaded
// with --encap-module) through weft's own forwarder; `--datapath kernel` programs the kernel (vxlan, host-gw) the way
// flanneld does.
import type { Backend, BackendContext } from './backend.js';
import { checkBackend } from './config.js';
import { HostGwBackend } from './host-gw.js';
import { KernelVxlanBackend } from './kernel-vxlan.js';
import { UserspaceBackend } from './userspace.js';

export function createBackend(ctx: BackendContext): Backend {
  // The daemon checked the whole config already (checkNetworkConfig, after loading any --encap-module); the same
  // check here keeps this door safe for any other caller, with the same messages.
  checkBackend(ctx.network.backend, ctx.config);
  if (ctx.config.datapath === 'userspace') return new UserspaceBackend(ctx);
  return ctx.network.backend.Type === 'vxlan' ? new KernelVxlanBackend(ctx) : new HostGwBackend(ctx);
}

export type { Backend, BackendContext, BackendStatus, ExternalInterface } from './backend.js';
