// `weft network get|set`: read or write `<prefix>/config`. set validates with the daemon's own parser first, so a
// config that the daemons would refuse never reaches etcd.
import { readFileSync } from 'node:fs';
import { parseNetworkConfig } from '../config/network.js';
import { ConfigError, errorMessage } from '../errors.js';
import { registryFromFlags } from './etcd.js';

export async function getNetwork(flags: Record<string, unknown>): Promise<void> {
  const { registry, config } = registryFromFlags(flags);
  try {
    const json = await registry.getNetworkConfig();
    if (json === null) throw new ConfigError(`no network config at ${config.etcdPrefix}/config`);
    process.stdout.write(json.endsWith('\n') ? json : json + '\n');
  } finally {
    registry.close();
  }
}

export async function setNetwork(flags: Record<string, unknown>, value: string): Promise<void> {
  let json = value;
  if (value.startsWith('@')) {
    try {
      json = readFileSync(value.slice(1), 'utf8');
    } catch (e) {
      throw new ConfigError(`${value.slice(1)}: ${errorMessage(e)}`);
    }
  }
  parseNetworkConfig(json);
  const { registry, config } = registryFromFlags(flags);
  try {
    await registry.putNetworkConfig(json.trim());
    process.stdout.write(`wrote ${config.etcdPrefix}/config\n`);
  } finally {
    registry.close();
  }
}
