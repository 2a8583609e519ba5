// Two weft WireGuard devices back to back in memory (test/helpers/wireguard.ts: handshake messages through
// handleHandshake, transport through the C batch calls, a fake clock): handshakes from either side, key
// confirmation, cookies under load, the rate limits, every hostile-message verdict, the timers of wireguard-go
// device/timers.go, rekey and reject, and that no secret prints.
import t from 'tap';
import fc from 'fast-check';
import { inspect } from 'node:util';
import {
  HANDSHAKE_VERDICTS,
  PrivateKey,
  WireguardDevice,
  WG_SESSION_SIZE,
  WG_VERDICT_NO_SESSION,
  WgSessionField,
} from '../src/wireguard/index.js';
import { icmpEcho, Pair, parseEcho } from './helpers/wireguard.js';

const ping = (seq: number, from: 'a' | 'b' = 'a'): Buffer =>
  icmpEcho({
    src: from === 'a' ? '10.77.0.1' : '10.77.0.2',
    dst: from === 'a' ? '10.77.0.2' : '10.77.0.1',
    id: 1,
    seq,
  });

/** Handshake from `who`, then one ping each way. */
function connect(p: Pair, who: 'a' | 'b' = 'a'): void {
  p.send(who, ping(0, who));
  p.deliver();
}

t.test('first handshake, initiated by a: response, keepalive confirms b, data both ways', async (t) => {
  const p = new Pair();
  t.equal(p.send('a', ping(1)), -1, 'no keypair yet: canSend starts a handshake, the packet is not sent');
  t.equal(p.wire.length, 1, 'one initiation on the wire');
  t.equal(p.wire[0]!.msg.length, 148);
  p.deliver(1);
  t.same(p.b.verdicts, ['initiation'], 'b accepts and answers');
  t.equal(p.wire[0]!.msg.length, 92, 'the response');
  t.notOk(p.b.dev.canSend(2), 'b may not send before the initiator used the new keypair');
  t.equal(p.wire.length, 1, '... and does not start a handshake of its own (it just sent a response)');
  p.deliver(1);
  t.same(p.a.verdicts, ['response']);
  t.equal(p.wire[0]!.msg.length, 32, 'a confirms with a keepalive');
  p.deliver();
  t.same(p.b.verdicts, ['initiation', 'transport']);
  t.ok(p.b.dev.canSend(2), 'the keepalive confirmed b');
  t.equal(p.a.dev.counters.handshakes_completed + p.b.dev.counters.handshakes_completed, 2);

  t.ok(p.send('a', ping(1)) >= 0);
  t.ok(p.send('b', ping(2, 'b')) >= 0);
  p.deliver();
  t.equal(parseEcho(p.b.delivered[0]!)?.seq, 1, 'a -> b');
  t.equal(parseEcho(p.a.delivered[0]!)?.seq, 2, 'b -> a');
});

t.test('first handshake, initiated by b', async (t) => {
  const p = new Pair();
  connect(p, 'b');
  t.same(p.a.verdicts, ['initiation', 'transport']);
  t.ok(p.send('a', ping(3)) >= 0);
  t.ok(p.send('b', ping(4, 'b')) >= 0);
  p.deliver();
  t.equal(parseEcho(p.b.delivered.at(-1)!)?.seq, 3);
  t.equal(parseEcho(p.a.delivered.at(-1)!)?.seq, 4);
});

t.test('both sides initiate at once: the retransmit jitter breaks the tie', async (t) => {
  const p = new Pair({ b: { jitter: () => 200 } });
  p.send('a', ping(1));
  p.send('b', ping(1, 'b'));
  t.equal(p.wire.length, 2, 'two initiations cross');
  p.deliver();
  t.notOk(p.a.dev.canSend(1) || p.b.dev.canSend(2), 'each answered the other: two unconfirmed keypairs');
  p.advance(5000); // a retries first (jitter 0 < 200)
  p.deliver();
  p.advance(1000);
  p.deliver();
  t.ok(p.send('a', ping(5)) >= 0, 'a can send');
  t.ok(p.send('b', ping(6, 'b')) >= 0, 'b can send');
  p.deliver();
  t.equal(parseEcho(p.b.delivered.at(-1)!)?.seq, 5);
  t.equal(parseEcho(p.a.delivered.at(-1)!)?.seq, 6);
});

t.test('a lost initiation is retried every REKEY_TIMEOUT, then given up on', async (t) => {
  const p = new Pair();
  p.send('a', ping(1));
  p.wire.length = 0; // lost
  const peer = p.peerOf('a');
  t.equal(peer.timers.deadline('retransmitHandshake'), p.clock + 5000, 'retransmit armed at REKEY_TIMEOUT (+0 jitter)');
  let sent = 1;
  for (let i = 0; i < 25; i++) {
    p.advance(5000);
    sent += p.wire.length;
    p.wire.length = 0;
  }
  t.equal(sent, 1 + peer.timers.maxHandshakes + 1, 'initial + 18 retries (REKEY_ATTEMPT_TIME / REKEY_TIMEOUT) + 1');
  t.equal(peer.timers.maxHandshakes, 18);
  t.ok(peer.timers.pending('zeroKeyMaterial'), 'then the partial state is scheduled for zeroing');
  t.equal(p.a.dev.counters.initiations_sent, sent);
});

t.test('an initiation is not repeated sooner than REKEY_TIMEOUT', async (t) => {
  const p = new Pair();
  p.send('a', ping(1));
  p.send('a', ping(2));
  p.advance(4000);
  p.send('a', ping(3));
  t.equal(p.wire.length, 1, 'one initiation for three packets within 5 s');
  p.advance(1000);
  t.equal(p.wire.length, 2, 'the retransmit timer sends the next one');
});

t.test('cookies: a device under load answers with a cookie reply; the retry with mac2 is accepted', async (t) => {
  const p = new Pair();
  p.b.dev.load.forced = true;
  p.send('a', ping(1));
  p.deliver(1);
  t.same(p.b.verdicts, ['cookie_sent'], 'no valid mac2: cookie reply, no DH work');
  t.equal(p.wire[0]!.msg.length, 64);
  p.deliver(1);
  t.same(p.a.verdicts, ['cookie_reply'], 'a takes the cookie');
  t.ok(p.peerOf('a').cookies.hasCookie(p.clock));
  t.equal(p.wire.length, 0, 'a does not answer at once ...');
  p.advance(5000);
  t.equal(p.wire.length, 1, '... but retries after REKEY_TIMEOUT');
  p.deliver();
  t.same(p.b.verdicts, ['cookie_sent', 'initiation', 'transport'], 'the retry carries mac2 and is accepted');
  t.ok(p.send('a', ping(2)) >= 0);
  p.deliver();
  t.equal(parseEcho(p.b.delivered.at(-1)!)?.seq, 2);

  // Cookie secret rotation: after 2 minutes the old cookie no longer verifies and a new one is handed out.
  p.advance(121_000);
  p.peerOf('a').handshake.lastSentHandshake = -Infinity;
  p.a.dev.initiate(p.peerOf('a'), false, p.clock);
  p.deliver(1);
  t.equal(p.b.verdicts.at(-1), 'cookie_sent', 'a stale cookie: a fresh cookie reply');
});

t.test(
  'cookies: an initiator under load answers the response with a cookie reply, taken by the responder',
  async (t) => {
    const p = new Pair();
    p.a.dev.load.forced = true;
    p.send('a', ping(1));
    p.deliver(3);
    t.same(p.b.verdicts, ['initiation', 'cookie_reply'], "b takes a's cookie (it names b's response index)");
    t.same(p.a.verdicts, ['cookie_sent']);
    p.advance(5000);
    p.deliver();
    t.same(p.a.verdicts, ['cookie_sent', 'response'], "a's retry is answered with a response carrying mac2");
    t.ok(p.send('a', ping(2)) >= 0);
    p.deliver();
    t.equal(parseEcho(p.b.delivered.at(-1)!)?.seq, 2);
  },
);

t.test('under load, a source with a valid mac2 is rate limited to 20 per second, burst 5', async (t) => {
  const p = new Pair();
  p.b.dev.load.forced = true;
  p.send('a', ping(1));
  p.deliver(2); // initiation -> cookie reply -> a holds a cookie
  const peer = p.peerOf('a');
  const verdicts: string[] = [];
  for (let i = 0; i < 40; i++) {
    p.clock += 25; // 40 initiations per second, each with a newer timestamp and past the 20 ms flood limit
    p.wall += 25;
    peer.handshake.lastSentHandshake = -Infinity;
    p.a.dev.initiate(peer, false, p.clock);
    verdicts.push(String(p.receive('b', p.wire.pop()!.msg)));
    p.wire.length = 0;
  }
  const accepted = verdicts.filter((v) => v === 'initiation').length;
  t.ok(
    verdicts.slice(0, 5).every((v) => v === 'initiation'),
    'a burst of 5 passes',
  );
  t.ok(accepted >= 20 && accepted <= 26, `then about 20 per second: ${accepted} of 40 in one second`);
  t.equal(verdicts.filter((v) => v === 'rate_limited').length, 40 - accepted, 'the rest is refused');
  t.equal(p.b.dev.counters.rx_rate_limited, 40 - accepted, 'and counted');
});

t.test('hostile handshake messages: every verdict, nothing thrown', async (t) => {
  const p = new Pair();
  const a = p.a.dev;
  const b = p.b.dev;
  p.send('a', ping(1));
  const init = p.wire.shift()!.msg;
  const from = p.a.ep;

  const badMac = Buffer.from(init);
  badMac[120]! ^= 1;
  t.equal(b.handleHandshake(badMac, from, p.clock), 'bad_mac1');
  t.equal(b.handleHandshake(init.subarray(0, 147), from, p.clock), 'malformed', 'truncated');
  t.equal(b.handleHandshake(Buffer.concat([init, Buffer.alloc(1)]), from, p.clock), 'malformed', 'too long');
  const wrongType = Buffer.from(init);
  wrongType[0] = 9;
  t.equal(b.handleHandshake(wrongType, from, p.clock), 'malformed', 'unknown type');
  t.equal(b.handleHandshake(Buffer.alloc(2), from, p.clock), 'malformed', 'two bytes');

  // A stranger (unknown static key) who knows b's public key can compute a valid mac1.
  let strangerInit: Buffer | null = null;
  const s2 = new WireguardDevice({
    privateKey: PrivateKey.generate(),
    send: (m) => (strangerInit = m),
    now: () => p.clock,
    slots: 4,
    maxPeers: 2,
  });
  s2.initiate(s2.addPeer({ publicKey: p.b.key.publicKey, index: 0, endpoint: p.b.ep }), false, p.clock);
  t.equal(b.handleHandshake(strangerInit!, from, p.clock), 'unknown_peer', 'valid mac1, unknown static key');

  t.equal(b.handleHandshake(init, from, p.clock), 'initiation', 'the genuine initiation');
  t.equal(b.handleHandshake(init, from, p.clock), 'replay', 'the same initiation again: replayed timestamp');
  p.wall += 1000;
  p.peerOf('a').handshake.lastSentHandshake = -Infinity;
  a.initiate(p.peerOf('a'), false, p.clock);
  const second = p.wire.pop()!.msg;
  t.equal(b.handleHandshake(second, from, p.clock + 10), 'flood', 'a newer initiation within 20 ms: flood');
  t.equal(b.handleHandshake(second, from, p.clock + 30), 'initiation', 'after 20 ms it is accepted');

  const resp = p.wire.pop()!.msg;
  const tampered = Buffer.from(resp);
  tampered[50]! ^= 1; // inside "empty"; mac1 no longer matches either
  t.equal(a.handleHandshake(tampered, p.b.ep, p.clock), 'bad_mac1');
  const unknownIdx = Buffer.from(resp);
  unknownIdx.writeUInt32LE((unknownIdx.readUInt32LE(8) ^ 0x40000000) >>> 0, 8);
  t.equal(a.handleHandshake(unknownIdx, p.b.ep, p.clock), 'bad_mac1', 'a changed receiver index breaks mac1 too');
  const cookieForNobody = Buffer.alloc(64);
  cookieForNobody.writeUInt32LE(3, 0);
  cookieForNobody.writeUInt32LE(0x12345678, 4);
  t.equal(a.handleHandshake(cookieForNobody, p.b.ep, p.clock), 'unknown_index');
  const badCookie = Buffer.from(cookieForNobody);
  badCookie.writeUInt32LE(p.peerOf('a').handshake.localIndex, 4);
  t.equal(a.handleHandshake(badCookie, p.b.ep, p.clock), 'bad_cookie', 'our index, but it does not decrypt');
  t.equal(a.handleHandshake(resp, p.b.ep, p.clock), 'response', 'the genuine response still completes');
  t.equal(a.handleHandshake(resp, p.b.ep, p.clock), 'unknown_index', 'and cannot complete twice');

  for (const v of HANDSHAKE_VERDICTS) t.type(b.counters[`rx_${v}`], 'number');
  t.ok(b.counters.rx_bad_mac1 >= 1 && b.counters.rx_malformed >= 4 && b.counters.rx_replay === 1);

  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), fc.constantFrom(1, 2, 3, 7), (bytes, type) => {
      const m = Buffer.from(bytes);
      if (m.length >= 4) m.writeUInt32LE(type, 0);
      const v = b.handleHandshake(m, from, p.clock);
      return HANDSHAKE_VERDICTS.includes(v);
    }),
    { numRuns: 500 },
  );
  fc.assert(
    fc.property(fc.constantFrom(init, resp), fc.nat(91), fc.integer({ min: 1, max: 255 }), (msg, at, x) => {
      const m = Buffer.from(msg);
      m[at % m.length]! ^= x;
      return HANDSHAKE_VERDICTS.includes(b.handleHandshake(m, from, p.clock + 1000));
    }),
    { numRuns: 300 },
  );
});

t.test('timers: keepalive after KEEPALIVE_TIMEOUT, new handshake when the peer goes silent', async (t) => {
  const p = new Pair();
  connect(p);
  p.wire.length = 0;
  p.send('a', ping(1));
  p.deliver();
  t.equal(p.b.delivered.length, 1);
  p.advance(9_999);
  t.equal(p.wire.length, 0, 'nothing before 10 s');
  p.advance(1);
  t.equal(p.wire.length, 1, 'b answers received data with a keepalive after 10 s of silence');
  t.equal(p.wire[0]!.msg.length, 32);
  p.wire.length = 0; // lost: a heard nothing back

  const initiations = p.a.dev.counters.initiations_sent;
  p.advance(4_999);
  t.equal(p.a.dev.counters.initiations_sent, initiations, 'not before KEEPALIVE_TIMEOUT + REKEY_TIMEOUT');
  p.advance(1);
  t.equal(p.a.dev.counters.initiations_sent, initiations + 1, 'a sent data and heard nothing for 15 s: handshake');
});

t.test('timers: a reply cancels the keepalive; persistent keepalive every interval', async (t) => {
  const p = new Pair();
  connect(p);
  p.send('a', ping(1));
  p.deliver();
  p.send('b', ping(2, 'b'));
  p.deliver();
  p.advance(10_000);
  t.equal(p.b.dev.counters.keepalives_sent, 0, 'b sent data: no keepalive needed');

  const q = new Pair();
  q.peerOf('a').timers.persistentKeepaliveMs = 1000;
  connect(q);
  const before = q.a.dev.counters.keepalives_sent;
  for (let i = 0; i < 5; i++) {
    q.advance(1000);
    q.deliver();
  }
  t.equal(q.a.dev.counters.keepalives_sent - before, 5, 'one keepalive per second');
});

t.test('rekey: the initiator starts a new handshake after REKEY_AFTER_TIME; old messages still open', async (t) => {
  const p = new Pair({ timing: { rekeyAfterTimeMs: 6000, keepaliveTimeoutMs: 100_000 } });
  connect(p);
  const first = p.peerOf('a').current!;
  p.send('a', ping(1));
  const inFlight = p.wire.pop()!.msg; // sealed with the first keypair, delivered late
  p.advance(6001);
  t.ok(p.send('a', ping(2)) >= 0, 'the old keypair still sends ...');
  t.equal(p.wire.at(-1)!.msg.length, 148, '... and an initiation follows it');
  p.deliver();
  const second = p.peerOf('a').current!;
  t.not(second.localIndex, first.localIndex, 'a new current keypair');
  t.equal(p.peerOf('a').previous?.localIndex, first.localIndex, 'the old one is previous');
  t.equal(p.receive('b', inFlight), 'transport', 'b still opens a message sealed with the previous keypair');
  t.ok(p.send('a', ping(3)) >= 0);
  p.deliver();
  t.equal(parseEcho(p.b.delivered.at(-1)!)?.seq, 3);

  p.advance(6001);
  t.ok(p.send('b', ping(4, 'b')) >= 0, 'the responder never rekeys on time');
  t.equal(p.wire.length, 1, 'no initiation from b');
});

t.test('reject: after REJECT_AFTER_TIME a keypair neither sends nor opens; keys zeroed after 3x', async (t) => {
  const p = new Pair({ timing: { keepaliveTimeoutMs: 1e9, rekeyAfterTimeMs: 1e9 } });
  connect(p);
  p.send('a', ping(1));
  const late = p.wire.pop()!.msg;
  p.clock += 180_000;
  t.equal(p.receive('b', late), WG_VERDICT_NO_SESSION, 'a message of an expired keypair is refused by C');
  t.notOk(p.a.dev.canSend(1), 'an expired keypair does not send; a handshake starts instead');
  t.equal(p.wire.at(-1)!.msg.length, 148);
  p.wire.length = 0;
  p.advance(360_000);
  t.equal(p.peerOf('b').current, null, 'REJECT_AFTER_TIME * 3 after the last session: every key is gone');
  t.equal(p.b.dev.sendSlot[2], -1);
  t.equal(p.b.dev.sessions.free, 16, 'every slot of b is free again');
});

t.test('message counts: a new handshake past REKEY_AFTER_MESSAGES, no sending at REJECT_AFTER_MESSAGES', async (t) => {
  const p = new Pair();
  connect(p);
  const table = p.a.dev.sessions;
  const slot = p.peerOf('a').current!.slot;
  const u64 = new BigUint64Array(table.buffer.buffer, table.buffer.byteOffset, table.buffer.length / 8);
  const at = (slot * WG_SESSION_SIZE + WgSessionField.sendCounter) / 8;
  u64[at] = (1n << 60n) + 1000n; // a double near 2^60 moves in steps of 256
  t.equal(table.sendCounterApprox(slot), 2 ** 60 + 1024, "read without a BigInt, within a double's step");
  p.clock += 6000; // past REKEY_TIMEOUT since the last initiation
  const before = p.a.dev.counters.initiations_sent;
  t.ok(p.send('a', ping(1)) >= 0, 'still sends');
  t.equal(p.a.dev.counters.initiations_sent, before + 1, 'and starts a new handshake (keepKeyFreshSending)');
  p.wire.length = 0;
  u64[at] = (1n << 64n) - (1n << 13n) - 1n;
  p.clock += 6000;
  t.notOk(p.a.dev.canSend(1), 'at REJECT_AFTER_MESSAGES the keypair no longer sends');
  t.equal(p.wire.at(-1)?.msg.length, 148, 'a handshake starts instead');
});

t.test('REKEY_AFTER_MESSAGES and REJECT_AFTER_MESSAGES are the protocol values', async (t) => {
  const p = new Pair();
  t.equal(p.a.dev.timing.rekeyAfterMessages, 1n << 60n);
  t.equal(p.a.dev.timing.rejectAfterMessages, (1n << 64n) - (1n << 13n) - 1n);
  t.equal(p.a.dev.timing.rekeyAfterTimeMs, 120_000);
  t.equal(p.a.dev.timing.rejectAfterTimeMs, 180_000);
  t.equal(p.a.dev.timing.rekeyAttemptTimeMs, 90_000);
  t.equal(p.a.dev.timing.rekeyTimeoutMs, 5_000);
  t.equal(p.a.dev.timing.keepaliveTimeoutMs, 10_000);
});

t.test('slots: a long run of handshakes keeps at most four slots per peer', async (t) => {
  const p = new Pair({ timing: { rekeyAfterTimeMs: 6000 } });
  connect(p);
  const handshakes = p.a.dev.counters.handshakes_completed;
  for (let i = 0; i < 30; i++) {
    p.advance(6001 + (i % 3) * 2000);
    p.send(i % 2 ? 'a' : 'b', ping(i, i % 2 ? 'a' : 'b'));
    p.deliver();
  }
  t.ok(p.a.dev.counters.handshakes_completed - handshakes >= 10, 'many rekeys');
  t.ok(16 - p.a.dev.sessions.free <= 4, `a uses ${16 - p.a.dev.sessions.free} slots`);
  t.ok(16 - p.b.dev.sessions.free <= 4, `b uses ${16 - p.b.dev.sessions.free} slots`);
  p.advance(1);
  p.send('a', ping(99));
  p.deliver();
  t.equal(parseEcho(p.b.delivered.at(-1)!)?.seq, 99, 'and still delivers');
});

t.test('nothing secret prints: device, peers, keys, sessions', async (t) => {
  const p = new Pair();
  connect(p);
  const secret = p.a.key.exportBase64();
  const shown = [
    inspect(p.a.dev, { depth: 5 }),
    JSON.stringify(p.a.dev),
    inspect(p.peerOf('a'), { depth: 5 }),
    JSON.stringify(p.peerOf('a')),
    inspect(p.a.dev.sessions),
    inspect(p.peerOf('a').handshake),
  ].join('\n');
  t.notOk(shown.includes(secret), 'no private key');
  const table = p.a.dev.sessions;
  for (let slot = 0; slot < table.slots; slot++) {
    if (!table.active(slot)) continue;
    for (const at of [96, 128]) {
      const key = table.buffer.subarray(slot * WG_SESSION_SIZE + at, slot * WG_SESSION_SIZE + at + 32);
      t.notOk(shown.includes(key.toString('hex').slice(0, 16)) || shown.includes(key.toString('base64').slice(0, 12)));
    }
  }
  t.ok(shown.includes(p.a.key.publicKey.toString()), 'the public key is shown');
});

t.test('removing a peer zeroes its sessions and stops its timers', async (t) => {
  const p = new Pair();
  connect(p);
  p.a.dev.removePeer(p.b.key.publicKey);
  t.equal(p.a.dev.sendSlot[1], -1);
  t.equal(p.a.dev.sessions.free, 16);
  t.equal(p.a.dev.nextDeadline(), null);
  t.notOk(p.a.dev.canSend(1));
  p.send('b', ping(1, 'b'));
  p.deliver();
  t.equal(typeof p.a.verdicts.at(-1), 'number', 'its messages now get a C verdict (unknown index)');
});
