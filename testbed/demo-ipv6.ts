// `weft demo --ipv6`: the dual-stack demo. A local etcd and three namespace hosts with a dual-stack underlay, a
// network with EnableIPv6 on the kernel vxlan backend (flannel.1 and flannel-v6.1, as flanneld programs them), a pod
// per host with an IPv4 and an IPv6 address from weft-cni. Prints the dual-stack lease table and the ping and ping6
// matrices; then the same hosts on the default userspace tier (batch over vxlan, IPv6 between PublicIPv6 addresses)
// and its ping6 matrix; then removes everything it made.
import { Cluster } from './cluster.js';
import { HOSTS, printPingMatrix, say } from './demo.js';
import { ping } from './traffic.js';

export async function runDemoIPv6(): Promise<void> {
  const cluster = await Cluster.create({
    hosts: HOSTS.length,
    network: {
      Network: '10.5.0.0/16',
      SubnetLen: 24,
      EnableIPv6: true,
      IPv6Network: 'fd00:5::/48',
      Backend: { Type: 'vxlan' },
    },
  });
  say('weft demo --ipv6: 3 namespace hosts (dual-stack underlay), etcd, Backend.Type=vxlan, --datapath kernel');
  try {
    for (const n of HOSTS) await cluster.startDaemon(n, ['--datapath=kernel']);
    for (const n of HOSTS) await cluster.ensurePod(n);
    say('\nleases (weft leases):');
    process.stdout.write(await cluster.weft(['leases', `--etcd-endpoints=${cluster.endpoint}`]));
    say('\nkernel vxlan: pod-to-pod ping (3 pings each)');
    await printPingMatrix(cluster, (p) => p.ip);
    say('\nkernel vxlan: pod-to-pod ping6 over flannel-v6.1 (3 pings each)');
    await printPingMatrix(cluster, (p) => p.ip6);
    for (const n of HOSTS) await cluster.stopDaemon(n);
    // flanneld's devices outlive the daemon (and hold the VXLAN port): gone before the userspace tier binds it.
    for (const n of HOSTS) {
      for (const dev of ['flannel.1', 'flannel-v6.1'])
        await cluster.tb.exec(cluster.tb.host(n), ['ip', 'link', 'del', dev]);
    }
    for (const n of HOSTS) await cluster.startDaemon(n, ['--tier=batch']);
    await warmUp6(cluster);
    say('\nuserspace batch tier, vxlan: pod-to-pod ping6 over weft0, between PublicIPv6 addresses (3 pings each)');
    await printPingMatrix(cluster, (p) => p.ip6);
    for (const n of HOSTS) await cluster.stopDaemon(n);
  } finally {
    await cluster.destroy();
    say('cleaned up: namespaces, etcd and daemons removed');
  }
}

/** Until every pod answers one ping6 from every other (bounded: 10 tries a pair): the daemons' peers are in place. */
async function warmUp6(cluster: Cluster): Promise<void> {
  for (const a of HOSTS) {
    for (const b of HOSTS) {
      const [from, to] = [cluster.pods.get(a), cluster.pods.get(b)];
      if (a === b || !from || to?.ip6 === undefined) continue;
      for (let i = 0; i < 10; i++) {
        if ((await ping(from, to.ip6, { count: 1, timeoutSec: 1, intervalSec: 0.2 })).ok) break;
      }
    }
  }
}
