// The suite's last check (tap's `after`, run once every test file has ended): no weft- temp folder is left.
// scripts/tap.sh gives the run a temp folder of its own (TMPDIR, named in WEFT_TEST_TMPDIR), so what is in it was
// made by this run, never by another run on the same machine; it removes the folder afterwards. Run without it
// (`npx tap test/x.test.ts`), tests share the system's temp folder with everyone, and this check skips.
import { readdirSync } from 'node:fs';
import t from 'tap';

const dir = process.env['WEFT_TEST_TMPDIR'];
if (dir === undefined) {
  t.plan(0, 'run through npm test (scripts/tap.sh) to check for temp folders left behind');
} else {
  const left = readdirSync(dir);
  t.same(
    left.filter((f) => f.startsWith('weft-')),
    [],
    `no weft- temp folder left by the test run in ${dir}`,
  );
  const others = left.filter((f) => !f.startsWith('weft-'));
  if (others.length > 0) t.comment(`also left in the run's temp folder (not weft's): ${others.join(' ')}`);
}
