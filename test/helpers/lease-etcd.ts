// One real etcd on loopback for a lease test file (startEtcd: free ports, its own data folder), a raw etcd3 client on
// it for what the tests write and read behind the registry's back, and the registries and run loops the tests make:
// all closed, aborted and wiped when the file's tests end, also on failure.
import type { Test } from 'tap';
import { Etcd3 } from 'etcd3';
import { startEtcd, type EtcdServer } from '../../testbed/etcd.js';
import { EtcdRegistry } from '../../src/lease/registry.js';
import { silentLogger } from '../../src/log.js';

export interface LeaseEtcd {
  /** The server; set once the file's tests start (tap's before). */
  readonly etcd: EtcdServer;
  /** A plain etcd3 client on it. */
  readonly raw: Etcd3;
  /** A registry on `prefix` (2 s call timeout), closed at the end. */
  registry(prefix: string): EtcdRegistry;
  /** Closes `r` at the end: for registries a test builds itself. */
  track<R extends EtcdRegistry>(r: R): R;
  /** An AbortController aborted at the end: for the managers' run loops. */
  abortAtEnd(): AbortController;
}

export function leaseEtcd(t: Test): LeaseEtcd {
  let etcd: EtcdServer | undefined;
  let raw: Etcd3 | undefined;
  const registries: EtcdRegistry[] = [];
  const aborts: AbortController[] = [];
  t.before(async () => {
    etcd = await startEtcd();
    raw = new Etcd3({ hosts: etcd.endpoint });
  });
  t.teardown(async () => {
    for (const a of aborts) a.abort();
    for (const r of registries) r.close();
    raw?.close();
    await etcd?.wipe();
  });
  const started = <T>(x: T | undefined): T => {
    if (x === undefined) throw new Error('leaseEtcd: etcd is not started yet (use it inside a test)');
    return x;
  };
  const env: LeaseEtcd = {
    get etcd() {
      return started(etcd);
    },
    get raw() {
      return started(raw);
    },
    registry: (prefix) =>
      env.track(new EtcdRegistry({ endpoints: [env.etcd.endpoint], prefix, log: silentLogger, timeoutMs: 2000 })),
    track: (r) => {
      registries.push(r);
      return r;
    },
    abortAtEnd: () => {
      const a = new AbortController();
      aborts.push(a);
      return a;
    },
  };
  return env;
}
