// One queue of the offload tier: a TUN queue opened with a virtio_net_hdr, one UDP socket, both directions. The
// main thread runs queue 0; with --queues N, workers run the same class for the other queues (offload-worker.ts).
//
// Outbound: TUN -> route per super-packet -> GSO split + encap -> UDP_SEGMENT train
//  1. The TUN fd is readable: C reads up to BATCH packets (up to 64 KiB TCP/UDP super-packets when TSO/USO are on),
//     each with its virtio_net_hdr, at HEADROOM in its own slot (tunReadVnet).
//  2. JS looks up the inner destination once per super-packet and writes the peer index (or a verdict) per slot.
//  3. C splits each super-packet into segments that fit the TUN MTU (sequence numbers, IP IDs, flags, checksums),
//     copying them back to back into the train with room for the encap header in front of each, writes the
//     header, and describes one UDP_SEGMENT message per super-packet (offloadEncap).
//  4. C sends all messages with one sendmmsg (sendTrain). When the kernel answers EIO it falls back to one datagram
//     per segment for good. A full socket stops TUN reads until it drains (back-pressure, as the batch tier).
//  5. ICMP errors: net-unreachable for a Network destination without a lease, time-exceeded for TTL 1.
//
// Inbound: UDP_GRO receive -> decap -> sender checks -> coalesce -> TUN
//  1. C receives up to BATCH buffers with recvmmsg; with UDP_GRO each may hold up to 64 equal-size datagrams
//     (udpRecvGro, gso[i] = their size).
//  2. C splits them and checks/strips the encap header of each: segOff/segLen frame the inner packets (offloadDecap).
//  3. JS checks the sender of each: outer source = a peer's PublicIP, inner source inside that peer's subnet.
//  4. C coalesces consecutive in-order TCP segments of one flow into GSO super-packets and writes everything to
//     TUN with one writev each (groWrite); a lone packet with a partial checksum goes as NEEDS_CSUM.
import * as native from '../native.js';
import { C, ICMP_PER_BATCH, type PathState } from './path-state.js';
import { NO_ROUTE } from './routes.js';
import { readIp } from './ttl.js';
import { WeftError } from '../errors.js';

/** Super-packets per TUN batch and GRO buffers per receive batch. */
export const OFFLOAD_BATCH = 32;
/** Batches per wake-up: bounds how long one direction holds the event loop. */
const ROUNDS = 4;

export interface QueueOptions {
  /** TUN MTU: the largest inner segment GSO may produce. */
  readonly mtu: number;
  /** Send trains with UDP_SEGMENT (else one datagram per segment). */
  readonly udpSegment: boolean;
  /** Coalesce TCP segments before writing to TUN (needs TSO accepted on the TUN). */
  readonly gro: boolean;
}

export class OffloadQueue {
  // Outbound state.
  private readonly outSlab: Buffer;
  private readonly outLen = new Int32Array(OFFLOAD_BATCH);
  private readonly outPeer = new Int32Array(OFFLOAD_BATCH);
  private readonly train: Buffer;
  private readonly maxMsgs: number;
  private readonly msgOff: Int32Array;
  private readonly msgLen: Int32Array;
  private readonly msgGso: Int32Array;
  private readonly msgPeer: Int32Array;
  /** [0]: UDP_SEGMENT still on (C clears it on EIO). */
  readonly sendState = new Int32Array(1);
  private msgCount = 0;
  private resume = 0;
  // Inbound state.
  private readonly inSlab: Buffer;
  private readonly inLen = new Int32Array(OFFLOAD_BATCH);
  private readonly inAddr = new Uint32Array(OFFLOAD_BATCH);
  private readonly inGso = new Int32Array(OFFLOAD_BATCH);
  private readonly segMax = OFFLOAD_BATCH * native.GRO_MAX_SEGS;
  private readonly segOff = new Int32Array(this.segMax);
  private readonly segLen = new Int32Array(this.segMax);
  private readonly segAddr = new Uint32Array(this.segMax);

  constructor(
    private readonly path: PathState,
    private readonly sockFd: number,
    private readonly opts: QueueOptions,
  ) {
    if (path.encap.nativeId === null) {
      throw new WeftError('WEFT_ERR_BACKEND', `encap ${path.encap.name} has no native codec`);
    }
    const slot = native.SLOT_SIZE;
    this.outSlab = Buffer.alloc(OFFLOAD_BATCH * slot);
    this.inSlab = Buffer.alloc(OFFLOAD_BATCH * slot);
    this.train = Buffer.alloc(OFFLOAD_BATCH * native.TRAIN_PER_PACKET);
    // A super-packet needs at most GSO_MAX_SEGS messages (one per segment when UDP_SEGMENT is off).
    this.maxMsgs = OFFLOAD_BATCH * native.GSO_MAX_SEGS;
    this.msgOff = new Int32Array(this.maxMsgs);
    this.msgLen = new Int32Array(this.maxMsgs);
    this.msgGso = new Int32Array(this.maxMsgs);
    this.msgPeer = new Int32Array(this.maxMsgs);
    this.sendState[0] = opts.udpSegment ? 1 : 0;
  }

  get blocked(): boolean {
    return this.resume < this.msgCount;
  }

  /** Outbound steps 1-5 for up to ROUNDS batches; false when the socket pushed back. */
  runOutbound(): boolean {
    const { path } = this;
    const slot = native.SLOT_SIZE;
    for (let r = 0; r < ROUNDS; r++) {
      if (this.blocked && !this.flush()) return false;
      const n = native.tunReadVnet(
        path.tunFd,
        this.outSlab,
        slot,
        native.HEADROOM,
        this.outLen,
        OFFLOAD_BATCH,
        path.counters,
      );
      if (n === 0) return true;
      this.route(n);
      const encap = path.encap.nativeId as number;
      this.msgCount = native.offloadEncap(
        encap,
        this.outSlab,
        slot,
        native.HEADROOM,
        this.outLen,
        this.outPeer,
        n,
        path.snapshot.table,
        path.local.mac,
        path.local.vni,
        this.opts.mtu,
        this.train,
        this.msgOff,
        this.msgLen,
        this.msgGso,
        this.msgPeer,
        this.maxMsgs,
        path.counters,
      );
      this.resume = 0;
      const sent = this.flush();
      path.answerExpired(this.outSlab, native.SLOT_SIZE, this.outLen, this.outPeer, n); // step 5
      if (!sent) return false;
      if (n < OFFLOAD_BATCH) return true;
    }
    return true;
  }

  /** Outbound step 4, also when the socket turns writable. True when every message went out. */
  flush(): boolean {
    const { path } = this;
    this.resume = native.sendTrain(
      this.sockFd,
      this.train,
      this.msgOff,
      this.msgLen,
      this.msgGso,
      this.msgPeer,
      this.resume,
      this.msgCount,
      path.snapshot.table,
      this.sendState,
      path.counters,
    );
    return !this.blocked;
  }

  // Outbound step 2: one lookup per super-packet.
  private route(n: number): void {
    const { path, outSlab, outLen, outPeer } = this;
    const routes = path.snapshot.routes;
    const slot = native.SLOT_SIZE;
    let icmp = 0;
    for (let i = 0; i < n; i++) {
      const pkt = i * slot + native.HEADROOM;
      const len = outLen[i] as number;
      if (len < 20 || (outSlab[pkt] as number) >> 4 !== 4) {
        outPeer[i] = native.VERDICT_MALFORMED;
        if (len >= 0) path.count(C.dropMalformed); // a negative len was counted by C already
        continue;
      }
      const dst = readIp(outSlab, pkt + 16);
      const peer = routes.lookup(dst);
      outPeer[i] = peer;
      if (peer !== NO_ROUTE) {
        path.sentTo(peer, len);
        continue;
      }
      outPeer[i] = native.VERDICT_NO_ROUTE;
      path.count(C.dropNoRoute);
      if (path.inNetwork(dst) && icmp++ < ICMP_PER_BATCH) path.netUnreachable(outSlab, pkt, len);
    }
  }

  /** Inbound steps 1-4 for up to ROUNDS batches. */
  runInbound(): void {
    const { path } = this;
    const slot = native.SLOT_SIZE;
    const encap = path.encap.nativeId as number;
    for (let r = 0; r < ROUNDS; r++) {
      const n = native.udpRecvGro(
        this.sockFd,
        this.inSlab,
        slot,
        this.inLen,
        this.inAddr,
        this.inGso,
        OFFLOAD_BATCH,
        path.counters,
      );
      if (n === 0) return;
      const segs = native.offloadDecap(
        encap,
        this.inSlab,
        slot,
        this.inLen,
        this.inGso,
        this.inAddr,
        n,
        path.local.vni,
        this.segOff,
        this.segLen,
        this.segAddr,
        this.segMax,
        path.counters,
      );
      this.checkSenders(segs);
      native.groWrite(path.tunFd, this.inSlab, this.segOff, this.segLen, segs, this.opts.gro, path.counters);
      if (n < OFFLOAD_BATCH) return;
    }
  }

  // Inbound step 3. Segments of one GRO buffer share their outer source: look it up once per run.
  private checkSenders(n: number): void {
    const { path, inSlab, segAddr, segLen, segOff } = this;
    const routes = path.snapshot.routes;
    let lastAddr = -1;
    let peer = NO_ROUTE;
    for (let k = 0; k < n; k++) {
      const addr = segAddr[k] as number;
      if (addr !== lastAddr) {
        peer = routes.peerBySource(addr);
        lastAddr = addr;
      }
      if (peer === NO_ROUTE) {
        segLen[k] = native.VERDICT_UNKNOWN_PEER;
        path.count(C.dropUnknownPeer);
      } else if (!routes.allowsSource(peer, readIp(inSlab, (segOff[k] as number) + 12))) {
        segLen[k] = native.VERDICT_SPOOFED;
        path.count(C.dropSpoofedSource);
      } else {
        path.receivedFrom(peer, segLen[k] as number);
      }
    }
  }
}
