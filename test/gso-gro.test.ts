// Segmentation (GSO) and coalescing (GRO) of the offload tier on hand-made packets: no devices, no root.
// Every output is checked field by field and by recomputing checksums here in TypeScript.
import t from 'tap';
import * as n from './helpers/native.js';
import { gro, payload, split, withVnet } from './helpers/gso.js';
import { ipValid, ipv4Packet, l4Sum, l4Valid, pseudoSum } from './helpers/packets.js';

const VH = n.VNET_HDR_LEN;

interface Tcp {
  payload: Buffer;
  seq?: number;
  flags?: number;
  id?: number;
  ttl?: number;
  ts?: number; // timestamp option value; undefined = no options
  src?: string;
  sport?: number;
}
const ip4 = (s: string) => Buffer.from(s.split('.').map(Number));

/** An IPv4/TCP packet (DF) with correct checksums (options: NOP NOP TS when ts is given). */
function tcp(o: Tcp): Buffer {
  const opt = o.ts === undefined ? Buffer.alloc(0) : Buffer.from([1, 1, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0]);
  if (o.ts !== undefined) opt.writeUInt32BE(o.ts, 4);
  const thl = 20 + opt.length;
  const len = 20 + thl + o.payload.length;
  const p = ipv4Packet({ len, proto: 6, id: o.id ?? 100, ttl: o.ttl ?? 64, src: o.src ?? '10.5.1.2', dst: '10.5.2.2' });
  p.writeUInt16BE(o.sport ?? 40000, 20);
  p.writeUInt16BE(5201, 22);
  p.writeUInt32BE(o.seq ?? 1000, 24);
  p.writeUInt32BE(777, 28);
  p[32] = (thl / 4) << 4;
  p[33] = o.flags ?? 0x10;
  p.writeUInt16BE(501, 34);
  opt.copy(p, 40);
  o.payload.copy(p, 20 + thl);
  p.writeUInt16BE(~l4Sum(p) & 0xffff, 36);
  return p;
}

t.test('GSO: a TCP super-packet becomes MTU-sized segments', async (t) => {
  const data = payload(5000);
  const ackPshFinCwr = 0x10 | 0x08 | 0x01 | 0x80;
  const p = tcp({ payload: data, seq: 0xfffff000, flags: ackPshFinCwr, id: 0xfffe, ts: 12345 });
  const mss = 1398; // 1450 - 20 - 32
  const r = split(withVnet(p, { type: 1 | 0x80, hdrLen: 52, gsoSize: mss }), 1450, 22, true);
  t.equal(r.count, 4);
  t.equal(r.stride, 22 + 1450);
  t.equal(r.counters[n.Counter.gso_segments], 4);
  const got: Buffer[] = [];
  r.segs.forEach((s, k) => {
    const last = k === 3;
    t.equal(s.readUInt16BE(2), s.length, `segment ${k} total length`);
    t.equal(s.length, last ? 52 + 5000 - 3 * mss : 1450);
    t.equal(s.readUInt16BE(4), (0xfffe + k) & 0xffff, 'IP ID increments (and wraps)');
    t.equal(s[8], 63, 'TTL decremented');
    t.ok(ipValid(s, 0), 'IP checksum');
    t.ok(l4Valid(s, 0), 'TCP checksum');
    t.equal(s.readUInt32BE(24), (0xfffff000 + k * mss) >>> 0, 'sequence number');
    t.equal(s[33]! & 0x09, last ? 0x09 : 0, 'FIN/PSH only on the last');
    t.equal(s[33]! & 0x80, k === 0 ? 0x80 : 0, 'CWR only on the first');
    t.same(s.subarray(40, 52), p.subarray(40, 52), 'timestamp option kept');
    got.push(s.subarray(52));
  });
  t.same(Buffer.concat(got), data, 'payload intact and in order');
});

t.test('GSO: MSS larger than the MTU allows is cut finer; UDP (USO) keeps datagram size', async (t) => {
  const p = tcp({ payload: payload(3000) });
  const r = split(withVnet(p, { gsoSize: 1460 }), 1000);
  t.equal(r.count, 4, '3000 bytes at 960 per segment');
  t.ok(r.segs.every((s) => s.length <= 1000 && l4Valid(s, 0)));

  const u = ipv4Packet({ len: 20 + 8 + 2500, proto: 17, id: 0, frag: 0, src: '10.5.1.2', dst: '10.5.2.2' });
  u.writeUInt16BE(5000, 20);
  u.writeUInt16BE(5001, 22);
  u.writeUInt16BE(u.length - 20, 24);
  payload(2500).copy(u, 28);
  const ur = split(withVnet(u, { type: 5, gsoSize: 1000, csumOff: 6 }), 1450);
  t.equal(ur.count, 3);
  ur.segs.forEach((s, k) => {
    t.equal(s.readUInt16BE(24), 8 + (k === 2 ? 500 : 1000), 'UDP length per datagram');
    t.ok(l4Valid(s, 0), 'UDP checksum');
  });
  const tooBig = split(withVnet(u, { type: 5, gsoSize: 1460, csumOff: 6 }), 1000);
  t.equal(tooBig.count, n.VERDICT_MALFORMED, 'a UDP datagram larger than the MTU is not re-cut');
});

t.test('GSO: NEEDS_CSUM without GSO only completes the checksum', async (t) => {
  const p = tcp({ payload: payload(333) });
  const r = split(withVnet(p, { type: 0 }));
  t.equal(r.count, 1);
  t.equal(r.segs[0]!.length, p.length);
  t.ok(l4Valid(r.segs[0]!, 0), 'checksum completed');
  t.same(r.segs[0], p, 'identical to the packet with a full checksum');
  t.equal(r.counters[n.Counter.csum_completed], 1);
  const plain = split(withVnet(p, { type: 0, flags: 0 }, false));
  t.same(plain.segs[0], p, 'no flags: copied as it is');
});

t.test('GSO: bad input is a verdict, never a crash', async (t) => {
  const p = tcp({ payload: payload(4000), ts: 1 });
  const M = n.VERDICT_MALFORMED;
  t.equal(split(withVnet(p, { gsoSize: 0 })).count, M, 'gso_size 0');
  t.equal(split(withVnet(p, { gsoSize: 1000, csumStart: 24 })).count, M, 'csum_start not at the TCP header');
  t.equal(split(withVnet(p, { gsoSize: 1000, csumOff: 6 })).count, M, 'csum_offset not the TCP field');
  t.equal(split(withVnet(p, { gsoSize: 1000, hdrLen: 9000 })).count, M, 'hdr_len beyond the packet');
  t.equal(split(withVnet(p, { gsoSize: 1000, type: 4 })).count, M, 'TCPv6 on an IPv4 packet');
  t.equal(split(withVnet(p, { gsoSize: 1000, flags: 0 })).count, M, 'GSO without NEEDS_CSUM');
  t.equal(split(withVnet(p, { gsoSize: 1 })).count, M, 'more segments than allowed');
  t.equal(split(withVnet(p, { type: 0, csumStart: 60000 }, false)).count, M, 'csum_start beyond the packet');
  const lying = Buffer.from(p);
  lying.writeUInt16BE(p.length + 100, 2);
  t.equal(split(withVnet(lying, { gsoSize: 1000 })).count, M, 'IP total length that lies');
  const thl = Buffer.from(p);
  thl[32] = 0xf0; // 60-byte TCP header
  thl.writeUInt16BE(50, 2);
  t.equal(split(withVnet(thl.subarray(0, 50), { gsoSize: 1000 })).count, M, 'TCP header beyond the packet');
  t.equal(
    split(withVnet(tcp({ payload: payload(10), ttl: 1 }), { type: 0 }), 1450, 0, true).count,
    n.VERDICT_TTL_EXCEEDED,
  );
  const out = Buffer.alloc(100);
  const res = new Int32Array(2);
  const b = withVnet(p, { gsoSize: 1000 });
  t.equal(
    n.gsoSplit(b, VH, b.length - VH, 1450, out, 0, 0, res, new Float64Array(n.COUNTER_COUNT)),
    n.VERDICT_NO_SLOT,
    'no room',
  );
});

// ---- GRO ----

function flow(count: number, size: number, opts: Partial<Tcp> = {}, last = size): Buffer[] {
  const base = opts.seq ?? 5000;
  return Array.from({ length: count }, (_, k) =>
    tcp({
      ts: 99,
      ...opts,
      payload: payload(k === count - 1 ? last : size),
      seq: base + k * size,
      id: 10 + k,
      flags: k === count - 1 ? 0x18 : 0x10,
    }),
  );
}

t.test('GRO: consecutive segments of one flow become one super-packet', async (t) => {
  const segs = flow(5, 1398, {}, 700);
  const { res, counters } = gro(segs);
  t.equal(res.length, 1);
  const { vh, pkt } = res[0]!;
  t.equal(vh[0], 1, 'NEEDS_CSUM');
  t.equal(vh[1], 1, 'GSO TCPV4');
  t.equal(vh.readUInt16LE(2), 52, 'hdr_len');
  t.equal(vh.readUInt16LE(4), 1398, 'gso_size = segment payload');
  t.equal(vh.readUInt16LE(6), 20, 'csum_start');
  t.equal(vh.readUInt16LE(8), 16, 'csum_offset');
  t.equal(pkt.readUInt16BE(2), pkt.length, 'IP total length');
  t.equal(pkt.length, 52 + 4 * 1398 + 700);
  t.ok(ipValid(pkt, 0));
  t.equal(pkt[33], 0x18, 'PSH of the last segment carried');
  t.equal(pkt.readUInt16BE(36), pseudoSum(pkt), 'checksum field holds the pseudo-header sum');
  t.same(pkt.subarray(52), Buffer.concat(segs.map((p) => p.subarray(52))), 'payload in order');
  t.equal(counters[n.Counter.gro_superpackets], 1);
  t.equal(counters[n.Counter.gro_coalesced], 5);
});

t.test('GRO: what must not be merged is written alone', async (t) => {
  const a = flow(3, 1000);
  const gap = flow(3, 1000);
  gap[1] = tcp({ ts: 99, payload: payload(1000), seq: 5000 + 1000 + 1, id: 11 }); // hole in the sequence
  t.equal(gro(gap).res.length, 3, 'a sequence gap breaks every run');

  const opts = flow(3, 1000);
  opts[2] = tcp({ ts: 100, payload: payload(1000), seq: 7000, id: 12, flags: 0x18 });
  t.equal(gro(opts).res.length, 2, 'a different timestamp ends the run (options must match)');

  const fin = flow(3, 1000);
  fin[0] = tcp({ ts: 99, payload: payload(1000), seq: 5000, flags: 0x11 });
  t.equal(gro(fin).res.length, 2, 'FIN is never merged');

  const short = [...flow(2, 1000, {}, 500), tcp({ ts: 99, payload: payload(1000), seq: 6500 })];
  short[1]![33] = 0x10;
  short[1]!.writeUInt16BE(0, 36);
  short[1]!.writeUInt16BE(~l4Sum(short[1]!) & 0xffff, 36);
  const sr = gro(short).res;
  t.equal(sr.length, 2, 'a short segment ends the run');
  t.equal(sr[0]!.pkt.length, 52 + 1500);

  const other = [...a.slice(0, 2), tcp({ ts: 99, payload: payload(1000), seq: 7000, sport: 40001 })];
  t.equal(gro(other).res.length, 2, 'another flow starts its own run');

  const bad = flow(3, 1000);
  bad[1]![100] = (bad[1]![100] as number) ^ 0xff; // corrupt payload: checksum no longer matches
  const br = gro(bad);
  t.equal(br.res.length, 3);
  t.equal(br.counters[n.Counter.gro_csum_bad], 2, 'the bad segment is seen when joining and again alone');
  t.equal(br.res[1]!.vh[0], 0, 'written alone with a zero header: the kernel drops it');

  t.equal(gro(a, false).res.length, 3, 'coalescing off');
  t.ok(
    gro(a, false).res.every((r) => r.vh.every((b) => b === 0)),
    'complete checksums: zero headers',
  );
});

t.test('GRO: partial checksums from a kernel sender go as NEEDS_CSUM', async (t) => {
  const u = Buffer.alloc(20 + 8 + 10);
  u[0] = 0x45;
  u.writeUInt16BE(u.length, 2);
  u[8] = 64;
  u[9] = 17;
  ip4('10.5.1.2').copy(u, 12);
  ip4('10.5.2.2').copy(u, 16);
  u.writeUInt16BE(18, 24);
  u.writeUInt16BE(pseudoSum(u), 26);
  const p = tcp({ payload: payload(100), flags: 0x11 });
  p.writeUInt16BE(pseudoSum(p), 36);
  const { res } = gro([u, p]);
  t.equal(res.length, 2);
  t.same(
    [res[0]!.vh[0], res[0]!.vh.readUInt16LE(6), res[0]!.vh.readUInt16LE(8)],
    [1, 20, 6],
    'UDP: NEEDS_CSUM at 20+6',
  );
  t.same([res[1]!.vh[0], res[1]!.vh[1], res[1]!.vh.readUInt16LE(8)], [1, 0, 16], 'TCP: NEEDS_CSUM, no GSO');
});

t.test('GRO: lengths and offsets that lie are dropped and counted', async (t) => {
  const segs = flow(2, 1000);
  const r = gro(segs, true, (off, len) => {
    off[1] = 1 << 30;
    len[0] = 5;
  });
  t.equal(r.res.length, 0);
  t.equal(r.counters[n.Counter.drop_malformed], 2);
});

t.test('decap of a UDP_GRO buffer: every datagram checked, a short tail handled', async (t) => {
  const slot = n.SLOT_SIZE;
  const inner = flow(3, 300);
  const g = 8 + 14 + inner[0]!.length; // VXLAN
  const open = (segs: number, slots = 2) => {
    const spec = {
      tunFd: -1,
      sockFd: -1,
      encap: n.ENCAP_VXLAN,
      vni: 1,
      localMac: Buffer.alloc(6),
      mtu: 1450,
      vnet: true,
      gro: true,
      udpSegment: true,
      counters: new Float64Array(n.COUNTER_COUNT),
      inSlab: Buffer.alloc(slots * slot),
      inLen: Int32Array.from([3 * g - 5, 10].slice(0, slots)), // last datagram cut short; second buffer garbage
      inGso: Int32Array.from([g, 0].slice(0, slots)),
      inAddr: Uint32Array.from([1, 2].slice(0, slots)),
      segOff: new Int32Array(segs),
      segLen: new Int32Array(segs),
      segAddr: new Uint32Array(segs),
    };
    inner.forEach((p, k) => {
      const d = k * g;
      spec.inSlab[d] = 0x08;
      spec.inSlab.writeUInt32BE(1 << 8, d + 4);
      spec.inSlab.writeUInt16BE(0x0800, d + 20);
      p.copy(spec.inSlab, d + 22);
    });
    return { q: n.queueOpen(spec), spec };
  };
  const { q, spec } = open(8);
  const k = n.inDecap(q, 2);
  t.equal(k, 2, 'two whole datagrams');
  t.same([spec.segOff[0], spec.segOff[1]], [22, g + 22]);
  t.same([spec.segLen[0], spec.segLen[1]], [inner[0]!.length, inner[1]!.length]);
  t.same([spec.segAddr[0], spec.segAddr[1]], [1, 1]);
  t.equal(spec.counters[n.Counter.drop_malformed], 2, 'cut inner packet and garbage are counted');
  t.equal(spec.counters[n.Counter.udp_gro_datagrams], 3);
  const small = open(1, 1);
  t.equal(n.inDecap(small.q, 1), 1, 'never more than the segment arrays hold');
  t.equal(small.spec.counters[n.Counter.drop_no_slot], 1);
  n.queueClose(q);
  n.queueClose(small.q);
});

t.test('GSO with partial checksums: the pseudo-header sum, and the same segments otherwise', async (t) => {
  const data = payload(4000);
  const p = tcp({ payload: data, ts: 99 });
  const full = split(withVnet(p, { hdrLen: 52, gsoSize: 1398 }), 1450, 0, true);
  const part = split(withVnet(p, { hdrLen: 52, gsoSize: 1398 }), 1450, 0, true, true);
  t.equal(part.count, full.count);
  part.segs.forEach((s, k) => {
    const f = full.segs[k]!;
    t.ok(ipValid(s, 0), `segment ${k}: IP checksum`);
    t.equal(
      s.readUInt16BE(36),
      pseudoSum(s, 0, s.length),
      `segment ${k}: TCP checksum field holds the pseudo-header sum`,
    );
    const a = Buffer.from(s);
    const b = Buffer.from(f);
    a.writeUInt16BE(0, 36);
    b.writeUInt16BE(0, 36);
    t.same(a, b, `segment ${k}: otherwise byte for byte the full-checksum segment`);
  });
  // A lone packet's partial checksum at the standard place travels on; at another place it is completed.
  const small = tcp({ payload: payload(100) });
  const kept = split(withVnet(small, { type: 0 }), 1450, 0, false, true);
  t.equal(kept.counters[n.Counter.csum_completed], 0, 'lone TCP partial checksum kept for a partial peer');
  const done = split(withVnet(small, { type: 0 }), 1450, 0, false, false);
  t.equal(done.counters[n.Counter.csum_completed], 1, 'completed for a full-checksum peer');
  t.ok(l4Valid(done.segs[0]!, 0));
});

t.test(
  'GRO: a lone TCP packet longer than the TUN MTU (a kernel peer burst) goes to TUN as a GSO super-packet',
  async (t) => {
    const big = tcp({ payload: payload(20000), ts: 5 });
    const partial = Buffer.from(big);
    const ph = pseudoSum(partial, 0, partial.length);
    partial.writeUInt16BE(ph, 36);
    const corrupt = Buffer.from(big);
    corrupt[3000] = (corrupt[3000]! + 1) & 255;
    for (const [name, p] of [
      ['full checksum', big],
      ['partial checksum', partial],
    ] as const) {
      const r = gro([Buffer.from(p)], true, undefined, 1450);
      t.equal(r.res.length, 1, `${name}: written once`);
      const { vh, pkt } = r.res[0]!;
      t.equal(vh[0], 1, `${name}: NEEDS_CSUM`);
      t.equal(vh[1], 1, `${name}: GSO_TCPV4`);
      t.equal(vh.readUInt16LE(2), 52, `${name}: hdr_len`);
      t.equal(vh.readUInt16LE(4), 1450 - 52, `${name}: gso_size fits the MTU`);
      t.same([vh.readUInt16LE(6), vh.readUInt16LE(8)], [20, 16]);
      t.equal(pkt.readUInt16BE(36), ph, `${name}: the checksum field holds the pseudo-header sum`);
      t.same(pkt.subarray(40), big.subarray(40), `${name}: payload untouched`);
    }
    const bad = gro([corrupt], true, undefined, 1450);
    t.equal(bad.res.length, 0, 'a wrong full checksum is dropped, not passed on as partial');
    t.equal(bad.counters[n.Counter.drop_bad_csum], 1);
    const fits = gro([tcp({ payload: payload(1000) })], true, undefined, 1450);
    t.equal(fits.res[0]!.vh[1], 0, 'a packet that fits the MTU stays a plain packet');
  },
);
