// What the offload tier may use, and what the kernel agreed to: TUN offloads (TUNSETOFFLOAD: checksum, TSO, USO)
// and the UDP socket's UDP_SEGMENT / UDP_GRO. Probed at open and switched off cleanly when refused, as wireguard-go
// does (USO arrived in Linux 6.2, UDP_GRO in 5.0). WEFT_DISABLE_OFFLOAD turns parts off on purpose, e.g.
// WEFT_DISABLE_OFFLOAD=tso,udp_segment, to test and compare the fallback paths.
import { ConfigError } from '../errors.js';
import * as native from '../native.js';

export const OFFLOAD_PARTS = ['csum', 'tso', 'uso', 'udp_segment', 'udp_gro', 'gro', 'partial_csum'] as const;
export type OffloadPart = (typeof OFFLOAD_PARTS)[number];

/** Parts turned off by WEFT_DISABLE_OFFLOAD (comma-separated names of OFFLOAD_PARTS, or "all"). */
export function disabledOffloads(env: NodeJS.ProcessEnv = process.env): ReadonlySet<OffloadPart> {
  const raw = (env['WEFT_DISABLE_OFFLOAD'] ?? '').trim();
  if (raw === '') return new Set();
  const out = new Set<OffloadPart>();
  for (const word of raw
    .split(',')
    .map((w) => w.trim().toLowerCase())
    .filter((w) => w !== '')) {
    if (word === 'all') return new Set(OFFLOAD_PARTS);
    if (!(OFFLOAD_PARTS as readonly string[]).includes(word)) {
      throw new ConfigError(`WEFT_DISABLE_OFFLOAD: "${word}" is not one of ${OFFLOAD_PARTS.join(', ')}, all`);
    }
    out.add(word as OffloadPart);
  }
  return out;
}

export interface TunOffloads {
  /** Flags the kernel accepted (TUN_F), 0 when none. */
  readonly flags: number;
  readonly csum: boolean;
  /** TSO for TCP over IPv4. */
  readonly tso: boolean;
  /** TSO for TCP over IPv6: only asked for when the overlay carries IPv6. */
  readonly tso6: boolean;
  readonly uso: boolean;
}

/**
 * Asks for the most the caller allows and steps down while the kernel says EINVAL: USO needs Linux 6.2, TSO needs
 * checksum offload. A refused set leaves the previous one in place, so we always end with what was accepted.
 * TSO6 only with `ipv6` (the overlay routes IPv6 inside): without it the kernel never hands the tier an IPv6 TCP
 * super-packet. USO has no such switch: Linux takes USO4 only together with USO6 (drivers/net/tun.c set_offload),
 * and gso.c cuts UDP super-packets of either version.
 */
export function probeTunOffloads(fd: number, off: ReadonlySet<OffloadPart>, ipv6 = false): TunOffloads {
  const { CSUM, TSO4, TSO6, TSO_ECN: ECN, USO4, USO6 } = native.TUN_F;
  const tso = TSO4 | (ipv6 ? TSO6 : 0) | ECN;
  const uso = USO4 | USO6;
  const wanted: number[] = [];
  if (!off.has('csum')) {
    if (!off.has('tso') && !off.has('uso')) wanted.push(CSUM | tso | uso);
    if (!off.has('tso')) wanted.push(CSUM | tso);
    if (!off.has('uso')) wanted.push(CSUM | uso);
    wanted.push(CSUM);
  }
  for (const flags of wanted) {
    if (native.tunSetOffload(fd, flags)) {
      return { flags, csum: true, tso: (flags & TSO4) !== 0, tso6: (flags & TSO6) !== 0, uso: (flags & USO4) !== 0 };
    }
  }
  native.tunSetOffload(fd, 0);
  return { flags: 0, csum: false, tso: false, tso6: false, uso: false };
}
