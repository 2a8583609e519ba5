// Packets longer than the TUN MTU written by tunWrite / tunWriteOne (run as root). A kernel VXLAN peer sends a whole
// TCP burst as one inner packet; weft cuts it into MTU-sized TCP segments before the kernel sees it.
//
//   this process ──tunWrite(mtu)──> wsplN (TUN, 10.98.X.1/24, MTU 1400) ──> kernel: TCP to 10.98.X.1:9 (closed)
//        │                              │ tcpdump -w - (what the kernel received, byte for byte)
//        └──────── tunReadOne <──────── kernel's RST per segment (sent only for a segment whose checksum verified)
//
// Only the TUN's own subnet is used; the link and every fd are removed in teardown, also on failure.
import t, { type Test } from 'tap';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import * as n from './helpers/native.js';
import { csum, ipv4Packet, l4Sum } from './helpers/packets.js';
import { byteQueue } from './helpers/queue.js';
import { readPcap, tcpdumpListening } from './helpers/tcpdump.js';
import { sleep } from './helpers/wait.js';

const X = 20 + (process.pid % 200);
const NET = `10.98.${X}`;
const NAME = `wspl${process.pid % 1000}`;
const MTU = 1400;
const REMOTE = n.ipv4ToU32(`${NET}.2`);
const DPORT = 9; // nothing listens: the kernel answers every valid segment with a RST we can read back

const FIN = 0x01,
  SYN = 0x02,
  PSH = 0x08,
  ACK = 0x10,
  CWR = 0x80;

let fd = -1;
t.teardown(() => {
  if (fd >= 0) n.close(fd);
  if (existsSync(`/sys/class/net/${NAME}`)) execFileSync('ip', ['link', 'del', NAME], { stdio: 'ignore' });
});

// ---- packet builders and checks ----

interface TcpOpts {
  readonly len: number;
  readonly seq: number;
  readonly flags: number;
  readonly id?: number;
  readonly timestamps?: boolean;
  readonly sport?: number;
}

/** A `len`-byte buffer starting with an IPv4 header REMOTE -> the TUN's .1 (DF, TTL 64, valid checksum). */
function fromRemote(len: number, proto: number, id = 0): Buffer {
  return ipv4Packet({ len, proto, id, src: `${NET}.2`, dst: `${NET}.1` });
}

/** An IPv4/TCP packet of `len` bytes (DF, TTL 64) with valid checksums; payload byte i is (i * 7 + 3) & 255. */
function tcpPacket(o: TcpOpts): Buffer {
  const thl = o.timestamps ? 32 : 20;
  const p = fromRemote(o.len, 6, o.id ?? 0x1234);
  const tcp = 20;
  p.writeUInt16BE(o.sport ?? 40000, tcp);
  p.writeUInt16BE(DPORT, tcp + 2);
  p.writeUInt32BE(o.seq >>> 0, tcp + 4);
  p[tcp + 12] = (thl / 4) << 4;
  p[tcp + 13] = o.flags;
  p.writeUInt16BE(65000, tcp + 14);
  if (o.timestamps) {
    // NOP, NOP, TS (kind 8, len 10): TSval, TSecr, as Linux sends on every segment.
    p.set([1, 1, 8, 10], tcp + 20);
    p.writeUInt32BE(0x01020304, tcp + 24);
    p.writeUInt32BE(0x05060708, tcp + 28);
  }
  for (let i = tcp + thl; i < o.len; i++) p[i] = ((i - tcp - thl) * 7 + 3) & 255;
  p.writeUInt16BE(~l4Sum(p) & 0xffff, tcp + 16);
  return p;
}

function udpPacket(len: number): Buffer {
  const p = fromRemote(len, 17);
  p.writeUInt16BE(40001, 20);
  p.writeUInt16BE(DPORT, 22);
  p.writeUInt16BE(len - 20, 24);
  return p;
}

// ---- what the kernel received: tcpdump on the TUN, pcap parsed here ----

interface Capture {
  /** Resolves with the captured IPv4 packets once `count` arrived (or after the timeout, with what there is). */
  readonly done: Promise<Buffer[]>;
}

async function capture(count: number, timeoutMs = 8000): Promise<Capture> {
  const p = spawn('tcpdump', ['-i', NAME, '-n', '-U', '-w', '-', '-c', String(count), 'tcp and dst host', `${NET}.1`], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const timer = setTimeout(() => p.kill('SIGTERM'), timeoutMs);
  const { done } = await tcpdumpListening(p);
  return {
    done: done.then(({ stdout }) => {
      clearTimeout(timer);
      // Raw IP (TUN) normally; Linux cooked headers if this tcpdump prefers them.
      const { linkType, records } = readPcap(stdout);
      const skip = linkType === 113 ? 16 : linkType === 276 ? 20 : 0;
      return records.map((r) => r.subarray(skip));
    }),
  };
}

/** The kernel's RSTs to REMOTE read back from the TUN: ack number -> count. */
async function readRsts(want: number, ms = 3000): Promise<number[]> {
  const buf = Buffer.alloc(4096);
  const k = new Float64Array(n.COUNTER_COUNT);
  const acks: number[] = [];
  for (const end = Date.now() + ms; acks.length < want && Date.now() < end;) {
    const len = n.tunReadOne(fd, buf, 0, buf.length, k);
    if (len === 0) {
      await sleep(10);
      continue;
    }
    if (buf[0]! >> 4 !== 4 || buf[9] !== 6 || buf.readUInt32BE(16) !== REMOTE) continue;
    const tcp = (buf[0]! & 15) * 4;
    if (buf[tcp + 13]! & 0x04) acks.push(buf.readUInt32BE(tcp + 8));
  }
  return acks;
}

function drain(): void {
  const buf = Buffer.alloc(4096);
  const k = new Float64Array(n.COUNTER_COUNT);
  while (n.tunReadOne(fd, buf, 0, buf.length, k) > 0);
}

/** Puts pkt into a one-slot queue (batch tier, TUN MTU mtu) as a decapsulated segment and writes it with inWrite. */
function writeBatch(pkt: Buffer, mtu?: number) {
  const q = byteQueue({ slots: 1, encap: n.ENCAP_UDP, tunFd: fd, mtu: mtu ?? 0 });
  const at = n.HEADROOM + 6; // any offset works: the header copy makes the segments independent of alignment
  pkt.copy(q.inSlab, at);
  q.segOff[0] = at;
  q.segLen[0] = pkt.length;
  const written = n.inWrite(q.handle, 1);
  q.close();
  return { b: { len: q.segLen, counters: q.opts.counters, slab: q.inSlab, off: q.segOff }, written };
}

const c = (k: Float64Array, name: n.CounterName): number => k[n.Counter[name]]!;

/** Checks the segments `segs` the kernel received against the packet `orig` cut at `mtu`. */
function checkSegments(t: Test, orig: Buffer, segs: Buffer[], mtu: number): void {
  const ihl = (orig[0]! & 15) * 4;
  const thl = (orig[ihl + 12]! >> 4) * 4;
  const hdr = ihl + thl;
  const mss = mtu - hdr;
  const payload = orig.length - hdr;
  const nseg = Math.ceil(payload / mss);
  t.equal(segs.length, nseg, `${nseg} segments of at most ${mtu} bytes`);
  const flags = orig[ihl + 13]!;
  const joined: Buffer[] = [];
  segs.forEach((s, k) => {
    const chunk = k === nseg - 1 ? payload - k * mss : mss;
    const what = `segment ${k}`;
    t.equal(s.length, hdr + chunk, `${what}: captured length`);
    t.equal(s.readUInt16BE(2), hdr + chunk, `${what}: IP total length`);
    t.ok(s.length <= mtu, `${what}: fits the MTU`);
    t.equal(s.readUInt16BE(4), (orig.readUInt16BE(4) + k) & 0xffff, `${what}: IP id + k`);
    t.equal(s.readUInt16BE(6), orig.readUInt16BE(6), `${what}: DF kept`);
    t.equal(csum(s, 0, ihl), 0xffff, `${what}: IP header checksum`);
    t.same(s.subarray(12, 20), orig.subarray(12, 20), `${what}: addresses`);
    t.equal(s.readUInt32BE(ihl + 4), (orig.readUInt32BE(ihl + 4) + k * mss) >>> 0, `${what}: seq + k * mss`);
    let want = flags;
    if (k !== nseg - 1) want &= ~(FIN | PSH);
    if (k !== 0) want &= ~CWR;
    t.equal(s[ihl + 13], want, `${what}: flags 0x${want.toString(16)}`);
    t.same(s.subarray(ihl + 20, hdr), orig.subarray(ihl + 20, hdr), `${what}: options copied`);
    t.equal(l4Sum(s, 0, s.length), 0xffff, `${what}: TCP checksum`);
    joined.push(s.subarray(hdr));
  });
  t.ok(Buffer.concat(joined).equals(orig.subarray(hdr)), 'payload arrives whole and in order');
}

// ---- tests ----

t.test('TUN writes longer than the MTU', async (t) => {
  const tun = n.tunOpen(NAME, 0);
  fd = tun.fd;
  n.linkSet(NAME, MTU, true);
  writeFileSync(`/proc/sys/net/ipv6/conf/${NAME}/disable_ipv6`, '1');
  execFileSync('ip', ['addr', 'add', `${NET}.1/24`, 'dev', NAME]);
  drain();

  await t.test('9000-byte TCP packet with timestamps: tunWrite cuts it into MTU-sized segments', async (t) => {
    const pkt = tcpPacket({ len: 9000, seq: 0xfffff000, flags: FIN | PSH | CWR, timestamps: true });
    const mss = MTU - 52;
    const nseg = Math.ceil((9000 - 52) / mss);
    const cap = await capture(nseg);
    const { b, written } = writeBatch(pkt, MTU);
    const segs = await cap.done;
    t.equal(written, 1, 'one packet written');
    t.equal(b.len[0], 9000, 'len untouched');
    checkSegments(t, pkt, segs, MTU);
    t.equal(c(b.counters, 'tun_tx_packets'), nseg, 'each segment counted');
    t.equal(c(b.counters, 'syscalls_tun_write'), nseg, 'one writev per segment');
    t.equal(c(b.counters, 'tun_tx_bytes'), 9000 + (nseg - 1) * 52, 'bytes include each header copy');
    t.equal(c(b.counters, 'copied_user_to_kernel_bytes'), 9000 + (nseg - 1) * 52);
    // The kernel RSTs each segment it accepted (a bad checksum gets none): ack = seq + len (+1 for the FIN).
    const acks = await readRsts(nseg);
    const want = Array.from({ length: nseg }, (_, k) => {
      const chunk = k === nseg - 1 ? 9000 - 52 - k * mss : mss;
      return (0xfffff000 + k * mss + chunk + (k === nseg - 1 ? 1 : 0)) >>> 0;
    });
    t.same(acks.sort(), want.sort(), 'the kernel accepted every segment (one RST each)');
  });

  await t.test('odd MSS and tunWriteOne (dgram tier) split the same way', async (t) => {
    const mtu = MTU - 1; // mss 1347: chunks start at odd offsets, so their sums combine byte-swapped
    const pkt = tcpPacket({ len: 6001, seq: 77, flags: PSH | ACK, sport: 40002 });
    const nseg = Math.ceil((6001 - 40) / (mtu - 40));
    const cap = await capture(nseg);
    const k = new Float64Array(n.COUNTER_COUNT);
    const buf = Buffer.alloc(pkt.length + 3);
    pkt.copy(buf, 3);
    t.equal(n.tunWriteOne(fd, buf, 3, pkt.length, k, mtu), true);
    checkSegments(t, pkt, await cap.done, mtu);
    t.equal(c(k, 'tun_tx_packets'), nseg);
    t.equal(c(k, 'drop_bad_csum'), 0, 'checksum verified across odd chunk offsets');
    drain();
  });

  await t.test('a bad TCP checksum is a counted drop, nothing written', async (t) => {
    const pkt = tcpPacket({ len: 9000, seq: 1, flags: PSH, timestamps: true });
    pkt[5000] = pkt[5000]! ^ 0x10; // corruption after the sender's checksum
    const { b, written } = writeBatch(pkt, MTU);
    t.equal(written, 0);
    t.equal(b.len[0], n.VERDICT_BAD_CSUM, 'verdict bad_csum');
    t.equal(c(b.counters, 'drop_bad_csum'), 1);
    t.equal(c(b.counters, 'syscalls_tun_write'), 0, 'no segment written');
    t.equal(c(b.counters, 'tun_tx_packets'), 0);
    const k = new Float64Array(n.COUNTER_COUNT);
    t.equal(n.tunWriteOne(fd, pkt, 0, pkt.length, k, MTU), false, 'tunWriteOne: false');
    t.equal(c(k, 'drop_bad_csum'), 1);
  });

  await t.test('oversized non-TCP, fragments and SYNs are dropped as too_big', async (t) => {
    const cases: [string, Buffer][] = [
      ['UDP', udpPacket(3000)],
      [
        'TCP fragment (MF)',
        (() => {
          const p = tcpPacket({ len: 3000, seq: 1, flags: ACK });
          p.writeUInt16BE(0x2000, 6);
          p.writeUInt16BE(0, 10);
          p.writeUInt16BE(~csum(p, 0, 20) & 0xffff, 10);
          return p;
        })(),
      ],
      ['SYN with data', tcpPacket({ len: 3000, seq: 1, flags: SYN })],
      ['not IPv4', Buffer.alloc(3000, 0x60)],
    ];
    for (const [what, pkt] of cases) {
      const { b, written } = writeBatch(pkt, MTU);
      t.equal(written, 0, `${what}: not written`);
      t.equal(b.len[0], n.VERDICT_TOO_BIG, `${what}: verdict too_big`);
      t.equal(c(b.counters, 'drop_too_big'), 1, `${what}: counted`);
      t.equal(c(b.counters, 'syscalls_tun_write'), 0, `${what}: no write`);
    }
    t.equal(n.dropReasonOf(n.VERDICT_TOO_BIG), 'too_big');
    t.equal(n.dropReasonOf(n.VERDICT_BAD_CSUM), 'bad_csum');
  });

  await t.test('a packet of exactly the MTU, and any packet without an MTU, is written unsplit', async (t) => {
    const exact = tcpPacket({ len: MTU, seq: 500, flags: FIN | PSH | ACK, timestamps: true, sport: 40003 });
    const cap = await capture(1);
    const { b, written } = writeBatch(exact, MTU);
    const got = await cap.done;
    t.equal(written, 1);
    t.equal(got.length, 1, 'one packet');
    t.ok(got[0]?.equals(exact), 'byte for byte as given');
    t.equal(c(b.counters, 'syscalls_tun_write'), 1);
    t.equal(c(b.counters, 'tun_tx_bytes'), MTU);

    // mtu absent (callers from before the split): the old behaviour, one write whatever the size.
    const big = udpPacket(3000);
    const r = writeBatch(big);
    t.equal(r.written, 1, 'no limit: written as one packet');
    t.equal(c(r.b.counters, 'tun_tx_bytes'), 3000);
    const z = writeBatch(big, 0);
    t.equal(z.written, 1, 'mtu 0: no limit');
    drain();
  });
});
