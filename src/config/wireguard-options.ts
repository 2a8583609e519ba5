// The options of `Backend: {"Type": "wireguard", ...}`, over flannel's defaults (flannel's
// pkg/backend/wireguard/wireguard.go RegisterNetwork): ListenPort 51820, ListenPortV6 51821, MTU = the underlay's,
// PSK none, PersistentKeepaliveInterval 0 (seconds), Mode "separate". Keys match case-insensitively, as Go's
// encoding/json does. Checked by parseNetworkConfig, so `weft network set` refuses what the daemon would refuse.
import { NetworkConfigError } from '../errors.js';
import { decodeKey } from '../wireguard/keys.js';

export const WIREGUARD_TYPE = 'wireguard';

/**
 * Bytes a WireGuard message adds around an inner packet, as flannel counts them (pkg/backend/wireguard/
 * wireguard_network.go: 20/40 outer IP + 8 UDP + 4 type + 4 receiver index + 8 counter + 16 tag, IPv6's 40 taken so
 * one MTU serves both): the TUN MTU is the configured MTU minus this.
 */
export const WIREGUARD_MTU_OVERHEAD = 80;

/** flannel's Mode: separate devices per family, or one device choosing the peer's family (weft: IPv4 only yet). */
export type WireguardMode = 'separate' | 'auto' | 'ipv4' | 'ipv6';

export interface WireguardOptions {
  readonly listenPort: number;
  readonly listenPortV6: number;
  /** The underlay MTU the overhead is taken from; null: the external interface's. */
  readonly mtu: number | null;
  /** The preshared key's base64 text, or null. Never logged. */
  readonly psk: string | null;
  readonly persistentKeepaliveSeconds: number;
  readonly mode: WireguardMode;
}

const KEYS = ['ListenPort', 'ListenPortV6', 'MTU', 'PSK', 'PersistentKeepaliveInterval', 'Mode'] as const;
const MODES: readonly WireguardMode[] = ['separate', 'auto', 'ipv4', 'ipv6'];
/** The smallest TUN MTU IPv4 must carry whole (RFC 791: 576), plus WireGuard's overhead. */
const MIN_MTU = 576 + WIREGUARD_MTU_OVERHEAD;

function fail(field: string, value: unknown, why: string): never {
  throw new NetworkConfigError(`network config: Backend.${field} ${JSON.stringify(value) ?? String(value)}: ${why}`);
}

function pick(be: Readonly<Record<string, unknown>>, key: string): unknown {
  if (Object.hasOwn(be, key)) return be[key];
  const k = Object.keys(be).find((x) => x.toLowerCase() === key.toLowerCase());
  return k === undefined ? undefined : be[k];
}

function integer(field: string, v: unknown, lo: number, hi: number, what: string): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) fail(field, v, what);
  return v;
}

/** The wireguard backend's options, or a NetworkConfigError naming the option and its value. The PSK's value is
 *  never echoed: the error only says what is wrong with it. */
export function parseWireguardOptions(be: Readonly<Record<string, unknown>>): WireguardOptions {
  const [port, portV6, mtu, psk, keepalive, mode] = KEYS.map((k) => pick(be, k));
  const listenPort = integer('ListenPort', port, 1, 65535, 'not a UDP port (1..65535)') ?? 51820;
  const listenPortV6 = integer('ListenPortV6', portV6, 1, 65535, 'not a UDP port (1..65535)') ?? 51821;
  // flannel takes 0 (Go's zero value) as given; a TUN MTU of 0 - 80 cannot carry anything, so 0 means "unset" here.
  const m = integer('MTU', mtu, 0, 65535, `must be an integer, at least ${MIN_MTU}, at most 65535`);
  if (m !== undefined && m !== 0 && m < MIN_MTU) fail('MTU', m, `must be at least ${MIN_MTU} (576 + 80 overhead)`);
  let pskText: string | null = null;
  if (psk !== undefined && psk !== null && psk !== '') {
    if (typeof psk !== 'string' || decodeKey(psk) === null) {
      throw new NetworkConfigError(
        'network config: Backend.PSK: not a WireGuard key (base64 of 32 bytes, as `wg genpsk` writes)',
      );
    }
    pskText = psk;
  }
  // flannel decodes a time.Duration (a number) and multiplies it by a second; wg(8) takes 0..65535 seconds.
  const persistentKeepaliveSeconds =
    integer('PersistentKeepaliveInterval', keepalive, 0, 65535, 'must be whole seconds, 0..65535') ?? 0;
  let modeValue: WireguardMode = 'separate';
  if (mode !== undefined && mode !== null && mode !== '') {
    if (typeof mode !== 'string' || !MODES.includes(mode as WireguardMode)) {
      fail('Mode', mode, `must be one of ${MODES.join(', ')}`);
    }
    modeValue = mode as WireguardMode;
    if (modeValue === 'ipv6') fail('Mode', mode, 'weft tunnels over IPv4 only: use separate, auto or ipv4');
  }
  if (listenPortV6 === listenPort) fail('ListenPortV6', listenPortV6, 'must differ from ListenPort');
  return {
    listenPort,
    listenPortV6,
    mtu: m === undefined || m === 0 ? null : m,
    psk: pskText,
    persistentKeepaliveSeconds,
    mode: modeValue,
  };
}
