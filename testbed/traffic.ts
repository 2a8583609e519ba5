// Traffic between the testbed's hosts and pods: ping and iperf3, each bounded in count and time.
import type { ChildProcess } from 'node:child_process';
import { TestbedError, execIn, killChild, nsOf, spawnIn, type Target } from './exec.js';

export interface PingResult {
  ok: boolean;
  transmitted: number;
  received: number;
  lossPercent: number;
  rttAvgMs: number | undefined;
  output: string;
}

export interface PingOptions {
  count?: number;
  timeoutSec?: number;
  intervalSec?: number;
}

/** `ping -c count` from a host or pod; ok when every probe came back. Bounded by count*interval + timeoutSec. */
export async function ping(from: Target, dst: string, opts: PingOptions = {}): Promise<PingResult> {
  const count = Math.max(1, Math.min(opts.count ?? 3, 1000));
  const wait = Math.max(1, Math.min(opts.timeoutSec ?? 2, 60));
  const interval = opts.intervalSec ?? 0.2;
  const deadline = Math.ceil(count * interval + wait);
  const r = await execIn(
    nsOf(from),
    ['ping', '-n', '-q', '-c', String(count), '-i', String(interval), '-W', String(wait), '-w', String(deadline), dst],
    { timeoutMs: (deadline + 5) * 1000 },
  );
  const out = r.stdout + r.stderr;
  const stats = /(\d+) packets transmitted, (\d+) received/.exec(out);
  const loss = /([\d.]+)% packet loss/.exec(out);
  const rtt = /= [\d.]+\/([\d.]+)\/[\d.]+\/[\d.]+ ms/.exec(out);
  const transmitted = stats ? Number(stats[1]) : 0;
  const received = stats ? Number(stats[2]) : 0;
  return {
    ok: transmitted > 0 && received === transmitted,
    transmitted,
    received,
    lossPercent: loss ? Number(loss[1]) : 100,
    rttAvgMs: rtt ? Number(rtt[1]) : undefined,
    output: out,
  };
}

/** Start `iperf3 -s -p port` in a namespace (tracked child); resolves once it listens. */
export async function startIperfServer(target: Target, port = 5201, timeoutMs = 5_000): Promise<ChildProcess> {
  const child = spawnIn(nsOf(target), ['iperf3', '-s', '-p', String(port), '--forceflush'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let tail = '';
  const keep = (d: Buffer): void => {
    tail = (tail + d.toString('utf8')).slice(-4096);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new TestbedError(`iperf3 server on port ${port} not listening: ${tail}`)),
        timeoutMs,
      );
      const check = (): void => {
        if (tail.includes('Server listening')) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout?.on('data', check);
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new TestbedError(`iperf3 server exited (${code}): ${tail.trim()}`));
      });
      child.once('error', (e) => {
        clearTimeout(timer);
        reject(new TestbedError(`iperf3 server: ${e.message}`, { cause: e }));
      });
    });
  } catch (e) {
    await killChild(child);
    throw e;
  }
  return child;
}

export interface IperfOptions {
  seconds?: number;
  streams?: number;
  udp?: boolean;
  /** -l: write size (UDP: datagram payload). */
  length?: number;
  /** -b: e.g. "100M"; UDP default in iperf3 is 1 Mbit/s. */
  bitrate?: string;
  port?: number;
  reverse?: boolean;
  /** Whole-run limit; default seconds + 15 s. */
  timeoutMs?: number;
}

export interface IperfResult {
  json: unknown;
  sentBps: number;
  receivedBps: number;
  retransmits: number | undefined;
  lostPercent: number | undefined;
  jitterMs: number | undefined;
  cpuHostPercent: number | undefined;
  cpuRemotePercent: number | undefined;
}

function field(o: unknown, ...path: string[]): unknown {
  let cur = o;
  for (const k of path) {
    if (typeof cur !== 'object' || cur === null || !(k in cur)) return undefined;
    cur = (cur as Record<string, unknown>)[k];
  }
  return cur;
}

function numField(o: unknown, ...path: string[]): number | undefined {
  const v = field(o, ...path);
  return typeof v === 'number' ? v : undefined;
}

/** One bounded iperf3 client run (-J); throws TestbedError when iperf3 reports an error. */
export async function runIperf(target: Target, serverIp: string, opts: IperfOptions = {}): Promise<IperfResult> {
  const seconds = Math.max(1, Math.min(opts.seconds ?? 1, 120));
  const streams = Math.max(1, Math.min(opts.streams ?? 1, 32));
  const argv = [
    'iperf3',
    '-c',
    serverIp,
    '-p',
    String(opts.port ?? 5201),
    '-t',
    String(seconds),
    '-P',
    String(streams),
  ];
  argv.push('-J', '--connect-timeout', '3000');
  if (opts.udp) argv.push('-u');
  if (opts.length !== undefined) argv.push('-l', String(opts.length));
  if (opts.bitrate !== undefined) argv.push('-b', opts.bitrate);
  if (opts.reverse) argv.push('-R');
  const r = await execIn(nsOf(target), argv, { timeoutMs: opts.timeoutMs ?? (seconds + 15) * 1000 });
  let json: unknown;
  try {
    json = JSON.parse(r.stdout);
  } catch {
    throw new TestbedError(
      `iperf3 ${argv.slice(1).join(' ')}: no JSON (exit ${r.code}${r.timedOut ? ', timed out' : ''}): ` +
        r.stderr.trim(),
    );
  }
  const err = field(json, 'error');
  if (typeof err === 'string' || r.code !== 0) {
    throw new TestbedError(`iperf3 to ${serverIp}: ${typeof err === 'string' ? err : `exit ${r.code}`}`);
  }
  const udp = opts.udp === true;
  return {
    json,
    sentBps:
      (udp ? numField(json, 'end', 'sum', 'bits_per_second') : numField(json, 'end', 'sum_sent', 'bits_per_second')) ??
      0,
    receivedBps:
      (udp
        ? (numField(json, 'end', 'sum_received', 'bits_per_second') ?? numField(json, 'end', 'sum', 'bits_per_second'))
        : numField(json, 'end', 'sum_received', 'bits_per_second')) ?? 0,
    retransmits: numField(json, 'end', 'sum_sent', 'retransmits'),
    lostPercent: udp ? numField(json, 'end', 'sum', 'lost_percent') : undefined,
    jitterMs: udp ? numField(json, 'end', 'sum', 'jitter_ms') : undefined,
    cpuHostPercent: numField(json, 'end', 'cpu_utilization_percent', 'host_total'),
    cpuRemotePercent: numField(json, 'end', 'cpu_utilization_percent', 'remote_total'),
  };
}
