// Foreign load: the CPU time spent during a test by anything that is not the testbed. A test with more than
// DISTURBED_PCT of the machine's CPU going elsewhere is repeated, and marked disturbed if every attempt was.
//
// The testbed is every process in the run's network namespaces (w<id>-*: etcd, the daemons or a peer's, iperf3, the
// ping-pong), the bench's own process and its descendants (ip, nsenter, perf), and the kernel threads that do their
// packet work (ksoftirqd, kworker). Two estimates of the rest, the larger one counts:
//   direct    the utime+stime deltas of every other process seen at the end of the test (/proc/<pid>/stat); exact
//             for load that runs across the test, blind to a process that starts and ends inside it (a compiler
//             run reaped by a shell that is not watched).
//   residual  /proc/stat's busy time minus the testbed's processes, the kernel threads and all irq+softirq time:
//             catches the short-lived ones. This kernel accounts CPU by tick without IRQ_TIME_ACCOUNTING, so softirq
//             ticks land both in the running task's stime and in /proc/stat's softirq column: the residual subtracts
//             the testbed's softirq twice and is a lower bound (it never accuses the testbed of being foreign).
import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { cpus } from 'node:os';
import { CLK_TCK } from './probes.js';

/** Foreign CPU above this share of the machine (all CPUs over the test's wall time) disturbs a test. */
export const DISTURBED_PCT = 5;

/** One process as /proc shows it: CPU seconds of its own threads and of its reaped children. */
interface Task {
  ppid: number;
  comm: string;
  own: number;
  children: number;
  /** Inode of its network namespace; null for kernel threads or when unreadable. */
  netns: number | null;
}

export interface LoadSnapshot {
  /** Monotonic seconds when taken. */
  at: number;
  /** /proc/stat busy seconds (everything but idle and iowait), and irq + softirq within it. */
  busy: number;
  irqSoftirq: number;
  tasks: Map<number, Task>;
}

/** What counts as the testbed. */
export interface LoadScope {
  /** Network namespace inodes of the run (stat /run/netns/<name>). */
  netns: ReadonlySet<number>;
  /** The bench's process: it and its descendants are the testbed. */
  rootPid: number;
}

export interface ForeignLoad {
  /** Foreign CPU seconds: max(direct, residual). */
  seconds: number;
  /** The same as a percentage of the machine (CPUs x wall seconds). */
  pct: number;
  direct: number;
  residual: number;
  /** CPU seconds of the testbed's processes and the kernel threads, and all irq+softirq time. */
  testbed: number;
  kernelThreads: number;
  irqSoftirq: number;
  /** /proc/stat busy seconds and the wall time of the window. */
  busy: number;
  wallSeconds: number;
  /** The three largest direct consumers ("comm pid: seconds"), to say who it was. */
  top: string[];
}

const KERNEL_HELPERS = ['ksoftirqd/', 'kworker/'];

/** Parses /proc/stat's first line: busy and irq+softirq seconds. */
export function parseProcStat(text: string): { busy: number; irqSoftirq: number } {
  // cpu  user nice system idle iowait irq softirq steal guest guest_nice (guest is inside user already)
  const f = (text.split('\n')[0] ?? '').trim().split(/\s+/).slice(1).map(Number);
  const t = (i: number): number => (f[i] ?? 0) / CLK_TCK;
  return { busy: t(0) + t(1) + t(2) + t(5) + t(6) + t(7), irqSoftirq: t(5) + t(6) };
}

/** Parses /proc/<pid>/stat; null when malformed. */
export function parseTaskStat(stat: string): Omit<Task, 'netns'> | null {
  const open = stat.indexOf('(');
  const close = stat.lastIndexOf(')');
  if (open < 0 || close < open) return null;
  // fields after comm start at field 3 (state): ppid is field 4, utime..cstime fields 14..17
  const rest = stat.slice(close + 2).split(' ');
  const n = (i: number): number => Number(rest[i - 3]);
  const [ppid, ut, st, cut, cst] = [n(4), n(14), n(15), n(16), n(17)];
  if (![ppid, ut, st, cut, cst].every(Number.isFinite)) return null;
  return { ppid, comm: stat.slice(open + 1, close), own: (ut + st) / CLK_TCK, children: (cut + cst) / CLK_TCK };
}

function netnsInodeOf(pid: string): number | null {
  try {
    const m = /^net:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/ns/net`));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** Reads /proc/stat and every process. */
export function loadSnapshot(): LoadSnapshot {
  const at = performance.now() / 1000;
  const tasks = new Map<number, Task>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const t = parseTaskStat(readFileSync(`/proc/${d}/stat`, 'utf8'));
      if (t) tasks.set(Number(d), { ...t, netns: netnsInodeOf(d) });
    } catch {
      // exited meanwhile: its time shows in its parent's cutime
    }
  }
  // /proc/stat last, so the busy time covers every process read before it
  return { at, ...parseProcStat(readFileSync('/proc/stat', 'utf8')), tasks };
}

/** The network namespace inodes of the testbed with this id (its namespaces are /run/netns/w<id>-*). */
export function testbedNetns(id: number): Set<number> {
  const out = new Set<number>();
  let names: string[];
  try {
    names = readdirSync('/run/netns');
  } catch {
    return out;
  }
  for (const n of names.filter((x) => x.startsWith(`w${id}-`))) {
    try {
      out.add(statSync(`/run/netns/${n}`).ino);
    } catch {
      // removed meanwhile
    }
  }
  return out;
}

type Role = 'testbed' | 'kernel' | 'foreign';

function roles(s: LoadSnapshot, scope: LoadScope): Map<number, Role> {
  const memo = new Map<number, Role>();
  const roleOf = (pid: number, depth: number): Role => {
    const known = memo.get(pid);
    if (known) return known;
    const t = s.tasks.get(pid);
    let r: Role;
    if (pid === scope.rootPid) r = 'testbed';
    else if (t === undefined || pid <= 1 || depth > 64) r = 'foreign';
    else if (t.ppid === 2 || pid === 2) r = KERNEL_HELPERS.some((k) => t.comm.startsWith(k)) ? 'kernel' : 'foreign';
    else if (t.netns !== null && scope.netns.has(t.netns)) r = 'testbed';
    else r = roleOf(t.ppid, depth + 1) === 'testbed' ? 'testbed' : 'foreign';
    memo.set(pid, r);
    return r;
  };
  for (const pid of s.tasks.keys()) roleOf(pid, 0);
  return memo;
}

/** The foreign load between two snapshots of the same scope. */
export function foreignBetween(a: LoadSnapshot, b: LoadSnapshot, scope: LoadScope, ncpu = cpus().length): ForeignLoad {
  const rb = roles(b, scope);
  const sums: Record<Role, number> = { testbed: 0, kernel: 0, foreign: 0 };
  const byPid: [string, number][] = [];
  for (const [pid, t] of b.tasks) {
    const before = a.tasks.get(pid);
    const role = rb.get(pid) ?? 'foreign';
    // Other processes by their own time only: a shell's cutime jumps by a child's whole life when it reaps it, most
    // of it before the window; the residual catches children that lived inside it.
    const total = (x: Task): number => (role === 'foreign' ? x.own : x.own + x.children);
    // a pid reused for another process starts from zero
    const d = Math.max(0, before && before.comm === t.comm ? total(t) - total(before) : total(t));
    sums[role] += d;
    if (role === 'foreign' && d > 0) byPid.push([`${t.comm} ${pid}`, d]);
  }
  // A testbed process gone before the end: its parent's cutime holds its whole life; take back what it had used
  // before the window.
  for (const [pid, t] of a.tasks) {
    if (b.tasks.has(pid)) continue;
    const parent = rb.get(t.ppid);
    if (parent === 'testbed' || parent === 'kernel') sums[parent] = Math.max(0, sums[parent] - t.own - t.children);
  }
  const busy = b.busy - a.busy;
  const irqSoftirq = b.irqSoftirq - a.irqSoftirq;
  const residual = Math.max(0, busy - sums.testbed - sums.kernel - irqSoftirq);
  const seconds = Math.max(sums.foreign, residual);
  const wallSeconds = Math.max(1e-6, b.at - a.at);
  return {
    seconds,
    pct: (100 * seconds) / (wallSeconds * Math.max(1, ncpu)),
    direct: sums.foreign,
    residual,
    testbed: sums.testbed,
    kernelThreads: sums.kernel,
    irqSoftirq,
    busy,
    wallSeconds,
    top: byPid
      .filter(([, s]) => s > 0)
      .sort((x, y) => y[1] - x[1])
      .slice(0, 3)
      .map(([who, s]) => `${who}: ${s.toFixed(2)} s`),
  };
}

export function isDisturbed(f: ForeignLoad | undefined): boolean {
  return f !== undefined && f.pct > DISTURBED_PCT;
}

/** The machine before a run: load averages and foreign CPU over `seconds` with no testbed yet. */
export interface QuietCheck {
  loadAvg1: number;
  seconds: number;
  foreignPct: number;
  top: string[];
  quiet: boolean;
}

/** Quiet: under DISTURBED_PCT foreign CPU over the window and a 1-minute load average under half the CPUs. */
export async function quietCheck(seconds: number, loadAvg1: number, ncpu = cpus().length): Promise<QuietCheck> {
  const scope: LoadScope = { netns: new Set(), rootPid: process.pid };
  const a = loadSnapshot();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const f = foreignBetween(a, loadSnapshot(), scope, ncpu);
  return {
    loadAvg1,
    seconds,
    foreignPct: f.pct,
    top: f.top,
    quiet: f.pct <= DISTURBED_PCT && loadAvg1 < ncpu / 2,
  };
}
