// --ip-masq: flannel's masquerade rules, in the nat table of the daemon's own network namespace, through iptables
// (execFile with argv, no shell). Traffic from the overlay Network to outside it is masqueraded; traffic within the
// Network never is (flannel pkg/ip/iptables: MasqRules).
//
//   POSTROUTING -> WEFT-POSTRTG
//     -s <Network> -d <Network>           RETURN       pod to pod keeps its source
//     -s <Network> ! -d 224.0.0.0/4       MASQUERADE   pods leaving the overlay
//     ! -s <Network> -d <our subnet>      RETURN       outside to our pods keeps its source
//     ! -s <Network> -d <Network>         MASQUERADE   this host into the overlay: replies must come back here
//
// Where no iptables binary works, setup logs one clear line and does nothing (the option is then a no-op).
import { execFile } from 'node:child_process';
import { WeftError, errorMessage } from '../errors.js';
import type { Logger } from '../log.js';

export const MASQ_CHAIN = 'WEFT-POSTRTG';
const JUMP = ['POSTROUTING', '-m', 'comment', '--comment', 'weft masquerade', '-j', MASQ_CHAIN];

function iptables(bin: string, args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile(bin, ['-w', '5', '-t', 'nat', ...args], { timeout: 10_000, encoding: 'utf8' }, (err, _out, stderr) => {
      const e = err as (NodeJS.ErrnoException & { code?: number | string }) | null;
      resolve({
        code: e === null ? 0 : typeof e.code === 'number' ? e.code : -1,
        stderr: e !== null && stderr === '' ? errorMessage(e) : stderr,
      });
    });
  });
}

/** The rules, as iptables arguments after `-A <chain>` (exported for tests). */
export function masqRules(network: string, subnet: string): string[][] {
  return [
    ['-s', network, '-d', network, '-m', 'comment', '--comment', 'weft: within the overlay', '-j', 'RETURN'],
    [
      '-s',
      network,
      '!',
      '-d',
      '224.0.0.0/4',
      '-m',
      'comment',
      '--comment',
      'weft: leaving the overlay',
      '-j',
      'MASQUERADE',
    ],
    ['!', '-s', network, '-d', subnet, '-m', 'comment', '--comment', 'weft: to our pods', '-j', 'RETURN'],
    [
      '!',
      '-s',
      network,
      '-d',
      network,
      '-m',
      'comment',
      '--comment',
      'weft: host into the overlay',
      '-j',
      'MASQUERADE',
    ],
  ];
}

export interface Masq {
  /** Rewrites the rules for (a possibly new) subnet. */
  apply(subnet: string): Promise<void>;
  /** Removes the jump and the chain. Safe to call twice. */
  remove(): Promise<void>;
}

/** Finds a working iptables; null (and one log line) where there is none. */
export async function openMasq(network: string, log: Logger): Promise<Masq | null> {
  let bin: string | null = null;
  for (const candidate of ['iptables', 'iptables-nft', 'iptables-legacy']) {
    const r = await iptables(candidate, ['-S', 'POSTROUTING']);
    if (r.code === 0) {
      bin = candidate;
      break;
    }
  }
  if (bin === null) {
    log.warn(
      '--ip-masq: no working iptables in this namespace (install Debian package iptables); no masquerade rules added',
    );
    return null;
  }
  const exe = bin;
  const must = async (args: string[]): Promise<void> => {
    const r = await iptables(exe, args);
    if (r.code !== 0) throw new WeftError('WEFT_ERR_BACKEND', `${exe} -t nat ${args.join(' ')}: ${r.stderr.trim()}`);
  };
  return {
    async apply(subnet: string) {
      // -N fails when the chain exists: then flush it; either way it ends empty.
      if ((await iptables(exe, ['-N', MASQ_CHAIN])).code !== 0) await must(['-F', MASQ_CHAIN]);
      for (const rule of masqRules(network, subnet)) await must(['-A', MASQ_CHAIN, ...rule]);
      if ((await iptables(exe, ['-C', ...JUMP])).code !== 0) await must(['-A', ...JUMP]);
      log.info({ chain: MASQ_CHAIN, network, subnet, iptables: exe }, '--ip-masq: masquerade rules in place');
    },
    async remove() {
      while ((await iptables(exe, ['-D', ...JUMP])).code === 0) {
        /* every copy of the jump */
      }
      await iptables(exe, ['-F', MASQ_CHAIN]);
      await iptables(exe, ['-X', MASQ_CHAIN]);
      log.info({ chain: MASQ_CHAIN }, '--ip-masq: masquerade rules removed');
    },
  };
}
