// Weft clusters for integration tests: namespace hosts, etcd and a network config, gone when the test ends.
import type { Test } from 'tap';
import { Cluster, type ClusterOptions } from '../../testbed/cluster.js';

/** flannel's network config with /24 leases: `{ Network, SubnetLen: 24, Backend: { Type } }`. */
export function netConfig(network: string, type: string): Record<string, unknown> {
  return { Network: network, SubnetLen: 24, Backend: { Type: type } };
}

/** A dual-stack network config: 10.5.0.0/16 and fd00:5::/48 (EnableIPv6), /24 and /64 leases. */
export function dualStackConfig(type: string): Record<string, unknown> {
  return { ...netConfig('10.5.0.0/16', type), EnableIPv6: true, IPv6Network: 'fd00:5::/48' };
}

/** A cluster of `hosts` namespace hosts with `network` in etcd, destroyed when `t` ends. */
export async function clusterFor(
  t: Test,
  hosts: number,
  network: Record<string, unknown>,
  opts: Omit<ClusterOptions, 'hosts' | 'network'> = {},
): Promise<Cluster> {
  const cluster = await Cluster.create({ hosts, network, ...opts });
  t.teardown(() => cluster.destroy());
  return cluster;
}
