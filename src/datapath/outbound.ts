// Outbound flow of the batch and offload tiers: TUN -> route -> encap -> [transform] -> socket. One forwarder for
// both; the queue (queue.ts, native/queue.c) knows whether its TUN carries super-packets. Functions appear in the
// order packets pass through them.
//
//  1. The TUN fd is readable: C reads up to `slots` packets, each at HEADROOM in its own slot (outRead). On the
//     offload tier each is a TCP/UDP super-packet of up to 64 KiB with its virtio_net_hdr just in front.
//  2. JS looks up each inner destination in the route table (once per super-packet) and writes the peer index, or a
//     verdict, per slot. A destination inside the Network that no lease covers gets ICMP net-unreachable. An IPv6
//     packet is looked up in RouteTable6 and goes to the peer's IPv6 record (its PublicIPv6); one with no lease in
//     IPv6Network gets ICMPv6 no-route, one too long for the IPv6 underlay ICMPv6 packet-too-big.
//  3. C builds the train (outEncap): the TTL decremented and the encap header written in place in front of each
//     packet (batch), or each super-packet cut into MTU-sized segments whose headers go to a small header area while
//     the payload stays in the slot, the encap header in front of each, one UDP_SEGMENT message per 64 segments
//     (offload; checksums from one pass over the payload, or none for a peer that takes partial checksums). A
//     TypeScript-only encap writes its header here instead, packet by packet, on views of the slab.
//  4. [transform] WireGuard (wireguard.ts, batch tier): there is no encap header; instead C checks the header and
//     decrements the TTL as in 3 (outHop), and every packet is sealed in place for its peer's current session
//     (header in the headroom, padding and tag after), or dropped, counted, while the peer's handshake is in
//     flight. The train then frames the sealed messages.
//  5. C sends the train with sendmmsg, gathering headers and payloads (outSend). When the socket buffer is full the
//     rest waits in place: TUN reads stop and the socket that refused it (outRefused) is polled for writable
//     (back-pressure, not drops).
//  6. Packets whose TTL (hop limit) ran out get ICMP (ICMPv6) time-exceeded.
// No JS allocation happens per packet: everything lives in the queue's slab and typed arrays.
import * as native from '../native.js';
import { C, ICMP_PER_BATCH, type PathState } from './path-state.js';
import type { Queue } from './queue.js';
import { recordEncap } from './peers.js';
import { NO_ROUTE } from './routes.js';
import { decrementHopLimit, decrementTtl, isIPv6, readIp } from './ttl.js';
import type { WireguardTransform } from './wireguard.js';

export class Outbound {
  /** Messages of the current train not sent yet: > 0 means the socket pushed back. */
  private left = 0;

  constructor(
    private readonly path: PathState,
    private readonly q: Queue,
    private readonly transform: WireguardTransform | null = null,
  ) {}

  get blocked(): boolean {
    return this.left > 0;
  }

  /** Steps 1-6 for up to `rounds` batches; returns false when the socket pushed back. */
  run(rounds: number): boolean {
    const { path, q } = this;
    for (let r = 0; r < rounds; r++) {
      if (this.blocked && !this.flush()) return false;
      const n = native.outRead(q.handle); // 1
      if (n === 0) return true;
      q.usePeers(path.snapshot.table);
      this.route(n); // 2
      if (this.transform)
        this.seal(n); // 4 (no encap header: 3 is the seal's train)
      else this.encap(n); // 3
      const sent = this.flush(); // 5
      this.answerExpired(n); // 6
      if (!sent) return false;
      if (n < q.slots) return true;
    }
    return true;
  }

  // Step 2.
  private route(n: number): void {
    const { path, q } = this;
    const routes = path.snapshot.routes;
    const slab = q.outSlab;
    this.icmp = 0;
    for (let i = 0; i < n; i++) {
      const pkt = q.outPacket(i);
      const len = q.outLen[i] as number;
      if (len < 20 || (slab[pkt] as number) >> 4 !== 4) {
        if (isIPv6(slab, pkt, len)) {
          this.route6(i, pkt, len);
          continue;
        }
        q.outPeer[i] = native.VERDICT_MALFORMED;
        if (len >= 0) path.count(C.dropMalformed); // a negative len was counted by C already
        continue;
      }
      const dst = readIp(slab, pkt + 16);
      const peer = routes.lookup(dst);
      if (peer !== NO_ROUTE) {
        q.outPeer[i] = peer;
        path.sentTo(peer, len);
        continue;
      }
      q.outPeer[i] = native.VERDICT_NO_ROUTE;
      path.count(C.dropNoRoute);
      if (path.inNetwork(dst) && this.icmp++ < ICMP_PER_BATCH) {
        native.outIcmp(q.handle, i, native.ICMP_DEST_UNREACH, native.ICMP_NET_UNREACH, path.gatewayIp);
      }
    }
  }

  /** ICMP errors sent in this batch (ICMP_PER_BATCH bounds them). */
  private icmp = 0;

  // Step 2 for an IPv6 packet: its peer's IPv6 record, or a verdict (and ICMPv6, as many as the batch allows).
  private route6(i: number, pkt: number, len: number): void {
    const { path, q } = this;
    const snap = path.snapshot;
    const slab = q.outSlab;
    const rec = path.ipv6 ? snap.routes6.lookup(slab, pkt + 24) : NO_ROUTE;
    // On the offload tier a GSO packet is a super-packet (TSO6): its segments are what must fit, not the whole.
    const gso = q.opts.vnet && (slab[pkt - native.VNET_HDR_LEN + 1] as number) !== 0;
    if (rec === NO_ROUTE) {
      q.outPeer[i] = native.VERDICT_NO_ROUTE;
      path.count(C.dropNoRoute);
      if (path.inNetwork6(slab, pkt + 24) && this.icmp++ < ICMP_PER_BATCH) {
        native.outIcmp6(q.handle, i, native.ICMP6_DEST_UNREACH, native.ICMP6_NO_ROUTE, 0, path.gateway6);
      }
    } else if (path.mtu6 > 0 && len > path.mtu6 && !gso) {
      q.outPeer[i] = native.VERDICT_TOO_BIG;
      path.count(C.dropTooBig);
      if (this.icmp++ < ICMP_PER_BATCH) {
        native.outIcmp6(q.handle, i, native.ICMP6_PACKET_TOO_BIG, 0, path.mtu6, path.gateway6);
      }
    } else {
      q.outPeer[i] = rec;
      path.sentTo(snap.recordPeer[rec] as number, len);
    }
  }

  // Step 3.
  private encap(n: number): void {
    const { path, q } = this;
    const { encap, local } = path;
    if (encap.nativeId === null) {
      const snap = path.snapshot;
      for (let i = 0; i < n; i++) {
        const peer = q.outPeer[i] as number;
        if (peer < 0) continue;
        const pkt = q.outPacket(i);
        const v6 = (q.outSlab[pkt] as number) >> 4 === 6;
        if (!(v6 ? decrementHopLimit(q.outSlab, pkt) : decrementTtl(q.outSlab, pkt))) {
          q.outPeer[i] = native.VERDICT_TTL_EXCEEDED;
          path.count(C.dropTtlExceeded);
          continue;
        }
        const len = q.outLen[i] as number;
        const from = v6 && path.ipv6 ? path.ipv6.local : local;
        const start = encap.encode(q.outSlab, pkt, len, recordEncap(snap, peer), from);
        q.outOff[i] = start;
        q.outLen[i] = len + (pkt - start);
      }
    }
    this.left = native.outEncap(q.handle, n);
  }

  // Steps 3 and 4 with WireGuard (wireguard.ts): batch tier: sealed in place, then framed by C; offload tier: the
  // segments' train, then each message sealed.
  private seal(n: number): void {
    if (this.transform) this.left = this.transform.seal(this.q, n);
  }

  /** Step 5, also called when the socket turns writable again. Returns true when the whole train went out. */
  flush(): boolean {
    this.left = native.outSend(this.q.handle);
    return this.left === 0;
  }

  /** While blocked: the socket that refused the rest of the train (native.SOCK_V4 or SOCK_V6), else 0. */
  refused(): number {
    return this.left > 0 ? native.outRefused(this.q.handle) : 0;
  }

  // Step 6.
  private answerExpired(n: number): void {
    const { path, q } = this;
    let icmp = 0;
    for (let i = 0; i < n && icmp < ICMP_PER_BATCH; i++) {
      if (q.outPeer[i] !== native.VERDICT_TTL_EXCEEDED) continue;
      if ((q.outSlab[q.outPacket(i)] as number) >> 4 === 6) {
        native.outIcmp6(q.handle, i, native.ICMP6_TIME_EXCEEDED, native.ICMP6_EXC_HOPLIMIT, 0, path.gateway6);
      } else {
        native.outIcmp(q.handle, i, native.ICMP_TIME_EXCEEDED, native.ICMP_EXC_TTL, path.gatewayIp);
      }
      icmp++;
    }
  }
}
