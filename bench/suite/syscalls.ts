// Syscalls counted, not assumed: during each TCP 1-stream test `perf stat` counts every syscall the path's daemons
// (weft's, or a peer's) enter, in total (raw_syscalls:sys_enter) and by kind (syscalls:sys_enter_<name>), from the
// kernel's tracepoints. Counting tracepoints costs a little per syscall, not a context switch as strace does, so the
// test's speed stays near what it is without. The same figures cross-check the daemons' own counters
// (syscalls_tun_read + syscalls_tun_write + syscalls_send + syscalls_recv), which count only the datapath's I/O
// calls: the I/O kinds below must match them, and what they leave out (epoll, futex, libuv's extra recvmsg that
// finds nothing) shows beside them.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The kinds a forwarder moves packets with: TUN read/write and socket send/receive, one or many per call. */
export const IO_KINDS = [
  'read',
  'write',
  'readv',
  'writev',
  'sendto',
  'recvfrom',
  'sendmsg',
  'recvmsg',
  'sendmmsg',
  'recvmmsg',
] as const;

/** The kinds counted one by one; everything else is 'other' (total - these). */
export const SYSCALL_KINDS = [
  ...IO_KINDS,
  'epoll_wait',
  'epoll_pwait',
  'epoll_pwait2',
  'poll',
  'ppoll',
  'futex',
  'ioctl',
  'io_uring_enter',
  'nanosleep',
  'clock_nanosleep',
  // what was left in 'other' for the peers in a first run: Go's scheduler, tinc's select loop
  'select',
  'pselect6',
  'epoll_ctl',
  'sched_yield',
  'rt_sigprocmask',
  'tgkill',
  'getpid',
  'madvise',
  'mmap',
  'munmap',
] as const;

export interface SyscallCount {
  /** Every syscall the processes entered in the window. */
  total: number;
  /** By kind (SYSCALL_KINDS that occurred, and 'other'). */
  byKind: Record<string, number>;
}

/** Parses `perf stat -x,` output: "count,,event,..." per line; "<not counted>" and comments are skipped. */
export function parsePerfStat(text: string): SyscallCount | null {
  let total: number | null = null;
  const byKind: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const f = line.split(',');
    if (f.length < 3 || line.startsWith('#')) continue;
    const n = Number(f[0]);
    if (!Number.isFinite(n)) continue;
    const ev = f[2] ?? '';
    if (ev === 'raw_syscalls:sys_enter') total = n;
    const m = /^syscalls:sys_enter_(\w+)$/.exec(ev);
    if (m && n > 0) byKind[m[1]!] = n;
  }
  if (total === null) return null;
  const listed = Object.values(byKind).reduce((a, b) => a + b, 0);
  if (total > listed) byKind['other'] = total - listed;
  return { total, byKind };
}

/** Sum of the I/O kinds of a count. */
export function ioSyscalls(c: SyscallCount): number {
  return IO_KINDS.reduce((a, k) => a + (c.byKind[k] ?? 0), 0);
}

/** Counts the syscalls of `pids` (all their threads) from now until stop(); stop() gives null when perf failed. */
export function countSyscalls(perf: string, pids: readonly number[]): { stop: () => Promise<SyscallCount | null> } {
  const dir = mkdtempSync(join(tmpdir(), 'weft-bench-syscalls-'));
  const out = join(dir, 'stat.csv');
  // a tracepoint this kernel lacks (epoll_pwait2 before 5.11) would make perf refuse the whole list
  const kinds = SYSCALL_KINDS.filter((k) => existsSync(`/sys/kernel/tracing/events/syscalls/sys_enter_${k}`));
  const events = ['raw_syscalls:sys_enter', ...kinds.map((k) => `syscalls:sys_enter_${k}`)];
  let child: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();
  try {
    child = spawn(perf, ['stat', '-x,', '-o', out, ...events.flatMap((e) => ['-e', e]), '-p', pids.join(',')], {
      stdio: 'ignore',
    });
    exited = new Promise((resolve) => {
      child!.once('exit', () => resolve());
      child!.once('error', () => resolve());
    });
  } catch {
    child = null;
  }
  // a run that never stops it (an interrupted bench) must not leave perf behind
  const killer = setTimeout(() => child?.kill('SIGKILL'), 120_000);
  return {
    stop: async (): Promise<SyscallCount | null> => {
      clearTimeout(killer);
      try {
        if (!child) return null;
        child.kill('SIGINT'); // perf stat prints its counts on SIGINT
        const late = setTimeout(() => child?.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(late);
        return parsePerfStat(readFileSync(out, 'utf8'));
      } catch {
        return null;
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
