// Where the package lives on disk, and its version. Sources run from src/ (tests) and the build from dist/src/, so
// the root is found by walking up to package.json rather than by a fixed number of "../".
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const PACKAGE_ROOT = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error(`package.json not found above ${import.meta.url}`);
    dir = up;
  }
  return dir;
})();

export const VERSION: string = (() => {
  try {
    return (JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
})();

/** The built CLI, for tools that start daemons as a user would. */
export const WEFT_CLI = join(PACKAGE_ROOT, 'dist', 'src', 'cli', 'main.js');
