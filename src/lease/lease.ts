// Lease types and the lease value's JSON, byte-compatible with flanneld.
//
// flannel pkg/lease/lease.go:
//   type LeaseAttrs struct {
//     PublicIP      ip.IP4                                   // always written, as "a.b.c.d"
//     PublicIPv6    *ip.IP6                                  // always written: null when unset
//     BackendType   string          `json:",omitempty"`
//     BackendData   json.RawMessage `json:",omitempty"`     // omitted only when absent (nil), null is kept
//     BackendV6Data json.RawMessage `json:",omitempty"`
//   }
// Go's encoder writes compact JSON and escapes <, >, &, U+2028 and U+2029 inside strings; we do the same.
// A dual-stack lease: {"PublicIP":"192.0.2.11","PublicIPv6":"fd00::11","BackendType":"vxlan",
// "BackendData":{"VNI":1,"VtepMAC":"..."},"BackendV6Data":{"VNI":1,"VtepMAC":"..."}}; an IPv6-only one has
// "PublicIP":"0.0.0.0" (flannel's zero IP4) and no BackendData.
import { type Subnet, subnetEquals } from '../ip/subnet.js';
import { type Subnet6, subnet6Equals } from '../ip/ipv6.js';

export interface LeaseAttrs {
  PublicIP: string;
  PublicIPv6?: string | null;
  BackendType: string;
  BackendData?: unknown;
  BackendV6Data?: unknown;
  // Fields a newer flannel may add: kept when parsed, written after the known ones.
  [extra: string]: unknown;
}

export interface Lease {
  /** The IPv4 subnet; flannel's empty 0.0.0.0/0 in an IPv6-only lease (see hasIPv4 in ip/subnet-key.ts). */
  readonly subnet: Subnet;
  /** The IPv6 subnet of a dual-stack or IPv6-only lease (the key's part after "&"). */
  readonly ipv6Subnet?: Subnet6 | null;
  readonly attrs: LeaseAttrs;
  readonly key: string; // full etcd key
  readonly etcdLeaseId: string | null; // null: a reservation (key without etcd lease)
  readonly expiresAt: number | null; // ms since epoch, from the etcd lease TTL; null for reservations
}

/** A changed lease arrives as 'added' with its new attrs. `reservation` marks keys without an etcd lease. */
export interface LeaseEvent {
  readonly type: 'added' | 'removed';
  readonly lease: Lease;
}

/** Seconds from `now` until `expiresAt` (ms since the epoch), to a tenth: a lease's TTL in /status and /metrics. */
export function secondsUntil(expiresAt: number, now: number): number {
  return Math.round((expiresAt - now) / 100) / 10;
}

export function isReservation(l: Lease): boolean {
  return l.etcdLeaseId === null;
}

/** Both leases name the same subnets (flannel's sameSubnet): the identity of a lease, whatever its key's spelling. */
export function sameSubnets(a: Pick<Lease, 'subnet' | 'ipv6Subnet'>, b: Pick<Lease, 'subnet' | 'ipv6Subnet'>): boolean {
  const a6 = a.ipv6Subnet ?? null;
  const b6 = b.ipv6Subnet ?? null;
  return subnetEquals(a.subnet, b.subnet) && (a6 === null || b6 === null ? a6 === b6 : subnet6Equals(a6, b6));
}

const KNOWN = ['PublicIP', 'PublicIPv6', 'BackendType', 'BackendData', 'BackendV6Data'] as const;

// JSON.stringify leaves these as they are; Go escapes them (HTML safety, JS line terminators).
const GO_ESCAPES: Record<string, string> = {
  '<': '\\u003c',
  '>': '\\u003e',
  '&': '\\u0026',
  '\u2028': '\\u2028',
  '\u2029': '\\u2029',
};

// These characters can only occur inside JSON strings, so replacing them everywhere is safe.
function goEscape(json: string): string {
  return json.replace(/[<>&\u2028\u2029]/g, (c) => GO_ESCAPES[c] ?? c);
}

/** The etcd value flanneld would write for these attrs, byte for byte. */
export function serializeLeaseAttrs(attrs: LeaseAttrs): string {
  const o: Record<string, unknown> = {};
  o['PublicIP'] = attrs.PublicIP;
  o['PublicIPv6'] = attrs.PublicIPv6 ?? null;
  if (attrs.BackendType !== '') o['BackendType'] = attrs.BackendType;
  if (attrs.BackendData !== undefined) o['BackendData'] = attrs.BackendData;
  if (attrs.BackendV6Data !== undefined) o['BackendV6Data'] = attrs.BackendV6Data;
  for (const [k, v] of Object.entries(attrs)) {
    if (!(KNOWN as readonly string[]).includes(k) && v !== undefined) o[k] = v;
  }
  return goEscape(JSON.stringify(o));
}

/** Parses a lease value leniently (extra fields, null PublicIPv6, BackendV6Data); null when it is no lease. */
export function parseLeaseAttrs(value: string): LeaseAttrs | null {
  let v: unknown;
  try {
    v = JSON.parse(value);
  } catch {
    return null;
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return null;
  const o = v as Record<string, unknown>;
  const publicIP = o['PublicIP'];
  if (typeof publicIP !== 'string') return null;
  const v6 = o['PublicIPv6'];
  const bt = o['BackendType'];
  return {
    ...o,
    PublicIP: publicIP,
    PublicIPv6: typeof v6 === 'string' ? v6 : null,
    BackendType: typeof bt === 'string' ? bt : '',
  };
}

/** Deep equality of two attrs through their serialised form (what peers actually see). */
export function sameAttrs(a: LeaseAttrs, b: LeaseAttrs): boolean {
  return serializeLeaseAttrs(a) === serializeLeaseAttrs(b);
}
