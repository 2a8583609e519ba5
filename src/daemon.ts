// `weft daemon`: config -> network config -> backend -> lease -> datapath -> peers -> subnet.env, then keep the lease
// and follow the peers until SIGTERM/SIGINT. On a clean stop the lease stays in etcd, so a restart gets the same
// subnet.
//
// Startup failures end the process with one line and a non-zero exit, never a retry loop: an invalid flag (exit 2),
// a network config it cannot run (checkNetworkConfig, the check `weft network set` runs), a Network that overlaps
// the underlay, and a network with no free subnet left (NetworkExhaustedError; a supervisor may retry later). etcd
// being unreachable is waited out, before and after the lease. Once running, a config in etcd that the daemon
// cannot run is logged once and the daemon keeps the one it runs (lease/manager.ts).
import { resolveDaemonConfig, type DaemonConfig } from './config/daemon.js';
import type { NetworkConfig } from './config/network.js';
import { ConfigError, NetworkConfigError, WeftError, errorMessage } from './errors.js';
import { createLogger, type Logger } from './log.js';
import { createBackend, type Backend, type ExternalInterface } from './backend/index.js';
import { checkNetworkConfig } from './backend/config.js';
import { loadEncapModule } from './backend/encap-module.js';
import { registryFromConfig, type EtcdRegistry } from './lease/registry.js';
import { LeaseManager } from './lease/manager.js';
import { Backoff } from './lease/backoff.js';
import { readSubnetEnv, writeSubnetEnv } from './lease/subnet-env.js';
import { type Lease, type LeaseEvent, isReservation } from './lease/lease.js';
import { containsIP, formatSubnet, overlaps, parseCIDR, parseIPv4, makeSubnet } from './ip/subnet.js';
import * as iproute from './net/iproute.js';
import { openMasq, type Masq } from './net/masq.js';
import { VERSION } from './package-root.js';
import { sleep } from './util/sleep.js';
import type { PeerStatus, StatusDoc, startMetricsServer } from './metrics/server.js';

/**
 * Refuses a Network that overlaps the underlay (the interface's own subnets or the public IP): the TUN route for the
 * Network would swallow the traffic to the other hosts, and the overlay would carry itself.
 */
export function checkUnderlayOverlap(
  network: NetworkConfig,
  external: ExternalInterface,
  underlayCidrs: readonly string[],
): void {
  const net = network.network;
  const pick = "pick a Network that does not overlap the hosts' own addresses";
  for (const addr of [external.publicIp, external.ifaceIp]) {
    const ip = parseIPv4(addr);
    if (ip !== null && containsIP(net, ip)) {
      throw new NetworkConfigError(
        `network config: Network ${formatSubnet(net)} contains the underlay address ${addr} ` +
          `(${external.name}): ${pick}`,
      );
    }
  }
  for (const cidr of underlayCidrs) {
    const c = parseCIDR(cidr);
    if (c === null) continue;
    const sn = makeSubnet(c.ip, c.prefixLen);
    if (overlaps(sn, net)) {
      throw new NetworkConfigError(
        `network config: Network ${formatSubnet(net)} overlaps the underlay ${formatSubnet(sn)} on ${external.name}: ` +
          pick,
      );
    }
  }
}

export async function findExternalInterface(config: DaemonConfig): Promise<ExternalInterface> {
  let iface: iproute.Interface | null;
  if (config.iface !== undefined) {
    iface =
      parseIPv4(config.iface) !== null
        ? await iproute.interfaceByAddress(config.iface)
        : await iproute.interfaceByName(config.iface);
    if (!iface) throw new ConfigError(`--iface=${config.iface}: no such interface or address`);
  } else {
    iface = await iproute.defaultRouteInterface();
    if (!iface) throw new ConfigError('no default route to pick the underlay interface from: give --iface');
  }
  const ifaceIp = config.iface !== undefined && parseIPv4(config.iface) !== null ? config.iface : iface.addresses[0];
  if (ifaceIp === undefined) throw new ConfigError(`interface ${iface.name} has no IPv4 address`);
  const publicIp = config.publicIp ?? ifaceIp;
  const local = publicIp !== ifaceIp && (await iproute.interfaceByAddress(publicIp)) !== null;
  return { name: iface.name, mtu: iface.mtu, publicIp, ifaceIp, bindIp: local ? publicIp : ifaceIp };
}

/**
 * Reads `<prefix>/config` and checks it as `weft network set` does (checkNetworkConfig), waiting (and saying so once)
 * while it is missing or etcd is unreachable.
 */
async function waitForNetworkConfig(
  registry: EtcdRegistry,
  config: DaemonConfig,
  log: Logger,
  signal: AbortSignal,
): Promise<NetworkConfig> {
  let said = '';
  const backoff = new Backoff();
  for (;;) {
    signal.throwIfAborted();
    let state: string;
    try {
      const json = await registry.getNetworkConfig();
      if (json !== null) return checkNetworkConfig(json, config);
      state = 'missing';
      if (said !== state) log.warn({ key: `${config.etcdPrefix}/config` }, 'waiting for the network config in etcd');
    } catch (e) {
      if (!(e instanceof WeftError) || e.code !== 'WEFT_ERR_ETCD') throw e;
      state = 'unreachable';
      if (said !== state)
        log.warn({ endpoints: config.etcdEndpoints, err: errorMessage(e) }, 'etcd unreachable, retrying');
    }
    said = state;
    await sleep(backoff.next(), signal);
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
  const registry = registryFromConfig(config, log);
  let backend: Backend | null = null;
  let masq: Masq | null = null;
  let server: ReturnType<typeof startMetricsServer> | null = null;
  try {
    // The module's type must be known before the network config that names it is checked.
    if (config.encapModule !== undefined) {
      const encap = await loadEncapModule(config.encapModule);
      log.info(
        { module: config.encapModule, encap: encap.name, backendType: encap.backendType },
        'encap module loaded',
      );
    }
    const network = await waitForNetworkConfig(registry, config, log, signal);
    checkUnderlayOverlap(network, external, (await iproute.interfaceByName(external.name))?.cidrs ?? []);
    backend = createBackend({ network, config, external, log });
    const active = backend;
    const manager = leaseManager(config, network, external, active, registry, log);
    masq = config.ipMasq ? await openMasq(formatSubnet(network.network), log) : null;
    const program = async (lease: Lease): Promise<void> => {
      await active.start(lease);
      await masq?.apply(formatSubnet(lease.subnet));
    };
    const publish = async (lease: Lease): Promise<void> => {
      await writeSubnetEnv(config.subnetFile, {
        network: network.network,
        subnet: lease.subnet,
        mtu: active.mtu,
        ipMasq: config.ipMasq,
      });
      log.info({ subnet: lease.key, file: config.subnetFile, peers: active.status().peers }, 'subnet.env written');
    };
    const first = await acquireAtStart(manager, log, signal);
    await program(first);
    manager.onLease((lease) => {
      program(lease)
        .then(() => publish(lease))
        .catch((e: unknown) => log.error({ err: errorMessage(e) }, 'applying the re-acquired lease failed'));
    });

    const peers = new KnownPeers();
    const onPeers = (events: readonly LeaseEvent[]): void => {
      peers.apply(events);
      active.peers(events);
    };
    const running: Running = { config, network, external, backend: active, manager, peers, started: Date.now() };
    server = config.healthzPort > 0 ? await serveHealthz(running, log) : null;
    // The loops run from here on; `loops` settles to their error (or null) so nothing rejects unobserved meanwhile.
    let listed = (): void => {};
    const peersListed = new Promise<void>((resolve) => (listed = resolve));
    const loops = Promise.all([manager.run(signal), manager.watchPeers(signal, onPeers, () => listed())]).then(
      () => null,
      (e: unknown) => (e instanceof Error ? e : new Error(String(e))),
    );
    // subnet.env is what Docker and weft-cni start pods from, so it is written once the peers are in the forwarding
    // path: a pod's first packet then finds its route. A slow first listing delays it by PEERS_WAIT_MS at most.
    if (await Promise.race([peersInPath(peersListed, active, log), loops.then(() => false)])) await publish(first);
    const err = await loops;
    if (err !== null && !signal.aborted) throw err;
  } catch (e) {
    if (!signal.aborted) throw e;
  } finally {
    // Abort the lease loops too when we leave on an error (e.g. the network config changed under us).
    abort.abort();
    server?.close();
    await masq
      ?.remove()
      .catch((e: unknown) => log.warn({ err: errorMessage(e) }, '--ip-masq: removing the rules failed'));
    await backend?.stop();
    registry.close();
  }
}

/** The lease policy for this host: reuse its PublicIP's lease, else the subnet of the previous subnet.env. */
function leaseManager(
  config: DaemonConfig,
  network: NetworkConfig,
  external: ExternalInterface,
  backend: Backend,
  registry: EtcdRegistry,
  log: Logger,
): LeaseManager {
  return new LeaseManager({
    registry,
    network,
    publicIP: external.publicIp,
    backendType: backend.type,
    backendData: backend.leaseData(),
    previousSubnet: readSubnetEnv(config.subnetFile)?.subnet ?? null,
    ttlSeconds: config.subnetLeaseTtl,
    renewMarginSeconds: config.subnetLeaseRenewMargin * 60,
    followNetworkConfig: true,
    checkNetworkConfig: (json) => checkNetworkConfig(json, config),
    log,
  });
}

/** Peer leases as the watch delivered them, for /status and the per-peer metrics. */
class KnownPeers {
  private readonly byKey = new Map<string, Lease>();

  apply(events: readonly LeaseEvent[]): void {
    for (const ev of events) {
      if (ev.type === 'removed') this.byKey.delete(ev.lease.key);
      else this.byKey.set(ev.lease.key, ev.lease);
    }
  }

  list(): PeerStatus[] {
    return [...this.byKey.values()].map((l) => ({
      subnet: formatSubnet(l.subnet),
      publicIp: l.attrs.PublicIP,
      backendType: l.attrs.BackendType,
      leaseSecondsLeft: secondsLeft(l),
    }));
  }
}

/** What /healthz, /metrics and /status read from a running daemon. */
interface Running {
  readonly config: DaemonConfig;
  readonly network: NetworkConfig;
  readonly external: ExternalInterface;
  readonly backend: Backend;
  readonly manager: LeaseManager;
  readonly peers: KnownPeers;
  readonly started: number;
}

function secondsLeft(l: Lease | null): number | null {
  return l === null || l.expiresAt === null || isReservation(l)
    ? null
    : Math.round((l.expiresAt - Date.now()) / 100) / 10;
}

/** Healthy while the datapath runs and the lease has not expired (a reservation never does). */
function healthy(r: Running): boolean {
  return r.backend.running && (r.manager.lease?.expiresAt ?? (r.manager.lease ? Infinity : 0)) > Date.now();
}

function statusDoc(r: Running): StatusDoc {
  const st = r.backend.status();
  const lease = r.manager.lease;
  return {
    version: VERSION,
    healthy: healthy(r),
    pid: process.pid,
    uptimeSeconds: Math.round((Date.now() - r.started) / 1000),
    network: formatSubnet(r.network.network),
    backendType: st.type,
    datapath: st.datapath,
    tier: r.config.datapath === 'userspace' ? r.config.tier : r.config.datapath,
    encap: r.network.backend.Type,
    device: st.device,
    publicIp: r.external.publicIp,
    lease:
      lease === null ? null : { subnet: formatSubnet(lease.subnet), key: lease.key, secondsLeft: secondsLeft(lease) },
    peers: r.peers.list(),
    ...(st.peersSharingPublicIp !== undefined ? { peersSharingPublicIp: st.peersSharingPublicIp } : {}),
    control: { ...r.manager.stats },
    counters: st.counters,
    ...(st.queues ? { queues: st.queues } : {}),
  };
}

/** /healthz, /metrics and /status on --healthz-ip:--healthz-port. */
// prom-client (about 5 MB of heap) loads only when /metrics is served.
async function serveHealthz(r: Running, log: Logger): Promise<ReturnType<typeof startMetricsServer>> {
  const { startMetricsServer } = await import('./metrics/server.js');
  return startMetricsServer(
    r.config.healthzIp,
    r.config.healthzPort,
    {
      healthy: () => healthy(r),
      counters: () => r.backend.status().counters,
      leaseSecondsLeft: () => secondsLeft(r.manager.lease),
      peers: () => r.backend.status().peers,
      peerList: () => r.peers.list(),
      peerTraffic: () => r.backend.status().peerTraffic ?? [],
      control: () => ({ ...r.manager.stats }),
      status: () => statusDoc(r),
    },
    log,
  );
}

const PEERS_WAIT_MS = 10_000;

/** Waits for the first peer listing to reach the datapath, at most PEERS_WAIT_MS (then says so); always true. */
async function peersInPath(listed: Promise<void>, backend: Backend, log: Logger): Promise<true> {
  let timer: NodeJS.Timeout | undefined;
  const inTime = await Promise.race([
    listed.then(() => true),
    // unref: a stop during startup must not wait for this timer
    new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), PEERS_WAIT_MS).unref())),
  ]);
  clearTimeout(timer);
  if (inTime) await backend.settled();
  else
    log.warn(
      { waitedMs: PEERS_WAIT_MS },
      'peer list not loaded yet; writing subnet.env anyway, peers follow when etcd answers',
    );
  return true;
}

/**
 * The first lease: etcd trouble is waited out (backoff, said once); an exhausted network is fatal here, so a host
 * that cannot get a subnet fails visibly at startup instead of retrying forever.
 */
async function acquireAtStart(manager: LeaseManager, log: Logger, signal: AbortSignal): Promise<Lease> {
  const backoff = new Backoff();
  let said = false;
  for (;;) {
    try {
      return await manager.acquire(signal);
    } catch (e) {
      if (signal.aborted || !(e instanceof WeftError) || e.code !== 'WEFT_ERR_ETCD') throw e;
      if (!said) log.warn({ err: errorMessage(e) }, 'etcd unreachable while acquiring the lease, retrying');
      said = true;
      await sleep(backoff.next(), signal);
    }
  }
}
