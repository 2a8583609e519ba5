// A weft cluster on namespace hosts: the testbed's hosts, one etcd in the bridge namespace, a network config, and a
// weft daemon per host started from the built CLI (dist/). Used by `weft demo`, the bench and the integration tests.
//
//   bridge netns w<id>-br: bridge wbr<id> 198.18.<id>.254, etcd :2379
//   host netns w<id>-hN:   eth0 198.18.<id>.N, weft daemon -> TUN weft0, cni0 = FLANNEL_SUBNET gateway
//   pod netns w<id>-hN-pod: eth0 = FLANNEL_SUBNET .2, default route via cni0
import type { ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WeftError } from '../errors.js';
import { readSubnetEnv } from '../lease/subnet-env.js';
import { formatIPv4, firstHost } from '../lease/subnet.js';
import { startEtcd, type EtcdServer } from './etcd.js';
import { createTestbed, killChild, type Host, type Pod, type Testbed } from './hosts.js';

/** The package root: dist/ and src/ both sit one level below it. */
export const PACKAGE_ROOT = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new WeftError('WEFT_ERR_CONFIG', 'package.json not found above ' + import.meta.url);
    dir = up;
  }
  return dir;
})();
export const WEFT_CLI = join(PACKAGE_ROOT, 'dist', 'cli', 'main.js');
export const PREFIX = '/coreos.com/network';

export interface ClusterOptions {
  hosts: number;
  /** `<prefix>/config` JSON. */
  network: Record<string, unknown>;
  mtu?: number;
}

export interface DaemonHandle {
  readonly host: Host;
  readonly child: ChildProcess;
  readonly subnetFile: string;
  readonly logFile: string;
  /** FLANNEL_SUBNET as "10.5.3.1/24" once the daemon wrote subnet.env. */
  readonly subnetGateway: string;
}

export class Cluster {
  readonly daemons = new Map<number, DaemonHandle>();
  readonly pods = new Map<number, Pod>();
  private readonly dir = mkdtempSync(join(tmpdir(), 'weft-cluster-'));

  private constructor(readonly tb: Testbed, readonly etcd: EtcdServer) {}

  static async create(opts: ClusterOptions): Promise<Cluster> {
    const tb = await createTestbed({ hosts: opts.hosts, mtu: opts.mtu });
    try {
      const etcd = await startEtcd({ host: tb.bridgeIP, port: 2379, netns: tb.bridgeNs });
      const c = new Cluster(tb, etcd);
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
    if (r.code !== 0) throw new WeftError('WEFT_ERR_CONFIG', `weft ${args.join(' ')}: ${r.stderr.trim()}`);
    return r.stdout;
  }

  subnetFile(n: number): string {
    return join(this.dir, `h${n}`, 'subnet.env');
  }

  /**
   * Starts `weft daemon` in host n and waits until it has written subnet.env (bounded). `args` are extra daemon
   * flags such as ['--tier', 'dgram'].
   */
  async startDaemon(n: number, args: string[] = [], timeoutMs = 20_000): Promise<DaemonHandle> {
    const host = this.tb.host(n);
    const subnetFile = this.subnetFile(n);
    const logFile = join(this.dir, `h${n}.log`);
    const child = this.tb.spawn(host, [
      process.execPath, WEFT_CLI, 'daemon',
      `--etcd-endpoints=${this.endpoint}`,
      '--iface=eth0',
      `--subnet-file=${subnetFile}`,
      '--log-level=info',
      ...args,
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    const log = createWriteStream(logFile, { flags: 'a' });
    child.stderr?.pipe(log);
    const started = Date.now();
    await rm(subnetFile, { force: true });
    for (;;) {
      const env = readSubnetEnv(subnetFile);
      if (env) {
        const handle: DaemonHandle = {
          host, child, subnetFile, logFile,
          subnetGateway: `${formatIPv4(firstHost(env.subnet))}/${env.subnet.prefixLen}`,
        };
        this.daemons.set(n, handle);
        return handle;
      }
      if (child.exitCode !== null || child.signalCode !== null || Date.now() - started > timeoutMs) {
        await killChild(child);
        throw new WeftError('WEFT_ERR_BACKEND', `weft daemon in h${n} did not write ${subnetFile}: ${this.logTail(logFile)}`);
      }
      await new Promise((r) => setTimeout(r, 100));
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

  /** A pod behind host n's cni0, addressed from the daemon's FLANNEL_SUBNET (as the bridge CNI plugin would). */
  async ensurePod(n: number): Promise<Pod> {
    const have = this.pods.get(n);
    if (have) return have;
    const d = this.daemons.get(n);
    if (!d) throw new WeftError('WEFT_ERR_BACKEND', `no daemon in h${n}: start it before adding its pod`);
    const pod = await this.tb.addPod(d.host, d.subnetGateway);
    this.pods.set(n, pod);
    return pod;
  }

  async destroy(): Promise<void> {
    for (const n of [...this.daemons.keys()]) await this.stopDaemon(n);
    await this.etcd.stop().catch(() => undefined);
    await this.tb.destroy();
    await this.etcd.wipe().catch(() => undefined);
    await rm(this.dir, { recursive: true, force: true });
  }
}
