// What a daemon loads at start: the daemon module graph never pulls in pino-pretty (only for a terminal) or
// prom-client (only when /metrics is served, loaded then), and the `weft` bin runs node with a small young
// generation and one V8 background thread. Checked in a fresh node process against dist/. (That src/ never imports
// bench/ or testbed/ is dependency-cruiser's rule.)
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

t.test("the weft bin's shebang caps V8's young generation and its background threads", async (t) => {
  const first = readFileSync(WEFT_CLI, 'utf8').split('\n', 1)[0];
  t.match(first, /^#!\/usr\/bin\/env -S node .*--max-semi-space-size=1\b/);
  t.match(first, /^#!\/usr\/bin\/env -S node .*--v8-pool-size=1\b/);
});
