// The offload tier's TCP and UDP over IPv6 on hand-made packets, no devices: GSO of a GSO_TCPV6 / GSO_UDP_L4
// super-packet (payload length per segment, no ID, flow label kept, FIN/PSH on the last, CWR on the first, the IPv6
// pseudo-header in every checksum), GRO of IPv6 TCP segments back into a GSO_TCPV6 super-packet (ipv6_gro_receive's
// rules), and the round trip between them. Every checksum is recomputed here in TypeScript.
import t from 'tap';
import fc from 'fast-check';
import * as n from './helpers/native.js';
import { gro, payload, split, withVnet } from './helpers/gso.js';
import { ipv4Packet, ipv6Packet, l4Sum, l4Valid, pseudoSum } from './helpers/packets.js';

const TCPV6 = 4;
const UDP_L4 = 5;
const ECN = 0x80;
const ACK = 0x10;
const PSH = 0x08;
const FIN = 0x01;
const CWR = 0x80;

interface Tcp6 {
  payload: Buffer;
  seq?: number;
  flags?: number;
  hopLimit?: number;
  trafficClass?: number;
  flowLabel?: number;
  ts?: number; // timestamp option value; undefined = no options
  sport?: number;
  window?: number;
  next?: number; // next header other than TCP (the TCP bytes still follow the 40-byte header)
}

/** An IPv6/TCP packet with a correct checksum (options: NOP NOP TS when ts is given). */
function tcp6(o: Tcp6): Buffer {
  const opt = o.ts === undefined ? Buffer.alloc(0) : Buffer.from([1, 1, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0]);
  if (o.ts !== undefined) opt.writeUInt32BE(o.ts, 4);
  const thl = 20 + opt.length;
  const p = ipv6Packet({
    len: 40 + thl + o.payload.length,
    next: 6,
    hopLimit: o.hopLimit ?? 64,
    trafficClass: o.trafficClass ?? 0,
    flowLabel: o.flowLabel ?? 0x12345,
  });
  const tcp = 40;
  p.writeUInt16BE(o.sport ?? 40000, tcp);
  p.writeUInt16BE(5201, tcp + 2);
  p.writeUInt32BE((o.seq ?? 1000) >>> 0, tcp + 4);
  p.writeUInt32BE(777, tcp + 8);
  p[tcp + 12] = (thl / 4) << 4;
  p[tcp + 13] = o.flags ?? ACK;
  p.writeUInt16BE(o.window ?? 501, tcp + 14);
  opt.copy(p, tcp + 20);
  o.payload.copy(p, tcp + thl);
  p.writeUInt16BE(~l4Sum(p) & 0xffff, tcp + 16);
  if (o.next !== undefined) p[6] = o.next;
  return p;
}

/** An IPv6/UDP packet of `len` payload bytes with a correct checksum. */
function udp6(len: number): Buffer {
  const p = ipv6Packet({ len: 48 + len, next: 17, flowLabel: 7 });
  p.writeUInt16BE(5000, 40);
  p.writeUInt16BE(5001, 42);
  p.writeUInt16BE(8 + len, 44);
  payload(len).copy(p, 48);
  p.writeUInt16BE(~l4Sum(p) & 0xffff, 46);
  return p;
}

/** The virtio header the kernel puts in front of an IPv6 TCP super-packet (TSO6). */
const tso6 = (hdrLen: number, gsoSize: number, type = TCPV6) => ({ type, hdrLen, gsoSize, csumStart: 40, csumOff: 16 });

t.test('GSO: a TCPv6 super-packet becomes MTU-sized segments', async (t) => {
  const data = payload(5000);
  const p = tcp6({ payload: data, seq: 0xfffff000, flags: ACK | PSH | FIN | CWR, ts: 12345, trafficClass: 0x28 });
  const mss = 1450 - 40 - 32;
  const r = split(withVnet(p, tso6(72, mss, TCPV6 | ECN)), 1450, 22, true);
  t.equal(r.count, 4);
  t.equal(r.stride, 22 + 1450);
  t.same([r.counters[n.Counter.gso_superpackets], r.counters[n.Counter.gso_segments]], [1, 4]);
  const got: Buffer[] = [];
  r.segs.forEach((s, k) => {
    const last = k === 3;
    t.equal(s.length, last ? 72 + 5000 - 3 * mss : 1450, `segment ${k} length`);
    t.equal(s.readUInt16BE(4), s.length - 40, 'payload length per segment');
    t.same(s.subarray(0, 4), p.subarray(0, 4), 'version, traffic class and flow label kept');
    t.equal(s[6], 6, 'next header');
    t.equal(s[7], 63, 'hop limit decremented');
    t.same(s.subarray(8, 40), p.subarray(8, 40), 'addresses');
    t.ok(l4Valid(s, 0), 'TCP checksum over the IPv6 pseudo-header');
    t.equal(s.readUInt32BE(44), (0xfffff000 + k * mss) >>> 0, 'sequence number (wraps)');
    t.equal(s[53]! & (PSH | FIN), last ? PSH | FIN : 0, 'FIN/PSH only on the last');
    t.equal(s[53]! & CWR, k === 0 ? CWR : 0, 'CWR only on the first');
    t.same(s.subarray(60, 72), p.subarray(60, 72), 'timestamp option kept');
    got.push(s.subarray(72));
  });
  t.same(Buffer.concat(got), data, 'payload intact and in order');
});

t.test('GSO: TCPv6 with partial checksums writes the pseudo-header sum, the same segments otherwise', async (t) => {
  const p = tcp6({ payload: payload(4000), ts: 99 });
  const full = split(withVnet(p, tso6(72, 1378)), 1450, 0, true);
  const part = split(withVnet(p, tso6(72, 1378)), 1450, 0, true, true);
  t.equal(part.count, 3);
  t.equal(full.count, 3);
  part.segs.forEach((s, k) => {
    t.equal(s.readUInt16BE(56), pseudoSum(s), `segment ${k}: the checksum field holds the pseudo-header sum`);
    const a = Buffer.from(s);
    const b = Buffer.from(full.segs[k]!);
    a.writeUInt16BE(0, 56);
    b.writeUInt16BE(0, 56);
    t.same(a, b, `segment ${k}: otherwise byte for byte the full-checksum segment`);
  });
  const cut = split(withVnet(tcp6({ payload: payload(3000) }), tso6(60, 8000)), 1280);
  t.equal(cut.count, 3, 'an MSS larger than the MTU allows is cut finer (1220 per segment)');
  t.ok(cut.segs.every((s) => s.length <= 1280 && l4Valid(s, 0)));
});

t.test('GSO: UDP over IPv6 (USO) keeps the datagram size, each checksum over the IPv6 pseudo-header', async (t) => {
  const u = udp6(2500);
  const v = { type: UDP_L4, hdrLen: 48, gsoSize: 1000, csumStart: 40, csumOff: 6 };
  const r = split(withVnet(u, v), 1450, 0, true);
  t.equal(r.count, 3);
  r.segs.forEach((s, k) => {
    const chunk = k === 2 ? 500 : 1000;
    t.equal(s.length, 48 + chunk);
    t.equal(s.readUInt16BE(4), 8 + chunk, 'IPv6 payload length');
    t.equal(s.readUInt16BE(44), 8 + chunk, 'UDP length');
    t.equal(s[7], 63, 'hop limit decremented');
    t.ok(l4Valid(s, 0), 'UDP checksum');
    t.same(s.subarray(48), u.subarray(48 + k * 1000, 48 + k * 1000 + chunk));
  });
  const partial = split(withVnet(u, v), 1450, 0, false, true);
  t.ok(
    partial.segs.every((s) => s.readUInt16BE(46) === pseudoSum(s)),
    'partial: the pseudo-header sum',
  );
  t.equal(split(withVnet(u, { ...v, gsoSize: 1460 }), 1000).count, n.VERDICT_MALFORMED, 'no re-cut of UDP');
});

t.test('GSO: a lone IPv6 packet is fixed up in place (hop limit, partial checksum completed)', async (t) => {
  const p = tcp6({ payload: payload(333) });
  const r = split(withVnet(p, { type: 0, csumStart: 40, csumOff: 16 }), 1450, 0, true);
  t.equal(r.count, 1);
  t.equal(r.segs[0]![7], 63, 'hop limit decremented');
  t.ok(l4Valid(r.segs[0]!, 0), 'checksum completed');
  const want = Buffer.from(p);
  want[7] = 63;
  t.same(r.segs[0], want, 'identical to the packet with a full checksum, hop limit one less');
  t.equal(r.counters[n.Counter.csum_completed], 1);
  const kept = split(withVnet(p, { type: 0, csumStart: 40, csumOff: 16 }), 1450, 0, false, true);
  t.equal(kept.counters[n.Counter.csum_completed], 0, 'a partial peer takes the standard partial checksum as is');
  t.equal(
    split(withVnet(tcp6({ payload: payload(10), hopLimit: 1 }), { type: 0, csumStart: 40 }), 1450, 0, true).count,
    n.VERDICT_TTL_EXCEEDED,
    'hop limit 1 is not forwarded',
  );
});

t.test('GSO: IPv6 bad input is a verdict, never a crash', async (t) => {
  const p = tcp6({ payload: payload(4000), ts: 1 });
  const M = n.VERDICT_MALFORMED;
  t.equal(split(withVnet(p, tso6(72, 1000, 1))).count, M, 'TCPv4 on an IPv6 packet');
  t.equal(split(withVnet(p, { ...tso6(72, 1000), csumStart: 20 })).count, M, 'csum_start not at the TCP header');
  t.equal(split(withVnet(p, { ...tso6(72, 1000), csumOff: 6 })).count, M, 'csum_offset not the TCP field');
  t.equal(split(withVnet(p, tso6(72, 0))).count, M, 'gso_size 0');
  t.equal(split(withVnet(p, { ...tso6(72, 1000), flags: 0 })).count, M, 'GSO without NEEDS_CSUM');
  const lying = Buffer.from(p);
  lying.writeUInt16BE(p.length, 4);
  t.equal(split(withVnet(lying, tso6(72, 1000))).count, M, 'payload length that lies');
  t.equal(split(withVnet(p.subarray(0, 39), { type: 0 }, false)).count, M, 'shorter than an IPv6 header');
  const notTcp = tcp6({ payload: payload(4000), next: 17 });
  t.equal(split(withVnet(notTcp, tso6(60, 1000))).count, M, 'TCPv6 on a UDP packet');
  for (const next of [0, 43, 44, 60]) {
    const ext = tcp6({ payload: payload(4000), next });
    const r = split(withVnet(ext, tso6(60, 1000)));
    t.equal(r.count, n.VERDICT_UNSUPPORTED, `extension header ${next}: refused as unsupported`);
    t.equal(n.dropReasonOf(r.count), 'unsupported');
  }
  const v4 = ipv4Packet({ len: 2000, proto: 6 });
  v4[32] = 0x50;
  t.equal(split(withVnet(v4, tso6(40, 1000))).count, M, 'TCPv6 on an IPv4 packet');
});

// ---- GRO ----

/** count segments of one IPv6 flow, size payload bytes each (the last `last`), PSH on the last. */
function flow6(count: number, size: number, opts: Partial<Tcp6> = {}, last = size): Buffer[] {
  const base = opts.seq ?? 5000;
  return Array.from({ length: count }, (_, k) =>
    tcp6({
      ts: 99,
      ...opts,
      payload: payload(k === count - 1 ? last : size),
      seq: base + k * size,
      flags: k === count - 1 ? ACK | PSH : ACK,
    }),
  );
}

t.test('GRO: consecutive IPv6 segments of one flow become one GSO_TCPV6 super-packet', async (t) => {
  const segs = flow6(5, 1378, {}, 700);
  const { res, counters } = gro(segs);
  t.equal(res.length, 1);
  const { vh, pkt } = res[0]!;
  t.same(
    [vh[0], vh[1], vh.readUInt16LE(2), vh.readUInt16LE(4), vh.readUInt16LE(6), vh.readUInt16LE(8)],
    [1, TCPV6, 72, 1378, 40, 16],
    'NEEDS_CSUM, GSO_TCPV6, hdr_len, gso_size, csum_start, csum_offset',
  );
  t.equal(pkt.length, 72 + 4 * 1378 + 700);
  t.equal(pkt.readUInt16BE(4), pkt.length - 40, 'payload length');
  t.same(pkt.subarray(0, 4), segs[0]!.subarray(0, 4), 'flow label kept');
  t.equal(pkt[53], ACK | PSH, 'PSH of the last segment carried');
  t.equal(pkt.readUInt16BE(56), pseudoSum(pkt), 'checksum field holds the IPv6 pseudo-header sum');
  t.same(pkt.subarray(72), Buffer.concat(segs.map((p) => p.subarray(72))), 'payload in order');
  t.same([counters[n.Counter.gro_superpackets], counters[n.Counter.gro_coalesced]], [1, 5]);
  // What the kernel does with NEEDS_CSUM: sum from csum_start, store at csum_offset; then it verifies.
  const finished = Buffer.from(pkt);
  finished.writeUInt16BE(0, 56);
  const c = ~l4Sum(finished, 0) & 0xffff;
  finished.writeUInt16BE(c, 56);
  t.ok(l4Valid(finished, 0), 'completes to a valid checksum');

  const partial = flow6(3, 1000).map((p) => {
    const q = Buffer.from(p);
    q.writeUInt16BE(pseudoSum(q), 56);
    return q;
  });
  t.equal(gro(partial).res.length, 1, 'segments with partial checksums (a kernel sender) merge too');
});

t.test('GRO: IPv6 segments that must not merge are written alone, unchanged', async (t) => {
  const base = flow6(3, 1000);
  const alter = (k: number, o: Partial<Tcp6>) => {
    const segs = flow6(3, 1000);
    segs[k] = tcp6({ ts: 99, payload: payload(1000), seq: 5000 + k * 1000, flags: k === 2 ? ACK | PSH : ACK, ...o });
    return segs;
  };
  const cases: [string, Buffer[], number][] = [
    ['another flow label', alter(2, { flowLabel: 0x54321 }), 2],
    ['another traffic class', alter(2, { trafficClass: 4 }), 2],
    ['another hop limit', alter(2, { hopLimit: 63 }), 2],
    ['another port', alter(2, { sport: 40001 }), 2],
    ['another window', alter(2, { window: 502 }), 2],
    ['another timestamp', alter(2, { ts: 100 }), 2],
    ['a sequence gap', alter(1, { seq: 6001 }), 3],
    ['FIN', alter(0, { flags: ACK | FIN }), 2],
    ['CWR', alter(0, { flags: ACK | CWR }), 2],
    ['a destination-options header', alter(1, { next: 60 }), 3],
  ];
  for (const [name, segs, outputs] of cases) {
    const before = segs.map((p) => Buffer.from(p));
    const { res } = gro(segs);
    t.equal(res.length, outputs, `${name}: ${outputs} outputs`);
    const alone = res.filter((r) => r.vh[1] === 0);
    for (const r of alone)
      t.ok(
        before.some((p) => p.equals(r.pkt)),
        `${name}: a lone segment is byte for byte`,
      );
  }
  const v4 = ipv4Packet({ len: 20 + 20 + 1000, proto: 6 });
  v4[32] = 0x50;
  v4[33] = ACK;
  t.equal(gro([base[0]!, v4, base[1]!]).res.length, 3, 'IPv4 between IPv6 segments breaks the run');

  const bad = flow6(3, 1000);
  bad[1]![100] = bad[1]![100]! ^ 0xff;
  const br = gro(bad);
  t.equal(br.res.length, 3);
  t.equal(br.counters[n.Counter.gro_csum_bad], 2, 'the bad segment is seen when joining and again alone');
  t.equal(br.res[1]!.vh[0], 0, 'written alone with a zero header: the kernel drops it');
  t.ok(
    gro(base, false).res.every((r) => r.vh.every((b) => b === 0)),
    'coalescing off: each alone, complete checksums, zero headers',
  );
});

t.test('GRO: a lone IPv6 packet with a partial checksum or longer than the MTU', async (t) => {
  const p = tcp6({ payload: payload(100), flags: ACK | FIN });
  p.writeUInt16BE(pseudoSum(p), 56);
  const u = udp6(10);
  u.writeUInt16BE(pseudoSum(u), 46);
  const { res } = gro([p, u]);
  t.same([res[0]!.vh[0], res[0]!.vh[1], res[0]!.vh.readUInt16LE(6), res[0]!.vh.readUInt16LE(8)], [1, 0, 40, 16]);
  t.same([res[1]!.vh[0], res[1]!.vh.readUInt16LE(6), res[1]!.vh.readUInt16LE(8)], [1, 40, 6], 'UDP: at 40 + 6');

  const big = tcp6({ payload: payload(20000), ts: 5 });
  const r = gro([Buffer.from(big)], true, undefined, 1450);
  t.equal(r.res.length, 1);
  const { vh, pkt } = r.res[0]!;
  t.same(
    [vh[0], vh[1], vh.readUInt16LE(2), vh.readUInt16LE(4), vh.readUInt16LE(6), vh.readUInt16LE(8)],
    [1, TCPV6, 72, 1450 - 72, 40, 16],
    'a kernel peer burst goes to TUN as GSO_TCPV6 that fits the MTU',
  );
  t.equal(pkt.readUInt16BE(56), pseudoSum(big), 'its full checksum verified and made partial');
  const corrupt = Buffer.from(big);
  corrupt[3000] = (corrupt[3000]! + 1) & 255;
  const bad = gro([corrupt], true, undefined, 1450);
  t.equal(bad.res.length, 0, 'a wrong full checksum is dropped');
  t.equal(bad.counters[n.Counter.drop_bad_csum], 1);
});

t.test('GSO then GRO gives back the super-packet: headers, payload and the segment size', async (t) => {
  let whole = 0;
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 20000 }),
      fc.integer({ min: 200, max: 1500 }),
      fc.boolean(),
      fc.boolean(),
      fc.integer({ min: 0, max: 0xfffff }),
      fc.integer({ min: 0, max: 0xffffffff }),
      (len, mtu, ts, push, flowLabel, seq) => {
        const hdr = 40 + (ts ? 32 : 20);
        const mss = mtu - hdr;
        if (Math.ceil(len / mss) > 64) return; // one GRO run holds at most 64 segments
        const p = tcp6({
          payload: payload(len),
          seq,
          flowLabel,
          flags: push ? ACK | PSH : ACK,
          ...(ts ? { ts: (seq ^ 0x5a5a) >>> 0 } : {}),
        });
        const s = split(withVnet(p, tso6(hdr, 65535 - hdr)), mtu);
        if (s.count !== Math.ceil(len / mss)) throw new Error(`split into ${s.count}`);
        if (!s.segs.every((x) => l4Valid(x, 0) && x.length <= mtu)) throw new Error('a segment is invalid');
        const g = gro(s.segs.map((x) => Buffer.from(x)));
        if (g.res.length !== 1) throw new Error(`${g.res.length} outputs`);
        const { vh, pkt } = g.res[0]!;
        if (s.count === 1) {
          if (!pkt.equals(p) || vh[1] !== 0) throw new Error('a lone segment changed');
          return;
        }
        if (vh[1] !== TCPV6 || vh.readUInt16LE(4) !== mss || vh.readUInt16LE(2) !== hdr) throw new Error('vnet');
        const want = Buffer.from(p);
        want.writeUInt16BE(pseudoSum(p), 56);
        if (!pkt.equals(want)) throw new Error('not the original super-packet');
        whole++;
      },
    ),
    { numRuns: 200 },
  );
  t.ok(whole > 100, `${whole} random multi-segment super-packets came back whole`);
});
