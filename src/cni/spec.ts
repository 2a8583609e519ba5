// The parts of the CNI specification weft-cni speaks (https://github.com/containernetworking/cni/blob/main/SPEC.md):
// the versions it accepts, the well-known error codes, and the error object every failing command prints on stdout.

/** Oldest first. 0.3.x results have the same shape as 0.4.0; 1.1.0 results the same as 1.0.0 (it adds STATUS/GC). */
export const SUPPORTED_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
export type CniVersion = (typeof SUPPORTED_VERSIONS)[number];
export const LATEST_VERSION: CniVersion = '1.1.0';

export function isSupportedVersion(v: string): v is CniVersion {
  return (SUPPORTED_VERSIONS as readonly string[]).includes(v);
}

/** Numeric comparison of "a.b.c" versions; -1, 0, 1. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return 0;
}

/** Well-known error codes of the spec (section "Error"); 100+ would be plugin-specific. */
export const CniCode = {
  IncompatibleVersion: 1,
  UnsupportedField: 2,
  ContainerUnknown: 3,
  InvalidEnvironment: 4,
  IoFailure: 5,
  DecodeFailure: 6,
  InvalidNetworkConfig: 7,
  TryAgainLater: 11,
  PluginNotAvailable: 50,
  LimitedConnectivity: 51,
} as const;

/** A failure to report as the spec's error object. `code` may also be a delegate's own code, passed through. */
export class CniError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly details = '',
  ) {
    super(message);
    this.name = 'CniError';
  }

  toJSON(cniVersion: string): { cniVersion: string; code: number; msg: string; details?: string } {
    return this.details === ''
      ? { cniVersion, code: this.code, msg: this.message }
      : { cniVersion, code: this.code, msg: this.message, details: this.details };
  }
}

/** The CNI_* environment a command runs with, as the runtime set it. */
export interface CniEnv {
  command: string;
  containerId: string | undefined;
  netns: string | undefined;
  ifName: string | undefined;
  args: string | undefined;
  path: string | undefined;
}

export function readCniEnv(env: NodeJS.ProcessEnv): CniEnv {
  const get = (k: string): string | undefined => (env[k] === undefined || env[k] === '' ? undefined : env[k]);
  return {
    command: env.CNI_COMMAND ?? '',
    containerId: get('CNI_CONTAINERID'),
    netns: get('CNI_NETNS'),
    ifName: get('CNI_IFNAME'),
    args: get('CNI_ARGS'),
    path: get('CNI_PATH'),
  };
}

// The spec: "alphanumeric, plus underscore, period and hyphen", starting alphanumeric. Checking it also keeps the
// ID, which names a file in the store, from walking out of the store directory.
const CONTAINER_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
// Linux interface names: 1..15 bytes, no '/', no whitespace, not "." or "..".
const IF_NAME = /^(?!\.{1,2}$)[^/\s:]{1,15}$/;

/** Throws CniError(4) naming the first missing or malformed variable among those the command needs. */
export function requireEnv(env: CniEnv, need: readonly ('containerId' | 'netns' | 'ifName' | 'path')[]): void {
  const names = { containerId: 'CNI_CONTAINERID', netns: 'CNI_NETNS', ifName: 'CNI_IFNAME', path: 'CNI_PATH' };
  for (const k of need) {
    const v = env[k];
    if (v === undefined) throw new CniError(CniCode.InvalidEnvironment, `${names[k]} is required for ${env.command}`);
    if (k === 'containerId' && !CONTAINER_ID.test(v)) {
      throw new CniError(
        CniCode.InvalidEnvironment,
        `CNI_CONTAINERID ${JSON.stringify(v)} is not a valid container ID`,
      );
    }
    if (k === 'ifName' && !IF_NAME.test(v)) {
      throw new CniError(CniCode.InvalidEnvironment, `CNI_IFNAME ${JSON.stringify(v)} is not a valid interface name`);
    }
  }
}
