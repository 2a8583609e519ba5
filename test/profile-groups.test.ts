// The perf grouping of `weft bench --profile` (bench/suite/profile-groups.ts) on a recorded `perf script` file:
// test/fixtures/perf-script-sample.txt holds 65 samples of a real `perf record -a -e cpu-clock -g -F 997` on this
// kind of machine while two weft daemons (pids 11890 and 11981, dgram tier) and iperf3 moved traffic, two samples
// per (process class, group) picked from ~3000. Pure parsing and arithmetic: no perf, no root needed.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  GROUPS,
  GROUP_ORDER,
  IDLE,
  ProfileAggregate,
  groupOf,
  groupOfSymbol,
  parsePerfScript,
  processClass,
  summarizeProfile,
  type ClassifyContext,
  type Frame,
} from '../bench/suite/profile-groups.js';
import { foldedFileName, interpolate } from '../bench/suite/profile.js';

const FIXTURE = readFileSync(join(import.meta.dirname, 'fixtures', 'perf-script-sample.txt'), 'utf8');
const CTX: ClassifyContext = { forwarderPids: new Set([11890, 11981]), appPids: new Set() };

const k = (sym: string): Frame => ({ sym, dso: '[kernel.kallsyms]', kernel: true });
const u = (sym: string, dso = '/usr/bin/node'): Frame => ({ sym, dso, kernel: false });

t.test('the table names the kernel symbols of each kind of work', async (t) => {
  const cases: [string, string | null][] = [
    ['_copy_to_iter', 'copy'],
    ['_copy_from_iter', 'copy'],
    ['copy_user_generic', 'copy'],
    ['rep_movs_alternative', 'copy'],
    ['csum_partial_copy_generic', 'copy'],
    ['skb_copy_datagram_iter', 'copy'],
    ['__check_object_size', 'copy'],
    ['csum_partial', 'csum'],
    ['do_csum', 'csum'],
    ['__skb_checksum_complete', 'csum'],
    ['entry_SYSCALL_64_after_hwframe', 'syscall'],
    ['do_syscall_64', 'syscall'],
    ['syscall_exit_to_user_mode', 'syscall'],
    ['__x64_sys_sendmmsg', 'syscall'],
    ['__sys_recvmmsg', 'syscall'],
    ['tun_get_user', 'tun'],
    ['tun_chr_write_iter', 'tun'],
    ['udp_sendmsg', 'udp'],
    ['__udp4_lib_rcv', 'udp'],
    ['vxlan_rcv', 'vxlan'],
    ['vxlan_xmit_one', 'vxlan'],
    ['udp_tunnel_xmit_skb', 'vxlan'],
    ['udp_gro_receive', 'gso-gro'],
    ['__udp_gso_segment', 'gso-gro'],
    ['napi_gro_receive', 'gso-gro'],
    ['skb_segment', 'gso-gro'],
    ['tcp_sendmsg_locked', 'tcp'],
    ['tcp_v4_rcv', 'tcp'],
    ['net_rx_action', 'softirq'],
    ['__netif_receive_skb_one_core', 'softirq'],
    ['process_backlog', 'softirq'],
    ['ip_finish_output2', 'ip'],
    ['veth_xmit', 'ip'],
    ['kmem_cache_alloc_node_noprof', 'mem'],
    ['do_select', 'sched'],
    ['pvm_safe_halt_hc', 'idle'],
    ['pv_native_safe_halt', 'idle'],
    ['default_idle', 'idle'],
    ['cpuidle_enter_state', 'idle'],
    // substrings that must not match: "gro" inside cgroup, "tun" inside a longer word
    ['cgroup_rstat_updated', null],
    ['_raw_spin_unlock_irqrestore', null],
    ['pvm_irq_enable', null],
  ];
  for (const [sym, want] of cases) t.equal(groupOfSymbol(sym), want, `${sym} -> ${want}`);
  t.ok(
    GROUPS.every((g) => GROUP_ORDER.includes(g.id)),
    'every table group has a place in the report order',
  );
});

t.test('the rule: leaf first, walk up the kernel frames, user leaves by process', async (t) => {
  // a lock release leaf belongs to the work that called it
  t.equal(groupOf([k('_raw_spin_unlock_irqrestore'), k('tcp_write_xmit'), k('tcp_sendmsg')], 'app', 1), 'tcp');
  // the copy primitive under a TCP receive is a copy, not TCP
  t.equal(groupOf([k('rep_movs_alternative'), k('_copy_to_iter'), k('tcp_recvmsg')], 'app', 1), 'copy');
  // softirq work that interrupted the idle task is work, not idle
  t.equal(
    groupOf(
      [k('vxlan_rcv'), k('udp_queue_rcv_one_skb'), k('net_rx_action'), k('handle_softirqs'), k('default_idle')],
      'kernel',
      0,
    ),
    'vxlan',
  );
  t.equal(groupOf([k('pv_native_safe_halt'), k('default_idle'), k('do_idle')], 'kernel', 0), IDLE);
  // user leaves: the forwarder's are weft user, anyone else's user-other; kernel frames above them do not matter
  t.equal(groupOf([u('[unknown]', '[unknown]'), u('uv_run')], 'forwarder', 5), 'forwarder-user');
  t.equal(groupOf([u('iperf_recv', '/usr/lib/libiperf.so.0')], 'app', 6), 'user-other');
  // the walk stops at the user boundary: no kernel group above a user frame
  t.equal(
    groupOf([k('some_unknown_fn'), u('recvmmsg', 'libc.so.6'), k('tcp_sendmsg')], 'forwarder', 5),
    'kernel-other',
  );
  t.equal(processClass({ comm: 'node', pid: 11890 }, CTX), 'forwarder');
  t.equal(processClass({ comm: 'iperf3', pid: 7 }, CTX), 'app', 'no app pids known: iperf3 by name');
  t.equal(
    processClass({ comm: 'iperf3', pid: 7 }, { ...CTX, appPids: new Set([8]) }),
    'other',
    'app pids known: another iperf3 is other load',
  );
  t.equal(processClass({ comm: 'ksoftirqd/1', pid: 22 }, CTX), 'kernel');
  t.equal(processClass({ comm: 'swapper', pid: 0 }, CTX), 'kernel');
  t.equal(processClass({ comm: 'etcd', pid: 900 }, CTX), 'other');
});

t.test('the recorded perf script file parses and groups', async (t) => {
  const { samples, badLines } = parsePerfScript(FIXTURE);
  t.equal(samples.length, 65, 'every sample read');
  t.equal(badLines, 0, 'no unreadable line');
  t.ok(
    samples.every((s) => s.period === 1003009),
    'cpu-clock at 997 Hz: one period of 1003009 ns',
  );
  t.ok(
    samples.every((s) => s.frames.length > 0),
    'every sample has its call chain',
  );
  const agg = new ProfileAggregate(CTX);
  for (const s of samples) agg.add(s);
  const got: Record<string, number> = {};
  for (const [cls, groups] of Object.entries(agg.ns)) {
    for (const [g, ns] of Object.entries(groups)) got[`${cls}/${g}`] = Math.round(ns / 1003009);
  }
  // The file was cut to (at most) two samples per class and group, so this is its exact content.
  t.same(got, {
    'forwarder/forwarder-user': 2,
    'forwarder/ip': 2,
    'forwarder/copy': 2,
    'forwarder/syscall': 2,
    'forwarder/mem': 2,
    'forwarder/udp': 2,
    'forwarder/softirq': 2,
    'forwarder/sched': 2,
    'forwarder/mm': 2,
    'forwarder/tun': 2,
    'forwarder/csum': 1,
    'app/ip': 2,
    'app/mem': 2,
    'app/sched': 2,
    'app/udp': 2,
    'app/copy': 2,
    'app/user-other': 2,
    'app/tcp': 2,
    'app/syscall': 2,
    'app/softirq': 2,
    'app/tun': 2,
    'app/csum': 2,
    'kernel/csum': 1,
    'kernel/sched': 2,
    'kernel/kernel-other': 2,
    'kernel/mem': 1,
    'kernel/idle': 2,
    'other/syscall': 2,
    'other/sched': 2,
    'other/user-other': 2,
    'other/mm': 2,
    'other/mem': 2,
    'other/softirq': 2,
    'other/copy': 2,
  });
  t.ok(
    agg.windowSeconds() > 0 && agg.windowSeconds() < 2,
    `the window spans the recording (${agg.windowSeconds().toFixed(3)} s)`,
  );

  // Per GB: pretend the window moved 0.1 GB.
  const p = summarizeProfile(agg, 1e8, 'iperf3-server-rchar', 1, 'x.folded');
  t.ok(p.ok, 'a profile with samples and bytes is ok');
  const sec = 1003009 / 1e9;
  t.ok(
    Math.abs((p.pathSPerGb['copy'] ?? 0) - (4 * sec) / 0.1) < 1e-9,
    'copies: 4 samples of forwarder + iperf3 per 0.1 GB',
  );
  t.ok(Math.abs(p.copySyscallSPerGb.forwarder - (4 * sec) / 0.1) < 1e-9, 'forwarder copies + syscalls');
  t.ok(Math.abs(p.copySyscallSPerGb.path - (8 * sec) / 0.1) < 1e-9, 'path copies + syscalls leave other processes out');
  t.equal(p.pathSPerGb[IDLE], undefined, 'idle is not work');
  t.ok(Math.abs(p.idleShare - 2 / 65) < 1e-9, 'idle share of all samples');
  t.ok(p.top.length > 0 && p.top.every((x) => x.group !== IDLE), 'top leaves without idle');

  const folded = agg.foldedText().trim().split('\n');
  t.ok(
    folded.every((l) => /^\S+ \d+$/.test(l)),
    'folded: one "frames count" per line, no spaces in frames',
  );
  t.equal(
    folded.reduce((a, l) => a + Number(l.split(' ').pop()), 0),
    65,
    'folded counts add up to the samples',
  );
  t.ok(
    folded.some((l) => l.startsWith('node[forwarder];') && l.includes('_[k]')),
    'daemon stacks rooted at node[forwarder], kernel frames marked',
  );
});

t.test('parser edge cases', async (t) => {
  const text = [
    'V8 DefaultWorke  13057/13061 4412.000001:    1003009 cpu-clock: ',
    '\t           c6a14 [unknown] (/memfd:sealed-91173221a7ea (deleted))',
    '\tffffffff81000130 ([kernel.kallsyms])',
    '\t          1e33263 v8::internal::(anonymous namespace)::Foo (/usr/bin/node)',
    '',
    'kworker/1:1-vir 15821/15821 4412.000002:    1003009 cpu-clock: ',
    '\tffffffff821f4dab pv_native_safe_halt+0x1b ([kernel.kallsyms])',
    '',
    'garbage that is not perf output',
  ].join('\n');
  const { samples, badLines } = parsePerfScript(text);
  t.equal(samples.length, 2);
  t.equal(samples[0]?.comm, 'V8 DefaultWorke', 'comm with a space');
  t.equal(samples[0]?.frames[0]?.dso, '/memfd:sealed-91173221a7ea (deleted)', 'dso with parentheses');
  t.equal(samples[0]?.frames[1]?.sym, '[unknown]', 'a frame without a symbol');
  t.equal(samples[0]?.frames[2]?.sym, 'v8::internal::(anonymous namespace)::Foo');
  t.equal(samples[1]?.frames[0]?.sym, 'pv_native_safe_halt', 'offset stripped');
  t.equal(badLines, 1, 'the garbage line is counted, not thrown');
  const empty = summarizeProfile(new ProfileAggregate(CTX), 0, 'iperf3-average-rate', 1, null);
  t.equal(empty.ok, false, 'no samples: not ok');
  t.match(empty.error, /no samples/);
});

t.test('helpers', async (t) => {
  t.equal(foldedFileName('batch/udp'), 'batch-udp.folded');
  t.equal(foldedFileName('kernel-vxlan'), 'kernel-vxlan.folded');
  const s: [number, number][] = [
    [10, 100],
    [11, 300],
    [12, 300],
  ];
  t.equal(interpolate(s, 10.5), 200);
  t.equal(interpolate(s, 9), 100, 'clamped before');
  t.equal(interpolate(s, 13), 300, 'clamped after');
  t.equal(interpolate([], 1), null);
});
