// The four WireGuard messages (WireGuard whitepaper §5.4.2-§5.4.7), little-endian, each starting with a type byte
// and three zero bytes that wireguard-go reads as one 32-bit word (so nonzero reserved bytes make an unknown type):
//
//   initiation  148 B: type 1 | sender u32 | ephemeral 32 | static 32+16 | timestamp 12+16 | mac1 16 | mac2 16
//   response     92 B: type 2 | sender u32 | receiver u32 | ephemeral 32 | empty 0+16 | mac1 16 | mac2 16
//   cookie reply 64 B: type 3 | receiver u32 | nonce 24 | cookie 16+16
//   transport  >=32 B: type 4 | receiver u32 | counter u64 | packet + padding, encrypted | tag 16
//
// Parsing never throws on hostile input: it checks type and exact length and returns views into the datagram or a
// verdict. Transport messages are handled in C (native/wg.c); their layout is here for tests and tools.

export const MessageType = Object.freeze({ initiation: 1, response: 2, cookieReply: 3, transport: 4 });

export const INITIATION_SIZE = 148;
export const RESPONSE_SIZE = 92;
export const COOKIE_REPLY_SIZE = 64;
/** @public for tests and tools (C parses transport messages) */
export const TRANSPORT_HEADER_SIZE = 16;
export const TRANSPORT_MIN_SIZE = 32; // a keepalive

export interface Initiation {
  readonly type: 1;
  readonly sender: number;
  readonly ephemeral: Buffer;
  readonly encryptedStatic: Buffer;
  readonly encryptedTimestamp: Buffer;
  readonly mac1: Buffer;
  readonly mac2: Buffer;
}

export interface Response {
  readonly type: 2;
  readonly sender: number;
  readonly receiver: number;
  readonly ephemeral: Buffer;
  readonly encryptedNothing: Buffer;
  readonly mac1: Buffer;
  readonly mac2: Buffer;
}

export interface CookieReply {
  readonly type: 3;
  readonly receiver: number;
  readonly nonce: Buffer;
  readonly encryptedCookie: Buffer;
}

export interface TransportHeader {
  readonly type: 4;
  readonly receiver: number;
  readonly counter: bigint;
}

export type Message = Initiation | Response | CookieReply;
export type ParseVerdict = 'truncated' | 'bad_type' | 'bad_length';
export type Parsed<T> = { ok: true; msg: T } | { ok: false; verdict: ParseVerdict };

function view(b: Uint8Array): Buffer {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

/** The message type word, or null when fewer than 4 bytes. */
export function messageType(b: Uint8Array): number | null {
  return b.length < 4 ? null : view(b).readUInt32LE(0);
}

const SIZES: Readonly<Record<number, number>> = { 1: INITIATION_SIZE, 2: RESPONSE_SIZE, 3: COOKIE_REPLY_SIZE };

/** A handshake message (initiation, response, cookie reply) with views into b, or why not. */
export function parseHandshake(b: Uint8Array): Parsed<Message> {
  const type = messageType(b);
  if (type === null) return { ok: false, verdict: 'truncated' };
  const size = SIZES[type];
  if (size === undefined) return { ok: false, verdict: 'bad_type' };
  if (b.length !== size) return { ok: false, verdict: b.length < size ? 'truncated' : 'bad_length' };
  const v = view(b);
  switch (type) {
    case MessageType.initiation:
      return {
        ok: true,
        msg: {
          type: 1,
          sender: v.readUInt32LE(4),
          ephemeral: v.subarray(8, 40),
          encryptedStatic: v.subarray(40, 88),
          encryptedTimestamp: v.subarray(88, 116),
          mac1: v.subarray(116, 132),
          mac2: v.subarray(132, 148),
        },
      };
    case MessageType.response:
      return {
        ok: true,
        msg: {
          type: 2,
          sender: v.readUInt32LE(4),
          receiver: v.readUInt32LE(8),
          ephemeral: v.subarray(12, 44),
          encryptedNothing: v.subarray(44, 60),
          mac1: v.subarray(60, 76),
          mac2: v.subarray(76, 92),
        },
      };
    default:
      return {
        ok: true,
        msg: { type: 3, receiver: v.readUInt32LE(4), nonce: v.subarray(8, 32), encryptedCookie: v.subarray(32, 64) },
      };
  }
}

/**
 * A transport message's header, or why not (the payload is C's business).
 * @public for tests and tools
 */
export function parseTransportHeader(b: Uint8Array): Parsed<TransportHeader> {
  const type = messageType(b);
  if (type === null) return { ok: false, verdict: 'truncated' };
  if (type !== MessageType.transport) return { ok: false, verdict: 'bad_type' };
  if (b.length < TRANSPORT_MIN_SIZE) return { ok: false, verdict: 'truncated' };
  const v = view(b);
  return { ok: true, msg: { type: 4, receiver: v.readUInt32LE(4), counter: v.readBigUInt64LE(8) } };
}

/** Bytes a message's MAC1 covers (everything before it) and where MAC1 and MAC2 sit: the last 32 bytes. */
export function macOffsets(msg: Uint8Array): { mac1: number; mac2: number } {
  return { mac1: msg.length - 32, mac2: msg.length - 16 };
}

export function buildInitiation(f: {
  sender: number;
  ephemeral: Uint8Array;
  encryptedStatic: Uint8Array;
  encryptedTimestamp: Uint8Array;
}): Buffer {
  const b = Buffer.alloc(INITIATION_SIZE);
  b.writeUInt32LE(MessageType.initiation, 0);
  b.writeUInt32LE(f.sender >>> 0, 4);
  b.set(f.ephemeral, 8);
  b.set(f.encryptedStatic, 40);
  b.set(f.encryptedTimestamp, 88);
  return b;
}

export function buildResponse(f: {
  sender: number;
  receiver: number;
  ephemeral: Uint8Array;
  encryptedNothing: Uint8Array;
}): Buffer {
  const b = Buffer.alloc(RESPONSE_SIZE);
  b.writeUInt32LE(MessageType.response, 0);
  b.writeUInt32LE(f.sender >>> 0, 4);
  b.writeUInt32LE(f.receiver >>> 0, 8);
  b.set(f.ephemeral, 12);
  b.set(f.encryptedNothing, 44);
  return b;
}

export function buildCookieReply(f: { receiver: number; nonce: Uint8Array; encryptedCookie: Uint8Array }): Buffer {
  const b = Buffer.alloc(COOKIE_REPLY_SIZE);
  b.writeUInt32LE(MessageType.cookieReply, 0);
  b.writeUInt32LE(f.receiver >>> 0, 4);
  b.set(f.nonce, 8);
  b.set(f.encryptedCookie, 32);
  return b;
}
