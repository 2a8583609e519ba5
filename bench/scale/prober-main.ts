// The scale tool's prober, run in a real weft host's namespace: "is the route to this subnet live in my daemon?"
// It sends one UDP datagram towards an address in the subnet (the host routes the overlay network into the TUN) and
// reads the daemon's udp_tx_packets from /metrics; the route is live once the datagram left encapsulated. Repeats
// every intervalMs until then (bounded). JSON lines on stdio.
//   node dist/bench/scale/prober-main.js <metricsPort>
import { createSocket } from 'node:dgram';
import { parsePrometheus, sample } from './observe.js';
import { serveLines } from './lines.js';
import { sleep } from '../../src/util/sleep.js';
import { WeftError } from '../../src/errors.js';

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port < 1) {
  process.stderr.write('usage: prober-main.js <metricsPort>\n');
  process.exit(2);
}
const sock = createSocket('udp4');
sock.on('error', () => undefined); // ICMP errors from a missing route: expected while not live

// Only the two families read here: the whole page carries a lease-TTL series per peer (5,000 at 5,000 hosts), and the
// probe polls every few ms.
async function metrics(): Promise<Map<string, number>> {
  const url = `http://127.0.0.1:${port}/metrics?name=weft_datapath_total&name=weft_peers`;
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  return parsePrometheus(await res.text());
}

const txOf = (m: Map<string, number>): number => sample(m, 'weft_datapath_total', '"udp_tx_packets"') ?? 0;
const payload = Buffer.from('weft-scale-probe');

serveLines(async (req) => {
  switch (req.op) {
    case 'probe': {
      const dst = String(req.dst);
      const timeoutMs = Number(req.timeoutMs ?? 10_000);
      const intervalMs = Number(req.intervalMs ?? 10);
      const end = performance.now() + timeoutMs;
      let before = txOf(await metrics());
      let polls = 0;
      while (performance.now() < end) {
        polls++;
        await new Promise<void>((r) => sock.send(payload, 9, dst, () => r()));
        await sleep(intervalMs);
        const m = await metrics();
        const tx = txOf(m);
        if (tx > before) return { live: true, liveAtNs: process.hrtime.bigint().toString(), polls };
        before = tx;
      }
      return { live: false, polls };
    }
    case 'memory': {
      // The daemon's own breakdown (/status carries its process.memoryUsage()).
      const res = await fetch(`http://127.0.0.1:${port}/status`, { signal: AbortSignal.timeout(10_000) });
      const doc = (await res.json()) as { memory?: Record<string, number> };
      return { memory: doc.memory ?? null };
    }
    case 'peers': {
      const m = await metrics();
      return { peers: sample(m, 'weft_peers') ?? -1, udpTx: txOf(m) };
    }
    default:
      throw new WeftError('WEFT_ERR_BACKEND', `unknown op ${String(req.op)}`);
  }
});
