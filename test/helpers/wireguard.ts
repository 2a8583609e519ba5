// WireGuard test helpers: IPv4/ICMP echo packets, and two WireguardDevices wired back to back in memory (handshake
// messages through handleHandshake, transport messages through the C seal/open batch calls), on a fake clock.
import {
  type Endpoint,
  PrivateKey,
  WG_COUNTER_COUNT,
  WireguardDevice,
  type DeviceOptions,
  type HandshakeVerdict,
  type Timing,
  wgOpenBatch,
  wgSealBatch,
  WG_VERDICT_HANDSHAKE,
} from '../../src/wireguard/index.js';

function csum(b: Uint8Array, start = 0, end = b.length): number {
  let s = 0;
  for (let i = start; i + 1 < end; i += 2) s += (b[i]! << 8) | b[i + 1]!;
  if ((end - start) & 1) s += b[end - 1]! << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

/** An IPv4 ICMP echo request (type 8) or reply (type 0) with valid checksums. */
export function icmpEcho(o: {
  src: string;
  dst: string;
  id: number;
  seq: number;
  type?: 0 | 8;
  payload?: Uint8Array;
  ttl?: number;
}): Buffer {
  const payload = o.payload ?? Buffer.from('weft wireguard echo');
  const b = Buffer.alloc(20 + 8 + payload.length);
  b[0] = 0x45;
  b.writeUInt16BE(b.length, 2);
  b.writeUInt16BE(0x4000, 6); // DF
  b[8] = o.ttl ?? 64;
  b[9] = 1;
  Buffer.from(o.src.split('.').map(Number)).copy(b, 12);
  Buffer.from(o.dst.split('.').map(Number)).copy(b, 16);
  b.writeUInt16BE(csum(b, 0, 20), 10);
  b[20] = o.type ?? 8;
  b.writeUInt16BE(o.id, 24);
  b.writeUInt16BE(o.seq, 26);
  b.set(payload, 28);
  b.writeUInt16BE(csum(b, 20), 22);
  return b;
}

/** The ICMP echo fields of an IPv4 packet, or null when it is none (or a checksum fails). */
export function parseEcho(
  p: Uint8Array,
): { src: string; dst: string; type: number; id: number; seq: number; payload: Buffer } | null {
  const b = Buffer.from(p.buffer, p.byteOffset, p.byteLength);
  if (b.length < 28 || b[0] !== 0x45 || b[9] !== 1 || b.readUInt16BE(2) !== b.length) return null;
  if (csum(b, 0, 20) !== 0 || csum(b, 20) !== 0) return null;
  const ip = (at: number): string => [...b.subarray(at, at + 4)].join('.');
  return {
    src: ip(12),
    dst: ip(16),
    type: b[20]!,
    id: b.readUInt16BE(24),
    seq: b.readUInt16BE(26),
    payload: Buffer.from(b.subarray(28)),
  };
}

export interface Wire {
  to: 'a' | 'b';
  msg: Buffer;
}

/** One side of the in-memory pair. */
export interface Side {
  readonly dev: WireguardDevice;
  readonly key: PrivateKey;
  readonly ep: Endpoint;
  /** Index of the other side in this side's peer table. */
  readonly peerIndex: number;
  /** Inner packets this side's "TUN" got, in order. */
  readonly delivered: Buffer[];
  /** Verdicts of everything this side received: handshake verdicts, 'transport', or a C verdict number. */
  readonly verdicts: (HandshakeVerdict | 'transport' | number)[];
  readonly counters: Float64Array;
}

const SLOT = 2048;
const HEADROOM = 64;

/** Two devices that reach each other through a queue: a (10.0.0.1:51820, peer index 1) and b (10.0.0.2:51820,
 *  peer index 2). Nothing moves until deliver(); `drop` loses the next messages to a side. */
export class Pair {
  clock = 1_000_000;
  wall = 1_700_000_000_000;
  readonly wire: Wire[] = [];
  readonly a: Side;
  readonly b: Side;
  readonly #slab = Buffer.alloc(SLOT * 4);
  readonly #len = new Int32Array(4);
  readonly #off = new Int32Array(4);
  readonly #peer = new Int32Array(4);

  constructor(opts: { timing?: Partial<Timing>; a?: Partial<DeviceOptions>; b?: Partial<DeviceOptions> } = {}) {
    const make = (name: 'a' | 'b', n: number): Side => {
      const key = PrivateKey.generate();
      const other = name === 'a' ? 'b' : 'a';
      const dev = new WireguardDevice({
        privateKey: key,
        slots: 16,
        maxPeers: 4,
        timing: opts.timing,
        now: () => this.clock,
        wallClock: () => this.wall,
        jitter: () => 0,
        send: (msg) => this.wire.push({ to: other, msg }),
        ...opts[name],
      });
      return {
        dev,
        key,
        ep: { address: `10.0.0.${n}`, port: 51820 },
        peerIndex: n === 1 ? 1 : 2,
        delivered: [],
        verdicts: [],
        counters: new Float64Array(WG_COUNTER_COUNT),
      };
    };
    this.a = make('a', 1);
    this.b = make('b', 2);
    this.a.dev.addPeer({ publicKey: this.b.key.publicKey, index: this.a.peerIndex, endpoint: this.b.ep });
    this.b.dev.addPeer({ publicKey: this.a.key.publicKey, index: this.b.peerIndex, endpoint: this.a.ep });
  }

  side(name: 'a' | 'b'): Side {
    return name === 'a' ? this.a : this.b;
  }

  /** Seal `packet` from `from` to the other side with the C batch call; the message goes on the wire. Returns the C
   *  verdict (>= 0: the peer index, sent) after asking canSend as the datapath does. */
  send(from: 'a' | 'b', packet: Uint8Array, mtu = 1420): number {
    const s = this.side(from);
    if (!s.dev.canSend(s.peerIndex, this.clock)) return -1;
    this.#slab.set(packet, HEADROOM);
    this.#len[0] = packet.length;
    this.#peer[0] = s.peerIndex;
    wgSealBatch(
      s.dev.sessions.buffer,
      this.#slab,
      SLOT,
      HEADROOM,
      this.#len,
      this.#off,
      this.#peer,
      s.dev.sendSlot,
      1,
      mtu,
      this.clock,
      s.counters,
    );
    if (this.#peer[0]! < 0) return this.#peer[0]!;
    this.wire.push({
      to: from === 'a' ? 'b' : 'a',
      msg: Buffer.from(this.#slab.subarray(this.#off[0], this.#off[0]! + this.#len[0]!)),
    });
    s.dev.sent(s.peerIndex, 1, packet.length > 0 ? 1 : 0, this.clock);
    return this.#peer[0]!;
  }

  /** Hand one datagram to a side as its socket would: C judges it, handshake messages go to the device. */
  receive(to: 'a' | 'b', msg: Buffer): HandshakeVerdict | 'transport' | number {
    const s = this.side(to);
    const from = to === 'a' ? this.b.ep : this.a.ep;
    this.#slab.set(msg, 0);
    this.#len[0] = msg.length;
    wgOpenBatch(s.dev.sessions.buffer, this.#slab, SLOT, this.#len, this.#off, this.#peer, 1, this.clock, s.counters);
    let v: HandshakeVerdict | 'transport' | number;
    if (this.#peer[0] === WG_VERDICT_HANDSHAKE) {
      v = s.dev.handleHandshake(this.#slab.subarray(this.#off[0], this.#off[0]! + msg.length), from, this.clock);
    } else if (this.#peer[0]! >= 0) {
      v = 'transport';
      const n = this.#len[0]!;
      if (n > 0) s.delivered.push(Buffer.from(this.#slab.subarray(this.#off[0], this.#off[0]! + n)));
      s.dev.received(this.#peer[0]!, 1, n > 0 ? 1 : 0, this.clock);
    } else {
      v = this.#peer[0]!;
    }
    s.verdicts.push(v);
    return v;
  }

  /** Deliver everything on the wire (and what that triggers), at most `max` messages. */
  deliver(max = 64): number {
    let n = 0;
    while (this.wire.length > 0 && n < max) {
      const w = this.wire.shift()!;
      this.receive(w.to, w.msg);
      n++;
    }
    return n;
  }

  /** Move both clocks forward and run due timers on both sides. */
  advance(ms: number): void {
    this.clock += ms;
    this.wall += ms;
    this.a.dev.tick(this.clock);
    this.b.dev.tick(this.clock);
  }

  /** The other side's peer object as seen from `side`. */
  peerOf(side: 'a' | 'b'): NonNullable<ReturnType<WireguardDevice['peerAt']>> {
    const s = this.side(side);
    return s.dev.peerAt(s.peerIndex)!;
  }
}
