// `weft network get|set`: read or write `<prefix>/config`. set runs the daemon's own check first (checkNetworkConfig,
// backend options included, for every datapath that carries the type), so a config that a daemon would refuse never
// reaches etcd; it refuses with the daemon's line and exit 2. A Backend.Type from an encap module is known once that
// module is loaded: give `set` the daemons' --encap-module too.
import { readFileSync } from 'node:fs';
import { checkNetworkConfig } from '../backend/config.js';
import { loadEncapModule } from '../backend/encap-module.js';
import { ConfigError, WeftError, errorMessage } from '../errors.js';
import { withRegistry } from './etcd.js';

export async function getNetwork(flags: Record<string, unknown>): Promise<void> {
  const json = await withRegistry(flags, async (registry, config) => {
    const got = await registry.getNetworkConfig();
    if (got === null) throw new ConfigError(`no network config at ${config.etcdPrefix}/config`);
    return got;
  });
  process.stdout.write(json.endsWith('\n') ? json : json + '\n');
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
  await withRegistry(flags, async (registry, config) => {
    if (config.encapModule !== undefined) await loadEncapModule(config.encapModule);
    try {
      checkNetworkConfig(json);
    } catch (e) {
      // What the user gave is refused: exit 2, as for a bad flag.
      if (e instanceof WeftError && e.code === 'WEFT_ERR_NETWORK_CONFIG') throw new ConfigError(e.message);
      throw e;
    }
    await registry.putNetworkConfig(json.trim());
    process.stdout.write(`wrote ${config.etcdPrefix}/config\n`);
  });
}
