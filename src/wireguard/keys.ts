// WireGuard's keys (WireGuard whitepaper §5.4): Curve25519 (X25519, RFC 7748) private and public keys and the
// optional 32-byte preshared key, written as base64 of their 32 bytes as wg(8) and flannel's lease BackendData
// ({"PublicKey":"<base64>"}) write them. Node's crypto does X25519 on KeyObjects, made here from the raw bytes.
//
// Secrets never print: PrivateKey and PresharedKey answer toString, toJSON (what pino logs) and util.inspect with
// "[redacted]"; only exportBase64() (for the key file) hands the private key out. Parsing never throws on hostile
// text (a lease is input from the network's control plane): it returns null.
import { createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { inspect } from 'node:util';

export const KEY_LEN = 32;
// DER wrappers of a raw X25519 key (RFC 8410): PKCS#8 for the private, SubjectPublicKeyInfo for the public.
const PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');
const SPKI_PREFIX = Buffer.from('302a300506032b656e032100', 'hex');
const REDACTED = '[redacted]';

/** 32 bytes from base64 text, or null (wrong alphabet, padding or length). */
export function decodeKey(text: string): Buffer | null {
  const t = text.trim();
  if (!/^[A-Za-z0-9+/]{43}=$/.test(t)) return null;
  const b = Buffer.from(t, 'base64');
  return b.length === KEY_LEN ? b : null;
}

/** A secret key from its base64 text: `make` copies the decoded bytes, which are wiped right after. */
function fromKeyText<K>(text: string, make: (bytes: Buffer) => K): K | null {
  const b = decodeKey(text);
  if (!b) return null;
  const k = make(b);
  b.fill(0);
  return k;
}

export class PublicKey {
  readonly bytes: Buffer;
  #object: KeyObject | undefined;

  private constructor(bytes: Uint8Array) {
    this.bytes = Buffer.from(bytes);
  }

  /** A copy of 32 bytes as a public key, or null for another length. */
  static fromBytes(bytes: Uint8Array): PublicKey | null {
    return bytes.length === KEY_LEN ? new PublicKey(bytes) : null;
  }

  static fromBase64(text: string): PublicKey | null {
    const b = decodeKey(text);
    return b ? new PublicKey(b) : null;
  }

  /** The KeyObject node:crypto's diffieHellman takes, made once. */
  get keyObject(): KeyObject {
    this.#object ??= createPublicKey({ key: Buffer.concat([SPKI_PREFIX, this.bytes]), format: 'der', type: 'spki' });
    return this.#object;
  }

  equals(other: PublicKey): boolean {
    return this.bytes.equals(other.bytes);
  }

  toString(): string {
    return this.bytes.toString('base64');
  }

  toJSON(): string {
    return this.toString();
  }

  [inspect.custom](): string {
    return `PublicKey(${this.toString()})`;
  }
}

export class PrivateKey {
  #bytes: Buffer;
  #object: KeyObject;
  readonly publicKey: PublicKey;

  private constructor(bytes: Uint8Array) {
    this.#bytes = Buffer.from(bytes);
    this.#object = createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, this.#bytes]), format: 'der', type: 'pkcs8' });
    const spki = createPublicKey(this.#object).export({ format: 'der', type: 'spki' });
    this.publicKey = PublicKey.fromBytes(spki.subarray(spki.length - KEY_LEN))!;
  }

  /** A fresh random key (clamped by X25519 as every use clamps it, RFC 7748 §5). */
  static generate(): PrivateKey {
    const { privateKey } = generateKeyPairSync('x25519');
    const der = privateKey.export({ format: 'der', type: 'pkcs8' });
    const k = new PrivateKey(der.subarray(der.length - KEY_LEN));
    der.fill(0);
    return k;
  }

  static fromBytes(bytes: Uint8Array): PrivateKey | null {
    return bytes.length === KEY_LEN ? new PrivateKey(bytes) : null;
  }

  static fromBase64(text: string): PrivateKey | null {
    return fromKeyText(text, (b) => new PrivateKey(b));
  }

  /** DH(private, public): the X25519 shared secret, or null when it is all zeros (a low-order point; wireguard-go
   *  sharedSecret refuses it the same way). */
  dh(pub: PublicKey): Buffer | null {
    let s: Buffer;
    try {
      s = diffieHellman({ privateKey: this.#object, publicKey: pub.keyObject });
    } catch {
      return null; // OpenSSL refuses an all-zero result itself
    }
    return s.some((b) => b !== 0) ? s : null;
  }

  /** The key as wg(8) writes it, for the key file only. */
  exportBase64(): string {
    return this.#bytes.toString('base64');
  }

  /** Overwrite the bytes kept here (the KeyObject is OpenSSL's and goes with the garbage collector). */
  destroy(): void {
    this.#bytes.fill(0);
  }

  toString(): string {
    return REDACTED;
  }

  toJSON(): string {
    return REDACTED;
  }

  [inspect.custom](): string {
    return `PrivateKey(${REDACTED}, public ${this.publicKey.toString()})`;
  }
}

/** The optional preshared key of the psk2 pattern; all zeros when none is configured (WireGuard whitepaper §5.2). */
export class PresharedKey {
  #bytes: Buffer;

  private constructor(bytes: Uint8Array) {
    this.#bytes = Buffer.from(bytes);
  }

  static none(): PresharedKey {
    return new PresharedKey(Buffer.alloc(KEY_LEN));
  }

  static fromBase64(text: string): PresharedKey | null {
    return fromKeyText(text, (b) => new PresharedKey(b));
  }

  static fromBytes(bytes: Uint8Array): PresharedKey | null {
    return bytes.length === KEY_LEN ? new PresharedKey(bytes) : null;
  }

  /** The bytes, for the handshake's KDF only. */
  get bytes(): Buffer {
    return this.#bytes;
  }

  toString(): string {
    return REDACTED;
  }

  toJSON(): string {
    return REDACTED;
  }

  [inspect.custom](): string {
    return `PresharedKey(${REDACTED})`;
  }
}
