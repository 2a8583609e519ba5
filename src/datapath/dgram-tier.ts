// The dgram tier: the naive baseline, one packet per call, as flannel's UDP proxy works. Packets come from TUN one
// read at a time and go out through Node's dgram socket one send at a time; received datagrams arrive as Node
// allocates them. The bench uses it to show what batching buys. It speaks the same wire format as the other tiers.
//
// Its JS copies no packet bytes (copied_user_bytes stays 0): a TUN read lands in the buffer dgram sends from (the
// encap header written in front, in place), and a received datagram is decoded and written to TUN where Node put it.
import dgram from 'node:dgram';
import * as native from '../native.js';
import type { Datapath, DatapathOptions } from './datapath.js';
import { TierBase } from './tier-base.js';
import { C, PathState } from './path-state.js';
import { recordEncap } from './peers.js';
import { NO_ROUTE } from './routes.js';
import { words } from './routes6.js';
import { decrementHopLimit, decrementTtl, isIPv6, readIp } from './ttl.js';
import { parseIPv6 } from '../ip/ipv6.js';
import { SOCKET_BUFFER_BYTES } from './batch-tier.js';

/** Packets read per wake-up before yielding to the event loop. */
const READS_PER_WAKEUP = 64;

export class DgramTier extends TierBase implements Datapath {
  readonly tier = 'dgram' as const;
  private readonly socket: dgram.Socket;
  /** The IPv6 underlay (our PublicIPv6), or null. */
  private readonly socket6: dgram.Socket | null = null;
  /** A received datagram's IPv6 source, as RouteTable6 reads it. */
  private readonly from6 = Buffer.alloc(16);
  private readonly tunPoll: native.PollHandle;
  private readonly decoded = new Int32Array(1);
  /** Send buffers, one per read of a wake-up (see onTunReadable). */
  private ring: Buffer[] = [];
  private listening = false;
  private readonly onSent = (err: Error | null): void => {
    if (err) this.path.count(C.dropSendError);
  };
  private closed = false;

  constructor(opts: DatapathOptions) {
    super(new PathState(opts));
    this.socket = dgram.createSocket({
      type: 'udp4',
      reuseAddr: true,
      recvBufferSize: SOCKET_BUFFER_BYTES,
      sendBufferSize: SOCKET_BUFFER_BYTES,
    });
    this.socket.on('message', (msg, rinfo) => this.receive(msg, rinfo.address));
    this.socket.on('error', (err) => opts.log.warn({ err }, 'dgram socket error'));
    this.socket.once('listening', () => (this.listening = true));
    this.socket.bind(opts.port, opts.bindAddress);
    if (opts.ipv6) {
      const s6 = dgram.createSocket({
        type: 'udp6',
        ipv6Only: true,
        reuseAddr: true,
        recvBufferSize: SOCKET_BUFFER_BYTES,
        sendBufferSize: SOCKET_BUFFER_BYTES,
      });
      s6.on('message', (msg, rinfo) => this.receive(msg, rinfo.address));
      s6.on('error', (err) => opts.log.warn({ err }, 'dgram IPv6 socket error'));
      s6.bind(opts.port, opts.ipv6.bindAddress);
      this.socket6 = s6;
    }
    this.tunPoll = native.pollStart(opts.tunFd, native.READABLE, () => this.onTunReadable());
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    native.pollStop(this.tunPoll);
    this.socket.close();
    this.socket6?.close();
  }

  // TUN -> route -> encap -> socket, one packet at a time. dgram holds a buffer until it has sent it: on the next
  // tick (its address lookup), which runs before the next wake-up, unless the kernel said EAGAIN and libuv queued the
  // send. So each read of a wake-up gets its own buffer from a ring that is reused while nothing is queued, and
  // replaced (left to its pending sends) when something is: under load this spares a pooled allocation per packet.
  private onTunReadable(): void {
    const { path } = this;
    const size = native.HEADROOM + (path.tunMtu || native.MAX_DATAGRAM);
    const queued = this.socket.getSendQueueCount() + (this.socket6?.getSendQueueCount() ?? 0);
    if (this.ring[0]?.length !== size || !this.listening || queued > 0) {
      this.ring = sendRing(size);
    }
    for (let r = 0; r < READS_PER_WAKEUP; r++) {
      const buf = this.ring[r]!;
      const len = native.tunReadOne(path.tunFd, buf, native.HEADROOM, buf.length - native.HEADROOM, path.counters);
      if (len === 0) return;
      this.send(buf, native.HEADROOM, len);
    }
  }

  private send(buf: Buffer, pkt: number, len: number): void {
    const { path } = this;
    if (len < 20 || (buf[pkt] as number) >> 4 !== 4) {
      return isIPv6(buf, pkt, len) ? this.send6(buf, pkt, len) : path.count(C.dropMalformed);
    }
    const dst = readIp(buf, pkt + 16);
    const snap = path.snapshot;
    const peer = snap.routes.lookup(dst);
    if (peer === NO_ROUTE) {
      path.count(C.dropNoRoute);
      if (path.inNetwork(dst)) path.netUnreachable(buf, pkt, len);
      return;
    }
    if (!decrementTtl(buf, pkt)) {
      path.count(C.dropTtlExceeded);
      path.ttlExceeded(buf, pkt, len);
      return;
    }
    path.sentTo(peer, len);
    const p = snap.peers[peer]!;
    const start = path.encap.encode(buf, pkt, len, p.encap, path.local);
    const size = len + (pkt - start);
    path.count(C.udpTxPackets);
    path.count(C.udpTxBytes, size);
    path.count(C.syscallsSend);
    path.count(C.copiedUserToKernel, size);
    this.socket.send(buf, start, size, p.port, snap.addresses[peer]!, this.onSent);
  }

  // The same for an IPv6 packet: RouteTable6, the hop limit, the peer's IPv6 record over the IPv6 socket.
  private send6(buf: Buffer, pkt: number, len: number): void {
    const { path } = this;
    const snap = path.snapshot;
    const rec = path.ipv6 && this.socket6 ? snap.routes6.lookup(buf, pkt + 24) : NO_ROUTE;
    if (rec === NO_ROUTE) {
      path.count(C.dropNoRoute);
      if (path.inNetwork6(buf, pkt + 24)) path.icmp6(buf, pkt, len, native.ICMP6_DEST_UNREACH, native.ICMP6_NO_ROUTE);
      return;
    }
    if (path.mtu6 > 0 && len > path.mtu6) {
      path.count(C.dropTooBig);
      return path.icmp6(buf, pkt, len, native.ICMP6_PACKET_TOO_BIG, 0, path.mtu6);
    }
    if (!decrementHopLimit(buf, pkt)) {
      path.count(C.dropTtlExceeded);
      return path.icmp6(buf, pkt, len, native.ICMP6_TIME_EXCEEDED, native.ICMP6_EXC_HOPLIMIT);
    }
    path.sentTo(snap.recordPeer[rec] as number, len);
    const start = path.encap.encode(buf, pkt, len, recordEncap(snap, rec), path.ipv6!.local);
    const size = len + (pkt - start);
    path.count(C.udpTxPackets);
    path.count(C.udpTxBytes, size);
    path.count(C.syscallsSend);
    path.count(C.copiedUserToKernel, size);
    this.socket6!.send(
      buf,
      start,
      size,
      snap.peers[snap.recordPeer[rec] as number]!.port,
      snap.addresses[rec]!,
      this.onSent,
    );
  }

  // socket -> decap -> sender checks -> TUN.
  // Built-in encaps decode in C, which also completes the partial TCP/UDP checksums a kernel VXLAN peer leaves on
  // veth; a TypeScript-only encap decodes in JS. Returns the inner offset (length in decoded[0]), or -1 once the
  // drop is counted.
  private decode(msg: Buffer): number {
    const { path } = this;
    const id = path.encap.nativeId;
    if (id === null) {
      const inner = path.encap.decode(msg, 0, msg.length, path.local, this.decoded);
      if (inner < 0) path.count(native.dropCounterOf(inner));
      return inner < 0 ? -1 : inner;
    }
    const inner = native.decap(id, msg, 0, msg.length, path.local.vni, this.decoded, path.counters);
    return inner < 0 ? -1 : inner;
  }

  private receive(msg: Buffer, from: string): void {
    const { path } = this;
    path.count(C.udpRxPackets);
    path.count(C.udpRxBytes, msg.length);
    path.count(C.syscallsRecv);
    path.count(C.copiedKernelToUser, msg.length);
    const inner = this.decode(msg);
    if (inner < 0) return;
    const snap = path.snapshot;
    const outer6 = from.includes(':');
    const inner6 = (msg[inner] as number) >> 4 === 6;
    let peer: number;
    if (outer6) {
      const a = parseIPv6(from);
      if (a !== null) for (const [i, w] of words(a).entries()) this.from6.writeInt32BE(w, i * 4);
      peer = a === null ? NO_ROUTE : snap.routes6.peerBySource(this.from6, 0);
    } else {
      peer = snap.routes.peerBySource(ipFromString(from));
    }
    if (peer === NO_ROUTE) return path.count(C.dropUnknownPeer);
    // An inner packet must come over its own family's underlay, from the sender's subnet of that family.
    let sender = NO_ROUTE;
    if (inner6 && outer6) sender = snap.routes6.senderOf(peer, msg, inner + 8);
    else if (!inner6 && !outer6) sender = snap.routes.senderOf(peer, readIp(msg, inner + 12));
    if (sender === NO_ROUTE) return path.count(C.dropSpoofedSource);
    path.receivedFrom(snap.recordPeer[sender] as number, this.decoded[0] as number);
    native.tunWriteOne(path.tunFd, msg, inner, this.decoded[0] as number, path.counters, path.tunMtu);
  }
}

function sendRing(size: number): Buffer[] {
  const slab = Buffer.allocUnsafe(READS_PER_WAKEUP * size);
  return Array.from({ length: READS_PER_WAKEUP }, (_, i) => slab.subarray(i * size, (i + 1) * size));
}

function ipFromString(s: string): number {
  const p = s.split('.');
  return (Number(p[0]) << 24) | (Number(p[1]) << 16) | (Number(p[2]) << 8) | Number(p[3]) | 0;
}
