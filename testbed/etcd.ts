// Real etcd for tests, demo and bench: a single server (free ports, a temp data dir) or a cluster of members in
// namespaces (below); every start is health-checked, and there are no orphans (survivors are SIGKILLed when this
// process exits).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WeftError, ConfigError } from '../src/errors.js';
import { sleep } from '../src/util/sleep.js';

export interface EtcdOptions {
  host?: string; // default 127.0.0.1
  port?: number; // client port; default: a free one
  netns?: string; // run inside this network namespace (`ip netns exec`)
  dataDir?: string; // default: a new temp dir (deleted by wipe())
  binary?: string; // default /usr/bin/etcd
  healthTimeoutMs?: number; // default 15 s
}

export interface EtcdServer {
  readonly endpoint: string; // http://host:port
  readonly clientPort: number;
  readonly peerPort: number;
  readonly dataDir: string;
  readonly pid: number | undefined;
  /** SIGTERM, then SIGKILL after 5 s; resolves when the process is gone. */
  stop(): Promise<void>;
  /** SIGKILL: a crash, for tests. Resolves when the process is gone. */
  kill(): Promise<void>;
  /** Stops if running, starts again on the same ports and data dir. */
  restart(): Promise<void>;
  /** Stops and deletes the data dir. */
  wipe(): Promise<void>;
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // 'exit' handlers must be synchronous: a signal is all we can do here.
  process.on('exit', () => {
    for (const c of live) {
      try {
        c.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
  });
}

/** A port that was free a moment ago (bind to 0, read, close). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

// In another namespace the endpoint is out of this process's reach: ask etcdctl from inside it.
async function healthy(endpoint: string, netns?: string): Promise<boolean> {
  if (netns !== undefined) {
    return new Promise((resolve) => {
      execFile(
        'ip',
        ['netns', 'exec', netns, 'etcdctl', `--endpoints=${endpoint}`, '--command-timeout=1s', 'endpoint', 'health'],
        { env: { ...process.env, ETCDCTL_API: '3' }, timeout: 3000 },
        (err) => resolve(err === null),
      );
    });
  }
  try {
    const res = await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(1000) });
    if (!res.ok) return false;
    const body = (await res.json()) as { health?: unknown };
    return body.health === 'true' || body.health === true;
  } catch {
    return false;
  }
}

function waitExit(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => c.once('exit', () => resolve()));
}

/** etcd's flags for one member; a single server is a cluster of one. */
function memberArgs(m: {
  name: string;
  dataDir: string;
  endpoint: string;
  peerUrl: string;
  initialCluster: string;
  token?: string;
}): string[] {
  return [
    '--name',
    m.name,
    '--data-dir',
    m.dataDir,
    '--listen-client-urls',
    m.endpoint,
    '--advertise-client-urls',
    m.endpoint,
    '--listen-peer-urls',
    m.peerUrl,
    '--initial-advertise-peer-urls',
    m.peerUrl,
    '--initial-cluster',
    m.initialCluster,
    '--initial-cluster-state',
    'new',
    ...(m.token === undefined ? [] : ['--initial-cluster-token', m.token]),
    '--log-level',
    'warn',
  ];
}

/** One etcd process: a single server, or a member of a cluster (then in a namespace of its own). */
interface ProcessSpec {
  name: string;
  /** Namespace to run in (`ip netns exec`); undefined: this process's own. */
  netns?: string;
  host: string;
  clientPort: number;
  peerPort: number;
  dataDir: string;
  binary: string;
  initialCluster: string;
  token?: string;
  healthTimeoutMs: number;
  /** Pause between health checks. */
  pollMs: number;
}

/**
 * An etcd process that can be started, killed and started again on its data dir (etcd then ignores the
 * initial-cluster flags). It is in `live` while it runs, so this process's exit SIGKILLs it.
 */
class EtcdProcess {
  readonly endpoint: string;
  readonly peerUrl: string;
  private child: ChildProcess | null = null;
  private stderrTail = '';
  private spawnError: Error | null = null;

  constructor(readonly spec: ProcessSpec) {
    this.endpoint = `http://${spec.host}:${spec.clientPort}`;
    this.peerUrl = `http://${spec.host}:${spec.peerPort}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    const c = this.child;
    return c !== null && c.exitCode === null && c.signalCode === null && this.spawnError === null;
  }

  spawn(): void {
    if (this.running) return;
    this.stderrTail = '';
    this.spawnError = null;
    const { spec } = this;
    const etcdArgs = memberArgs({
      name: spec.name,
      dataDir: spec.dataDir,
      endpoint: this.endpoint,
      peerUrl: this.peerUrl,
      initialCluster: spec.initialCluster,
      ...(spec.token === undefined ? {} : { token: spec.token }),
    });
    const [cmd, args] =
      spec.netns === undefined
        ? [spec.binary, etcdArgs]
        : ['ip', ['netns', 'exec', spec.netns, spec.binary, ...etcdArgs]];
    const c = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], shell: false });
    this.child = c;
    live.add(c);
    c.once('exit', () => live.delete(c));
    c.once('error', (e) => {
      this.spawnError = e;
      live.delete(c);
    });
    c.stderr?.setEncoding('utf8');
    c.stderr?.on('data', (d: string) => {
      this.stderrTail = (this.stderrTail + d).slice(-4000);
    });
  }

  /** Waits until it answers healthy, at most healthTimeoutMs; throws when it exits or the time is up. */
  async waitHealthy(): Promise<void> {
    const { spec } = this;
    const deadline = Date.now() + spec.healthTimeoutMs;
    for (;;) {
      const c = this.child;
      if (c === null || !this.running) {
        const why =
          this.spawnError !== null ? this.spawnError.message : `exited with ${c?.exitCode ?? c?.signalCode ?? '?'}`;
        throw new WeftError(
          'WEFT_ERR_ETCD',
          `etcd ${spec.name} at ${this.endpoint} failed to start (${why}); stderr tail:\n${this.stderrTail}`,
        );
      }
      if (await healthy(this.endpoint, spec.netns)) return;
      if (Date.now() > deadline) {
        throw new WeftError(
          'WEFT_ERR_ETCD',
          `etcd ${spec.name} at ${this.endpoint} not healthy after ${spec.healthTimeoutMs} ms; ` +
            `stderr tail:\n${this.stderrTail}`,
        );
      }
      await sleep(spec.pollMs);
    }
  }

  /** Spawns it and waits until it is healthy; SIGKILLs it when it is not. */
  async start(): Promise<void> {
    this.spawn();
    try {
      await this.waitHealthy();
    } catch (e) {
      await this.kill();
      throw e;
    }
  }

  /** SIGKILL (a crash); resolves when the process is gone. */
  kill(): Promise<void> {
    return this.signal('SIGKILL');
  }

  /** SIGTERM, SIGKILL after 5 s. */
  stop(): Promise<void> {
    return this.signal('SIGTERM');
  }

  private async signal(sig: NodeJS.Signals): Promise<void> {
    const c = this.child;
    if (c === null) return;
    this.child = null;
    if (c.exitCode === null && c.signalCode === null) {
      c.kill(sig);
      const t = sig === 'SIGKILL' ? null : setTimeout(() => c.kill('SIGKILL'), 5000);
      await waitExit(c);
      if (t !== null) clearTimeout(t);
    }
    live.delete(c);
  }
}

export async function startEtcd(opts: EtcdOptions = {}): Promise<EtcdServer> {
  installExitHook();
  const host = opts.host ?? '127.0.0.1';
  // Inside a namespace the host's free ports say nothing, but collisions there are unlikely too.
  const clientPort = opts.port ?? (await freePort(opts.netns === undefined ? host : '127.0.0.1'));
  let peerPort = await freePort(opts.netns === undefined ? host : '127.0.0.1');
  while (peerPort === clientPort) peerPort = await freePort();
  const dataDir = opts.dataDir ?? (await mkdtemp(join(tmpdir(), 'weft-etcd-')));
  const name = `weft-${clientPort}`;
  const etcd = new EtcdProcess({
    name,
    ...(opts.netns === undefined ? {} : { netns: opts.netns }),
    host,
    clientPort,
    peerPort,
    dataDir,
    binary: opts.binary ?? '/usr/bin/etcd',
    initialCluster: `${name}=http://${host}:${peerPort}`,
    healthTimeoutMs: opts.healthTimeoutMs ?? 15_000,
    pollMs: 100,
  });
  await etcd.start();
  return {
    endpoint: etcd.endpoint,
    clientPort,
    peerPort,
    dataDir,
    get pid() {
      return etcd.pid;
    },
    stop: () => etcd.stop(),
    kill: () => etcd.kill(),
    restart: async () => {
      await etcd.stop();
      await etcd.start();
    },
    wipe: async () => {
      await etcd.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// A multi-member cluster: one member per network namespace (a testbed host of its own), each on its underlay IP.
//
//   bridge 198.18.<id>.254 ── hN+1 etcd e1 :2379/:2380 ── hN+2 etcd e2 ── hN+3 etcd e3
//
// Members start together (none is healthy before a quorum is up), each can be killed and started again on its
// data dir (the initial-cluster flags are then ignored by etcd), and the cluster's view (leader, raft term, which
// member answers) is read with etcdctl from a namespace that reaches every member.

export interface EtcdClusterMemberSpec {
  /** Namespace the member runs in. */
  netns: string;
  /** Address in that namespace to listen on (client and peer). */
  host: string;
}

export interface EtcdClusterOptions {
  members: readonly EtcdClusterMemberSpec[];
  /** Namespace etcdctl runs in for status queries (default: the first member's). Must reach every member. */
  ctlNetns?: string;
  clientPort?: number; // default 2379
  peerPort?: number; // default 2380
  binary?: string; // default /usr/bin/etcd
  healthTimeoutMs?: number; // default 20 s
  /** Cluster token, so two clusters on one machine never join each other. Default: random. */
  token?: string;
}

export interface EtcdMember {
  readonly name: string;
  readonly netns: string;
  readonly host: string;
  readonly endpoint: string;
  readonly peerUrl: string;
  readonly dataDir: string;
  readonly pid: number | undefined;
  readonly running: boolean;
  /** SIGKILL (a crash); resolves when the process is gone. */
  kill(): Promise<void>;
  /** SIGTERM, SIGKILL after 5 s. */
  stop(): Promise<void>;
  /** Starts the member again on its data dir and waits until it answers healthy (bounded). */
  start(): Promise<void>;
}

export interface EtcdMemberStatus {
  endpoint: string;
  /** etcd member id as hex (etcdctl prints decimal; hex is what `member list` shows). */
  memberId: string;
  leaderId: string;
  isLeader: boolean;
  raftTerm: number;
  revision: number;
}

export interface EtcdCluster {
  readonly members: readonly EtcdMember[];
  /** Every member's client URL. */
  readonly endpoints: readonly string[];
  /** The endpoints comma-joined, as `--etcd-endpoints` and etcdctl take them. */
  readonly endpoint: string;
  /** etcdctl (API v3) in ctlNetns against the running members (or `endpoints` when given). */
  etcdctl(args: string[], endpoints?: readonly string[]): Promise<string>;
  /** `endpoint status` of each running member that answers. */
  status(): Promise<EtcdMemberStatus[]>;
  /** The member the running members agree is leader (bounded wait through an election). */
  leader(timeoutMs?: number): Promise<EtcdMember>;
  stop(): Promise<void>;
  /** Stops every member and deletes the data dirs. */
  wipe(): Promise<void>;
}

function etcdctlIn(netns: string, endpoints: readonly string[], args: string[], timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      'ip',
      ['netns', 'exec', netns, 'etcdctl', `--endpoints=${endpoints.join(',')}`, '--command-timeout=3s', ...args],
      {
        env: { ...process.env, ETCDCTL_API: '3' },
        timeout: timeoutMs,
        killSignal: 'SIGKILL',
        maxBuffer: 64 * 1024 * 1024,
      },
      (err, stdout, stderr) => {
        if (err !== null)
          reject(new WeftError('WEFT_ERR_ETCD', `etcdctl ${args.join(' ')}: ${String(stderr).trim() || err.message}`));
        else resolve(String(stdout));
      },
    );
  });
}

/** etcd prints ids as (possibly > 2^53) decimals in JSON: take them as text and show hex. */
function idHex(raw: string): string {
  return BigInt(raw).toString(16);
}

export function parseEndpointStatus(json: string): EtcdMemberStatus[] {
  // Keep big integers exact: quote every bare number of 16+ digits before parsing.
  const safe = json.replace(/([:[,]\s*)(\d{16,})/g, '$1"$2"');
  const parsed = JSON.parse(safe) as unknown;
  if (!Array.isArray(parsed)) throw new WeftError('WEFT_ERR_ETCD', 'etcdctl endpoint status: not a JSON array');
  const out: EtcdMemberStatus[] = [];
  for (const e of parsed as unknown[]) {
    if (typeof e !== 'object' || e === null) continue;
    const { Endpoint, Status } = e as { Endpoint?: unknown; Status?: unknown };
    if (typeof Endpoint !== 'string' || typeof Status !== 'object' || Status === null) continue;
    const s = Status as { header?: { member_id?: unknown; revision?: unknown }; leader?: unknown; raftTerm?: unknown };
    const memberId = idHex(String(s.header?.member_id ?? '0'));
    const leaderId = idHex(String(s.leader ?? '0'));
    out.push({
      endpoint: Endpoint,
      memberId,
      leaderId,
      isLeader: memberId === leaderId && leaderId !== '0',
      raftTerm: Number(s.raftTerm ?? 0),
      revision: Number(s.header?.revision ?? 0),
    });
  }
  return out;
}

export async function startEtcdCluster(opts: EtcdClusterOptions): Promise<EtcdCluster> {
  installExitHook();
  if (opts.members.length < 1) throw new ConfigError('startEtcdCluster: at least one member');
  const clientPort = opts.clientPort ?? 2379;
  const peerPort = opts.peerPort ?? 2380;
  const names = opts.members.map((_, i) => `e${i + 1}`);
  const initialCluster = opts.members.map((m, i) => `${names[i]}=http://${m.host}:${peerPort}`).join(',');
  const dataDirs = await Promise.all(opts.members.map(() => mkdtemp(join(tmpdir(), 'weft-etcd-'))));
  const token = opts.token ?? `weft-${process.pid}-${Date.now().toString(36)}`;
  const members = opts.members.map(
    (m, i) =>
      new ClusterMember({
        name: names[i]!,
        netns: m.netns,
        host: m.host,
        clientPort,
        peerPort,
        dataDir: dataDirs[i]!,
        binary: opts.binary ?? '/usr/bin/etcd',
        initialCluster,
        token,
        healthTimeoutMs: opts.healthTimeoutMs ?? 20_000,
        pollMs: 200,
      }),
  );
  const cluster = new EtcdMembers(members, opts.ctlNetns ?? opts.members[0]!.netns, dataDirs);
  try {
    // Together: no member is healthy before a quorum is up.
    for (const m of members) m.spawn();
    await Promise.all(members.map((m) => m.waitHealthy()));
  } catch (e) {
    await cluster.wipe();
    throw e;
  }
  return cluster;
}

class ClusterMember extends EtcdProcess implements EtcdMember {
  get name(): string {
    return this.spec.name;
  }
  get netns(): string {
    return this.spec.netns!;
  }
  get host(): string {
    return this.spec.host;
  }
  get dataDir(): string {
    return this.spec.dataDir;
  }
}

/** The cluster's view: etcdctl against the running members, status, leader. */
class EtcdMembers implements EtcdCluster {
  readonly endpoints: readonly string[];
  readonly endpoint: string;

  constructor(
    readonly members: readonly ClusterMember[],
    private readonly ctlNetns: string,
    private readonly dataDirs: readonly string[],
  ) {
    this.endpoints = members.map((m) => m.endpoint);
    this.endpoint = this.endpoints.join(',');
  }

  etcdctl(args: string[], endpoints?: readonly string[]): Promise<string> {
    return etcdctlIn(this.ctlNetns, endpoints ?? this.runningEndpoints(), args);
  }

  async status(): Promise<EtcdMemberStatus[]> {
    const eps = this.runningEndpoints();
    if (eps.length === 0) return [];
    // One member at a time: a dead or partitioned one must not hide the others' answers.
    const all = await Promise.all(
      eps.map((ep) =>
        etcdctlIn(this.ctlNetns, [ep], ['endpoint', 'status', '-w', 'json']).then(
          parseEndpointStatus,
          () => [] as EtcdMemberStatus[],
        ),
      ),
    );
    return all.flat();
  }

  async leader(timeoutMs = 15_000): Promise<EtcdMember> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const st = await this.status();
      const lead = st.find((s) => s.isLeader);
      // Agreement: every answering member names the same leader.
      if (lead !== undefined && st.every((s) => s.leaderId === lead.leaderId)) {
        const m = this.members.find((x) => x.endpoint === lead.endpoint);
        if (m !== undefined) return m;
      }
      if (Date.now() > deadline)
        throw new WeftError('WEFT_ERR_ETCD', `no agreed etcd leader within ${timeoutMs} ms: ${JSON.stringify(st)}`);
      await sleep(200);
    }
  }

  async stop(): Promise<void> {
    await Promise.all(this.members.map((m) => m.stop()));
  }

  async wipe(): Promise<void> {
    await this.stop();
    await Promise.all(this.dataDirs.map((d) => rm(d, { recursive: true, force: true })));
  }

  private runningEndpoints(): string[] {
    return this.members.filter((m) => m.running).map((m) => m.endpoint);
  }
}
