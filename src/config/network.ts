// flannel's network config (`<prefix>/config`): parse, apply flannel's defaults, check coherence.
// Mirrors flannel pkg/subnet/config.go (ParseConfig + CheckNetworkConfig) so one JSON serves both daemons; the
// IPv6 half (EnableIPv6, IPv6Network, ...) is network-v6.ts. An IPv6-only network (EnableIPv4 false) keeps flannel's
// empty IPv4 fields: Network 0.0.0.0/0, no subnets.
import { z } from 'zod';
import { NetworkConfigError } from '../errors.js';
import {
  type Subnet,
  countSubnets,
  formatIPv4,
  formatSubnet,
  isAligned,
  lastAddress,
  parseCIDR,
  parseIPv4,
  subnetSize,
  containsIP,
} from '../ip/subnet.js';
import { type Ipv6NetworkConfig, ipv6NetworkText, parseIpv6Network } from './network-v6.js';

/** The backend blob: `Type` resolved, every other key kept for the backend to parse over its own defaults. */
export interface BackendConfig {
  readonly Type: string;
  readonly [key: string]: unknown;
}

export interface NetworkConfig {
  readonly network: Subnet; // 0.0.0.0/0 when enableIPv4 is false
  readonly subnetLen: number;
  readonly subnetMin: number; // network address of the first allocatable subnet
  readonly subnetMax: number; // network address of the last allocatable subnet
  readonly subnetCount: number; // subnets in [subnetMin, subnetMax]; 0 when enableIPv4 is false
  readonly enableIPv4: boolean;
  readonly enableIPv6: boolean;
  /** IPv6Network as written canonically ("fc00::/48"), also when EnableIPv6 is off; null when absent. */
  readonly ipv6Network: string | null;
  /** The IPv6 half when enableIPv6, defaults applied. */
  readonly ipv6: Ipv6NetworkConfig | null;
  readonly backend: BackendConfig;
}

/** An IPv4 half that leases nothing: flannel's empty Network when EnableIPv4 is false. */
const NO_IPV4 = { network: { ip: 0, prefixLen: 0 }, subnetLen: 0, subnetMin: 0, subnetMax: 0, subnetCount: 0 };

// Known keys; Go's encoding/json matches them case-insensitively, so we do too.
const FIELDS = [
  'Network',
  'SubnetLen',
  'SubnetMin',
  'SubnetMax',
  'EnableIPv4',
  'EnableIPv6',
  'IPv6Network',
  'IPv6SubnetLen',
  'IPv6SubnetMin',
  'IPv6SubnetMax',
  'Backend',
] as const;
type Field = (typeof FIELDS)[number];

const schema = z.object({
  Network: z.string().optional(),
  // Go decodes into uint: negatives and fractions are decode errors; 0 means "unset".
  SubnetLen: z.number().int().min(0).optional(),
  SubnetMin: z.string().optional(),
  SubnetMax: z.string().optional(),
  EnableIPv4: z.boolean().optional(),
  EnableIPv6: z.boolean().optional(),
  IPv6Network: z.string().nullable().optional(),
  IPv6SubnetLen: z.number().int().min(0).optional(),
  IPv6SubnetMin: z.string().nullable().optional(),
  IPv6SubnetMax: z.string().nullable().optional(),
  Backend: z.record(z.string(), z.unknown()).nullable().optional(),
});

/** The text with the value of any "PSK" key (any case, quoted or cut short) replaced. */
function redactPsk(text: string): string {
  return text.replace(/("psk"\s*:\s*)"[^"]*"?/gi, '$1"[redacted]"');
}

function show(v: unknown): string {
  return JSON.stringify(v) ?? String(v);
}

function fail(field: string, value: unknown, why: string): never {
  throw new NetworkConfigError(`network config: ${field} ${show(value)}: ${why}`);
}

/** Picks known keys: exact spelling first, else a case-insensitive match (as Go does); other keys ignored. */
function pickKnown(obj: Record<string, unknown>): Partial<Record<Field, unknown>> {
  const out: Partial<Record<Field, unknown>> = {};
  for (const f of FIELDS) {
    if (Object.hasOwn(obj, f)) {
      out[f] = obj[f];
      continue;
    }
    const k = Object.keys(obj).find((key) => key.toLowerCase() === f.toLowerCase());
    if (k !== undefined) out[f] = obj[k];
  }
  return out;
}

function parseAddr(field: string, s: string | undefined): number | null {
  if (s === undefined || s === '') return null;
  const ip = parseIPv4(s);
  if (ip === null) fail(field, s, 'not an IPv4 address');
  // Go's zero IP4 means "unset": "0.0.0.0" falls back to the default as in flannel.
  return ip === 0 ? null : ip;
}

/** Parses and checks `<prefix>/config`; throws NetworkConfigError naming the field and its value. */
export function parseNetworkConfig(json: string): NetworkConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (e) {
    // The excerpt goes to logs: a wireguard PSK in it is a secret (JSON.parse's own message may quote the text too).
    const excerpt = redactPsk(`(${(e as Error).message}): ${json.slice(0, 200)}`);
    throw new NetworkConfigError(`network config: not valid JSON ${excerpt}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    fail('(document)', raw, 'must be a JSON object');
  }
  const picked = pickKnown(raw as Record<string, unknown>);
  const parsed = schema.safeParse(picked);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = String(issue?.path[0] ?? '(document)');
    fail(field, picked[field as Field], issue?.message ?? 'invalid');
  }
  const c = parsed.data;

  const enableIPv4 = c.EnableIPv4 ?? true;
  const enableIPv6 = c.EnableIPv6 ?? false;
  // flannel's ipmatch.GetIPFamily: "none defined stack".
  if (!enableIPv4 && !enableIPv6) fail('EnableIPv4', false, 'and EnableIPv6 is not true: no address family to lease');
  const ipv6Network = ipv6NetworkText(c);
  const v4 = enableIPv4 ? parseIPv4Half(c) : NO_IPV4;
  const ipv6 = enableIPv6 ? parseIpv6Network(c) : null;

  // Backend: opaque; Type defaults to "udp" (flannel only defaults when Backend is absent; we also fill an empty Type).
  const be = c.Backend ?? {};
  const type = be['Type'];
  if (type !== undefined && type !== null && typeof type !== 'string') fail('Backend.Type', type, 'must be a string');
  const backend: BackendConfig = { ...be, Type: typeof type === 'string' && type !== '' ? type : 'udp' };

  return { ...v4, enableIPv4, enableIPv6, ipv6Network, ipv6, backend };
}

/** Network, SubnetLen, SubnetMin, SubnetMax with flannel's defaults (under EnableIPv4). */
function parseIPv4Half(
  c: Pick<z.infer<typeof schema>, 'Network' | 'SubnetLen' | 'SubnetMin' | 'SubnetMax'>,
): typeof NO_IPV4 {
  // Network
  if (c.Network === undefined || c.Network === '')
    fail('Network', c.Network ?? null, 'required (a CIDR such as "10.5.0.0/16")');
  const cidr = parseCIDR(c.Network);
  if (cidr === null) fail('Network', c.Network, 'not an IPv4 CIDR');
  if (!isAligned(cidr.ip, cidr.prefixLen)) fail('Network', c.Network, 'has host bits set');
  const network: Subnet = cidr;

  // SubnetLen (flannel: explicit must be <= 30 and leave room for four subnets; default /24 or prefix+2)
  let subnetLen: number;
  if (c.SubnetLen !== undefined && c.SubnetLen > 0) {
    subnetLen = c.SubnetLen;
    if (subnetLen > 30) fail('SubnetLen', subnetLen, 'must be at most 30');
    if (subnetLen < network.prefixLen + 2) {
      fail(
        'SubnetLen',
        subnetLen,
        `must be at least ${network.prefixLen + 2} so that ${formatSubnet(network)} holds four subnets`,
      );
    }
  } else {
    if (network.prefixLen > 28) fail('Network', c.Network, 'too small: the smallest useful network is a /28');
    subnetLen = network.prefixLen <= 22 ? 24 : network.prefixLen + 2;
  }
  const size = subnetSize(subnetLen);

  // SubnetMin / SubnetMax (default: skip the first subnet, whose .0 would clash with the network address)
  const minGiven = parseAddr('SubnetMin', c.SubnetMin);
  const maxGiven = parseAddr('SubnetMax', c.SubnetMax);
  if (minGiven !== null && !containsIP(network, minGiven))
    fail('SubnetMin', c.SubnetMin, `not within Network ${formatSubnet(network)}`);
  if (maxGiven !== null && !containsIP(network, maxGiven))
    fail('SubnetMax', c.SubnetMax, `not within Network ${formatSubnet(network)}`);
  const subnetMin = minGiven ?? network.ip + size;
  const subnetMax = maxGiven ?? lastAddress(network) + 1 - size;
  if (!isAligned(subnetMin, subnetLen)) fail('SubnetMin', formatIPv4(subnetMin), `not on a /${subnetLen} boundary`);
  if (!isAligned(subnetMax, subnetLen)) fail('SubnetMax', formatIPv4(subnetMax), `not on a /${subnetLen} boundary`);
  if (subnetMin > subnetMax) {
    fail('SubnetMin', formatIPv4(subnetMin), `is above SubnetMax ${formatIPv4(subnetMax)}`);
  }
  const subnetCount = countSubnets(subnetMin, subnetMax, subnetLen);
  if (subnetCount < 1) fail('SubnetLen', subnetLen, 'leaves no subnet in [SubnetMin, SubnetMax]');
  return { network, subnetLen, subnetMin, subnetMax, subnetCount };
}
