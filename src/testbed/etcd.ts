// A real single-member etcd for tests, demo and bench: free ports, a temp data dir, health-checked start,
// and no orphans (survivors are SIGKILLed when this process exits).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WeftError } from '../errors.js';

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

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// In another namespace the endpoint is out of this process's reach: ask etcdctl from inside it.
async function healthy(endpoint: string, netns?: string): Promise<boolean> {
  if (netns !== undefined) {
    return new Promise((resolve) => {
      execFile('ip', ['netns', 'exec', netns, 'etcdctl', `--endpoints=${endpoint}`, '--command-timeout=1s', 'endpoint', 'health'],
        { env: { ...process.env, ETCDCTL_API: '3' }, timeout: 3000 }, (err) => resolve(err === null));
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

export async function startEtcd(opts: EtcdOptions = {}): Promise<EtcdServer> {
  installExitHook();
  const host = opts.host ?? '127.0.0.1';
  const binary = opts.binary ?? '/usr/bin/etcd';
  const healthTimeoutMs = opts.healthTimeoutMs ?? 15_000;
  // Inside a namespace the host's free ports say nothing, but collisions there are unlikely too.
  const clientPort = opts.port ?? (await freePort(opts.netns === undefined ? host : '127.0.0.1'));
  let peerPort = await freePort(opts.netns === undefined ? host : '127.0.0.1');
  while (peerPort === clientPort) peerPort = await freePort();
  const dataDir = opts.dataDir ?? (await mkdtemp(join(tmpdir(), 'weft-etcd-')));
  const endpoint = `http://${host}:${clientPort}`;
  const name = `weft-${clientPort}`;
  const peerUrl = `http://${host}:${peerPort}`;

  const etcdArgs = [
    '--name', name,
    '--data-dir', dataDir,
    '--listen-client-urls', endpoint,
    '--advertise-client-urls', endpoint,
    '--listen-peer-urls', peerUrl,
    '--initial-advertise-peer-urls', peerUrl,
    '--initial-cluster', `${name}=${peerUrl}`,
    '--initial-cluster-state', 'new',
    '--log-level', 'warn',
  ];
  const [cmd, args] = opts.netns === undefined
    ? [binary, etcdArgs]
    : ['ip', ['netns', 'exec', opts.netns, binary, ...etcdArgs]];

  let child: ChildProcess | null = null;
  let stderrTail = '';

  const launch = async (): Promise<void> => {
    stderrTail = '';
    const c = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], shell: false });
    child = c;
    live.add(c);
    c.once('exit', () => live.delete(c));
    c.stderr?.setEncoding('utf8');
    c.stderr?.on('data', (d: string) => {
      stderrTail = (stderrTail + d).slice(-4000);
    });
    let spawnError: Error | null = null;
    c.once('error', (e) => {
      spawnError = e;
    });
    const deadline = Date.now() + healthTimeoutMs;
    for (;;) {
      if (spawnError !== null || c.exitCode !== null || c.signalCode !== null) {
        live.delete(c);
        const why = spawnError !== null ? (spawnError as Error).message : `exited with ${c.exitCode ?? c.signalCode}`;
        throw new WeftError('WEFT_ERR_ETCD', `etcd at ${endpoint} failed to start (${why}); stderr tail:\n${stderrTail}`);
      }
      if (await healthy(endpoint, opts.netns)) return;
      if (Date.now() > deadline) {
        c.kill('SIGKILL');
        await waitExit(c);
        throw new WeftError('WEFT_ERR_ETCD', `etcd at ${endpoint} not healthy after ${healthTimeoutMs} ms; stderr tail:\n${stderrTail}`);
      }
      await sleep(100);
    }
  };

  const signalAndWait = async (sig: NodeJS.Signals): Promise<void> => {
    const c: ChildProcess | null = child;
    if (c === null) return;
    child = null;
    if (c.exitCode === null && c.signalCode === null) {
      c.kill(sig);
      if (sig !== 'SIGKILL') {
        const t = setTimeout(() => c.kill('SIGKILL'), 5000);
        await waitExit(c);
        clearTimeout(t);
      } else {
        await waitExit(c);
      }
    }
    live.delete(c);
  };

  await launch();

  return {
    endpoint,
    clientPort,
    peerPort,
    dataDir,
    get pid() {
      return (child as ChildProcess | null)?.pid;
    },
    stop: () => signalAndWait('SIGTERM'),
    kill: () => signalAndWait('SIGKILL'),
    restart: async () => {
      await signalAndWait('SIGTERM');
      await launch();
    },
    wipe: async () => {
      await signalAndWait('SIGTERM');
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
