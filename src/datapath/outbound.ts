// Outbound flow of the batch tier: TUN -> route lookup -> encap -> socket.
//
//  1. The TUN fd is readable: C reads up to BATCH packets into the slab, each at HEADROOM in its own slot (tunRead).
//  2. JS looks up each inner destination in the route table and writes the peer index, or a verdict, per slot.
//     A destination inside the Network that no lease covers gets ICMP net-unreachable back through TUN.
//  3. C decrements the TTL and writes the encap header into the headroom, in place (encapBatch). A TypeScript-only
//     encap does the same here, packet by packet, on views of the slab.
//  4. C sends the batch with sendmmsg (sendBatch). When the socket buffer is full the rest of the batch waits in
//     its slots: TUN reads stop and the socket is polled for writable (back-pressure, not drops).
//  5. Packets whose TTL ran out get ICMP time-exceeded.
// No JS allocation happens per packet: everything lives in the slab and the typed arrays of the Batch.
import * as native from '../native.js';
import { Batch } from './batch.js';
import { C, ICMP_PER_BATCH, type PathState } from './path-state.js';
import { NO_ROUTE } from './routes.js';
import { decrementTtl, readIp } from './ttl.js';

export class Outbound {
  readonly batch: Batch;
  /** Packets in the batch and the next one to send: resume < count means the socket pushed back. */
  private count = 0;
  private resume = 0;

  constructor(
    private readonly path: PathState,
    private readonly sockFd: number,
    batchSize: number,
  ) {
    this.batch = new Batch(batchSize);
  }

  get blocked(): boolean {
    return this.resume < this.count;
  }

  /** Steps 1-5 for up to `rounds` batches; returns false when the socket pushed back. */
  run(rounds: number): boolean {
    const { path, batch } = this;
    for (let r = 0; r < rounds; r++) {
      if (this.blocked && !this.flush()) return false;
      const n = native.tunRead(
        path.tunFd,
        batch.slab,
        batch.slotSize,
        native.HEADROOM,
        batch.len,
        batch.size,
        path.counters,
      );
      if (n === 0) return true;
      this.route(n);
      this.encap(n);
      this.count = n;
      this.resume = 0;
      const sent = this.flush();
      path.answerExpired(batch.slab, batch.slotSize, batch.len, batch.peer, n); // step 5
      if (!sent) return false;
      if (n < batch.size) return true;
    }
    return true;
  }

  /** Step 4, also called when the socket turns writable again. Returns true when the whole batch went out. */
  flush(): boolean {
    const { path, batch } = this;
    const snap = path.snapshot;
    this.resume = native.sendBatch(
      this.sockFd,
      batch.slab,
      batch.off,
      batch.len,
      batch.peer,
      this.resume,
      this.count,
      snap.table,
      path.counters,
    );
    return !this.blocked;
  }

  // Step 2.
  private route(n: number): void {
    const { path, batch } = this;
    const routes = path.snapshot.routes;
    let icmp = 0;
    for (let i = 0; i < n; i++) {
      const pkt = i * batch.slotSize + native.HEADROOM;
      const len = batch.len[i] as number;
      if (len < 20 || (batch.slab[pkt] as number) >> 4 !== 4) {
        batch.peer[i] = native.VERDICT_MALFORMED;
        path.count(C.dropMalformed);
        continue;
      }
      const dst = readIp(batch.slab, pkt + 16);
      const peer = routes.lookup(dst);
      batch.peer[i] = peer;
      if (peer !== NO_ROUTE) {
        path.sentTo(peer, len);
        continue;
      }
      batch.peer[i] = native.VERDICT_NO_ROUTE;
      path.count(C.dropNoRoute);
      if (path.inNetwork(dst) && icmp++ < ICMP_PER_BATCH) path.netUnreachable(batch.slab, pkt, len);
    }
  }

  // Step 3.
  private encap(n: number): void {
    const { path, batch } = this;
    const { encap, local } = path;
    if (encap.nativeId !== null) {
      native.encapBatch(
        encap.nativeId,
        batch.slab,
        batch.slotSize,
        native.HEADROOM,
        batch.len,
        batch.off,
        batch.peer,
        n,
        path.snapshot.table,
        local.mac,
        local.vni,
        path.counters,
      );
      return;
    }
    const peers = path.snapshot.peers;
    for (let i = 0; i < n; i++) {
      const peer = batch.peer[i] as number;
      if (peer < 0) continue;
      const pkt = i * batch.slotSize + native.HEADROOM;
      if (!decrementTtl(batch.slab, pkt)) {
        batch.peer[i] = native.VERDICT_TTL_EXCEEDED;
        path.count(C.dropTtlExceeded);
        continue;
      }
      const len = batch.len[i] as number;
      const start = encap.encode(batch.slab, pkt, len, peers[peer]!.encap, local);
      batch.off[i] = start;
      batch.len[i] = len + (pkt - start);
    }
  }
}
