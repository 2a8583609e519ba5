// The WireGuard transform of the batch tier: the "transform" steps of outbound.ts and inbound.ts, over a
// WireguardDevice (src/wireguard/) whose session table the C calls read. Inner IPv4 packets travel as WireGuard
// transport data with no other encap, so a kernel WireGuard peer (flannel's wireguard backend) or wireguard-go
// reads them as its own.
//
//   out: route (outbound.ts) -> outHop: the header checked and the TTL (hop limit) decremented, as every other
//        batch path does in outEncap (an expired packet gets ICMP time exceeded in outbound.ts's step 6) -> per
//        peer in the batch: canSend (else the packet is dropped, counted wg_no_session, and a handshake starts)
//        -> wgSealBatch seals every packet in place (header in the headroom, tag after) -> the train -> sendmmsg.
//        Nothing for a WireGuard peer leaves unsealed: there is no other path. On the offload tier the TTL goes
//        down in outEncap's segmentation, before outWgSeal.
//   in:  recvmmsg (with source ports) -> wgOpenBatch opens in place -> handshake messages go to the device with
//        their source address and port -> each inner packet's source must lie in the subnet of the peer whose key
//        opened it (cryptokey routing: AllowedIPs = the lease's subnet) -> TUN.
//
// Packets that arrive for a peer whose handshake is in flight are dropped, counted, not staged: staging would copy
// each one out of the read slab (the slab is reused by the next read) and a TCP sender retransmits anyway; the
// handshake takes one round trip. Handshake messages and keepalives leave through one sendto on the same socket.
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import * as native from '../native.js';
import { formatIPv4, parseIPv4 } from '../ip/subnet.js';
import {
  type DeviceCounterName,
  type Endpoint,
  WG_COUNTER_COUNT,
  WG_VERDICT_HANDSHAKE,
  WgCounter,
  WireguardDevice,
  wgCounterNames,
  wgOpenBatch,
  wgOpenList,
  wgSealBatch,
} from '../wireguard/index.js';
import { C, type PathState } from './path-state.js';
import type { WireguardDatapathOptions } from './datapath.js';
import type { Peer } from './peers.js';
import type { Queue } from './queue.js';
import { NO_ROUTE } from './routes.js';
import { readIp } from './ttl.js';

/** Peers a device holds at most (session slots: four per peer). */
const MAX_PEERS = 4096;
const SESSION_SLOTS = 4 * MAX_PEERS;
/** Handshake messages by type: their fixed lengths (WireGuard whitepaper §5.4.2-5.4.7). */
const HANDSHAKE_LEN = [0, 148, 92, 64] as const;
/** How often the device's timers are looked at. */
const TICK_MS = 50;

export class WireguardTransform {
  readonly device: WireguardDevice;
  /** C's transport counters (wg_*), added to by every seal and open call. */
  readonly counters = new Float64Array(WG_COUNTER_COUNT);
  #sockFd = -1;
  /** By snapshot peer index: the device peer, -1 for none. */
  #devOf = new Int32Array(0);
  /** By device peer index: the snapshot peer, -1 for none. */
  readonly #snapOf = new Int32Array(MAX_PEERS).fill(-1);
  /** By device peer index: its key and endpoint in the current snapshot. */
  readonly #byKey = new Map<string, { index: number; endpoint: string }>();
  readonly #freeIndexes: number[] = [];
  // Per batch, by snapshot index (outbound) or device index (inbound); allocated on peer changes, not per batch.
  #sendSlot = new Int32Array(0);
  #checked = new Uint32Array(0);
  #count = new Int32Array(0);
  #stamp = 0;
  readonly #rxCount = new Int32Array(MAX_PEERS);
  readonly #rxData = new Int32Array(MAX_PEERS);
  readonly #rxTouched = new Int32Array(MAX_PEERS);
  #inOff = new Int32Array(0);
  #inPeer = new Int32Array(0);
  #inLen = new Int32Array(0);
  /** The receive slot each datagram came in (its source address and port). */
  #inFrom = new Int32Array(0);
  #timer: NodeJS.Timeout | null = null;
  readonly #mtu: number;

  constructor(
    private readonly opts: WireguardDatapathOptions,
    private readonly path: PathState,
    mtu: number,
    private readonly log: Logger,
  ) {
    this.#mtu = mtu;
    for (let i = MAX_PEERS - 1; i >= 0; i--) this.#freeIndexes.push(i);
    this.device = new WireguardDevice({
      privateKey: opts.privateKey,
      slots: SESSION_SLOTS,
      maxPeers: MAX_PEERS,
      send: (msg, to) => this.#send(msg, to),
      log,
    });
  }

  /** The socket handshake messages leave through, and the queue's per-batch arrays; starts the timers. */
  attach(sockFd: number, q: Queue): void {
    this.#sockFd = sockFd;
    // Offload tier: up to GRO_MAX_SEGS datagrams per receive buffer.
    const max = q.inGso ? q.slots * native.GRO_MAX_SEGS : q.slots;
    this.#inOff = new Int32Array(max);
    this.#inPeer = new Int32Array(max);
    this.#inLen = new Int32Array(max);
    this.#inFrom = new Int32Array(max);
    this.#timer = setInterval(() => this.#tick(), TICK_MS);
    this.#timer.unref();
  }

  // ---- peers ----

  /** Follows a new snapshot: device peers added, removed or moved to a new endpoint by key. */
  setPeers(peers: readonly Peer[]): void {
    const seen = new Set<string>();
    const added: number[] = [];
    const devOf = new Int32Array(peers.length).fill(-1);
    this.#snapOf.fill(-1);
    peers.forEach((p, s) => {
      const key = p.wgKey;
      if (!key) return;
      const k = key.toString();
      if (seen.has(k)) return; // two leases with one key: the first keeps it (the second gets no traffic)
      seen.add(k);
      const endpoint = `${formatIPv4(p.publicIp)}:${p.port}`;
      let have = this.#byKey.get(k);
      if (!have) {
        const index = this.#freeIndexes.pop();
        if (index === undefined) {
          this.log.warn({ publicKey: k }, 'wireguard: peer table full, peer ignored');
          return;
        }
        this.device.addPeer({
          publicKey: key,
          ...(this.opts.presharedKey ? { presharedKey: this.opts.presharedKey } : {}),
          endpoint: { address: formatIPv4(p.publicIp), port: p.port },
          persistentKeepaliveSeconds: this.opts.persistentKeepaliveSeconds,
          index,
        });
        have = { index, endpoint };
        this.#byKey.set(k, have);
        added.push(index);
      } else if (have.endpoint !== endpoint) {
        const dp = this.device.peerAt(have.index);
        if (dp) dp.endpoint = { address: formatIPv4(p.publicIp), port: p.port };
        have.endpoint = endpoint;
      }
      devOf[s] = have.index;
      this.#snapOf[have.index] = s;
    });
    for (const [k, v] of this.#byKey) {
      if (seen.has(k)) continue;
      const dp = this.device.peerAt(v.index);
      if (dp) this.device.removePeer(dp.publicKey);
      this.#byKey.delete(k);
      this.#freeIndexes.push(v.index);
    }
    // A new peer gets a handshake at once: after our restart the peer still seals with a session we forgot, and
    // would wait for its own timer (15 s without an answer) to start one; our initiation replaces it now.
    if (this.#sockFd >= 0) for (const d of added) this.#initiate(d);
    this.#devOf = devOf;
    this.#sendSlot = new Int32Array(peers.length);
    this.#checked = new Uint32Array(peers.length);
    this.#count = new Int32Array(peers.length);
  }

  // ---- outbound transform ----

  /**
   * Seals packets 0..n-1 of the out batch and builds the train; returns outEncap's count of messages to send. Batch
   * tier: each packet's TTL decremented (outHop), then sealed in place (the queue has no encap), then framed.
   * Offload tier: the train of segments first (GSO, no encap header, the TTL decremented per segment), then every
   * message sealed into the queue's seal area (outWgSeal). A packet or message that cannot be sealed gets a verdict,
   * counted.
   */
  seal(q: Queue, n: number): number {
    const now = this.device.now();
    const devOf = this.#devOf;
    const slot = this.#sendSlot;
    const checked = this.#checked;
    const count = this.#count;
    const stamp = (this.#stamp = (this.#stamp + 1) >>> 0 || 1);
    // The sealed header is out of reach: decrement first, and an expired packet costs no session or handshake.
    if (!q.opts.vnet) native.outHop(q.handle, n);
    for (let i = 0; i < n; i++) {
      const s = q.outPeer[i] as number;
      if (s < 0) continue;
      const d = s < devOf.length ? (devOf[s] as number) : -1;
      if (d < 0) {
        q.outPeer[i] = native.VERDICT_NO_ROUTE; // a lease without a usable key never gets a packet
        this.path.count(C.dropNoRoute);
        continue;
      }
      if (checked[s] !== stamp) {
        checked[s] = stamp;
        count[s] = 0;
        slot[s] = this.device.canSend(d, now) ? (this.device.sendSlot[d] as number) : -1;
      }
      // slot -1: the seal gives no_session, counted, and the packet is not sent.
      count[s] = (count[s] as number) + 1;
    }
    let left: number;
    const sessions = this.device.sessions.buffer;
    if (q.opts.vnet) {
      left = native.outEncap(q.handle, n);
      native.outWgSeal(q.handle, sessions, slot, now, this.counters);
    } else {
      const { outSlab, slotSize, outLen, outOff, outPeer } = q;
      const c = this.counters;
      wgSealBatch(sessions, outSlab, slotSize, native.HEADROOM, outLen, outOff, outPeer, slot, n, this.#mtu, now, c);
      left = native.outEncap(q.handle, n);
    }
    for (let s = 0; s < checked.length; s++) {
      if (checked[s] !== stamp || (slot[s] as number) < 0) continue;
      const c = count[s] as number;
      this.device.sent(devOf[s] as number, c, c, now);
    }
    return left;
  }

  // ---- inbound transform ----

  /** Opens datagrams 0..n-1 of the in batch into segOff/segLen/segAddr (verdicts counted); returns the segments.
   *  Offload tier: each UDP_GRO buffer is first cut into its datagrams (inGso bytes each, the last shorter). */
  open(q: Queue, n: number): number {
    const now = this.device.now();
    const off = this.#inOff;
    const peer = this.#inPeer;
    const len = this.#inLen;
    const from = this.#inFrom;
    const slab = q.inSlab;
    const sessions = this.device.sessions.buffer;
    let count = n;
    if (q.inGso) {
      count = 0;
      for (let i = 0; i < n; i++) {
        const total = q.inLen[i] as number;
        const g = (q.inGso[i] as number) > 0 ? (q.inGso[i] as number) : total;
        if (total < 0 || g <= 0) {
          off[count] = i * q.slotSize;
          len[count] = total < 0 ? total : 0;
          from[count++] = i;
          continue;
        }
        for (let o = 0; o < total && count < off.length; o += g) {
          off[count] = i * q.slotSize + o;
          len[count] = Math.min(g, total - o);
          from[count++] = i;
        }
      }
      wgOpenList(sessions, slab, off, len, peer, count, now, this.counters);
    } else {
      for (let i = 0; i < n; i++) {
        len[i] = q.inLen[i] as number;
        from[i] = i;
      }
      wgOpenBatch(sessions, slab, q.slotSize, len, off, peer, n, now, this.counters);
    }
    const routes = this.path.snapshot.routes;
    let segs = 0;
    let touched = 0;
    for (let j = 0; j < count; j++) {
      const d = peer[j] as number;
      const i = from[j] as number;
      if (d < 0) {
        if (d === WG_VERDICT_HANDSHAKE) this.#handshake(q, i, off[j] as number, now);
        continue;
      }
      if (d >= MAX_PEERS) continue;
      if (this.#rxCount[d] === 0) this.#rxTouched[touched++] = d;
      this.#rxCount[d] = (this.#rxCount[d] as number) + 1;
      const inner = len[j] as number;
      if (inner === 0) continue; // a keepalive: counted by C, nothing for TUN
      this.#rxData[d] = (this.#rxData[d] as number) + 1;
      const s = this.#snapOf[d] as number;
      const at = off[j] as number;
      // The key's lease subnet (or another lease of the same PublicIP, as routes.ts allows a host that changed
      // subnet) must hold the inner source: flannel's AllowedIPs.
      const sender = s < 0 ? NO_ROUTE : routes.senderOf(s, readIp(slab, at + 12));
      if (s < 0) {
        this.path.count(C.dropUnknownPeer);
      } else if (sender === NO_ROUTE) {
        this.path.count(C.dropSpoofedSource);
      } else {
        this.path.receivedFrom(sender, inner);
        q.segOff[segs] = at;
        q.segLen[segs] = inner;
        q.segAddr[segs] = q.inAddr[i] as number;
        segs++;
      }
    }
    for (let t = 0; t < touched; t++) {
      const d = this.#rxTouched[t] as number;
      this.device.received(d, this.#rxCount[d] as number, this.#rxData[d] as number, now);
      this.#rxCount[d] = 0;
      this.#rxData[d] = 0;
    }
    return segs;
  }

  #initiate(index: number): void {
    const peer = this.device.peerAt(index);
    if (peer) this.device.initiate(peer);
  }

  #handshake(q: Queue, i: number, at: number, now: number): void {
    const type = q.inSlab[at] as number;
    const len = HANDSHAKE_LEN[type as 1 | 2 | 3];
    const src: Endpoint = { address: formatIPv4(q.inAddr[i] as number), port: q.inPort[i] ?? 0 };
    this.device.handleHandshake(q.inSlab.subarray(at, at + len), src, now);
  }

  // ---- handshake messages, keepalives and timers ----

  #send(msg: Buffer, to: Endpoint): void {
    const addr = parseIPv4(to.address);
    if (this.#sockFd < 0 || addr === null) return;
    try {
      native.udpSendTo(this.#sockFd, msg, addr >>> 0, to.port, this.path.counters);
    } catch (e) {
      // The handshake timer retries; a send error is the underlay's, counted like a train's.
      this.path.count(C.dropSendError);
      this.log.debug({ err: errorMessage(e), to: `${to.address}:${to.port}` }, 'wireguard: send failed');
    }
  }

  /** Runs the device's timers once due. Batches move the deadlines all the time (every packet sent or received
   *  re-arms a timer), so a steady tick reads the next deadline instead of re-arming a JS timer per batch; WireGuard's
   *  timers are seconds long and jittered, TICK_MS late is nothing to them. */
  #tick(): void {
    const next = this.device.nextDeadline();
    const now = this.device.now();
    if (next !== null && next <= now) this.device.tick(now);
  }

  /** Counters for /metrics and /status: C's transport counters and the device's handshake counters. */
  counterValues(): Record<string, number> {
    const out: Record<string, number> = {};
    wgCounterNames.forEach((name) => (out[name] = this.counters[WgCounter[name]] as number));
    for (const [name, v] of Object.entries(this.device.counters) as [DeviceCounterName, number][]) {
      out[`wg_handshake_${name}`] = v;
    }
    return out;
  }

  close(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    this.#sockFd = -1;
    this.device.close();
  }
}
