// tinc 1.0 between the bench's two namespace hosts, router mode, its default ciphers:
//
//   <tmp>/hN/tinc.conf   Name = hN, Interface = w<id>tinc<N>, DeviceType = tun, Mode = router, ConnectTo = <peer>
//   <tmp>/hN/hosts/hN    Address 198.18.<id>.N, Port 655, Subnet 10.77.0.N/32 and 10.5.N.0/24, RSA public key
//   keys: tincd -c <tmp>/hN -K 2048 (writes rsa_key.priv, appends the public key to hosts/hN), then each host's
//   hosts/ file is copied to the other.
//   h1: tincd -c <tmp>/h1 -D --pidfile=<tmp>/h1/tinc.pid --logfile=<tmp>/h1/tinc.log
//       then ip addr 10.77.0.1/24, mtu 1400, up, route 10.5.2.0/24 dev w<id>tinc1 (done here, not by a tinc-up script)
//
// Everything lives in the temp folder (-c, --pidfile, --logfile), so /etc/tinc and /run stay untouched.
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { must, podSubnet, startPeerDaemon, tunnelIp, tunnelUp, type PeerBuilt, type PeerContext } from './common.js';
import { WeftError } from '../../../src/errors.js';

const PORT = 655;
const MTU = 1400;

export const tincDevice = (id: number, n: number): string => `w${id}tinc${n}`;

export async function buildTinc(ctx: PeerContext): Promise<PeerBuilt> {
  const { tb, hosts, dir } = ctx;
  const confs = hosts.map((h) => join(dir, h.name));
  for (const [i, h] of hosts.entries()) {
    const conf = confs[i]!;
    const peer = hosts[1 - i]!;
    mkdirSync(join(conf, 'hosts'), { recursive: true, mode: 0o700 });
    writeFileSync(
      join(conf, 'tinc.conf'),
      [
        `Name = ${h.name}`,
        `Interface = ${tincDevice(tb.id, h.n)}`,
        'DeviceType = tun',
        'Mode = router',
        'AddressFamily = ipv4',
        `BindToAddress = ${h.ip}`,
        `ConnectTo = ${peer.name}`,
        '',
      ].join('\n'),
    );
    writeFileSync(
      join(conf, 'hosts', h.name),
      [`Address = ${h.ip}`, `Port = ${PORT}`, `Subnet = ${tunnelIp(h.n)}/32`, `Subnet = ${podSubnet(h.n)}`, ''].join(
        '\n',
      ),
    );
    // stdin is not a terminal: tincd takes its default file names without asking
    await must(tb, h, ['tincd', '-c', conf, '-K', '2048'], '');
    if (!readFileSync(join(conf, 'hosts', h.name), 'utf8').includes('PUBLIC KEY')) {
      throw new WeftError('WEFT_ERR_BACKEND', `tincd -K did not write the public key of ${h.name}`);
    }
  }
  for (const [i, h] of hosts.entries())
    copyFileSync(join(confs[i]!, 'hosts', h.name), join(confs[1 - i]!, 'hosts', h.name));

  const daemons: PeerBuilt['daemons'] = [];
  for (const [i, h] of hosts.entries()) {
    const conf = confs[i]!;
    const dev = tincDevice(tb.id, h.n);
    const log = (): string => {
      try {
        return readFileSync(join(conf, 'tinc.log'), 'utf8').trim().split('\n').slice(-3).join(' ');
      } catch {
        return ''; // no log yet
      }
    };
    const argv = [
      'tincd',
      '-c',
      conf,
      '-D',
      `--pidfile=${join(conf, 'tinc.pid')}`,
      `--logfile=${join(conf, 'tinc.log')}`,
    ];
    daemons.push(await startPeerDaemon(tb, h, 'tincd', argv, dev, { log }));
    const peer = hosts[1 - i]!;
    await tunnelUp(h, dev, peer, MTU);
  }
  return { daemons, mtu: MTU };
}
