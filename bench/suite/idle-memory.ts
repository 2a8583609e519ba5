// Each daemon's memory at idle, read once per path after it is up and before its first test, next to the RSS under
// load that every test reads: VmRSS with its anonymous and file-backed parts (/proc/<pid>/status; node's text and
// the shared libraries are file-backed and shared between daemons) and the daemon's own breakdown from its /status
// `memory` (V8 heap used/total, external, array buffers; weft daemons only, the peers have no /status).
// Idle means settled: the daemon gives back what start-up alone used SETTLE_MS after subnet.env is written
// (src/startup-memory.ts), so the read waits until every daemon is IDLE_AFTER_MS old. Building the path (pods, the
// first ping) takes most of that already: the wait adds a few seconds per path at most.
import { SETTLE_MS } from '../../src/startup-memory.js';
import { sleep } from '../../src/util/sleep.js';
import type { PathEnv } from './paths.js';
import { daemonMemory, processAgeSeconds, processMemory } from './probes.js';
import type { IdleMemory } from './schema.js';

// subnet.env comes 1-3 s after a daemon starts on the shared machine, the trim SETTLE_MS later.
export const IDLE_AFTER_MS = SETTLE_MS + 5_000;

/** The memory of every daemon of `env` once the youngest is IDLE_AFTER_MS old; daemons already gone are left out. */
export async function readIdleMemory(env: PathEnv): Promise<IdleMemory[]> {
  const ages = env.daemons.map((d) => processAgeSeconds(d.pid)).filter((x): x is number => x !== null);
  if (ages.length === 0) return [];
  const waitMs = IDLE_AFTER_MS - Math.min(...ages) * 1000;
  if (waitMs > 0) await sleep(Math.min(waitMs, IDLE_AFTER_MS));
  const out: IdleMemory[] = [];
  for (const d of env.daemons) {
    const mem = processMemory(d.pid);
    const age = processAgeSeconds(d.pid);
    if (mem === null || age === null) continue;
    const own = d.metricsPort > 0 ? await daemonMemory(d.ns, d.metricsPort) : null;
    out.push({
      ns: d.ns,
      ageSeconds: Math.round(age * 10) / 10,
      rssBytes: mem.rss,
      anonBytes: mem.anon,
      fileBytes: mem.file,
      ...(own !== null
        ? {
            heapUsedBytes: own.heapUsed,
            heapTotalBytes: own.heapTotal,
            externalBytes: own.external,
            arrayBuffersBytes: own.arrayBuffers,
          }
        : {}),
    });
  }
  return out;
}
