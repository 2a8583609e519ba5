// The kernel state a kernel backend programs, read from a namespace host as ip and bridge print it (JSON), and a
// host's lease value from etcd.
import type { Cluster } from '../../testbed/cluster.js';

/** `ip -json ...` or `bridge -json ...` in host n, parsed (an empty answer is []). */
export async function ipJson(
  cluster: Cluster,
  n: number,
  tool: 'ip' | 'bridge',
  args: string[],
): Promise<Array<Record<string, unknown>>> {
  const r = await cluster.tb.exec(cluster.tb.host(n), [tool, '-json', ...args], { timeoutMs: 10_000 });
  if (r.code !== 0) throw new Error(`${tool} ${args.join(' ')} in h${n}: ${r.stderr}`);
  return r.stdout.trim() === '' ? [] : (JSON.parse(r.stdout) as Array<Record<string, unknown>>);
}

/** Host n's route to `dst` (IPv4, or IPv6 with family 6), as `ip -json route show <dst>` prints it. */
export async function routeTo(
  cluster: Cluster,
  n: number,
  dst: string,
  family: 4 | 6 = 4,
): Promise<Record<string, unknown> | undefined> {
  return (await ipJson(cluster, n, 'ip', [`-${family}`, 'route', 'show', dst]))[0];
}

/** Host n's lease value in etcd, as text (byte for byte) and parsed. */
export async function leaseOf(cluster: Cluster, n: number): Promise<{ text: string; value: Record<string, unknown> }> {
  const key = cluster.leaseKeyOf(n);
  if (key === null) throw new Error(`h${n} has no subnet.env yet`);
  const text = (await cluster.etcdctl(['get', key, '--print-value-only'])).trim();
  return { text, value: JSON.parse(text) as Record<string, unknown> };
}
