// Backend wireguard against Debian's wireguard-go configured as flannel configures kernel WireGuard: a weft host and
// a "flannel host" whose lease and WireGuard device are made by hand the way flanneld makes them.
//
//   bridge netns: etcd 198.18.<id>.254:2379
//   h1: weft daemon --tier=batch, Backend wireguard (TUN weft0, UDP 51820), cni0, pod 10.5.x.2
//   h2: wireguard-go -f w<id>wg2 (UDP 51820), address 10.5.200.1/32, route 10.5.0.0/16 dev w<id>wg2, mtu 1420;
//       wg set: peer <h1's PublicKey from its lease> allowed-ips <h1's subnet> endpoint <h1's PublicIP>:51820;
//       its own lease 10.5.200.0-24 = {"PublicIP":"198.18.<id>.2","BackendType":"wireguard",
//       "BackendData":{"PublicKey":"<wg pubkey>","Port":51820}} under an etcd lease, as flanneld writes it.
//
// Both sides use the network config's PSK (flannel's option). Shows: the handshake started by wireguard-go (h2 pings
// first) and by weft (after weft's restart it initiates); ping and a 100 MB sha256 transfer both ways; each side
// restarted once, traffic again afterwards.
// Cleanup (also on failure): the cluster (namespaces, etcd, daemons), wireguard-go, its UAPI socket
// /var/run/wireguard/<dev>.sock (and the folder when this test made it), the key folder.
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { ensurePeerInstalled, linkExists, must, tailOutput, waitFor } from '../bench/suite/peers/common.js';
import { wgDevice, wgSetPeer } from '../bench/suite/peers/wireguard-go.js';
import { killChild } from '../testbed/exec.js';
import { PREFIX } from '../testbed/cluster.js';
import type { Pod } from '../testbed/hosts.js';
import { ping } from '../testbed/traffic.js';
import { clusterFor } from './helpers/cluster.js';
import { metricsOf, sha256Transfer } from './helpers/traffic.js';
import { wireguardGoFiles } from './helpers/wireguard-go-files.js';

const PORT = 51820;
const HEALTHZ = 8471;
const H2_ADDR = '10.5.200.1';

t.setTimeout(300_000);

t.test('weft backend wireguard with a wireguard-go flannel host', async (t) => {
  try {
    t.comment(await ensurePeerInstalled('wireguard-go'));
  } catch (e) {
    t.fail(`wireguard-go could not be installed: ${(e as Error).message}`);
    return;
  }
  // flannel's PSK option: the same preshared key on every node (wg set ... preshared-key on the flannel host).
  const psk = randomBytes(32).toString('base64');
  const cluster = await clusterFor(t, 2, {
    Network: '10.5.0.0/16',
    SubnetLen: 24,
    Backend: { Type: 'wireguard', PSK: psk },
  });
  const tb = cluster.tb;
  const [h1, h2] = [tb.host(1), tb.host(2)];
  const dev = wgDevice(tb.id, 2);
  const { dir, sock, removeFiles } = wireguardGoFiles(dev, 'wg-go');
  let wg: ChildProcess | null = null;
  t.teardown(async () => {
    if (wg) await killChild(wg, 3_000);
    removeFiles();
  });

  // h2's key and lease, written before weft starts (so weft's random pick cannot take 10.5.200.0/24).
  const wgPriv = (await must(tb, h2, ['wg', 'genkey'])).trim();
  const wgPub = (await must(tb, h2, ['wg', 'pubkey'], wgPriv + '\n')).trim();
  const keyFile = join(dir, 'h2.key');
  writeFileSync(keyFile, wgPriv + '\n', { mode: 0o600 });
  const grant = await cluster.etcdctl(['lease', 'grant', '600']);
  const leaseId = /lease ([0-9a-f]+) granted/.exec(grant)?.[1];
  t.ok(leaseId, 'an etcd lease for the flannel host');
  const h2Lease = {
    PublicIP: h2.ip,
    PublicIPv6: null,
    BackendType: 'wireguard',
    BackendData: { PublicKey: wgPub, Port: PORT },
  };
  await cluster.etcdctl(['put', `--lease=${leaseId}`, `${PREFIX}/subnets/10.5.200.0-24`, JSON.stringify(h2Lease)]);

  await cluster.startDaemon(1, ['--tier=batch', `--healthz-port=${HEALTHZ}`]);
  const pod1 = await cluster.ensurePod(1);
  const h1Lease = JSON.parse((await cluster.etcdctl(['get', '--print-value-only', cluster.leaseKeyOf(1)!])).trim()) as {
    PublicIP: string;
    BackendData: { PublicKey: string; Port: number };
  };
  const h1Subnet = cluster.subnetOf(1)!;
  // The flannel host as a pod-like target: its overlay address lives on the WireGuard device in h2 itself.
  const pod2: Pod = { ns: h2.ns, ip: H2_ADDR, cidr: `${H2_ADDR}/32`, gateway: H2_ADDR, host: 2, dev: 'eth0' };

  const startWireguardGo = async (): Promise<void> => {
    const child = tb.spawn(h2, ['wireguard-go', '-f', dev], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LOG_LEVEL: 'error' },
    });
    wg = child;
    const out = tailOutput(child);
    await waitFor('wireguard-go', child, out, async () => existsSync(sock) && (await linkExists(tb, h2, dev)));
    // As flannel's wireguard backend: the peer from the lease, AllowedIPs = its subnet, endpoint = PublicIP:Port.
    await wgSetPeer(tb, h2, dev, keyFile, {
      publicKey: h1Lease.BackendData.PublicKey,
      allowedIps: h1Subnet,
      endpoint: `${h1Lease.PublicIP}:${h1Lease.BackendData.Port}`,
    });
    const pskFile = join(dir, 'psk');
    writeFileSync(pskFile, psk + '\n', { mode: 0o600 });
    await must(tb, h2, ['wg', 'set', dev, 'peer', h1Lease.BackendData.PublicKey, 'preshared-key', pskFile]);
    await must(tb, h2, ['ip', 'addr', 'add', `${H2_ADDR}/32`, 'dev', dev]);
    await must(tb, h2, ['ip', 'link', 'set', dev, 'mtu', '1420', 'up']);
    await must(tb, h2, ['ip', 'route', 'add', '10.5.0.0/16', 'dev', dev, 'src', H2_ADDR]);
  };
  const stopWireguardGo = async (): Promise<void> => {
    if (wg) await killChild(wg, 3_000);
    wg = null;
  };
  await startWireguardGo();

  await t.test('handshake started by wireguard-go: the flannel host pings the weft pod', async (t) => {
    const before = await metricsOf(tb, h1, HEALTHZ);
    const r = await ping(pod2, pod1.ip, { count: 3, timeoutSec: 3 });
    t.ok(r.ok, `h2 -> pod h1 (${r.received}/${r.transmitted})`);
    const after = await metricsOf(tb, h1, HEALTHZ);
    const d = (k: string) => (after[k] ?? 0) - (before[k] ?? 0);
    t.ok(
      d('wg_handshake_rx_initiation') >= 1,
      `weft answered wireguard-go's initiation (${d('wg_handshake_rx_initiation')})`,
    );
    const back = await ping(pod1, H2_ADDR, { count: 3, timeoutSec: 3 });
    t.ok(back.ok, `pod h1 -> h2 (${back.received}/${back.transmitted})`);
  });

  await t.test('100 MB both ways (sha256)', async (t) => {
    for (const [from, to, name] of [
      [pod1, pod2, 'weft -> wireguard-go'],
      [pod2, pod1, 'wireguard-go -> weft'],
    ] as const) {
      const r = await sha256Transfer(tb, from, to, 100 << 20, 180_000);
      t.equal(r.received, 100 << 20, `${name}: every byte`);
      t.equal(r.receivedHash, r.sentHash, `${name}: same sha256`);
    }
  });

  await t.test('weft restarts: it starts the handshake, traffic again', async (t) => {
    await cluster.stopDaemon(1);
    await cluster.startDaemon(1, ['--tier=batch', `--healthz-port=${HEALTHZ}`]);
    const r = await ping(pod1, H2_ADDR, { count: 3, timeoutSec: 3 });
    t.ok(r.ok, `pod h1 -> h2 after weft's restart (${r.received}/${r.transmitted})`);
    const m = await metricsOf(tb, h1, HEALTHZ);
    t.ok((m['wg_handshake_initiations_sent'] ?? 0) >= 1, 'weft sent the initiation');
    t.ok((m['wg_handshake_rx_response'] ?? 0) >= 1, "and took wireguard-go's response");
    const back = await ping(pod2, pod1.ip, { count: 3, timeoutSec: 3 });
    t.ok(back.ok, `h2 -> pod h1 (${back.received}/${back.transmitted})`);
  });

  await t.test('wireguard-go restarts: traffic again', async (t) => {
    const before = await metricsOf(tb, h1, HEALTHZ);
    await stopWireguardGo();
    await startWireguardGo();
    const r = await ping(pod2, pod1.ip, { count: 3, timeoutSec: 3 });
    t.ok(r.ok, `h2 -> pod h1 after wireguard-go's restart (${r.received}/${r.transmitted})`);
    const after = await metricsOf(tb, h1, HEALTHZ);
    t.ok(
      (after['wg_handshake_rx_initiation'] ?? 0) > (before['wg_handshake_rx_initiation'] ?? 0),
      "weft answered the restarted wireguard-go's initiation",
    );
    const back = await ping(pod1, H2_ADDR, { count: 3, timeoutSec: 3 });
    t.ok(back.ok, `pod h1 -> h2 (${back.received}/${back.transmitted})`);
    const t20 = await sha256Transfer(tb, pod1, pod2, 20 << 20);
    t.equal(t20.receivedHash, t20.sentHash, '20 MB after both restarts');
  });
});
