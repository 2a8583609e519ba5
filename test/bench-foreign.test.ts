// The bench's foreign-load accounting (bench/suite/foreign.ts) and what the run does with it:
//   1. foreignBetween on made-up /proc snapshots: the testbed, its reaped children and kernel helpers are not
//      foreign; another process is, by its own time; a process that starts and ends inside the window shows in the
//      residual of /proc/stat.
//   2. A real path (underlay: h1 ── bridge ── h2, no daemons) with a CPU burner beside every test: a busy loop
//      outside the testbed (double-forked, so no testbed process is its parent), bounded by `timeout` to 4 s.
//      Every test must run again and end marked disturbed, and the report must say so. (On a shared machine other
//      load may disturb the tests too; who is named is checked with made-up snapshots in 1, not here.)
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { foreignBetween, isDisturbed, parseTaskStat, type LoadSnapshot } from '../bench/suite/foreign.js';
import { runBench } from '../bench/suite/runner.js';
import { TEST_KINDS } from '../bench/suite/schema.js';

const NS = 4026530000;
const BENCH = 500;

interface T {
  pid: number;
  ppid: number;
  comm: string;
  own: number;
  children?: number;
  netns?: number | null;
}

function snap(at: number, busy: number, irqSoftirq: number, tasks: T[]): LoadSnapshot {
  return {
    at,
    busy,
    irqSoftirq,
    tasks: new Map(
      tasks.map((x) => [
        x.pid,
        { ppid: x.ppid, comm: x.comm, own: x.own, children: x.children ?? 0, netns: x.netns ?? null },
      ]),
    ),
  };
}

const scope = { netns: new Set([NS]), rootPid: BENCH };
const base: T[] = [
  { pid: 1, ppid: 0, comm: 'init', own: 1 },
  { pid: 2, ppid: 0, comm: 'kthreadd', own: 0 },
  { pid: 20, ppid: 2, comm: 'ksoftirqd/0', own: 5 },
  { pid: BENCH, ppid: 1, comm: 'node', own: 10 },
  { pid: 600, ppid: BENCH, comm: 'weft', own: 3, netns: NS },
  { pid: 700, ppid: 1, comm: 'fuzz_gro', own: 100 },
];

t.test('the testbed, its children and the kernel helpers are not foreign; other processes are', async (t) => {
  const a = snap(0, 1000, 100, base);
  // 2 s on 2 CPUs: the daemon 1.5 s, ksoftirqd 0.3 s, the bench 0.2 s, irq+softirq 0.5 s, the fuzzer 1 s
  const b = snap(2, 1003.5, 100.5, [
    ...base.filter((x) => ![20, BENCH, 600, 700].includes(x.pid)),
    { pid: 20, ppid: 2, comm: 'ksoftirqd/0', own: 5.3 },
    { pid: BENCH, ppid: 1, comm: 'node', own: 10.2 },
    { pid: 600, ppid: BENCH, comm: 'weft', own: 4.5, netns: NS },
    { pid: 700, ppid: 1, comm: 'fuzz_gro', own: 101 },
  ]);
  const f = foreignBetween(a, b, scope, 2);
  t.equal(f.testbed.toFixed(2), '1.70', "the daemon and the bench's own time");
  t.equal(f.kernelThreads.toFixed(2), '0.30', 'ksoftirqd');
  t.equal(f.direct.toFixed(2), '1.00', 'the fuzzer');
  t.equal(f.residual.toFixed(2), '1.00', 'busy - testbed - kernel threads - irq/softirq');
  t.equal(f.pct.toFixed(1), '25.0', 'a quarter of two CPUs for two seconds');
  t.match(f.top[0], /^fuzz_gro 700: 1\.00 s$/, 'names who it was');
  t.ok(isDisturbed(f), 'over 5 %');
});

t.test('a testbed child reaped inside the window counts as testbed, not twice', async (t) => {
  const child = { pid: 610, ppid: 600, comm: 'ip', own: 0.4, netns: NS };
  const a = snap(0, 1000, 100, [...base, child]);
  // the child used 0.1 s more and was reaped: the daemon's cutime now holds its 0.5 s
  const b = snap(1, 1000.6, 100, [
    ...base.filter((x) => x.pid !== 600),
    { pid: 600, ppid: BENCH, comm: 'weft', own: 3.5, children: 0.5, netns: NS },
  ]);
  const f = foreignBetween(a, b, scope, 2);
  t.equal(f.testbed.toFixed(2), '0.60', 'daemon 0.5 + the child 0.1 inside the window');
  t.equal(f.seconds.toFixed(2), '0.00', 'nothing foreign');
  t.notOk(isDisturbed(f));
});

t.test('a process that starts and ends inside the window is caught by the residual', async (t) => {
  const a = snap(0, 1000, 100, base);
  // a compiler run reaped by init: invisible in both snapshots, 0.8 s of /proc/stat's busy time
  const b = snap(1, 1000.8 + 0.1, 100, [
    ...base.filter((x) => x.pid !== 600),
    { pid: 600, ppid: BENCH, comm: 'weft', own: 3.1, netns: NS },
  ]);
  const f = foreignBetween(a, b, scope, 2);
  t.equal(f.direct, 0, 'no process shows it');
  t.equal(f.residual.toFixed(2), '0.80', 'the residual does');
  t.equal(f.pct.toFixed(1), '40.0');
});

t.test("a shell reaping a long-lived child does not count the child's whole life", async (t) => {
  const a = snap(0, 1000, 100, [...base, { pid: 800, ppid: 1, comm: 'bash', own: 0 }]);
  const b = snap(1, 1000, 100, [...base, { pid: 800, ppid: 1, comm: 'bash', own: 0, children: 50 }]);
  const f = foreignBetween(a, b, scope, 2);
  t.equal(f.seconds, 0, "other processes count by their own time; cutime is a child's whole life");
});

t.test('parseTaskStat reads a comm with spaces and parentheses', async (t) => {
  const stat = '42 (a (b) c) S 7 42 42 0 -1 4194560 0 0 0 0 150 50 20 10 20 0 1 0 1 0 0';
  t.same(parseTaskStat(stat), { ppid: 7, comm: 'a (b) c', own: 2, children: 0.3 });
  t.equal(parseTaskStat('garbage'), null);
});

t.test('a CPU burner beside a real path marks every test disturbed after its retry', async (t) => {
  const out = mkdtempSync(join(tmpdir(), 'weft-bench-foreign-'));
  t.teardown(() => rmSync(out, { recursive: true, force: true }));
  let burners = 0;
  const { result } = await runBench({
    only: ['underlay'],
    seconds: 1,
    repeats: 1,
    retries: 1,
    profile: false,
    progress: false,
    socketBuffers: 'os',
    outDir: out,
    beforeTest: () => {
      // the outer shell exits at once, so the loop's parent is init: outside the testbed; timeout bounds it
      burners++;
      spawn('sh', ['-c', 'timeout 4 sh -c "while :; do :; done" >/dev/null 2>&1 &'], { stdio: 'ignore' }).unref();
    },
  });
  const p = result.paths[0]!;
  t.equal(p.status, 'ok', 'the path ran');
  t.equal(p.samples.length, TEST_KINDS.length, 'one kept sample per test');
  t.equal(burners, 2 * TEST_KINDS.length, 'every test ran twice (a burner per attempt)');
  for (const s of p.samples) {
    t.equal(s.attempts, 2, `${s.test}: run again once`);
    t.equal(s.disturbed, true, `${s.test}: marked disturbed`);
    t.ok((s.counters?.foreign?.pct ?? 0) > 5, `${s.test}: foreign CPU over 5 %`);
    t.equal(s.retriedForeignPct?.length, 1, `${s.test}: the first attempt's foreign CPU is kept`);
  }
  const report = readFileSync(join(out, 'report.md'), 'utf8');
  t.match(report, /## Foreign load and spread/, 'report.md has the section');
  t.match(report, /5 test\(s\) of this run are disturbed/, 'and counts the disturbed tests');
  // the burners end by themselves within 4 s; wait them out so the next test file runs on a quieter machine
  await new Promise((r) => setTimeout(r, 4_000));
});
