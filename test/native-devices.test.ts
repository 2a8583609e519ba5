// Native addon against real devices (run as root). Only loopback and the TUN's own subnet:
//
//   ping ──> 10.99.X.2 ──route──> wtstN (TUN, 10.99.X.1/24, MTU 1400) ──fd──> this process
//   this process ──inWrite──> echo reply / ICMP error ──> kernel ──> ping
//
//   socket A (127.0.0.1:pa) ──outSend──> socket B (127.0.0.1:pb) ──inRecv──> slab
//
// Every fd, poll handle and link is released in teardown, also when a test fails.
import t from 'tap';
import { execFile, execFileSync } from 'node:child_process';
import dgram from 'node:dgram';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { probeTunOffloads } from '../src/datapath/offload-config.js';
import * as n from './helpers/native.js';
import { csum } from './helpers/packets.js';
import { byteQueue, SLOT } from './helpers/queue.js';
import { sleep, until } from './helpers/wait.js';

const X = 20 + (process.pid % 200);
const NET = `10.99.${X}`;
const NAME = `wtst${process.pid % 1000}`;
const HR = n.HEADROOM;

// ---- resources, released whatever happens ----

const fds = new Set<number>();
const polls = new Set<n.PollHandle>();
function track(fd: number): number {
  fds.add(fd);
  return fd;
}
function closeFd(fd: number): void {
  fds.delete(fd);
  n.close(fd);
}
function watch(fd: number, events: number, cb: (ev: number) => void): n.PollHandle {
  const h = n.pollStart(fd, events, cb);
  polls.add(h);
  return h;
}
function unwatch(h: n.PollHandle): void {
  polls.delete(h);
  n.pollStop(h);
}
t.teardown(() => {
  for (const h of polls) n.pollStop(h);
  for (const fd of fds) {
    try {
      n.close(fd);
    } catch {
      // already gone
    }
  }
  for (const name of [NAME, `${NAME}m`, `${NAME}v`]) {
    if (existsSync(`/sys/class/net/${name}`)) execFileSync('ip', ['link', 'del', name], { stdio: 'ignore' });
  }
});

// ---- helpers ----

function run(cmd: string, args: string[], timeout = 10000): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, out: stdout + stderr });
    });
  });
}

/** An IPv4 ICMP echo request to `dst` at slab[at, at+len)? */
function isEchoRequest(s: Buffer, at: number, len: number, dst: string): boolean {
  return (
    len >= 28 &&
    s[at]! >> 4 === 4 &&
    s[at + 9] === 1 &&
    s.readUInt32BE(at + 16) === n.ipv4ToU32(dst) &&
    s[at + (s[at]! & 15) * 4] === 8
  );
}

/** Turn an echo request into its reply in place. */
function makeReply(s: Buffer, at: number, len: number): void {
  const src = s.readUInt32BE(at + 12);
  s.writeUInt32BE(s.readUInt32BE(at + 16), at + 12);
  s.writeUInt32BE(src, at + 16); // swapping words keeps the IP checksum
  const icmp = at + (s[at]! & 15) * 4;
  s[icmp] = 0;
  s.writeUInt16BE(0, icmp + 2);
  s.writeUInt16BE(~csum(s, icmp, at + len) & 0xffff, icmp + 2);
}

const ping = (dst: string, count: number) =>
  run('ping', ['-n', '-c', String(count), '-W', '1', '-i', '0.2', dst], 15000);

// ---- TUN ----

t.test('tun: open, link, ping answered through outRead/inWrite, ICMP errors, close', async (t) => {
  const tun = n.tunOpen(NAME, 0);
  track(tun.fd);
  t.equal(tun.name, NAME);
  t.ok(existsSync(`/sys/class/net/${NAME}`), 'device exists');
  t.equal(parseInt(readFileSync(`/sys/class/net/${NAME}/tun_flags`, 'utf8'), 16), 0x1001, 'IFF_TUN|IFF_NO_PI');
  n.linkSet(NAME, 1400, true);
  t.equal(readFileSync(`/sys/class/net/${NAME}/mtu`, 'utf8').trim(), '1400');
  t.equal(parseInt(readFileSync(`/sys/class/net/${NAME}/flags`, 'utf8'), 16) & 1, 1, 'IFF_UP');
  execFileSync('ip', ['addr', 'add', `${NET}.1/24`, 'dev', NAME]);

  // A quiet TUN reads 0 (EAGAIN), counted as a syscall. Stray IPv6 control packets may come first.
  const one = Buffer.alloc(2048);
  const c1 = new Float64Array(n.COUNTER_COUNT);
  let reads = 0;
  while (n.tunReadOne(tun.fd, one, 0, one.length, c1) > 0 && reads < 50) reads++;
  t.equal(c1[n.Counter.syscalls_tun_read], reads + 1, 'tunReadOne: 0 on EAGAIN');

  await t.test('queue calls answer ping: outRead from TUN, inWrite back', async (t) => {
    const q = byteQueue({ slots: 16, encap: n.ENCAP_UDP, tunFd: tun.fd });
    t.teardown(() => q.close());
    let requests = 0;
    const h = watch(tun.fd, n.READABLE, (ev) => {
      t.equal(ev & n.READABLE, n.READABLE);
      const cnt = n.outRead(q.handle);
      let segs = 0;
      for (let i = 0; i < cnt; i++) {
        const at = q.outPacket(i);
        if (!isEchoRequest(q.outSlab, at, q.outLen[i]!, `${NET}.2`)) continue;
        requests++;
        makeReply(q.outSlab, at, q.outLen[i]!);
        q.outSlab.copy(q.inSlab, segs * SLOT, at, at + q.outLen[i]!);
        q.segOff[segs] = segs * SLOT;
        q.segLen[segs++] = q.outLen[i]!;
      }
      n.inWrite(q.handle, segs);
    });
    const r = await ping(`${NET}.2`, 3);
    unwatch(h);
    t.equal(r.code, 0, 'ping succeeds');
    t.match(r.out, /3 packets transmitted, 3 received/);
    t.equal(requests, 3, 'outRead saw 3 echo requests');
    const k = q.opts.counters;
    t.ok(k[n.Counter.tun_rx_packets]! >= 3);
    t.equal(k[n.Counter.tun_tx_packets], 3);
    t.equal(k[n.Counter.tun_tx_bytes], 3 * 84, 'default ping is 84 bytes of IPv4');
    t.ok(k[n.Counter.syscalls_tun_read]! > k[n.Counter.tun_rx_packets]!, 'EAGAIN reads counted');
    t.equal(k[n.Counter.copied_kernel_to_user_bytes], k[n.Counter.tun_rx_bytes]);
    t.equal(k[n.Counter.copied_user_to_kernel_bytes], 3 * 84);
  });

  await t.test('single-packet calls answer ping', async (t) => {
    const buf = Buffer.alloc(2048);
    const k = new Float64Array(n.COUNTER_COUNT);
    let replies = 0;
    const h = watch(tun.fd, n.READABLE, () => {
      for (let len; (len = n.tunReadOne(tun.fd, buf, 16, buf.length - 16, k)) > 0;) {
        if (!isEchoRequest(buf, 16, len, `${NET}.2`)) continue;
        makeReply(buf, 16, len);
        if (n.tunWriteOne(tun.fd, buf, 16, len, k)) replies++;
      }
    });
    const r = await ping(`${NET}.2`, 2);
    unwatch(h);
    t.equal(r.code, 0);
    t.equal(replies, 2);
    t.equal(k[n.Counter.tun_tx_packets], 2);
  });

  await t.test('outIcmp: net unreachable reaches ping', async (t) => {
    const q = byteQueue({ slots: 4, encap: n.ENCAP_UDP, tunFd: tun.fd });
    t.teardown(() => q.close());
    let sent = 0;
    const h = watch(tun.fd, n.READABLE, () => {
      const cnt = n.outRead(q.handle);
      for (let i = 0; i < cnt; i++) {
        if (!isEchoRequest(q.outSlab, q.outPacket(i), q.outLen[i]!, `${NET}.3`)) continue;
        if (n.outIcmp(q.handle, i, n.ICMP_DEST_UNREACH, n.ICMP_NET_UNREACH, n.ipv4ToU32(`${NET}.254`))) sent++;
      }
    });
    const r = await ping(`${NET}.3`, 1);
    unwatch(h);
    t.equal(sent, 1);
    t.equal(q.opts.counters[n.Counter.icmp_sent], 1);
    t.match(r.out, new RegExp(`From ${NET.replace(/\./g, '\\.')}\\.254 .*Destination Net Unreachable`));
  });

  closeFd(tun.fd);
  t.ok(await until(() => !existsSync(`/sys/class/net/${NAME}`), 3000, 10), 'TUN disappears when closed');
});

t.test('tun: multi-queue and vnet header flags', async (t) => {
  const q1 = n.tunOpen(`${NAME}m`, n.TUN_MULTI_QUEUE);
  track(q1.fd);
  const q2 = n.tunOpen(`${NAME}m`, n.TUN_MULTI_QUEUE);
  track(q2.fd);
  t.equal(q2.name, `${NAME}m`, 'second queue attaches to the same device');
  t.equal(parseInt(readFileSync(`/sys/class/net/${NAME}m/tun_flags`, 'utf8'), 16), 0x1101, 'IFF_MULTI_QUEUE');
  const v = n.tunOpen(`${NAME}v`, n.TUN_VNET_HDR);
  track(v.fd);
  t.equal(parseInt(readFileSync(`/sys/class/net/${NAME}v/tun_flags`, 'utf8'), 16), 0x5001, 'IFF_VNET_HDR');
  const nq = n.tunOpen(`${NAME}n`, n.TUN_NAPI);
  track(nq.fd);
  t.equal(parseInt(readFileSync(`/sys/class/net/${NAME}n/tun_flags`, 'utf8'), 16) & 0x10, 0x10, 'IFF_NAPI');
  for (const fd of [q1.fd, q2.fd, v.fd, nq.fd]) closeFd(fd);
  t.ok(await until(() => !['m', 'v', 'n'].some((s) => existsSync(`/sys/class/net/${NAME}${s}`)), 3000, 10));
});

t.test('tun: TSO6 only when the overlay carries IPv6, as the kernel then reports it', async (t) => {
  const v = n.tunOpen(`${NAME}o`, n.TUN_VNET_HDR);
  track(v.fd);
  /** The TUN's offload features as the kernel reports them (ethtool -k). */
  const features = () => {
    const out = execFileSync('ethtool', ['-k', `${NAME}o`], { encoding: 'utf8', timeout: 10000 });
    const on = (name: string) => new RegExp(`^\\s*${name}: on`, 'm').test(out);
    return { tso4: on('tx-tcp-segmentation'), tso6: on('tx-tcp6-segmentation') };
  };
  const v4 = probeTunOffloads(v.fd, new Set());
  t.same([v4.tso, v4.tso6, v4.flags & n.TUN_F.TSO6], [true, false, 0], 'v4 overlay: TSO4 only');
  t.same(features(), { tso4: true, tso6: false }, 'kernel: tcp6 segmentation off');
  const v6 = probeTunOffloads(v.fd, new Set(), true);
  t.same([v6.tso, v6.tso6], [true, true], 'IPv6 overlay: TSO4 and TSO6');
  t.same(features(), { tso4: true, tso6: true }, 'kernel: tcp6 segmentation on');
  t.equal(v6.uso, v4.uso, 'USO the same either way (the kernel takes USO4 only with USO6)');
  t.equal(probeTunOffloads(v.fd, new Set(['tso']), true).tso6, false, 'WEFT_DISABLE_OFFLOAD=tso turns TSO6 off too');
  closeFd(v.fd);
  t.ok(await until(() => !existsSync(`/sys/class/net/${NAME}o`), 3000, 10));
});

t.test('errors carry the errno name, syscall and argument', async (t) => {
  t.throws(() => n.tunOpen('x'.repeat(16), 0), { code: 'EINVAL', message: /TUNSETIFF/ });
  t.throws(() => n.linkSet('wtstnosuch0', 1400, true), {
    code: 'ENODEV',
    syscall: 'ioctl(SIOCSIFMTU)',
    message: /wtstnosuch0/,
  });
  t.throws(() => n.udpOpen('not-an-ip', 0, 0, false), { code: 'EINVAL', message: /inet_pton not-an-ip:0/ });
  t.throws(() => n.udpOpen('192.0.2.1', 0, 0, false), {
    code: 'EADDRNOTAVAIL',
    syscall: 'bind',
    message: /^bind 192\.0\.2\.1:0: /,
  });
  const fd = n.udpOpen('127.0.0.1', 0, 0, false);
  n.close(fd);
  t.throws(() => n.close(fd), { code: 'EBADF', errno: -9, message: new RegExp(`close fd ${fd}`) });
  t.throws(() => n.udpLocalPort(fd), { code: 'EBADF', syscall: 'getsockname' });
  const q = byteQueue({ slots: 1, encap: null, tunFd: fd, sockFd: fd });
  t.teardown(() => q.close());
  t.throws(() => n.inRecv(q.handle), { code: 'EBADF', syscall: 'recvmmsg' });
  t.throws(() => n.outRead(q.handle), { code: 'EBADF', syscall: 'read' });
  q.outOff[0] = HR;
  q.outLen[0] = 10;
  q.outPeer[0] = 0;
  q.usePeers(Buffer.alloc(n.PEER_RECORD_SIZE));
  t.equal(n.outEncap(q.handle, 1), 1, 'one message');
  t.throws(() => n.outSend(q.handle), { code: 'EBADF', syscall: 'sendmmsg' });
  t.throws(() => n.udpOpen('127.0.0.1', 70000, 0, false), { code: 'ERR_OUT_OF_RANGE', message: /'port'/ });
});

// ---- UDP ----

function udpPair(t: { teardown(fn: () => void): void }) {
  const a = track(n.udpOpen('127.0.0.1', 0, 4 << 20, false));
  const b = track(n.udpOpen('127.0.0.1', 0, 4 << 20, true));
  t.teardown(() => {
    for (const fd of [a, b]) if (fds.has(fd)) closeFd(fd);
  });
  return { a, b, pa: n.udpLocalPort(a), pb: n.udpLocalPort(b) };
}

function table(port: number, ip = '127.0.0.1'): Buffer {
  const tab = Buffer.alloc(n.PEER_RECORD_SIZE);
  n.writePeerRecord(tab, 0, ip, port, '02:00:00:00:00:01', 1);
  return tab;
}

/** Wait until fd is readable (bounded), via pollStart. */
function readable(fd: number, ms = 2000): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      unwatch(h);
      resolve(false);
    }, ms);
    const h = watch(fd, n.READABLE, () => {
      clearTimeout(timer);
      unwatch(h);
      resolve(true);
    });
  });
}

t.test('udp: socket buffers forced, local port', async (t) => {
  const { pb } = udpPair(t);
  t.ok(pb > 0);
  const ss = execFileSync('ss', ['-u', '-a', '-n', '-m', 'sport', '=', `:${pb}`], { encoding: 'utf8' });
  const rb = /rb(\d+)/.exec(ss);
  const tb = /tb(\d+)/.exec(ss);
  t.ok(rb && Number(rb[1]) >= 4 << 20, `receive buffer ${rb?.[1]} >= 4 MiB (beyond rmem_max)`);
  t.ok(tb && Number(tb[1]) >= 4 << 20, `send buffer ${tb?.[1]} >= 4 MiB`);
});

/** A queue over socket fd whose datagrams JS frames itself (encap null): slot i's outOff/outLen are sent as is. */
function rawQueue(t: { teardown(fn: () => void): void }, fd: number, slots: number) {
  const q = byteQueue({ slots, encap: null, sockFd: fd });
  t.teardown(() => q.close());
  return q;
}

t.test('udp: outSend / inRecv of 100 datagrams over loopback', async (t) => {
  const { a, b, pa, pb } = udpPair(t);
  const tab = table(pb);
  const tx = rawQueue(t, a, 110);
  tx.usePeers(tab);
  let bytes = 0;
  const sizes: number[] = [];
  for (let i = 0; i < 110; i++) {
    const at = i * SLOT + HR;
    tx.outOff[i] = at;
    tx.outLen[i] = 100 + i * 7;
    tx.outSlab.fill(i, at, at + tx.outLen[i]!);
    tx.outPeer[i] = i % 11 === 10 ? -1 : 0; // 10 slots JS decided not to send
    if (tx.outPeer[i]! >= 0) {
      bytes += tx.outLen[i]!;
      sizes.push(tx.outLen[i]!);
    }
  }
  t.equal(sizes.length, 100);
  t.equal(n.outEncap(tx.handle, 110), 100, 'one message per datagram');
  t.equal(n.outSend(tx.handle), 0, 'all sent');
  const k = tx.opts.counters;
  t.equal(k[n.Counter.udp_tx_packets], 100);
  t.equal(k[n.Counter.udp_tx_bytes], bytes);
  t.equal(k[n.Counter.copied_user_to_kernel_bytes], bytes);
  t.equal(k[n.Counter.syscalls_send], 2, 'two sendmmsg chunks of <= 64');
  t.equal(n.outSend(tx.handle), 0, 'nothing left to send again');
  t.equal(k[n.Counter.syscalls_send], 2);

  const rx = rawQueue(t, b, 128);
  const got: number[] = [];
  let wrong = 0;
  while (got.length < 100) {
    if (!(await readable(b))) break;
    const cnt = n.inRecv(rx.handle);
    for (let i = 0; i < cnt; i++) {
      const len = rx.inLen[i]!;
      const seq = rx.inSlab[i * SLOT]!;
      if (rx.inAddr[i] !== 0x7f000001 || len !== 100 + seq * 7 || rx.inSlab[i * SLOT + len - 1] !== seq) wrong++;
      got.push(len);
    }
  }
  t.same(got, sizes, 'every datagram, in order, with its length');
  t.equal(wrong, 0, 'source address and contents correct');
  const rk = rx.opts.counters;
  t.equal(rk[n.Counter.udp_rx_packets], 100);
  t.equal(rk[n.Counter.udp_rx_bytes], bytes);
  t.equal(rk[n.Counter.copied_kernel_to_user_bytes], bytes);
  t.ok(rk[n.Counter.syscalls_recv]! <= 6, `few recvmmsg calls (${rk[n.Counter.syscalls_recv]})`);
  t.equal(n.inRecv(rx.handle), 0, '0 when drained');

  // the source port the peer sees is socket A's
  const sock = dgram.createSocket('udp4');
  t.teardown(() => sock.close());
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  const seen = new Promise<dgram.RemoteInfo>((r) => sock.once('message', (_m, info) => r(info)));
  tx.outPeer.fill(-1);
  tx.outPeer[3] = 0;
  tx.usePeers(table(sock.address().port));
  t.equal(n.outEncap(tx.handle, 110), 1);
  t.equal(n.outSend(tx.handle), 0);
  const info = await seen;
  t.equal(info.address, '127.0.0.1');
  t.equal(info.port, pa, 'source port is the sending socket');
  t.equal(info.size, tx.outLen[3]);
});

t.test(
  'udp: reuseport steering by inner flow spreads flows and keeps both directions of a flow together',
  async (t) => {
    const a = n.udpOpen('127.0.0.1', 0, 0, true);
    const port = n.udpLocalPort(a);
    n.udpSteerByInnerFlow(a, 22, false, 2); // VXLAN: 8-byte header + inner Ethernet before the inner IPv4 header
    const b = n.udpOpen('127.0.0.1', port, 0, true);
    t.teardown(() => {
      n.close(a);
      n.close(b);
    });
    // 32 TCP flows 10.5.1.2:<even port> <-> 10.5.2.2:5201 (connect() hands out even ports), each direction once.
    const datagram = (flow: number, reverse: boolean): Buffer => {
      const d = Buffer.alloc(22 + 40);
      d[0] = 0x08; // VXLAN I flag
      d.writeUInt16BE(0x0800, 20); // inner EtherType
      d[22] = 0x45;
      d[22 + 9] = 6;
      const [src, dst, sport, dport] = [0x0a050102, 0x0a050202, 40000 + 2 * flow, 5201];
      d.writeUInt32BE(reverse ? dst : src, 22 + 12);
      d.writeUInt32BE(reverse ? src : dst, 22 + 16);
      d.writeUInt16BE(reverse ? dport : sport, 42);
      d.writeUInt16BE(reverse ? sport : dport, 44);
      return d;
    };
    const sender = dgram.createSocket('udp4');
    t.teardown(() => sender.close());
    for (let flow = 0; flow < 32; flow++) {
      for (const reverse of [false, true])
        await new Promise((r) => sender.send(datagram(flow, reverse), port, '127.0.0.1', r));
    }
    await sleep(100);
    const socketOf = new Map<string, number>(); // "flow direction" -> 0 (a) or 1 (b)
    for (const [i, fd] of [a, b].entries()) {
      const rx = rawQueue(t, fd, 128);
      const cnt = n.inRecv(rx.handle);
      for (let k = 0; k < cnt; k++) {
        const at = k * SLOT;
        const sport = rx.inSlab.readUInt16BE(at + 42);
        const forward = sport !== 5201;
        const flow = ((forward ? sport : rx.inSlab.readUInt16BE(at + 44)) - 40000) / 2;
        socketOf.set(`${flow} ${forward ? 'fwd' : 'rev'}`, i);
      }
    }
    t.equal(socketOf.size, 64, 'every datagram arrived in one of the two sockets');
    const onA = [...Array(32).keys()].filter((f) => socketOf.get(`${f} fwd`) === 0).length;
    t.ok(onA > 0 && onA < 32, `the flows spread over both sockets (${onA} / ${32 - onA})`);
    t.ok(
      [...Array(32).keys()].every((f) => socketOf.get(`${f} fwd`) === socketOf.get(`${f} rev`)),
      "each flow's two directions share a socket",
    );
    t.throws(() => n.udpSteerByInnerFlow(a, 22, false, 0), { code: 'ERR_OUT_OF_RANGE' }, 'queues 0 refused');
  },
);

t.test('udp: outSend drops a failing message and goes on', async (t) => {
  const { a, b, pb } = udpPair(t);
  const tab = Buffer.alloc(2 * n.PEER_RECORD_SIZE);
  n.writePeerRecord(tab, 0, '127.0.0.1', pb, '02:00:00:00:00:01', 1);
  n.writePeerRecord(tab, 1, '0.0.0.0', 0, '02:00:00:00:00:01', 1); // port 0: EINVAL
  const tx = rawQueue(t, a, 4);
  tx.usePeers(tab);
  for (let i = 0; i < 4; i++) {
    tx.outOff[i] = i * SLOT + HR;
    tx.outLen[i] = 50;
  }
  tx.outPeer.set([0, 1, 0, 2]); // 2: past the table
  t.equal(n.outEncap(tx.handle, 4), 3, 'the index past the table is dropped at encap');
  t.equal(n.outSend(tx.handle), 0);
  t.same([...tx.outPeer], [0, n.VERDICT_SEND_ERROR, 0, n.VERDICT_NO_ROUTE]);
  const k = tx.opts.counters;
  t.equal(k[n.Counter.drop_send_error], 1);
  t.equal(k[n.Counter.drop_no_route], 1);
  t.equal(k[n.Counter.udp_tx_packets], 2);
  t.ok(await readable(b));
  const rx = rawQueue(t, b, 4);
  let total = 0;
  for (let tries = 0; total < 2 && tries < 50; tries++) {
    total += n.inRecv(rx.handle);
    if (total < 2) await sleep(10);
  }
  t.equal(total, 2);
});

t.test('udp: 60 KiB and 65507-byte datagrams arrive whole', async (t) => {
  const { a, b, pb } = udpPair(t);
  const tx = rawQueue(t, a, 2);
  tx.usePeers(table(pb));
  for (const [i, size] of [
    [0, 60 * 1024],
    [1, 65507],
  ] as const) {
    tx.outOff[i] = i * SLOT + HR;
    tx.outLen[i] = size;
    tx.outPeer[i] = 0;
    for (let j = 0; j < size; j++) tx.outSlab[tx.outOff[i]! + j] = (j * 31 + i) & 0xff;
  }
  n.outEncap(tx.handle, 2);
  t.equal(n.outSend(tx.handle), 0);
  const rx = rawQueue(t, b, 4);
  const lens: number[] = [];
  let same = true;
  while (lens.length < 2 && (await readable(b))) {
    const cnt = n.inRecv(rx.handle);
    for (let i = 0; i < cnt; i++) {
      const k = lens.length;
      lens.push(rx.inLen[i]!);
      same &&= rx.inSlab
        .subarray(i * SLOT, i * SLOT + rx.inLen[i]!)
        .equals(tx.outSlab.subarray(tx.outOff[k]!, tx.outOff[k]! + tx.outLen[k]!));
    }
  }
  t.same(lens, [61440, 65507]);
  t.ok(same, 'contents intact');
  t.equal(rx.opts.counters[n.Counter.drop_truncated], 0);
});

// ---- event loop ----

t.test('poll: fires on readable and writable, stop is clean and idempotent', async (t) => {
  const { b, pb } = udpPair(t);
  const sock = dgram.createSocket('udp4');
  t.teardown(() => sock.close());
  const events: number[] = [];
  const fired = new Promise<void>((resolve) => {
    const h = watch(b, n.READABLE, (ev) => {
      events.push(ev);
      unwatch(h);
      t.doesNotThrow(() => n.pollStop(h), 'second pollStop is a no-op');
      t.throws(() => n.pollUpdate(h, n.READABLE), { code: 'EBADF' });
      resolve();
    });
  });
  sock.send(Buffer.from('wake'), pb, '127.0.0.1');
  await fired;
  t.same(events, [n.READABLE]);

  const w = await new Promise<number>((resolve) => {
    const h = watch(b, 0, (ev) => {
      unwatch(h);
      resolve(ev);
    });
    n.pollUpdate(h, n.WRITABLE);
  });
  t.equal(w, n.WRITABLE, 'pollUpdate to WRITABLE fires at once on an idle socket');
  const rx = rawQueue(t, b, 1);
  t.equal(n.inRecv(rx.handle), 1);
  t.equal(rx.inAddr[0], 0x7f000001);
  t.throws(() => n.pollStart(b, 4, () => {}), { code: 'ERR_OUT_OF_RANGE' });
});

t.test('poll: a throw in the callback surfaces as uncaughtException', async (t) => {
  const addon = fileURLToPath(new URL('../build/Release/weft.node', import.meta.url));
  const script = `
    import { createRequire } from 'node:module';
    import dgram from 'node:dgram';
    const w = createRequire(import.meta.url)(${JSON.stringify(addon)});
    const fd = w.udpOpen('127.0.0.1', 0, 0, false);
    process.on('uncaughtException', (e) => { console.log('uncaught: ' + e.message); process.exit(0); });
    w.pollStart(fd, w.READABLE, () => { throw new Error('boom in poll'); });
    const s = dgram.createSocket('udp4');
    s.send('x', w.udpLocalPort(fd), '127.0.0.1', () => s.close());
    setTimeout(() => { console.log('timeout'); process.exit(1); }, 3000);
  `;
  const r = await run(process.execPath, ['--input-type=module', '-e', script], 10000);
  t.equal(r.code, 0);
  t.match(r.out, /uncaught: boom in poll/);
});
