// One queue of a batched tier: a TUN fd (or one queue of a multi-queue TUN) and one UDP socket, with both
// directions' memory allocated here once and registered with C once (native/queue.c). The forwarder (outbound.ts,
// inbound.ts) then calls C with (handle, n) and reads inner destinations and writes verdicts through the typed
// arrays below: the same memory C reads, so nothing is copied and nothing is allocated per packet.
//
// Memory never grows with load: a full batch waits, and the next read waits for it.
import * as native from '../native.js';

export interface QueueOptions {
  readonly tunFd: number;
  readonly sockFd: number;
  /** The IPv6 underlay socket, or absent: no IPv6 records are sent to and nothing is read from IPv6. */
  readonly sock6Fd?: number;
  /** ENCAP_* id of a native encap, or null: a TypeScript encap writes and reads headers between the steps. */
  readonly encap: number | null;
  readonly vni: number;
  readonly localMac: Buffer;
  /** Our IPv6 half's VtepMAC (the inner source MAC of IPv6 VXLAN frames); default localMac. */
  readonly localMac6?: Buffer;
  /** TUN MTU: the largest segment GSO makes (offload), where inbound packets are cut (batch); 0 = no limit. */
  readonly mtu: number;
  /** Packets per TUN batch and datagrams (or UDP_GRO buffers) per receive batch. */
  readonly slots: number;
  /** The offload tier: the TUN carries a virtio header (GSO out, GRO in). */
  readonly vnet: boolean;
  readonly gro: boolean;
  readonly udpSegment: boolean;
  readonly counters: Float64Array;
  /** Record each datagram's source port in inPort (WireGuard answers a handshake to the address and port). */
  readonly sourcePorts?: boolean;
  /** Bytes a transform adds per segment (offload tier with WireGuard): trains are sized with them counted. */
  readonly segOverhead?: number;
}

export class Queue {
  readonly handle: native.QueueHandle;
  readonly slots: number;
  readonly slotSize = native.SLOT_SIZE;
  /** Out: packet i read from TUN at i * slotSize + HEADROOM (its virtio header just before it on the offload tier). */
  readonly outSlab: Buffer;
  /** Out: packet length, or a negative verdict. */
  readonly outLen: Int32Array;
  /** Out, batch tier: where the datagram starts once encapsulated (a TypeScript encap writes it). */
  readonly outOff: Int32Array;
  /** Out: the peer index the route step chose, or a negative verdict. */
  readonly outPeer: Int32Array;
  /** In: datagram (or UDP_GRO buffer) i at i * slotSize. */
  readonly inSlab: Buffer;
  readonly inLen: Int32Array;
  /** In: outer source address, host order; for a datagram from the IPv6 socket its slot (see inAddr6). */
  readonly inAddr: Uint32Array;
  /** In: 16 bytes per slot, the IPv6 source of a datagram from the IPv6 socket; null without one. */
  readonly inAddr6: Buffer | null;
  /** In: outer source port, host order (only with sourcePorts; else empty). */
  readonly inPort: Uint32Array;
  /** In, offload tier: the UDP_GRO segment size of each receive (0: one datagram). */
  readonly inGso: Int32Array | null;
  /** In: the inner packets found by decap: offset and length in inSlab (or a verdict), outer source. */
  readonly segOff: Int32Array;
  readonly segLen: Int32Array;
  readonly segAddr: Uint32Array;
  private peerTable: Buffer | null = null;

  constructor(readonly opts: QueueOptions) {
    const n = opts.slots;
    const segs = opts.vnet ? n * native.GRO_MAX_SEGS : n;
    this.slots = n;
    this.outSlab = Buffer.alloc(n * native.SLOT_SIZE);
    this.outLen = new Int32Array(n);
    this.outOff = new Int32Array(n);
    this.outPeer = new Int32Array(n);
    this.inSlab = Buffer.alloc(n * native.SLOT_SIZE);
    this.inLen = new Int32Array(n);
    this.inAddr = new Uint32Array(n);
    const v6 = opts.sock6Fd !== undefined && opts.sock6Fd >= 0;
    this.inAddr6 = v6 ? Buffer.alloc(n * 16) : null;
    this.inPort = new Uint32Array(opts.sourcePorts === true ? n : 0);
    this.inGso = opts.vnet ? new Int32Array(n) : null;
    this.segOff = new Int32Array(segs);
    this.segLen = new Int32Array(segs);
    this.segAddr = new Uint32Array(segs);
    this.handle = native.queueOpen({
      tunFd: opts.tunFd,
      sockFd: opts.sockFd,
      ...(v6 ? { sock6Fd: opts.sock6Fd, inAddr6: this.inAddr6 ?? undefined } : {}),
      ...(opts.localMac6 ? { localMac6: opts.localMac6 } : {}),
      encap: opts.encap ?? -1,
      vni: opts.vni,
      localMac: opts.localMac,
      mtu: opts.mtu,
      vnet: opts.vnet,
      gro: opts.gro,
      udpSegment: opts.udpSegment,
      counters: opts.counters,
      outSlab: this.outSlab,
      outLen: this.outLen,
      outOff: this.outOff,
      outPeer: this.outPeer,
      inSlab: this.inSlab,
      inLen: this.inLen,
      inAddr: this.inAddr,
      ...(opts.sourcePorts === true ? { inPort: this.inPort } : {}),
      ...(opts.segOverhead !== undefined ? { segOverhead: opts.segOverhead } : {}),
      ...(this.inGso ? { inGso: this.inGso } : {}),
      segOff: this.segOff,
      segLen: this.segLen,
      segAddr: this.segAddr,
    });
  }

  /** Where packet i of the out batch starts (its inner IPv4 header). */
  outPacket(i: number): number {
    return i * this.slotSize + native.HEADROOM;
  }

  /** Points C at the current peer table; a pointer compare when it has not changed (once per batch). */
  usePeers(table: Buffer): void {
    if (table === this.peerTable) return;
    native.queueSetPeers(this.handle, table);
    this.peerTable = table;
  }

  /** UDP_SEGMENT still in use (false after the kernel refused it). */
  get udpSegmentOn(): boolean {
    return native.queueUdpSegment(this.handle);
  }

  close(): void {
    native.queueClose(this.handle);
  }
}
