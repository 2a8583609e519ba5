// flannel's subnet.env, read by CNI plugins and by the next start of the daemon (to keep its subnet):
//   FLANNEL_NETWORK=10.5.0.0/16
//   FLANNEL_SUBNET=10.5.3.1/24      (first host address / SubnetLen)
//   FLANNEL_IPV6_NETWORK=fc00::/48  (with EnableIPv6)
//   FLANNEL_IPV6_SUBNET=fc00:0:0:3::1/64
//   FLANNEL_MTU=1472
//   FLANNEL_IPMASQ=false
// in flannel's order (pkg/subnet/subnet.go, WriteSubnetFile); an IPv6-only network writes no IPv4 lines.
import { readFileSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { type Subnet, firstHost, formatIPv4, formatSubnet, makeSubnet, parseCIDR } from '../ip/subnet.js';
import { type Subnet6, firstHost6, formatIPv6, formatSubnet6, makeSubnet6, parseCIDR6 } from '../ip/ipv6.js';

export interface SubnetEnv {
  /** The IPv4 network and the lease's subnet (network address, not the first host); null: IPv4 is off. */
  network: Subnet | null;
  subnet: Subnet | null;
  /** The IPv6 pair, with EnableIPv6. */
  ipv6?: { network: Subnet6; subnet: Subnet6 } | null;
  mtu: number;
  ipMasq: boolean;
}

export function formatSubnetEnv(env: SubnetEnv): string {
  let out = '';
  if (env.network !== null && env.subnet !== null) {
    out +=
      `FLANNEL_NETWORK=${formatSubnet(env.network)}\n` +
      `FLANNEL_SUBNET=${formatIPv4(firstHost(env.subnet))}/${env.subnet.prefixLen}\n`;
  }
  const v6 = env.ipv6 ?? null;
  if (v6 !== null) {
    out +=
      `FLANNEL_IPV6_NETWORK=${formatSubnet6(v6.network)}\n` +
      `FLANNEL_IPV6_SUBNET=${formatIPv6(firstHost6(v6.subnet))}/${v6.subnet.prefixLen}\n`;
  }
  return out + `FLANNEL_MTU=${env.mtu}\n` + `FLANNEL_IPMASQ=${env.ipMasq}\n`;
}

/** Writes atomically: a temp file in the same directory, then rename (readers never see half a file). */
export async function writeSubnetEnv(path: string, env: SubnetEnv): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true });
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${Date.now()}.tmp`);
  try {
    await writeFile(tmp, formatSubnetEnv(env), { mode: 0o644 });
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

/**
 * What a subnet.env says; it needs FLANNEL_SUBNET or FLANNEL_IPV6_SUBNET (an IPv6-only network has only the latter).
 * Whatever is absent or malformed is null.
 */
export interface ParsedSubnetEnv {
  subnet: Subnet | null; // FLANNEL_SUBNET with host bits cleared: the lease's IPv4 subnet
  network: Subnet | null;
  ipv6Subnet: Subnet6 | null; // FLANNEL_IPV6_SUBNET with host bits cleared
  ipv6Network: Subnet6 | null;
  mtu: number | null;
  ipMasq: boolean | null;
}

function cidr4(s: string | undefined): Subnet | null {
  const c = parseCIDR(s ?? '');
  return c === null || c.prefixLen === 0 ? null : makeSubnet(c.ip, c.prefixLen);
}

function cidr6(s: string | undefined): Subnet6 | null {
  const c = parseCIDR6(s ?? '');
  return c === null || c.prefixLen === 0 ? null : makeSubnet6(c.ip, c.prefixLen);
}

/**
 * Reads subnet.env (synchronously: a tiny file read once at startup). Null when the file is missing, unreadable
 * or has neither a valid FLANNEL_SUBNET nor a valid FLANNEL_IPV6_SUBNET; never throws.
 */
export function readSubnetEnv(path: string): ParsedSubnetEnv | null {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return null;
  }
  const vars = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^\s*(FLANNEL_[A-Z0-9_]+)\s*=\s*"?([^"\s]*)"?\s*$/.exec(line);
    if (m !== null) vars.set(m[1] ?? '', m[2] ?? '');
  }
  const subnet = cidr4(vars.get('FLANNEL_SUBNET'));
  const ipv6Subnet = cidr6(vars.get('FLANNEL_IPV6_SUBNET'));
  if (subnet === null && ipv6Subnet === null) return null;
  const mtu = Number(vars.get('FLANNEL_MTU'));
  const masq = vars.get('FLANNEL_IPMASQ');
  return {
    subnet,
    network: cidr4(vars.get('FLANNEL_NETWORK')),
    ipv6Subnet,
    ipv6Network: cidr6(vars.get('FLANNEL_IPV6_NETWORK')),
    mtu: Number.isInteger(mtu) && mtu > 0 ? mtu : null,
    ipMasq: masq === 'true' ? true : masq === 'false' ? false : null,
  };
}
