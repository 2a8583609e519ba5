// Simulated hosts' leases for the scale tool: flannel's key and JSON, in a /8 with /24 subnets, each attached to an
// etcd lease of its own (as flannel makes them), with a PublicIP on the testbed's bridge that nobody answers.
import type { LeaseAttrs } from '../../src/lease/lease.js';
import { type Subnet, makeSubnet, parseIPv4 } from '../../src/ip/subnet.js';

/** The network the scale tool runs in: room for 65,535 /24 leases. */
export const SCALE_NETWORK = { Network: '10.0.0.0/8', SubnetLen: 24, Backend: { Type: 'udp' } } as const;

// Simulated subnets start at 10.100.0.0 and probes at 10.200.0.0: the real daemons pick random free subnets, and
// a clash only costs a skipped index (creation is create-if-absent).
const SIM_BASE = parseIPv4('10.100.0.0')!;
const PROBE_BASE = parseIPv4('10.200.0.0')!;

/** The i-th simulated host's subnet (i < 25,600). */
export function simSubnet(i: number): Subnet {
  return makeSubnet((SIM_BASE + i * 256) >>> 0, 24);
}

/** The i-th probe's subnet. */
export function probeSubnet(i: number): Subnet {
  return makeSubnet((PROBE_BASE + i * 256) >>> 0, 24);
}

/**
 * A PublicIP on the bridge's /24 that no namespace owns: 198.18.<id>.100 .. .249 (hosts are .1 .. .99, the bridge
 * .254, the root link .253). Packets to it die in ARP inside the sender's namespace; nothing leaves the testbed.
 */
export function silentPublicIP(testbedId: number, i: number): string {
  return `198.18.${testbedId}.${100 + (i % 150)}`;
}

export function simAttrs(testbedId: number, i: number): LeaseAttrs {
  return { PublicIP: silentPublicIP(testbedId, i), PublicIPv6: null, BackendType: 'udp', BackendData: null };
}
