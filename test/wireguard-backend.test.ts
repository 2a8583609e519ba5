// Backend wireguard end to end on three namespace hosts, with a real etcd and real TUN devices.
//
//   bridge netns: etcd 198.18.<id>.254:2379
//   h1 ── h2 ── h3        each: weft daemon (TUN weft0, UDP 51820), its key file, cni0, pod .2;
//                         h1, h2 --tier=batch, h3 --tier=offload (sealed UDP_SEGMENT trains, opened UDP_GRO buffers)
//
// Checks: the lease carries flannel's BackendData and the key file its key (mode 0400); the TUN MTU leaves
// flannel's 80 bytes; all-pairs pod ping; each weft a router hop (TTL 1 expires at the sender's weft with ICMP time
// exceeded, TTL 2 at the receiver's kernel, replies arrive with 64 - 2); a TCP transfer each way verified by
// sha256; tcpdump on h2's underlay sees nothing but WireGuard messages, and not the pattern the pods' pings carry;
// after a restart of h1 (same key, same lease) traffic flows again through a new handshake; a flood of forged
// initiations (valid mac1, as anyone who read the lease can make) is counted (cookie replies under load, no
// handshake state) while a transfer continues.
// Bounded: pings of 2-5 probes, transfers of 20 MB, 2000 forged datagrams, a 10 s capture.
import { randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import t from 'tap';
import { ping } from '../testbed/traffic.js';
import { PublicKey } from '../src/wireguard/keys.js';
import { LABEL_MAC1, hash, mac } from '../src/wireguard/primitives.js';
import { clusterFor } from './helpers/cluster.js';
import { readPcap, tcpdumpListening } from './helpers/tcpdump.js';
import { metricsOf, pingMatrix, sendDatagrams, sha256Transfer } from './helpers/traffic.js';

const HOSTS = [1, 2, 3];
const PORT = 51820;
const HEALTHZ = 8471;
/** The bytes every capture-test ping carries ("WEFTWEFT..."); must never be seen on the underlay. */
const PATTERN = '5745465457454654';

const network = { Network: '10.5.0.0/16', SubnetLen: 24, Backend: { Type: 'wireguard' } };

t.test('wireguard backend across three namespace hosts', async (t) => {
  const cluster = await clusterFor(t, 3, network);
  // h3 on the offload tier: its segments sealed into UDP_SEGMENT trains, its UDP_GRO buffers opened and coalesced.
  const tier = (n: number) => (n === 3 ? '--tier=offload' : '--tier=batch');
  for (const n of HOSTS) await cluster.startDaemon(n, [tier(n), `--healthz-port=${HEALTHZ}`]);
  for (const n of HOSTS) await cluster.ensurePod(n);
  const tb = cluster.tb;
  const pod = (n: number) => cluster.pods.get(n)!;

  await t.test('lease, key file and MTU as flannel has them', async (t) => {
    const key = cluster.leaseKeyOf(1)!;
    const lease = JSON.parse((await cluster.etcdctl(['get', '--print-value-only', key])).trim()) as {
      BackendType: string;
      BackendData: { PublicKey: string; Port: number };
    };
    t.equal(lease.BackendType, 'wireguard');
    t.same(Object.keys(lease.BackendData), ['PublicKey', 'Port'], 'BackendData keys as flannel marshals them');
    t.equal(lease.BackendData.Port, PORT);
    const file = cluster.wgKeyFile(1);
    t.equal(statSync(file).mode & 0o777, 0o400, 'key file created with mode 0400');
    const text = readFileSync(file, 'utf8').trim();
    t.match(text, /^[A-Za-z0-9+/]{43}=$/, 'base64 as wg genkey writes it');
    t.not(lease.BackendData.PublicKey, text, 'the lease carries the public key, not the private one');
    const link = await tb.exec(tb.host(1), ['ip', '-j', 'link', 'show', 'weft0']);
    const mtu = (JSON.parse(link.stdout) as { mtu: number }[])[0]?.mtu;
    t.equal(mtu, 1500 - 80, 'TUN MTU = underlay MTU - 80');
    const status = await tb.exec(tb.host(1), [
      process.execPath,
      '-e',
      `require('node:http').get('http://127.0.0.1:${HEALTHZ}/status', (r) => r.pipe(process.stdout))`,
    ]);
    t.notOk(status.stdout.includes(text), '/status does not show the private key');
    t.notOk(readFileSync(cluster.daemons.get(1)!.logFile, 'utf8').includes(text), 'the log does not either');
  });

  await t.test('all pairs ping (after one handshake each)', async (t) => {
    // The first packet to a peer starts the handshake and is dropped (counted): warm each pair up once.
    for (const a of HOSTS) for (const b of HOSTS) if (a !== b) await ping(pod(a), pod(b).ip, { count: 1 });
    await pingMatrix(t, cluster, HOSTS);
    const m = await metricsOf(tb, tb.host(1), HEALTHZ);
    t.ok((m['wg_handshake_handshakes_completed'] ?? 0) + (m['wg_handshake_rx_initiation'] ?? 0) >= 2, 'handshakes');
    t.ok((m['wg_rx_packets'] ?? 0) > 0 && (m['wg_tx_packets'] ?? 0) > 0, 'transport messages both ways');
  });

  await t.test('a router: the TTL drops by one at each weft, time exceeded at the first', async (t) => {
    // Pings from the hosts themselves, so a packet enters weft0 with the TTL ping gave it. h1 and h2 seal in place
    // (batch), h3 seals segments (offload): each decrements before it seals, as the plain paths do before encap.
    const gw = (n: number) => cluster.subnetOf(n)!.replace(/\/\d+$/, '');
    const hop = async (from: number, to: number, ttl: number) => {
      const args = ['ping', '-n', '-c', '1', '-W', '2', '-t', String(ttl), pod(to).ip];
      return (await tb.exec(tb.host(from), args, { timeoutMs: 5000 })).stdout;
    };
    for (const [a, b] of [
      [1, 2],
      [1, 3],
      [3, 1],
    ] as const) {
      const before = await metricsOf(tb, tb.host(a), HEALTHZ);
      const first = await hop(a, b, 1);
      t.match(first, `From ${gw(a)} icmp_seq=1 Time to live exceeded`, `h${a} -> h${b}, TTL 1: expired at h${a}`);
      const second = await hop(a, b, 2);
      t.match(second, `From ${gw(b)} icmp_seq=1 Time to live exceeded`, `TTL 2: expired at h${b}'s kernel`);
      // The echo reply leaves pod h${b} with 64: h${b}'s kernel (cni0 -> weft0) and h${b}'s weft take one each.
      const reply = /ttl=(\d+)/.exec(await hop(a, b, 64))?.[1];
      t.equal(reply, '62', `h${b} -> h${a}: the reply arrives with TTL 62`);
      const after = await metricsOf(tb, tb.host(a), HEALTHZ);
      const delta = (k: string) => (after[k] ?? 0) - (before[k] ?? 0);
      t.equal(delta('drop_ttl_exceeded'), 1, `h${a}: one drop_ttl_exceeded`);
      t.equal(delta('icmp_sent'), 1, `h${a}: one ICMP time exceeded sent`);
    }
  });

  await t.test('TCP both ways (sha256)', async (t) => {
    for (const [a, b] of [
      [1, 2],
      [3, 1],
      [2, 3],
    ] as const) {
      const r = await sha256Transfer(tb, pod(a), pod(b), 20 << 20);
      t.equal(r.received, 20 << 20, `h${a} -> h${b}: every byte`);
      t.equal(r.receivedHash, r.sentHash, `h${a} -> h${b}: same sha256`);
    }
    const m3 = await metricsOf(tb, tb.host(3), HEALTHZ);
    t.ok((m3['udp_gso_sends'] ?? 0) > 0, `h3 sent sealed UDP_SEGMENT trains (${m3['udp_gso_sends']})`);
    t.ok((m3['gso_superpackets'] ?? 0) > 0, `h3 split super-packets before sealing (${m3['gso_superpackets']})`);
    t.ok((m3['gro_coalesced'] ?? 0) > 0, `h3 coalesced opened segments (${m3['gro_coalesced']})`);
    t.equal(m3['wg_bad_tag'] ?? 0, 0, 'no message failed to open on h3');
  });

  await t.test('the underlay carries only WireGuard messages', async (t) => {
    const h2 = tb.host(2);
    const dump = tb.spawn(h2, ['tcpdump', '-i', 'eth0', '-n', '-U', '-w', '-', 'ip and not tcp port 2379'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const stop = setTimeout(() => dump.kill('SIGTERM'), 10_000);
    const { done } = await tcpdumpListening(dump);
    const r = await tb.exec(pod(1), ['ping', '-n', '-c', '5', '-i', '0.2', '-s', '200', '-p', PATTERN, pod(2).ip]);
    const tcp = await sha256Transfer(tb, pod(2), pod(3), 2 << 20);
    dump.kill('SIGTERM');
    clearTimeout(stop);
    const { stdout } = await done;
    t.equal(r.code, 0, 'the pattern pings went through');
    t.equal(tcp.receivedHash, tcp.sentHash, 'a TCP transfer during the capture');
    const { linkType, records } = readPcap(stdout);
    t.equal(linkType, 1, 'Ethernet capture');
    const pattern = Buffer.from(PATTERN, 'hex');
    let wg = 0;
    const other: string[] = [];
    for (const f of records) {
      const ipOff = 14;
      const proto = f[ipOff + 9];
      const ihl = ((f[ipOff] ?? 0) & 15) * 4;
      const udp = ipOff + ihl;
      const payload = f.subarray(udp + 8);
      const ports = proto === 17 ? [f.readUInt16BE(udp), f.readUInt16BE(udp + 2)] : [];
      const type = payload[0] ?? 0;
      const len = f.readUInt16BE(ipOff + 2) - ihl - 8; // the UDP payload's length (a capture may cut it)
      const isWg =
        ports[0] === PORT &&
        ports[1] === PORT &&
        payload.readUIntBE(1, 3) === 0 &&
        ((type === 1 && len === 148) ||
          (type === 2 && len === 92) ||
          (type === 3 && len === 64) ||
          (type === 4 && len >= 32 && ((len - 32) % 16 === 0 || len - 32 === 1500 - 80)));
      if (isWg) wg++;
      else other.push(`proto ${proto} ports ${ports.join('>')} type ${type} len ${len}`);
      if (f.includes(pattern)) other.push('a frame carries the ping pattern in the clear');
    }
    t.ok(wg > 10, `WireGuard messages captured (${wg})`);
    t.same(other.slice(0, 5), [], 'nothing else on the underlay');
  });

  await t.test('h1 restarts: same key, a new handshake, traffic again', async (t) => {
    const keyBefore = readFileSync(cluster.wgKeyFile(1), 'utf8');
    await cluster.stopDaemon(1);
    await cluster.startDaemon(1, ['--tier=batch', `--healthz-port=${HEALTHZ}`]);
    t.equal(readFileSync(cluster.wgKeyFile(1), 'utf8'), keyBefore, 'the key file is reused');
    await ping(pod(2), pod(1).ip, { count: 1 }); // the old sessions are gone on h1: this starts a handshake
    const r = await ping(pod(2), pod(1).ip, { count: 3, timeoutSec: 3 });
    t.ok(r.ok, `h2 -> restarted h1 (${r.received}/${r.transmitted})`);
    const back = await ping(pod(1), pod(3).ip, { count: 3, timeoutSec: 3 });
    t.ok(back.ok, `restarted h1 -> h3 (${back.received}/${back.transmitted})`);
  });

  await t.test('forged initiations are counted while a transfer continues', async (t) => {
    const lease = JSON.parse((await cluster.etcdctl(['get', '--print-value-only', cluster.leaseKeyOf(1)!])).trim()) as {
      BackendData: { PublicKey: string };
    };
    const pub = PublicKey.fromBase64(lease.BackendData.PublicKey)!;
    const mac1Key = hash(LABEL_MAC1, pub.bytes);
    // 100 distinct initiations (random sender, ephemeral, static, timestamp) with a valid mac1 and no mac2: they pass
    // the cheap check, so only the load detector and the cookie keep them from costing DH work.
    const msgs: string[] = [];
    for (let i = 0; i < 100; i++) {
      const m = Buffer.alloc(148);
      m[0] = 1;
      randomBytes(112).copy(m, 4);
      mac(mac1Key, m.subarray(0, 116)).copy(m, 116);
      msgs.push(m.toString('hex'));
    }
    const before = await metricsOf(tb, tb.host(1), HEALTHZ);
    const flow = sha256Transfer(tb, pod(2), pod(1), 20 << 20);
    await sendDatagrams(
      tb,
      tb.bridgeNs,
      tb.hostIP(1),
      PORT,
      msgs.map((hex) => ({ kind: 'raw' as const, hex, count: 20 })),
    );
    const r = await flow;
    t.equal(r.receivedHash, r.sentHash, 'the transfer beside the flood verifies');
    const after = await metricsOf(tb, tb.host(1), HEALTHZ);
    const delta = (k: string) => (after[k] ?? 0) - (before[k] ?? 0);
    const judged =
      delta('wg_handshake_rx_cookie_sent') +
      delta('wg_handshake_rx_rate_limited') +
      delta('wg_handshake_rx_invalid') +
      delta('wg_handshake_rx_unknown_peer');
    t.ok(judged >= 1900, `forged initiations judged and counted (${judged} of 2000)`);
    t.ok(
      delta('wg_handshake_rx_cookie_sent') > 0,
      `under load, answered with cookies (${delta('wg_handshake_rx_cookie_sent')})`,
    );
    t.equal(delta('wg_handshake_rx_initiation'), 0, 'none became a handshake');
  });
});
