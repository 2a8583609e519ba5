// A weft cluster on namespace hosts: the testbed's hosts, one etcd in the bridge namespace, a network config, and a
// weft daemon per host started from the built CLI (dist/). Used by `weft demo`, the bench and the integration tests.
//
//   bridge netns w<id>-br: bridge wbr<id> 198.18.<id>.254, etcd :2379
//   host netns w<id>-hN:   eth0 198.18.<id>.N, weft daemon -> TUN weft0, cni0 = FLANNEL_SUBNET gateway
//   pod netns w<id>-hN-pod: eth0 = FLANNEL_SUBNET .2, default route via cni0
//
// Pods are made as a CNI runtime makes them: weft-cni ADD from dist/, delegating to the real bridge and host-local
// plugins (Debian's containernetworking-plugins, /usr/lib/cni), with every piece of CNI state (weft-cni's records,
// host-local's reservations) under the cluster's temp directory and DEL run on destroy(). Without the plugins a pod
// is refused with a line naming the package: a hand-made pod standing in would test less than it claims. A caller
// that wants one says so (ensurePod(n, { via: 'manual' })).
import type { ChildProcess } from 'node:child_process';
import {
  chmodSync,
  createWriteStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
} from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { WeftError, ConfigError } from '../src/errors.js';
import { readSubnetEnv } from '../src/lease/subnet-env.js';
import { formatIPv4, formatSubnet, firstHost } from '../src/ip/subnet.js';
import { formatSubnet6 } from '../src/ip/ipv6.js';
import { NO_IPV4, subnetsToKey } from '../src/ip/subnet-key.js';
import { startEtcd, startEtcdCluster, type EtcdCluster, type EtcdServer } from './etcd.js';
import { createTestbed, type Host, type Pod, type Testbed } from './hosts.js';
import { killChild } from './exec.js';

import { PACKAGE_ROOT, WEFT_CLI } from '../src/package-root.js';
import { sleep } from '../src/util/sleep.js';

export { PACKAGE_ROOT, WEFT_CLI };
export const PREFIX = '/coreos.com/network';

function writtenSince(file: string, ms: number): boolean {
  try {
    return statSync(file).mtimeMs >= ms - 50; // file times come from a coarser clock than Date.now()
  } catch {
    return false;
  }
}
/** The CNI plugin as built, and where Debian's containernetworking-plugins puts bridge, host-local, loopback. */
export const WEFT_CNI = join(PACKAGE_ROOT, 'dist', 'src', 'cni', 'main.js');
export const SYSTEM_CNI_DIR = '/usr/lib/cni';
const DELEGATES = ['bridge', 'host-local', 'loopback'];

/** A pod made by weft-cni ADD: the testbed's Pod plus what DEL needs and what ADD returned. */
export interface CniPod extends Pod {
  containerId: string;
  /** CNI_NETNS given to the plugin. */
  netnsPath: string;
  /** The plugin's ADD result (CNI result JSON). */
  result: unknown;
}

export interface CniRun {
  code: number | null;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON, undefined when empty or not JSON. */
  json: unknown;
}

export interface CniCall {
  containerId?: string;
  netns?: string;
  ifName?: string;
  /** The network config on stdin: an object (JSON-encoded) or raw text; default cniNetConf(n). */
  conf?: Record<string, unknown> | string;
}

export interface ClusterOptions {
  hosts: number;
  /** `<prefix>/config` JSON. */
  network: Record<string, unknown>;
  mtu?: number;
  /**
   * Run etcd as a cluster of this many members instead of one etcd in the bridge namespace: each member gets a
   * namespace host of its own (tb.addHost(), numbered after the weft hosts) and listens on its underlay IP.
   * `etcd` then acts on all members and `etcdCluster` reaches each one.
   */
  etcdMembers?: number;
  /** Where the standard CNI plugins (bridge, host-local, loopback) are; default SYSTEM_CNI_DIR. */
  cniDir?: string;
}

export interface DaemonHandle {
  readonly host: Host;
  readonly child: ChildProcess;
  readonly subnetFile: string;
  readonly logFile: string;
  /** FLANNEL_SUBNET as "10.5.3.1/24" once the daemon wrote subnet.env ("" in an IPv6-only network). */
  readonly subnetGateway: string;
}

// Temp folders of live clusters; an interrupted run (Ctrl-C in the bench) removes them on the way out.
const liveDirs = new Set<string>();
process.on('exit', () => {
  for (const d of liveDirs) rmSync(d, { recursive: true, force: true });
});

/** The node flags of the `weft` bin's shebang (`#!/usr/bin/env -S node <flags>`): daemons run as the bin runs them. */
function binNodeFlags(): string[] {
  const first = readFileSync(WEFT_CLI, 'utf8').split('\n', 1)[0] ?? '';
  const flags = /^#!\/usr\/bin\/env -S node (.+)$/.exec(first)?.[1];
  return flags === undefined ? [] : flags.trim().split(/\s+/);
}

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'weft-cluster-'));
  liveDirs.add(d);
  return d;
}

export class Cluster {
  readonly daemons = new Map<number, DaemonHandle>();
  readonly pods = new Map<number, Pod>();
  /** Pods attached through weft-cni, by container ID; destroy() runs DEL for each. */
  readonly cniPods = new Map<string, CniPod>();
  private cniBin: string | undefined;
  private readonly dir = tempDir();

  private constructor(
    readonly tb: Testbed,
    readonly etcd: EtcdServer,
    readonly etcdCluster: EtcdCluster | undefined,
    private readonly cniDir: string,
  ) {}

  static async create(opts: ClusterOptions): Promise<Cluster> {
    const tb = await createTestbed({ hosts: opts.hosts, mtu: opts.mtu });
    const cniDir = opts.cniDir ?? SYSTEM_CNI_DIR;
    try {
      let c: Cluster;
      if (opts.etcdMembers !== undefined && opts.etcdMembers > 1) {
        const hosts: Host[] = [];
        for (let i = 0; i < opts.etcdMembers; i++) hosts.push(await tb.addHost());
        const ec = await startEtcdCluster({
          members: hosts.map((h) => ({ netns: h.ns, host: h.ip })),
          ctlNetns: tb.bridgeNs,
        });
        c = new Cluster(tb, clusterAsServer(ec), ec, cniDir);
      } else {
        c = new Cluster(tb, await startEtcd({ host: tb.bridgeIP, port: 2379, netns: tb.bridgeNs }), undefined, cniDir);
      }
      await c.etcdctl(['put', `${PREFIX}/config`, JSON.stringify(opts.network)]);
      return c;
    } catch (e) {
      await tb.destroy();
      throw e;
    }
  }

  get endpoint(): string {
    return this.etcd.endpoint;
  }

  /** etcdctl (API v3) run in the bridge namespace, next to etcd. */
  async etcdctl(args: string[]): Promise<string> {
    const r = await this.tb.exec(this.tb.bridgeNs, ['etcdctl', `--endpoints=${this.endpoint}`, ...args], {
      env: { ...process.env, ETCDCTL_API: '3' },
      timeoutMs: 10_000,
    });
    if (r.code !== 0) throw new WeftError('WEFT_ERR_ETCD', `etcdctl ${args.join(' ')}: ${r.stderr.trim()}`);
    return r.stdout;
  }

  /** The weft CLI run in a namespace (default: the bridge's, where etcd is). */
  async weft(args: string[], ns = this.tb.bridgeNs): Promise<string> {
    const r = await this.tb.exec(ns, [process.execPath, WEFT_CLI, ...args], { timeoutMs: 20_000 });
    if (r.code !== 0) throw new WeftError('WEFT_ERR_BACKEND', `weft ${args.join(' ')}: ${r.stderr.trim()}`);
    return r.stdout;
  }

  subnetFile(n: number): string {
    return join(this.dir, `h${n}`, 'subnet.env');
  }

  /** Host n's WireGuard private key file (backend wireguard creates it on first start). */
  wgKeyFile(n: number): string {
    return join(this.dir, `h${n}`, 'wgkey');
  }

  /** Host n's lease subnet ("10.5.3.0/24") as its subnet.env says; null before its daemon wrote one. */
  subnetOf(n: number): string | null {
    const env = readSubnetEnv(this.subnetFile(n));
    return env?.subnet ? formatSubnet(env.subnet) : null;
  }

  /** Host n's IPv6 lease subnet ("fd00:5:0:3::/64") as its subnet.env says; null without one. */
  ipv6SubnetOf(n: number): string | null {
    const env = readSubnetEnv(this.subnetFile(n));
    return env?.ipv6Subnet ? formatSubnet6(env.ipv6Subnet) : null;
  }

  /**
   * Host n's lease key in etcd (`<prefix>/subnets/10.5.3.0-24`, dual-stack `...-24&fd00:5:0:3::-64`); null before
   * its daemon wrote subnet.env.
   */
  leaseKeyOf(n: number): string | null {
    const env = readSubnetEnv(this.subnetFile(n));
    return env ? `${PREFIX}/subnets/${subnetsToKey(env.subnet ?? NO_IPV4, env.ipv6Subnet)}` : null;
  }

  /**
   * Starts `weft daemon` in host n and waits until it has written subnet.env (bounded). `args` are extra daemon
   * flags such as ['--tier', 'dgram'].
   */
  async startDaemon(n: number, args: string[] = [], timeoutMs = 20_000): Promise<DaemonHandle> {
    const host = this.tb.host(n);
    const subnetFile = this.subnetFile(n);
    const logFile = join(this.dir, `h${n}.log`);
    const started = Date.now();
    const child = this.tb.spawn(
      host,
      [
        process.execPath,
        ...binNodeFlags(),
        WEFT_CLI,
        'daemon',
        `--etcd-endpoints=${this.endpoint}`,
        '--iface=eth0',
        `--subnet-file=${subnetFile}`,
        '--log-level=info',
        ...args,
      ],
      // Namespace hosts share one filesystem: each gets its own WireGuard key file (flannel's WIREGUARD_KEY_FILE),
      // kept across restarts like the subnet file.
      { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, WIREGUARD_KEY_FILE: this.wgKeyFile(n) } },
    );
    const log = createWriteStream(logFile, { flags: 'a' });
    child.stderr?.pipe(log);
    // The daemon reads the previous subnet.env (flannel's reuse rule), so keep it; a write after the spawn is the sign
    // that this daemon has its lease.
    for (;;) {
      const env = writtenSince(subnetFile, started) ? readSubnetEnv(subnetFile) : null;
      if (env) {
        const handle: DaemonHandle = {
          host,
          child,
          subnetFile,
          logFile,
          subnetGateway: env.subnet ? `${formatIPv4(firstHost(env.subnet))}/${env.subnet.prefixLen}` : '',
        };
        this.daemons.set(n, handle);
        return handle;
      }
      if (child.exitCode !== null || child.signalCode !== null || Date.now() - started > timeoutMs) {
        await killChild(child);
        throw new WeftError(
          'WEFT_ERR_BACKEND',
          `weft daemon in h${n} did not write ${subnetFile}: ${this.logTail(logFile)}`,
        );
      }
      await sleep(100);
    }
  }

  logTail(file: string, lines = 15): string {
    try {
      return readFileSync(file, 'utf8').trim().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }

  /** SIGTERM (a clean stop that keeps the lease) or SIGKILL (a crash). */
  async stopDaemon(n: number, signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<void> {
    const d = this.daemons.get(n);
    if (!d) return;
    this.daemons.delete(n);
    if (signal === 'SIGKILL') d.child.kill('SIGKILL');
    await killChild(d.child);
  }

  /**
   * A pod behind host n's cni0 on the daemon's FLANNEL_SUBNET. `via: 'cni'` (the default) attaches it with weft-cni
   * ADD and throws when the CNI plugins are missing; `via: 'manual'` uses the testbed's hand-made pod.
   */
  async ensurePod(n: number, opts: { via?: 'cni' | 'manual' } = {}): Promise<Pod> {
    const have = this.pods.get(n);
    if (have) return have;
    const d = this.daemons.get(n);
    if (!d) throw new WeftError('WEFT_ERR_BACKEND', `no daemon in h${n}: start it before adding its pod`);
    const pod = opts.via === 'manual' ? await this.tb.addPod(d.host, d.subnetGateway) : await this.addCniPod(n);
    this.pods.set(n, pod);
    return pod;
  }

  /**
   * CNI_PATH for this cluster: weft-cni (dist/src/cni/main.js, made executable) and Debian's delegates, as symlinks in
   * one temp directory, the way a runtime finds plugins.
   */
  cniPath(): string {
    if (this.cniBin !== undefined) return this.cniBin;
    if (!existsSync(WEFT_CNI)) throw new ConfigError(`${WEFT_CNI} is missing: build first (npx tsc -p .)`);
    const missing = DELEGATES.filter((p) => !existsSync(join(this.cniDir, p)));
    if (missing.length > 0) {
      throw new ConfigError(
        `CNI plugins missing in ${this.cniDir}: ${missing.join(', ')}; install containernetworking-plugins ` +
          '(scripts/setup.sh does)',
      );
    }
    const bin = join(this.dir, 'cni-bin');
    mkdirSync(bin, { recursive: true });
    chmodSync(WEFT_CNI, 0o755); // tsc writes 0644; a runtime execs the file itself
    symlinkSync(WEFT_CNI, join(bin, 'weft-cni'));
    for (const p of DELEGATES) symlinkSync(join(this.cniDir, p), join(bin, p));
    this.cniBin = bin;
    return bin;
  }

  /**
   * weft-cni's network config for host n: its subnet.env, and every state directory (weft-cni's records,
   * host-local's reservations) under the cluster's temp directory so nothing lands in the machine's /var/lib/cni.
   * The delegate is kube-flannel's (hairpin, default route via cni0) with ipMasq off: weft's daemon does no NAT, and
   * the bridge's masquerade would rewrite pod-to-pod sources (the hand-made pods have none either).
   */
  cniNetConf(n: number): Record<string, unknown> {
    return {
      cniVersion: '1.0.0',
      name: 'weft',
      type: 'weft-cni',
      subnetFile: this.subnetFile(n),
      dataDir: join(this.dir, `h${n}`, 'cni'),
      ipam: { dataDir: join(this.dir, `h${n}`, 'ipam') },
      delegate: { hairpinMode: true, isDefaultGateway: true, ipMasq: false },
    };
  }

  /** Runs weft-cni `command` in host n's namespace as a runtime would (bounded); never rejects on a CNI error. */
  async cni(n: number, command: string, call: CniCall = {}): Promise<CniRun> {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      // The shebang is `/usr/bin/env node`: make sure it finds the node running us.
      PATH: `${dirname(process.execPath)}:${process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'}`,
      CNI_COMMAND: command,
      CNI_PATH: this.cniPath(),
    };
    if (call.containerId !== undefined) env.CNI_CONTAINERID = call.containerId;
    if (call.netns !== undefined) env.CNI_NETNS = call.netns;
    env.CNI_IFNAME = call.ifName ?? 'eth0';
    const conf = call.conf ?? this.cniNetConf(n);
    const r = await this.tb.exec(this.tb.host(n), [join(this.cniPath(), 'weft-cni')], {
      env,
      input: typeof conf === 'string' ? conf : JSON.stringify(conf),
      timeoutMs: 30_000,
    });
    let json: unknown;
    try {
      json = r.stdout.trim() === '' ? undefined : JSON.parse(r.stdout);
    } catch {
      json = undefined;
    }
    return { code: r.code, stdout: r.stdout, stderr: r.stderr, json };
  }

  /**
   * A new pod on host n attached by weft-cni ADD (any number per host); its address is host-local's pick. `conf`
   * replaces the network config (default cniNetConf(n)); keep its dataDir so destroy()'s DEL finds the record.
   */
  async addCniPod(n: number, conf?: Record<string, unknown>): Promise<CniPod> {
    const d = this.daemons.get(n);
    if (!d) throw new WeftError('WEFT_ERR_BACKEND', `no daemon in h${n}: start it before adding its pod`);
    this.cniPath(); // the plugins first: without them, no namespace to clean up
    // A bare namespace, registered with the testbed for cleanup; the CNI plugins build its links and addresses.
    const pod = await this.tb.addPod(d.host, d.subnetGateway, { bare: true });
    const containerId = pod.ns;
    const netnsPath = `/run/netns/${pod.ns}`;
    const r = await this.cni(n, 'ADD', { containerId, netns: netnsPath, conf });
    const addr = cniResultAddress(r.json);
    if (r.code !== 0 || addr === undefined) {
      throw new WeftError(
        'WEFT_ERR_BACKEND',
        `weft-cni ADD in h${n} failed (exit ${r.code}): ${r.stdout.trim()} ${r.stderr.trim()}`,
      );
    }
    const cniPod = Object.assign(pod, {
      ip: addr.ip,
      cidr: addr.cidr,
      gateway: addr.gateway ?? pod.gateway,
      ...(addr.ip6 !== undefined ? { ip6: addr.ip6 } : {}),
      containerId,
      netnsPath,
      result: r.json,
    });
    this.cniPods.set(containerId, cniPod);
    return cniPod;
  }

  /** weft-cni DEL for a pod made by addCniPod; the namespace stays (the testbed removes it). */
  async delCniPod(pod: CniPod): Promise<CniRun> {
    const r = await this.cni(pod.host, 'DEL', { containerId: pod.containerId, netns: pod.netnsPath });
    if (r.code === 0) this.cniPods.delete(pod.containerId);
    return r;
  }

  async destroy(): Promise<void> {
    // DEL while the namespaces still exist; best effort, the namespaces and temp directory go anyway.
    for (const pod of [...this.cniPods.values()]) await this.delCniPod(pod).catch(() => undefined);
    for (const n of [...this.daemons.keys()]) await this.stopDaemon(n);
    await this.etcd.stop().catch(() => undefined);
    await this.tb.destroy();
    await this.etcd.wipe().catch(() => undefined);
    await rm(this.dir, { recursive: true, force: true });
    liveDirs.delete(this.dir);
  }
}

/** A multi-member cluster behind the single-server interface: each operation acts on every member. */
function clusterAsServer(ec: EtcdCluster): EtcdServer {
  const first = ec.members[0]!;
  return {
    endpoint: ec.endpoint,
    clientPort: 2379,
    peerPort: 2380,
    dataDir: first.dataDir,
    get pid() {
      return first.pid;
    },
    stop: () => ec.stop(),
    kill: async () => {
      await Promise.all(ec.members.map((m) => m.kill()));
    },
    restart: async () => {
      await ec.stop();
      await Promise.all(ec.members.map((m) => m.start()));
    },
    wipe: () => ec.wipe(),
  };
}

/**
 * The first IPv4 address of a CNI result (any version from 0.3.0 on: `ips[].address` with prefix length), and the
 * first IPv6 address when there is one (a dual-stack subnet.env).
 */
function cniResultAddress(
  result: unknown,
): { ip: string; cidr: string; gateway: string | undefined; ip6: string | undefined } | undefined {
  if (typeof result !== 'object' || result === null) return undefined;
  const ips = (result as { ips?: unknown }).ips;
  if (!Array.isArray(ips)) return undefined;
  let v4: { ip: string; cidr: string; gateway: string | undefined } | undefined;
  let ip6: string | undefined;
  for (const e of ips as unknown[]) {
    if (typeof e !== 'object' || e === null) continue;
    const { address, gateway } = e as { address?: unknown; gateway?: unknown };
    if (typeof address !== 'string') continue;
    const m = /^(\d+\.\d+\.\d+\.\d+)\/\d+$/.exec(address);
    if (m && v4 === undefined)
      v4 = { ip: m[1]!, cidr: address, gateway: typeof gateway === 'string' ? gateway : undefined };
    const m6 = /^([0-9a-fA-F:]*:[0-9a-fA-F:]*)\/\d+$/.exec(address);
    if (m6 && ip6 === undefined) ip6 = m6[1];
  }
  return v4 === undefined ? undefined : { ...v4, ip6 };
}
