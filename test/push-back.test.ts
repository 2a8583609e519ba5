// Push-back with two underlay sockets: while one of a queue's sockets (IPv4 or IPv6 underlay) is full and the other
// idle, the loop waits for the full one only, instead of waking for the idle one (always writable) on every turn.
//
//   bridge netns: etcd 198.18.<id>.254:2379
//   h1 ── h2     dual-stack underlay (198.18.<id>.N + fd77:6566:74:<id>::N), weft daemon --tier=batch (then
//                --tier=offload), udp encap, one IPv4 and one IPv6 socket; pods with an IPv4 and an IPv6 address
//   h1's eth0: a token bucket (tbf) of 8 kbit/s with a 30 MB backlog, so what h1 sends waits in the qdisc, still
//   charged to its socket (about one datagram a second leaves: far from the half-empty buffer that is writable)
//
// Batch tier per family, offload tier over IPv4 (the same PollPair): pod h1 sends 20000 datagrams of 1400 bytes to
// pod h2 over that family; h1's socket of that family fills up (udp_send_refused) and h1 stops reading its TUN. In a
// 1 s window the loop must not wake for a writable socket (poll_writable_wakeups) and reads nothing from TUN; once
// the qdisc is gone the full socket drains, wakes the loop, and pings pass again.
// Bounded: 3 x 20000 datagrams, a 1 s window each, the qdisc removed also when a check fails.
import t from 'tap';
import { ping } from '../testbed/traffic.js';
import type { Pod } from '../testbed/hosts.js';
import { clusterFor, dualStackConfig } from './helpers/cluster.js';
import { metricsOf, sendDatagrams } from './helpers/traffic.js';
import { sleep, until } from './helpers/wait.js';

const HEALTHZ = 8471;
const BLAST = 20_000;
const PAYLOAD = 'ab'.repeat(1400);

t.test('one socket full, the other idle: the loop waits without spinning', async (t) => {
  const cluster = await clusterFor(t, 2, dualStackConfig('udp'));
  const tb = cluster.tb;
  const h1 = tb.host(1);
  const pod = (n: number) => cluster.pods.get(n) as Pod;
  const reach = (dst: string) => until(async () => (await ping(pod(1), dst, { count: 1 })).ok, 10_000, 200);
  const clearQdisc = () => tb.exec(h1, ['tc', 'qdisc', 'del', 'dev', 'eth0', 'root'], { timeoutMs: 5000 });

  for (const [tier, family] of [
    ['batch', 4],
    ['batch', 6],
    ['offload', 4],
  ] as const) {
    await t.test(`${tier}: IPv${family} socket full, IPv${family === 4 ? 6 : 4} idle`, async (t) => {
      if (family === 4) {
        for (const n of [1, 2]) await cluster.stopDaemon(n);
        for (const n of [1, 2]) await cluster.startDaemon(n, [`--tier=${tier}`, `--healthz-port=${HEALTHZ}`]);
        for (const n of [1, 2]) await cluster.ensurePod(n);
      }
      const dst = family === 4 ? pod(2).ip : pod(2).ip6;
      if (dst === undefined) return t.fail('pod h2 has an IPv6 address');
      t.ok(await reach(dst), `pod h1 reaches pod h2 over IPv${family} first`);
      const tbf = ['tbf', 'rate', '8kbit', 'burst', '4000', 'limit', '30000000'];
      const add = await tb.exec(h1, ['tc', 'qdisc', 'add', 'dev', 'eth0', 'root', ...tbf], { timeoutMs: 5000 });
      t.equal(add.code, 0, 'the qdisc holds what h1 sends');
      let wokeBefore: number | undefined;
      try {
        const before = await metricsOf(tb, h1, HEALTHZ);
        await sendDatagrams(tb, pod(1), dst, 9, [{ kind: 'raw', hex: PAYLOAD, count: BLAST }]);
        const a = await metricsOf(tb, h1, HEALTHZ);
        const refused = (a['udp_send_refused'] ?? 0) - (before['udp_send_refused'] ?? 0);
        t.ok(refused > 0, `the IPv${family} socket filled up (${refused} sends refused)`);
        await sleep(1000); // the window: a spinning loop wakes thousands of times in it
        const b = await metricsOf(tb, h1, HEALTHZ);
        const inWindow = (k: string) => (b[k] ?? 0) - (a[k] ?? 0);
        wokeBefore = b['poll_writable_wakeups'] ?? 0;
        t.equal(inWindow('poll_writable_wakeups'), 0, 'no wake-up for a writable socket while the full one stays full');
        t.equal(inWindow('tun_rx_packets'), 0, 'TUN reads stay off (pushed back) all the window');
      } finally {
        await clearQdisc();
      }
      t.ok(await reach(dst), `the queued datagrams gone, pings pass over IPv${family} again`);
      const c = await metricsOf(tb, h1, HEALTHZ);
      t.ok((c['poll_writable_wakeups'] ?? 0) > (wokeBefore ?? Infinity), 'the drained socket woke the loop');
    });
  }
});
