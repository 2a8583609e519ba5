// `weft leases`: the subnet leases in etcd, as a table (subnet, public IP, backend, TTL left; with IPv6 subnet and
// PublicIPv6 when a lease has them) or JSON.
import { formatSubnet } from '../ip/subnet.js';
import { formatSubnet6 } from '../ip/ipv6.js';
import { hasIPv4 } from '../ip/subnet-key.js';
import { isReservation, type Lease } from '../lease/lease.js';
import { withRegistry } from './etcd.js';
import { formatTable } from '../util/table.js';

/** Table rows; `ipv6` adds the IPV6 SUBNET and PUBLIC IPV6 columns after PUBLIC IP. */
export function leaseRows(leases: readonly Lease[], now = Date.now(), ipv6 = false): string[][] {
  const six = (l: Lease): bigint => l.ipv6Subnet?.ip ?? 0n;
  return [...leases]
    .sort((a, b) => a.subnet.ip - b.subnet.ip || (six(a) < six(b) ? -1 : six(a) > six(b) ? 1 : 0))
    .map((l) => [
      hasIPv4(l.subnet) ? formatSubnet(l.subnet) : '-',
      l.attrs.PublicIP,
      ...(ipv6 ? [l.ipv6Subnet ? formatSubnet6(l.ipv6Subnet) : '-', l.attrs.PublicIPv6 ?? '-'] : []),
      l.attrs.BackendType || '-',
      isReservation(l) ? 'reserved' : l.expiresAt === null ? '-' : formatDuration(l.expiresAt - now),
    ]);
}

export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : m > 0 ? `${m}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

export async function printLeases(flags: Record<string, unknown>, json: boolean): Promise<void> {
  const { leases } = await withRegistry(flags, (registry) => registry.listLeases());
  if (json) {
    process.stdout.write(
      JSON.stringify(
        leases.map((l) => ({
          subnet: formatSubnet(l.subnet),
          ...(l.ipv6Subnet ? { ipv6Subnet: formatSubnet6(l.ipv6Subnet) } : {}),
          key: l.key,
          attrs: l.attrs,
          expiresAt: l.expiresAt,
        })),
        null,
        2,
      ) + '\n',
    );
    return;
  }
  const ipv6 = leases.some((l) => l.ipv6Subnet);
  const head = ['SUBNET', 'PUBLIC IP', ...(ipv6 ? ['IPV6 SUBNET', 'PUBLIC IPV6'] : []), 'BACKEND', 'TTL LEFT'];
  process.stdout.write(formatTable(head, leaseRows(leases, Date.now(), ipv6)));
}
