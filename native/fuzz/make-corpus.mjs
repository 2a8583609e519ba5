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

// An IPv4 packet with proto 6 or 17; l4csum: 'full' | 'partial' (pseudo-header sum only, as CHECKSUM_PARTIAL) | 'none'.
function ipv4({ proto = 17, payload = 16, l4csum = 'full', ttl = 64, frag = 0, ihl = 5, src = [10, 5, 3, 2], dst = [10, 5, 7, 2] } = {}) {
  const hl = ihl * 4;
  const l4len = (proto === 6 ? 20 : proto === 17 ? 8 : 8) + payload;
  const b = Buffer.alloc(hl + l4len);
  b[0] = 0x40 | ihl; b.writeUInt16BE(b.length, 2); b.writeUInt16BE(frag, 6); b[8] = ttl; b[9] = proto;
  Buffer.from(src).copy(b, 12); Buffer.from(dst).copy(b, 16);
  b.writeUInt16BE(~csum(b.subarray(0, hl)) & 0xffff, 10);
  const l4 = b.subarray(hl);
  for (let i = 0; i < payload; i++) l4[l4.length - payload + i] = i * 7;
  if (proto === 17) { l4.writeUInt16BE(4000, 0); l4.writeUInt16BE(5000, 2); l4.writeUInt16BE(l4len, 4); }
  if (proto === 6) { l4.writeUInt16BE(4000, 0); l4.writeUInt16BE(5000, 2); l4[12] = 0x50; l4[13] = 0x18; }
  if (proto === 1) { l4[0] = 8; }
  const field = proto === 6 ? 16 : 6;
  const pseudo = csum(Buffer.concat([b.subarray(12, 20), Buffer.from([0, proto]), Buffer.from([l4len >> 8, l4len & 255])]));
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
  h[0] = flags; h.writeUInt32BE(vni << 8, 4);
  Buffer.from([0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2]).copy(h, 8); h.writeUInt16BE(ethertype, 20);
  return Buffer.concat([h, inner]);
};
const geneve = (inner, { ver = 0, optWords = 0, flags = 0, proto = 0x0800, vni = 1 } = {}) => {
  const h = Buffer.alloc(8 + optWords * 4);
  h[0] = (ver << 6) | optWords; h[1] = flags; h.writeUInt16BE(proto, 2); h.writeUInt32BE(vni << 8, 4);
  return Buffer.concat([h, inner]);
};

const inners = {
  'udp-full': ipv4(),
  'udp-partial': ipv4({ l4csum: 'partial' }),
  'tcp-partial': ipv4({ proto: 6, l4csum: 'partial', payload: 100 }),
  'tcp-full': ipv4({ proto: 6, payload: 40 }),
  'options-ihl7': ipv4({ ihl: 7 }),
  'fragment': ipv4({ frag: 0x2000, l4csum: 'partial' }),
  'padded': Buffer.concat([ipv4(), Buffer.alloc(6)]),
};
const truncated = Buffer.from([0x45, 0, 0, 60, 0, 0]);
const lying = (() => { const b = ipv4(); b.writeUInt16BE(1400, 2); return b; })();
const garbage = Buffer.from('weft fuzz seed: not a packet at all');

const targets = {
  decap_udp: { ...inners, truncated, lying, garbage, ipv6: Buffer.concat([Buffer.from([0x60]), Buffer.alloc(47)]) },
  decap_vxlan: {
    ...Object.fromEntries(Object.entries(inners).map(([k, v]) => [k, vxlan(v)])),
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
    'options-past-end': geneve(Buffer.alloc(4), { optWords: 63 }).subarray(0, 20),
  },
  icmp: {
    'unreach-udp': Buffer.concat([Buffer.from([3, 0, 96]), inners['udp-full']]),
    'ttl-tcp-ihl7': Buffer.concat([Buffer.from([11, 0, 96]), ipv4({ proto: 6, ihl: 7 })]),
    'about-echo': Buffer.concat([Buffer.from([3, 1, 96]), ipv4({ proto: 1 })]),
    'about-icmp-error': Buffer.concat([Buffer.from([3, 1, 96]), (() => { const b = ipv4({ proto: 1 }); b[20] = 3; return b; })()]),
    'small-cap': Buffer.concat([Buffer.from([3, 0, 30]), inners['udp-full']]),
    'fragment': Buffer.concat([Buffer.from([3, 0, 96]), ipv4({ frag: 0x0010 })]),
    'broadcast-dst': Buffer.concat([Buffer.from([3, 0, 96]), ipv4({ dst: [255, 255, 255, 255] })]),
    'truncated': Buffer.concat([Buffer.from([3, 0, 96]), truncated]),
  },
};

for (const [target, seeds] of Object.entries(targets)) {
  const dir = join(root, target);
  mkdirSync(dir, { recursive: true });
  for (const [name, bytes] of Object.entries(seeds)) writeFileSync(join(dir, name), bytes);
}
console.log(`seeds written under ${root}`);
