// A dead offload worker (--queues 2): its thread is killed (Worker.terminate) inside a namespace host, and the tier
// closes the dead queue's TUN queue and socket and starts the queue again with the current peers; a queue that keeps
// dying fails the tier (and so /healthz) instead of restarting forever.
//
//   h1: a multi-queue TUN with the virtio header and an offload tier of two queues (queue 1 in a worker thread),
//       run by a script of this file against dist/
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestbed } from '../testbed/hosts.js';
import { PACKAGE_ROOT } from '../testbed/cluster.js';

// argv: package root, bind address. Prints a JSON summary; every wait is bounded.
const SCRIPT = `
const [root, bind] = process.argv.slice(2);
const { readdirSync } = await import('node:fs');
const native = await import(root + '/dist/src/native.js');
const { openDatapath, tunFlagsFor } = await import(root + '/dist/src/datapath/index.js');
const { encapByName } = await import(root + '/dist/src/encap/index.js');
const { createLogger } = await import(root + '/dist/src/log.js');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(check, ms) {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(50)) if (check()) return true;
  return check();
}
const tun = native.tunOpen('wq0', tunFlagsFor('offload', 2));
native.linkSet(tun.name, 1450, true);
const tier = openDatapath('offload', {
  tunFd: tun.fd, encap: encapByName('vxlan'), local: { mac: Buffer.from([2, 0, 0, 0, 0, 1]), vni: 1 },
  bindAddress: bind, port: 8472, networkIp: 0x0a310000, networkPrefixLen: 16, gatewayIp: 0x0a310100,
  log: createLogger('warn'), queues: 2,
});
// The private state is read by name: the test kills a thread the way a crash in it would end it.
const worker = () => [...tier.workers.values()][0];
const ready = () => (tier.workerFds?.size ?? 0) === 1;
const fds = () => readdirSync('/proc/self/fd').length;
const out = { readyAtStart: await until(ready, 10000), fdsBefore: fds() };
await worker().terminate();
out.restarted = await until(() => tier.restarts === 1 && ready(), 10000);
out.fdsAfter = fds();
out.failureAfterOne = tier.failure?.() ?? null;
for (let i = 0; i < 5; i++) {
  await until(ready, 10000);
  await worker()?.terminate();
  await sleep(100);
}
out.failureAfterSix = tier.failure?.() ?? null;
out.workersLeft = tier.workers.size ?? tier.workers.length;
out.fdsEnd = fds();
tier.close();
native.close(tun.fd);
process.stdout.write(JSON.stringify(out));
setTimeout(() => process.exit(0), 500).unref();
`;

t.test('a dead offload worker is restarted; one that keeps dying fails the tier', { timeout: 120_000 }, async (t) => {
  const tb = await createTestbed({ hosts: 1 });
  t.teardown(() => tb.destroy());
  // A file, not -e: a worker thread inherits the process's execArgv, and --input-type breaks it.
  const dir = mkdtempSync(join(tmpdir(), 'weft-worker-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'tier.mjs'), SCRIPT);
  const r = await tb.exec(tb.host(1), [process.execPath, join(dir, 'tier.mjs'), PACKAGE_ROOT, tb.hostIP(1)], {
    timeoutMs: 90_000,
  });
  t.equal(r.code, 0, `the script ran: ${r.stderr.trim().slice(-1000)}`);
  const out = JSON.parse(r.stdout || '{}') as Record<string, unknown>;
  t.comment(JSON.stringify(out));
  t.equal(out['readyAtStart'], true, 'queue 1 came up');
  t.equal(out['restarted'], true, 'killed, queue 1 came up again');
  t.equal(out['fdsAfter'], out['fdsBefore'], "the dead queue's TUN queue and socket were closed (no fd more)");
  t.equal(out['failureAfterOne'], null, 'one restart is no failure');
  t.match(out['failureAfterSix'], /offload queue 1 died 6 times/, 'six deaths within a minute fail the tier');
  t.equal(out['workersLeft'], 0, 'and it is not restarted again');
  t.ok((out['fdsEnd'] as number) < (out['fdsBefore'] as number), 'nothing of the dead queue is left open');
});
