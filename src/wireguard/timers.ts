// WireGuard's timers (WireGuard whitepaper §6; wireguard-go device/timers.go and device/constants.go), as deadlines
// on the caller's monotonic clock instead of one OS timer each: events set and clear deadlines, and the device asks
// due(now) for the ones that passed (one setTimeout for all peers, driven by nextDeadline()).
//
//   retransmitHandshake  REKEY_TIMEOUT + jitter after an initiation is sent; cleared when the handshake completes
//   sendKeepalive        KEEPALIVE_TIMEOUT after data arrives, unless we sent something authenticated meanwhile
//   newHandshake         KEEPALIVE_TIMEOUT + REKEY_TIMEOUT + jitter after data is sent, unless something
//                        authenticated arrives meanwhile (the peer went silent: start over)
//   zeroKeyMaterial      REJECT_AFTER_TIME * 3 after a session is derived: forget every key
//   persistentKeepalive  the configured interval after any authenticated packet either way

/** The protocol's constants; tests pass shorter times (never the message limits' meaning). */
export interface Timing {
  /** Start a new handshake when the current keypair has sent this many messages. */
  readonly rekeyAfterMessages: bigint;
  /** A keypair never sends or accepts a counter at or above this. */
  readonly rejectAfterMessages: bigint;
  /** The initiator starts a new handshake once its keypair is this old (and it sends). */
  readonly rekeyAfterTimeMs: number;
  /** A keypair is refused this long after it was derived. */
  readonly rejectAfterTimeMs: number;
  /** Handshake retries stop after this long (as REKEY_ATTEMPT_TIME / REKEY_TIMEOUT attempts). */
  readonly rekeyAttemptTimeMs: number;
  /** Wait this long (+ jitter) for a response before retrying; also the least time between initiations. */
  readonly rekeyTimeoutMs: number;
  readonly rekeyTimeoutJitterMaxMs: number;
  /** Answer received data with a keepalive after this long if nothing else was sent. */
  readonly keepaliveTimeoutMs: number;
  /** Initiations from one peer faster than this are a flood (wireguard-go HandshakeInitationRate, 50 per second). */
  readonly handshakeInitiationRateMs: number;
}

/** WireGuard whitepaper §6.1 and wireguard-go device/constants.go. */
export const TIMING: Timing = Object.freeze({
  rekeyAfterMessages: 1n << 60n,
  rejectAfterMessages: (1n << 64n) - (1n << 13n) - 1n,
  rekeyAfterTimeMs: 120_000,
  rejectAfterTimeMs: 180_000,
  rekeyAttemptTimeMs: 90_000,
  rekeyTimeoutMs: 5_000,
  rekeyTimeoutJitterMaxMs: 334,
  keepaliveTimeoutMs: 10_000,
  handshakeInitiationRateMs: 20,
});

export type TimerName =
  'retransmitHandshake' | 'sendKeepalive' | 'newHandshake' | 'zeroKeyMaterial' | 'persistentKeepalive';
/** The order due() reports expirations in, when several passed at once. */
export const TIMER_NAMES: readonly TimerName[] = [
  'retransmitHandshake',
  'sendKeepalive',
  'newHandshake',
  'zeroKeyMaterial',
  'persistentKeepalive',
];

/** One peer's timers. Methods are named after wireguard-go's timers* hooks and called where it calls them. */
export class PeerTimers {
  readonly #deadline: Record<TimerName, number | null> = {
    retransmitHandshake: null,
    sendKeepalive: null,
    newHandshake: null,
    zeroKeyMaterial: null,
    persistentKeepalive: null,
  };
  /** Initiations sent since the last one that was not a retry. */
  handshakeAttempts = 0;
  needAnotherKeepalive = false;
  sentLastMinuteHandshake = false;
  /** When the last handshake completed, null before the first. */
  lastHandshakeMs: number | null = null;

  constructor(
    readonly timing: Timing,
    /** Persistent keepalive interval, 0 = off (wg's persistent-keepalive, flannel's PersistentKeepaliveInterval). */
    public persistentKeepaliveMs = 0,
    private readonly jitter: () => number = () => Math.floor(Math.random() * timing.rekeyTimeoutJitterMaxMs),
  ) {}

  /** Most initiations before giving up: REKEY_ATTEMPT_TIME / REKEY_TIMEOUT (wireguard-go MaxTimerHandshakes). */
  get maxHandshakes(): number {
    return Math.floor(this.timing.rekeyAttemptTimeMs / this.timing.rekeyTimeoutMs);
  }

  pending(name: TimerName): boolean {
    return this.#deadline[name] !== null;
  }

  deadline(name: TimerName): number | null {
    return this.#deadline[name];
  }

  mod(name: TimerName, at: number): void {
    this.#deadline[name] = at;
  }

  del(name: TimerName): void {
    this.#deadline[name] = null;
  }

  /** After an authenticated data packet is sent. */
  dataSent(nowMs: number): void {
    if (!this.pending('newHandshake')) {
      this.mod('newHandshake', nowMs + this.timing.keepaliveTimeoutMs + this.timing.rekeyTimeoutMs + this.jitter());
    }
  }

  /** After an authenticated data packet is received. */
  dataReceived(nowMs: number): void {
    if (!this.pending('sendKeepalive')) this.mod('sendKeepalive', nowMs + this.timing.keepaliveTimeoutMs);
    else this.needAnotherKeepalive = true;
  }

  /** After any authenticated packet is sent: keepalive, data or handshake. */
  anyAuthenticatedPacketSent(): void {
    this.del('sendKeepalive');
  }

  /** After any authenticated packet is received: keepalive, data or handshake. */
  anyAuthenticatedPacketReceived(): void {
    this.del('newHandshake');
  }

  /** After a handshake initiation is sent. */
  handshakeInitiated(nowMs: number): void {
    this.mod('retransmitHandshake', nowMs + this.timing.rekeyTimeoutMs + this.jitter());
  }

  /** After a response is consumed, or the first data packet confirms the responder's keypair. */
  handshakeComplete(nowMs: number): void {
    this.del('retransmitHandshake');
    this.handshakeAttempts = 0;
    this.sentLastMinuteHandshake = false;
    this.lastHandshakeMs = nowMs;
  }

  /** After a keypair is derived (response sent or response consumed). */
  sessionDerived(nowMs: number): void {
    this.mod('zeroKeyMaterial', nowMs + this.timing.rejectAfterTimeMs * 3);
  }

  /** Before an authenticated packet is sent, or after one is received. */
  anyAuthenticatedPacketTraversal(nowMs: number): void {
    if (this.persistentKeepaliveMs > 0) this.mod('persistentKeepalive', nowMs + this.persistentKeepaliveMs);
  }

  /** The timers whose deadline passed, in TIMER_NAMES order; each is cleared (its handler may set it again). */
  due(nowMs: number): TimerName[] {
    const out: TimerName[] = [];
    for (const n of TIMER_NAMES) {
      const d = this.#deadline[n];
      if (d !== null && d <= nowMs) {
        this.#deadline[n] = null;
        out.push(n);
      }
    }
    return out;
  }

  /** The earliest deadline, null when no timer is set. */
  next(): number | null {
    let min: number | null = null;
    for (const n of TIMER_NAMES) {
      const d = this.#deadline[n];
      if (d !== null && (min === null || d < min)) min = d;
    }
    return min;
  }

  stop(): void {
    for (const n of TIMER_NAMES) this.#deadline[n] = null;
  }
}
