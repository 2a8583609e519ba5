// The C transport functions (native/wg.c) against node:crypto's ChaCha20-Poly1305 (checked against RFC 8439 in
// wireguard-primitives.test.ts): the message format, padding, the replay window (wireguard-go replay/replay_test.go's
// table, ported from the Linux implementation, plus a model check), every verdict of seal and open, and the offload
// tier's segment trains. Messages with chosen counters are crafted in TypeScript.
import t from 'tap';
import fc from 'fast-check';
import { randomBytes } from 'node:crypto';
import {
  createSessionTable,
  WG_COUNTER_COUNT,
  WG_OVERHEAD,
  WG_SESSION_SIZE,
  WG_VERDICT_BAD_INNER,
  WG_VERDICT_BAD_TAG,
  WG_VERDICT_COUNTER_LIMIT,
  WG_VERDICT_HANDSHAKE,
  WG_VERDICT_MALFORMED,
  WG_VERDICT_NO_ROOM,
  WG_VERDICT_NO_SESSION,
  WG_VERDICT_REPLAY,
  WG_VERDICT_UNKNOWN_INDEX,
  WG_WINDOW,
  WgCounter,
  WgSessionField,
  wgOpenBatch,
  wgOpenList,
  wgSealBatch,
  wgSealedLen,
  wgSealSegments,
  wgSessionClear,
  wgSessionSet,
  wgVerdictName,
} from '../src/wireguard/native.js';
import { aeadOpen, aeadSeal } from '../src/wireguard/primitives.js';
import { SessionTable } from '../src/wireguard/sessions.js';
import { icmpEcho } from './helpers/wireguard.js';
import { verdictOf } from '../src/native.js';

const REJECT = (1n << 64n) - (1n << 13n) - 1n;
const SLOT = 2048;
const HEADROOM = 64;
const NOW = 5000;
const EXPIRES = 10_000;

/** A session table with one keypair: we send with `send` to index `remote`, and accept `recv` on index `local`. */
function setup(slots = 8): {
  table: SessionTable;
  slot: number;
  local: number;
  remote: number;
  send: Buffer;
  recv: Buffer;
  peer: number;
} {
  const table = new SessionTable(slots);
  const { slot, index } = table.allocate()!;
  const send = randomBytes(32);
  const recv = randomBytes(32);
  table.install(index, 0x11223344, 3, send, recv, EXPIRES);
  return { table, slot, local: index, remote: 0x11223344, send, recv, peer: 3 };
}

/** A transport message to `receiver` with `counter`, its plaintext sealed with `key` as the peer would. */
/** The two ends of one keypair in two tables: a sends with k1 to peer 0, b receives from peer `bPeer`. */
function twoEnds(bPeer: number): {
  a: SessionTable;
  b: SessionTable;
  ia: NonNullable<ReturnType<SessionTable['allocate']>>;
} {
  const a = new SessionTable(4);
  const b = new SessionTable(4);
  const ia = a.allocate()!;
  const ib = b.allocate()!;
  const k1 = randomBytes(32);
  const k2 = randomBytes(32);
  a.install(ia.index, ib.index, 0, k1, k2, EXPIRES);
  b.install(ib.index, ia.index, bPeer, k2, k1, EXPIRES);
  return { a, b, ia };
}

function craft(key: Buffer, receiver: number, counter: bigint, plaintext: Uint8Array): Buffer {
  const h = Buffer.alloc(16);
  h.writeUInt32LE(4, 0);
  h.writeUInt32LE(receiver >>> 0, 4);
  h.writeBigUInt64LE(counter, 8);
  return Buffer.concat([h, aeadSeal(key, counter, plaintext, Buffer.alloc(0))]);
}

/** Open datagrams with wgOpenBatch; returns per datagram [len, peer, inner bytes]. */
function open(
  table: Buffer,
  dgrams: Buffer[],
  now = NOW,
  counters = new Float64Array(WG_COUNTER_COUNT),
): { len: number; peer: number; inner: Buffer }[] {
  const slab = Buffer.alloc(SLOT * dgrams.length);
  const len = new Int32Array(dgrams.length);
  const off = new Int32Array(dgrams.length);
  const peer = new Int32Array(dgrams.length);
  dgrams.forEach((d, i) => {
    d.copy(slab, i * SLOT);
    len[i] = d.length;
  });
  wgOpenBatch(table, slab, SLOT, len, off, peer, dgrams.length, now, counters);
  return dgrams.map((_, i) => ({
    len: len[i]!,
    peer: peer[i]!,
    inner: len[i]! > 0 ? Buffer.from(slab.subarray(off[i], off[i]! + len[i]!)) : Buffer.alloc(0),
  }));
}

/** Seal packets with wgSealBatch for peer index p (sendSlot maps it); returns the messages (or verdicts). */
function seal(
  table: Buffer,
  sendSlot: Int32Array,
  packets: Uint8Array[],
  p: number,
  mtu = 1420,
  now = NOW,
  counters = new Float64Array(WG_COUNTER_COUNT),
): (Buffer | number)[] {
  const n = packets.length;
  const slab = Buffer.alloc(SLOT * n);
  const len = new Int32Array(n);
  const off = new Int32Array(n);
  const peer = new Int32Array(n).fill(p);
  packets.forEach((pkt, i) => {
    slab.set(pkt, i * SLOT + HEADROOM);
    len[i] = pkt.length;
  });
  wgSealBatch(table, slab, SLOT, HEADROOM, len, off, peer, sendSlot, n, mtu, now, counters);
  return packets.map((_, i) => (peer[i]! < 0 ? peer[i]! : Buffer.from(slab.subarray(off[i], off[i]! + len[i]!))));
}

const ping = (seq: number, size = 0): Buffer =>
  icmpEcho({ src: '10.77.0.1', dst: '10.77.0.2', id: 7, seq, payload: Buffer.alloc(size, seq) });

t.test('seal: header, padding to 16 within the MTU, ChaCha20-Poly1305 as node:crypto computes it', async (t) => {
  const s = setup();
  const sendSlot = new Int32Array([-1, -1, -1, s.slot]);
  const counters = new Float64Array(WG_COUNTER_COUNT);
  for (const [size, mtu, padded] of [
    [28, 1420, 32],
    [32, 1420, 32],
    [33, 1420, 48],
    [1419, 1420, 1420], // padding stops at the MTU (wireguard-go calculatePaddingSize)
    [1420, 1420, 1420],
    [1421, 0, 1424], // mtu 0: no cap
    [100, 0, 112],
  ] as const) {
    const pkt = ping(1, size - 28);
    const [msg] = seal(s.table.buffer, sendSlot, [pkt], 3, mtu, NOW, counters) as [Buffer];
    t.equal(msg.length, padded + WG_OVERHEAD, `${size} bytes at MTU ${mtu} -> ${padded} padded`);
    t.equal(wgSealedLen(size, mtu), msg.length, 'wgSealedLen agrees');
    t.equal(msg.readUInt32LE(0), 4, 'type 4, reserved zero');
    t.equal(msg.readUInt32LE(4), s.remote, "the peer's index");
    const ctr = msg.readBigUInt64LE(8);
    const plain = aeadOpen(s.send, ctr, msg.subarray(16), Buffer.alloc(0));
    t.ok(plain, 'opens with the send key and the counter as nonce');
    t.same(plain!.subarray(0, size), pkt, 'the packet');
    t.ok(
      plain!.subarray(size).every((b) => b === 0),
      'zero padding',
    );
  }
  t.equal(s.table.sendCounter(s.slot), 7n, 'one counter per message, from 0');
  t.equal(counters[WgCounter.wg_tx_packets], 7);
  t.equal(s.table.stats(s.slot).txPackets, 7n, 'per-session count');

  const ka = seal(s.table.buffer, sendSlot, [Buffer.alloc(0)], 3)[0] as Buffer;
  t.equal(ka.length, 32, 'a keepalive is 32 bytes');
});

t.test('open: round trip, padding cut by the inner length, keepalive, per-session counts', async (t) => {
  const s = setup();
  const counters = new Float64Array(WG_COUNTER_COUNT);
  const pkts = [ping(1), ping(2, 13), ping(3, 1392)];
  const msgs = pkts.map((p, i) => {
    const padded = Buffer.concat([p, Buffer.alloc((16 - (p.length % 16)) % 16)]);
    return craft(s.recv, s.local, BigInt(i), padded);
  });
  msgs.push(craft(s.recv, s.local, 3n, Buffer.alloc(0)));
  const r = open(s.table.buffer, msgs, NOW, counters);
  for (let i = 0; i < 3; i++) {
    t.equal(r[i]!.peer, 3, 'the peer index of the session');
    t.same(r[i]!.inner, pkts[i], `packet ${i} decrypted in place, padding cut`);
  }
  t.same([r[3]!.len, r[3]!.peer], [0, 3], 'keepalive: length 0, authenticated');
  t.equal(counters[WgCounter.wg_rx_packets], 4);
  t.equal(counters[WgCounter.wg_keepalives_rx], 1);
  t.ok(s.table.received(s.slot), 'the session is marked as having received (key confirmation)');
  t.equal(s.table.stats(s.slot).rxPackets, 4n);
});

t.test('seal and open agree across two tables (the two ends of one keypair)', async (t) => {
  const { a, b, ia } = twoEnds(1);
  const pkts = Array.from({ length: 20 }, (_, i) => ping(i, i * 37));
  const msgs = seal(a.buffer, new Int32Array([ia.slot]), pkts, 0) as Buffer[];
  const r = open(b.buffer, msgs);
  t.same(
    r.map((x) => x.inner),
    pkts,
  );
  t.ok(r.every((x) => x.peer === 1));
});

// wireguard-go replay/replay_test.go (ported there from the Linux implementation): counter -> accepted?
t.test('replay window: the Linux/wireguard-go table', async (t) => {
  const W = BigInt(WG_WINDOW);
  t.equal(W, 8128n, 'window: 127 blocks of 64, as wireguard-go and the Linux implementation');
  const T_LIM = W + 1n;
  const table: [bigint, boolean][] = [
    [0n, true],
    [1n, true],
    [1n, false],
    [9n, true],
    [8n, true],
    [7n, true],
    [7n, false],
    [T_LIM, true],
    [T_LIM - 1n, true],
    [T_LIM - 1n, false],
    [T_LIM - 2n, true],
    [2n, true],
    [2n, false],
    [T_LIM + 16n, true],
    [3n, false],
    [T_LIM + 16n, false],
    [T_LIM * 4n, true],
    [T_LIM * 4n - (T_LIM - 1n), true],
    [10n, false],
    [T_LIM * 4n - T_LIM, false],
    [T_LIM * 4n - (T_LIM + 1n), false],
    [T_LIM * 4n - (T_LIM - 2n), true],
    [T_LIM * 4n + 1n - T_LIM, false],
    [0n, false],
    [REJECT, false],
    [REJECT - 1n, true],
    [REJECT, false],
    [REJECT - 1n, false],
    [REJECT - 2n, true],
    [REJECT + 1n, false],
    [REJECT + 2n, false],
    [REJECT - 2n, false],
    [REJECT - 3n, true],
    [0n, false],
  ];
  const s = setup();
  const pkt = ping(1);
  const padded = Buffer.concat([pkt, Buffer.alloc(4)]);
  table.forEach(([ctr, ok], i) => {
    const [r] = open(s.table.buffer, [craft(s.recv, s.local, ctr & ((1n << 64n) - 1n), padded)]);
    t.equal(r!.peer >= 0, ok, `#${i + 1}: counter ${ctr} ${ok ? 'accepted' : 'refused'}`);
    if (!ok) t.equal(r!.peer, WG_VERDICT_REPLAY, 'as a replay');
  });

  // Bulk tests 1-6 of the same file, in one batch call each where the order allows.
  const bulk = (counters: bigint[]): boolean[] => {
    const f = setup();
    return open(
      f.table.buffer,
      counters.map((c) => craft(f.recv, f.local, c, padded)),
    ).map((r) => r.peer >= 0);
  };
  const range = (from: bigint, to: bigint, step = 1n): bigint[] => {
    const out: bigint[] = [];
    for (let i = from; step > 0 ? i <= to : i >= to; i += step) out.push(i);
    return out;
  };
  t.same(bulk([...range(1n, W), 0n, 0n]), [...range(1n, W).map(() => true), true, false], 'bulk 1');
  t.same(bulk([...range(2n, W + 1n), 1n, 0n]), [...range(2n, W + 1n).map(() => true), true, false], 'bulk 2');
  t.ok(
    bulk(range(W + 1n, 1n, -1n)).every((x) => x),
    'bulk 3: descending through the whole window',
  );
  t.same(bulk([...range(W + 2n, 2n, -1n), 0n]).at(-1), false, 'bulk 4: 0 fell behind');
  t.same(bulk([...range(W, 1n, -1n), W + 1n, 0n]).slice(-2), [true, false], 'bulk 5');
  t.same(bulk([...range(W, 1n, -1n), 0n, W + 1n]).slice(-2), [true, true], 'bulk 6');
});

t.test('replay window against a model: accepted iff new and not more than WINDOW behind the highest', async (t) => {
  const W = BigInt(WG_WINDOW);
  const pkt = Buffer.concat([ping(1), Buffer.alloc(4)]);
  fc.assert(
    fc.property(
      fc.array(
        fc.oneof(
          fc.bigInt({ min: 0n, max: 3n * W }),
          fc.bigInt({ min: 0n, max: 200n }),
          // the edges: a window's width apart, block boundaries
          fc
            .tuple(fc.constantFrom(0n, 64n, W, W + 64n, 2n * W, 2n * W + 1n, 3n * W), fc.bigInt({ min: -2n, max: 2n }))
            .map(([base, d]) => (base + d < 0n ? 0n : base + d)),
          fc.bigInt({ min: REJECT - 200n, max: (1n << 64n) - 1n }),
        ),
        { minLength: 1, maxLength: 40 },
      ),
      (ctrs) => {
        const s = setup();
        const got = open(
          s.table.buffer,
          ctrs.map((c) => craft(s.recv, s.local, c, pkt)),
        ).map((r) => r.peer >= 0);
        const seen = new Set<bigint>();
        let last = 0n;
        const want = ctrs.map((c) => {
          if (c >= REJECT || seen.has(c) || (c <= last && last - c > W)) return false;
          seen.add(c);
          if (c > last) last = c;
          return true;
        });
        return got.every((g, i) => g === want[i]);
      },
    ),
    { numRuns: 300 },
  );
  t.pass('300 counter sequences agree with the model');
});

t.test('open: a verdict for every hostile datagram, counted once, bytes untouched before the tag check', async (t) => {
  const s = setup();
  const other = randomBytes(32);
  const good = Buffer.concat([ping(1), Buffer.alloc(4)]);
  const hs = (type: number, n: number): Buffer => {
    const b = randomBytes(n);
    b.writeUInt32LE(type, 0);
    return b;
  };
  const notIp = Buffer.alloc(32, 0x11);
  const lying = Buffer.from(good);
  lying.writeUInt16BE(200, 2); // inner total length past the plaintext
  const cases: [string, Buffer, number][] = [
    ['empty', Buffer.alloc(0), WG_VERDICT_MALFORMED],
    ['3 bytes', Buffer.from([4, 0, 0]), WG_VERDICT_MALFORMED],
    ['type 4, 31 bytes', hs(4, 31), WG_VERDICT_MALFORMED],
    ['type 5', hs(5, 64), WG_VERDICT_MALFORMED],
    ['type 0', hs(0, 64), WG_VERDICT_MALFORMED],
    ['reserved byte set', hs(0x0104, 64), WG_VERDICT_MALFORMED],
    ['initiation, 148 bytes', hs(1, 148), WG_VERDICT_HANDSHAKE],
    ['initiation, 147 bytes', hs(1, 147), WG_VERDICT_MALFORMED],
    ['initiation, 149 bytes', hs(1, 149), WG_VERDICT_MALFORMED],
    ['response, 92 bytes', hs(2, 92), WG_VERDICT_HANDSHAKE],
    ['response, 93 bytes', hs(2, 93), WG_VERDICT_MALFORMED],
    ['cookie reply, 64 bytes', hs(3, 64), WG_VERDICT_HANDSHAKE],
    ['cookie reply, 63 bytes', hs(3, 63), WG_VERDICT_MALFORMED],
    ['unknown index', craft(s.recv, s.local ^ 0x100, 0n, good), WG_VERDICT_UNKNOWN_INDEX],
    ['index of a free slot', craft(s.recv, (s.local + 1) >>> 0, 0n, good), WG_VERDICT_UNKNOWN_INDEX],
    ['wrong key', craft(other, s.local, 1n, good), WG_VERDICT_BAD_TAG],
    [
      'flipped tag bit',
      (() => {
        const m = craft(s.recv, s.local, 2n, good);
        m[m.length - 1]! ^= 1;
        return m;
      })(),
      WG_VERDICT_BAD_TAG,
    ],
    [
      'flipped ciphertext bit',
      (() => {
        const m = craft(s.recv, s.local, 3n, good);
        m[20]! ^= 1;
        return m;
      })(),
      WG_VERDICT_BAD_TAG,
    ],
    [
      'counter changed',
      (() => {
        const m = craft(s.recv, s.local, 4n, good);
        m.writeBigUInt64LE(5n, 8);
        return m;
      })(),
      WG_VERDICT_BAD_TAG,
    ],
    ['not an IP packet', craft(s.recv, s.local, 6n, notIp), WG_VERDICT_BAD_INNER],
    ['inner length past the plaintext', craft(s.recv, s.local, 7n, lying), WG_VERDICT_BAD_INNER],
    [
      'replayed (7 was taken, even though its inner packet was bad)',
      craft(s.recv, s.local, 7n, good),
      WG_VERDICT_REPLAY,
    ],
  ];
  for (const [name, d, want] of cases) {
    const counters = new Float64Array(WG_COUNTER_COUNT);
    const [r] = open(s.table.buffer, [d], NOW, counters);
    t.equal(r!.peer, want, `${name}: ${wgVerdictName(r!.peer) ?? r!.peer}`);
    t.equal(r!.len, want, 'len[] holds the verdict too: tunWrite skips it');
    const total = counters.reduce((a, b) => a + b, 0);
    t.equal(total, 1, 'counted once');
    t.equal(counters[WgCounter[`wg_${wgVerdictName(want)!}`]], 1, `under wg_${wgVerdictName(want)}`);
  }

  // A refused index or counter never reaches the cipher: the slab is as received.
  const replay = craft(s.recv, s.local, 7n, good);
  const unknown = craft(s.recv, s.local ^ 0x100, 9n, good);
  const slab = Buffer.alloc(SLOT * 2);
  replay.copy(slab, 0);
  unknown.copy(slab, SLOT);
  const len = new Int32Array([replay.length, unknown.length]);
  wgOpenBatch(s.table.buffer, slab, SLOT, len, new Int32Array(2), new Int32Array(2), 2, NOW, new Float64Array(20));
  t.same(slab.subarray(0, replay.length), replay, 'replay: untouched');
  t.same(slab.subarray(SLOT, SLOT + unknown.length), unknown, 'unknown index: untouched');

  // An earlier verdict (udpRecv's truncated) passes through.
  const judged = new Int32Array([verdictOf('truncated')]);
  const peer = new Int32Array(1);
  wgOpenBatch(s.table.buffer, Buffer.alloc(SLOT), SLOT, judged, new Int32Array(1), peer, 1, NOW, new Float64Array(20));
  t.equal(peer[0], verdictOf('truncated'), 'an already judged datagram keeps its verdict');
});

t.test('sessions: expiry, clear, and a slot reused under a new index', async (t) => {
  const s = setup();
  const good = Buffer.concat([ping(1), Buffer.alloc(4)]);
  t.equal(
    open(s.table.buffer, [craft(s.recv, s.local, 0n, good)], EXPIRES)[0]!.peer,
    WG_VERDICT_NO_SESSION,
    'at expiry',
  );
  t.equal(open(s.table.buffer, [craft(s.recv, s.local, 0n, good)], EXPIRES - 1)[0]!.peer, 3, 'just before');
  const sendSlot = new Int32Array([-1, -1, -1, s.slot]);
  t.equal(seal(s.table.buffer, sendSlot, [ping(1)], 3, 1420, EXPIRES)[0], WG_VERDICT_NO_SESSION, 'seal after expiry');

  s.table.release(s.slot);
  t.equal(open(s.table.buffer, [craft(s.recv, s.local, 1n, good)])[0]!.peer, WG_VERDICT_UNKNOWN_INDEX, 'cleared');
  t.equal(seal(s.table.buffer, sendSlot, [ping(1)], 3)[0], WG_VERDICT_NO_SESSION, 'seal on a cleared slot');
  const keys = s.table.buffer.subarray(s.slot * WG_SESSION_SIZE + 96, s.slot * WG_SESSION_SIZE + 160);
  t.ok(
    keys.every((b) => b === 0),
    'keys zeroed',
  );

  const again = s.table.allocate()!;
  t.equal(again.slot, s.slot, 'the slot comes back');
  t.not(again.index, s.local, 'under another index');
  s.table.install(again.index, 1, 3, s.send, s.recv, EXPIRES);
  t.equal(
    open(s.table.buffer, [craft(s.recv, s.local, 2n, good)])[0]!.peer,
    WG_VERDICT_UNKNOWN_INDEX,
    'the old index no longer names it',
  );
  t.equal(open(s.table.buffer, [craft(s.recv, again.index, 0n, good)])[0]!.peer, 3, 'the new one does, from 0');
});

t.test('seal: verdicts (no session, counter limit, no room) leave the packet unsent and counted', async (t) => {
  const s = setup();
  const counters = new Float64Array(WG_COUNTER_COUNT);
  t.equal(
    seal(s.table.buffer, new Int32Array([-1, -1, -1, -1]), [ping(1)], 3, 1420, NOW, counters)[0],
    WG_VERDICT_NO_SESSION,
  );
  t.equal(
    seal(s.table.buffer, new Int32Array(2), [ping(1)], 3, 1420, NOW, counters)[0],
    WG_VERDICT_NO_SESSION,
    'peer index past sendSlot',
  );
  // REJECT_AFTER_MESSAGES: the last usable counter is REJECT - 1.
  const u64 = new BigUint64Array(s.table.buffer.buffer, s.table.buffer.byteOffset, s.table.buffer.length / 8);
  u64[(s.slot * WG_SESSION_SIZE + WgSessionField.sendCounter) / 8] = REJECT - 1n;
  const sendSlot = new Int32Array([-1, -1, -1, s.slot]);
  const [last, refused] = seal(s.table.buffer, sendSlot, [ping(1), ping(2)], 3, 1420, NOW, counters);
  t.equal((last as Buffer).readBigUInt64LE(8), REJECT - 1n, 'counter REJECT - 1 is the last one sent');
  t.equal(refused, WG_VERDICT_COUNTER_LIMIT, 'then counter_limit');
  t.equal(s.table.sendCounter(s.slot), REJECT, 'and the counter stays there');

  const fresh = setup();
  const big = Buffer.alloc(SLOT - HEADROOM - 8, 0x45);
  t.equal(
    seal(fresh.table.buffer, new Int32Array([-1, -1, -1, fresh.slot]), [big], 3, 0)[0],
    WG_VERDICT_NO_ROOM,
    'no room for pad + tag',
  );
  t.equal(counters[WgCounter.wg_no_session], 2);
  t.equal(counters[WgCounter.wg_counter_limit], 1);
  // Verdicts of the wireguard calls never collide with the encap drop verdicts of src/native.ts.
  t.ok(WG_VERDICT_HANDSHAKE < verdictOf('bad_csum'));
});

t.test('seal segments (offload tier): one counter range, messages back to back, each opens', async (t) => {
  const { a, b, ia } = twoEnds(5);
  const mtu = 1420;
  const segLen = 1400;
  const stride = wgSealedLen(segLen, mtu);
  t.equal(stride, 1400 + 8 + 32, '1400 pads to 1408');
  const segs = [ping(1, segLen - 28), ping(2, segLen - 28), ping(3, segLen - 28), ping(4, 500)];
  const first = 64;
  const buf = Buffer.alloc(first + stride * segs.length + 64);
  segs.forEach((s, k) => buf.set(s, first + k * stride));
  const counters = new Float64Array(WG_COUNTER_COUNT);
  const bytes = wgSealSegments(a.buffer, ia.slot, buf, first, segLen, segs.length, 528, mtu, NOW, counters);
  t.equal(bytes, 3 * stride + wgSealedLen(528, mtu), 'three full messages and the short last one');
  t.equal(counters[WgCounter.wg_tx_packets], 4);
  t.equal(a.sendCounter(ia.slot), 4n);
  const off = Int32Array.from(segs.map((_, k) => first - 16 + k * stride));
  const len = Int32Array.from(segs.map((_, k) => (k < 3 ? stride : wgSealedLen(528, mtu))));
  const peer = new Int32Array(segs.length);
  wgOpenList(b.buffer, buf, off, len, peer, segs.length, NOW, new Float64Array(WG_COUNTER_COUNT));
  segs.forEach((s, k) => {
    t.equal(peer[k], 5, `segment ${k} authenticated`);
    t.same(buf.subarray(off[k], off[k]! + len[k]!), s, `segment ${k} intact`);
  });
  t.equal(
    wgSealSegments(a.buffer, ia.slot, buf, first, segLen, 20, segLen, mtu, NOW, counters),
    WG_VERDICT_NO_ROOM,
    'a train longer than the buffer',
  );
  t.equal(
    wgSealSegments(a.buffer, 3, buf, first, segLen, 1, segLen, mtu, NOW, counters),
    WG_VERDICT_NO_SESSION,
    'an inactive slot',
  );
  t.equal(a.sendCounter(ia.slot), 4n, 'refused trains take no counters');
  const list = new Int32Array([first, 10]);
  wgOpenList(b.buffer, buf, new Int32Array([buf.length - 10, 0]), list, peer, 2, NOW, counters);
  t.equal(peer[0], WG_VERDICT_MALFORMED, 'a datagram past the end of the buffer is refused, not read');
});

t.test('open never throws and always gives a known verdict (fast-check)', async (t) => {
  const s = setup();
  const known = new Set([
    WG_VERDICT_HANDSHAKE,
    WG_VERDICT_MALFORMED,
    WG_VERDICT_UNKNOWN_INDEX,
    WG_VERDICT_REPLAY,
    WG_VERDICT_BAD_TAG,
  ]);
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 200 }),
      fc.boolean(),
      fc.constantFrom(0, 1, 2, 3, 4),
      (bytes, ours, type) => {
        const d = Buffer.from(bytes);
        if (d.length >= 4) d.writeUInt32LE(type, 0);
        if (ours && d.length >= 8) d.writeUInt32LE(s.local, 4);
        const counters = new Float64Array(WG_COUNTER_COUNT);
        const [r] = open(s.table.buffer, [d], NOW, counters);
        return known.has(r!.peer) && counters.reduce((a, b) => a + b, 0) === 1;
      },
    ),
    { numRuns: 2000 },
  );
  t.pass('2000 random datagrams');
});

t.test('the native calls check their arguments before touching memory', async (t) => {
  const table = createSessionTable(2);
  const c = new Float64Array(WG_COUNTER_COUNT);
  t.throws(
    () =>
      wgOpenBatch(
        Buffer.alloc(WG_SESSION_SIZE * 3),
        Buffer.alloc(SLOT),
        SLOT,
        new Int32Array(1),
        new Int32Array(1),
        new Int32Array(1),
        1,
        0,
        c,
      ),
    {
      code: 'ERR_OUT_OF_RANGE',
    },
    'a table of 3 slots',
  );
  t.throws(
    () =>
      wgOpenBatch(table, Buffer.alloc(SLOT), SLOT, new Int32Array(1), new Int32Array(1), new Int32Array(1), 2, 0, c),
    {
      code: 'ERR_OUT_OF_RANGE',
    },
    'count past the arrays',
  );
  t.throws(
    () =>
      wgOpenBatch(
        table,
        Buffer.alloc(SLOT),
        SLOT,
        new Int32Array(1),
        new Int32Array(1),
        new Int32Array(1),
        1,
        0,
        new Float64Array(3),
      ),
    {
      code: 'ERR_OUT_OF_RANGE',
    },
    'a short counters array',
  );
  t.throws(() => wgSessionSet(table, 1, 2, 0, Buffer.alloc(31), Buffer.alloc(32), 0), { message: /sendKey/ });
  t.throws(() => wgSessionClear(table, 2), { code: 'ERR_OUT_OF_RANGE' });
  t.throws(() => createSessionTable(3), RangeError);
});
