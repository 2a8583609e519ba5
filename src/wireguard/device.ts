// A WireGuard device without its datapath: this host's identity, its peers, the handshake messages and timers, and
// the session table the C transport functions read (wireguard-go device/device.go, receive.go's RoutineHandshake,
// send.go's SendHandshake*/keepKeyFresh*, timers.go's expired*). The datapath owns the socket and the batches:
//
//   outbound: canSend(peer) per peer before sealing (false: a handshake is started, the packet must wait or drop)
//             -> wgSealBatch(sessions.buffer, ..., sendSlot, ...) -> sendBatch -> sent(peer, packets, data)
//   inbound:  wgOpenBatch(sessions.buffer, ...) -> handshake verdicts: handleHandshake(datagram, source)
//             -> transport: received(peer, packets, data) once per peer and batch
//   timers:   tick() at nextDeadline()
//
// Handshake messages and keepalives leave through options.send; nothing here is per transport packet.
// Every refusal is a counted verdict; no hostile message throws.
import { inspect } from 'node:util';
import type { Logger } from 'pino';
import { CookieChecker, type Endpoint, LoadDetector } from './cookie.js';
import type { PrivateKey, PublicKey } from './keys.js';
import { parseHandshake } from './messages.js';
import { WG_COUNTER_COUNT, WG_HEADER_LEN, WG_OVERHEAD, wgSealBatch } from './native.js';
import {
  consumeInitiation,
  consumeResponse,
  createInitiation,
  createResponse,
  deriveKeypair,
  type Identity,
  identityOf,
  type NoiseVerdict,
} from './noise.js';
import { type Keypair, Peer, type PeerConfig } from './peer.js';
import { RateLimiter } from './ratelimit.js';
import { SessionTable } from './sessions.js';
import { TIMING, type Timing } from './timers.js';

/** What became of a handshake message. */
export type HandshakeVerdict =
  | 'initiation' // accepted, response sent
  | 'response' // accepted, keypair installed, keepalive sent
  | 'cookie_reply' // cookie taken for the next initiation
  | 'cookie_sent' // under load and no valid mac2: answered with a cookie reply, no DH work done
  | 'rate_limited' // under load, valid mac2, but the source exceeded its rate
  | 'malformed' // wrong type or length
  | 'bad_mac1'
  | 'unknown_index' // a response or cookie reply for no handshake of ours
  | 'bad_cookie' // a cookie reply that does not decrypt
  | 'no_slot' // the session table is full
  | NoiseVerdict;

export const HANDSHAKE_VERDICTS: readonly HandshakeVerdict[] = [
  'initiation',
  'response',
  'cookie_reply',
  'cookie_sent',
  'rate_limited',
  'malformed',
  'bad_mac1',
  'unknown_index',
  'bad_cookie',
  'no_slot',
  'invalid',
  'unknown_peer',
  'replay',
  'flood',
  'wrong_state',
];

/** Messages this device sent, by kind. */
export type SentCounter = 'initiations_sent' | 'responses_sent' | 'cookie_replies_sent' | 'keepalives_sent';
export type DeviceCounterName = `rx_${HandshakeVerdict}` | SentCounter | 'handshakes_completed' | 'no_endpoint';

export interface DeviceOptions {
  readonly privateKey: PrivateKey;
  /** Session-table slots, a power of two: four per peer are enough (default 1024). */
  readonly slots?: number;
  /** A SharedArrayBuffer session table, for worker threads. */
  readonly sharedSessions?: boolean;
  /** Peer-table size: the largest peer index + 1 (default 1024). */
  readonly maxPeers?: number;
  readonly timing?: Partial<Timing>;
  /** Send one handshake message or keepalive. msg is the caller's from then on. */
  readonly send: (msg: Buffer, to: Endpoint) => void;
  /** Monotonic clock in ms (default performance.now). */
  readonly now?: () => number;
  /** Wall clock in ms since the epoch, for TAI64N timestamps (default Date.now). */
  readonly wallClock?: () => number;
  /** Handshake retransmit jitter in ms (default uniform in [0, rekeyTimeoutJitterMaxMs)). */
  readonly jitter?: () => number;
  /** An authenticated handshake came from another address: the datapath's peer record must follow. */
  readonly onEndpoint?: (peer: Peer) => void;
  readonly log?: Logger;
}

export class WireguardDevice {
  readonly identity: Identity;
  readonly timing: Timing;
  readonly sessions: SessionTable;
  /** By peer index: the slot of its current keypair, -1 when it has none (C seals with it). Shared memory, as the
   *  session table, with sharedSessions. */
  readonly sendSlot: Int32Array;
  /** Handshake counters (transport counters are C's, in the datapath's WG counters array). */
  readonly counters: Record<DeviceCounterName, number>;
  readonly load = new LoadDetector();
  readonly #checker: CookieChecker;
  readonly #limiter = new RateLimiter();
  readonly #byKey = new Map<string, Peer>();
  readonly #byIndex: (Peer | undefined)[] = [];
  /** Which peer's handshake or keypair holds each slot. */
  readonly #slotOwner: (Peer | undefined)[];
  readonly #opts: DeviceOptions;
  readonly #now: () => number;
  readonly #wall: () => number;
  // The message limits as numbers: compared per batch, where a BigInt would be an allocation.
  readonly #rekeyAfterMessages: number;
  readonly #rejectAfterMessages: number;
  // Keepalives are sealed by C like any packet: one slot, allocated once.
  readonly #ka = {
    slab: Buffer.alloc(64),
    len: new Int32Array(1),
    off: new Int32Array(1),
    peer: new Int32Array(1),
    counters: new Float64Array(WG_COUNTER_COUNT),
  };

  constructor(opts: DeviceOptions) {
    this.#opts = opts;
    this.identity = identityOf(opts.privateKey);
    this.timing = Object.freeze({ ...TIMING, ...opts.timing });
    this.sessions = new SessionTable(opts.slots ?? 1024, opts.sharedSessions ?? false);
    const maxPeers = opts.maxPeers ?? 1024;
    this.sendSlot = opts.sharedSessions
      ? new Int32Array(new SharedArrayBuffer(4 * maxPeers)).fill(-1)
      : new Int32Array(maxPeers).fill(-1);
    this.#rekeyAfterMessages = Number(this.timing.rekeyAfterMessages);
    this.#rejectAfterMessages = Number(this.timing.rejectAfterMessages);
    this.#slotOwner = new Array<Peer | undefined>(this.sessions.slots);
    this.#checker = new CookieChecker(this.identity.publicKey);
    this.#now = opts.now ?? (() => performance.now());
    this.#wall = opts.wallClock ?? Date.now;
    const counters = {} as Record<DeviceCounterName, number>;
    for (const v of HANDSHAKE_VERDICTS) counters[`rx_${v}`] = 0;
    for (const c of [
      'initiations_sent',
      'responses_sent',
      'cookie_replies_sent',
      'keepalives_sent',
      'handshakes_completed',
      'no_endpoint',
    ] as const) {
      counters[c] = 0;
    }
    this.counters = counters;
  }

  toJSON(): object {
    return { publicKey: this.publicKey.toString(), peers: this.peers.map((p) => p.toJSON()), counters: this.counters };
  }

  [inspect.custom](): string {
    return `WireguardDevice(${this.publicKey.toString()}, ${this.#byKey.size} peers)`;
  }

  /** The device's monotonic clock (ms): session expiry times are in it, so the C calls' nowMs must be too. */
  now(): number {
    return this.#now();
  }

  get publicKey(): PublicKey {
    return this.identity.publicKey;
  }

  get peers(): readonly Peer[] {
    return [...this.#byKey.values()];
  }

  // ---- peers ----

  addPeer(cfg: PeerConfig): Peer {
    if (!Number.isInteger(cfg.index) || cfg.index < 0 || cfg.index >= this.sendSlot.length) {
      throw new RangeError(`peer index ${cfg.index} outside [0, ${this.sendSlot.length})`);
    }
    const key = cfg.publicKey.toString();
    if (this.#byKey.has(key) || this.#byIndex[cfg.index]) {
      throw new RangeError(`peer ${key} or index ${cfg.index} is already configured`);
    }
    const peer = new Peer(cfg, this.identity, this.timing, this.#opts.jitter);
    this.#byKey.set(key, peer);
    this.#byIndex[cfg.index] = peer;
    return peer;
  }

  removePeer(pub: PublicKey): void {
    const peer = this.#byKey.get(pub.toString());
    if (!peer) return;
    this.#zeroAll(peer);
    peer.timers.stop();
    this.#byKey.delete(pub.toString());
    this.#byIndex[peer.index] = undefined;
  }

  peer(pub: PublicKey): Peer | undefined {
    return this.#byKey.get(pub.toString());
  }

  peerAt(index: number): Peer | undefined {
    return this.#byIndex[index];
  }

  // ---- inbound handshake messages (wireguard-go RoutineHandshake) ----

  /** Handle a datagram C judged a handshake message, from src. */
  handleHandshake(datagram: Uint8Array, src: Endpoint, nowMs = this.#now()): HandshakeVerdict {
    const v = this.#handshake(datagram, src, nowMs);
    this.counters[`rx_${v}`]++;
    return v;
  }

  #handshake(datagram: Uint8Array, src: Endpoint, now: number): HandshakeVerdict {
    const parsed = parseHandshake(datagram);
    if (!parsed.ok) return 'malformed';
    const msg = parsed.msg;
    if (msg.type === 3) {
      // A reply to our initiation, or to our response (whose index its keypair now holds), as wireguard-go's index
      // table finds either.
      const slot = this.sessions.slotOf(msg.receiver);
      const owner = slot >= 0 ? this.#slotOwner[slot] : undefined;
      if (!owner) return 'unknown_index';
      return owner.cookies.consumeReply(msg, now) ? 'cookie_reply' : 'bad_cookie';
    }
    if (!this.#checker.checkMac1(datagram)) return 'bad_mac1';
    this.load.note(now);
    if (this.load.underLoad(now)) {
      if (!this.#checker.checkMac2(datagram, src, now)) {
        this.#send(this.#checker.createReply(datagram, msg.sender, src, now), src);
        this.counters.cookie_replies_sent++;
        return 'cookie_sent';
      }
      if (!this.#limiter.allow(src.address, now)) return 'rate_limited';
    }
    if (msg.type === 1) {
      const r = consumeInitiation(
        this.identity,
        msg,
        (pub) => this.#byKey.get(pub.toString()),
        now,
        this.timing.handshakeInitiationRateMs,
      );
      if (!r.ok) return r.verdict;
      const peer = r.peer;
      peer.timers.anyAuthenticatedPacketTraversal(now);
      peer.timers.anyAuthenticatedPacketReceived();
      this.#setEndpoint(peer, src);
      this.#opts.log?.debug({ peer: peer.publicKey.toString() }, 'wireguard: handshake initiation received');
      return this.#sendResponse(peer, now);
    }
    const peer = this.#handshakeOwner(msg.receiver);
    if (!peer) return 'unknown_index';
    const bad = consumeResponse(this.identity, peer.handshake, msg);
    if (bad) return bad;
    this.#setEndpoint(peer, src);
    peer.timers.anyAuthenticatedPacketTraversal(now);
    peer.timers.anyAuthenticatedPacketReceived();
    if (!this.#beginSession(peer, now)) return 'wrong_state';
    peer.timers.sessionDerived(now);
    peer.timers.handshakeComplete(now);
    this.counters.handshakes_completed++;
    this.#opts.log?.debug({ peer: peer.publicKey.toString() }, 'wireguard: handshake complete (initiator)');
    this.sendKeepalive(peer, now);
    return 'response';
  }

  /** The peer whose handshake in progress has this local index. */
  #handshakeOwner(index: number): Peer | undefined {
    const slot = this.sessions.slotOf(index);
    const owner = slot >= 0 ? this.#slotOwner[slot] : undefined;
    return owner && owner.handshakeSlot === slot ? owner : undefined;
  }

  #setEndpoint(peer: Peer, src: Endpoint): void {
    if (peer.endpoint?.address === src.address && peer.endpoint.port === src.port) return;
    peer.endpoint = { address: src.address, port: src.port };
    this.#opts.onEndpoint?.(peer);
  }

  // ---- outbound handshake messages (wireguard-go SendHandshakeInitiation / SendHandshakeResponse) ----

  /** Start a handshake unless one was sent less than REKEY_TIMEOUT ago. isRetry: from the retransmit timer. */
  initiate(peer: Peer, isRetry = false, nowMs = this.#now()): void {
    if (!isRetry) peer.timers.handshakeAttempts = 0;
    const hs = peer.handshake;
    if (nowMs - hs.lastSentHandshake < this.timing.rekeyTimeoutMs) return;
    hs.lastSentHandshake = nowMs;
    const slot = this.#takeHandshakeSlot(peer);
    if (!slot) {
      this.counters.rx_no_slot++;
      return;
    }
    const msg = createInitiation(this.identity, hs, slot.index, this.#wall());
    if (!msg) {
      this.#releaseHandshakeSlot(peer);
      return;
    }
    peer.cookies.addMacs(msg, nowMs);
    peer.timers.anyAuthenticatedPacketTraversal(nowMs);
    peer.timers.anyAuthenticatedPacketSent();
    this.#sendTo(peer, msg);
    this.counters.initiations_sent++;
    peer.timers.handshakeInitiated(nowMs);
    this.#opts.log?.debug({ peer: peer.publicKey.toString(), retry: isRetry }, 'wireguard: handshake initiation sent');
  }

  #sendResponse(peer: Peer, now: number): HandshakeVerdict {
    peer.handshake.lastSentHandshake = now;
    const slot = this.#takeHandshakeSlot(peer);
    if (!slot) return 'no_slot';
    const msg = createResponse(peer.handshake, slot.index);
    if (!msg) {
      this.#releaseHandshakeSlot(peer);
      return 'invalid';
    }
    peer.cookies.addMacs(msg, now);
    if (!this.#beginSession(peer, now)) return 'wrong_state';
    peer.timers.sessionDerived(now);
    peer.timers.anyAuthenticatedPacketTraversal(now);
    peer.timers.anyAuthenticatedPacketSent();
    this.#sendTo(peer, msg);
    this.counters.responses_sent++;
    return 'initiation';
  }

  #takeHandshakeSlot(peer: Peer): { slot: number; index: number } | null {
    this.#releaseHandshakeSlot(peer);
    const a = this.sessions.allocate();
    if (!a) return null;
    peer.handshakeSlot = a.slot;
    this.#slotOwner[a.slot] = peer;
    return a;
  }

  #releaseHandshakeSlot(peer: Peer): void {
    if (peer.handshakeSlot < 0) return;
    this.#release(peer.handshakeSlot);
    peer.handshakeSlot = -1;
  }

  #release(slot: number): void {
    this.sessions.release(slot);
    this.#slotOwner[slot] = undefined;
  }

  // ---- keypairs (wireguard-go BeginSymmetricSession, ReceivedWithKeypair, ZeroAndFlushAll) ----

  /** Derive the keypair of a finished handshake into its slot and rotate. */
  #beginSession(peer: Peer, now: number): boolean {
    const keys = deriveKeypair(peer.handshake);
    if (!keys || peer.handshakeSlot < 0) return false;
    const slot = peer.handshakeSlot;
    peer.handshakeSlot = -1; // the slot now holds the keypair
    this.sessions.install(
      keys.localIndex,
      keys.remoteIndex,
      peer.index,
      keys.sendKey,
      keys.recvKey,
      now + this.timing.rejectAfterTimeMs,
    );
    keys.sendKey.fill(0);
    keys.recvKey.fill(0);
    const kp: Keypair = {
      slot,
      localIndex: keys.localIndex,
      remoteIndex: keys.remoteIndex,
      created: now,
      isInitiator: keys.isInitiator,
    };
    const drop = (k: Keypair | null): void => {
      if (k) this.#release(k.slot);
    };
    if (kp.isInitiator) {
      const oldPrevious = peer.previous;
      if (peer.next) {
        peer.previous = peer.next;
        peer.next = null;
        drop(peer.current);
      } else {
        peer.previous = peer.current;
      }
      drop(oldPrevious);
      peer.current = kp;
    } else {
      drop(peer.next);
      peer.next = kp;
      drop(peer.previous);
      peer.previous = null;
    }
    this.#syncSendSlot(peer);
    return true;
  }

  #syncSendSlot(peer: Peer): void {
    this.sendSlot[peer.index] = peer.current ? peer.current.slot : -1;
  }

  #zeroAll(peer: Peer): void {
    for (const s of peer.slots()) this.#release(s);
    peer.previous = peer.current = peer.next = null;
    peer.handshakeSlot = -1;
    peer.handshake.clear();
    this.#syncSendSlot(peer);
  }

  // ---- transport events from the datapath ----

  /** Whether the peer's current keypair may seal now. When not (none yet, too old, too many messages), a handshake
   *  is started (wireguard-go SendStagedPackets) and the caller must not send. */
  canSend(peerIndex: number, nowMs = this.#now()): boolean {
    const peer = this.#byIndex[peerIndex];
    if (!peer) return false;
    const kp = peer.current;
    if (
      !kp ||
      this.sessions.sendCounterApprox(kp.slot) >= this.#rejectAfterMessages ||
      nowMs - kp.created >= this.timing.rejectAfterTimeMs
    ) {
      this.initiate(peer, false, nowMs);
      return false;
    }
    return true;
  }

  /** After a batch sealed and sent `packets` messages to the peer, `data` of them with a payload. */
  sent(peerIndex: number, packets: number, data: number, nowMs = this.#now()): void {
    const peer = this.#byIndex[peerIndex];
    if (!peer || packets <= 0) return;
    peer.timers.anyAuthenticatedPacketTraversal(nowMs);
    peer.timers.anyAuthenticatedPacketSent();
    if (data > 0) peer.timers.dataSent(nowMs);
    const kp = peer.current;
    if (
      kp &&
      (this.sessions.sendCounterApprox(kp.slot) > this.#rekeyAfterMessages ||
        (kp.isInitiator && nowMs - kp.created > this.timing.rekeyAfterTimeMs))
    ) {
      this.initiate(peer, false, nowMs); // wireguard-go keepKeyFreshSending
    }
  }

  /** After a batch opened `packets` authenticated messages from the peer, `data` of them not keepalives. */
  received(peerIndex: number, packets: number, data: number, nowMs = this.#now()): void {
    const peer = this.#byIndex[peerIndex];
    if (!peer || packets <= 0) return;
    if (peer.next && this.sessions.received(peer.next.slot)) {
      // The initiator used the responder's new keypair: it is confirmed (wireguard-go ReceivedWithKeypair).
      if (peer.previous) this.#release(peer.previous.slot);
      peer.previous = peer.current;
      peer.current = peer.next;
      peer.next = null;
      this.#syncSendSlot(peer);
      peer.timers.handshakeComplete(nowMs);
      this.counters.handshakes_completed++;
      this.#opts.log?.debug({ peer: peer.publicKey.toString() }, 'wireguard: handshake complete (responder)');
    }
    const kp = peer.current;
    const t = this.timing;
    if (
      !peer.timers.sentLastMinuteHandshake &&
      kp?.isInitiator &&
      nowMs - kp.created > t.rejectAfterTimeMs - t.keepaliveTimeoutMs - t.rekeyTimeoutMs
    ) {
      peer.timers.sentLastMinuteHandshake = true; // wireguard-go keepKeyFreshReceiving
      this.initiate(peer, false, nowMs);
    }
    peer.timers.anyAuthenticatedPacketTraversal(nowMs);
    peer.timers.anyAuthenticatedPacketReceived();
    if (data > 0) peer.timers.dataReceived(nowMs);
  }

  /** Seal and send an empty transport message, or start a handshake when there is no keypair to seal with. */
  sendKeepalive(peer: Peer, nowMs = this.#now()): void {
    if (!this.canSend(peer.index, nowMs)) return;
    const ka = this.#ka;
    ka.len[0] = 0;
    ka.peer[0] = peer.index;
    wgSealBatch(
      this.sessions.buffer,
      ka.slab,
      ka.slab.length,
      WG_HEADER_LEN,
      ka.len,
      ka.off,
      ka.peer,
      this.sendSlot,
      1,
      0,
      nowMs,
      ka.counters,
    );
    if (ka.peer[0]! < 0 || ka.len[0] !== WG_OVERHEAD) return;
    this.#sendTo(peer, Buffer.from(ka.slab.subarray(ka.off[0], ka.off[0]! + WG_OVERHEAD)));
    this.counters.keepalives_sent++;
    this.sent(peer.index, 1, 0, nowMs);
  }

  // ---- timers (wireguard-go expired*) ----

  /** Run every timer that is due. */
  tick(nowMs = this.#now()): void {
    for (const peer of this.#byKey.values()) {
      for (const name of peer.timers.due(nowMs)) {
        const timers = peer.timers;
        switch (name) {
          case 'retransmitHandshake':
            if (timers.handshakeAttempts > timers.maxHandshakes) {
              // Give up until something new is to be sent; forget partial state later.
              timers.del('sendKeepalive');
              if (!timers.pending('zeroKeyMaterial')) {
                timers.mod('zeroKeyMaterial', nowMs + this.timing.rejectAfterTimeMs * 3);
              }
            } else {
              timers.handshakeAttempts++;
              this.initiate(peer, true, nowMs);
            }
            break;
          case 'sendKeepalive':
            this.sendKeepalive(peer, nowMs);
            if (timers.needAnotherKeepalive) {
              timers.needAnotherKeepalive = false;
              timers.mod('sendKeepalive', nowMs + this.timing.keepaliveTimeoutMs);
            }
            break;
          case 'newHandshake':
            this.initiate(peer, false, nowMs);
            break;
          case 'zeroKeyMaterial':
            this.#zeroAll(peer);
            break;
          case 'persistentKeepalive':
            if (timers.persistentKeepaliveMs > 0) this.sendKeepalive(peer, nowMs);
            break;
        }
      }
    }
  }

  /** When tick() has work next, null when no timer is set. */
  nextDeadline(): number | null {
    let min: number | null = null;
    for (const peer of this.#byKey.values()) {
      const d = peer.timers.next();
      if (d !== null && (min === null || d < min)) min = d;
    }
    return min;
  }

  /** Forget every key and stop every timer. */
  close(): void {
    for (const peer of this.#byKey.values()) {
      this.#zeroAll(peer);
      peer.timers.stop();
    }
  }

  #sendTo(peer: Peer, msg: Buffer): void {
    if (!peer.endpoint) {
      this.counters.no_endpoint++;
      return;
    }
    this.#send(msg, peer.endpoint);
  }

  #send(msg: Buffer, to: Endpoint): void {
    this.#opts.send(msg, to);
  }
}
