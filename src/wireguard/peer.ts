// One WireGuard peer (wireguard-go device/peer.go and keypair.go): its static key, preshared key and endpoint, its
// handshake and cookie state, its timers, and up to three keypairs (WireGuard whitepaper §6.1-§6.3):
//
//   next      the responder's newest keypair, not used to send until the initiator's first message arrives with it
//   current   the keypair we send with
//   previous  the one before, still accepted so reordered messages from the last rotation decrypt
//
// A keypair's keys live only in the C session table (slot); TypeScript keeps its indices and age. Printing a peer
// shows its public key, endpoint and state, never a secret.
import { inspect } from 'node:util';
import { CookieGenerator, type Endpoint } from './cookie.js';
import type { Identity } from './noise.js';
import { Handshake } from './noise.js';
import { PresharedKey, type PublicKey } from './keys.js';
import { PeerTimers, type Timing } from './timers.js';

export interface Keypair {
  /** Session-table slot holding its keys. */
  readonly slot: number;
  readonly localIndex: number;
  readonly remoteIndex: number;
  /** When it was derived (the device's monotonic clock, ms). */
  readonly created: number;
  readonly isInitiator: boolean;
}

export interface PeerConfig {
  readonly publicKey: PublicKey;
  readonly presharedKey?: PresharedKey;
  /** Where to send; learnt from the peer's authenticated handshakes when absent (or when it moves). */
  readonly endpoint?: Endpoint | null;
  /** Seconds, 0 = off (flannel's PersistentKeepaliveInterval). */
  readonly persistentKeepaliveSeconds?: number;
  /** Index in the datapath's peer table: what the C calls report in peer[] and what sendSlot is indexed by. */
  readonly index: number;
}

export class Peer {
  readonly publicKey: PublicKey;
  readonly index: number;
  endpoint: Endpoint | null;
  readonly handshake: Handshake;
  readonly cookies: CookieGenerator;
  readonly timers: PeerTimers;
  previous: Keypair | null = null;
  current: Keypair | null = null;
  next: Keypair | null = null;
  /** Slot of the handshake in progress (ours: initiation sent or response sent), -1 when none. */
  handshakeSlot = -1;

  constructor(cfg: PeerConfig, identity: Identity, timing: Timing, jitter?: () => number) {
    this.publicKey = cfg.publicKey;
    this.index = cfg.index;
    this.endpoint = cfg.endpoint ?? null;
    this.handshake = new Handshake(cfg.publicKey, cfg.presharedKey ?? PresharedKey.none(), identity);
    this.cookies = new CookieGenerator(cfg.publicKey);
    this.timers = new PeerTimers(timing, (cfg.persistentKeepaliveSeconds ?? 0) * 1000, jitter);
  }

  /** The slots this peer holds, for releasing them all. */
  slots(): number[] {
    return [this.handshakeSlot, this.previous?.slot ?? -1, this.current?.slot ?? -1, this.next?.slot ?? -1].filter(
      (s) => s >= 0,
    );
  }

  toJSON(): object {
    return {
      publicKey: this.publicKey.toString(),
      endpoint: this.endpoint ? `${this.endpoint.address}:${this.endpoint.port}` : null,
      handshake: this.handshake.state,
      current: this.current ? { localIndex: this.current.localIndex, created: this.current.created } : null,
      next: this.next !== null,
      lastHandshakeMs: this.timers.lastHandshakeMs,
    };
  }

  [inspect.custom](): string {
    return `Peer(${this.publicKey.toString()}, ${JSON.stringify(this.toJSON())})`;
  }
}
