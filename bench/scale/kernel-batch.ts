// What the kernel backends pay to program n peers the way flannel's VXLAN backend does (pkg/backend/vxlan): per peer
// a permanent neighbour `<subnet>.0 -> VtepMAC`, an FDB entry `VtepMAC -> PublicIP` and a route `<subnet> via
// <subnet>.0 onlink` on a flannel.1 device, in one `ip -batch` (neighbours + routes) and one `bridge -batch` (FDB; ip
// cannot do it). Run in a namespace host of the
// testbed on a fresh device per size; the device (and with it every entry) is deleted afterwards.
import { execFile } from 'node:child_process';
import { IprouteError, addrReplace, ip, ipBatch, linkAddVxlan, linkDel, linkSetUp } from '../../src/net/iproute.js';
import { formatIPv4 } from '../../src/ip/subnet.js';
import { simSubnet, silentPublicIP } from './leases.js';

export interface KernelBatchResult {
  routes: number;
  /** ip -batch of n neighbours + n routes, ms. */
  ipBatchMs: number;
  /** bridge -batch of n FDB entries, ms. */
  fdbBatchMs: number;
  totalMs: number;
  /** Entries the kernel holds afterwards (routes via the device, permanent neighbours). */
  routesInstalled: number;
  neighboursInstalled: number;
  /** `ip route get` of an address in the last peer's subnet names the device. */
  lastRouteLive: boolean;
}

function bridgeBatch(netns: string, lines: string[][], timeoutMs: number): Promise<void> {
  const argv = ['-n', netns, '-batch', '-'];
  return new Promise((resolve, reject) => {
    const child = execFile(
      'bridge',
      argv,
      { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 16 * 1024 * 1024 },
      (err, _out, stderr) => {
        if (err === null) resolve();
        else
          reject(
            new IprouteError(
              ['bridge', ...argv],
              String(stderr),
              typeof err.code === 'number' ? err.code : null,
              false,
              err,
            ),
          );
      },
    );
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(lines.map((l) => l.join(' ')).join('\n') + '\n');
  });
}

/** A VtepMAC per simulated peer: locally administered, unicast, unique for i < 2^24. */
function vtepMac(i: number): string {
  const b = [0x0a, 0x57, 0x00, (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff];
  return b.map((x) => x.toString(16).padStart(2, '0')).join(':');
}

/**
 * Programs n peers on a new flannel.1 in `netns` (its underlay device `dev` with address `localIp`), times the two
 * batches, counts what the kernel holds, and deletes the device.
 */
export async function benchKernelBatch(
  netns: string,
  dev: string,
  localIp: string,
  testbedId: number,
  n: number,
): Promise<KernelBatchResult> {
  const name = 'flannel.1';
  await linkDel(name, { netns }).catch(() => false);
  await linkAddVxlan({ name, vni: 1, port: 8472, local: localIp, dev, learning: false, mtu: 1450 }, { netns });
  try {
    await addrReplace(name, '10.0.0.0/32', { netns });
    await linkSetUp(name, undefined, { netns });
    const neighAndRoutes: string[][] = [];
    const fdb: string[][] = [];
    for (let i = 0; i < n; i++) {
      const sn = simSubnet(i);
      const gw = formatIPv4(sn.ip);
      const mac = vtepMac(i);
      neighAndRoutes.push(['neigh', 'replace', gw, 'lladdr', mac, 'dev', name, 'nud', 'permanent']);
      neighAndRoutes.push(['route', 'replace', `${gw}/24`, 'via', gw, 'dev', name, 'onlink']);
      fdb.push(['fdb', 'append', mac, 'dev', name, 'dst', silentPublicIP(testbedId, i)]);
    }
    const t0 = performance.now();
    await ipBatch(neighAndRoutes, { netns, timeoutMs: 120_000 });
    const t1 = performance.now();
    await bridgeBatch(netns, fdb, 120_000);
    const t2 = performance.now();
    const routes = (await ip(['route', 'show', 'dev', name], { netns }))
      .split('\n')
      .filter((l) => l.includes('via')).length;
    const neigh = (await ip(['neigh', 'show', 'dev', name, 'nud', 'permanent'], { netns }))
      .split('\n')
      .filter((l) => l.trim() !== '').length;
    const last = simSubnet(Math.max(0, n - 1));
    const get = await ip(['route', 'get', formatIPv4(last.ip + 5)], { netns }).catch(() => '');
    return {
      routes: n,
      ipBatchMs: t1 - t0,
      fdbBatchMs: t2 - t1,
      totalMs: t2 - t0,
      routesInstalled: routes,
      neighboursInstalled: neigh,
      lastRouteLive: get.includes(`dev ${name}`),
    };
  } finally {
    await linkDel(name, { netns }).catch(() => false);
  }
}
