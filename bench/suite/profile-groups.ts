// What a CPU sample was spent on: the grouping table for `weft bench --profile`, the rule that applies it, and the
// parser of `perf script` text it runs on. Pure (no I/O), so a recorded perf script file is enough to test it.
//
// The rule, per sample (one `perf record -g` call chain, leaf first):
//   1. A user-space leaf frame is user time of its process: 'weft user (JS/native)' in the path's daemon (node,
//      weft.node, and JS frames, which perf shows as [unknown]); 'user space (other)' in any other process (iperf3).
//   2. A kernel leaf: walk from the leaf towards the root over the kernel frames; the first frame whose symbol matches
//      a group (groups tried in table order for each frame) names the group. So `rep_movs_alternative` under
//      `_copy_to_iter` under `tcp_recvmsg` is a copy, and a `_raw_spin_unlock_irqrestore` leaf (where the cpu-clock
//      timer lands once interrupts are on again) goes to whatever called it. Kernel frames in a user process's
//      stack are the kernel's work on its behalf: they count for that process.
//   3. Nothing matched: idle when the process is the idle task (swapper, pid 0), else 'kernel (other)'.
// Softirq work that interrupts the idle task is found by step 2 before the idle frames below it.
//
// To extend: add a row to GROUPS (the order matters where patterns overlap: copies before checksums, so
// csum_partial_copy_generic is a copy; GSO/GRO before UDP and TCP, so udp_gro_receive is GRO).

export interface GroupDef {
  id: string;
  label: string;
  /** Matched against kernel symbol names. */
  patterns: RegExp[];
}

/** Kernel-symbol groups, tried in this order for each frame. */
export const GROUPS: readonly GroupDef[] = [
  {
    id: 'copy',
    label: 'user/kernel copies',
    patterns: [
      /^_?copy_(to|from)_(iter|user)/,
      /^copy_user_/,
      /^rep_movs_alternative$/,
      /^csum_partial_copy/,
      /^_?csum_and_copy/,
      /^copy_page_(to|from)_iter/,
      /^copy(in|out)$/,
      /^raw_copy_/,
      /^__copy_(user|msghdr)/,
      /^copy_msghdr_from_user/,
      /^skb_copy_datagram_/,
      /^__skb_datagram_iter$/,
      /^simple_copy_to_iter$/,
      /^skb_copy_and_csum_datagram/,
      /^skb_do_copy_data_nocache$/,
      /^skb_copy_to_page_nocache$/,
      /^memcpy_(to|from)_iter/,
      // hardened usercopy checks run on every copy: part of its cost
      /^__check_object_size/,
      /^check_heap_object$/,
      /^__virt_addr_valid$/,
    ],
  },
  { id: 'csum', label: 'checksums', patterns: [/csum/, /checksum/] },
  { id: 'tun', label: 'TUN', patterns: [/^_*tun_/] },
  { id: 'vxlan', label: 'VXLAN / UDP tunnel', patterns: [/^_*vxlan/, /^_*udp_tunnel/, /^_*ip_?tunnel/, /^_*geneve/] },
  { id: 'gso-gro', label: 'GSO/GRO', patterns: [/gso/, /(^|_)gro(_|$)/, /^skb_segment/, /^skb_gro/] },
  { id: 'udp', label: 'UDP', patterns: [/^_*(skb_(recv|consume)_)?udp/] },
  { id: 'tcp', label: 'TCP', patterns: [/^_*tcp/, /^sk_stream_/, /^inet_csk/] },
  {
    id: 'syscall',
    label: 'syscall entry/exit + socket/file dispatch',
    patterns: [
      /^entry_SYSCALL/,
      /^do_syscall_64$/,
      /^x64_sys_call$/,
      /^syscall_(exit|enter|return|trace)/,
      /^(arch_|irqentry_)?exit_to_user_mode/,
      /^__(x64|ia32)_sys_/,
      /^__do_sys_/,
      /^__se_sys_/,
      /^_{2,4}sys_/,
      /^ksys_/,
      /^do_(sendmmsg|recvmmsg|readv|writev|iter_)/,
      /^vfs_(read|write)/,
      /^new_sync_(read|write)$/,
      /^_*fdget/,
      /^_*fget/,
      /^fput/,
      /^sock_(sendmsg|recvmsg|write_iter|read_iter)/,
      /^inet_(sendmsg|recvmsg)$/,
      /^_*import_iovec/,
      /^rw_verify_area$/,
      /^security_/,
      /^apparmor/,
      /^_*rseq/,
      /^(switch_fpu|restore_fpregs|fpregs)/,
      /^clear_bhb/,
      /^_*audit/,
    ],
  },
  {
    id: 'softirq',
    label: 'softirq / netif',
    patterns: [
      /^net_(rx|tx)_action$/,
      /^_*napi_/,
      /^process_backlog$/,
      /^_*netif_receive_skb/,
      /^_*netif_rx/,
      /^enqueue_to_backlog$/,
      /^_*do_softirq/,
      /^handle_softirqs$/,
      /^irq_exit/,
      /^_*local_bh_enable/,
      /^run_ksoftirqd$/,
    ],
  },
  {
    id: 'ip',
    label: 'IP, routing, netfilter, veth/bridge',
    patterns: [
      /^_*ip_/,
      /^_*ipv4_/,
      /^_*inet_/,
      /^_*fib/,
      /^_*nf_/,
      /^_*ipt_/,
      /^_*neigh_/,
      /^_*dst_/,
      /^_*dev_/,
      /^sch_direct_xmit$/,
      /^_*qdisc/,
      /^pfifo/,
      /^_*veth_/,
      /^_*br_/,
      /^_*eth_/,
      /^_*arp_/,
      /^validate_xmit/,
      /^netif_skb_features$/,
      /^_*rt_/,
      /^skb_network_protocol$/,
      /^raw_(v4_)?(local_deliver|rcv)/,
      /^icmp_/,
    ],
  },
  {
    id: 'mem',
    label: 'skb/page memory (alloc/free)',
    patterns: [
      /^_*(alloc|build|napi_build|napi_alloc)_skb/,
      /^_*kmem_cache/,
      /^_*kmalloc/,
      /^_*kfree/,
      /^_*slab/,
      /^_*skb_release/,
      /^_*consume_skb/,
      /^_*skb_free/,
      /^_*skb_attempt_defer_free/,
      /^sk_skb_reason_drop$/,
      /^_*pskb_/,
      /^skb_clone/,
      /^skb_put$/,
      /^_*page_frag/,
      /^skb_page_frag_refill$/,
      /^sock_alloc_send_pskb$/,
      /^alloc_skb_with_frags$/,
      /^_*alloc_pages/,
      /^_*alloc_frozen_pages/,
      /^get_page_from_freelist$/,
      /^_*rmqueue/,
      /^free_unref/,
      /^_*free_pages/,
      /^_*folio_put/,
      /^put_page$/,
      /^_*mod_memcg/,
      /^_*memcg/,
      /^obj_cgroup/,
      /^refill_obj_stock$/,
      /^mem_cgroup/,
      /^sk_(mem|forced_mem)_/,
      /^_*sk_mem_/,
      /^skb_set_owner/,
      /^sock_[rw]free$/,
    ],
  },
  {
    id: 'memcpy',
    label: 'kernel memcpy/memset (skb data)',
    patterns: [/^_*mem(cpy|move|set)/, /^skb_copy_bits$/, /^_*skb_copy$/],
  },
  {
    id: 'sched',
    label: 'scheduler, wakeups, epoll/poll/select, timers',
    patterns: [
      /^(core_sys_|do_|__x64_sys_|__x64_sys_p)select/,
      /^(__x64_sys_)?epoll/,
      /^_*schedule/,
      /^try_to_wake_up$/,
      /^ttwu/,
      /^finish_task_switch/,
      /^context_switch$/,
      /^pick_next/,
      /^_*(en|de)queue_task/,
      /^update_(curr|load|cfs|rq)/,
      /^ep_/,
      /^_*do_epoll/,
      /^_*ep_poll/,
      /^_*futex/,
      /^_*wake_up/,
      /^autoremove_wake/,
      /^sk_wait/,
      /^select_task_rq/,
      /^psi_/,
      /^switch_mm/,
      /^_*switch_to/,
      /^prepare_task_switch$/,
      /^_*hrtimer/,
      /^do_nanosleep$/,
      /^_*(sys_)?poll/,
      /^do_(sys_)?poll/,
      /^_*pollwait$/,
      /^(add|remove)_wait_queue/,
      /^sock_(poll|def_readable|def_write_space)/,
      /^sched_/,
      /^_*sched_/,
      /^tick_/,
      /^_*irq_work/,
    ],
  },
  {
    id: 'mm',
    label: 'page faults, mm',
    patterns: [
      /^_*(asm_)?exc_page_fault/,
      /^_*handle_mm_fault/,
      /^do_(anonymous|wp|fault|read_fault|cow_fault|shared_fault)/,
      /^filemap_map_pages$/,
      /^_*folio_/,
      /^_*lruvec/,
      /^_*mmap/,
      /^_*munmap/,
      /^_*vm_/,
      /^_*madvise/,
      /^tlb_/,
      /^_*flush_tlb/,
    ],
  },
  {
    id: 'idle',
    label: 'idle',
    patterns: [
      /^pvm_safe_halt/,
      /^pv_native_safe_halt$/,
      /^native_safe_halt$/,
      /^_*default_idle/,
      /^cpuidle/,
      /^do_idle$/,
      /^cpu_startup_entry$/,
      /^(acpi|intel|poll|mwait)_idle/,
      /^arch_cpu_idle/,
    ],
  },
];

/** Groups the rule assigns without a symbol pattern. */
export const FORWARDER_USER = 'forwarder-user';
export const OTHER_USER = 'user-other';
export const KERNEL_OTHER = 'kernel-other';
export const IDLE = 'idle';

export const GROUP_LABELS: Readonly<Record<string, string>> = {
  ...Object.fromEntries(GROUPS.map((g) => [g.id, g.label])),
  [FORWARDER_USER]: "weft user (JS/native); a peer's daemon code",
  [OTHER_USER]: 'user space (other: iperf3 ...)',
  [KERNEL_OTHER]: 'kernel (other)',
};

/** Report order of the groups (idle last; it is not work). */
export const GROUP_ORDER: readonly string[] = [
  'copy',
  'syscall',
  'csum',
  'tun',
  'udp',
  'vxlan',
  'gso-gro',
  'tcp',
  'ip',
  'softirq',
  'mem',
  'memcpy',
  'sched',
  'mm',
  FORWARDER_USER,
  OTHER_USER,
  KERNEL_OTHER,
  IDLE,
];

/** Who a sample belongs to. 'forwarder': the path's daemons (weft's, or a peer's); 'app': iperf3; 'kernel': kernel
 *  threads and softirq run on the idle task; 'other': anything else on the machine. */
export const PROCESS_CLASSES = ['forwarder', 'app', 'kernel', 'other'] as const;
export type ProcessClass = (typeof PROCESS_CLASSES)[number];
export const CLASS_LABELS: Readonly<Record<ProcessClass, string>> = {
  forwarder: "forwarder (weft daemons; a peer path's daemons)",
  app: 'iperf3 (application)',
  kernel: 'kernel threads / softirq (ksoftirqd, kworker, irq on idle)',
  other: 'other processes (etcd, perf, the bench, other load)',
};

export interface Frame {
  /** Symbol name, '[unknown]' when perf could not resolve it. */
  sym: string;
  /** perf's dso column: '[kernel.kallsyms]', a module '[vxlan]', a path, or '[unknown]'. */
  dso: string;
  kernel: boolean;
}

export interface PerfSample {
  comm: string;
  pid: number;
  tid: number;
  /** Seconds (perf's clock; CLOCK_MONOTONIC with -k CLOCK_MONOTONIC). */
  time: number;
  /** Sample period: nanoseconds of CPU for cpu-clock. */
  period: number;
  /** Leaf first. */
  frames: Frame[];
}

/** Kernel threads, by the start of their comm. */
const KERNEL_THREADS = [
  ...['ksoftirqd', 'kworker', 'migration', 'rcu_', 'kthreadd', 'irq/', 'napi/', 'kcompactd', 'kswapd'],
  ...['khugepaged', 'kdamond', 'jbd2', 'cpuhp', 'idle_inject'],
];

export interface ClassifyContext {
  /** Process ids (tgid) of the path's daemons (weft's, or a peer's). */
  forwarderPids: ReadonlySet<number>;
  /** Process ids of the application (iperf3) of the path; when empty, any process named iperf3 counts. */
  appPids: ReadonlySet<number>;
}

export function processClass(s: Pick<PerfSample, 'comm' | 'pid'>, ctx: ClassifyContext): ProcessClass {
  if (ctx.forwarderPids.has(s.pid)) return 'forwarder';
  if (ctx.appPids.size > 0 ? ctx.appPids.has(s.pid) : s.comm === 'iperf3') return 'app';
  if (s.pid === 0 || KERNEL_THREADS.some((k) => s.comm.startsWith(k))) return 'kernel';
  return 'other';
}

/** The group of one kernel symbol by the table alone, or null. */
export function groupOfSymbol(sym: string): string | null {
  for (const g of GROUPS) if (g.patterns.some((p) => p.test(sym))) return g.id;
  return null;
}

/** The group of a sample by the rule in the header comment. */
export function groupOf(frames: readonly Frame[], cls: ProcessClass, pid: number): string {
  const leaf = frames[0];
  if (leaf && !leaf.kernel) return cls === 'forwarder' ? FORWARDER_USER : OTHER_USER;
  for (const f of frames) {
    if (!f.kernel) break;
    const g = groupOfSymbol(f.sym);
    if (g !== null) return g;
  }
  return pid === 0 ? IDLE : KERNEL_OTHER;
}

// `perf script -F comm,pid,tid,time,period,event,ip,sym,dso`: a header line per sample, then one indented line per
// frame ("<hex ip> <symbol> (<dso>)"), then a blank line. comm may hold spaces.
const HEADER = /^(\S.*?)\s+(-?\d+)\/(-?\d+)\s+(\d+\.\d+):\s+(\d+)\s+(\S+):\s*$/;
// The dso may itself hold parentheses ("/memfd:sealed-... (deleted)"): the symbol ends at the first " (".
const FRAME = /^\s+([0-9a-f]+)\s+(?:(.*?)\s+)?\((.*)\)\s*$/;

function isKernelAddress(hex: string): boolean {
  return hex.length === 16 && hex.startsWith('ffff');
}

/** Incremental parser: feed lines, get samples. Lines it cannot read are counted, never thrown. */
export class PerfScriptParser {
  badLines = 0;
  private cur: PerfSample | null = null;
  constructor(private readonly onSample: (s: PerfSample) => void) {}

  line(l: string): void {
    if (l.trim() === '') {
      this.flush();
      return;
    }
    if (this.cur && /^\s/.test(l)) {
      const m = FRAME.exec(l);
      if (!m) {
        this.badLines++;
        return;
      }
      const sym = (m[2] ?? '').replace(/\+0x[0-9a-f]+$/, '');
      this.cur.frames.push({ sym: sym === '' ? '[unknown]' : sym, dso: m[3]!, kernel: isKernelAddress(m[1]!) });
      return;
    }
    const h = HEADER.exec(l);
    if (!h) {
      this.badLines++;
      return;
    }
    this.flush();
    this.cur = {
      comm: h[1]!,
      pid: Number(h[2]),
      tid: Number(h[3]),
      time: Number(h[4]),
      period: Number(h[5]),
      frames: [],
    };
  }

  end(): void {
    this.flush();
  }

  private flush(): void {
    if (this.cur) this.onSample(this.cur);
    this.cur = null;
  }
}

export function parsePerfScript(text: string): { samples: PerfSample[]; badLines: number } {
  const samples: PerfSample[] = [];
  const p = new PerfScriptParser((s) => samples.push(s));
  for (const l of text.split('\n')) p.line(l);
  p.end();
  return { samples, badLines: p.badLines };
}

/** CPU nanoseconds per process class and group, plus what the folded stacks and the top list need. */
export class ProfileAggregate {
  /** ns[class][group] */
  readonly ns: Record<ProcessClass, Record<string, number>> = { forwarder: {}, app: {}, kernel: {}, other: {} };
  samples = 0;
  firstTime = Infinity;
  lastTime = -Infinity;
  /** Largest period seen (the sampling interval, ns). */
  period = 0;
  /** folded stack -> samples */
  readonly folded = new Map<string, number>();
  /** leaf symbol + group -> { sym, group, ns } (not idle): one leaf may land in several groups by its callers */
  readonly leaves = new Map<string, { sym: string; group: string; ns: number }>();

  constructor(private readonly ctx: ClassifyContext) {}

  add(s: PerfSample): void {
    const cls = processClass(s, this.ctx);
    const g = groupOf(s.frames, cls, s.pid);
    this.ns[cls][g] = (this.ns[cls][g] ?? 0) + s.period;
    this.samples++;
    this.period = Math.max(this.period, s.period);
    this.firstTime = Math.min(this.firstTime, s.time);
    this.lastTime = Math.max(this.lastTime, s.time);
    const key = foldedKey(s, cls);
    this.folded.set(key, (this.folded.get(key) ?? 0) + 1);
    if (g !== IDLE) {
      const leaf = s.frames[0];
      const name = leaf
        ? leaf.kernel || leaf.sym !== '[unknown]'
          ? leaf.sym
          : `[unknown] (${leaf.dso})`
        : '[no frames]';
      const e = this.leaves.get(`${name}\0${g}`) ?? { sym: name, group: g, ns: 0 };
      e.ns += s.period;
      this.leaves.set(`${name}\0${g}`, e);
    }
  }

  /** Seconds between the first and the last sample, plus one interval. */
  windowSeconds(): number {
    return this.samples > 0 ? this.lastTime - this.firstTime + this.period / 1e9 : 0;
  }

  /** flamegraph.pl / speedscope "folded" text: `root;...;leaf count` per line, kernel frames suffixed _[k]. */
  foldedText(): string {
    return (
      [...this.folded.entries()]
        .sort((a, b) => (a[0] < b[0] ? -1 : 1))
        .map(([k, n]) => `${k} ${n}`)
        .join('\n') + '\n'
    );
  }
}

function foldedKey(s: PerfSample, cls: ProcessClass): string {
  const clean = (x: string): string => x.replace(/[;\s]+/g, '_');
  const root = `${clean(s.comm)}[${cls}]`;
  const frames = s.frames.map(
    (f) =>
      clean(f.sym === '[unknown]' && !f.kernel && f.dso !== '[unknown]' ? `[${f.dso}]` : f.sym) +
      (f.kernel ? '_[k]' : ''),
  );
  return [root, ...frames.reverse()].join(';');
}

/** The profile of one path's TCP 1-stream test, as stored in results.json (PathResult.profile). */
export interface PathProfile {
  ok: boolean;
  /** Why there is no split (perf failed, no samples, no bytes). */
  error?: string;
  test: 'tcp1';
  repeat: number;
  /** First to last sample, seconds. */
  windowSeconds: number;
  samples: number;
  /** Sampling interval, ns of CPU per sample. */
  periodNs: number;
  /** Payload bytes the application received during the window, and how that was measured. */
  bytes: number;
  bytesSource: 'iperf3-server-rchar' | 'iperf3-average-rate';
  /** CPU seconds in the window per process class and group (idle included; 'other' is unrelated load). */
  cpuSeconds: Record<ProcessClass, Record<string, number>>;
  /** The same per GB moved. */
  sPerGb: Record<ProcessClass, Record<string, number>>;
  /** The path's work per GB by group: forwarder + app + kernel classes, idle left out. */
  pathSPerGb: Record<string, number>;
  /** Per GB by class, idle left out. */
  classSPerGb: Record<ProcessClass, number>;
  /** copies + syscall entry/exit per GB: the path's work and each class's. */
  copySyscallSPerGb: { path: number } & Record<ProcessClass, number>;
  /** Share of all samples that were idle. */
  idleShare: number;
  /** Hottest leaf symbols (idle left out), share of non-idle samples. */
  top: { sym: string; group: string; share: number }[];
  /** File name of the folded stacks beside results.json. */
  folded: string | null;
  /** perf script lines the parser could not read. */
  badLines: number;
}

/** Run-level profiling status (BenchResult.profile). */
export interface ProfileRun {
  enabled: boolean;
  /** Why profiling is off. */
  reason?: string;
  perf?: string;
  event?: string;
  frequencyHz?: number;
  maxSeconds?: number;
  rule?: string;
}

export const COPY_SYSCALL_GROUPS: readonly string[] = ['copy', 'syscall'];
const PATH_CLASSES: readonly ProcessClass[] = ['forwarder', 'app', 'kernel'];

export function summarizeProfile(
  agg: ProfileAggregate,
  bytes: number,
  bytesSource: PathProfile['bytesSource'],
  repeat: number,
  folded: string | null,
  badLines = 0,
): PathProfile {
  const gb = bytes / 1e9;
  const cpuSeconds = { forwarder: {}, app: {}, kernel: {}, other: {} } as Record<ProcessClass, Record<string, number>>;
  const sPerGb = { forwarder: {}, app: {}, kernel: {}, other: {} } as Record<ProcessClass, Record<string, number>>;
  const classSPerGb = { forwarder: 0, app: 0, kernel: 0, other: 0 } as Record<ProcessClass, number>;
  const copySyscall = { path: 0, forwarder: 0, app: 0, kernel: 0, other: 0 };
  const pathSPerGb: Record<string, number> = {};
  let total = 0;
  let idle = 0;
  for (const cls of PROCESS_CLASSES) {
    for (const [g, ns] of Object.entries(agg.ns[cls])) {
      const s = ns / 1e9;
      total += s;
      cpuSeconds[cls][g] = s;
      if (gb > 0) sPerGb[cls][g] = s / gb;
      if (g === IDLE) {
        idle += s;
        continue;
      }
      if (gb <= 0) continue;
      classSPerGb[cls] += s / gb;
      if (COPY_SYSCALL_GROUPS.includes(g)) copySyscall[cls] += s / gb;
      if (PATH_CLASSES.includes(cls)) {
        pathSPerGb[g] = (pathSPerGb[g] ?? 0) + s / gb;
        if (COPY_SYSCALL_GROUPS.includes(g)) copySyscall.path += s / gb;
      }
    }
  }
  const busyNs = [...agg.leaves.values()].reduce((a, e) => a + e.ns, 0);
  const top = [...agg.leaves.values()]
    .sort((a, b) => b.ns - a.ns)
    .slice(0, 15)
    .map((e) => ({ sym: e.sym, group: e.group, share: busyNs > 0 ? e.ns / busyNs : 0 }));
  const p: PathProfile = {
    ok: agg.samples > 0 && gb > 0,
    test: 'tcp1',
    repeat,
    windowSeconds: agg.windowSeconds(),
    samples: agg.samples,
    periodNs: agg.period,
    bytes,
    bytesSource,
    cpuSeconds,
    sPerGb,
    pathSPerGb,
    classSPerGb,
    copySyscallSPerGb: copySyscall,
    idleShare: total > 0 ? idle / total : 0,
    top,
    folded,
    badLines,
  };
  if (agg.samples === 0) p.error = 'perf recorded no samples';
  else if (gb <= 0) p.error = 'no bytes moved during the profile window';
  return p;
}
