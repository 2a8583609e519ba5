// wireguard-go between the bench's two namespace hosts (the kernel here has no wireguard module, so this is the
// userspace implementation as a user without the module would run it; `wg` configures it over its UAPI socket):
//
//   h1: wireguard-go -f w<id>wg1  (TUN w<id>wg1 10.77.0.1/24, mtu 1420, UDP 51820 on eth0)
//       wg set w<id>wg1 private-key <tmp>/h1.key listen-port 51820
//                       peer <h2 pub> allowed-ips 10.77.0.2/32,10.5.2.0/24 endpoint 198.18.<id>.2:51820
//       ip route 10.5.2.0/24 dev w<id>wg1
//   h2: the same, mirrored.
//
// The UAPI socket: wireguard-go and wg both hard-code /var/run/wireguard/<dev>.sock (wireguard-go reads only
// WG_TUN_FD, WG_UAPI_FD and WG_PROCESS_FOREGROUND from the environment; wg has no socket-path option). So that path
// is the one piece of state outside the temp folder: the device name carries the testbed id, we create
// /var/run/wireguard only when it is missing (and remove it again only if we made it and it is empty), and remove
// exactly our two socket files afterwards, also at process exit (wireguard-go removes its socket itself on SIGTERM,
// not on SIGKILL).
import { existsSync, mkdirSync, readdirSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { must, podSubnet, startPeerDaemon, tunnelIp, tunnelUp, type PeerBuilt, type PeerContext } from './common.js';
import type { Host, Testbed } from '../../../testbed/hosts.js';

export const WG_SOCKET_DIR = '/var/run/wireguard';
const PORT = 51820;
const MTU = 1420; // wg-quick's default: 1500 - 80 (IPv6 outer header worst case)

export const wgDevice = (id: number, n: number): string => `w${id}wg${n}`;

/** `wg set`: device `dev` in host h listens on PORT with the key in keyFile and has one peer. */
export function wgSetPeer(
  tb: Testbed,
  h: Host,
  dev: string,
  keyFile: string,
  peer: { publicKey: string; allowedIps: string; endpoint: string },
): Promise<string> {
  const peerArgs = ['peer', peer.publicKey, 'allowed-ips', peer.allowedIps, 'endpoint', peer.endpoint];
  return must(tb, h, ['wg', 'set', dev, 'listen-port', String(PORT), 'private-key', keyFile, ...peerArgs]);
}

export async function buildWireguard(ctx: PeerContext): Promise<PeerBuilt> {
  const { tb, hosts, dir } = ctx;
  const keys = [];
  for (const h of hosts) {
    const priv = (await must(tb, h, ['wg', 'genkey'])).trim();
    const pub = (await must(tb, h, ['wg', 'pubkey'], priv + '\n')).trim();
    const file = join(dir, `${h.name}.key`);
    writeFileSync(file, priv + '\n', { mode: 0o600 });
    keys.push({ file, pub });
  }

  if (!existsSync(WG_SOCKET_DIR)) {
    mkdirSync(WG_SOCKET_DIR, { recursive: true, mode: 0o700 });
    ctx.addCleanup(() => {
      // ours: remove it again, but only when nothing else put a socket there meanwhile
      if (readdirSync(WG_SOCKET_DIR).length === 0) rmdirSync(WG_SOCKET_DIR);
    });
  }

  const daemons: PeerBuilt['daemons'] = [];
  for (const h of hosts) {
    const dev = wgDevice(tb.id, h.n);
    const sock = join(WG_SOCKET_DIR, `${dev}.sock`);
    // Registered before the start, so a crash between start and the end still removes exactly this socket.
    ctx.addCleanup(() => rmSync(sock, { force: true }));
    const env = { ...process.env, LOG_LEVEL: 'error' };
    daemons.push(
      await startPeerDaemon(tb, h, 'wireguard-go', ['wireguard-go', '-f', dev], dev, {
        env,
        ready: () => existsSync(sock),
      }),
    );
  }

  for (const [i, h] of hosts.entries()) {
    const dev = wgDevice(tb.id, h.n);
    const peer = hosts[1 - i]!;
    await wgSetPeer(tb, h, dev, keys[i]!.file, {
      publicKey: keys[1 - i]!.pub,
      allowedIps: `${tunnelIp(peer.n)}/32,${podSubnet(peer.n)}`,
      endpoint: `${peer.ip}:${PORT}`,
    });
    await tunnelUp(h, dev, peer, MTU);
  }
  return { daemons, mtu: MTU };
}
