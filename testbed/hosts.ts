// Network-namespace testbed for tests, `weft demo` and `weft bench`. Nothing here touches the root namespace's
// links or routes (the root namespace is the CI machine) unless `rootLink` is asked for.
//
//   netns "w<id>-br": bridge wbr<id>, address 198.18.<id>.254/24   <- run etcd here (tb.spawn(tb.bridgeNs, ...))
//                     ports h1, h2, h3 ... (+ "root" with rootLink)
//                                   │
//   h1 ── veth ──┐                  │   198.18.<id>.0/24 (RFC 2544 benchmark range, private to our namespaces)
//   h2 ── veth ──┼── wbr<id> ───────┘
//   h3 ── veth ──┘
//   (root ns) w<id>-root 198.18.<id>.253/24 ── veth ──┘   only with rootLink: a process in the root namespace
//                                                         (the test runner's etcd client) reaches the underlay
//
//   each host hN: netns "w<id>-hN", underlay eth0 198.18.<id>.N/24, default route via .254 (so the daemon's
//   "interface of the default route" is eth0; the bridge netns does not forward, so stray traffic dies there).
//   The underlay is dual-stack: eth0 also has fd77:6566:74:<id>::N/64 (a ULA /64 private to our namespaces, no
//   DAD) with a default route via the bridge's ::254, so IPv6 overlays have a PublicIPv6 (ipv6: false leaves it out).
//   addPod(hN, "10.5.3.1/24"):   hN: cni0 10.5.3.1/24 ── veth ── netns "w<id>-hN-pod": eth0 10.5.3.2/24,
//                                default via 10.5.3.1; hN gets ip_forward=1 and rp_filter=0.
//
// Weft daemons run in hN, use 198.18.<id>.N (eth0) as PublicIP and reach etcd at http://198.18.<id>.254:2379.
//
// Commands in the namespaces: exec.ts; ping and iperf3: traffic.ts; nothing left behind: cleanup.ts.
import type { ChildProcess } from 'node:child_process';
import { errorMessage } from '../src/errors.js';
import { silentLogger, type Logger } from '../src/log.js';
import { ip, ipBatch, linkDel } from '../src/net/iproute.js';
import { formatIPv4, parseIPv4 } from '../src/ip/subnet.js';
import { claimMarker, cleanupStale, installHandlers, listNamespaces, registry, releaseMarker } from './cleanup.js';
import {
  TestbedError,
  execIn,
  killChild,
  nsOf,
  spawnIn,
  type ExecOptions,
  type ExecResult,
  type SpawnOptions,
  type Target,
} from './exec.js';

const MAX_HOSTS = 250; // .253 and .254 are taken

export interface Pod {
  ns: string;
  /** Pod address without prefix length (gateway + k). */
  ip: string;
  /** Pod address with prefix length. */
  cidr: string;
  /** The pod's IPv6 address when it has one (weft-cni on a dual-stack subnet.env). */
  ip6?: string;
  /** cni0 address in the host. */
  gateway: string;
  /** Number n of the host hN that carries it. */
  host: number;
  dev: 'eth0';
}

export interface Host {
  n: number;
  /** "h1" */
  name: string;
  /** "w<id>-h1" */
  ns: string;
  /** Underlay address 198.18.<id>.n */
  ip: string;
  /** Underlay address with prefix length. */
  cidr: string;
  /** IPv6 underlay address fd77:6566:74:<id>::n, when the testbed has an IPv6 underlay. */
  ip6: string | undefined;
  /** Underlay device inside ns. */
  dev: 'eth0';
  pods: Pod[];
}

export interface TestbedOptions {
  hosts: number;
  /** 1..254; random unused id by default, so parallel runs don't clash. */
  id?: number;
  /** Underlay MTU on the bridge and veths (default 1500). */
  mtu?: number;
  /** Add a veth into the root namespace with 198.18.<id>.253/24 (see header). */
  rootLink?: boolean;
  /** Give the underlay IPv6 addresses too (default true; see header). */
  ipv6?: boolean;
  /** Install SIGINT/SIGTERM handlers that clean up and re-raise (default true). Pass false if the caller
   * handles signals itself and calls destroy(); the 'exit' handler is always installed. */
  handleSignals?: boolean;
  log?: Logger;
}

export interface Testbed {
  readonly id: number;
  /** Live list, ordered by n. */
  readonly hosts: readonly Host[];
  readonly bridgeNs: string;
  readonly bridgeDev: string;
  /** 198.18.<id>.254: the bridge netns' own address; run etcd there. */
  readonly bridgeIP: string;
  /** 198.18.<id>.253 in the root namespace when rootLink was asked for. */
  readonly rootIP: string | undefined;
  /** "198.18.<id>.0/24" */
  readonly underlayCidr: string;
  /** "fd77:6566:74:<id>::/64", or undefined without an IPv6 underlay. */
  readonly underlayCidr6: string | undefined;
  /** fd77:6566:74:<id>::254, the bridge netns' IPv6 address, or undefined without an IPv6 underlay. */
  readonly bridgeIP6: string | undefined;
  readonly mtu: number;
  hostIP(n: number): string;
  /** fd77:6566:74:<id>::n (undefined without an IPv6 underlay). */
  hostIP6(n: number): string | undefined;
  host(n: number): Host;
  exec(target: Target, argv: string[], opts?: ExecOptions): Promise<ExecResult>;
  spawn(target: Target, argv: string[], opts?: SpawnOptions): ChildProcess;
  addHost(): Promise<Host>;
  removeHost(host: Host | number): Promise<void>;
  /** gatewayCidr like "10.5.3.1/24": cni0 gets it in the host, the k-th pod gets gateway + k. `bare`: only the
   *  registered namespace, for a CNI plugin to wire up. */
  addPod(host: Host | number, gatewayCidr: string, opts?: { mtu?: number; bare?: boolean }): Promise<Pod>;
  destroy(): Promise<void>;
}

// ---- small helpers ----

/** The IPv6 underlay's /64 for testbed `id`: a ULA prefix that only our namespaces use. */
function underlay6(id: number): string {
  return `fd77:6566:74:${id}::`;
}

function ipToInt(a: string): number {
  const ip = parseIPv4(a);
  if (ip === null) throw new TestbedError(`not an IPv4 address: ${a}`);
  return ip;
}

async function sysctl(ns: string, settings: Record<string, string | number>): Promise<void> {
  const args = Object.entries(settings).map(([k, v]) => `${k}=${v}`);
  const r = await execIn(ns, ['sysctl', '-q', '-w', ...args], { timeoutMs: 10_000 });
  if (r.code !== 0) throw new TestbedError(`sysctl ${args.join(' ')} in ${ns} failed: ${r.stderr.trim()}`);
}

// ---- the testbed ----

class TestbedImpl implements Testbed {
  readonly hosts: Host[] = [];
  readonly bridgeNs: string;
  readonly bridgeDev: string;
  readonly bridgeIP: string;
  readonly underlayCidr: string;
  readonly underlayCidr6: string | undefined;
  readonly bridgeIP6: string | undefined;
  rootIP: string | undefined;
  private rootDev: string | undefined;
  private readonly nsSet = new Set<string>();
  private destroyed = false;

  constructor(
    readonly id: number,
    readonly mtu: number,
    private readonly log: Logger,
    private readonly ipv6: boolean,
  ) {
    this.bridgeNs = `w${id}-br`;
    this.bridgeDev = `wbr${id}`;
    this.bridgeIP = `198.18.${id}.254`;
    this.underlayCidr = `198.18.${id}.0/24`;
    this.underlayCidr6 = ipv6 ? `${underlay6(id)}/64` : undefined;
    this.bridgeIP6 = ipv6 ? `${underlay6(id)}254` : undefined;
  }

  hostIP(n: number): string {
    return `198.18.${this.id}.${n}`;
  }

  hostIP6(n: number): string | undefined {
    return this.ipv6 ? `${underlay6(this.id)}${n}` : undefined;
  }

  host(n: number): Host {
    const h = this.hosts.find((x) => x.n === n);
    if (!h) throw new TestbedError(`testbed ${this.id} has no host h${n}`);
    return h;
  }

  private resolve(target: Target): string {
    const ns = nsOf(target);
    if (!this.nsSet.has(ns)) throw new TestbedError(`${ns} is not a namespace of testbed ${this.id}`);
    return ns;
  }

  // Record before creating, so a crash half-way still gets cleaned.
  private async addNs(ns: string): Promise<void> {
    this.nsSet.add(ns);
    registry.namespaces.add(ns);
    await ip(['netns', 'add', ns]);
  }

  private async delNs(ns: string): Promise<void> {
    await Promise.all([...registry.children].filter(([, n]) => n === ns).map(([child]) => killChild(child)));
    const left = (await ip(['netns', 'pids', ns]).catch(() => '')).trim();
    if (left !== '') this.log.warn({ ns, pids: left.split('\n') }, 'testbed: untracked processes keep the netns alive');
    try {
      await ip(['netns', 'del', ns]);
    } catch (e) {
      this.log.warn({ ns, err: errorMessage(e) }, 'testbed: netns del failed');
    }
    this.nsSet.delete(ns);
    registry.namespaces.delete(ns);
  }

  async setupBridge(rootLink: boolean): Promise<void> {
    await this.addNs(this.bridgeNs);
    const mtu = String(this.mtu);
    // STP off (the default) makes new ports forward at once.
    await ipBatch(
      [
        ['link', 'set', 'lo', 'up'],
        ['link', 'add', this.bridgeDev, 'mtu', mtu, 'type', 'bridge'],
        ['addr', 'add', `${this.bridgeIP}/24`, 'dev', this.bridgeDev],
        ...(this.bridgeIP6 !== undefined
          ? [['addr', 'add', `${this.bridgeIP6}/64`, 'dev', this.bridgeDev, 'nodad']]
          : []),
        ['link', 'set', this.bridgeDev, 'up'],
      ],
      { netns: this.bridgeNs },
    );
    if (rootLink) {
      const rootDev = `w${this.id}-root`;
      this.rootIP = `198.18.${this.id}.253`;
      this.rootDev = rootDev;
      registry.rootLinks.add(rootDev);
      // Created in this process's namespace with the peer pushed into the bridge netns, so deleting the bridge
      // netns removes both ends.
      await ipBatch([
        [
          'link',
          'add',
          rootDev,
          'mtu',
          mtu,
          'type',
          'veth',
          'peer',
          'name',
          'root',
          'mtu',
          mtu,
          'netns',
          this.bridgeNs,
        ],
      ]);
      await ipBatch([['link', 'set', 'root', 'master', this.bridgeDev, 'up']], { netns: this.bridgeNs });
      await ipBatch([
        ['addr', 'add', `${this.rootIP}/24`, 'dev', rootDev],
        ['link', 'set', rootDev, 'up'],
      ]);
    }
  }

  async addHost(): Promise<Host> {
    const n = this.hosts.reduce((m, h) => Math.max(m, h.n), 0) + 1;
    if (n > MAX_HOSTS) throw new TestbedError(`testbed ${this.id}: at most ${MAX_HOSTS} hosts`);
    const h: Host = {
      n,
      name: `h${n}`,
      ns: `w${this.id}-h${n}`,
      ip: this.hostIP(n),
      cidr: `${this.hostIP(n)}/24`,
      ip6: this.hostIP6(n),
      dev: 'eth0',
      pods: [],
    };
    // Reserve n synchronously so parallel addHost() calls get different numbers.
    this.hosts.push(h);
    this.hosts.sort((a, b) => a.n - b.n);
    const mtu = String(this.mtu);
    try {
      await this.addNs(h.ns);
      await ipBatch(
        [
          ['link', 'add', h.name, 'mtu', mtu, 'type', 'veth', 'peer', 'name', 'eth0', 'mtu', mtu, 'netns', h.ns],
          ['link', 'set', h.name, 'master', this.bridgeDev, 'up'],
        ],
        { netns: this.bridgeNs },
      );
      await ipBatch(
        [
          ['link', 'set', 'lo', 'up'],
          ['addr', 'add', h.cidr, 'dev', 'eth0'],
          ['link', 'set', 'eth0', 'up'],
          ['route', 'add', 'default', 'via', this.bridgeIP, 'dev', 'eth0'],
          ...(h.ip6 !== undefined && this.bridgeIP6 !== undefined
            ? [
                ['addr', 'add', `${h.ip6}/64`, 'dev', 'eth0', 'nodad'],
                ['route', 'add', 'default', 'via', this.bridgeIP6, 'dev', 'eth0'],
              ]
            : []),
        ],
        { netns: h.ns },
      );
      // Overlays route asymmetrically (TUN in, eth0 out); strict reverse-path filtering would drop that.
      await sysctl(h.ns, { 'net.ipv4.conf.all.rp_filter': 0, 'net.ipv4.conf.default.rp_filter': 0 });
    } catch (e) {
      await this.removeHost(h).catch(() => undefined);
      throw e;
    }
    this.log.debug({ testbed: this.id, host: h.name, ip: h.ip }, 'testbed: host up');
    return h;
  }

  async removeHost(host: Host | number): Promise<void> {
    const h = typeof host === 'number' ? this.host(host) : host;
    const i = this.hosts.indexOf(h);
    if (i >= 0) this.hosts.splice(i, 1);
    for (const p of h.pods) await this.delNs(p.ns);
    h.pods.length = 0;
    // Deleting the netns would take the bridge-side veth along, but asynchronously; delete it now so a new hN
    // can reuse the name at once.
    if (this.nsSet.has(this.bridgeNs)) await linkDel(h.name, { netns: this.bridgeNs }).catch(() => false);
    if (this.nsSet.has(h.ns)) await this.delNs(h.ns);
  }

  /** `bare`: only the pod's namespace (registered for cleanup); a CNI plugin builds its links and addresses. */
  async addPod(host: Host | number, gatewayCidr: string, opts: { mtu?: number; bare?: boolean } = {}): Promise<Pod> {
    const h = typeof host === 'number' ? this.host(host) : host;
    const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d+)$/.exec(gatewayCidr);
    if (!m) throw new TestbedError(`addPod: want "a.b.c.d/len", got ${gatewayCidr}`);
    const gateway = m[1]!;
    const len = Number(m[2]);
    if (len < 1 || len > 30) throw new TestbedError(`addPod: prefix length ${len} leaves no room for pods`);
    const first = h.pods[0];
    if (first !== undefined && (first.gateway !== gateway || first.cidr !== `${first.ip}/${len}`)) {
      throw new TestbedError(`addPod: ${h.name} already has pods behind ${first.gateway}; one pod subnet per host`);
    }
    const k = h.pods.length + 1;
    const g = ipToInt(gateway);
    const mask = (0xffffffff << (32 - len)) >>> 0;
    const podInt = (g + k) >>> 0;
    const broadcast = ((g & mask) | (~mask >>> 0)) >>> 0;
    if ((podInt & mask) !== (g & mask) || podInt >= broadcast) {
      throw new TestbedError(`addPod: no address left in ${gatewayCidr}`);
    }
    const pod: Pod = {
      ns: `${h.ns}-pod${k === 1 ? '' : k}`,
      ip: formatIPv4(podInt),
      cidr: `${formatIPv4(podInt)}/${len}`,
      gateway,
      host: h.n,
      dev: 'eth0',
    };
    const mtu = String(opts.mtu ?? this.mtu);
    const port = `vpod${k}`;
    h.pods.push(pod);
    await this.addNs(pod.ns);
    if (opts.bare === true) {
      await ip(['link', 'set', 'lo', 'up'], { netns: pod.ns });
      return pod;
    }
    const hostLines: string[][] = [];
    if (k === 1) {
      hostLines.push(
        ['link', 'add', 'cni0', 'mtu', mtu, 'type', 'bridge'],
        ['addr', 'replace', gatewayCidr, 'dev', 'cni0'],
        ['link', 'set', 'cni0', 'up'],
      );
    }
    hostLines.push(
      ['link', 'add', port, 'mtu', mtu, 'type', 'veth', 'peer', 'name', 'eth0', 'mtu', mtu, 'netns', pod.ns],
      ['link', 'set', port, 'master', 'cni0', 'up'],
    );
    await ipBatch(hostLines, { netns: h.ns });
    await ipBatch(
      [
        ['link', 'set', 'lo', 'up'],
        ['addr', 'add', pod.cidr, 'dev', 'eth0'],
        ['link', 'set', 'eth0', 'up'],
        ['route', 'add', 'default', 'via', gateway, 'dev', 'eth0'],
      ],
      { netns: pod.ns },
    );
    await sysctl(h.ns, { 'net.ipv4.ip_forward': 1, 'net.ipv4.conf.cni0.rp_filter': 0 });
    this.log.debug({ testbed: this.id, host: h.name, pod: pod.ns, ip: pod.ip }, 'testbed: pod up');
    return pod;
  }

  exec(target: Target, argv: string[], opts?: ExecOptions): Promise<ExecResult> {
    return execIn(this.resolve(target), argv, opts);
  }

  spawn(target: Target, argv: string[], opts?: SpawnOptions): ChildProcess {
    return spawnIn(this.resolve(target), argv, opts);
  }

  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    const all = [...this.nsSet];
    // Children first (a process inside keeps a netns alive), then pods and hosts, the bridge last.
    await Promise.all([...registry.children].filter(([, ns]) => this.nsSet.has(ns)).map(([child]) => killChild(child)));
    if (this.rootDev !== undefined) {
      // Netns teardown is asynchronous in the kernel; remove the root-side end now so it is gone on return.
      await linkDel(this.rootDev).catch((e: unknown) => this.log.warn({ err: errorMessage(e) }, 'testbed: root link'));
      registry.rootLinks.delete(this.rootDev);
    }
    const order = (ns: string): number => (ns === this.bridgeNs ? 2 : ns.includes('-pod') ? 0 : 1);
    for (const rank of [0, 1, 2]) {
      await Promise.all(all.filter((ns) => order(ns) === rank).map((ns) => this.delNs(ns)));
    }
    this.hosts.length = 0;
    releaseMarker(this.id);
    this.log.debug({ testbed: this.id }, 'testbed: destroyed');
  }
}

async function pickId(requested: number | undefined, log: Logger): Promise<number> {
  const existing = new Set(
    (await listNamespaces())
      .map((n) => /^w(\d+)-/.exec(n)?.[1])
      .filter((x): x is string => x !== undefined)
      .map(Number),
  );
  const tryId = (id: number): boolean => {
    if (existing.has(id)) return false; // someone's namespaces (maybe without marker): don't share
    return claimMarker(id);
  };
  if (requested !== undefined) {
    if (!Number.isInteger(requested) || requested < 1 || requested > 254) {
      throw new TestbedError(`testbed id must be 1..254, got ${requested}`);
    }
    if (!tryId(requested)) throw new TestbedError(`testbed id ${requested} is in use`);
    return requested;
  }
  for (let attempt = 0; attempt < 64; attempt++) {
    const id = 1 + Math.floor(Math.random() * 254);
    if (tryId(id)) return id;
  }
  log.warn('testbed: random ids exhausted, scanning');
  for (let id = 1; id <= 254; id++) if (tryId(id)) return id;
  throw new TestbedError('no free testbed id');
}

/** Build the bridge netns and `hosts` host namespaces (see the header for the layout). */
export async function createTestbed(opts: TestbedOptions): Promise<Testbed> {
  const log = opts.log ?? silentLogger;
  if (!Number.isInteger(opts.hosts) || opts.hosts < 0 || opts.hosts > MAX_HOSTS) {
    throw new TestbedError(`hosts must be 0..${MAX_HOSTS}, got ${opts.hosts}`);
  }
  installHandlers(opts.handleSignals ?? true);
  await cleanupStale('w', { log });
  const id = await pickId(opts.id, log);
  const tb = new TestbedImpl(id, opts.mtu ?? 1500, log, opts.ipv6 ?? true);
  try {
    await tb.setupBridge(opts.rootLink ?? false);
    await Promise.all(Array.from({ length: opts.hosts }, () => tb.addHost()));
  } catch (e) {
    await tb.destroy();
    throw e;
  }
  log.info({ testbed: id, hosts: tb.hosts.map((h) => h.ip), bridge: tb.bridgeIP }, 'testbed: up');
  return tb;
}
