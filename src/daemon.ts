// `weft daemon`: config -> network config -> backend -> lease -> datapath, then keep the lease and follow the
// peers until SIGTERM/SIGINT. On a clean stop the lease stays in etcd, so a restart gets the same subnet.
import { setTimeout as sleep } from 'node:timers/promises';
import { resolveDaemonConfig, type DaemonConfig } from './config/daemon.js';
import { parseNetworkConfig, type NetworkConfig } from './config/network.js';
import { ConfigError, WeftError, errorMessage } from './errors.js';
import { createLogger, type Logger } from './log.js';
import { createBackend, type Backend, type ExternalInterface } from './backend/index.js';
import { EtcdRegistry } from './lease/registry.js';
import { LeaseManager } from './lease/manager.js';
import { readSubnetEnv, writeSubnetEnv } from './lease/subnet-env.js';
import type { Lease } from './lease/lease.js';
import { parseIPv4 } from './lease/subnet.js';
import * as iproute from './net/iproute.js';
import { startMetricsServer } from './metrics/server.js';

export async function findExternalInterface(config: DaemonConfig): Promise<ExternalInterface> {
  let iface: iproute.Interface | null;
  if (config.iface !== undefined) {
    iface = parseIPv4(config.iface) !== null
      ? await iproute.interfaceByAddress(config.iface)
      : await iproute.interfaceByName(config.iface);
    if (!iface) throw new ConfigError(`--iface=${config.iface}: no such interface or address`);
  } else {
    iface = await iproute.defaultRouteInterface();
    if (!iface) throw new ConfigError('no default route to pick the underlay interface from: give --iface');
  }
  const ifaceIp = config.iface !== undefined && parseIPv4(config.iface) !== null ? config.iface : iface.addresses[0];
  if (ifaceIp === undefined) throw new ConfigError(`interface ${iface.name} has no IPv4 address`);
  return { name: iface.name, mtu: iface.mtu, publicIp: config.publicIp ?? ifaceIp, ifaceIp };
}

/** Reads `<prefix>/config`, waiting (and saying so once) while it is missing or etcd is unreachable. */
async function waitForNetworkConfig(registry: EtcdRegistry, config: DaemonConfig, log: Logger, signal: AbortSignal): Promise<NetworkConfig> {
  let said = '';
  let delay = 100;
  for (;;) {
    signal.throwIfAborted();
    let state: string;
    try {
      const json = await registry.getNetworkConfig();
      if (json !== null) return parseNetworkConfig(json);
      state = 'missing';
      if (said !== state) log.warn({ key: `${config.etcdPrefix}/config` }, 'waiting for the network config in etcd');
    } catch (e) {
      if (!(e instanceof WeftError) || e.code !== 'WEFT_ERR_ETCD') throw e;
      state = 'unreachable';
      if (said !== state) log.warn({ endpoints: config.etcdEndpoints, err: errorMessage(e) }, 'etcd unreachable, retrying');
    }
    said = state;
    await sleep(delay, undefined, { signal });
    delay = Math.min(delay * 2, 5000);
  }
}

export async function runDaemon(flags: Record<string, unknown>): Promise<void> {
  const config = resolveDaemonConfig(flags);
  const log = createLogger(config.logLevel);
  const abort = new AbortController();
  const { signal } = abort;
  const onSignal = (name: string) => {
    log.info({ signal: name }, 'stopping (the lease stays)');
    abort.abort();
  };
  process.once('SIGTERM', () => onSignal('SIGTERM'));
  process.once('SIGINT', () => onSignal('SIGINT'));

  const external = await findExternalInterface(config);
  log.info({ iface: external.name, publicIp: external.publicIp, mtu: external.mtu }, 'underlay interface');
  const registry = new EtcdRegistry({
    endpoints: config.etcdEndpoints,
    prefix: config.etcdPrefix,
    tls: config.etcdCafile || config.etcdCertfile
      ? { ca: config.etcdCafile, cert: config.etcdCertfile, key: config.etcdKeyfile }
      : undefined,
    auth: config.etcdUsername ? { username: config.etcdUsername, password: config.etcdPassword ?? '' } : undefined,
    log,
  });
  let backend: Backend | null = null;
  try {
    const network = await waitForNetworkConfig(registry, config, log, signal);
    backend = createBackend({ network, config, external, log });
    const previous = readSubnetEnv(config.subnetFile);
    const manager = new LeaseManager({
      registry,
      network,
      publicIP: external.publicIp,
      backendType: backend.type,
      backendData: backend.leaseData(),
      previousSubnet: previous?.subnet ?? null,
      ttlSeconds: config.subnetLeaseTtl,
      renewMarginSeconds: config.subnetLeaseRenewMargin * 60,
      log,
    });
    const active = backend;
    const onLease = async (lease: Lease) => {
      await active.start(lease);
      await writeSubnetEnv(config.subnetFile, { network: network.network, subnet: lease.subnet, mtu: active.mtu, ipMasq: config.ipMasq });
      log.info({ subnet: lease.key, file: config.subnetFile }, 'subnet.env written');
    };
    await onLease(await manager.acquire(signal));
    manager.onLease((lease) => {
      onLease(lease).catch((e: unknown) => log.error({ err: errorMessage(e) }, 'applying the re-acquired lease failed'));
    });
    const server = config.healthzPort > 0
      ? startMetricsServer(config.healthzIp, config.healthzPort, {
          healthy: () => active.running && (manager.lease?.expiresAt ?? 0) > Date.now(),
          counters: () => active.status().counters,
          leaseSecondsLeft: () => (manager.lease?.expiresAt != null ? (manager.lease.expiresAt - Date.now()) / 1000 : null),
          peers: () => active.status().peers,
        }, log)
      : null;
    await Promise.all([
      manager.run(signal),
      manager.watchPeers(signal, (events) => active.peers(events)),
    ]).catch((e: unknown) => {
      if (!signal.aborted) throw e;
    });
    server?.close();
  } catch (e) {
    if (!signal.aborted) throw e;
  } finally {
    await backend?.stop();
    await registry.close();
  }
}
