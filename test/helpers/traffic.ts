// Traffic for integration tests, run as small Node programs inside the testbed's namespaces: a TCP transfer whose
// sha256 is compared on both ends, crafted datagrams aimed at a daemon, a read of a daemon's /metrics, and the
// kernel's own drop counts. Every program is bounded in count and time.
import type { Test } from 'tap';
import type { Cluster } from '../../testbed/cluster.js';
import type { Host, Pod, Testbed } from '../../testbed/hosts.js';
import { nsOf, type Target } from '../../testbed/exec.js';
import { ping } from '../../testbed/traffic.js';
import type { StatusDoc } from '../../src/metrics/server.js';
import { sleep } from './wait.js';

const SERVER = `
const net = require('node:net'), crypto = require('node:crypto');
const h = crypto.createHash('sha256'); let n = 0;
const srv = net.createServer((s) => {
  s.on('data', (d) => { h.update(d); n += d.length; });
  s.on('end', () => { process.stdout.write(JSON.stringify({ received: n, hash: h.digest('hex') })); process.exit(0); });
});
srv.listen(Number(process.argv[1]), () => process.stdout.write('listening\\n'));
setTimeout(() => process.exit(3), Number(process.argv[2])).unref();
`;

const CLIENT = `
const net = require('node:net'), crypto = require('node:crypto');
const [host, port, total] = [process.argv[1], Number(process.argv[2]), Number(process.argv[3])];
const chunk = crypto.randomBytes(1 << 20); const h = crypto.createHash('sha256'); let sent = 0;
const s = net.connect(port, host, () => {
  const pump = () => {
    while (sent < total) {
      const part = chunk.subarray(0, Math.min(chunk.length, total - sent));
      chunk[0] = (chunk[0] + 1) & 255; // each MiB differs, so a reordered or repeated chunk changes the hash
      h.update(part); sent += part.length;
      if (!s.write(Buffer.from(part))) return s.once('drain', pump);
    }
    s.end(() => { process.stdout.write(JSON.stringify({ sent, hash: h.digest('hex') })); });
  };
  pump();
});
s.on('error', (e) => { console.error(e.message); process.exit(2); });
`;

export interface TransferResult {
  sent: number;
  received: number;
  sentHash: string;
  receivedHash: string;
}

let nextPort = 9100;

/**
 * Sends `bytes` from `from` to `to` over TCP (to its IPv6 address with family 6) and returns both ends' counts and
 * sha256. Bounded by `timeoutMs`.
 */
export async function sha256Transfer(
  tb: Testbed,
  from: Pod,
  to: Pod,
  bytes: number,
  timeoutMs = 120_000,
  family: 4 | 6 = 4,
): Promise<TransferResult> {
  const dst = family === 6 ? to.ip6 : to.ip;
  if (dst === undefined) throw new Error(`pod h${to.host} has no IPv6 address`);
  const port = nextPort++;
  const server = tb.spawn(to, [process.execPath, '-e', SERVER, String(port), String(timeoutMs)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  server.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  const done = new Promise<void>((resolve) => server.once('exit', () => resolve()));
  for (let i = 0; i < 100 && !out.includes('listening'); i++) await sleep(50);
  const c = await tb.exec(from, [process.execPath, '-e', CLIENT, dst, String(port), String(bytes)], { timeoutMs });
  await done;
  if (c.code !== 0) throw new Error(`transfer client failed (${c.code}): ${c.stderr}`);
  const sent = JSON.parse(c.stdout) as { sent: number; hash: string };
  const recvLine = out.split('\n').find((l) => l.startsWith('{'));
  if (!recvLine) throw new Error(`transfer server gave no result: ${out}`);
  const recv = JSON.parse(recvLine) as { received: number; hash: string };
  return { sent: sent.sent, received: recv.received, sentHash: sent.hash, receivedHash: recv.hash };
}

const SEQ_RECEIVER = `
const dgram = require('node:dgram');
const seen = new Set(); let dup = 0, bad = 0;
const r = dgram.createSocket('udp4');
r.on('message', (m) => {
  const seq = m.readUInt32BE(0);
  for (let i = 4; i < m.length; i++) if (m[i] !== ((seq + i) & 255)) { bad++; return; }
  if (seen.has(seq)) dup++; else seen.add(seq);
});
r.bind(Number(process.argv[1]), () => process.stdout.write('listening\\n'));
process.on('SIGTERM', () => {
  process.stdout.write(JSON.stringify({ distinct: seen.size, dup, bad }));
  process.exit(0);
});
setTimeout(() => process.exit(3), 30000).unref();
`;

// Sends as fast as the socket takes them (no callback wait), so a forwarder sees full wake-ups.
const SEQ_SENDER = `
const dgram = require('node:dgram');
const [dst, port, count, size] = process.argv.slice(1).map((x, i) => (i === 0 ? x : Number(x)));
const s = dgram.createSocket('udp4'); let done = 0;
for (let seq = 0; seq < count; seq++) {
  const m = Buffer.alloc(size); m.writeUInt32BE(seq, 0);
  for (let i = 4; i < size; i++) m[i] = (seq + i) & 255;
  s.send(m, port, dst, () => { if (++done === count) s.close(); });
}
setTimeout(() => process.exit(3), 20000).unref();
`;

/**
 * Sends `count` numbered datagrams (each byte a function of its number) from one pod to another and reports what
 * arrived: distinct numbers, duplicates and corrupted payloads. Loss is allowed (UDP); a forwarder that reused a
 * buffer before its send shows up as duplicates or bad payloads. Bounded: count and 30 s.
 */
export async function udpSequence(
  tb: Testbed,
  from: Pod,
  to: Pod,
  count: number,
  size = 1000,
): Promise<{ distinct: number; dup: number; bad: number }> {
  const port = nextPort++;
  const server = tb.spawn(to, [process.execPath, '-e', SEQ_RECEIVER, String(port)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  server.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  const done = new Promise<void>((resolve) => server.once('exit', () => resolve()));
  for (let i = 0; i < 100 && !out.includes('listening'); i++) await sleep(50);
  const c = await tb.exec(
    from,
    [process.execPath, '-e', SEQ_SENDER, to.ip, String(port), String(count), String(size)],
    {
      timeoutMs: 25_000,
    },
  );
  await sleep(500); // let the last datagrams through
  server.kill('SIGTERM');
  await done;
  if (c.code !== 0) throw new Error(`sequence sender failed (${c.code}): ${c.stderr}`);
  const line = out.split('\n').find((l) => l.startsWith('{'));
  if (!line) throw new Error(`sequence receiver gave no result: ${out}`);
  return JSON.parse(line) as { distinct: number; dup: number; bad: number };
}

export type Datagram =
  | { kind: 'garbage'; count: number }
  | { kind: 'truncated'; count: number }
  | { kind: 'ipv4'; src: string; dst: string; count: number; prefix?: string /* hex bytes before the IP packet */ }
  | { kind: 'raw'; hex: string; count: number };

const SENDER = `
const dgram = require('node:dgram');
const [dst, port, spec] = [process.argv[1], Number(process.argv[2]), JSON.parse(process.argv[3])];
const ip = (s) => Buffer.from(s.split('.').map(Number));
function ipv4(src, dst) {
  const b = Buffer.alloc(28); b[0] = 0x45; b.writeUInt16BE(28, 2); b[8] = 64; b[9] = 17;
  ip(src).copy(b, 12); ip(dst).copy(b, 16);
  let sum = 0; for (let i = 0; i < 20; i += 2) sum += b.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  b.writeUInt16BE(~sum & 0xffff, 10); b.writeUInt16BE(9, 22); b.writeUInt16BE(9, 20); b.writeUInt16BE(8, 24);
  return b;
}
const msgs = [];
for (const s of spec) {
  let m;
  if (s.kind === 'garbage') m = Buffer.from('weft test garbage: not an IP packet at all');
  else if (s.kind === 'truncated') m = Buffer.from([0x45, 0, 0, 60, 0, 0]);
  else if (s.kind === 'raw') m = Buffer.from(s.hex, 'hex');
  else m = Buffer.concat([Buffer.from(s.prefix || '', 'hex'), ipv4(s.src, s.dst)]);
  for (let i = 0; i < s.count; i++) msgs.push(m);
}
const sock = dgram.createSocket(dst.includes(':') ? 'udp6' : 'udp4');
let i = 0, errors = 0;
const next = (e) => {
  if (e) errors++;
  if (i >= msgs.length) {
    process.stdout.write(JSON.stringify({ sent: i - errors, errors }));
    return sock.close();
  }
  sock.send(msgs[i++], port, dst, next);
};
next();
setTimeout(() => process.exit(3), 20000).unref();
`;

/**
 * Sends crafted datagrams from a namespace to `dst:port` (IPv4 or IPv6), one after another (bounded: count and
 * 20 s). Resolves with how many the kernel took (`sent`) and how many sends failed.
 */
export async function sendDatagrams(
  tb: Testbed,
  from: Target,
  dst: string,
  port: number,
  spec: Datagram[],
): Promise<{ sent: number; errors: number }> {
  const r = await tb.exec(from, [process.execPath, '-e', SENDER, dst, String(port), JSON.stringify(spec)], {
    timeoutMs: 30_000,
  });
  if (r.code !== 0) throw new Error(`datagram sender failed (${r.code}): ${r.stderr}`);
  await sleep(200); // let the receiver drain its socket
  return JSON.parse(r.stdout) as { sent: number; errors: number };
}

/**
 * Packets the kernel dropped in these namespaces, as it counts them: at UDP sockets (the Udp line of /proc/net/snmp,
 * which is per namespace: InErrors, which holds RcvbufErrors, and SndbufErrors) and on every link (rx and tx dropped,
 * where veth counts what its peer's backlog refused). Between two reads, it bounds what datagrams sent between these
 * namespaces lost on their way to a socket: a datagram the kernel took is either read from the socket or counted here.
 */
export async function kernelDrops(tb: Testbed, targets: readonly Target[]): Promise<number> {
  let dropped = 0;
  for (const target of targets) {
    const snmp = await tb.exec(target, ['cat', '/proc/net/snmp'], { timeoutMs: 10_000 });
    const [names = [], values = []] = snmp.stdout
      .split('\n')
      .filter((l) => l.startsWith('Udp:'))
      .map((l) => l.trim().split(/\s+/));
    for (const k of ['InErrors', 'SndbufErrors']) dropped += Number(values[names.indexOf(k)] ?? 0);
    const ip = await tb.exec(target, ['ip', '-s', '-j', 'link', 'show'], { timeoutMs: 10_000 });
    if (snmp.code !== 0 || ip.code !== 0)
      throw new Error(`kernel drops in ${nsOf(target)}: ${snmp.stderr}${ip.stderr}`);
    const links = JSON.parse(ip.stdout) as { stats64?: { rx?: { dropped?: number }; tx?: { dropped?: number } } }[];
    for (const l of links) dropped += (l.stats64?.rx?.dropped ?? 0) + (l.stats64?.tx?.dropped ?? 0);
  }
  return dropped;
}

/** The daemon's /metrics text, or another of its paths (127.0.0.1:port inside `host`). */
export async function metricsText(tb: Testbed, host: Host, port: number, path = '/metrics'): Promise<string> {
  const script = `
require('node:http')
  .get('http://127.0.0.1:${port}${path}', (r) => {
    let s = '';
    r.on('data', (d) => (s += d));
    r.on('end', () => process.stdout.write(s));
  })
  .on('error', (e) => {
    console.error(e.message);
    process.exit(2);
  });`;
  const r = await tb.exec(host, [process.execPath, '-e', script], { timeoutMs: 10_000 });
  if (r.code !== 0) throw new Error(`metrics of ${host.name}: ${r.stderr}`);
  return r.stdout;
}

/** The daemon's /status document. */
export async function statusOf(tb: Testbed, host: Host, port: number): Promise<StatusDoc> {
  return JSON.parse(await metricsText(tb, host, port, '/status')) as StatusDoc;
}

/** Per-peer packet counters: key "<subnet> <tx|rx>". */
export async function peerPacketsOf(tb: Testbed, host: Host, port: number): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  const text = await metricsText(tb, host, port);
  for (const m of text.matchAll(
    /^weft_peer_packets_total\{subnet="([^"]+)",public_ip="[^"]+",direction="(tx|rx)"\} ([0-9.e+]+)$/gm,
  )) {
    out[`${m[1]} ${m[2]}`] = Number(m[3]);
  }
  return out;
}

/** The datapath counters of the daemon in `host`, from its /metrics on 127.0.0.1:port. */
export async function metricsOf(tb: Testbed, host: Host, port: number): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  const text = await metricsText(tb, host, port);
  for (const m of text.matchAll(/^weft_datapath_total\{counter="([a-z0-9_]+)"\} ([0-9.e+]+)$/gm))
    out[m[1]!] = Number(m[2]);
  return out;
}

/**
 * Every pod pings every other pod (2 pings each); one assertion per ordered pair. `family` 6 pings their IPv6
 * addresses (ping6: pods on a dual-stack subnet.env).
 */
export async function pingMatrix(t: Test, cluster: Cluster, hosts: number[], family: 4 | 6 = 4): Promise<void> {
  for (const from of hosts) {
    for (const to of hosts) {
      if (from === to) continue;
      const a = cluster.pods.get(from) as Pod;
      const b = cluster.pods.get(to) as Pod;
      const dst = family === 4 ? b.ip : b.ip6;
      if (dst === undefined) {
        t.fail(`pod h${to} has no IPv6 address`);
        continue;
      }
      const r = await ping(a, dst, { count: 2, timeoutSec: 3, intervalSec: 0.2 });
      t.ok(r.ok, `pod h${from} ${family === 4 ? a.ip : (a.ip6 ?? '?')} -> pod h${to} ${dst}`);
    }
  }
}
