// The daemon's own settings: flags keep flanneld's names; each also comes from WEFT_<NAME> or FLANNELD_<NAME> in
// the environment, or from a JSON file given by --config. Precedence: flag > env > file > default.
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError, errorMessage } from '../errors.js';
import { parseIPv6 } from '../ip/ipv6.js';

type Kind = 'string' | 'int' | 'bool' | 'list';

interface OptionSpec {
  readonly flag: string; // kebab-case, without "--"
  readonly kind: Kind;
  readonly describe: string;
  readonly fallback?: string | number | boolean | readonly string[];
}

// One table drives the CLI flags, the environment names, the file keys and the help text.
export const DAEMON_OPTIONS: readonly OptionSpec[] = [
  {
    flag: 'etcd-endpoints',
    kind: 'list',
    describe: 'comma-separated etcd endpoints',
    fallback: ['http://127.0.0.1:2379'],
  },
  { flag: 'etcd-prefix', kind: 'string', describe: 'etcd prefix of the network', fallback: '/coreos.com/network' },
  { flag: 'etcd-cafile', kind: 'string', describe: 'CA certificate to verify etcd servers' },
  { flag: 'etcd-certfile', kind: 'string', describe: 'client certificate for etcd' },
  { flag: 'etcd-keyfile', kind: 'string', describe: 'client key for etcd' },
  { flag: 'etcd-username', kind: 'string', describe: 'etcd user name' },
  { flag: 'etcd-password', kind: 'string', describe: 'etcd password' },
  { flag: 'iface', kind: 'string', describe: "interface (name or IP) for the underlay; default: the default route's" },
  {
    flag: 'public-ip',
    kind: 'string',
    describe: "IP other hosts reach this one at; default: the interface's first IPv4",
  },
  {
    flag: 'public-ipv6',
    kind: 'string',
    describe: "IPv6 other hosts reach this one at (with EnableIPv6); default: the interface's first global IPv6",
  },
  { flag: 'subnet-file', kind: 'string', describe: 'where to write subnet.env', fallback: '/run/flannel/subnet.env' },
  {
    flag: 'subnet-lease-renew-margin',
    kind: 'int',
    describe: 'renew the lease this many minutes before expiry',
    fallback: 60,
  },
  { flag: 'subnet-lease-ttl', kind: 'int', describe: 'lease TTL in seconds (flannel: 24 h)', fallback: 86400 },
  { flag: 'ip-masq', kind: 'bool', describe: 'masquerade traffic leaving the overlay network', fallback: false },
  {
    flag: 'healthz-ip',
    kind: 'string',
    describe: 'address of the /healthz and /metrics listener',
    fallback: '127.0.0.1',
  },
  { flag: 'healthz-port', kind: 'int', describe: 'port of /healthz and /metrics (0: off)', fallback: 0 },
  { flag: 'tun-name', kind: 'string', describe: 'name of the TUN device', fallback: 'weft0' },
  { flag: 'datapath', kind: 'string', describe: 'userspace | kernel', fallback: 'userspace' },
  { flag: 'tier', kind: 'string', describe: 'userspace tier: dgram | batch | offload', fallback: 'batch' },
  { flag: 'queues', kind: 'int', describe: 'TUN queues and sockets (offload tier)', fallback: 1 },
  {
    flag: 'encap-module',
    kind: 'string',
    describe: 'ES module (built JS) exporting an extra encap; Backend.Type names it',
  },
  {
    flag: 'log-level',
    kind: 'string',
    describe: 'pino level: trace | debug | info | warn | error | fatal | silent',
    fallback: 'info',
  },
];

const ipv4 = z
  .string()
  .regex(/^(\d{1,3})(\.\d{1,3}){3}$/, 'an IPv4 address')
  .refine((s) => s.split('.').every((o) => Number(o) <= 255), 'an IPv4 address');

const ipv6 = z.string().refine((s) => parseIPv6(s) !== null, 'an IPv6 address');

const daemonSchema = z
  .object({
    etcdEndpoints: z.array(z.url({ protocol: /^https?$/ })).min(1),
    etcdPrefix: z.string().regex(/^\/[^\s]*[^/\s]$/, 'an absolute key prefix without trailing "/"'),
    etcdCafile: z.string().min(1).optional(),
    etcdCertfile: z.string().min(1).optional(),
    etcdKeyfile: z.string().min(1).optional(),
    etcdUsername: z.string().min(1).optional(),
    etcdPassword: z.string().optional(),
    iface: z.string().min(1).optional(),
    publicIp: ipv4.optional(),
    publicIpv6: ipv6.optional(),
    subnetFile: z.string().min(1),
    subnetLeaseRenewMargin: z.number().int().min(0).max(1440),
    subnetLeaseTtl: z
      .number()
      .int()
      .min(2)
      .max(7 * 86400),
    ipMasq: z.boolean(),
    healthzIp: ipv4,
    healthzPort: z.number().int().min(0).max(65535),
    tunName: z.string().regex(/^[A-Za-z0-9_.-]{1,15}$/, 'an interface name of 1..15 characters'),
    datapath: z.enum(['userspace', 'kernel']),
    tier: z.enum(['dgram', 'batch', 'offload']),
    queues: z.number().int().min(1).max(64),
    encapModule: z.string().min(1).optional(),
    logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']),
  })
  .strict()
  .refine((c) => (c.etcdCertfile === undefined) === (c.etcdKeyfile === undefined), {
    message: '--etcd-certfile and --etcd-keyfile go together',
    path: ['etcdCertfile'],
  });

export type DaemonConfig = z.infer<typeof daemonSchema>;

type Raw = Record<string, unknown>;

export function camel(flag: string): string {
  return flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

function envName(prefix: string, flag: string): string {
  return prefix + flag.toUpperCase().replace(/-/g, '_');
}

// Turns a string from the environment or a flag into the option's kind; errors name where it came from.
function coerce(spec: OptionSpec, value: unknown, from: string): unknown {
  if (typeof value !== 'string') return value;
  switch (spec.kind) {
    case 'string':
      return value;
    case 'list':
      return value
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s.length > 0);
    case 'int': {
      if (!/^-?\d+$/.test(value.trim())) throw new ConfigError(`${from}: expected an integer, got "${value}"`);
      return Number(value);
    }
    case 'bool': {
      const v = value.trim().toLowerCase();
      if (['1', 'true', 'yes', 'on'].includes(v)) return true;
      if (['0', 'false', 'no', 'off', ''].includes(v)) return false;
      throw new ConfigError(`${from}: expected true or false, got "${value}"`);
    }
  }
}

/** A value the user gave, and where: the flag (--tier), the variable (WEFT_TIER) or the file and key. */
interface Given {
  readonly value: unknown;
  readonly from: string;
}
type GivenByKey = Record<string, Given>;

function fromEnv(env: NodeJS.ProcessEnv): GivenByKey {
  const out: GivenByKey = {};
  for (const spec of DAEMON_OPTIONS) {
    // WEFT_ wins over FLANNELD_ when both are set: it is the more specific name.
    for (const prefix of ['FLANNELD_', 'WEFT_']) {
      const name = envName(prefix, spec.flag);
      const v = env[name];
      if (v !== undefined) out[camel(spec.flag)] = { value: coerce(spec, v, name), from: name };
    }
  }
  return out;
}

function fromFile(path: string): GivenByKey {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(`--config ${path}: ${errorMessage(e)}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`--config ${path}: not valid JSON: ${errorMessage(e)}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError(`--config ${path}: expected a JSON object`);
  }
  const out: GivenByKey = {};
  for (const [key, value] of Object.entries(parsed)) {
    // File keys may be written as flags ("etcd-endpoints") or camelCase ("etcdEndpoints").
    const spec = DAEMON_OPTIONS.find((o) => o.flag === key || camel(o.flag) === key);
    if (!spec) throw new ConfigError(`--config ${path}: unknown key "${key}"`);
    const from = `--config ${path}: ${key}`;
    out[camel(spec.flag)] = {
      value: spec.kind === 'list' && Array.isArray(value) ? value : coerce(spec, value, from),
      from,
    };
  }
  return out;
}

function defaults(): Raw {
  const out: Raw = {};
  for (const spec of DAEMON_OPTIONS) if (spec.fallback !== undefined) out[camel(spec.flag)] = spec.fallback;
  return out;
}

function flagFor(key: string): string {
  return '--' + key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
}

/**
 * Resolves the daemon's configuration. `flags` holds only the flags the user gave (camelCase keys, values as the CLI
 * parsed them: strings or booleans). Throws ConfigError naming the bad value and where it came from: the flag
 * (`--tier="fast"`), the variable (`WEFT_TIER="fast"`) or the file and key (`--config /etc/weft.json: tier="fast"`).
 */
export function resolveDaemonConfig(
  flags: Raw,
  env: NodeJS.ProcessEnv = process.env,
  configFile?: string,
): DaemonConfig {
  const fromFlags: GivenByKey = {};
  for (const [key, value] of Object.entries(flags)) {
    if (value === undefined || key === 'config') continue;
    const spec = DAEMON_OPTIONS.find((o) => camel(o.flag) === key);
    if (!spec) throw new ConfigError(`unknown option ${flagFor(key)}`);
    fromFlags[key] = { value: coerce(spec, value, flagFor(key)), from: flagFor(key) };
  }
  const file = configFile ?? (typeof flags['config'] === 'string' ? flags['config'] : undefined);
  const given: GivenByKey = { ...(file ? fromFile(file) : {}), ...fromEnv(env), ...fromFlags };
  const merged: Raw = { ...defaults() };
  for (const [key, g] of Object.entries(given)) merged[key] = g.value;
  const result = daemonSchema.safeParse(merged);
  if (!result.success) {
    const issue = result.error.issues[0];
    if (!issue) throw new ConfigError('invalid configuration');
    const key = issue.path.length > 0 ? String(issue.path[0]) : '';
    if (issue.code === 'unrecognized_keys') throw new ConfigError(`unknown option ${flagFor(issue.keys[0] ?? key)}`);
    const shown = key === 'etcdPassword' ? '***' : JSON.stringify(merged[key]);
    throw new ConfigError(`${key ? (given[key]?.from ?? flagFor(key)) : 'config'}=${shown}: ${issue.message}`);
  }
  checkCombination(result.data, 'tier' in given, (key) => given[key]?.from ?? flagFor(key));
  return result.data;
}

/**
 * Tier x queues x datapath, checked once here so a combination that would be ignored or fail later stops the
 * daemon with one line (an encap loaded with --encap-module on the offload tier is checked when the network config
 * names it: the userspace backend refuses it before the TUN opens). `source` names where a key's value came from.
 */
function checkCombination(c: DaemonConfig, tierGiven: boolean, source: (key: keyof DaemonConfig) => string): void {
  if (c.datapath === 'kernel' && tierGiven) {
    throw new ConfigError(
      `${source('tier')}=${c.tier}: the kernel datapath has no tiers (drop it or use --datapath=userspace)`,
    );
  }
  if (c.queues > 1 && (c.datapath === 'kernel' || c.tier !== 'offload')) {
    const what = c.datapath === 'kernel' ? 'the kernel datapath' : `${source('tier')}=${c.tier}`;
    throw new ConfigError(`${source('queues')}=${c.queues}: only --tier=offload has queues, not ${what}`);
  }
}
