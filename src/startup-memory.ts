// What start-up alone needed, given back once the daemon has settled. Compiling the module graph and parsing etcd's
// protobuf schema leave freed blocks in glibc's arenas (V8's helper thread has an arena of its own), and glibc gives
// back only the free top of the main heap: the rest stays in the daemon's RSS until it is reused, which an idle
// daemon never does. One malloc_trim(0), a few seconds after subnet.env is written, returns those pages.
import type { Logger } from './log.js';
import { mallocTrim } from './native.js';

/** After subnet.env: the peer list is in, the etcd watches are open and the healthz server listens. */
export const SETTLE_MS = 5_000;

/** Trims malloc's arenas SETTLE_MS from now (the timer keeps no process alive); the returned stop cancels it. */
export function trimAfterStart(log: Logger, delayMs = SETTLE_MS): () => void {
  const timer = setTimeout(() => {
    const before = process.memoryUsage.rss();
    const released = mallocTrim();
    log.debug({ released, rssBefore: before, rssAfter: process.memoryUsage.rss() }, 'malloc arenas trimmed');
  }, delayMs);
  timer.unref();
  return () => clearTimeout(timer);
}
