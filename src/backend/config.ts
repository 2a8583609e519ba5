// The backend half of the network config, and the one check of a whole config that `weft network set` and the
// daemon share, so a config that `set` accepts is one the daemons run, and both refuse with the same line.
//
// flannel keeps Backend an opaque blob that each backend parses over its own defaults (pkg/backend/*/): the
// options below are that parsing, used by the backends themselves and by the check. Nothing here opens a device or
// loads the addon, so `weft network set` runs the check anywhere.
import type { DaemonConfig } from '../config/daemon.js';
import { type BackendConfig, type NetworkConfig, parseNetworkConfig } from '../config/network.js';
import type { Encap } from '../encap/encap.js';
import { encapByName } from '../encap/index.js';
import { NetworkConfigError } from '../errors.js';
import { WIREGUARD_TYPE, parseWireguardOptions } from '../config/wireguard-options.js';

/** What a daemon runs a config with. `weft network set` checks for every daemon: any datapath that carries the type. */
export type Runner = Pick<DaemonConfig, 'datapath'>;

/** Backend types of the kernel datapath (flanneld's names). */
const KERNEL_TYPES: readonly string[] = ['vxlan', 'host-gw'];

function fail(field: string, value: unknown, why: string): never {
  throw new NetworkConfigError(`network config: Backend.${field} ${JSON.stringify(value)}: ${why}`);
}

function port(backend: BackendConfig, fallback: number): number {
  const p = backend['Port'] ?? fallback;
  if (typeof p !== 'number' || !Number.isInteger(p) || p < 1 || p > 65535) fail('Port', p, 'not a UDP port');
  return p;
}

function vni(backend: BackendConfig): number {
  const v = backend['VNI'] ?? 1;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffffff) fail('VNI', v, 'not a 24-bit VNI');
  return v;
}

/** Options of Backend that the userspace backend reads, over its defaults. */
export interface UserspaceOptions {
  readonly port: number;
  readonly vni: number;
}

export function userspaceOptions(backend: BackendConfig, encap: Encap): UserspaceOptions {
  return { port: port(backend, encap.defaultPort), vni: vni(backend) };
}

/** Options of Backend that the kernel VXLAN backend reads (flannel's pkg/backend/vxlan: VNI, Port, DirectRouting). */
export interface KernelVxlanOptions {
  readonly vni: number;
  readonly port: number;
  readonly directRouting: boolean;
}

export function kernelVxlanOptions(backend: BackendConfig): KernelVxlanOptions {
  const v = vni(backend);
  const p = port(backend, 8472);
  const direct = backend['DirectRouting'] ?? false;
  if (typeof direct !== 'boolean') fail('DirectRouting', direct, 'not true or false');
  return { vni: v, port: p, directRouting: direct };
}

/**
 * Checks Backend for `runner`'s datapath, or for every datapath that carries its Type when there is no runner
 * (`weft network set`: a cluster may mix userspace and kernel hosts). Types are the built-in ones and those of
 * encaps registered by --encap-module. Throws NetworkConfigError naming the field and its value.
 */
export function checkBackend(backend: BackendConfig, runner?: Runner): void {
  const type = backend.Type;
  const encap = encapByName(type);
  const kernel = KERNEL_TYPES.includes(type);
  // wireguard: userspace only (weft's own WireGuard), its options flannel's (config/wireguard-options.ts).
  const wireguard = type === WIREGUARD_TYPE;
  if (encap === undefined && !kernel && !wireguard) {
    const known =
      "built in: udp, vxlan, geneve, wireguard, host-gw; an encap module's type needs --encap-module <file>";
    fail('Type', type, `no such backend (${known})`);
  }
  if (wireguard) {
    if (runner?.datapath === 'kernel') {
      fail('Type', type, 'no kernel datapath (kernel: vxlan, host-gw): run with --datapath userspace');
    }
    parseWireguardOptions(backend);
    return;
  }
  if (runner?.datapath === 'userspace' && encap === undefined) {
    fail('Type', type, 'no userspace datapath: run with --datapath kernel');
  }
  if (runner?.datapath === 'kernel' && !kernel) {
    fail('Type', type, 'no kernel datapath (kernel: vxlan, host-gw): run with --datapath userspace');
  }
  if (encap !== undefined && runner?.datapath !== 'kernel') userspaceOptions(backend, encap);
  if (type === 'vxlan' && runner?.datapath !== 'userspace') kernelVxlanOptions(backend);
}

/** flannel's fields (parseNetworkConfig), then the backend: all a daemon checks before it runs a config. */
export function checkNetworkConfig(json: string, runner?: Runner): NetworkConfig {
  const network = parseNetworkConfig(json);
  checkBackend(network.backend, runner);
  if (runner?.datapath === 'userspace' && !network.enableIPv4) {
    throw new NetworkConfigError(
      'network config: EnableIPv4 false: an IPv6-only network needs --datapath kernel ' +
        '(the userspace tiers forward IPv4 only so far)',
    );
  }
  return network;
}
