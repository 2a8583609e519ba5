// One error type for weft, with stable codes (WEFT_ERR_*), so callers branch on code, never on message text.
// Everything a user's input, environment or network can cause is a WeftError, in src/ and in the tools (bench/,
// testbed/) alike: ConfigError for what the user typed (the CLI exits 2), a code for the part that failed otherwise.
// The addon's syscall errors carry the errno name as code, as Node's own do (EPERM, EBADF). A plain Error is left
// for what cannot happen short of a bug or a broken installation.

export type WeftErrorCode =
  | 'WEFT_ERR_CONFIG' // daemon flags, env or file invalid
  | 'WEFT_ERR_NETWORK_CONFIG' // <prefix>/config invalid
  | 'WEFT_ERR_NETWORK_EXHAUSTED' // no free subnet left
  | 'WEFT_ERR_LEASE' // lease lost or not renewable
  | 'WEFT_ERR_ETCD' // etcd unreachable or refused
  | 'WEFT_ERR_NATIVE' // the addon failed (an N-API call) or does not match this build
  | 'WEFT_ERR_IPROUTE' // an iproute2 command failed
  | 'WEFT_ERR_BACKEND'; // backend setup failed

export class WeftError extends Error {
  readonly code: WeftErrorCode;
  constructor(code: WeftErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'WeftError';
  }
}

export class ConfigError extends WeftError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('WEFT_ERR_CONFIG', message, options);
    this.name = 'ConfigError';
  }
}

export class NetworkConfigError extends WeftError {
  constructor(message: string) {
    super('WEFT_ERR_NETWORK_CONFIG', message);
    this.name = 'NetworkConfigError';
  }
}

export class NetworkExhaustedError extends WeftError {
  constructor(message: string) {
    super('WEFT_ERR_NETWORK_EXHAUSTED', message);
    this.name = 'NetworkExhaustedError';
  }
}

// The watch start revision was compacted away: the watcher must re-list, then watch from the new revision.
export class EtcdCompactedError extends WeftError {
  readonly compactRevision: string;
  constructor(message: string, compactRevision: string) {
    super('WEFT_ERR_ETCD', message);
    this.name = 'EtcdCompactedError';
    this.compactRevision = compactRevision;
  }
}

export function isWeftError(e: unknown): e is WeftError {
  return e instanceof WeftError;
}

export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
