// The paths the bench compares, and how each is built on a fresh two-host testbed (one per path, so no device,
// route or lease of one path can help or hurt the next):
//
//   underlay        h1 eth0 ── bridge ── h2 eth0             iperf3/ping-pong between the hosts themselves
//   kernel-vxlan    pod ─ cni0 ─ flannel.1 (kernel VXLAN, set up here with iproute2 exactly as flannel's
//                   pkg/backend/vxlan does: nolearning, per peer neighbour, FDB entry and onlink route)
//                   ─ eth0 ── ... ── pod on h2. The reference of every ratio.
//   host-gw         weft daemon --datapath kernel, Backend host-gw (plain routes via the peer's underlay address)
//   weft-kernel-vxlan  weft daemon --datapath kernel, Backend vxlan (flannel's layout, programmed by weft)
//   <tier>/<encap>  weft daemon --tier <dgram|batch|offload>, Backend <udp|vxlan|geneve|wireguard (batch, offload)>:
//                   pod ─ cni0 ─ weft0 (TUN)
//                   ─ daemon ─ UDP socket on eth0 ── ... ── the same on h2
//   wireguard-go, nebula, tinc   the userspace overlays a user would otherwise install (peers/): pod ─ cni0 ─ the
//                   peer's TUN 10.77.0.N/24 ─ its daemon (encrypting) ─ UDP on eth0 ── ... ── the same on h2
//
// With --topology host the endpoints are the hosts themselves, at the address their overlay device holds (the
// subnet's network address, on flannel.1 or the TUN; no pod veth, no bridge): the overlay's own cost stands out more,
// since the kernel saves the pod hop on every path. Replies leave from that same address (a UDP server bound to the
// wildcard picks its source by route), so UDP tests work as well as TCP.
//
// Pods get the MTU their path gives them (FLANNEL_MTU from subnet.env, 1450 for the reference), as the CNI bridge
// plugin would. Failures while building a path are reported as that path's failure; the run goes on.
import { readFileSync } from 'node:fs';
import { WeftError, errorMessage, ConfigError } from '../../src/errors.js';
import { formatIPv4, parseIPv4 } from '../../src/ip/subnet.js';
import { readSubnetEnv } from '../../src/lease/subnet-env.js';
import { bridge, ipBatch } from '../../src/net/iproute.js';
import { Cluster } from '../../testbed/cluster.js';
import type { Target } from '../../testbed/exec.js';
import type { Host } from '../../testbed/hosts.js';
import { ping } from '../../testbed/traffic.js';
import { buildPeer, PEER_NAMES, peerVersion, type PeerName } from './peers/index.js';

export type PathKind = 'underlay' | 'kernel-reference' | 'weft-kernel' | 'weft-userspace' | 'peer';

export interface PathDef {
  name: string;
  title: string;
  kind: PathKind;
  /** Backend.Type for daemon paths. */
  backend?: string;
  /** Extra `weft daemon` flags. */
  daemonArgs?: string[];
  /** Run only when named in --only. */
  optIn?: boolean;
  /** Inner IPv6 between pods on a dual-stack network (PublicIPv6 underlay); ratios against REFERENCE_PATH_V6. */
  ipv6?: boolean;
}

export const REFERENCE_PATH = 'kernel-vxlan';
/** The reference of the IPv6 rows: the kernel's flannel-v6.<VNI> VXLAN device in the same run. */
export const REFERENCE_PATH_V6 = 'kernel-vxlan-v6';
/** Where iperf3 and the ping-pong run: a pod behind cni0 on each host, or the hosts themselves. */
export type Topology = 'pods' | 'host';
export const METRICS_PORT = 8471;
const NETWORK = '10.5.0.0/16';
const NETWORK6 = 'fd00:5::/48';
const REFERENCE_MTU_OVERHEAD = 50; // VXLAN: outer IP 20 + UDP 8 + VXLAN 8 + inner Ethernet 14

const TIERS = ['dgram', 'batch', 'offload'] as const;
const ENCAPS = ['udp', 'vxlan', 'geneve'] as const;
const TIER_TITLES: Record<(typeof TIERS)[number], string> = {
  dgram: 'Node dgram socket, one packet per syscall',
  batch: 'recvmmsg/sendmmsg batches',
  offload: 'TUN TSO + UDP GSO/GRO super-packets',
};

export const ALL_PATHS: readonly PathDef[] = [
  { name: 'underlay', title: 'underlay: host to host on veth + bridge, no overlay', kind: 'underlay' },
  {
    name: 'kernel-vxlan',
    title: 'kernel VXLAN, flannel layout set up with iproute2 (reference)',
    kind: 'kernel-reference',
  },
  {
    name: 'host-gw',
    title: 'host-gw routes (weft daemon --datapath kernel)',
    kind: 'weft-kernel',
    backend: 'host-gw',
    daemonArgs: ['--datapath=kernel'],
  },
  {
    name: 'weft-kernel-vxlan',
    title: 'kernel VXLAN programmed by weft (--datapath kernel)',
    kind: 'weft-kernel',
    backend: 'vxlan',
    daemonArgs: ['--datapath=kernel'],
  },
  ...TIERS.flatMap((tier) =>
    ENCAPS.map((encap): PathDef => ({
      name: `${tier}/${encap}`,
      title: `weft ${tier} tier, ${encap} encap: ${TIER_TITLES[tier]}`,
      kind: 'weft-userspace',
      backend: encap,
      daemonArgs: [`--tier=${tier}`],
    })),
  ),
  ...(['batch', 'offload'] as const).map((tier): PathDef => ({
    name: `${tier}/wireguard`,
    title: `weft ${tier} tier, Backend wireguard (encrypted, wire-compatible with WireGuard): ${TIER_TITLES[tier]}`,
    kind: 'weft-userspace',
    backend: 'wireguard',
    daemonArgs: [`--tier=${tier}`],
  })),
  // IPv6 rows (opt-in: name them in --only): pod to pod over inner IPv6, VXLAN between the hosts' PublicIPv6.
  {
    name: REFERENCE_PATH_V6,
    title: "kernel VXLAN over IPv6, flannel's flannel-v6.1 layout (weft --datapath kernel; reference of the v6 rows)",
    kind: 'weft-kernel',
    backend: 'vxlan',
    daemonArgs: ['--datapath=kernel'],
    optIn: true,
    ipv6: true,
  },
  ...(['batch', 'offload'] as const).map((tier): PathDef => ({
    name: `${tier}/vxlan-v6`,
    title: `weft ${tier} tier, vxlan encap, inner IPv6 over an IPv6 underlay: ${TIER_TITLES[tier]}`,
    kind: 'weft-userspace',
    backend: 'vxlan',
    daemonArgs: [`--tier=${tier}`],
    optIn: true,
    ipv6: true,
  })),
  {
    name: 'offload-q2/vxlan',
    title: 'weft offload tier, vxlan encap, --queues 2 (flows spread over two TUN queues and sockets)',
    kind: 'weft-userspace',
    backend: 'vxlan',
    daemonArgs: ['--tier=offload', '--queues=2'],
    optIn: true,
  },
  ...PEER_NAMES.map((peer): PathDef => ({
    name: peer,
    kind: 'peer',
    // read when the run records the path: with the installed version once `weft bench` has installed the peers
    get title(): string {
      const v = peerVersion(peer);
      return `${PEER_TITLES[peer]}${v ? ` (Debian: ${v})` : ''}`;
    },
  })),
];

const PEER_TITLES: Record<PeerName, string> = {
  'wireguard-go': 'wireguard-go, userspace WireGuard (encrypted; configured with wg over UAPI)',
  nebula: 'nebula (encrypted; static host map, no lighthouse, pod subnets as unsafe_routes)',
  tinc: 'tinc 1.0, router mode (encrypted; default cipher)',
};

export const QUICK_PATHS: readonly string[] = ['underlay', 'kernel-vxlan', 'dgram/udp', 'batch/udp'];

/** The paths to run, in catalogue order; unknown names are a clear error. */
export function selectPaths(only: readonly string[] | undefined, quick: boolean): PathDef[] {
  const names = only ?? (quick ? QUICK_PATHS : ALL_PATHS.filter((p) => p.optIn !== true).map((p) => p.name));
  for (const n of names) {
    if (!ALL_PATHS.some((p) => p.name === n)) {
      throw new ConfigError(`unknown bench path "${n}"; paths: ${ALL_PATHS.map((p) => p.name).join(', ')}`);
    }
  }
  return ALL_PATHS.filter((p) => names.includes(p.name));
}

export interface DaemonInfo {
  ns: string;
  pid: number;
  metricsPort: number;
}

/** A built path: where to run the client and the server, and what to watch while tests run. */
export interface PathEnv {
  readonly def: PathDef;
  readonly cluster: Cluster;
  readonly client: Target;
  readonly server: Target;
  readonly serverIp: string;
  readonly hostNs: readonly string[];
  readonly endpointNs: readonly string[];
  readonly daemons: readonly DaemonInfo[];
  readonly mtu: number | null;
  /** Synchronous cleanups (peer temp folders, wireguard-go's socket), run last first after the cluster is gone. */
  readonly cleanups?: readonly (() => void)[];
}

/** Builds `def` on a fresh two-host cluster; on failure removes what it made and throws with the reason. */
export async function openPath(def: PathDef, topology: Topology = 'pods'): Promise<PathEnv> {
  if (def.ipv6 === true && topology !== 'pods') {
    throw new ConfigError(`bench path ${def.name} runs between pods only (--topology pods)`);
  }
  const cluster = await Cluster.create({
    hosts: 2,
    network: {
      Network: NETWORK,
      SubnetLen: 24,
      ...(def.ipv6 === true ? { EnableIPv6: true, IPv6Network: NETWORK6 } : {}),
      Backend: { Type: def.backend ?? 'vxlan' },
    },
  });
  const cleanups: (() => void)[] = [];
  try {
    const env = await build(def, cluster, cleanups, topology);
    await waitReachable(env);
    return env;
  } catch (e) {
    await cluster.destroy().catch(() => undefined);
    for (const f of cleanups.reverse()) f();
    throw e;
  }
}

export async function closePath(env: PathEnv): Promise<void> {
  await env.cluster.destroy();
  for (const f of [...(env.cleanups ?? [])].reverse()) f();
}

interface Endpoint {
  target: Target;
  ip: string;
  ns: string;
}

/** The endpoint on host h for the subnet whose first address is gatewayCidr: a pod, or h itself at the subnet's
 *  network address (which its overlay device holds). */
async function endpoint(
  tb: Cluster['tb'],
  h: Host,
  gatewayCidr: string,
  mtu: number | null,
  topology: Topology,
): Promise<Endpoint> {
  if (topology === 'pods') {
    const pod = await tb.addPod(h, gatewayCidr, mtu !== null ? { mtu } : {});
    return { target: pod, ip: pod.ip, ns: pod.ns };
  }
  const gateway = parseIPv4(gatewayCidr.split('/')[0]!)!;
  return { target: h, ip: formatIPv4(gateway - 1), ns: h.ns };
}

/** A pod attached by weft-cni on a dual-stack subnet.env, reached at its IPv6 address. */
async function endpoint6(cluster: Cluster, n: number): Promise<{ target: Target; ip: string; ns: string }> {
  const pod = await cluster.ensurePod(n);
  if (pod.ip6 === undefined) throw new WeftError('WEFT_ERR_BACKEND', `pod on h${n} got no IPv6 address from weft-cni`);
  return { target: pod, ip: pod.ip6, ns: pod.ns };
}

async function build(def: PathDef, cluster: Cluster, cleanups: (() => void)[], topology: Topology): Promise<PathEnv> {
  const tb = cluster.tb;
  const [h1, h2] = [tb.host(1), tb.host(2)];
  const hostNs = [h1.ns, h2.ns];
  if (def.kind === 'peer') {
    // The peer's processes stand in for weft's daemons (CPU, RSS); they have no /metrics (port 0).
    const p = await buildPeer(def.name as PeerName, cluster, cleanups);
    const [a, b] = p.pods;
    const daemons = p.daemons.map((d) => ({ ...d, metricsPort: 0 }));
    return {
      def,
      cluster,
      client: a,
      server: b,
      serverIp: b.ip,
      hostNs,
      endpointNs: [a.ns, b.ns],
      daemons,
      mtu: p.mtu,
      cleanups,
    };
  }
  if (def.kind === 'underlay') {
    // No overlay socket to watch: the hosts are the endpoints (iperf3's own socket drops count there).
    return {
      def,
      cluster,
      client: h1,
      server: h2,
      serverIp: h2.ip,
      hostNs: [],
      endpointNs: hostNs,
      daemons: [],
      mtu: tb.mtu,
    };
  }
  if (def.kind === 'kernel-reference') {
    const mtu = tb.mtu - REFERENCE_MTU_OVERHEAD;
    const hosts = [h1, h2].map((h) => ({
      h,
      subnet: `10.5.${h.n}`,
      mac: `0e:77:65:66:74:${h.n.toString(16).padStart(2, '0')}`,
    }));
    for (const me of hosts) {
      await ipBatch(
        [
          [
            'link',
            'add',
            'flannel.1',
            'address',
            me.mac,
            'type',
            'vxlan',
            'id',
            '1',
            'dstport',
            '8472',
            'local',
            me.h.ip,
            'dev',
            'eth0',
            'nolearning',
          ],
          ['link', 'set', 'flannel.1', 'mtu', String(mtu), 'up'],
          ['addr', 'add', `${me.subnet}.0/32`, 'dev', 'flannel.1'],
        ],
        { netns: me.h.ns },
      );
      for (const peer of hosts.filter((x) => x !== me)) {
        await ipBatch(
          [
            ['neigh', 'replace', `${peer.subnet}.0`, 'lladdr', peer.mac, 'dev', 'flannel.1', 'nud', 'permanent'],
            ['route', 'replace', `${peer.subnet}.0/24`, 'via', `${peer.subnet}.0`, 'dev', 'flannel.1', 'onlink'],
          ],
          { netns: me.h.ns },
        );
        await bridge(['fdb', 'append', peer.mac, 'dev', 'flannel.1', 'dst', peer.h.ip], { netns: me.h.ns });
      }
    }
    const [a, b] = [
      await endpoint(tb, h1, `${hosts[0]!.subnet}.1/24`, mtu, topology),
      await endpoint(tb, h2, `${hosts[1]!.subnet}.1/24`, mtu, topology),
    ];
    return overlayEnv(def, cluster, [a, b], [], mtu);
  }
  // A weft daemon on each host; pods on the leased subnets with FLANNEL_MTU.
  const daemons: DaemonInfo[] = [];
  let mtu: number | null = null;
  const pods = [];
  for (const h of [h1, h2]) {
    let d;
    try {
      d = await cluster.startDaemon(h.n, [...(def.daemonArgs ?? []), `--healthz-port=${METRICS_PORT}`]);
    } catch (e) {
      throw new WeftError('WEFT_ERR_BACKEND', `weft daemon did not start: ${daemonReason(e)}`);
    }
    const pid = d.child.pid;
    if (pid === undefined) throw new WeftError('WEFT_ERR_BACKEND', `weft daemon in ${h.name} has no pid`);
    daemons.push({ ns: h.ns, pid, metricsPort: METRICS_PORT });
    mtu = readSubnetEnv(d.subnetFile)?.mtu ?? null;
    pods.push(
      def.ipv6 === true ? await endpoint6(cluster, h.n) : await endpoint(tb, h, d.subnetGateway, mtu, topology),
    );
  }
  return overlayEnv(def, cluster, [pods[0]!, pods[1]!], daemons, mtu);
}

/** An overlay path between endpoint a (the client, on h1) and b (the server, on h2). */
function overlayEnv(
  def: PathDef,
  cluster: Cluster,
  [a, b]: readonly [Endpoint, Endpoint],
  daemons: DaemonInfo[],
  mtu: number | null,
): PathEnv {
  return {
    def,
    cluster,
    client: a.target,
    server: b.target,
    serverIp: b.ip,
    hostNs: [cluster.tb.host(1).ns, cluster.tb.host(2).ns],
    endpointNs: [a.ns, b.ns],
    daemons,
    mtu,
  };
}

// The daemon's log is pino JSON; the useful part of a failed start is the last error's message.
function daemonReason(e: unknown): string {
  const text = errorMessage(e);
  const msgs = [...text.matchAll(/"(?:err|msg)":"((?:[^"\\]|\\.)*)"/g)].map((m) => m[1]!);
  const weft = /^weft: (.*)$/m.exec(text)?.[1];
  const why = weft ?? msgs[msgs.length - 1] ?? text;
  return why.replace(/\\"/g, '"').slice(0, 400);
}

/** Pings server from client until it answers (peers learn each other through etcd), bounded to 15 s. */
async function waitReachable(env: PathEnv): Promise<void> {
  const deadline = Date.now() + 15_000;
  let last = '';
  while (Date.now() < deadline) {
    const r = await ping(env.client, env.serverIp, { count: 1, timeoutSec: 1 });
    if (r.ok) return;
    last = r.output.trim().split('\n').slice(-2).join(' ');
    for (const d of env.daemons) {
      if (!isAlive(d.pid)) throw new WeftError('WEFT_ERR_BACKEND', `weft daemon in ${d.ns} exited`);
    }
  }
  throw new WeftError('WEFT_ERR_BACKEND', `${env.serverIp} not reachable from the client within 15 s: ${last}`);
}

function isAlive(pid: number): boolean {
  try {
    return !/^\d+ \([^)]*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}
