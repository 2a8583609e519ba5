// The scale tool's lease loader, run next to etcd (the bridge namespace): registers simulated hosts' leases and
// probe leases with flannel's create-if-absent transaction, and reads etcd's /metrics. JSON lines on stdio.
//   node dist/bench/scale/loader-main.js <endpoints> <prefix> <testbedId>
import { EtcdRegistry } from '../../src/lease/registry.js';
import { formatSubnet } from '../../src/ip/subnet.js';
import { silentLogger } from '../../src/log.js';
import { serveLines } from './lines.js';
import { probeSubnet, simAttrs, simSubnet } from './leases.js';
import { WeftError } from '../../src/errors.js';

const [endpoints, prefix, idArg] = process.argv.slice(2);
if (endpoints === undefined || prefix === undefined || idArg === undefined) {
  process.stderr.write('usage: loader-main.js <endpoints> <prefix> <testbedId>\n');
  process.exit(2);
}
const testbedId = Number(idArg);
const registry = new EtcdRegistry({ endpoints: endpoints.split(','), prefix, log: silentLogger, timeoutMs: 10_000 });

serveLines(async (req) => {
  const ttl = typeof req.ttl === 'number' ? req.ttl : 3600;
  switch (req.op) {
    case 'bulk': {
      // Simulated hosts from..from+count-1, `concurrency` creations in flight.
      const from = Number(req.from ?? 0);
      const count = Number(req.count ?? 0);
      const concurrency = Math.max(1, Number(req.concurrency ?? 32));
      const started = performance.now();
      let next = from;
      let created = 0;
      let skipped = 0;
      const worker = async (): Promise<void> => {
        while (next < from + count) {
          const i = next++;
          const l = await registry.createLease(simSubnet(i), simAttrs(testbedId, i), ttl);
          if (l === null) skipped++;
          else created++;
        }
      };
      await Promise.all(Array.from({ length: concurrency }, worker));
      return { created, skipped, ms: performance.now() - started };
    }
    case 'probe': {
      const i = Number(req.i ?? 0);
      const sn = probeSubnet(i);
      const l = await registry.createLease(sn, simAttrs(testbedId, 10_000 + i), ttl);
      // CLOCK_MONOTONIC is one clock for every process on the machine: the probers' times compare with this one.
      const createdAtNs = process.hrtime.bigint().toString();
      return { ok: l !== null, subnet: formatSubnet(sn), createdAtNs };
    }
    case 'metrics': {
      const res = await fetch(String(req.url), { signal: AbortSignal.timeout(5000) });
      return { text: await res.text() };
    }
    default:
      throw new WeftError('WEFT_ERR_BACKEND', `unknown op ${String(req.op)}`);
  }
});
