// What the `wireguard` backend adds to the userspace backend (flannel's pkg/backend/wireguard, in userspace): the
// options, the host's key, the lease's BackendData and the peers' keys and endpoints. The userspace backend keeps
// the TUN device and the peer bookkeeping; the batch tier seals and opens (src/datapath/wireguard.ts).
//
// flannel's contract, kept byte for byte so weft and flanneld hosts (kernel WireGuard) mix in one network:
// - lease: BackendType "wireguard", BackendData {"PublicKey":"<base64>","Port":<ListenPort>} (flannel's
//   wireguardLeaseAttrs; flannel before the dual-stack work wrote only PublicKey: a missing Port means ListenPort);
// - peers: AllowedIPs = the lease's subnet, endpoint = PublicIP:Port;
// - TUN MTU = MTU (default: the underlay's) - 80.
import { WeftError } from '../errors.js';
import { WIREGUARD_MTU_OVERHEAD, parseWireguardOptions, type WireguardOptions } from '../config/wireguard-options.js';
import type { WireguardDatapathOptions } from '../datapath/datapath.js';
import { PresharedKey, PublicKey } from '../wireguard/keys.js';
import type { BackendContext } from './backend.js';
import { keyFilePath, loadOrCreateKey } from './wireguard-key-file.js';

export { WIREGUARD_TYPE } from '../config/wireguard-options.js';

/** A peer's lease, read: its key and the port it listens on. */
export interface WireguardPeerInfo {
  readonly publicKey: PublicKey;
  readonly port: number;
}

export class WireguardSetup {
  readonly options: WireguardOptions;
  readonly mtu: number;
  readonly datapath: WireguardDatapathOptions;
  readonly keyFile: string;
  readonly keyCreated: boolean;

  constructor(ctx: BackendContext) {
    const { config } = ctx;
    if (config.tier === 'dgram') {
      // The dgram tier has no C seal: one JS call per packet is what the batched tiers exist to avoid.
      throw new WeftError('WEFT_ERR_BACKEND', 'backend wireguard runs on --tier=batch or --tier=offload, not dgram');
    }
    if (config.queues > 1) {
      // Worker queues would need the session table shared (sharedSessions) and handshakes routed to one device.
      throw new WeftError('WEFT_ERR_BACKEND', `backend wireguard runs one queue: --queues=${config.queues} refused`);
    }
    this.options = parseWireguardOptions(ctx.network.backend);
    this.mtu = (this.options.mtu ?? ctx.external.mtu) - WIREGUARD_MTU_OVERHEAD;
    this.keyFile = keyFilePath();
    const { key, created } = loadOrCreateKey(this.keyFile);
    this.keyCreated = created;
    const psk = this.options.psk === null ? null : PresharedKey.fromBase64(this.options.psk);
    this.datapath = {
      privateKey: key,
      presharedKey: psk,
      persistentKeepaliveSeconds: this.options.persistentKeepaliveSeconds,
    };
  }

  get publicKey(): PublicKey {
    return this.datapath.privateKey.publicKey;
  }

  /** Our lease's BackendData, as flanneld's json.Marshal writes it. */
  leaseData(): { PublicKey: string; Port: number } {
    return { PublicKey: this.publicKey.toString(), Port: this.options.listenPort };
  }

  /** A peer's BackendData, or why the lease cannot be used. */
  parsePeer(data: unknown): WireguardPeerInfo | string {
    return parseWireguardLeaseData(data, this.publicKey, this.options.listenPort);
  }
}

/** A peer's BackendData (input from the control plane: never throws), or why the lease cannot be used. A missing or
 *  invalid Port means `defaultPort` (flannel before the dual-stack work wrote PublicKey only). */
export function parseWireguardLeaseData(
  data: unknown,
  own: PublicKey,
  defaultPort: number,
): WireguardPeerInfo | string {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return 'BackendData has no PublicKey';
  const d = data as Record<string, unknown>;
  const text = d['PublicKey'];
  const publicKey = typeof text === 'string' ? PublicKey.fromBase64(text) : null;
  if (!publicKey) return 'BackendData.PublicKey is not a WireGuard public key';
  if (publicKey.equals(own)) return 'BackendData.PublicKey is our own key (a copied key file?)';
  const p = d['Port'];
  const port = typeof p === 'number' && Number.isInteger(p) && p >= 1 && p <= 65535 ? p : defaultPort;
  return { publicKey, port };
}
