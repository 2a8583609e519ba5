// WireGuard (https://www.wireguard.com/papers/wireguard.pdf) for weft's `wireguard` backend: the handshake, cookies
// and timers in TypeScript, the transport data in C (native/wg.c) over a session table both share. The datapath
// talks to one WireguardDevice and calls the wg* batch functions of ./native.js; see device.ts for the flow.
export { WireguardDevice, HANDSHAKE_VERDICTS } from './device.js';
export type { DeviceOptions, HandshakeVerdict, DeviceCounterName } from './device.js';
export { Peer } from './peer.js';
export type { Keypair, PeerConfig } from './peer.js';
export { PrivateKey, PublicKey, PresharedKey, decodeKey } from './keys.js';
export { type Endpoint, LoadDetector, UNDER_LOAD_HANDSHAKES_PER_SECOND } from './cookie.js';
export { TIMING, type Timing } from './timers.js';
export { SessionTable } from './sessions.js';
export * from './native.js';
