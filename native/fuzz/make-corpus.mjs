// Writes the seed corpus for the fuzz targets (native/fuzz/corpus/<target>/): a few valid and invalid packets
// each. Run once with `node native/fuzz/make-corpus.mjs`; the output is committed, this file says how it was made.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), 'corpus');

function csum(buf, init = 0) {
  let s = init;
  for (let i = 0; i + 1 < buf.length; i += 2) s += buf.readUInt16BE(i);
  if (buf.length & 1) s += buf[buf.length - 1] << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

const SRC = [10, 5, 3, 2];
const DST = [10, 5, 7, 2];

/** The IPv4 header (ihl words, options zero) at the front of b, total length b.length, header checksum right. */
function writeIpHeader(b, { ihl = 5, id = 0, frag = 0, ttl = 64, proto, src = SRC, dst = DST }) {
  b[0] = 0x40 | ihl;
  b.writeUInt16BE(b.length, 2);
  b.writeUInt16BE(id, 4);
  b.writeUInt16BE(frag, 6);
  b[8] = ttl;
  b[9] = proto;
  Buffer.from(src).copy(b, 12);
  Buffer.from(dst).copy(b, 16);
  b.writeUInt16BE(~csum(b.subarray(0, ihl * 4)) & 0xffff, 10);
}

// An IPv4 packet with proto 6 or 17; l4csum: 'full' | 'partial' (pseudo-header sum only, as CHECKSUM_PARTIAL) | 'none'.
function ipv4({ proto = 17, payload = 16, l4csum = 'full', ttl = 64, frag = 0, ihl = 5, src, dst } = {}) {
  const hl = ihl * 4;
  const l4len = (proto === 6 ? 20 : proto === 17 ? 8 : 8) + payload;
  const b = Buffer.alloc(hl + l4len);
  writeIpHeader(b, { ihl, frag, ttl, proto, src, dst });
  const l4 = b.subarray(hl);
  for (let i = 0; i < payload; i++) l4[l4.length - payload + i] = i * 7;
  if (proto === 17) {
    l4.writeUInt16BE(4000, 0);
    l4.writeUInt16BE(5000, 2);
    l4.writeUInt16BE(l4len, 4);
  }
  if (proto === 6) {
    l4.writeUInt16BE(4000, 0);
    l4.writeUInt16BE(5000, 2);
    l4[12] = 0x50;
    l4[13] = 0x18;
  }
  if (proto === 1) {
    l4[0] = 8;
  }
  const field = proto === 6 ? 16 : 6;
  const pseudo = csum(
    Buffer.concat([b.subarray(12, 20), Buffer.from([0, proto]), Buffer.from([l4len >> 8, l4len & 255])]),
  );
  if (proto === 6 || proto === 17) {
    if (l4csum === 'partial') l4.writeUInt16BE(pseudo, field);
    else if (l4csum === 'full') l4.writeUInt16BE(~csum(l4, pseudo) & 0xffff || 0xffff, field);
  } else if (proto === 1) {
    l4.writeUInt16BE(~csum(l4) & 0xffff, 2);
  }
  return b;
}

const vxlan = (inner, { flags = 0x08, vni = 1, ethertype = 0x0800 } = {}) => {
  const h = Buffer.alloc(22);
  h[0] = flags;
  h.writeUInt32BE(vni << 8, 4);
  Buffer.from([0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2]).copy(h, 8);
  h.writeUInt16BE(ethertype, 20);
  return Buffer.concat([h, inner]);
};
const geneve = (inner, { ver = 0, optWords = 0, flags = 0, proto = 0x0800, vni = 1 } = {}) => {
  const h = Buffer.alloc(8 + optWords * 4);
  h[0] = (ver << 6) | optWords;
  h[1] = flags;
  h.writeUInt16BE(proto, 2);
  h.writeUInt32BE(vni << 8, 4);
  return Buffer.concat([h, inner]);
};

const inners = {
  'udp-full': ipv4(),
  'udp-partial': ipv4({ l4csum: 'partial' }),
  'tcp-partial': ipv4({ proto: 6, l4csum: 'partial', payload: 100 }),
  'tcp-full': ipv4({ proto: 6, payload: 40 }),
  'options-ihl7': ipv4({ ihl: 7 }),
  fragment: ipv4({ frag: 0x2000, l4csum: 'partial' }),
  padded: Buffer.concat([ipv4(), Buffer.alloc(6)]),
};
// IPv6 inner packets (RFC 8200): UDP or TCP after the fixed header, with a full or a partial (pseudo-header) sum.
function ipv6({ proto = 17, payload = 16, l4csum = 'full', hops = 64, next } = {}) {
  const l4len = (proto === 6 ? 20 : 8) + payload;
  const b = Buffer.alloc(40 + l4len);
  b[0] = 0x60;
  b.writeUInt16BE(l4len, 4);
  b[6] = next ?? proto;
  b[7] = hops;
  Buffer.from([0xfd, 0, 0, 5, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 2]).copy(b, 8);
  Buffer.from([0xfd, 0, 0, 5, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 2]).copy(b, 24);
  const l4 = b.subarray(40);
  for (let i = 0; i < payload; i++) l4[l4.length - payload + i] = i * 5;
  l4.writeUInt16BE(4000, 0);
  l4.writeUInt16BE(5000, 2);
  if (proto === 17) l4.writeUInt16BE(l4len, 4);
  if (proto === 6) {
    l4[12] = 0x50;
    l4[13] = 0x18;
  }
  const field = proto === 6 ? 16 : 6;
  const len = Buffer.alloc(8);
  len.writeUInt32BE(l4len, 0);
  len[7] = proto;
  const pseudo = csum(Buffer.concat([b.subarray(8, 40), len]));
  if (l4csum === 'partial') l4.writeUInt16BE(pseudo, field);
  if (l4csum === 'full') l4.writeUInt16BE(~csum(l4, pseudo) & 0xffff || 0xffff, field);
  return b;
}
const inners6 = {
  'v6-udp-full': ipv6(),
  'v6-udp-partial': ipv6({ l4csum: 'partial' }),
  'v6-tcp-partial': ipv6({ proto: 6, l4csum: 'partial', payload: 100 }),
  'v6-padded': Buffer.concat([ipv6(), Buffer.alloc(6)]),
  'v6-jumbo-zero-length': (() => {
    const b = ipv6();
    b.writeUInt16BE(0, 4);
    return b;
  })(),
};
const truncated = Buffer.from([0x45, 0, 0, 60, 0, 0]);
const lying = (() => {
  const b = ipv4();
  b.writeUInt16BE(1400, 2);
  return b;
})();
const garbage = Buffer.from('weft fuzz seed: not a packet at all');

// ---- offload tier (fuzz_gro.c, fuzz_gso.c) ----

// The TCP half of a segment, shared by both IP versions: `opts` option bytes (timestamps: 12), payload bytes
// derived from seq so concatenations are checkable; l4csum as in ipv4() ('bad': a wrong sum).
function tcpFields({ seq = 1000, payload = 100, flags = 0x10, opts = 12, l4csum = 'partial', sport = 4000 }) {
  return { seq, payload, flags, opts, l4csum, sport };
}
// Writes the TCP header, options and payload into l4 (its whole length) and the checksum over `pseudo`, the
// pseudo-header sum of the segment's IP version.
function writeTcp(l4, { seq, flags, opts, l4csum, sport }, pseudo) {
  const thl = 20 + opts;
  l4.writeUInt16BE(sport, 0);
  l4.writeUInt16BE(5000, 2);
  l4.writeUInt32BE(seq >>> 0, 4);
  l4.writeUInt32BE(777, 8);
  l4[12] = (thl / 4) << 4;
  l4[13] = flags;
  l4.writeUInt16BE(502, 14);
  if (opts >= 12) {
    l4.set([1, 1, 8, 10], 20);
    l4.writeUInt32BE(12345, 24);
    l4.writeUInt32BE(678, 28);
  }
  for (let i = thl; i < l4.length; i++) l4[i] = (seq + i - thl) & 0xff;
  if (l4csum === 'partial') l4.writeUInt16BE(pseudo, 16);
  else if (l4csum === 'full') l4.writeUInt16BE(~csum(l4, pseudo) & 0xffff, 16);
  else if (l4csum === 'bad') l4.writeUInt16BE(0xdead, 16);
}
// A TCP segment of one flow: IPv4 (no options) + TCP (tcpFields).
function tcpSeg({ id = 1, ttl = 64, src, dst, ...o } = {}) {
  const tcp = tcpFields(o);
  const l4len = 20 + tcp.opts + tcp.payload;
  const b = Buffer.alloc(20 + l4len);
  writeIpHeader(b, { id, frag: 0x4000, ttl, proto: 6, src, dst });
  writeTcp(
    b.subarray(20),
    tcp,
    csum(Buffer.concat([b.subarray(12, 20), Buffer.from([0, 6, l4len >> 8, l4len & 255])])),
  );
  return b;
}
// n back-to-back segments of mss bytes (the last `lastPayload`), the last with PSH.
function train(n, { mss = 100, lastPayload = mss, seq = 1000, l4csum = 'partial', ...o } = {}) {
  return Array.from({ length: n }, (_, k) =>
    tcpSeg({
      ...o,
      l4csum,
      seq: seq + k * mss,
      id: 1 + k,
      payload: k === n - 1 ? lastPayload : mss,
      flags: k === n - 1 ? 0x18 : 0x10,
    }),
  );
}
const ENCAP = { udp: [0, (x) => x], vxlan: [1, (x) => vxlan(x)], geneve: [2, (x) => geneve(x)] };
// fuzz_gro input: encap, flags (bit 0 coalesce, bit 1 two buffers, bits 4..7 seg_max), gso0, gso1, split, buffers.
// Every datagram of a UDP_GRO buffer but the last is gso bytes long: pad shorter ones so the split holds.
function groInput(encap, bufs, { coalesce = true, segMax = 0 } = {}) {
  const [id, wrap] = ENCAP[encap];
  const built = bufs.map((pkts) => {
    const dg = pkts.map(wrap);
    const g = dg.length > 1 ? Math.max(...dg.slice(0, -1).map((d) => d.length)) : 0;
    return {
      g,
      bytes: Buffer.concat(dg.map((d, i) => (i < dg.length - 1 ? Buffer.concat([d, Buffer.alloc(g - d.length)]) : d))),
    };
  });
  const h = Buffer.alloc(8);
  h[0] = id;
  h[1] = (coalesce ? 1 : 0) | (built.length > 1 ? 2 : 0) | (segMax << 4);
  h.writeUInt16BE(built[0]?.g ?? 0, 2);
  h.writeUInt16BE(built[1]?.g ?? 0, 4);
  h.writeUInt16BE(built[0]?.bytes.length ?? 0, 6);
  return Buffer.concat([h, ...built.map((b) => b.bytes)]);
}
// fuzz_gso input: virtio header (LE fields), mtu, room, mode (bit 0 ttl_dec, bit 1 cap from the next field, bit 2 fix
// the IP length), cap, then the packet.
function gsoInput(
  pkt,
  {
    flags = 1,
    type = 1,
    hdrLen = 0,
    gsoSize = 0,
    csStart = 20,
    csOff = 16,
    mtu = 1450,
    room = 22,
    mode = 1,
    cap = 0,
  } = {},
) {
  const h = Buffer.alloc(16);
  h[0] = flags;
  h[1] = type;
  h.writeUInt16LE(hdrLen, 2);
  h.writeUInt16LE(gsoSize, 4);
  h.writeUInt16LE(csStart, 6);
  h.writeUInt16LE(csOff, 8);
  h.writeUInt16BE(mtu, 10);
  h[12] = room;
  h[13] = mode;
  h.writeUInt16BE(cap, 14);
  return Buffer.concat([h, pkt]);
}
// A TCP or UDP super-packet as TUN hands it over with TSO/USO: one header, a long payload, partial checksum.
const superTcp = (payload, opts = 12) => tcpSeg({ payload, opts, flags: 0x18 });
const superUdp = (payload) => ipv4({ payload, l4csum: 'partial' });
// IPv6 (TSO6 / GRO over IPv6): a TCP segment with a 40-byte IPv6 header, flow label and hop limit; `next` replaces
// the next header (an extension header number makes it one GSO must refuse and GRO must not merge).
const SRC6 = Buffer.from('fd000005000300000000000000000002', 'hex');
const DST6 = Buffer.from('fd000005000700000000000000000002', 'hex');
function tcp6Seg({ hop = 64, flow = 0x12345, next, ...o } = {}) {
  const tcp = tcpFields(o);
  const l4len = 20 + tcp.opts + tcp.payload;
  const b = Buffer.alloc(40 + l4len);
  b.writeUInt32BE(((6 << 28) | flow) >>> 0, 0);
  b.writeUInt16BE(l4len, 4);
  b[6] = 6;
  b[7] = hop;
  SRC6.copy(b, 8);
  DST6.copy(b, 24);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(l4len);
  writeTcp(b.subarray(40), tcp, csum(Buffer.concat([b.subarray(8, 40), len, Buffer.from([0, 0, 0, 6])])));
  if (next !== undefined) b[6] = next;
  return b;
}
function train6(n, { mss = 100, lastPayload = mss, seq = 1000, ...o } = {}) {
  return Array.from({ length: n }, (_, k) =>
    tcp6Seg({ ...o, seq: seq + k * mss, payload: k === n - 1 ? lastPayload : mss, flags: k === n - 1 ? 0x18 : 0x10 }),
  );
}
// An IPv6 UDP super-packet (USO), partial checksum.
function udp6Super(payload) {
  const b = Buffer.alloc(48 + payload);
  b.writeUInt32BE((6 << 28) >>> 0, 0);
  b.writeUInt16BE(8 + payload, 4);
  b[6] = 17;
  b[7] = 64;
  SRC6.copy(b, 8);
  DST6.copy(b, 24);
  b.writeUInt16BE(5000, 40);
  b.writeUInt16BE(5001, 42);
  b.writeUInt16BE(8 + payload, 44);
  for (let i = 0; i < payload; i++) b[48 + i] = i & 0xff;
  const len = Buffer.alloc(4);
  len.writeUInt32BE(8 + payload);
  b.writeUInt16BE(csum(Buffer.concat([b.subarray(8, 40), len, Buffer.from([0, 0, 0, 17])])), 46);
  return b;
}
// fuzz_gro raw mode (flags bit 2): the buffers are inner packets, no encap; decap's IPv6 is not needed to reach GRO.
function groRawInput(bufs, opts = {}) {
  const b = groInput('udp', bufs, opts);
  b[1] |= 4;
  return b;
}
const tso6 = (hdrLen, gsoSize, o = {}) => ({ type: 4, hdrLen, gsoSize, csStart: 40, ...o });
const cross = (() => {
  const a = train(3, { seq: 5000 });
  const b = train(3, { seq: 5000 + 300 });
  return [a, b];
})();
const badMid = (() => {
  const t = train(4);
  t[1] = tcpSeg({ seq: 1100, id: 2, l4csum: 'bad' });
  return t;
})();
const gap = (() => {
  const t = train(4);
  t[2] = tcpSeg({ seq: 1250, id: 3 });
  return t;
})();
const twoFlows = [
  ...train(2, { sport: 4000 }),
  ...train(2, { sport: 4001 }),
  ipv4({ l4csum: 'partial', payload: 100 }),
];

const targets = {
  decap_udp: {
    ...inners,
    ...inners6,
    truncated,
    lying,
    garbage,
    ipv6: Buffer.concat([Buffer.from([0x60]), Buffer.alloc(47)]),
  },
  decap_vxlan: {
    ...Object.fromEntries(Object.entries(inners).map(([k, v]) => [k, vxlan(v)])),
    ...Object.fromEntries(Object.entries(inners6).map(([k, v]) => [k, vxlan(v, { ethertype: 0x86dd })])),
    'v4-in-86dd': vxlan(inners['udp-full'], { ethertype: 0x86dd }),
    'v6-in-0800': vxlan(inners6['v6-udp-full']),
    'no-i-flag': vxlan(inners['udp-full'], { flags: 0 }),
    'wrong-vni': vxlan(inners['udp-full'], { vni: 7 }),
    'ethertype-arp': vxlan(inners['udp-full'], { ethertype: 0x0806 }),
    'inner-lying': vxlan(lying),
    'short-header': Buffer.from([0x08, 0, 0, 0, 0, 0, 1]),
  },
  decap_geneve: {
    ...Object.fromEntries(Object.entries(inners).map(([k, v]) => [k, geneve(v)])),
    'with-options': geneve(inners['tcp-partial'], { optWords: 2 }),
    'o-flag': geneve(inners['udp-full'], { flags: 0x80 }),
    'c-flag-options': geneve(inners['udp-full'], { flags: 0x40, optWords: 1 }),
    'version-1': geneve(inners['udp-full'], { ver: 1 }),
    'proto-ipv6': geneve(inners['udp-full'], { proto: 0x86dd }),
    ...Object.fromEntries(Object.entries(inners6).map(([k, v]) => [k, geneve(v, { proto: 0x86dd })])),
    'v6-options': geneve(inners6['v6-tcp-partial'], { optWords: 2, proto: 0x86dd }),
    'options-past-end': geneve(Buffer.alloc(4), { optWords: 63 }).subarray(0, 20),
  },
  gro: {
    'vxlan-train': groInput('vxlan', [train(4)]),
    'udp-train-full-csum': groInput('udp', [train(3, { l4csum: 'full', lastPayload: 40 })]),
    'geneve-two-buffers': groInput('geneve', cross),
    'vxlan-two-flows-and-udp': groInput('vxlan', [twoFlows]),
    'vxlan-64-segments': groInput('vxlan', [train(64, { mss: 60, opts: 0 })]),
    'no-coalesce': groInput('vxlan', [train(4)], { coalesce: false }),
    'bad-csum-mid': groInput('vxlan', [badMid]),
    'seq-gap': groInput('udp', [gap]),
    'seg-max-2': groInput('vxlan', [train(4)], { segMax: 2 }),
    'wrong-vni-single': Buffer.concat([Buffer.from([1, 1, 0, 0, 0, 0, 0, 0]), vxlan(tcpSeg(), { vni: 9 })]),
    'truncated-last': (() => {
      const b = groInput('vxlan', [train(3)]);
      return b.subarray(0, b.length - 30);
    })(),
    'gso-1': (() => {
      const b = groInput('udp', [train(2)]);
      b.writeUInt16BE(1, 2);
      return b;
    })(),
    empty: Buffer.from([1, 1, 0, 0, 0, 0, 0, 0]),
    // At the limits: one full 64 KiB receive; a flow over two receives that a 64 KiB super-packet must cut.
    'vxlan-64k-receive': groInput('vxlan', [train(64, { mss: 940 })]),
    // Raw mode: IPv6 segments straight to GRO.
    'raw6-train': groRawInput([train6(4)]),
    'raw6-train-full-csum': groRawInput([train6(3, { l4csum: 'full', lastPayload: 40 })]),
    'raw6-64-segments': groRawInput([train6(64, { mss: 60, opts: 0 })]),
    'raw6-flow-label-change': groRawInput([[...train6(2), ...train6(2, { seq: 1200, flow: 7 })]]),
    'raw6-hop-limit-change': groRawInput([[...train6(2), ...train6(2, { seq: 1200, hop: 63 })]]),
    'raw6-ext-header': groRawInput([[...train6(2), tcp6Seg({ seq: 1200, next: 60 })]]),
    'raw6-bad-csum': groRawInput([[...train6(2), tcp6Seg({ seq: 1200, l4csum: 'bad' }), ...train6(1, { seq: 1300 })]]),
    'raw-mixed-v4-v6': groRawInput([[...train6(2), ...train(2), ...train6(2, { seq: 1200 })]]),
    'raw6-two-buffers': groRawInput([train6(3), train6(3, { seq: 1300 })]),
    'raw6-64k': groRawInput([train6(64, { mss: 920 })]),
    'geneve-two-64k-receives': groInput(
      'geneve',
      [train(40, { mss: 1400, lastPayload: 1400 }), train(40, { mss: 1400, seq: 1000 + 40 * 1400 })].map((t, b) =>
        b === 0
          ? t.map((x) => {
              x[33] = 0x10;
              return x;
            })
          : t,
      ),
    ),
  },
  gso: {
    'tcp-super-ts': gsoInput(superTcp(4000), { hdrLen: 52, gsoSize: 1398 }),
    'tcp-cut-finer': gsoInput(superTcp(3000, 0), { hdrLen: 40, gsoSize: 8000, mtu: 1280, room: 8 }),
    'tcp-exact-one': gsoInput(superTcp(1398), { hdrLen: 52, gsoSize: 1398 }),
    'tcp-ecn-no-ttl-dec': gsoInput(superTcp(2500), { type: 0x81, hdrLen: 52, gsoSize: 1000, mode: 0 }),
    'udp-l4': gsoInput(superUdp(3000), { type: 5, hdrLen: 28, gsoSize: 1000, csOff: 6 }),
    'udp-l4-too-big-for-mtu': gsoInput(superUdp(3000), { type: 5, hdrLen: 28, gsoSize: 1500, csOff: 6 }),
    'none-udp-partial': gsoInput(superUdp(200), { type: 0, csOff: 6 }),
    'none-plain': gsoInput(ipv4({ payload: 64 }), { flags: 0, type: 0, csStart: 0, csOff: 0 }),
    'none-csum-past-end': gsoInput(superUdp(20), { type: 0, csStart: 44, csOff: 6 }),
    // GSO_NONE with the ECN bit: still a lone packet, fixed up on a copy (the input stays read only)
    'none-ecn-bit': gsoInput(superUdp(200), { type: 0x80, csOff: 6 }),
    // mode bit 3: partial checksums, for a peer that announced WeftPartialCsum
    'tcp-super-partial': gsoInput(superTcp(4000), { hdrLen: 52, gsoSize: 1398, mode: 9 }),
    'none-tcp-partial-kept': gsoInput(superTcp(300), { type: 0, mode: 8 }),
    'small-cap': gsoInput(superTcp(4000), { hdrLen: 52, gsoSize: 1398, mode: 3, cap: 3000 }),
    'tcpv6-type': gsoInput(superTcp(2000), { type: 4, hdrLen: 52, gsoSize: 1000 }),
    'no-needs-csum': gsoInput(superTcp(2000), { flags: 0, hdrLen: 52, gsoSize: 1000 }),
    'ttl-1': gsoInput(tcpSeg({ payload: 2000, ttl: 1 }), { hdrLen: 52, gsoSize: 1000 }),
    'length-lies': gsoInput(
      (() => {
        const b = superTcp(2000);
        b.writeUInt16BE(9000, 2);
        return b;
      })(),
      { hdrLen: 52, gsoSize: 1000, mode: 1 },
    ),
    'mss-1-too-many': gsoInput(superTcp(3000), { hdrLen: 52, gsoSize: 1 }),
    'tcp-super-64k': gsoInput(superTcp(65535 - 52), { hdrLen: 52, gsoSize: 1398 }),
    'tcp6-super-ts': gsoInput(tcp6Seg({ payload: 4000, flags: 0x99 }), tso6(72, 1378)),
    'tcp6-super-partial': gsoInput(tcp6Seg({ payload: 4000 }), tso6(72, 1378, { mode: 9 })),
    'tcp6-cut-finer': gsoInput(tcp6Seg({ payload: 3000, opts: 0 }), tso6(60, 8000, { mtu: 1280, room: 8 })),
    'tcp6-ecn-hop-1': gsoInput(tcp6Seg({ payload: 2500, hop: 1 }), tso6(72, 1000, { type: 0x84 })),
    'tcp6-64k': gsoInput(tcp6Seg({ payload: 65535 - 72 }), tso6(72, 1378)),
    'tcp6-dest-options': gsoInput(tcp6Seg({ payload: 3000, next: 60 }), tso6(72, 1000)),
    'tcp6-as-tcpv4': gsoInput(tcp6Seg({ payload: 3000 }), tso6(72, 1000, { type: 1 })),
    'udp6-l4': gsoInput(udp6Super(3000), { type: 5, hdrLen: 48, gsoSize: 1000, csStart: 40, csOff: 6 }),
    'none-tcp6-partial': gsoInput(tcp6Seg({ payload: 300 }), { type: 0, csStart: 40 }),
    'none-tcp6-partial-kept': gsoInput(tcp6Seg({ payload: 300 }), { type: 0, csStart: 40, mode: 8 }),
  },
  icmp: {
    'unreach-udp': Buffer.concat([Buffer.from([3, 0, 96]), inners['udp-full']]),
    'ttl-tcp-ihl7': Buffer.concat([Buffer.from([11, 0, 96]), ipv4({ proto: 6, ihl: 7 })]),
    'about-echo': Buffer.concat([Buffer.from([3, 1, 96]), ipv4({ proto: 1 })]),
    'about-icmp-error': Buffer.concat([
      Buffer.from([3, 1, 96]),
      (() => {
        const b = ipv4({ proto: 1 });
        b[20] = 3;
        return b;
      })(),
    ]),
    'small-cap': Buffer.concat([Buffer.from([3, 0, 30]), inners['udp-full']]),
    fragment: Buffer.concat([Buffer.from([3, 0, 96]), ipv4({ frag: 0x0010 })]),
    'broadcast-dst': Buffer.concat([Buffer.from([3, 0, 96]), ipv4({ dst: [255, 255, 255, 255] })]),
    truncated: Buffer.concat([Buffer.from([3, 0, 96]), truncated]),
  },
  // type, code, scratch capacity (u16), param (u32), the IPv6 packet
  icmp6: {
    'unreach-udp': Buffer.concat([Buffer.from([1, 0, 5, 0, 0, 0, 0, 0]), inners6['v6-udp-full']]),
    'hop-limit-tcp': Buffer.concat([Buffer.from([3, 0, 5, 0, 0, 0, 0, 0]), ipv6({ proto: 6, hops: 1 })]),
    'too-big-long': Buffer.concat([Buffer.from([2, 0, 5, 0, 0, 0, 5, 0x96]), ipv6({ payload: 1400 })]),
    'about-error': Buffer.concat([Buffer.from([1, 0, 5, 0, 0, 0, 0, 0]), ipv6({ proto: 58, payload: 0 })]),
    'behind-hop-by-hop': Buffer.concat([Buffer.from([3, 0, 5, 0, 0, 0, 0, 0]), ipv6({ next: 0, payload: 8 })]),
    'small-cap': Buffer.concat([Buffer.from([1, 0, 0, 60, 0, 0, 0, 0]), inners6['v6-udp-full']]),
    'multicast-dst': (() => {
      const b = ipv6();
      b[24] = 0xff;
      return Buffer.concat([Buffer.from([1, 0, 5, 0, 0, 0, 0, 0]), b]);
    })(),
    truncated: Buffer.concat([Buffer.from([1, 0, 5, 0, 0, 0, 0, 0]), Buffer.from([0x60, 0, 0, 0])]),
  },
};

// ---- inbound over-MTU split (fuzz_tun_split.c): TUN MTU, fix-ups (bit 0 IP length, bit 1 TCP checksum), packet ----
const splitInput = (pkt, { mtu = 1450, fix = 0 } = {}) => Buffer.concat([u16(mtu), Buffer.from([fix]), pkt]);
const u16 = (v) => Buffer.from([v >> 8, v & 255]);
targets.tun_split = {
  'v6-tcp-4000-full': splitInput(ipv6({ proto: 6, payload: 4000 }), { fix: 3 }),
  'v6-tcp-odd-mss': splitInput(ipv6({ proto: 6, payload: 3001 }), { mtu: 1279, fix: 3 }),
  'v6-udp-too-big': splitInput(ipv6({ payload: 3000 })),
  'tcp-4000-full': splitInput(tcpSeg({ payload: 4000, l4csum: 'full', flags: 0x19 })),
  'tcp-odd-mss': splitInput(tcpSeg({ payload: 3001, l4csum: 'full', opts: 0 }), { mtu: 1279 }),
  'tcp-64k': splitInput(tcpSeg({ payload: 65535 - 52, l4csum: 'full', flags: 0x98 })),
  'tcp-partial-csum': splitInput(tcpSeg({ payload: 3000, l4csum: 'partial' })),
  'tcp-bad-csum': splitInput(tcpSeg({ payload: 3000, l4csum: 'bad' })),
  'tcp-fixed-csum': splitInput(tcpSeg({ payload: 3000, l4csum: 'bad' }), { fix: 2 }),
  'tcp-syn': splitInput(tcpSeg({ payload: 3000, l4csum: 'full', flags: 0x02 })),
  'tcp-too-many-segments': splitInput(tcpSeg({ payload: 20000, l4csum: 'full', opts: 0 }), { mtu: 68 }),
  'tcp-tiny-mss': splitInput(tcpSeg({ payload: 100, l4csum: 'full' }), { mtu: 70 }),
  'within-mtu': splitInput(tcpSeg({ payload: 1000, l4csum: 'full' })),
  'udp-over-mtu': splitInput(ipv4({ payload: 3000 })),
  fragment: splitInput(ipv4({ proto: 6, payload: 3000, frag: 0x2000 })),
  'length-lies': splitInput(lying, { mtu: 68 }),
  truncated: splitInput(truncated, { mtu: 68 }),
};

// ---- WireGuard (fuzz_wg_open.c, fuzz_wg_seal.c): scripts of operations, see the harnesses' headers ----

const u64be = (c) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(c);
  return b;
};
const u16be = (v) => Buffer.from([v >> 8, v & 255]);
// mode 0: counter & 0x3fff, 1: REJECT_AFTER_MESSAGES - (counter & 0xff), 2: counter & 0xffffff; plain 0: keepalive
const sealOp = (c, { mode = 0, plain = 10, flip = 0, where = 0 } = {}) =>
  Buffer.concat([Buffer.from([1 | (mode << 2)]), u64be(c), Buffer.from([plain, flip]), u16be(where)]);
const rawOp = (bytes, { ours = false } = {}) =>
  Buffer.concat([
    Buffer.from([(bytes.length > 255 ? 4 : 0) | (ours ? 8 : 0), bytes.length & 255]),
    bytes.length > 255 ? Buffer.from([bytes.length >> 8]) : Buffer.alloc(0),
    bytes,
  ]);
const waitOp = (seconds) => Buffer.from([2, seconds]);
const reinstallOp = Buffer.from([3]);
const wgHandshake = (type, n) => {
  const b = Buffer.alloc(n, 0x5c);
  b.writeUInt32LE(type, 0);
  return b;
};
const sealGeometry = ({ slot = 2048, headroom = 64, mtu = 1420, lens = [100, 1500], peers = [0, 1], map = [2, 2] }) => {
  const parts = [u16be(slot - 33), u16be(headroom - 16), Buffer.from([lens.length - 1]), u16be(mtu), Buffer.from([3])];
  parts.push(Buffer.from([...map, 255, 0].slice(0, 4).map((x) => x & 255)));
  parts.push(Buffer.from(Array.from({ length: lens.length * slot }, (_, i) => (i * 7) & 255)));
  lens.forEach((l, i) => parts.push(u16be(l + 200), Buffer.from([peers[i] & 255])));
  return Buffer.concat(parts);
};
const trainGeometry = ({ bufLen = 6000, first = 64, seg = 1400, nseg = 4, last = 500, mtu = 1420 }) =>
  Buffer.concat([
    u16be(bufLen),
    u16be(first),
    u16be(seg),
    Buffer.from([nseg - 1]),
    u16be(last),
    u16be(mtu),
    Buffer.from(Array.from({ length: bufLen }, (_, i) => (i * 13) & 255)),
  ]);
targets.wg_open = {
  'in-order': Buffer.concat([0n, 1n, 2n, 3n].map((c) => sealOp(c))),
  replay: Buffer.concat([5n, 5n, 3n, 5n].map((c) => sealOp(c))),
  'window-edge': Buffer.concat([sealOp(8200n, { mode: 2 }), sealOp(72n), sealOp(71n), sealOp(8201n, { mode: 2 })]),
  'near-reject': Buffer.concat([1n, 0n, 2n, 1n, 3n].map((c) => sealOp(c, { mode: 1 }))),
  flipped: Buffer.concat([sealOp(0n, { flip: 1, where: 20 }), sealOp(0n), sealOp(1n, { flip: 0x80, where: 9 })]),
  keepalive: Buffer.concat([sealOp(0n, { plain: 0 }), sealOp(1n, { plain: 255 })]),
  'raw-ours': Buffer.concat([rawOp(Buffer.alloc(48, 1), { ours: true }), rawOp(Buffer.alloc(300, 2), { ours: true })]),
  'raw-handshakes': Buffer.concat([rawOp(wgHandshake(1, 148)), rawOp(wgHandshake(2, 92)), rawOp(wgHandshake(3, 63))]),
  expiry: Buffer.concat([sealOp(0n), waitOp(200), sealOp(1n), rawOp(Buffer.alloc(40, 3), { ours: true })]),
  reinstall: Buffer.concat([sealOp(10n), reinstallOp, sealOp(10n), sealOp(9n)]),
};
targets.wg_seal = {
  'two-packets-and-train': Buffer.concat([sealGeometry({}), trainGeometry({})]),
  'no-room': Buffer.concat([sealGeometry({ slot: 64, headroom: 16, lens: [40] }), trainGeometry({ bufLen: 100 })]),
  'mtu-cap': Buffer.concat([sealGeometry({ lens: [1419, 0], mtu: 1420 }), trainGeometry({ seg: 1419, last: 1419 })]),
  'no-session': Buffer.concat([sealGeometry({ map: [255, 1] }), trainGeometry({ first: 8 })]),
};

for (const [target, seeds] of Object.entries(targets)) {
  const dir = join(root, target);
  mkdirSync(dir, { recursive: true });
  for (const [name, bytes] of Object.entries(seeds)) writeFileSync(join(dir, name), bytes);
}
console.log(`seeds written under ${root}`);
