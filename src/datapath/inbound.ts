// Inbound flow of the batch tier: socket -> decap -> sender checks -> TUN. The mirror of outbound.ts.
//
//  1. The socket is readable: C receives up to BATCH datagrams with recvmmsg, each whole into its own slot, with the
//     outer source address (udpRecv). A datagram too big for a slot is counted and dropped (MSG_TRUNC).
//  2. C checks and strips the encap header (decapBatch): off/len now frame the inner IPv4 packet, or len holds a
//     negative verdict already counted by reason. A TypeScript-only encap decodes here, packet by packet.
//  3. JS checks the sender: the outer source must be a peer's lease PublicIP, and the inner source must lie in that
//     peer's subnet. Anything else is dropped and counted (anti-spoofing).
//  4. C writes the accepted packets to TUN (tunWrite). A packet longer than the TUN MTU (a kernel VXLAN peer sends a
//     whole TCP burst as one inner packet) is written as MTU-sized TCP segments, or dropped and counted.
import * as native from '../native.js';
import { DecodeVerdict } from '../encap/encap.js';
import { Batch } from './batch.js';
import { C, type PathState } from './path-state.js';
import { NO_ROUTE } from './routes.js';
import { readIp } from './ttl.js';
import { WeftError } from '../errors.js';

export class Inbound {
  readonly batch: Batch;
  private readonly decoded = new Int32Array(1);

  constructor(
    private readonly path: PathState,
    private readonly sockFd: number,
    batchSize: number,
  ) {
    this.batch = new Batch(batchSize);
  }

  /** Steps 1-4 for up to `rounds` batches. */
  run(rounds: number): void {
    const { path, batch } = this;
    for (let r = 0; r < rounds; r++) {
      const n = native.udpRecv(
        this.sockFd,
        batch.slab,
        batch.slotSize,
        batch.len,
        batch.addr,
        batch.size,
        path.counters,
      );
      if (n === 0) return;
      this.decap(n);
      this.checkSenders(n);
      native.tunWrite(path.tunFd, batch.slab, batch.off, batch.len, n, path.counters, path.tunMtu);
      if (n < batch.size) return;
    }
  }

  // Step 2.
  private decap(n: number): void {
    const { path, batch } = this;
    const { encap, local } = path;
    if (encap.nativeId !== null) {
      native.decapBatch(encap.nativeId, batch.slab, batch.slotSize, batch.len, batch.off, n, local.vni, path.counters);
      return;
    }
    for (let i = 0; i < n; i++) {
      const len = batch.len[i] as number;
      if (len < 0) continue;
      const base = i * batch.slotSize;
      const inner = encap.decode(batch.slab, base, len, local, this.decoded);
      if (inner < 0) {
        batch.len[i] = native.VERDICT_MALFORMED;
        path.count(dropCounter(inner));
        continue;
      }
      batch.off[i] = inner;
      batch.len[i] = this.decoded[0] as number;
    }
  }

  // Step 3.
  private checkSenders(n: number): void {
    const { path, batch } = this;
    const routes = path.snapshot.routes;
    for (let i = 0; i < n; i++) {
      if ((batch.len[i] as number) <= 0) continue;
      const peer = routes.peerBySource(batch.addr[i] as number);
      if (peer === NO_ROUTE) {
        batch.len[i] = native.VERDICT_UNKNOWN_PEER;
        path.count(C.dropUnknownPeer);
      } else if (!routes.allowsSource(peer, readIp(batch.slab, (batch.off[i] as number) + 12))) {
        batch.len[i] = native.VERDICT_SPOOFED;
        path.count(C.dropSpoofedSource);
      } else {
        path.receivedFrom(peer, batch.len[i] as number);
      }
    }
  }
}

// A TypeScript encap's decode verdict counts as the native drop of the same name (badVni -> drop_bad_vni); the
// numbers differ, since src/encap does not depend on the addon. A verdict without a native twin fails at load.
const decodeDropCounter = new Map<number, number>(
  Object.entries(DecodeVerdict).map(([name, verdict]) => {
    const drop = name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`) as native.DropName;
    if (!native.dropNames.includes(drop)) {
      throw new WeftError('WEFT_ERR_NATIVE', `DecodeVerdict.${name} has no native drop reason`);
    }
    return [verdict, native.dropCounterOf(native.verdictOf(drop))];
  }),
);

export function dropCounter(verdict: number): number {
  return decodeDropCounter.get(verdict) ?? C.dropMalformed;
}
