// A small UDP ping-pong for latency, run by the bench inside the testbed's namespaces (never anywhere else):
//   node dist/bench/suite/pingpong.js server <port> <maxMs> [4|6]           echoes datagrams until maxMs has passed
//   node dist/bench/suite/pingpong.js client <ip> <port> <count> <maxMs>    one probe in flight at a time; prints JSON
// Bounded in count and time on both ends. The first WARMUP round trips (ARP, route caches, lazy JIT) are not kept.
import dgram from 'node:dgram';

const WARMUP = 20;
const PROBE_TIMEOUT_MS = 200;
const PAYLOAD = 32;

export interface PingPongResult {
  sent: number;
  received: number;
  lost: number;
  /** Round-trip times in microseconds, ascending, warm-up excluded. */
  rttsUs: number[];
}

function server(port: number, maxMs: number, family: '4' | '6'): void {
  const sock = dgram.createSocket(family === '6' ? 'udp6' : 'udp4');
  sock.on('message', (msg, rinfo) => sock.send(msg, rinfo.port, rinfo.address));
  sock.on('error', (e) => {
    process.stderr.write(`pingpong server: ${e.message}\n`);
    process.exit(2);
  });
  sock.bind(port, () => process.stdout.write('listening\n'));
  setTimeout(() => process.exit(0), maxMs).unref();
}

function client(ip: string, port: number, count: number, maxMs: number): void {
  const sock = dgram.createSocket(ip.includes(':') ? 'udp6' : 'udp4');
  const buf = Buffer.alloc(PAYLOAD);
  const rtts: number[] = [];
  const deadline = Date.now() + maxMs;
  let seq = 0;
  let sent = 0;
  let received = 0;
  let t0 = 0n;
  let timer: NodeJS.Timeout | undefined;
  const finish = (): void => {
    clearTimeout(timer);
    sock.close();
    const kept = rtts.slice(WARMUP).sort((a, b) => a - b);
    const result: PingPongResult = { sent, received, lost: sent - received, rttsUs: kept };
    process.stdout.write(JSON.stringify(result) + '\n');
  };
  const next = (): void => {
    if (sent >= count + WARMUP || Date.now() > deadline) return finish();
    seq = (seq + 1) >>> 0;
    buf.writeUInt32BE(seq, 0);
    sent++;
    t0 = process.hrtime.bigint();
    sock.send(buf); // connected: the kernel filters answers to this peer
    timer = setTimeout(next, PROBE_TIMEOUT_MS); // lost: move on
  };
  sock.on('message', (msg) => {
    if (msg.length < 4 || msg.readUInt32BE(0) !== seq) return; // a late answer to a probe we gave up on
    const us = Number(process.hrtime.bigint() - t0) / 1000;
    clearTimeout(timer);
    received++;
    rtts.push(us);
    next();
  });
  sock.on('error', (e) => {
    process.stderr.write(`pingpong client: ${e.message}\n`);
    process.exit(2);
  });
  sock.connect(port, ip, () => next());
  setTimeout(() => process.exit(3), maxMs + 5_000).unref();
}

const [mode, ...args] = process.argv.slice(2);
if (mode === 'server') {
  server(Number(args[0]), Number(args[1]), args[2] === '6' ? '6' : '4');
} else if (mode === 'client') {
  client(String(args[0]), Number(args[1]), Number(args[2]), Number(args[3]));
} else if (mode !== undefined) {
  process.stderr.write('usage: pingpong.js server <port> <maxMs> [4|6] | client <ip> <port> <count> <maxMs>\n');
  process.exit(2);
}
