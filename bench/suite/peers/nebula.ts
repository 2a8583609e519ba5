// nebula between the bench's two namespace hosts, no lighthouse (each host knows the other from static_host_map):
//
//   <tmp>: nebula-cert ca (ca.crt, ca.key); nebula-cert sign -name hN -ip 10.77.0.N/24 -subnets 10.5.N.0/24
//   h1: nebula -config <tmp>/h1.yml   (TUN w<id>neb1 10.77.0.1/24, mtu 1400, UDP 4242 on eth0;
//       unsafe_routes: 10.5.2.0/24 via 10.77.0.2, which nebula installs itself; firewall: allow all)
//   h2: the same, mirrored.
//
// The pod subnets are nebula "unsafe routes": each host's certificate names its pod subnet (-subnets), so the peer
// accepts it as a route target and the local firewall accepts traffic to it. The config is JSON, which is YAML.
// Nothing outside the temp folder: nebula has no pid file or control socket.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { must, podSubnet, startPeerDaemon, tunnelIp, type PeerBuilt, type PeerContext } from './common.js';

const PORT = 4242;
const MTU = 1400; // nebula's default is 1300; 1400 leaves room for its 60 bytes (IP+UDP 28, header 16, AEAD tag 16)

export const nebulaDevice = (id: number, n: number): string => `w${id}neb${n}`;

export async function buildNebula(ctx: PeerContext): Promise<PeerBuilt> {
  const { tb, hosts, dir } = ctx;
  const [h1] = hosts;
  const ca = { crt: join(dir, 'ca.crt'), key: join(dir, 'ca.key') };
  await must(tb, h1, [
    'nebula-cert',
    'ca',
    '-name',
    `weft-bench-w${tb.id}`,
    '-duration',
    '24h',
    '-out-crt',
    ca.crt,
    '-out-key',
    ca.key,
  ]);

  const daemons: PeerBuilt['daemons'] = [];
  for (const [i, h] of hosts.entries()) {
    const peer = hosts[1 - i]!;
    const crt = join(dir, `${h.name}.crt`);
    const key = join(dir, `${h.name}.key`);
    await must(tb, h1, [
      'nebula-cert',
      'sign',
      '-ca-crt',
      ca.crt,
      '-ca-key',
      ca.key,
      '-name',
      h.name,
      '-ip',
      `${tunnelIp(h.n)}/24`,
      '-subnets',
      podSubnet(h.n),
      '-out-crt',
      crt,
      '-out-key',
      key,
    ]);
    const dev = nebulaDevice(tb.id, h.n);
    const any = [{ port: 'any', proto: 'any', host: 'any' }];
    const config = {
      pki: { ca: ca.crt, cert: crt, key },
      static_host_map: { [tunnelIp(peer.n)]: [`${peer.ip}:${PORT}`] },
      lighthouse: { am_lighthouse: false, interval: 60, hosts: [] },
      listen: { host: h.ip, port: PORT },
      punchy: { punch: false },
      tun: {
        disabled: false,
        dev,
        drop_local_broadcast: false,
        drop_multicast: false,
        tx_queue: 500,
        mtu: MTU,
        routes: [],
        unsafe_routes: [{ route: podSubnet(peer.n), via: tunnelIp(peer.n) }],
      },
      logging: { level: 'warning', format: 'text' },
      firewall: {
        conntrack: { tcp_timeout: '12m', udp_timeout: '3m', default_timeout: '10m' },
        outbound: any,
        inbound: any,
      },
    };
    const file = join(dir, `${h.name}.yml`);
    writeFileSync(file, JSON.stringify(config, null, 2) + '\n', { mode: 0o600 });
    daemons.push(await startPeerDaemon(tb, h, 'nebula', ['nebula', '-config', file], dev));
  }
  return { daemons, mtu: MTU };
}
