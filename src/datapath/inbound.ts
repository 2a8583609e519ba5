// Inbound flow of the batch and offload tiers: socket -> [transform] -> decap -> sender checks -> TUN. The mirror of
// outbound.ts, one forwarder for both tiers; functions appear in the order packets pass through them.
//
//  1. The socket is readable: C receives up to `slots` datagrams with recvmmsg, each whole into its own slot, with
//     the outer source address (inRecv). On the offload tier UDP_GRO joins up to 64 equal datagrams of one sender
//     into one buffer. A datagram too big for a slot is counted and dropped (MSG_TRUNC).
//  2. [transform] WireGuard (wireguard.ts, batch tier): each datagram is opened in place (handshake messages go to
//     the device with their source address and port); the opened packets become the segments directly, with the
//     sender check of step 4 done by key: the inner source must lie in the subnet of the peer whose key opened it.
//     Steps 3 and 4 are skipped.
//  3. C splits the buffers into datagrams and checks and strips the encap header of each (inDecap): segOff/segLen
//     frame the inner IPv4 packets, drops are counted by reason. A TypeScript-only encap decodes here, datagram by
//     datagram, into the same segment arrays.
//  4. JS checks each sender: the outer source must be a peer's lease PublicIP, and the inner source must lie in that
//     peer's subnet. An inner IPv6 packet must come from a peer's PublicIPv6 (the queue's IPv6 socket: its segAddr
//     is then the slot, the address in inAddr6) with its source in that peer's IPv6 subnet; an inner IPv4 packet
//     from an IPv6 outer source, or the reverse, is spoofed. Anything else is dropped and counted (anti-spoofing).
//  5. C writes the accepted packets to TUN (inWrite). Offload tier: consecutive TCP segments of one flow become one
//     super-packet with a virtio header (a partial checksum travels on as NEEDS_CSUM). Batch tier: partial
//     checksums are completed, and a packet longer than the TUN MTU (a kernel VXLAN peer sends a whole TCP burst as
//     one inner packet) is written as MTU-sized TCP segments, or dropped and counted.
import * as native from '../native.js';
import { C, type PathState } from './path-state.js';
import type { Queue } from './queue.js';
import { NO_ROUTE } from './routes.js';
import { readIp } from './ttl.js';
import type { WireguardTransform } from './wireguard.js';

export class Inbound {
  private readonly decoded = new Int32Array(1);

  constructor(
    private readonly path: PathState,
    private readonly q: Queue,
    private readonly transform: WireguardTransform | null = null,
  ) {}

  /** Steps 1-5 for up to `rounds` batches. */
  run(rounds: number): void {
    const { q } = this;
    for (let r = 0; r < rounds; r++) {
      const n = native.inRecv(q.handle); // 1
      if (n === 0) return;
      let segs: number;
      if (this.transform) {
        segs = this.transform.open(q, n); // 2
      } else {
        segs = this.decap(n); // 3
        this.checkSenders(segs); // 4
      }
      native.inWrite(q.handle, segs); // 5
      if (n < q.slots) return;
    }
  }

  // Step 3.
  private decap(n: number): number {
    const { path, q } = this;
    const { encap, local } = path;
    if (encap.nativeId !== null) return native.inDecap(q.handle, n);
    let segs = 0;
    for (let i = 0; i < n; i++) {
      const len = q.inLen[i] as number;
      if (len < 0) continue;
      const inner = encap.decode(q.inSlab, i * q.slotSize, len, local, this.decoded);
      if (inner < 0) {
        path.count(native.dropCounterOf(inner));
        continue;
      }
      q.segOff[segs] = inner;
      q.segLen[segs] = this.decoded[0] as number;
      q.segAddr[segs] = q.inAddr[i] as number;
      segs++;
    }
    return segs;
  }

  // Step 4. Segments of one GRO buffer share their outer source: look it up once per run.
  private checkSenders(segs: number): void {
    const { path, q } = this;
    const snap = path.snapshot;
    const { routes, routes6 } = snap;
    const slab = q.inSlab;
    let lastAddr = -1;
    let peer = NO_ROUTE;
    let outer6 = false;
    for (let k = 0; k < segs; k++) {
      const addr = q.segAddr[k] as number;
      if (addr !== lastAddr) {
        // 0.0.0.0/8 is never an IPv4 source (C drops those): there segAddr is the slot of an IPv6 datagram.
        outer6 = addr < 0x1000000 && q.inAddr6 !== null;
        peer = outer6 ? routes6.peerBySource(q.inAddr6!, addr * 16) : routes.peerBySource(addr);
        lastAddr = addr;
      }
      if (peer === NO_ROUTE) {
        q.segLen[k] = native.VERDICT_UNKNOWN_PEER;
        path.count(C.dropUnknownPeer);
        continue;
      }
      const off = q.segOff[k] as number;
      const inner6 = (slab[off] as number) >> 4 === 6;
      let sender = NO_ROUTE;
      if (inner6 && outer6) sender = routes6.senderOf(peer, slab, off + 8);
      else if (!inner6 && !outer6) sender = routes.senderOf(peer, readIp(slab, off + 12));
      if (sender === NO_ROUTE) {
        q.segLen[k] = native.VERDICT_SPOOFED;
        path.count(C.dropSpoofedSource);
      } else {
        path.receivedFrom(snap.recordPeer[sender] as number, q.segLen[k] as number);
      }
    }
  }
}
