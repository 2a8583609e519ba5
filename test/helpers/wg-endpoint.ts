// A test-only WireGuard endpoint made of weft's parts: the TypeScript handshake (WireguardDevice), the C transport
// calls (wgSealBatch / wgOpenBatch) and a Node dgram socket. Run as a child program inside a testbed namespace by
// test/wireguard-interop.test.ts; it holds the tunnel address 10.77.0.2 and answers ICMP echo requests itself.
//
// Control: one JSON object per line on stdin, one per line on stdout.
//   first line  {"privateKey": base64, "peer": base64, "bind": "ip:port", "endpoint": "ip:port" | null,
//                "persistentKeepalive": seconds, "timing": {...}}       -> {"ev":"ready"}
//   {"cmd":"initiate"}                      start a handshake now
//   {"cmd":"ping","seq":n}                  send an echo request 10.77.0.2 -> 10.77.0.1 (false when no keypair yet)
//   {"cmd":"underLoad","on":bool}           force the cookie mechanism on or off
//   {"cmd":"persistentKeepalive","seconds"} change the persistent keepalive interval (0 = off)
//   {"cmd":"stats"}                         -> {"ev":"stats", ...}
//   events: {"ev":"reply","seq"} for each echo reply, {"ev":"request","seq"} for each echo request answered,
//           {"ev":"handshake","verdict"} for each handshake message, {"ev":"sent","seq","ok"} after a ping command
// Bounded: exits after 120 s, or when stdin closes.
import { createSocket } from 'node:dgram';
import { createInterface } from 'node:readline';
import {
  PrivateKey,
  PublicKey,
  WG_COUNTER_COUNT,
  WG_VERDICT_HANDSHAKE,
  WgCounter,
  WireguardDevice,
  wgCounterNames,
  wgOpenBatch,
  wgSealBatch,
  type Timing,
} from '../../src/wireguard/index.js';
import { icmpEcho, parseEcho } from './wireguard.js';

interface Config {
  privateKey: string;
  peer: string;
  bind: string;
  endpoint: string | null;
  persistentKeepalive?: number;
  timing?: Partial<Timing>;
}

const SLOT = 2048;
const HEADROOM = 64;
const LOCAL_IP = '10.77.0.2';
const PEER_IP = '10.77.0.1';
const PEER_INDEX = 0;

function out(o: object): void {
  process.stdout.write(JSON.stringify(o) + '\n');
}

function hostPort(s: string): { address: string; port: number } {
  const i = s.lastIndexOf(':');
  return { address: s.slice(0, i), port: Number(s.slice(i + 1)) };
}

setTimeout(() => process.exit(3), 120_000).unref();
const lines = createInterface({ input: process.stdin });
let dev: WireguardDevice | undefined;
const sock = createSocket('udp4');
const wgCounters = new Float64Array(WG_COUNTER_COUNT);
const slab = Buffer.alloc(SLOT);
const len = new Int32Array(1);
const off = new Int32Array(1);
const peer = new Int32Array(1);

function send(msg: Buffer, to: { address: string; port: number }): void {
  sock.send(msg, to.port, to.address);
}

/** Seal one inner packet for the peer and send it; false when there is no keypair to seal with (yet). */
function sendPacket(d: WireguardDevice, pkt: Buffer): boolean {
  if (!d.canSend(PEER_INDEX)) return false;
  slab.set(pkt, HEADROOM);
  len[0] = pkt.length;
  peer[0] = PEER_INDEX;
  wgSealBatch(
    d.sessions.buffer,
    slab,
    SLOT,
    HEADROOM,
    len,
    off,
    peer,
    d.sendSlot,
    1,
    1420,
    performance.now(),
    wgCounters,
  );
  const ep = d.peerAt(PEER_INDEX)?.endpoint;
  if (peer[0]! < 0 || !ep) return false;
  send(Buffer.from(slab.subarray(off[0], off[0]! + len[0]!)), ep);
  d.sent(PEER_INDEX, 1, 1);
  return true;
}

sock.on('message', (msg, rinfo) => {
  const d = dev;
  if (!d || msg.length > SLOT) return;
  msg.copy(slab, 0);
  len[0] = msg.length;
  wgOpenBatch(d.sessions.buffer, slab, SLOT, len, off, peer, 1, performance.now(), wgCounters);
  if (peer[0] === WG_VERDICT_HANDSHAKE) {
    const verdict = d.handleHandshake(slab.subarray(0, msg.length), { address: rinfo.address, port: rinfo.port });
    out({ ev: 'handshake', verdict });
    return;
  }
  if (peer[0]! < 0) return; // counted by C
  const inner = Buffer.from(slab.subarray(off[0], off[0]! + len[0]!));
  d.received(peer[0]!, 1, inner.length > 0 ? 1 : 0);
  if (inner.length === 0) return;
  const echo = parseEcho(inner);
  if (!echo || echo.dst !== LOCAL_IP) return;
  if (echo.type === 0) out({ ev: 'reply', seq: echo.seq });
  if (echo.type === 8) {
    const reply = icmpEcho({
      src: LOCAL_IP,
      dst: echo.src,
      id: echo.id,
      seq: echo.seq,
      type: 0,
      payload: echo.payload,
    });
    out({ ev: 'request', seq: echo.seq, answered: sendPacket(d, reply) });
  }
});

setInterval(() => dev?.tick(), 50).unref();

lines.on('line', (line) => {
  const m = JSON.parse(line) as Record<string, unknown>;
  if (!dev) {
    const cfg = m as unknown as Config;
    const key = PrivateKey.fromBase64(cfg.privateKey);
    const peerKey = PublicKey.fromBase64(cfg.peer);
    if (!key || !peerKey) throw new Error('bad key in the configuration');
    dev = new WireguardDevice({ privateKey: key, slots: 16, maxPeers: 1, timing: cfg.timing, send });
    dev.addPeer({
      publicKey: peerKey,
      index: PEER_INDEX,
      endpoint: cfg.endpoint ? hostPort(cfg.endpoint) : null,
      persistentKeepaliveSeconds: cfg.persistentKeepalive ?? 0,
    });
    const b = hostPort(cfg.bind);
    sock.bind(b.port, b.address, () => out({ ev: 'ready', publicKey: key.publicKey.toString() }));
    return;
  }
  const d = dev;
  const p = d.peerAt(PEER_INDEX)!;
  switch (m['cmd']) {
    case 'initiate':
      p.handshake.lastSentHandshake = -Infinity; // now, whatever the rate limit of our own initiations says
      d.initiate(p);
      break;
    case 'ping': {
      const seq = Number(m['seq']);
      const ok = sendPacket(d, icmpEcho({ src: LOCAL_IP, dst: PEER_IP, id: 0x7766, seq }));
      out({ ev: 'sent', seq, ok });
      break;
    }
    case 'persistentKeepalive':
      p.timers.persistentKeepaliveMs = Number(m['seconds']) * 1000;
      p.timers.anyAuthenticatedPacketTraversal(performance.now());
      break;
    case 'underLoad':
      d.load.forced = m['on'] === true;
      break;
    case 'stats':
      out({
        ev: 'stats',
        device: d.counters,
        transport: Object.fromEntries(wgCounterNames.map((n) => [n, wgCounters[WgCounter[n]]])),
        current: p.current ? { localIndex: p.current.localIndex, isInitiator: p.current.isInitiator } : null,
        endpoint: p.endpoint,
      });
      break;
    default:
      out({ ev: 'error', message: `unknown command ${String(m['cmd'])}` });
  }
});
lines.on('close', () => {
  dev?.close();
  sock.close();
  process.exit(0);
});
