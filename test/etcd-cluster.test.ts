// weft on a real 3-member etcd cluster: members die under traffic and weft carries on through the others.
// The scenario is bench/scale/failover.ts (also behind `weft scale --failover`); the topology is drawn there:
//
//   bridge netns (etcdctl) ── h1, h2: weft daemon (udp, lease TTL 10 s) + pod each, a ping loop pod h1 -> pod h2
//                          ── h3, h4, h5: one etcd member each on its underlay IP
//
//   kill -9 the leader, start it again, kill -9 the member h1's daemon talks to, start it again; after each:
//   renewals go on through the others (same key, same create revision, TTL refreshed), a new peer lease reaches both
//   daemons, the pods ping, nothing is re-acquired, and every echo request of the ping loop is answered.
import t from 'tap';
import { runFailover } from '../bench/scale/failover.js';

t.test('weft keeps working when etcd members die', { timeout: 240_000 }, async (t) => {
  const r = await runFailover({ hosts: 2, ttlSeconds: 10 });
  t.same(r.errors, [], 'the scenario ran every step');
  t.same(
    r.events.map((e) => e.event),
    ['leader killed', 'leader back', 'member in use killed', 'member in use back'],
    'all four events',
  );
  for (const e of r.events) {
    t.comment(
      `${e.event} (${e.member}${e.newLeader ? ` -> ${e.newLeader}` : ''}): renewed after ${e.firstRenewalAfterS} s, ` +
        `renewal gap ${e.renewalGapS} s, new peer seen after ${e.peerSeenS} s`,
    );
    t.not(e.firstRenewalAfterS, null, `${e.event}: every lease renewed through the other members (TTL refreshed)`);
    t.ok(e.sameKeys, `${e.event}: same keys, same create revisions (never re-created)`);
    t.not(e.peerSeenS, null, `${e.event}: the peer watches delivered a new lease to every daemon`);
    t.ok(e.pingOk, `${e.event}: pods still reach each other`);
    t.ok(e.daemonsRunning, `${e.event}: the daemons still run`);
    if (e.event === 'leader killed') t.not(e.newLeader, e.member, 'another member took over as leader');
  }
  t.ok(r.ping.transmitted >= 20, `the ping loop ran through the failures (${r.ping.transmitted} requests)`);
  // Forwarding does not depend on etcd: every request sent until the loop stopped is answered (a late reply is no
  // loss; each had seconds after the stop).
  t.equal(r.ping.received, r.ping.transmitted, 'every echo request of the ping loop was answered');
  t.same(r.acquisitions, [1, 1], 'each daemon acquired once, never again');
  t.same(r.losses, [0, 0], 'no daemon lost its lease');
});
