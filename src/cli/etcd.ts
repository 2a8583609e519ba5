// The etcd connection for one-shot commands (leases, network get|set), from the same flags and environment as the
// daemon. Where the daemon waits out an unreachable etcd, a command ends with one line that says what to do.
import { resolveDaemonConfig, type DaemonConfig } from '../config/daemon.js';
import { WeftError, errorMessage } from '../errors.js';
import { registryFromConfig, type EtcdRegistry } from '../lease/registry.js';
import { createLogger } from '../log.js';

/** Runs `fn` with a registry for `flags`, closed afterwards; an unreachable etcd becomes one line with a hint. */
export async function withRegistry<T>(
  flags: Record<string, unknown>,
  fn: (registry: EtcdRegistry, config: DaemonConfig) => Promise<T>,
): Promise<T> {
  const config = resolveDaemonConfig(flags);
  const log = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel);
  const registry = registryFromConfig(config, log);
  try {
    return await fn(registry, config);
  } catch (e) {
    if (!(e instanceof WeftError) || e.code !== 'WEFT_ERR_ETCD') throw e;
    throw new WeftError(
      'WEFT_ERR_ETCD',
      `${withoutGrpcNoise(errorMessage(e))}: is etcd running there? ` +
        'Point --etcd-endpoints (or WEFT_ETCD_ENDPOINTS) at it',
      { cause: e },
    );
  } finally {
    registry.close();
  }
}

/**
 * gRPC's unreachable error reads "14 UNAVAILABLE: No connection established. Last error: Error: connect
 * ECONNREFUSED 127.0.0.1:2379. Resolution note: "; the socket error inside is what a user needs.
 */
function withoutGrpcNoise(message: string): string {
  const grpc = /^(.*?)\s*\d+ [A-Z_]+: ([\s\S]*)$/.exec(message);
  if (grpc === null) return message;
  const rest = grpc[2] ?? '';
  const socket = /(?:connect|getaddrinfo|read|write) E[A-Z]+(?: [^\s]*[^\s.])?/.exec(rest);
  return `${grpc[1] ?? ''} ${socket?.[0] ?? rest.replace(/\.?\s*Resolution note:[\s\S]*$/, '')}`;
}
