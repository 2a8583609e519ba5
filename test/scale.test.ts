// The scale tool at CI size: 2 real weft hosts and 100 simulated ones (leases only), plus the lookup and ip -batch
// parts at small sizes. Checks convergence and that every part produced its figures, never timing.
//
//   bridge netns: etcd + the loader (creates the 100 leases and the probes)
//   h1, h2: weft daemon (udp, /metrics on 127.0.0.1:9471) + a prober each
//   h3: a host that joins after the bulk load; h1 also hosts the ip -batch run on its own flannel.1
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runScale } from '../bench/scale/runner.js';
import { writeScaleReport } from '../bench/scale/report.js';

t.test('scale tool at 100 simulated hosts', { timeout: 180_000 }, async (t) => {
  const r = await runScale({
    sizes: [100],
    realHosts: 2,
    probes: 3,
    lookupSizes: [10, 100],
    kernelSizes: [100],
    idleSeconds: 1,
    convergeTimeoutMs: 60_000,
  });
  t.same(r.errors, [], 'no part failed');
  const s = r.sizes[0]!;
  t.equal(s.created + s.skipped, 100, 'the loader handled all 100 simulated hosts');
  t.ok(s.created >= 95, `almost none clashed with a real host's subnet (${s.skipped} skipped)`);
  t.not(s.convergeMs, null, 'every daemon counted every lease');
  t.equal(s.daemons.length, 2, 'both daemons measured');
  for (const d of s.daemons) {
    t.equal(d.peers, s.keysInEtcd - 1, `${d.host}'s weft_peers counts every other key in etcd (${d.peers})`);
    t.ok(d.rssMB > 0 && d.cpuSecondsToConverge >= 0, `${d.host}'s RSS and CPU were read from /proc`);
  }
  t.equal(s.probes?.failed, 0, 'every probe lease became a live route in every daemon');
  t.equal(s.probes?.latenciesMs.length, 6, 'one latency per probe and daemon');
  t.ok(
    s.etcdDuringProbes !== null && s.etcdDuringProbes.rangeRpcs < 3 * 2,
    'watch events cost no re-list of the prefix (fewer Range RPCs than events)',
  );
  t.not(s.join?.convergedMs ?? null, null, 'a host joining later gets a lease and counts every peer');
  t.same(
    r.lookup.map((l) => l.routes),
    [10, 100],
    'route lookup measured at each size',
  );
  t.ok(
    r.lookup.every((l) => l.nsPerLookup > 0),
    'lookup figures are positive',
  );
  t.equal(r.kernel[0]?.routesInstalled, 100, 'ip -batch installed 100 routes');
  t.equal(r.kernel[0]?.neighboursInstalled, 100, 'and 100 permanent neighbours');
  t.ok(r.kernel[0]?.lastRouteLive, 'ip route get resolves through flannel.1');

  const dir = mkdtempSync(join(tmpdir(), 'weft-scale-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeScaleReport(r, { outDir: dir });
  t.match(readFileSync(join(dir, 'report.md'), 'utf8'), /^## Scale/, 'report.md opens with the scale section');
  t.match(readFileSync(join(dir, 'scale.svg'), 'utf8'), /^<svg [^>]*xmlns/, 'scale.svg is an SVG');
  t.equal(
    (JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as { scale: { sizes: unknown[] } }).scale.sizes.length,
    1,
    'results.json holds the run',
  );
});
