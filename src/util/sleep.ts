// Waiting without a timer that outlives its purpose: the one sleep of src/, the tools and the tests.

/**
 * Resolves after `ms`, or as soon as `signal` aborts. It never rejects: a loop that sleeps checks the signal itself
 * when it wakes.
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted === true) return resolve();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
