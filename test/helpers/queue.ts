// Queues without devices for the byte-level tests: a native queue (src/datapath/queue.ts) whose fds are -1, so the
// encap and decap steps run over hand-made packets in its slabs, plus small views shaped like one direction's batch.
import { Queue } from '../../src/datapath/queue.js';
import * as n from '../../src/native.js';

export const SLOT = n.SLOT_SIZE;

export interface ByteQueueOptions {
  readonly slots: number;
  readonly encap: number | null;
  readonly vni?: number;
  readonly localMac?: Buffer;
  readonly vnet?: boolean;
  readonly mtu?: number;
  readonly tunFd?: number;
  readonly sockFd?: number;
}

export function byteQueue(o: ByteQueueOptions): Queue {
  return new Queue({
    tunFd: o.tunFd ?? -1,
    sockFd: o.sockFd ?? -1,
    encap: o.encap,
    vni: o.vni ?? 1,
    localMac: o.localMac ?? Buffer.alloc(6),
    mtu: o.mtu ?? (o.vnet === true ? 1450 : 0),
    slots: o.slots,
    vnet: o.vnet ?? false,
    gro: o.vnet ?? false,
    udpSegment: true,
    counters: new Float64Array(n.COUNTER_COUNT),
  });
}

/** The out side of a queue as a batch: packets placed at HEADROOM of each slot, peer[i] = 0, the peer table set. */
export function outBatch(q: Queue, pkts: readonly Buffer[], table: Buffer) {
  pkts.forEach((p, i) => {
    p.copy(q.outSlab, q.outPacket(i));
    q.outLen[i] = p.length;
    q.outPeer[i] = 0;
  });
  q.usePeers(table);
  return {
    q,
    slab: q.outSlab,
    len: q.outLen,
    off: q.outOff,
    peer: q.outPeer,
    counters: q.opts.counters,
    encap: (count = pkts.length) => n.outEncap(q.handle, count),
  };
}

/** Each datagram decapsulated alone (native.decap) at slot i: off[i]/len[i] absolute in slab, or len[i] = verdict. */
export function decapEach(encap: number, dgrams: readonly Buffer[], vni: number) {
  const slab = Buffer.alloc(Math.max(1, dgrams.length) * SLOT);
  const len = new Int32Array(Math.max(1, dgrams.length));
  const off = new Int32Array(len.length);
  const counters = new Float64Array(n.COUNTER_COUNT);
  const inner = new Int32Array(1);
  dgrams.forEach((d, i) => {
    d.copy(slab, i * SLOT);
    const at = n.decap(encap, slab, i * SLOT, d.length, vni, inner, counters);
    if (at < 0) {
      len[i] = at;
      return;
    }
    off[i] = at;
    len[i] = inner[0] as number;
  });
  return { slab, len, off, counters };
}
