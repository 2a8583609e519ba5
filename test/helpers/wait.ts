// Waiting in tests: a sleep, and a condition polled within a bound.
import { sleep } from '../../src/util/sleep.js';

export { sleep };

/**
 * Checks `check` every `everyMs` until it holds, for at most `ms`; resolves whether it held. A check that throws
 * counts as not yet (etcd or a daemon may be away for a moment).
 */
export async function until(check: () => boolean | Promise<boolean>, ms: number, everyMs = 100): Promise<boolean> {
  return (await poll(check, ms, everyMs)).held;
}

/** As `until`, but rejects with "timed out ... waiting for <what>" (and the last error a check threw) otherwise. */
export async function waitFor(
  what: string,
  check: () => boolean | Promise<boolean>,
  ms: number,
  everyMs = 100,
): Promise<void> {
  const r = await poll(check, ms, everyMs);
  if (!r.held) {
    const last = r.lastError === undefined ? '' : ` (last error: ${String(r.lastError)})`;
    throw new Error(`timed out after ${ms} ms waiting for ${what}${last}`);
  }
}

async function poll(
  check: () => boolean | Promise<boolean>,
  ms: number,
  everyMs: number,
): Promise<{ held: boolean; lastError?: unknown }> {
  const end = Date.now() + ms;
  let lastError: unknown;
  for (;;) {
    try {
      if (await check()) return { held: true };
    } catch (e) {
      lastError = e;
    }
    if (Date.now() > end) return { held: false, lastError };
    await sleep(everyMs);
  }
}
