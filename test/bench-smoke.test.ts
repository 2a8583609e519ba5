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
import { WEFT_CLI } from '../src/testbed/cluster.js';
import { METRICS, SCHEMA, TEST_KINDS, type BenchResult, type MetricKey } from '../src/bench/schema.js';

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function runCli(args: string[], timeoutMs: number, onStderr?: (text: string, kill: (s: NodeJS.Signals) => void) => void): Promise<Run> {
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

function namespacesOf(id: number): string[] {
  const out = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  return out.split('\n').map((l) => l.split(' ')[0] ?? '').filter((n) => n.startsWith(`w${id}-`));
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
  const r = await runCli(
    ['bench', '--quick', '--only', 'underlay,batch/udp', '--seconds', '1', '--round-trips', '200', '--out', out, '--json'],
    150_000,
  );
  t.equal(r.code, 0, `bench exits 0 (stderr tail: ${r.stderr.slice(-400)})`);
  const res = JSON.parse(r.stdout) as BenchResult;
  t.equal(res.schema, SCHEMA, 'schema tag');
  t.same(res.settings.paths, ['underlay', 'batch/udp'], 'the paths asked for, in catalogue order');
  t.equal(res.settings.repeats, 1, 'quick: one repeat');
  t.equal(res.interrupted, false, 'not interrupted');
  t.same(JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')), res, 'results.json holds the same result');

  const want: Record<string, MetricKey[]> = {
    underlay: ['tcp1_gbps', 'tcp4_gbps', 'udp64_kpps', 'udp64_loss_pct', 'udp1400_gbps', 'udp1400_loss_pct', 'lat_p50_us', 'lat_p99_us',
      'cpu_kernel_s_per_gb', 'cpu_total_s_per_gb', 'endpoint_rcvbuf_errors'],
    'batch/udp': ['tcp1_gbps', 'tcp4_gbps', 'udp64_kpps', 'udp1400_gbps', 'lat_p50_us', 'lat_p99_us', 'cpu_daemon_s_per_gb',
      'cpu_kernel_s_per_gb', 'syscalls_per_packet', 'copied_bytes_per_packet', 'copies_per_byte', 'host_rcvbuf_errors', 'daemon_rss_mb'],
  };
  for (const p of res.paths) {
    t.equal(p.status, 'ok', `${p.name}: ok${p.reason ? ` (${p.reason})` : ''}`);
    t.same(p.samples.map((s) => s.test), [...TEST_KINDS], `${p.name}: one sample per test kind`);
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
  // Every forwarded byte crosses the boundary four times on this tier (TUN read, send, receive, TUN write).
  t.ok((batch?.summary.copies_per_byte?.median ?? 0) >= 3.9, 'batch/udp copies each byte about four times');
  t.equal(batch?.ratios.tcp1_gbps, null, 'no kernel VXLAN in this run: the ratio is null, not a made-up number');
  const report = readFileSync(join(out, 'report.md'), 'utf8');
  t.match(report, /\| batch\/udp \|/, 'report.md has a row per path');
  for (const f of ['throughput.svg', 'cpu-per-gb.svg', 'latency.svg', 'copies-per-packet.svg']) {
    t.ok(existsSync(join(out, f)) && readFileSync(join(out, f), 'utf8').startsWith('<svg'), `${f} written`);
  }
});

t.test('SIGINT in the middle of a test removes namespaces and processes', async (t) => {
  const out = mkdtempSync(join(tmpdir(), 'weft-bench-int-'));
  t.teardown(() => rmSync(out, { recursive: true, force: true }));
  let id: number | null = null;
  let sent = false;
  const r = await runCli(['bench', '--only', 'batch/udp', '--seconds', '3', '--repeats', '2', '--out', out], 90_000, (text, kill) => {
    const m = /up on testbed w(\d+)/.exec(text);
    if (m) id = Number(m[1]);
    // Interrupt once the second test (4 TCP streams through the daemons) is under way.
    if (!sent && id !== null && /tcp4 \(repeat 1/.test(text)) {
      sent = true;
      setTimeout(() => kill('SIGINT'), 1_500);
    }
  });
  t.ok(sent, 'the run reached a test and was interrupted');
  t.equal(r.code, 130, 'exits with 130 after SIGINT');
  t.ok(id !== null, 'the run named its testbed');
  if (id !== null) {
    t.same(namespacesOf(id), [], `no namespace of testbed w${id} left`);
    t.same(processesOf(id), [], `no daemon or etcd of testbed w${id} left`);
  }
  const partial = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as BenchResult;
  t.equal(partial.interrupted, true, 'partial results.json says interrupted');
  t.ok(partial.paths[0]?.samples.some((s) => s.test === 'tcp1' && s.ok), 'and keeps the finished sample');
});
