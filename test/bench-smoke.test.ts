// The bench end to end on its smallest settings, as a user runs it (`weft bench` from dist/, as root):
//
//   per path a fresh testbed: bridge netns w<id>-br (etcd) ── h1, h2 (weft daemons for batch/udp) ── a pod on each
//
// Checks the result schema, that every path produced numbers for every figure it should, that report.md and the
// charts are written, and that no namespace or process of the run is left: after a normal end and after SIGINT
// in the middle of a test. No timing assertions: the figures are only checked to be finite.
import t from 'tap';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WEFT_CLI } from '../testbed/cluster.js';
import { IDLE_AFTER_MS } from '../bench/suite/idle-memory.js';
import { METRICS, SCHEMA, TEST_KINDS, type BenchResult, type MetricKey } from '../bench/suite/schema.js';

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function runCli(
  args: string[],
  timeoutMs: number,
  onStderr?: (text: string, kill: (s: NodeJS.Signals) => void) => void,
): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [WEFT_CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      onStderr?.(stderr, (s) => child.kill(s));
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** `weft bench --only <paths>` with short settings (e.g. { seconds: 1, json: true }), results into `out`. The runs
 *  that are not --quick pass retries 0: on a shared machine foreign load would run their tests again (the retries
 *  have their own test, test/bench-foreign.test.ts); only the quick run reads idle memory (it waits ~10 s a path). */
function bench(paths: string, out: string, settings: Record<string, number | true>): string[] {
  const flags = Object.entries(settings).flatMap(([k, v]) => (v === true ? [`--${k}`] : [`--${k}`, String(v)]));
  return ['bench', '--only', paths, ...flags, '--out', out];
}

function namespacesOf(id: number): string[] {
  const out = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  return out
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => n.startsWith(`w${id}-`));
}

// Daemons and etcd of testbed <id> carry its bridge address (198.18.<id>.254) on their command line.
function processesOf(id: number): number[] {
  const needle = `198.18.${id}.254`;
  const pids: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(needle)) pids.push(Number(d));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

const finite = (x: unknown): boolean => typeof x === 'number' && Number.isFinite(x);

t.test('an unknown path is a clear error before anything is built', async (t) => {
  const r = await runCli(['bench', '--only', 'underlay,no-such-path'], 30_000);
  t.equal(r.code, 2, 'exit code 2 (configuration error)');
  t.match(r.stderr, /unknown bench path "no-such-path"/, 'names the bad path');
});

t.test('quick run on underlay and batch/udp: schema, numbers, files, cleanup', async (t) => {
  const out = mkdtempSync(join(tmpdir(), 'weft-bench-'));
  t.teardown(() => rmSync(out, { recursive: true, force: true }));
  const rmemBefore = readFileSync('/proc/sys/net/core/rmem_default', 'utf8');
  const r = await runCli(
    bench('underlay,batch/udp', out, { quick: true, seconds: 1, 'round-trips': 200, json: true }),
    150_000,
  );
  t.equal(readFileSync('/proc/sys/net/core/rmem_default', 'utf8'), rmemBefore, 'the socket-buffer sysctls are back');
  t.equal(r.code, 0, `bench exits 0 (stderr tail: ${r.stderr.slice(-400)})`);
  const res = JSON.parse(r.stdout) as BenchResult;
  t.equal(res.schema, SCHEMA, 'schema tag');
  t.same(res.settings.paths, ['underlay', 'batch/udp'], 'the paths asked for, in catalogue order');
  t.equal(res.settings.repeats, 1, 'quick: one repeat');
  t.equal(res.interrupted, false, 'not interrupted');
  t.same(JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')), res, 'results.json holds the same result');

  const want: Record<string, MetricKey[]> = {
    underlay: [
      'tcp1_gbps',
      'tcp4_gbps',
      'udp64_kpps',
      'udp64_loss_pct',
      'udp1400_gbps',
      'udp1400_loss_pct',
      'lat_p50_us',
      'lat_p99_us',
      'cpu_kernel_s_per_gb',
      'cpu_total_s_per_gb',
      'endpoint_rcvbuf_errors',
    ],
    'batch/udp': [
      'tcp1_gbps',
      'tcp4_gbps',
      'udp64_kpps',
      'udp1400_gbps',
      'lat_p50_us',
      'lat_p99_us',
      'cpu_daemon_s_per_gb',
      'cpu_kernel_s_per_gb',
      'syscalls_per_packet',
      'copied_bytes_per_packet',
      'kernel_copies_per_byte',
      'user_copies_per_byte',
      'host_rcvbuf_errors',
      'daemon_rss_mb',
    ],
  };
  for (const p of res.paths) {
    t.equal(p.status, 'ok', `${p.name}: ok${p.reason ? ` (${p.reason})` : ''}`);
    t.same(
      p.samples.map((s) => s.test),
      [...TEST_KINDS],
      `${p.name}: one sample per test kind`,
    );
    for (const s of p.samples) t.ok(s.ok, `${p.name} ${s.test} succeeded${s.error ? `: ${s.error}` : ''}`);
    for (const k of want[p.name] ?? []) {
      t.ok(finite(p.summary[k]?.median), `${p.name}: ${METRICS[k].label} is a number (${p.summary[k]?.median})`);
    }
    t.ok(p.testbed !== null, `${p.name}: ran on a testbed`);
    if (p.testbed !== null) {
      t.same(namespacesOf(p.testbed), [], `${p.name}: no namespace of testbed w${p.testbed} left`);
      t.same(processesOf(p.testbed), [], `${p.name}: no daemon or etcd of testbed w${p.testbed} left`);
    }
  }
  const batch = res.paths.find((p) => p.name === 'batch/udp');
  // Every forwarded byte crosses the boundary four times on this tier (TUN read, send, receive, TUN write), and
  // encap/decap in place copy none in user space.
  t.ok((batch?.summary.kernel_copies_per_byte?.median ?? 0) >= 3.9, 'batch/udp: the kernel copies each byte ~4 times');
  t.equal(batch?.summary.user_copies_per_byte?.median, 0, 'batch/udp: user space copies no byte');
  t.equal(batch?.ratios.tcp1_gbps, null, 'no kernel VXLAN in this run: the ratio is null, not a made-up number');
  // Idle memory, read once before the tests: both daemons, settled, RSS = anonymous + file-backed (+ shmem), and
  // the daemon's own breakdown from its /status; the underlay has no daemon, so nothing.
  const idle = batch?.idleMemory ?? [];
  t.equal(idle.length, 2, 'batch/udp: idle memory of both daemons');
  for (const m of idle) {
    t.ok(m.ageSeconds >= IDLE_AFTER_MS / 1000 - 0.1, `${m.ns}: read once settled (${m.ageSeconds} s after start)`);
    t.ok(m.rssBytes > 0 && m.rssBytes >= m.anonBytes + m.fileBytes, `${m.ns}: RSS holds its anonymous and file parts`);
    t.ok(
      [m.heapUsedBytes, m.heapTotalBytes, m.externalBytes, m.arrayBuffersBytes].every((x) => finite(x) && (x ?? 0) > 0),
      `${m.ns}: the daemon's heap, external and array buffers from its /status`,
    );
  }
  t.equal(res.paths.find((p) => p.name === 'underlay')?.idleMemory, undefined, 'underlay: no daemon, no idle row');
  for (const p of res.paths) {
    const pcts = p.samples.map((x) => x.counters?.foreign?.pct);
    t.ok(pcts.every(finite), `${p.name}: foreign CPU measured in every test (${pcts.map(Number).join(', ')})`);
  }
  t.equal(res.settings.socketBuffers?.mode, 'equal', 'every path got the same socket buffers');
  t.ok(
    (batch?.overlaySockets ?? []).some((x) => x.rcvbuf >= 8 << 20),
    "batch/udp's overlay socket has weft's buffer (ss -uam)",
  );
  if (res.settings.syscallCounter) {
    // perf's count of the I/O syscalls against weft's own counters: the same calls, plus the control plane's few
    const counted = batch?.summary.syscalls_per_packet?.median ?? 0;
    const perf = batch?.summary.perf_io_syscalls_per_packet?.median ?? 0;
    t.ok(
      counted > 0 && Math.abs(perf - counted) / counted < 0.1,
      `batch/udp: perf's I/O syscalls per TUN packet (${perf}) match weft's counters (${counted})`,
    );
    t.ok(finite(batch?.summary.perf_syscalls_per_packet?.median), 'every syscall per TUN packet (perf) is a number');
  }
  const report = readFileSync(join(out, 'report.md'), 'utf8');
  t.match(report, /\| batch\/udp \|/, 'report.md has a row per path');
  t.match(report, /\| underlay \| no \|/, 'report.md marks the underlay as not encrypted');
  t.match(report, /## Foreign load and spread/, 'report.md has the foreign-load section');
  t.match(report, /## Idle memory[\s\S]*\| batch\/udp \| w\d+-h1 \|/, 'report.md has an idle-memory row per daemon');
  if (res.settings.syscallCounter) t.match(report, /## Syscalls, counted/, 'and the syscall cross-check');
  for (const f of ['throughput.svg', 'cpu-per-gb.svg', 'latency.svg', 'copies-per-packet.svg']) {
    t.ok(existsSync(join(out, f)) && readFileSync(join(out, f), 'utf8').startsWith('<svg'), `${f} written`);
  }
});

// ---- peers (bench/suite/peers/): wireguard-go set up, measured and torn down like any path ----

// A peer of testbed <id> carries w<id> in its device name or its temp folder, so it shows in its command line.
function peerLeftovers(id: number): string[] {
  const left: string[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const comm = readFileSync(`/proc/${d}/comm`, 'utf8').trim();
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0').join(' ');
      if (['wireguard-go', 'nebula', 'tincd'].includes(comm) && new RegExp(`w${id}(wg|neb|tinc|-)`).test(cmd))
        left.push(`process ${d}: ${cmd}`);
    } catch {
      // exited meanwhile
    }
  }
  for (const n of [1, 2])
    if (existsSync(`/var/run/wireguard/w${id}wg${n}.sock`)) left.push(`socket /var/run/wireguard/w${id}wg${n}.sock`);
  for (const f of readdirSync(tmpdir()))
    if (f.startsWith(`weft-peer-w${id}-`)) left.push(`temp folder ${join(tmpdir(), f)}`);
  return left;
}

t.test("wireguard-go: installed, measured like weft's paths, nothing of it left", async (t) => {
  const out = mkdtempSync(join(tmpdir(), 'weft-bench-peer-'));
  t.teardown(() => rmSync(out, { recursive: true, force: true }));
  // wireguard-go alone: the quick run above checks the underlay's row.
  const r = await runCli(
    bench('wireguard-go', out, {
      repeats: 1,
      seconds: 1,
      'round-trips': 100,
      retries: 0,
      'no-idle-memory': true,
      json: true,
    }),
    // the first run may install the Debian packages
    600_000,
  );
  t.equal(r.code, 0, `bench exits 0 (stderr tail: ${r.stderr.slice(-400)})`);
  const res = JSON.parse(r.stdout) as BenchResult;
  const wg = res.paths.find((p) => p.name === 'wireguard-go');
  t.equal(wg?.status, 'ok', `wireguard-go ok${wg?.reason ? ` (${wg.reason})` : ''}`);
  t.equal(wg?.kind, 'peer', 'kind peer');
  t.match(wg?.title ?? '', /wireguard-go \d[^,]*, wireguard-tools \d/, 'title names the installed Debian versions');
  for (const k of [
    'tcp1_gbps',
    'tcp4_gbps',
    'udp64_kpps',
    'lat_p50_us',
    'cpu_daemon_s_per_gb',
    'host_rcvbuf_errors',
    'daemon_rss_mb',
  ] as MetricKey[]) {
    t.ok(finite(wg?.summary[k]?.median), `wireguard-go: ${METRICS[k].label} is a number (${wg?.summary[k]?.median})`);
  }
  const report = readFileSync(join(out, 'report.md'), 'utf8');
  t.match(report, /\| wireguard-go \| yes \|/, 'report marks wireguard-go as encrypted');
  t.match(
    readFileSync(join(out, 'throughput.svg'), 'utf8'),
    /wireguard-go \(encrypted\)/,
    'the chart has the peer row',
  );
  if (wg?.testbed != null) {
    t.same(namespacesOf(wg.testbed), [], 'no namespace left');
    t.same(peerLeftovers(wg.testbed), [], 'no wireguard-go process, socket or temp folder left');
  }
});

// One interrupted run covers both kinds of path: batch/udp finishes (its sample must survive in the partial
// results), then SIGINT lands while wireguard-go carries a test.
t.test('SIGINT in the middle of a run: partial results kept, no namespace, daemon or peer left', async (t) => {
  const out = mkdtempSync(join(tmpdir(), 'weft-bench-int-'));
  t.teardown(() => rmSync(out, { recursive: true, force: true }));
  let id: number | null = null;
  let sent = false;
  const r = await runCli(
    bench('batch/udp,wireguard-go', out, {
      seconds: 1,
      repeats: 1,
      'round-trips': 100,
      retries: 0,
      'no-idle-memory': true,
    }),
    600_000,
    (text, kill) => {
      const m = /path wireguard-go: up on testbed w(\d+)/.exec(text);
      if (m) id = Number(m[1]);
      // Interrupt once wireguard-go's second test (4 TCP streams) is under way.
      if (!sent && /wireguard-go tcp4 \(repeat 1/.test(text)) {
        sent = true;
        setTimeout(() => kill('SIGINT'), 1_000);
      }
    },
  );
  t.ok(sent, 'the run reached wireguard-go and was interrupted');
  t.equal(r.code, 130, 'exits with 130 after SIGINT');
  t.ok(id !== null, 'the run named its testbeds');
  if (id !== null) {
    t.same(namespacesOf(id), [], `no namespace of testbed w${id} left`);
    t.same(processesOf(id), [], `no daemon or etcd of testbed w${id} left`);
    t.same(peerLeftovers(id), [], 'no wireguard-go process, socket or temp folder left');
  }
  const partial = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as BenchResult;
  t.equal(partial.interrupted, true, 'partial results.json says interrupted');
  const batch = partial.paths.find((p) => p.name === 'batch/udp');
  t.ok(
    batch?.samples.some((s) => s.test === 'tcp1' && s.ok),
    'and keeps the finished batch/udp samples',
  );
});

// --profile (bench/suite/profile.ts): not --quick, so profiling is on by default when perf works here. Checks the
// shape of the profile section and its files; without perf, that the run says why once and carries on.
t.test('profile: the perf CPU split of batch/udp (schema only)', async (t) => {
  const out = mkdtempSync(join(tmpdir(), 'weft-bench-prof-'));
  t.teardown(() => rmSync(out, { recursive: true, force: true }));
  const r = await runCli(
    bench('batch/udp', out, {
      repeats: 1,
      seconds: 3,
      'round-trips': 100,
      retries: 0,
      'no-idle-memory': true,
      json: true,
    }),
    150_000,
  );
  t.equal(r.code, 0, `bench exits 0 (stderr tail: ${r.stderr.slice(-400)})`);
  const res = JSON.parse(r.stdout) as BenchResult;
  t.equal(res.paths[0]?.idleMemory, undefined, '--no-idle-memory: no idle read');
  t.ok(res.profile, 'the run records whether it profiled');
  if (!res.profile?.enabled) {
    t.match(res.profile?.reason ?? '', /perf/, `profiling off says why: ${res.profile?.reason}`);
    t.equal(r.stderr.match(/profile: off/g)?.length, 1, 'said once on stderr');
    t.equal(res.paths[0]?.profile, undefined, 'no split without perf');
    return;
  }
  const p = res.paths[0]!;
  const prof = p.profile;
  t.ok(prof, 'batch/udp has a profile');
  if (!prof) return;
  t.equal(prof.ok, true, `profile ok${prof.error ? `: ${prof.error}` : ''}`);
  t.equal(prof.test, 'tcp1');
  for (const k of ['windowSeconds', 'samples', 'periodNs', 'bytes', 'idleShare'] as const)
    t.ok(finite(prof[k]), `${k} is a number (${prof[k]})`);
  for (const c of ['forwarder', 'app', 'kernel', 'other'] as const) {
    t.ok(finite(prof.classSPerGb[c]), `class ${c}: CPU-s/GB is a number`);
    t.ok(Object.values(prof.sPerGb[c]).every(finite), `class ${c}: every group's CPU-s/GB is a number`);
  }
  t.ok(prof.classSPerGb.forwarder > 0, 'the weft daemons were seen working');
  t.ok(finite(prof.copySyscallSPerGb.path), 'copies + syscalls per GB');
  t.ok(prof.top.length > 0, 'hottest symbols listed');
  t.equal(prof.folded, 'batch-udp.folded');
  const folded = readFileSync(join(out, 'batch-udp.folded'), 'utf8').trim().split('\n');
  t.ok(folded.length > 0 && folded.every((l) => /^\S+ \d+$/.test(l)), 'folded stacks: "frame;frame;... count" lines');
  t.match(readFileSync(join(out, 'report.md'), 'utf8'), /## Where the CPU goes \(perf\)/, 'report.md has the split');
  t.ok(readFileSync(join(out, 'cpu-split.svg'), 'utf8').startsWith('<svg'), 'cpu-split.svg written');
  if (p.testbed !== null) t.same(namespacesOf(p.testbed), [], 'no namespace left');
});
