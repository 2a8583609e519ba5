// The etcd connection for one-shot commands (leases, network get/set), from the same flags and environment as the
// daemon.
import { resolveDaemonConfig, type DaemonConfig } from '../config/daemon.js';
import { registryFromConfig, type EtcdRegistry } from '../lease/registry.js';
import { createLogger } from '../log.js';

export function registryFromFlags(flags: Record<string, unknown>): { registry: EtcdRegistry; config: DaemonConfig } {
  const config = resolveDaemonConfig(flags);
  const log = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel);
  const registry = registryFromConfig(config, log);
  return { registry, config };
}
