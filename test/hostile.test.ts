// Hostile traffic: about 10^6 malformed or spoofed datagrams at a running daemon while a TCP transfer runs through
// it. Bounded: the senders stop at their share of 10^6 datagrams or after 60 s, whichever comes first (on 2 shared
// cores Node's dgram sends roughly 50-150k datagrams/s; the number actually sent is printed). A flood overflows the
// daemon's socket on a busy machine, so the count is checked against what arrived: every datagram sent is counted by
// the daemon or dropped by the kernel on its way, which counts it too.
//
//   bridge netns: etcd; also sends valid VXLAN from an outer source that holds no lease (unknown_peer)
//   h1: weft daemon (vxlan, --healthz-port=8471), the target; pod receives a 64 MB transfer from h2's pod
//   h2: weft daemon + pod: the TCP sender
//   h3: weft daemon (a lease holder): garbage, truncated headers, no I flag, wrong VNI, wrong ethertype, lying and
//       truncated inner IPv4 headers, inner source outside h3's subnet
//
// Then every tier x encap (and the offload tier with --queues 2): a few of each hostile datagram, sent one by one
// (bounded: 40 of each kind), each dropped and counted under its reason, exactly when the kernel dropped nothing.
//   bridge netns: etcd; valid datagrams from an outer source that holds no lease (unknown_peer)
//   h1: weft daemon, restarted per tier, the target;  h2: weft daemon (batch tier, a lease holder), the sender
import t from 'tap';
import { ping } from '../testbed/traffic.js';
import { encapByName } from '../src/encap/index.js';
import { kernelDrops, metricsOf, sendDatagrams, sha256Transfer, type Datagram } from './helpers/traffic.js';
import { clusterFor, netConfig } from './helpers/cluster.js';
import { sleep } from './helpers/wait.js';

const TOTAL = 1_000_000;
const SECONDS = 60;
const PORT = 8472;

// argv: dst port count seconds spec. Builds a few templates per kind once, then sends them round-robin in bursts of
// 512 per tick (each send's callback is not awaited one by one). Prints {sent, ms, errors}.
const SENDER = `
const dgram = require('node:dgram');
const [dst, port, count, seconds] = [process.argv[1], ...process.argv.slice(2, 5).map(Number)];
const spec = JSON.parse(process.argv[5]);
const ip = (s) => Buffer.from(s.split('.').map(Number));
function inner(src, dstIp, opts = {}) {
  const b = Buffer.alloc(48); b[0] = 0x45; b.writeUInt16BE(opts.tot ?? 48, 2); b[8] = 64; b[9] = 17;
  ip(src).copy(b, 12); ip(dstIp).copy(b, 16);
  let sum = 0; for (let i = 0; i < 20; i += 2) sum += b.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  b.writeUInt16BE(~sum & 0xffff, 10); b.writeUInt16BE(9, 20); b.writeUInt16BE(9, 22); b.writeUInt16BE(28, 24);
  return opts.cut ? b.subarray(0, opts.cut) : b;
}
function vxlan(payload, o = {}) {
  const h = Buffer.alloc(22); h[0] = o.flags ?? 0x08; h.writeUInt32BE((o.vni ?? 1) << 8, 4);
  h.writeUInt16BE(o.ethertype ?? 0x0800, 20);
  return Buffer.concat([h, payload]);
}
const kinds = {
  garbage: () =>
    Buffer.from(Array.from({ length: 1 + Math.floor(Math.random() * 200) }, () => Math.floor(Math.random() * 256))),
  truncated_header: () => vxlan(Buffer.alloc(0)).subarray(0, 1 + Math.floor(Math.random() * 21)),
  no_i_flag: () => vxlan(inner(spec.src, spec.dst), { flags: 0 }),
  wrong_vni: () => vxlan(inner(spec.src, spec.dst), { vni: 2 + Math.floor(Math.random() * 1000) }),
  wrong_ethertype: () => vxlan(inner(spec.src, spec.dst), { ethertype: 0x86dd }),
  lying_length: () => vxlan(inner(spec.src, spec.dst, { tot: 1400 })),
  truncated_inner: () => vxlan(inner(spec.src, spec.dst, { cut: 12 })),
  spoofed_inner_source: () => vxlan(inner(spec.spoof, spec.dst)),
  valid: () => vxlan(inner(spec.src, spec.dst)),
};
const msgs = [];
for (const k of spec.kinds) for (let i = 0; i < 16; i++) msgs.push(kinds[k]());
const sock = dgram.createSocket('udp4');
sock.on('error', () => {});
let sent = 0, errors = 0, done = 0, i = 0;
const start = Date.now(), stopAt = start + seconds * 1000;
const cb = (e) => { done++; if (e) errors++; };
function burst() {
  if (sent >= count || Date.now() >= stopAt) return finish();
  // Keep the queue short: only send more when most of the previous burst left.
  if (sent - done < 2048) {
    for (let n = 0; n < 512 && sent < count; n++) {
      sock.send(msgs[i], port, dst, cb);
      i = (i + 1) % msgs.length;
      sent++;
    }
  }
  setImmediate(burst);
}
function finish() {
  const wait = () => {
    if (done < sent && Date.now() <= stopAt + 5000) return setTimeout(wait, 10);
    process.stdout.write(JSON.stringify({ sent, done, errors, ms: Date.now() - start }));
    sock.close();
  };
  wait();
}
burst();
setTimeout(() => process.exit(3), (seconds + 20) * 1000).unref();
`;

t.test(
  `hostile datagrams (${TOTAL} or ${SECONDS} s, whichever first) while a TCP transfer runs`,
  { timeout: 300_000 },
  async (t) => {
    const cluster = await clusterFor(t, 3, netConfig('10.46.0.0/16', 'vxlan'));
    for (const n of [1, 2, 3]) await cluster.startDaemon(n, n === 1 ? ['--healthz-port=8471'] : []);
    for (const n of [1, 2, 3]) await cluster.ensurePod(n);
    const [p1, p2, p3] = [1, 2, 3].map((n) => cluster.pods.get(n)!);
    const target = cluster.tb.hostIP(1);
    const before = await metricsOf(cluster.tb, cluster.tb.host(1), 8471);

    const transfer = sha256Transfer(cluster.tb, p2!, p1!, 64 << 20, 240_000);
    const send = async (from: Parameters<typeof cluster.tb.exec>[0], count: number, spec: object) => {
      const r = await cluster.tb.exec(
        from,
        [process.execPath, '-e', SENDER, target, String(PORT), String(count), String(SECONDS), JSON.stringify(spec)],
        { timeoutMs: (SECONDS + 40) * 1000 },
      );
      if (r.code !== 0) throw new Error(`sender failed (${r.code}): ${r.stderr}`);
      return JSON.parse(r.stdout) as { sent: number; done: number; errors: number; ms: number };
    };
    const fromLeaseHolder = {
      kinds: [
        'garbage',
        'truncated_header',
        'no_i_flag',
        'wrong_vni',
        'wrong_ethertype',
        'lying_length',
        'truncated_inner',
        'spoofed_inner_source',
      ],
      src: p3!.ip,
      dst: p1!.ip,
      spoof: p2!.ip,
    };
    const fromStranger = { kinds: ['valid'], src: p3!.ip, dst: p1!.ip, spoof: p2!.ip };
    const path = [cluster.tb.host(3), cluster.tb.bridgeNs, cluster.tb.host(1)];
    const droppedBefore = await kernelDrops(cluster.tb, path);
    const [a, b] = await Promise.all([
      send(cluster.tb.host(3), TOTAL * 0.8, fromLeaseHolder),
      send(cluster.tb.bridgeNs, TOTAL * 0.2, fromStranger),
    ]);
    const sent = a.sent + b.sent;
    // Sends whose callback came without an error: the kernel took those datagrams.
    const taken = a.done - a.errors + b.done - b.errors;
    t.comment(
      `sent ${sent} hostile datagrams (${a.sent} from lease holder h3 in ${a.ms} ms, ` +
        `${b.sent} from the bridge without a lease in ${b.ms} ms); the kernel took ${taken}`,
    );
    t.ok(sent > 0, `${sent} datagrams sent${sent < TOTAL ? ` (the ${SECONDS} s bound came first)` : ''}`);

    const r = await transfer;
    t.equal(r.received, 64 << 20, 'the transfer beside the flood completed');
    t.equal(r.receivedHash, r.sentHash, 'and verifies (sha256)');
    const d = cluster.daemons.get(1)!;
    t.equal(d.child.exitCode, null, 'the target daemon is still running');
    await sleep(500);
    const after = await metricsOf(cluster.tb, cluster.tb.host(1), 8471);
    const lost = (await kernelDrops(cluster.tb, path)) - droppedBefore;
    const delta = (k: string): number => (after[k] ?? 0) - (before[k] ?? 0);
    const reasons = [
      'malformed',
      'truncated',
      'bad_flags',
      'bad_vni',
      'bad_ethertype',
      'spoofed_source',
      'unknown_peer',
    ];
    const counted = Object.fromEntries(reasons.map((k) => [k, delta(`drop_${k}`)]));
    const total = Object.values(counted).reduce((x, y) => x + y, 0);
    t.comment(
      `drops by reason: ${JSON.stringify(counted)}; ${total} of ${sent} counted, ` +
        `${lost} dropped by the kernel on the path (flood and transfer)`,
    );
    for (const k of ['malformed', 'bad_flags', 'bad_vni', 'bad_ethertype', 'spoofed_source', 'unknown_peer']) {
      t.ok(counted[k]! > 0, `drop_${k} counted (${counted[k]})`);
    }
    t.ok(total <= sent, 'never more drops than datagrams sent');
    t.ok(
      total >= taken - lost,
      `every datagram the kernel took was counted by the daemon (${total}) or dropped on the way (${lost})`,
    );
    for (const [n, pod] of [
      [2, p2],
      [3, p3],
    ] as const) {
      const p = await ping(p1!, pod!.ip, { count: 2, timeoutSec: 3 });
      t.ok(p.ok, `pod h1 -> pod h${n} still pings`);
    }
    const health = await cluster.tb.exec(
      cluster.tb.host(1),
      [
        process.execPath,
        '-e',
        "fetch('http://127.0.0.1:8471/healthz')" +
          '.then((r) => process.exit(r.status === 200 ? 0 : 1), () => process.exit(2))',
      ],
      { timeoutMs: 10_000 },
    );
    t.equal(health.code, 0, '/healthz still 200');
  },
);

const EACH = 40;

/** One kind of hostile datagram: its shape (the encap header in hex before an IPv4 packet) and its drop reason. */
interface Hostile {
  readonly reason: string;
  readonly kind: 'garbage' | 'truncated' | 'ipv4';
  readonly prefix?: string;
}

/** The hostile datagrams of one encap, and the header (hex) of a valid datagram. */
function hostileKinds(encap: string): { valid: string; kinds: Hostile[] } {
  const vxlan = (flags: string, vni: string, ethertype: string): string =>
    `${flags}000000${vni}00` + '000000000000' + '020000000001' + ethertype;
  const geneve = (first: string, flags: string, proto: string, vni: string): string =>
    `${first}${flags}${proto}${vni}00`;
  const truncated: Hostile = { reason: 'malformed', kind: 'truncated' };
  if (encap === 'udp') {
    return {
      valid: '',
      kinds: [
        truncated,
        { reason: 'malformed', kind: 'garbage' },
        { reason: 'spoofed_source', kind: 'ipv4', prefix: '' },
      ],
    };
  }
  if (encap === 'vxlan') {
    const valid = vxlan('08', '000001', '0800');
    return {
      valid,
      kinds: [
        truncated,
        { reason: 'bad_flags', kind: 'ipv4', prefix: vxlan('00', '000001', '0800') },
        { reason: 'bad_vni', kind: 'ipv4', prefix: vxlan('08', '000002', '0800') },
        { reason: 'bad_ethertype', kind: 'ipv4', prefix: vxlan('08', '000001', '86dd') },
        { reason: 'spoofed_source', kind: 'ipv4', prefix: valid },
      ],
    };
  }
  const valid = geneve('00', '00', '0800', '000001');
  return {
    valid,
    kinds: [
      truncated,
      { reason: 'bad_version', kind: 'ipv4', prefix: geneve('40', '00', '0800', '000001') },
      { reason: 'bad_flags', kind: 'ipv4', prefix: geneve('00', '80', '0800', '000001') },
      { reason: 'bad_ethertype', kind: 'ipv4', prefix: geneve('00', '00', '86dd', '000001') },
      { reason: 'bad_vni', kind: 'ipv4', prefix: geneve('00', '00', '0800', '000002') },
      { reason: 'spoofed_source', kind: 'ipv4', prefix: valid },
    ],
  };
}

for (const encap of ['udp', 'vxlan', 'geneve']) {
  t.test(
    `${encap}: hostile datagrams against every tier, each dropped and counted by reason`,
    { timeout: 300_000 },
    async (t) => {
      const cluster = await clusterFor(t, 2, netConfig('10.51.0.0/16', encap));
      const { tb } = cluster;
      const port = encapByName(encap)!.defaultPort;
      const metrics = PORT + 1;
      await cluster.startDaemon(2, ['--tier=batch']);
      const { valid, kinds } = hostileKinds(encap);
      const path = [tb.host(2), tb.bridgeNs, tb.host(1)];
      for (const args of [['--tier=dgram'], ['--tier=batch'], ['--tier=offload'], ['--tier=offload', '--queues=2']]) {
        await t.test(args.join(' '), async (t) => {
          await cluster.startDaemon(1, [...args, `--healthz-port=${metrics}`]);
          t.teardown(() => cluster.stopDaemon(1));
          const target = cluster.subnetOf(1)!.replace(/\.0\/24$/, '.2');
          const sender = cluster.subnetOf(2)!.replace(/\.0\/24$/, '.9');
          // h2 sends each kind; its spoofed packets carry an inner source of the target's subnet (not h2's).
          const spec = kinds.map((k): Datagram =>
            k.kind === 'ipv4'
              ? {
                  kind: 'ipv4',
                  prefix: k.prefix,
                  src: k.reason === 'spoofed_source' ? target : sender,
                  dst: target,
                  count: EACH,
                }
              : { kind: k.kind, count: EACH },
          );
          const before = await metricsOf(tb, tb.host(1), metrics);
          const lostBefore = await kernelDrops(tb, path);
          const fromHolder = await sendDatagrams(tb, tb.host(2), tb.hostIP(1), port, spec);
          const fromStranger = await sendDatagrams(tb, tb.bridgeNs, tb.hostIP(1), port, [
            { kind: 'ipv4', prefix: valid, src: sender, dst: target, count: EACH },
          ]);
          await sleep(300);
          const after = await metricsOf(tb, tb.host(1), metrics);
          const lost = (await kernelDrops(tb, path)) - lostBefore;
          const delta = (k: string): number => (after[k] ?? 0) - (before[k] ?? 0);
          const want = new Map<string, number>([['unknown_peer', EACH]]);
          for (const k of kinds) want.set(k.reason, (want.get(k.reason) ?? 0) + EACH);
          const sent = fromHolder.sent + fromStranger.sent;
          t.equal(sent, EACH * (kinds.length + 1), `the kernel took all ${sent} datagrams`);
          const got = Object.fromEntries([...want.keys()].map((k) => [k, delta(`drop_${k}`)]));
          t.comment(`drops ${JSON.stringify(got)}, kernel drops on the path ${lost}`);
          if (lost === 0) {
            for (const [reason, n] of want) t.equal(got[reason], n, `drop_${reason}: every one of the ${n} counted`);
          } else {
            const counted = Object.values(got).reduce((n, x) => n + x, 0);
            t.ok(counted + lost >= sent, `every datagram counted by the daemon (${counted}) or the kernel (${lost})`);
          }
          t.equal(delta('tun_tx_packets'), 0, 'nothing of it reached TUN');
        });
      }
    },
  );
}
