// The typed door to the WireGuard part of the native addon (native/wg.c, declared in native/weft.h): the batched
// transport functions over a session table, and the two primitives Node's crypto lacks (keyed BLAKE2s, XChaCha20-
// Poly1305). The same weft.node as src/native.ts; the contract of each call is in weft.h.
//
// Batch contract as src/native.ts (slab, len[], off[], peer[], one Float64Array of counters per direction), plus:
//   sessions  the session table, WG_SESSION_SIZE bytes per slot, a power of two of slots, from createSessionTable()
//   sendSlot  Int32Array by peer index: the slot of the peer's current sending keypair, -1 for none
//   counters  Float64Array(WG_COUNTER_COUNT) named by wgCounterNames
//   nowMs     the caller's monotonic clock in ms (the one session expiry times are written in)
// Verdicts are numbered after src/native.ts's drop verdicts (WG_VERDICT_BASE downwards), so both kinds can share the
// len[] and peer[] arrays. No call allocates per packet; argument errors name the argument, never a key's bytes.
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../package-root.js';
import { WeftError } from '../errors.js';

interface WgAddon {
  readonly WG_SESSION_SIZE: number;
  readonly WG_HEADER_LEN: number;
  readonly WG_OVERHEAD: number;
  readonly WG_WINDOW: number;
  readonly WG_COUNTER_COUNT: number;
  readonly WG_VERDICT_BASE: number;
  readonly WG_S_STATE: number;
  readonly WG_S_LOCAL: number;
  readonly WG_S_REMOTE: number;
  readonly WG_S_PEER: number;
  readonly WG_S_FLAGS: number;
  readonly WG_S_SEND_CTR: number;
  readonly WG_S_EXPIRES: number;
  readonly WG_S_TX_PACKETS: number;
  readonly WG_S_TX_BYTES: number;
  readonly WG_S_RX_PACKETS: number;
  readonly WG_S_RX_BYTES: number;
  readonly WG_S_RX_LAST: number;
  readonly WG_F_RECEIVED: number;
  readonly wgCounterNames: readonly string[];
  readonly wgVerdictNames: readonly string[];
  wgSessionSet(
    sessions: Buffer,
    localIndex: number,
    remoteIndex: number,
    peer: number,
    sendKey: Uint8Array,
    recvKey: Uint8Array,
    expiresMs: number,
  ): void;
  wgSessionClear(sessions: Buffer, slot: number): void;
  wgSealBatch(
    sessions: Buffer,
    slab: Buffer,
    slotSize: number,
    headroom: number,
    len: Int32Array,
    off: Int32Array,
    peer: Int32Array,
    sendSlot: Int32Array,
    count: number,
    mtu: number,
    nowMs: number,
    counters: Float64Array,
  ): void;
  wgSealSegments(
    sessions: Buffer,
    slot: number,
    buf: Buffer,
    first: number,
    segLen: number,
    nseg: number,
    lastLen: number,
    mtu: number,
    nowMs: number,
    counters: Float64Array,
  ): number;
  wgOpenBatch(
    sessions: Buffer,
    slab: Buffer,
    slotSize: number,
    len: Int32Array,
    off: Int32Array,
    peer: Int32Array,
    count: number,
    nowMs: number,
    counters: Float64Array,
  ): void;
  wgOpenList(
    sessions: Buffer,
    buf: Buffer,
    off: Int32Array,
    len: Int32Array,
    peer: Int32Array,
    count: number,
    nowMs: number,
    counters: Float64Array,
  ): void;
  wgSealedLen(len: number, mtu: number): number;
  wgMac(key: Uint8Array, data: Uint8Array, out: Uint8Array): void;
  wgXaeadSeal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, ad: Uint8Array, out: Uint8Array): void;
  wgXaeadOpen(key: Uint8Array, nonce: Uint8Array, ciphertext: Uint8Array, ad: Uint8Array, out: Uint8Array): boolean;
}

const require = createRequire(import.meta.url);
const addon = require(join(PACKAGE_ROOT, 'build', 'Release', 'weft.node')) as WgAddon;

// ---- constants ----

/** Bytes of one session record. */
export const WG_SESSION_SIZE: number = addon.WG_SESSION_SIZE;
/** Transport header in front of the packet (type, receiver index, counter). */
export const WG_HEADER_LEN: number = addon.WG_HEADER_LEN;
/** Header + Poly1305 tag: a keepalive's whole size; padding comes on top. */
export const WG_OVERHEAD: number = addon.WG_OVERHEAD;
/** Counters behind the highest one seen that the replay window still accepts once. */
export const WG_WINDOW: number = addon.WG_WINDOW;
export const WG_COUNTER_COUNT: number = addon.WG_COUNTER_COUNT;
/** Offsets in a session record; JS reads the u64 fields through a BigUint64Array (little-endian host). */
export const WgSessionField = Object.freeze({
  state: addon.WG_S_STATE,
  localIndex: addon.WG_S_LOCAL,
  remoteIndex: addon.WG_S_REMOTE,
  peer: addon.WG_S_PEER,
  flags: addon.WG_S_FLAGS,
  sendCounter: addon.WG_S_SEND_CTR,
  expiresMs: addon.WG_S_EXPIRES,
  txPackets: addon.WG_S_TX_PACKETS,
  txBytes: addon.WG_S_TX_BYTES,
  rxPackets: addon.WG_S_RX_PACKETS,
  rxBytes: addon.WG_S_RX_BYTES,
  rxLast: addon.WG_S_RX_LAST,
});
/** flags bit: an authenticated message was opened with this session (the responder's key confirmation). */
export const WG_F_RECEIVED: number = addon.WG_F_RECEIVED;

export type WgVerdictName =
  | 'handshake'
  | 'malformed'
  | 'unknown_index'
  | 'no_session'
  | 'replay'
  | 'bad_tag'
  | 'bad_inner'
  | 'counter_limit'
  | 'no_room'
  | 'crypto_error';
export type WgCounterName =
  'wg_tx_packets' | 'wg_tx_bytes' | 'wg_rx_packets' | 'wg_rx_bytes' | 'wg_keepalives_rx' | `wg_${WgVerdictName}`;

export const wgVerdictNames = addon.wgVerdictNames as readonly WgVerdictName[];
export const wgCounterNames = addon.wgCounterNames as readonly WgCounterName[];

// A stale build must fail loudly at load, not miscount silently.
{
  const verdicts: readonly WgVerdictName[] = [
    'handshake',
    'malformed',
    'unknown_index',
    'no_session',
    'replay',
    'bad_tag',
    'bad_inner',
    'counter_limit',
    'no_room',
    'crypto_error',
  ];
  const counters: readonly string[] = [
    'wg_tx_packets',
    'wg_tx_bytes',
    'wg_rx_packets',
    'wg_rx_bytes',
    'wg_keepalives_rx',
    ...verdicts.map((v) => `wg_${v}`),
  ];
  const same = (a: readonly string[], b: readonly string[]): boolean =>
    a.length === b.length && a.every((x, i) => x === b[i]);
  if (!same(wgVerdictNames, verdicts) || !same(wgCounterNames, counters) || counters.length !== WG_COUNTER_COUNT) {
    throw new WeftError(
      'WEFT_ERR_NATIVE',
      `weft.node WireGuard counters do not match src/wireguard/native.ts: ${wgCounterNames.join(',')}`,
    );
  }
}

/** Index of each counter in a WireGuard counters array: counters[WgCounter.wg_replay]. */
export const WgCounter: Readonly<Record<WgCounterName, number>> = Object.freeze(
  Object.fromEntries(wgCounterNames.map((n, i) => [n, i])) as Record<WgCounterName, number>,
);

/** The negative verdict a WireGuard call stores in len[] / peer[] for a reason. */
export function wgVerdictOf(name: WgVerdictName): number {
  return addon.WG_VERDICT_BASE - wgVerdictNames.indexOf(name);
}
/** The reason of a WireGuard verdict, undefined for any other value. */
export function wgVerdictName(verdict: number): WgVerdictName | undefined {
  return wgVerdictNames[addon.WG_VERDICT_BASE - verdict];
}

export const WG_VERDICT_HANDSHAKE = wgVerdictOf('handshake');
export const WG_VERDICT_MALFORMED = wgVerdictOf('malformed');
export const WG_VERDICT_UNKNOWN_INDEX = wgVerdictOf('unknown_index');
export const WG_VERDICT_NO_SESSION = wgVerdictOf('no_session');
export const WG_VERDICT_REPLAY = wgVerdictOf('replay');
export const WG_VERDICT_BAD_TAG = wgVerdictOf('bad_tag');
export const WG_VERDICT_BAD_INNER = wgVerdictOf('bad_inner');
export const WG_VERDICT_COUNTER_LIMIT = wgVerdictOf('counter_limit');
export const WG_VERDICT_NO_ROOM = wgVerdictOf('no_room');

// ---- the session table ----

/** A session table of `slots` records (a power of two), zeroed: every slot inactive. Shared memory when worker
 *  threads seal and open over the same table. */
export function createSessionTable(slots: number, shared = false): Buffer {
  if (!Number.isInteger(slots) || slots < 1 || slots > 1 << 20 || (slots & (slots - 1)) !== 0) {
    throw new RangeError(`session table: ${slots} slots is not a power of two in [1, 2^20]`);
  }
  const bytes = slots * WG_SESSION_SIZE;
  return shared ? Buffer.from(new SharedArrayBuffer(bytes)) : Buffer.from(new ArrayBuffer(bytes));
}

// ---- calls ----

/** Install a keypair in slot localIndex & (slots - 1): counter 0, empty replay window, active until expiresMs. */
export const wgSessionSet: WgAddon['wgSessionSet'] = addon.wgSessionSet;
/** Deactivate a slot and zero its keys; later messages for it get unknown_index. */
export const wgSessionClear: WgAddon['wgSessionClear'] = addon.wgSessionClear;
/** Batch tier, outbound: seal packet i (at slot i + headroom) for the session sendSlot[peer[i]]; off[i]/len[i] then
 *  describe the message. Failures set peer[i] to a verdict (no_session, counter_limit, no_room), counted. */
export const wgSealBatch: WgAddon['wgSealBatch'] = addon.wgSealBatch;
/** Offload tier, outbound: seal the segments of one super-packet laid out at a stride of wgSealedLen(segLen, mtu)
 *  from `first`; returns the bytes of the message train (from first - 16) or a verdict. */
export const wgSealSegments: WgAddon['wgSealSegments'] = addon.wgSealSegments;
/** Batch tier, inbound: open datagram i (at slot i); off[i]/len[i] = inner packet (len 0: keepalive) and peer[i] =
 *  its peer, else len[i] = peer[i] = a verdict (handshake: a handshake message at off[i] for TypeScript). */
export const wgOpenBatch: WgAddon['wgOpenBatch'] = addon.wgOpenBatch;
/** The same over datagrams at off[i] in one buffer (offload tier). */
export const wgOpenList: WgAddon['wgOpenList'] = addon.wgOpenList;
/** Message bytes of a packet of len bytes once sealed (32 + padding to 16, not past mtu). */
export const wgSealedLen: WgAddon['wgSealedLen'] = addon.wgSealedLen;
/** Keyed BLAKE2s (RFC 7693) of data with key (1..32 bytes) into out (1..32 bytes: the digest length). */
export const wgMac: WgAddon['wgMac'] = addon.wgMac;
/** XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha): out gets plaintext.length + 16 bytes. */
export const wgXaeadSeal: WgAddon['wgXaeadSeal'] = addon.wgXaeadSeal;
/** XChaCha20-Poly1305 open into out (ciphertext.length - 16 bytes); false when the tag does not verify. */
export const wgXaeadOpen: WgAddon['wgXaeadOpen'] = addon.wgXaeadOpen;
