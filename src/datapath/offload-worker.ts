// A worker thread running one more queue of the offload tier (queues 1..N-1): its own TUN queue, opened on the
// same multi-queue device, and its own SO_REUSEPORT socket, driven by the same QueueRunner as queue 0. The main
// thread sends the peer set on every change and 'close' at the end; counters go straight into the shared buffer, the
// per-peer counters (indexed by this thread's own peer snapshot) come back as a report every second.
import { parentPort, workerData } from 'node:worker_threads';
import { encapByName } from '../encap/index.js';
import { silentLogger } from '../log.js';
import * as native from '../native.js';
import type { OffloadPart, TunOffloads } from './offload-config.js';
import { QueueRunner } from './offload-runner.js';
import type { PeerTraffic } from './datapath.js';
import { PathState } from './path-state.js';
import type { Peer } from './peers.js';
import { WeftError } from '../errors.js';

export interface WirePeer {
  readonly net: number;
  readonly prefixLen: number;
  readonly publicIp: number;
  readonly port: number;
  readonly mac: Uint8Array;
  readonly vni: number;
  readonly partialCsum: boolean;
}

export interface WorkerInit {
  readonly queue: number;
  readonly tunName: string;
  readonly encapName: string;
  readonly local: { readonly mac: Uint8Array; readonly vni: number };
  readonly bindAddress: string;
  readonly port: number;
  readonly networkIp: number;
  readonly networkPrefixLen: number;
  readonly gatewayIp: number;
  readonly mtu: number;
  readonly tun: TunOffloads;
  readonly disabled: readonly OffloadPart[];
  readonly counters: SharedArrayBuffer;
}

export type WorkerRequest = { type: 'peers'; peers: WirePeer[] } | { type: 'close' };
// 'ready' names the thread's TUN queue and socket: a thread that dies leaves its fds open (they are the process's),
// and the main thread closes them.
export type WorkerReply =
  { type: 'ready'; fds: number[] } | { type: 'error'; message: string } | { type: 'traffic'; traffic: PeerTraffic[] };

/** How often a worker reports its per-peer counters (they are not shared memory: the peer set is per thread). */
export const TRAFFIC_REPORT_MS = 1000;

function start(init: WorkerInit): void {
  const port = parentPort;
  if (!port) return;
  const encap = encapByName(init.encapName);
  if (!encap) throw new WeftError('WEFT_ERR_BACKEND', `no encap ${init.encapName}`);
  const tun = native.tunOpen(init.tunName, native.TUN_MULTI_QUEUE | native.TUN_VNET_HDR);
  let runner: QueueRunner;
  try {
    native.tunSetOffload(tun.fd, init.tun.flags);
    const counters = new Float64Array(init.counters, init.queue * native.COUNTER_COUNT * 8, native.COUNTER_COUNT);
    const path = new PathState(
      {
        tunFd: tun.fd,
        encap,
        local: { mac: Buffer.from(init.local.mac), vni: init.local.vni },
        bindAddress: init.bindAddress,
        port: init.port,
        networkIp: init.networkIp,
        networkPrefixLen: init.networkPrefixLen,
        gatewayIp: init.gatewayIp,
        log: silentLogger,
      },
      counters,
    );
    runner = new QueueRunner(path, {
      bindAddress: init.bindAddress,
      port: init.port,
      reusePort: true,
      mtu: init.mtu,
      tun: init.tun,
      disabled: new Set(init.disabled),
    });
    const report = setInterval(() => {
      const reply: WorkerReply = { type: 'traffic', traffic: path.peerTraffic() };
      port.postMessage(reply);
    }, TRAFFIC_REPORT_MS);
    port.on('message', (m: WorkerRequest) => {
      if (m.type === 'peers') {
        const peers: Peer[] = m.peers.map((p) => ({
          net: p.net,
          prefixLen: p.prefixLen,
          publicIp: p.publicIp,
          port: p.port,
          encap: { mac: Buffer.from(p.mac), vni: p.vni },
          partialCsum: p.partialCsum,
        }));
        path.setPeers(peers);
      } else {
        clearInterval(report);
        runner.close();
        native.close(tun.fd);
        port.close();
      }
    });
  } catch (e) {
    native.close(tun.fd);
    throw e;
  }
  const ready: WorkerReply = { type: 'ready', fds: [tun.fd, runner.sockFd] };
  port.postMessage(ready);
}

try {
  start(workerData as WorkerInit);
} catch (e) {
  const reply: WorkerReply = { type: 'error', message: e instanceof Error ? e.message : String(e) };
  parentPort?.postMessage(reply);
}
