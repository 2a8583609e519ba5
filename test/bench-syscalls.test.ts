// The bench's syscall count (bench/suite/syscalls.ts) and its report section, from perf's own output format, and
// the ss parse behind the socket-buffer column (bench/suite/sockbuf.ts). The real count against weft's counters is
// checked in test/bench-smoke.test.ts.
import t from 'tap';
import { ioSyscalls, parsePerfStat } from '../bench/suite/syscalls.js';
import { parseSsSockets } from '../bench/suite/sockbuf.js';
import { renderSyscallSection } from '../bench/suite/syscall-report.js';
import type { BenchResult, PathResult, Sample } from '../bench/suite/schema.js';

// `perf stat -x, -o file` as perf 6.x writes it: count,unit,event,run time,percentage,...
const PERF_STAT = `# started on Tue Dec  1 19:20:00 2026

30100,,raw_syscalls:sys_enter,2003201466,100.00,,
10000,,syscalls:sys_enter_read,2003201466,100.00,,
9800,,syscalls:sys_enter_writev,2003201466,100.00,,
300,,syscalls:sys_enter_sendmmsg,2003201466,100.00,,
310,,syscalls:sys_enter_recvmmsg,2003201466,100.00,,
9000,,syscalls:sys_enter_epoll_pwait,2003201466,100.00,,
0,,syscalls:sys_enter_futex,2003201466,100.00,,
<not counted>,,syscalls:sys_enter_poll,0,100.00,,
`;

t.test('parsePerfStat: total, kinds, and the rest as other', async (t) => {
  const c = parsePerfStat(PERF_STAT);
  t.ok(c);
  t.equal(c!.total, 30100);
  t.same(c!.byKind, { read: 10000, writev: 9800, sendmmsg: 300, recvmmsg: 310, epoll_pwait: 9000, other: 690 });
  t.equal(ioSyscalls(c!), 20410, 'read + writev + sendmmsg + recvmmsg');
  t.equal(parsePerfStat('garbage\n'), null, 'no total: null, not zeros');
});

t.test('parseSsSockets: the local address and sk_rcvbuf/sk_sndbuf of each socket', async (t) => {
  const ss =
    'UNCONN 0      0      198.18.3.1:8285 0.0.0.0:*\n\t skmem:(r0,rb16777216,t0,tb16777216,f0,w0,o0,bl0,d0)\n' +
    'UNCONN 0      0         0.0.0.0:8472 0.0.0.0:*\n\t skmem:(r0,rb212992,t0,tb212992,f0,w0,o0,bl0,d0)\n';
  t.same(parseSsSockets(ss), [
    { local: '198.18.3.1:8285', rcvbuf: 16777216, sndbuf: 16777216 },
    { local: '0.0.0.0:8472', rcvbuf: 212992, sndbuf: 212992 },
  ]);
});

t.test("the report shows perf's count beside weft's counters, per TUN packet and per super-packet", async (t) => {
  const sample: Sample = {
    test: 'tcp1',
    repeat: 1,
    seconds: 2,
    ok: true,
    values: {},
    raw: { received_bytes: 1e9 },
    counters: null,
    syscalls: parsePerfStat(PERF_STAT)!,
  };
  sample.counters = {
    daemonCpuSeconds: 1,
    kernelCpuSeconds: 1,
    userCpuSeconds: 1,
    datapath: { tun_rx_packets: 10000, gso_superpackets: 6000 },
    hostRcvbufErrors: 0,
    endpointRcvbufErrors: 0,
    daemonRssBytes: null,
  };
  const s = (median: number): { median: number; min: number; max: number; spread: number; n: number } => ({
    median,
    min: median,
    max: median,
    spread: 0,
    n: 1,
  });
  const path: PathResult = {
    name: 'offload/udp',
    title: '',
    kind: 'weft-userspace',
    status: 'ok',
    setupSeconds: 1,
    testbed: 1,
    loadAvg1: null,
    mtu: 1472,
    samples: [sample],
    summary: {
      syscalls_per_packet: s(2.04),
      perf_io_syscalls_per_packet: s(2.041),
      perf_syscalls_per_packet: s(3.01),
      syscalls_per_superpacket: s(3.4),
      perf_syscalls_per_superpacket: s(5.02),
    },
    ratios: {},
  };
  const md = renderSyscallSection({ paths: [path] } as unknown as BenchResult);
  t.match(md, /## Syscalls, counted/);
  t.match(
    md,
    /\| offload\/udp \| 2\.04 \| 2\.04 \| 3\.01 \| 3\.40 \| 5\.02 \|/,
    'counters, perf I/O, perf all, per super',
  );
  t.match(md, /read 1\.00, writev 0\.98, epoll_pwait 0\.90/, 'the largest kinds per TUN packet');
  t.equal(renderSyscallSection({ paths: [] } as unknown as BenchResult), '', 'nothing counted: no section');
});
