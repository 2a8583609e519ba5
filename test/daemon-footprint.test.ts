// What a daemon loads at start: the daemon module graph never pulls in pino-pretty (only for a terminal) or
// prom-client (only when /metrics is served, loaded then), the `weft` bin runs node with a small young generation,
// one V8 background thread and no TurboFan or Sparkplug until the daemon is up, and what start-up freed goes back to
// the kernel (malloc_trim). Checked in a fresh node process against dist/. (That src/ never imports bench/ or
// testbed/ is dependency-cruiser's rule.)
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGE_ROOT, WEFT_CLI } from '../src/package-root.js';

// Imports dist/src/daemon.js (which only defines the daemon) and prints every CommonJS module the process loaded.
const SCRIPT = `
const { createRequire } = await import('node:module');
await import(process.argv[1]);
const require = createRequire(import.meta.url);
process.stdout.write(JSON.stringify(Object.keys(require.cache)));
`;

t.test('the daemon module graph loads neither pino-pretty nor prom-client', async (t) => {
  const r = spawnSync(
    process.execPath,
    ['--input-type=module', '-e', SCRIPT, join(PACKAGE_ROOT, 'dist', 'src', 'daemon.js')],
    { encoding: 'utf8', timeout: 30_000 },
  );
  t.equal(r.status, 0, `imported: ${r.stderr.trim()}`);
  const loaded = JSON.parse(r.stdout || '[]') as string[];
  t.ok(
    loaded.some((m) => m.includes('/node_modules/etcd3/')),
    `the check sees CommonJS modules (${loaded.length})`,
  );
  for (const what of ['/node_modules/prom-client/', '/node_modules/pino-pretty/']) {
    const hits = loaded.filter((m) => m.includes(what));
    t.same(hits.slice(0, 3), [], `nothing under ${what}`);
  }
});

t.test(
  "the weft bin's shebang caps V8's young generation and its background threads, and starts without compilers",
  async (t) => {
    const first = readFileSync(WEFT_CLI, 'utf8').split('\n', 1)[0];
    t.match(first, /^#!\/usr\/bin\/env -S node .*--max-semi-space-size=1\b/);
    t.match(first, /^#!\/usr\/bin\/env -S node .*--v8-pool-size=1\b/);
    t.match(first, /^#!\/usr\/bin\/env -S node .*--heap-growing-percent=50\b/, 'old space grows to 1.5x the live heap');
    t.match(first, /^#!\/usr\/bin\/env -S node .*--no-opt\b/, 'and starts without TurboFan (start-tiering.ts)');
    t.match(first, /^#!\/usr\/bin\/env -S node .*--no-sparkplug\b/, 'and without baseline code');
  },
);

// Under node --no-opt --no-sparkplug functions stay interpreted until optimizeFromNowOn; after it a warm function
// gets baseline code and a hot one is optimized (V8's status bits: 1 << 15 baseline, 16 optimized; synchronous and
// unbatched compiles, so that the check needs no wait).
const TIERING_SCRIPT = `
function warm(n) { let s = 0; for (let i = 0; i < n; i++) s += i % 5; return s; }
function later(n) { let s = 0; for (let i = 0; i < n; i++) s += i % 3; return s; }
function hot(n) { let s = 0; for (let i = 0; i < n; i++) s += i % 7; return s; }
const baseline = (f) => (%GetOptimizationStatus(f) & (1 << 15)) !== 0;
const optimized = (f) => (%GetOptimizationStatus(f) & 16) !== 0;
import(process.argv[1]).then(({ optimizeFromNowOn }) => {
  for (let i = 0; i < 30; i++) warm(10);
  for (let i = 0; i < 3000; i++) hot(1000);
  const before = { baseline: baseline(warm), optimized: optimized(hot) };
  optimizeFromNowOn();
  for (let i = 0; i < 30; i++) later(10);
  for (let i = 0; i < 3000; i++) hot(1000);
  process.stdout.write(JSON.stringify({ before, after: { baseline: baseline(later), optimized: optimized(hot) } }));
});
`;

t.test(
  'optimizeFromNowOn turns Sparkplug and TurboFan on in a node started without them, as the daemon does',
  async (t) => {
    const r = spawnSync(
      process.execPath,
      [
        '--no-opt',
        '--no-sparkplug',
        '--allow-natives-syntax',
        '--no-concurrent-recompilation',
        '--no-concurrent-sparkplug',
        '--no-baseline-batch-compilation',
        '-e',
        TIERING_SCRIPT,
        join(PACKAGE_ROOT, 'dist', 'src', 'start-tiering.js'),
      ],
      { encoding: 'utf8', timeout: 30_000 },
    );
    t.equal(r.status, 0, `ran: ${r.stderr.trim()}`);
    const out = JSON.parse(r.stdout || '{}') as Record<string, unknown>;
    t.same(out.before, { baseline: false, optimized: false }, 'before: interpreted only');
    t.same(out.after, { baseline: true, optimized: true }, 'after: baseline code, and the hot function optimized');
  },
);

// 40 MiB of 60 KiB blocks from malloc (array buffers below glibc's mmap threshold), freed, with one block kept after
// them: free() cannot give the pages back (they are not at the top of the heap), malloc_trim(0) can.
const TRIM_SCRIPT = `
const { mallocTrim } = await import(process.argv[1]);
const { readFileSync } = await import('node:fs');
const anon = () => Number(/^RssAnon:\\s+(\\d+)/m.exec(readFileSync('/proc/self/status', 'utf8'))[1]);
let blocks = Array.from({ length: 680 }, () => Buffer.allocUnsafeSlow(60 * 1024).fill(1));
const pin = Buffer.allocUnsafeSlow(60 * 1024).fill(1);
blocks = null;
globalThis.gc();
await new Promise((r) => setTimeout(r, 200));
const before = anon();
const released = mallocTrim();
process.stdout.write(JSON.stringify({ released, freedKiB: before - anon(), pinned: pin.length }));
`;

t.test(
  "mallocTrim gives back the pages of freed malloc blocks that free() kept (the daemon's trim once settled)",
  async (t) => {
    const r = spawnSync(
      process.execPath,
      ['--expose-gc', '--input-type=module', '-e', TRIM_SCRIPT, join(PACKAGE_ROOT, 'dist', 'src', 'native.js')],
      { encoding: 'utf8', timeout: 30_000 },
    );
    t.equal(r.status, 0, `ran: ${r.stderr.trim()}`);
    const out = JSON.parse(r.stdout || '{}') as { released?: boolean; freedKiB?: number };
    t.equal(out.released, true, 'malloc_trim released memory');
    t.ok((out.freedKiB ?? 0) > 20 * 1024, `RssAnon fell by more than 20 MiB (${out.freedKiB} KiB)`);
  },
);
