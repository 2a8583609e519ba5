// `weft leases`: the subnet leases in etcd, as a table (subnet, public IP, backend, TTL left) or JSON.
import { formatSubnet } from '../ip/subnet.js';
import { isReservation, type Lease } from '../lease/lease.js';
import { withRegistry } from './etcd.js';
import { formatTable } from '../util/table.js';

export function leaseRows(leases: readonly Lease[], now = Date.now()): string[][] {
  return [...leases]
    .sort((a, b) => a.subnet.ip - b.subnet.ip)
    .map((l) => [
      formatSubnet(l.subnet),
      l.attrs.PublicIP,
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
        leases.map((l) => ({ subnet: formatSubnet(l.subnet), key: l.key, attrs: l.attrs, expiresAt: l.expiresAt })),
        null,
        2,
      ) + '\n',
    );
    return;
  }
  process.stdout.write(formatTable(['SUBNET', 'PUBLIC IP', 'BACKEND', 'TTL LEFT'], leaseRows(leases)));
}
