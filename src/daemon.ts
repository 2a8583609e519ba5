// `weft daemon`: config -> network config -> backend -> lease -> datapath -> peers -> subnet.env, then keep the lease
// and follow the peers until SIGTERM/SIGINT. On a clean stop the lease stays in etcd, so a restart gets the same
// subnet.
//
// Startup failures end the process with one line and a non-zero exit, never a retry loop: an invalid flag (exit 2),
// a network config it cannot run (checkNetworkConfig, the check `weft network set` runs), a network config with
// IPv6 on a host whose interface has no global IPv6 address (exit 2), a Network that overlaps the underlay, and a
// network with no free subnet left (NetworkExhaustedError; a supervisor may retry later). etcd being unreachable is
// waited out, before and after the lease. Once running, a config in etcd that the daemon cannot run is logged once
// and the daemon keeps the one it runs (lease/manager.ts).
import { resolveDaemonConfig, type DaemonConfig } from './config/daemon.js';
import type { NetworkConfig } from './config/network.js';
import { ConfigError, NetworkConfigError, WeftError, errorMessage } from './errors.js';
import { createLogger, type Logger } from './log.js';
import { createBackend, type Backend, type BackendStatus, type ExternalInterface } from './backend/index.js';
import { checkNetworkConfig } from './backend/config.js';
import { loadEncapModule } from './backend/encap-module.js';
import { registryFromConfig, type EtcdRegistry } from './lease/registry.js';
import { LeaseManager } from './lease/manager.js';
import { Backoff } from './lease/backoff.js';
import { readSubnetEnv, writeSubnetEnv } from './lease/subnet-env.js';
import { type Lease, type LeaseEvent, isReservation, secondsUntil } from './lease/lease.js';
import { containsIP, formatSubnet, overlaps, parseCIDR, parseIPv4, makeSubnet } from './ip/subnet.js';
import {
  type Subnet6,
  containsIP6,
  formatIPv6,
  formatSubnet6,
  makeSubnet6,
  overlaps6,
  parseCIDR6,
  parseIPv6,
} from './ip/ipv6.js';
import { hasIPv4 } from './ip/subnet-key.js';
import * as iproute from './net/iproute.js';
import { openMasq, type Masq } from './net/masq.js';
import { VERSION } from './package-root.js';
import { optimizeFromNowOn } from './start-tiering.js';
import { trimAfterStart } from './startup-memory.js';
import { sleep } from './util/sleep.js';
import type { MemoryStatus, PeerStatus, StatusDoc, startMetricsServer } from './metrics/server.js';
import { peerTtlLabels, type PeerTtlSeries } from './metrics/labels.js';

/**
 * Refuses a Network that overlaps the underlay (the interface's own subnets or the public IP): the TUN route for the
 * Network would swallow the traffic to the other hosts, and the overlay would carry itself.
 */
export function checkUnderlayOverlap(
  network: NetworkConfig,
  external: ExternalInterface,
  underlayCidrs: readonly string[],
  underlayCidrs6: readonly string[] = [],
): void {
  if (network.ipv6 !== null) checkUnderlayOverlap6(network.ipv6.network, external, underlayCidrs6);
  if (!network.enableIPv4) return;
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

/** The same check for the IPv6Network: it must not hold the hosts' own IPv6 addresses either. */
function checkUnderlayOverlap6(net: Subnet6, external: ExternalInterface, underlayCidrs6: readonly string[]): void {
  const pick = "pick an IPv6Network that does not overlap the hosts' own addresses";
  for (const addr of [external.publicIpv6, external.ifaceIpv6]) {
    const ip = addr === null ? null : parseIPv6(addr);
    if (ip !== null && containsIP6(net, ip)) {
      throw new NetworkConfigError(
        `network config: IPv6Network ${formatSubnet6(net)} contains the underlay address ${formatIPv6(ip)} ` +
          `(${external.name}): ${pick}`,
      );
    }
  }
  for (const cidr of underlayCidrs6) {
    const c = parseCIDR6(cidr);
    if (c === null) continue;
    const sn = makeSubnet6(c.ip, c.prefixLen);
    if (overlaps6(sn, net)) {
      throw new NetworkConfigError(
        `network config: IPv6Network ${formatSubnet6(net)} overlaps the underlay ${formatSubnet6(sn)} on ` +
          `${external.name}: ${pick}`,
      );
    }
  }
}

/**
 * The underlay interface (--iface by name or address, else the default route's) and the addresses to publish for
 * the families `network` enables: its first IPv4 (--public-ip overrides), its first global IPv6 (--public-ipv6
 * overrides), as flanneld picks them. IPv6-only networks publish PublicIP 0.0.0.0, as flanneld does.
 */
export async function findExternalInterface(
  config: DaemonConfig,
  network?: Pick<NetworkConfig, 'enableIPv4' | 'enableIPv6'>,
): Promise<ExternalInterface> {
  const v4 = network?.enableIPv4 ?? true;
  const v6 = network?.enableIPv6 ?? false;
  const given = config.iface;
  const givenV4 = given !== undefined && parseIPv4(given) !== null;
  const givenV6 = given !== undefined && parseIPv6(given) !== null;
  let iface: iproute.Interface | null;
  if (given !== undefined) {
    iface = givenV4 || givenV6 ? await iproute.interfaceByAddress(given) : await iproute.interfaceByName(given);
    if (!iface) throw new ConfigError(`--iface=${given}: no such interface or address`);
  } else {
    iface = v4
      ? await iproute.defaultRouteInterface()
      : ((await iproute.defaultRouteInterface({}, 6)) ?? (await iproute.defaultRouteInterface()));
    if (!iface) throw new ConfigError('no default route to pick the underlay interface from: give --iface');
  }
  const ifaceIp = givenV4 ? given : iface.addresses[0];
  if (v4 && ifaceIp === undefined) throw new ConfigError(`interface ${iface.name} has no IPv4 address`);
  let ifaceIpv6: string | null = null;
  if (v6) {
    const addr = givenV6 ? parseIPv6(given) : null;
    ifaceIpv6 = addr !== null ? formatIPv6(addr) : (iface.addresses6[0] ?? null);
    if (ifaceIpv6 === null) {
      throw new ConfigError(
        `the network config enables IPv6, but interface ${iface.name} has no global IPv6 address: ` +
          'give it one, or pick another interface with --iface',
      );
    }
  }
  const publicIp = v4 ? (config.publicIp ?? ifaceIp ?? '') : '0.0.0.0';
  const local = v4 && publicIp !== ifaceIp && (await iproute.interfaceByAddress(publicIp)) !== null;
  return {
    name: iface.name,
    mtu: iface.mtu,
    publicIp,
    ifaceIp: ifaceIp ?? '',
    bindIp: local ? publicIp : (ifaceIp ?? ''),
    publicIpv6: v6 ? (config.publicIpv6 ?? ifaceIpv6) : null,
    ifaceIpv6,
  };
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

/** Leases above which the daemon's compilers go on before it lists them (src/start-tiering.ts). */
const LARGE_NETWORK_LEASES = 256;

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

  const registry = registryFromConfig(config, log);
  let backend: Backend | null = null;
  let masq: Masq | null = null;
  let server: ReturnType<typeof startMetricsServer> | null = null;
  let stopTrim = (): void => {};
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
    // After the network config: which addresses to publish depends on the families it enables.
    const external = await findExternalInterface(config, network);
    log.info(
      { iface: external.name, publicIp: external.publicIp, publicIpv6: external.publicIpv6, mtu: external.mtu },
      'underlay interface',
    );
    const underlay = await iproute.interfaceByName(external.name);
    checkUnderlayOverlap(network, external, underlay?.cidrs ?? [], underlay?.cidrs6 ?? []);
    backend = createBackend({ network, config, external, log });
    const active = backend;
    if (network.enableIPv6 && !active.carriesIPv6) log.warn({ tier: config.tier }, ipv6Note(config));
    const manager = leaseManager(config, network, external, active, registry, log);
    if (config.ipMasq && network.enableIPv6) log.warn('--ip-masq: weft masquerades IPv4 only; IPv6 leaves unchanged');
    masq = config.ipMasq && network.enableIPv4 ? await openMasq(formatSubnet(network.network), log) : null;
    const program = async (lease: Lease): Promise<void> => {
      await active.start(lease);
      if (hasIPv4(lease.subnet)) await masq?.apply(formatSubnet(lease.subnet));
    };
    const publish = async (lease: Lease): Promise<void> => {
      const ipv6Subnet = lease.ipv6Subnet ?? null;
      await writeSubnetEnv(config.subnetFile, {
        network: network.enableIPv4 ? network.network : null,
        subnet: hasIPv4(lease.subnet) ? lease.subnet : null,
        ipv6:
          network.ipv6 !== null && ipv6Subnet !== null ? { network: network.ipv6.network, subnet: ipv6Subnet } : null,
        mtu: active.mtu,
        ipMasq: config.ipMasq,
      });
      log.info({ subnet: lease.key, file: config.subnetFile, peers: active.status().peers }, 'subnet.env written');
    };
    // In a network of thousands of hosts, listing and parsing the leases is start-up's real work: the compilers go on
    // before it (interpreted, a join at 5,000 hosts took 14.6 s to subnet.env instead of 6.8). In a small one they
    // stay off until subnet.env is written, which keeps ~4 MB of compiled start-up code out of an idle daemon.
    if ((await registry.countLeases().catch(() => 0)) > LARGE_NETWORK_LEASES) optimizeFromNowOn();
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
    optimizeFromNowOn();
    stopTrim = trimAfterStart(log);
    const err = await loops;
    if (err !== null && !signal.aborted) throw err;
  } catch (e) {
    if (!signal.aborted) throw e;
  } finally {
    // Abort the lease loops too when we leave on an error (e.g. the network config changed under us).
    abort.abort();
    stopTrim();
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
  const previous = readSubnetEnv(config.subnetFile);
  return new LeaseManager({
    registry,
    network,
    publicIP: external.publicIp,
    publicIPv6: external.publicIpv6,
    backendType: backend.type,
    backendData: backend.leaseData(),
    backendV6Data: network.enableIPv6 ? backend.leaseV6Data?.() : undefined,
    previousSubnet: previous?.subnet ?? null,
    previousIPv6Subnet: previous?.ipv6Subnet ?? null,
    ttlSeconds: config.subnetLeaseTtl,
    renewMarginSeconds: config.subnetLeaseRenewMargin * 60,
    followNetworkConfig: true,
    checkNetworkConfig: (json) => checkNetworkConfig(json, config),
    log,
  });
}

/** Why a dual-stack network's IPv6 half is not forwarded: the start log line and /status say it. */
function ipv6Note(config: DaemonConfig): string {
  return (
    `this userspace datapath (--tier ${config.tier}) forwards IPv4 only: the lease carries the IPv6 subnet, but ` +
    'IPv6 packets are not forwarded (IPv6 needs a PublicIPv6 and runs on every tier but with backend wireguard ' +
    'or --queues > 1; --datapath kernel forwards both)'
  );
}

/** Peer leases as the watch delivered them, for /status and the per-peer metrics. */
class KnownPeers {
  // ttl: the lease's /metrics series, made at the first scrape after the lease arrived (none without /metrics).
  private readonly byKey = new Map<string, { readonly lease: Lease; ttl: PeerTtlSeries | null }>();

  apply(events: readonly LeaseEvent[]): void {
    for (const ev of events) {
      if (ev.type === 'removed') this.byKey.delete(ev.lease.key);
      else this.byKey.set(ev.lease.key, { lease: ev.lease, ttl: null });
    }
  }

  /** The lease-TTL series, built once per lease (later scrapes only read them). */
  *ttls(): Iterable<PeerTtlSeries> {
    for (const p of this.byKey.values()) yield (p.ttl ??= ttlSeries(p.lease));
  }

  list(): PeerStatus[] {
    return [...this.byKey.values()].map(({ lease: l }) => {
      const six = l.ipv6Subnet ?? null;
      const v6 = l.attrs.PublicIPv6;
      return {
        subnet: peerSubnetText(l),
        publicIp: l.attrs.PublicIP,
        backendType: l.attrs.BackendType,
        leaseSecondsLeft: secondsLeft(l),
        ...(six !== null ? { ipv6Subnet: formatSubnet6(six) } : {}),
        ...(typeof v6 === 'string' ? { publicIpv6: v6 } : {}),
      };
    });
  }
}

/** A peer's subnet as /status and /metrics name it: an IPv6-only lease has no IPv4 subnet, its IPv6 one stands in. */
function peerSubnetText(l: Lease): string {
  const six = l.ipv6Subnet ?? null;
  return hasIPv4(l.subnet) || six === null ? formatSubnet(l.subnet) : formatSubnet6(six);
}

function ttlSeries(l: Lease): PeerTtlSeries {
  return {
    labels: peerTtlLabels(peerSubnetText(l), l.attrs.PublicIP, l.attrs.BackendType),
    expiresAt: isReservation(l) ? null : l.expiresAt,
  };
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
  return l === null || l.expiresAt === null || isReservation(l) ? null : secondsUntil(l.expiresAt, Date.now());
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
    network: r.network.enableIPv4 ? formatSubnet(r.network.network) : (r.network.ipv6Network ?? ''),
    backendType: st.type,
    datapath: st.datapath,
    tier: r.config.datapath === 'userspace' ? r.config.tier : r.config.datapath,
    encap: r.network.backend.Type,
    device: st.device,
    publicIp: r.external.publicIp,
    lease:
      lease === null
        ? null
        : {
            subnet: formatSubnet(lease.subnet),
            key: lease.key,
            secondsLeft: secondsLeft(lease),
            ...(lease.ipv6Subnet ? { ipv6Subnet: formatSubnet6(lease.ipv6Subnet) } : {}),
          },
    ...(r.network.ipv6 !== null
      ? {
          ipv6: {
            network: formatSubnet6(r.network.ipv6.network),
            publicIpv6: r.external.publicIpv6,
            forwarded: r.backend.carriesIPv6,
            ...(r.backend.carriesIPv6 ? {} : { note: ipv6Note(r.config) }),
          },
        }
      : {}),
    peers: r.peers.list(),
    ...(st.peersSharingPublicIp !== undefined ? { peersSharingPublicIp: st.peersSharingPublicIp } : {}),
    control: { ...r.manager.stats },
    counters: st.counters,
    ...(st.queues ? { queues: st.queues } : {}),
    memory: memoryStatus(),
  };
}

function memoryStatus(): MemoryStatus {
  const { rss, heapTotal, heapUsed, external, arrayBuffers } = process.memoryUsage();
  return { rss, heapTotal, heapUsed, external, arrayBuffers };
}

/**
 * backend.status() at most once per turn of the event loop: a /metrics scrape reads several of its fields (prom-client
 * calls every collect() in one turn) and each call walks every peer.
 */
function statusPerTurn(backend: Backend): () => BackendStatus {
  let cached: BackendStatus | null = null;
  return () => {
    if (cached === null) {
      cached = backend.status();
      setImmediate(() => (cached = null));
    }
    return cached;
  };
}

/** /healthz, /metrics and /status on --healthz-ip:--healthz-port. */
// prom-client (about 5 MB of heap) loads only when /metrics is served.
async function serveHealthz(r: Running, log: Logger): Promise<ReturnType<typeof startMetricsServer>> {
  const { startMetricsServer } = await import('./metrics/server.js');
  const status = statusPerTurn(r.backend);
  return startMetricsServer(
    r.config.healthzIp,
    r.config.healthzPort,
    {
      healthy: () => healthy(r),
      counters: () => status().counters,
      leaseSecondsLeft: () => secondsLeft(r.manager.lease),
      peers: () => status().peers,
      // Only where the backend counts them (the userspace tiers).
      ...(status().peersSharingPublicIp !== undefined
        ? { peersSharingPublicIp: () => status().peersSharingPublicIp ?? 0 }
        : {}),
      peerLeaseTtls: () => r.peers.ttls(),
      peerTraffic: () => status().peerTraffic ?? [],
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
