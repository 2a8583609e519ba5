// Temp folders for tests: a weft-<name>- folder in the temp folder, removed when the test ends, also on failure.
// The suite's last check (test/after/leftovers.ts) fails on any weft- folder a run leaves behind.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';

export function tempDir(t: Test, name: string): string {
  const dir = mkdtempSync(join(tmpdir(), `weft-${name}-`));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
