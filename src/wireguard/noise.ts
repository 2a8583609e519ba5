// The handshake: Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s as WireGuard runs it (WireGuard whitepaper §5.4.2-§5.4.5;
// wireguard-go device/noise-protocol.go has the same steps in the same order):
//
//   initiator                                           responder
//   createInitiation  ── initiation (e, s, timestamp) ──>  consumeInitiation (finds the peer by its static key)
//   consumeResponse   <── response (e, empty)          ──  createResponse
//   deriveKeypair: (send, receive) = KDF2(C, ε), mirrored on the responder
//
// Each function takes the peer's Handshake and updates it only when the message authenticated; failures return a
// verdict. MAC1/MAC2 are cookie.ts's part, indices and rate limits device.ts's. The chaining key, hash and
// ephemeral key never print (Handshake's toJSON and inspect show the state only).
import { inspect } from 'node:util';
import { PresharedKey, PrivateKey, PublicKey } from './keys.js';
import { buildInitiation, buildResponse, type Initiation, type Response } from './messages.js';
import { aeadOpen, aeadSeal, hash, INITIAL_CHAIN_KEY, INITIAL_HASH, kdf, tai64n } from './primitives.js';

export type HandshakeState =
  'zeroed' | 'initiation_created' | 'initiation_consumed' | 'response_created' | 'response_consumed';

/** This host's static key pair. */
export interface Identity {
  readonly privateKey: PrivateKey;
  readonly publicKey: PublicKey;
}

export function identityOf(privateKey: PrivateKey): Identity {
  return { privateKey, publicKey: privateKey.publicKey };
}

const EMPTY = Buffer.alloc(0);

/** One peer's handshake state (wireguard-go's Handshake). Times are the caller's monotonic clock in ms. */
export class Handshake {
  state: HandshakeState = 'zeroed';
  hash: Buffer = Buffer.alloc(32);
  chainKey: Buffer = Buffer.alloc(32);
  localEphemeral: PrivateKey | null = null;
  remoteEphemeral: PublicKey | null = null;
  /** Our index for this handshake (the receiver index of the reply), 0 when none. */
  localIndex = 0;
  remoteIndex = 0;
  /** Greatest TAI64N timestamp accepted from this peer: older or equal initiations are replays. */
  lastTimestamp: Buffer = Buffer.alloc(12);
  lastInitiationConsumption = -Infinity;
  lastSentHandshake = -Infinity;
  /** DH(our static, their static), computed once; null when it is all zeros (an unusable public key). */
  readonly precomputedStaticStatic: Buffer | null;

  constructor(
    readonly remoteStatic: PublicKey,
    public presharedKey: PresharedKey,
    identity: Identity,
  ) {
    this.precomputedStaticStatic = identity.privateKey.dh(remoteStatic);
  }

  mixHash(data: Uint8Array): void {
    this.hash = hash(this.hash, data);
  }

  mixKey(data: Uint8Array): void {
    this.chainKey = kdf(1, this.chainKey, data)[0]!;
  }

  /** Forget the ephemeral state (wireguard-go Handshake.Clear); the timestamp and rate memory stay. */
  clear(): void {
    this.hash.fill(0);
    this.chainKey.fill(0);
    this.localEphemeral?.destroy();
    this.localEphemeral = null;
    this.remoteEphemeral = null;
    this.localIndex = 0;
    this.state = 'zeroed';
  }

  toJSON(): { state: HandshakeState; localIndex: number; remoteIndex: number } {
    return { state: this.state, localIndex: this.localIndex, remoteIndex: this.remoteIndex };
  }

  [inspect.custom](): string {
    return `Handshake(${this.state}, local index ${this.localIndex})`;
  }
}

/** Why a handshake message was refused: a decryption failed (or a DH gave zeros), nobody has this static key, the
 *  timestamp is not newer than the last accepted one, initiations come faster than the rate limit, or the
 *  handshake is not in the state the message answers. */
export type NoiseVerdict = 'invalid' | 'unknown_peer' | 'replay' | 'flood' | 'wrong_state';

/** Whitepaper §5.4.2 (initiator): the initiation without MACs, sender = our index for this handshake. */
export function createInitiation(id: Identity, hs: Handshake, sender: number, wallMs: number): Buffer | null {
  if (!hs.precomputedStaticStatic) return null;
  hs.clear();
  hs.hash = Buffer.from(INITIAL_HASH);
  hs.chainKey = Buffer.from(INITIAL_CHAIN_KEY);
  hs.mixHash(hs.remoteStatic.bytes);
  const eph = PrivateKey.generate();
  const ephPub = eph.publicKey.bytes;
  hs.mixKey(ephPub);
  hs.mixHash(ephPub);
  const es = eph.dh(hs.remoteStatic);
  if (!es) return null;
  const [ck1, key1] = kdf(2, hs.chainKey, es) as [Buffer, Buffer];
  hs.chainKey = ck1;
  const encryptedStatic = aeadSeal(key1, 0n, id.publicKey.bytes, hs.hash);
  hs.mixHash(encryptedStatic);
  const [ck2, key2] = kdf(2, hs.chainKey, hs.precomputedStaticStatic) as [Buffer, Buffer];
  hs.chainKey = ck2;
  const encryptedTimestamp = aeadSeal(key2, 0n, tai64n(wallMs), hs.hash);
  hs.mixHash(encryptedTimestamp);
  es.fill(0);
  key1.fill(0);
  key2.fill(0);
  hs.localEphemeral = eph;
  hs.localIndex = sender >>> 0;
  hs.state = 'initiation_created';
  return buildInitiation({ sender, ephemeral: ephPub, encryptedStatic, encryptedTimestamp });
}

/** Whitepaper §5.4.2 (responder): decrypt the initiator's static key, find its peer, check the timestamp and the
 *  initiation rate; on success the peer's handshake holds the state createResponse continues from. */
export function consumeInitiation<P extends { readonly handshake: Handshake }>(
  id: Identity,
  msg: Initiation,
  lookup: (pub: PublicKey) => P | undefined,
  nowMs: number,
  initiationRateMs: number,
): { ok: true; peer: P } | { ok: false; verdict: NoiseVerdict } {
  const ephemeral = PublicKey.fromBytes(msg.ephemeral)!;
  let h = hash(hash(INITIAL_HASH, id.publicKey.bytes), msg.ephemeral);
  let ck = kdf(1, INITIAL_CHAIN_KEY, msg.ephemeral)[0]!;
  const es = id.privateKey.dh(ephemeral);
  if (!es) return { ok: false, verdict: 'invalid' };
  const [ck1, key1] = kdf(2, ck, es) as [Buffer, Buffer];
  es.fill(0);
  ck = ck1;
  const staticBytes = aeadOpen(key1, 0n, msg.encryptedStatic, h);
  key1.fill(0);
  if (!staticBytes) return { ok: false, verdict: 'invalid' };
  h = hash(h, msg.encryptedStatic);
  const peer = lookup(PublicKey.fromBytes(staticBytes)!);
  if (!peer) return { ok: false, verdict: 'unknown_peer' };
  const hs = peer.handshake;
  if (!hs.precomputedStaticStatic) return { ok: false, verdict: 'invalid' };
  const [ck2, key2] = kdf(2, ck, hs.precomputedStaticStatic) as [Buffer, Buffer];
  ck = ck2;
  const timestamp = aeadOpen(key2, 0n, msg.encryptedTimestamp, h);
  key2.fill(0);
  if (!timestamp) return { ok: false, verdict: 'invalid' };
  h = hash(h, msg.encryptedTimestamp);
  // wireguard-go ConsumeMessageInitiation: "protect against replay & flood"
  if (Buffer.compare(timestamp, hs.lastTimestamp) <= 0) return { ok: false, verdict: 'replay' };
  if (nowMs - hs.lastInitiationConsumption <= initiationRateMs) return { ok: false, verdict: 'flood' };
  // localIndex stays: the caller releases it when createResponse takes a new one.
  hs.hash.fill(0);
  hs.chainKey.fill(0);
  hs.hash = h;
  hs.chainKey = ck;
  hs.remoteIndex = msg.sender;
  hs.remoteEphemeral = ephemeral;
  hs.lastTimestamp = timestamp;
  hs.lastInitiationConsumption = nowMs;
  hs.state = 'initiation_consumed';
  return { ok: true, peer };
}

/** Whitepaper §5.4.3 (responder): the response without MACs, sender = our index, after consumeInitiation. */
export function createResponse(hs: Handshake, sender: number): Buffer | null {
  if (hs.state !== 'initiation_consumed' || !hs.remoteEphemeral) return null;
  const eph = PrivateKey.generate();
  const ephPub = eph.publicKey.bytes;
  hs.mixHash(ephPub);
  hs.mixKey(ephPub);
  const ee = eph.dh(hs.remoteEphemeral);
  const se = eph.dh(hs.remoteStatic);
  if (!ee || !se) return null;
  hs.mixKey(ee);
  hs.mixKey(se);
  ee.fill(0);
  se.fill(0);
  const [ck, tau, key] = kdf(3, hs.chainKey, hs.presharedKey.bytes) as [Buffer, Buffer, Buffer];
  hs.chainKey = ck;
  hs.mixHash(tau);
  const encryptedNothing = aeadSeal(key, 0n, EMPTY, hs.hash);
  hs.mixHash(encryptedNothing);
  tau.fill(0);
  key.fill(0);
  hs.localEphemeral?.destroy();
  hs.localEphemeral = eph;
  hs.localIndex = sender >>> 0;
  hs.state = 'response_created';
  return buildResponse({ sender, receiver: hs.remoteIndex, ephemeral: ephPub, encryptedNothing });
}

/** Whitepaper §5.4.3 (initiator): finish the three DHs and authenticate the transcript. The caller found hs by the
 *  response's receiver index. */
export function consumeResponse(id: Identity, hs: Handshake, msg: Response): NoiseVerdict | null {
  if (hs.state !== 'initiation_created' || !hs.localEphemeral) return 'wrong_state';
  const ephemeral = PublicKey.fromBytes(msg.ephemeral)!;
  let h = hash(hs.hash, msg.ephemeral);
  let ck = kdf(1, hs.chainKey, msg.ephemeral)[0]!;
  const ee = hs.localEphemeral.dh(ephemeral);
  const se = id.privateKey.dh(ephemeral);
  if (!ee || !se) return 'invalid';
  ck = kdf(1, ck, ee)[0]!;
  ck = kdf(1, ck, se)[0]!;
  ee.fill(0);
  se.fill(0);
  const [ck3, tau, key] = kdf(3, ck, hs.presharedKey.bytes) as [Buffer, Buffer, Buffer];
  h = hash(h, tau);
  const ok = aeadOpen(key, 0n, msg.encryptedNothing, h);
  tau.fill(0);
  key.fill(0);
  if (!ok) return 'invalid';
  hs.hash = hash(h, msg.encryptedNothing);
  hs.chainKey = ck3;
  hs.remoteIndex = msg.sender;
  hs.state = 'response_consumed';
  return null;
}

/** Transport keys derived at the end of a handshake (whitepaper §5.4.5). The keys go to the C session table and are
 *  then zeroed by the caller. */
export interface DerivedKeys {
  readonly sendKey: Buffer;
  readonly recvKey: Buffer;
  readonly isInitiator: boolean;
  readonly localIndex: number;
  readonly remoteIndex: number;
}

/** Whitepaper §5.4.5: (T_send, T_recv) = KDF2(C, ε) for the initiator, swapped for the responder; the handshake is
 *  zeroed afterwards (wireguard-go BeginSymmetricSession). null in any other state. */
export function deriveKeypair(hs: Handshake): DerivedKeys | null {
  let isInitiator: boolean;
  if (hs.state === 'response_consumed') isInitiator = true;
  else if (hs.state === 'response_created') isInitiator = false;
  else return null;
  const [t1, t2] = kdf(2, hs.chainKey, EMPTY) as [Buffer, Buffer];
  const keys: DerivedKeys = {
    sendKey: isInitiator ? t1 : t2,
    recvKey: isInitiator ? t2 : t1,
    isInitiator,
    localIndex: hs.localIndex,
    remoteIndex: hs.remoteIndex,
  };
  hs.clear();
  return keys;
}
