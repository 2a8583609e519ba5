// flannel's subnet.env, read by CNI plugins and by the next start of the daemon (to keep its subnet):
//   FLANNEL_NETWORK=10.5.0.0/16
//   FLANNEL_SUBNET=10.5.3.1/24      (first host address / SubnetLen)
//   FLANNEL_MTU=1472
//   FLANNEL_IPMASQ=false
import { readFileSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { type Subnet, firstHost, formatIPv4, formatSubnet, makeSubnet, parseCIDR } from '../ip/subnet.js';

export interface SubnetEnv {
  network: Subnet;
  subnet: Subnet; // the lease's subnet (network address, not the first host)
  mtu: number;
  ipMasq: boolean;
}

export function formatSubnetEnv(env: SubnetEnv): string {
  return (
    `FLANNEL_NETWORK=${formatSubnet(env.network)}\n` +
    `FLANNEL_SUBNET=${formatIPv4(firstHost(env.subnet))}/${env.subnet.prefixLen}\n` +
    `FLANNEL_MTU=${env.mtu}\n` +
    `FLANNEL_IPMASQ=${env.ipMasq}\n`
  );
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

/** What a subnet.env says; only FLANNEL_SUBNET is required, the rest is null when absent or malformed. */
export interface ParsedSubnetEnv {
  subnet: Subnet; // FLANNEL_SUBNET with host bits cleared: the lease's subnet
  network: Subnet | null;
  mtu: number | null;
  ipMasq: boolean | null;
}

/**
 * Reads subnet.env (synchronously: a tiny file read once at startup). Null when the file is missing, unreadable
 * or has no valid FLANNEL_SUBNET; never throws.
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
  const sn = parseCIDR(vars.get('FLANNEL_SUBNET') ?? '');
  if (sn === null || sn.prefixLen === 0) return null;
  const net = parseCIDR(vars.get('FLANNEL_NETWORK') ?? '');
  const mtu = Number(vars.get('FLANNEL_MTU'));
  const masq = vars.get('FLANNEL_IPMASQ');
  return {
    subnet: makeSubnet(sn.ip, sn.prefixLen),
    network: net === null ? null : makeSubnet(net.ip, net.prefixLen),
    mtu: Number.isInteger(mtu) && mtu > 0 ? mtu : null,
    ipMasq: masq === 'true' ? true : masq === 'false' ? false : null,
  };
}
