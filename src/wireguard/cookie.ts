// MAC1, MAC2 and cookie replies (WireGuard whitepaper §5.3 and §5.4.4; wireguard-go device/cookie.go):
//
//   every handshake message ends in mac1 = MAC(HASH("mac1----" || receiver's static public), msg up to mac1)
//   and mac2 = MAC(cookie, msg up to mac2), or 16 zero bytes while the sender has no fresh cookie.
//   A responder under load answers a message without a valid mac2 with a cookie reply instead of doing the DH work:
//   cookie = MAC(secret, source IP || source port), the secret random and replaced every 2 minutes, sent as
//   XAEAD(HASH("cookie--" || responder's static public), random nonce, cookie, ad = the message's mac1).
//
// CookieChecker is this host's responder side (one per device), CookieGenerator the sender side (one per peer:
// it keys on the peer's public key and remembers the cookie that peer gave us). LoadDetector decides "under load".
import { randomBytes } from 'node:crypto';
import { isIPv4 } from 'node:net';
import type { PublicKey } from './keys.js';
import { buildCookieReply, type CookieReply, macOffsets } from './messages.js';
import { hash, LABEL_COOKIE, LABEL_MAC1, mac, xaeadOpen, xaeadSeal } from './primitives.js';

/** WireGuard whitepaper §6.1 (Cookie-Refresh-Time): a cookie secret, and a received cookie, live 120 s. */
export const COOKIE_REFRESH_TIME_MS = 120_000;

/** A UDP source or destination. */
export interface Endpoint {
  readonly address: string;
  readonly port: number;
}

/** The bytes a cookie is computed over: the source address (4 bytes for IPv4, as the Linux implementation does;
 *  the canonical text otherwise, which only this host ever reads back) and the port in network order. */
export function endpointBytes(ep: Endpoint): Buffer {
  const port = Buffer.alloc(2);
  port.writeUInt16BE(ep.port & 0xffff);
  const addr = isIPv4(ep.address) ? Buffer.from(ep.address.split('.').map(Number)) : Buffer.from(ep.address);
  return Buffer.concat([addr, port]);
}

function timingSafeEqual16(a: Uint8Array, b: Uint8Array): boolean {
  let d = a.length ^ b.length;
  for (let i = 0; i < a.length && i < b.length; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}

export class CookieChecker {
  readonly #mac1Key: Buffer;
  readonly #cookieKey: Buffer;
  #secret: Buffer = Buffer.alloc(32);
  #secretSet = -Infinity;

  constructor(localPublic: PublicKey) {
    this.#mac1Key = hash(LABEL_MAC1, localPublic.bytes);
    this.#cookieKey = hash(LABEL_COOKIE, localPublic.bytes);
  }

  /** mac1 of a whole handshake message (initiation or response) addressed to us. */
  checkMac1(msg: Uint8Array): boolean {
    const { mac1, mac2 } = macOffsets(msg);
    return timingSafeEqual16(mac(this.#mac1Key, msg.subarray(0, mac1)), msg.subarray(mac1, mac2));
  }

  /** mac2 against the cookie we would give `src` now; false once the secret is older than 2 minutes. */
  checkMac2(msg: Uint8Array, src: Endpoint, nowMs: number): boolean {
    if (nowMs - this.#secretSet > COOKIE_REFRESH_TIME_MS) return false;
    const cookie = mac(this.#secret, endpointBytes(src));
    const { mac2 } = macOffsets(msg);
    return timingSafeEqual16(mac(cookie, msg.subarray(0, mac2)), msg.subarray(mac2));
  }

  /** The cookie reply to msg (from src, whose sender index is `receiver`), rotating the secret when it is older than
   *  2 minutes (whitepaper §5.4.7). */
  createReply(msg: Uint8Array, receiver: number, src: Endpoint, nowMs: number): Buffer {
    if (nowMs - this.#secretSet > COOKIE_REFRESH_TIME_MS) {
      this.#secret.fill(0);
      this.#secret = randomBytes(32);
      this.#secretSet = nowMs;
    }
    const cookie = mac(this.#secret, endpointBytes(src));
    const { mac1, mac2 } = macOffsets(msg);
    const nonce = randomBytes(24);
    const encryptedCookie = xaeadSeal(this.#cookieKey, nonce, cookie, msg.subarray(mac1, mac2));
    return buildCookieReply({ receiver, nonce, encryptedCookie });
  }
}

export class CookieGenerator {
  readonly #mac1Key: Buffer;
  readonly #cookieKey: Buffer;
  #cookie: Buffer = Buffer.alloc(16);
  #cookieSet = -Infinity;
  #lastMac1: Buffer | null = null;

  constructor(remotePublic: PublicKey) {
    this.#mac1Key = hash(LABEL_MAC1, remotePublic.bytes);
    this.#cookieKey = hash(LABEL_COOKIE, remotePublic.bytes);
  }

  /** Write mac1, and mac2 while we hold a cookie younger than 2 minutes (else 16 zeros), into the last 32 bytes. */
  addMacs(msg: Buffer, nowMs: number): void {
    const { mac1, mac2 } = macOffsets(msg);
    const m1 = mac(this.#mac1Key, msg.subarray(0, mac1));
    msg.set(m1, mac1);
    this.#lastMac1 = m1;
    if (nowMs - this.#cookieSet > COOKIE_REFRESH_TIME_MS) {
      msg.fill(0, mac2);
      return;
    }
    msg.set(mac(this.#cookie, msg.subarray(0, mac2)), mac2);
  }

  /** Take the cookie from a reply to the last message we sent this peer; false when it does not decrypt. */
  consumeReply(reply: CookieReply, nowMs: number): boolean {
    if (!this.#lastMac1) return false;
    const cookie = xaeadOpen(this.#cookieKey, reply.nonce, reply.encryptedCookie, this.#lastMac1);
    if (!cookie) return false;
    this.#cookie.fill(0);
    this.#cookie = cookie;
    this.#cookieSet = nowMs;
    return true;
  }

  /** Whether a cookie from this peer is fresh (tests and /status). */
  hasCookie(nowMs: number): boolean {
    return nowMs - this.#cookieSet <= COOKIE_REFRESH_TIME_MS;
  }
}

/** How long the device stays under load after it was last detected (wireguard-go UnderLoadAfterTime). */
export const UNDER_LOAD_AFTER_MS = 1000;
/** Handshake messages per second from which the device is under load. wireguard-go's test is a backlog of
 *  QueueHandshakeSize / 8 = 128 queued messages; handshakes here are handled as they arrive, so the same number is
 *  taken as a rate. */
export const UNDER_LOAD_HANDSHAKES_PER_SECOND = 128;

/** Decides "under load": then initiations and responses need a valid mac2, and the rate limiter applies. */
export class LoadDetector {
  /** Tests and operators: act as if under load all the time. */
  forced = false;
  #windowStart = -Infinity;
  #count = 0;
  #until = -Infinity;

  constructor(private readonly perSecond = UNDER_LOAD_HANDSHAKES_PER_SECOND) {}

  /** Count one handshake message (initiation or response) that passed mac1. */
  note(nowMs: number): void {
    if (nowMs - this.#windowStart >= 1000) {
      this.#windowStart = nowMs;
      this.#count = 0;
    }
    if (++this.#count >= this.perSecond) this.#until = nowMs + UNDER_LOAD_AFTER_MS;
  }

  underLoad(nowMs: number): boolean {
    return this.forced || nowMs < this.#until;
  }
}
