// One direction's packet memory, allocated once: a slab of fixed slots shared with C, and per-slot metadata.
// Slot i starts at i * slotSize. Outbound packets are read at HEADROOM so the encap header is written in front of
// them in place; inbound datagrams land at the slot start, whole (up to 64 KiB, as a kernel VXLAN peer may send).
// Memory never grows with load: a full batch simply waits, and the next read waits for it.
import { SLOT_SIZE } from '../native.js';

export class Batch {
  readonly slab: Buffer;
  readonly slotSize = SLOT_SIZE;
  /** Packet length per slot, or a negative verdict once a slot is dropped. */
  readonly len: Int32Array;
  /** Start of what goes on the wire (outbound) or to TUN (inbound), per slot. */
  readonly off: Int32Array;
  /** Peer index per slot (outbound), or a negative verdict. */
  readonly peer: Int32Array;
  /** Outer source address per slot (inbound), host order. */
  readonly addr: Uint32Array;

  constructor(readonly size: number) {
    this.slab = Buffer.alloc(size * SLOT_SIZE);
    this.len = new Int32Array(size);
    this.off = new Int32Array(size);
    this.peer = new Int32Array(size);
    this.addr = new Uint32Array(size);
  }
}
