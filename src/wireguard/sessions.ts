// The session table shared with C (layout and threading in native/weft.h): which slot belongs to whom, the local
// indices that name them, and reads of what C counts per session. A local index is 32 random bits whose low bits
// are the slot (index & (slots - 1)): C finds the session of a received message without a lookup table, and an
// index from an older session in the same slot no longer matches. Each peer holds at most four slots: its
// handshake in progress and the previous, current and next keypairs; the handshake's slot becomes the keypair's.
import { randomInt } from 'node:crypto';
import { inspect } from 'node:util';
import {
  createSessionTable,
  WG_F_RECEIVED,
  WG_SESSION_SIZE,
  WgSessionField,
  wgSessionClear,
  wgSessionSet,
} from './native.js';

export class SessionTable {
  /** The table C reads and writes; pass it to the wg* batch calls. */
  readonly buffer: Buffer;
  readonly slots: number;
  readonly #u32: Uint32Array;
  readonly #u64: BigUint64Array;
  readonly #free: number[] = [];
  /** The full local index of each allocated slot, 0 when free. */
  readonly #index: Uint32Array;

  constructor(slots: number, shared = false) {
    this.buffer = createSessionTable(slots, shared);
    this.slots = slots;
    this.#u32 = new Uint32Array(this.buffer.buffer, this.buffer.byteOffset, this.buffer.length / 4);
    this.#u64 = new BigUint64Array(this.buffer.buffer, this.buffer.byteOffset, this.buffer.length / 8);
    this.#index = new Uint32Array(slots);
    for (let s = slots - 1; s >= 0; s--) this.#free.push(s);
  }

  /** Keys live in the buffer: print the occupancy only. */
  toJSON(): { slots: number; free: number } {
    return { slots: this.slots, free: this.#free.length };
  }

  [inspect.custom](): string {
    return `SessionTable(${this.slots} slots, ${this.#free.length} free)`;
  }

  get free(): number {
    return this.#free.length;
  }

  /** A free slot and a fresh local index naming it, or null when the table is full. */
  allocate(): { slot: number; index: number } | null {
    const slot = this.#free.pop();
    if (slot === undefined) return null;
    let index = 0;
    while (index === 0) index = ((randomInt(0, 2 ** 32 / this.slots) * this.slots) | slot) >>> 0;
    this.#index[slot] = index;
    return { slot, index };
  }

  /** The slot an index names, or -1 when no allocated slot has exactly that index. */
  slotOf(index: number): number {
    const slot = index & (this.slots - 1);
    return this.#index[slot] === index >>> 0 && index >>> 0 !== 0 ? slot : -1;
  }

  indexOf(slot: number): number {
    return this.#index[slot]!;
  }

  /** Make the keypair usable by C in its slot (send counter 0, empty replay window) until expiresMs. */
  install(
    index: number,
    remoteIndex: number,
    peer: number,
    sendKey: Uint8Array,
    recvKey: Uint8Array,
    expiresMs: number,
  ): void {
    wgSessionSet(this.buffer, index, remoteIndex, peer, sendKey, recvKey, expiresMs);
  }

  /** Zero the slot's keys in C and give it back. */
  release(slot: number): void {
    if (slot < 0 || slot >= this.slots || this.#index[slot] === 0) return;
    wgSessionClear(this.buffer, slot);
    this.#index[slot] = 0;
    this.#free.push(slot);
  }

  #base(slot: number, field: number): number {
    return slot * WG_SESSION_SIZE + field;
  }

  /** Messages sealed with the slot's keypair so far: its next send counter. */
  sendCounter(slot: number): bigint {
    return this.#u64[this.#base(slot, WgSessionField.sendCounter) / 8]!;
  }

  /** The same as a number, without allocating a BigInt (per-batch decisions): exact below 2^53, then rounded to a
   *  double (steps of 256 at REKEY_AFTER_MESSAGES, 4096 near 2^64, where C's check of REJECT_AFTER_MESSAGES is the
   *  exact one). */
  sendCounterApprox(slot: number): number {
    const at = this.#base(slot, WgSessionField.sendCounter) / 4; // little-endian host: low word first
    return this.#u32[at + 1]! * 2 ** 32 + this.#u32[at]!;
  }

  /** Whether C opened an authenticated message with this session (the responder's key confirmation). */
  received(slot: number): boolean {
    return (this.#u32[this.#base(slot, WgSessionField.flags) / 4]! & WG_F_RECEIVED) !== 0;
  }

  active(slot: number): boolean {
    return this.#u32[this.#base(slot, WgSessionField.state) / 4] === 1;
  }

  /** What C counted for the slot: messages and message bytes each way. */
  stats(slot: number): { txPackets: bigint; txBytes: bigint; rxPackets: bigint; rxBytes: bigint } {
    const at = (f: number): bigint => this.#u64[this.#base(slot, f) / 8]!;
    return {
      txPackets: at(WgSessionField.txPackets),
      txBytes: at(WgSessionField.txBytes),
      rxPackets: at(WgSessionField.rxPackets),
      rxBytes: at(WgSessionField.rxBytes),
    };
  }
}
