// The cryptographic primitives of WireGuard's handshake (WireGuard whitepaper §5.4, "Protocol & Cryptography"):
// HASH = BLAKE2s-256, MAC = keyed BLAKE2s-128, HMAC = HMAC-BLAKE2s, KDF1..3 = HKDF over HMAC-BLAKE2s, AEAD =
// ChaCha20-Poly1305 (RFC 8439) with a 64-bit little-endian counter as nonce, XAEAD = XChaCha20-Poly1305, TAI64N.
// Node's crypto (OpenSSL) does HASH, HMAC and AEAD; MAC and XAEAD go through the addon (native/wg.c). Never called
// per transport packet: the handshake path only, so allocation here is fine.
import { createCipheriv, createDecipheriv, createHash, createHmac } from 'node:crypto';
import { wgMac, wgXaeadOpen, wgXaeadSeal } from './native.js';

export const CONSTRUCTION = 'Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s';
export const IDENTIFIER = 'WireGuard v1 zx2c4 Jason@zx2c4.com';
export const LABEL_MAC1 = 'mac1----';
export const LABEL_COOKIE = 'cookie--';

/** HASH(a || b || ...): BLAKE2s-256. */
export function hash(...parts: (Uint8Array | string)[]): Buffer {
  const h = createHash('blake2s256');
  for (const p of parts) h.update(p);
  return h.digest();
}

/** MAC(key, data): keyed BLAKE2s with a 16-byte digest (outLen other than 16 only for test vectors). */
export function mac(key: Uint8Array, data: Uint8Array, outLen = 16): Buffer {
  const out = Buffer.alloc(outLen);
  wgMac(key, data, out);
  return out;
}

/** HMAC(key, data) with BLAKE2s-256 (RFC 2104). */
export function hmac(key: Uint8Array, ...data: Uint8Array[]): Buffer {
  const h = createHmac('blake2s256', key);
  for (const d of data) h.update(d);
  return h.digest();
}

const ONE = Buffer.from([1]);

/** KDFn(key, input) of the whitepaper: t0 = HMAC(key, input); t1 = HMAC(t0, 0x1); ti = HMAC(t0, ti-1 || i). */
export function kdf(n: 1 | 2 | 3, key: Uint8Array, input: Uint8Array): Buffer[] {
  const t0 = hmac(key, input);
  const out: Buffer[] = [];
  let prev = hmac(t0, ONE);
  out.push(prev);
  for (let i = 2; i <= n; i++) {
    prev = hmac(t0, prev, Buffer.from([i]));
    out.push(prev);
  }
  t0.fill(0);
  return out;
}

function nonce12(counter: bigint): Buffer {
  const n = Buffer.alloc(12);
  n.writeBigUInt64LE(counter, 4);
  return n;
}

/** AEAD(key, counter, plaintext, ad): ChaCha20-Poly1305, ciphertext || 16-byte tag. */
export function aeadSeal(key: Uint8Array, counter: bigint, plaintext: Uint8Array, ad: Uint8Array): Buffer {
  return chachaPolySeal(key, nonce12(counter), plaintext, ad);
}

/** The inverse of aeadSeal; null when the tag does not verify (or the input is shorter than a tag). */
export function aeadOpen(key: Uint8Array, counter: bigint, sealed: Uint8Array, ad: Uint8Array): Buffer | null {
  return chachaPolyOpen(key, nonce12(counter), sealed, ad);
}

/** RFC 8439 §2.8 AEAD_CHACHA20_POLY1305 with any 12-byte nonce: ciphertext || tag. */
export function chachaPolySeal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, ad: Uint8Array): Buffer {
  const c = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
  c.setAAD(ad, { plaintextLength: plaintext.length });
  return Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()]);
}

/** The inverse of chachaPolySeal; null when the tag does not verify. */
export function chachaPolyOpen(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, ad: Uint8Array): Buffer | null {
  if (sealed.length < 16) return null;
  const d = createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
  d.setAAD(ad, { plaintextLength: sealed.length - 16 });
  d.setAuthTag(sealed.subarray(sealed.length - 16));
  const out = d.update(sealed.subarray(0, sealed.length - 16));
  try {
    d.final();
  } catch {
    out.fill(0);
    return null;
  }
  return out;
}

/** XAEAD(key, nonce24, plaintext, ad): XChaCha20-Poly1305, ciphertext || tag. */
export function xaeadSeal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, ad: Uint8Array): Buffer {
  const out = Buffer.alloc(plaintext.length + 16);
  wgXaeadSeal(key, nonce, plaintext, ad, out);
  return out;
}

/** The inverse of xaeadSeal; null when the tag does not verify. */
export function xaeadOpen(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, ad: Uint8Array): Buffer | null {
  if (sealed.length < 16) return null;
  const out = Buffer.alloc(sealed.length - 16);
  return wgXaeadOpen(key, nonce, sealed, ad, out) ? out : null;
}

/** Ci := HASH(CONSTRUCTION) and Hi := HASH(Ci || IDENTIFIER), the handshake's starting chaining key and hash. */
export const INITIAL_CHAIN_KEY: Buffer = hash(CONSTRUCTION);
export const INITIAL_HASH: Buffer = hash(INITIAL_CHAIN_KEY, IDENTIFIER);

/** TAI64N of a wall-clock time in ms: 8 bytes big-endian seconds + 2^62 + 10 (as wireguard-go tai64n), then 4 bytes
 *  big-endian nanoseconds rounded down to 2^24 ns, so the timestamp does not reveal the clock's fine bits. */
export function tai64n(wallMs: number): Buffer {
  const out = Buffer.alloc(12);
  const secs = Math.floor(wallMs / 1000);
  const nanos = Math.floor((wallMs - secs * 1000) * 1e6);
  out.writeBigUInt64BE(0x400000000000000an + BigInt(secs), 0);
  out.writeUInt32BE((nanos & ~0xffffff) >>> 0, 8);
  return out;
}
