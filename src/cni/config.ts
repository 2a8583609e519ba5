// weft-cni's network config (what the runtime puts on stdin) and the delegate config built from it and subnet.env,
// with flannel's CNI plugin semantics:
//
//   { "cniVersion": "1.0.0", "name": "weft", "type": "weft-cni",
//     "subnetFile": "/run/flannel/subnet.env", "dataDir": "/var/lib/cni/weft",
//     "delegate": { "hairpinMode": true, "isDefaultGateway": true },     <- merged over the defaults below
//     "ipam": { "dataDir": "/var/lib/cni/networks" } }                    <- extra host-local keys
//
// becomes, with FLANNEL_NETWORK=10.5.0.0/16 FLANNEL_SUBNET=10.5.3.1/24 FLANNEL_MTU=1472 FLANNEL_IPMASQ=false:
//
//   { "cniVersion": "1.0.0", "name": "weft", "type": "bridge", "bridge": "cni0", "isGateway": true,
//     "ipMasq": true, "mtu": 1472, "hairpinMode": true, "isDefaultGateway": true,
//     "ipam": { "type": "host-local", "dataDir": ..., "ranges": [[{ "subnet": "10.5.3.0/24" }]],
//               "routes": [{ "dst": "10.5.0.0/16", "gw": "10.5.3.1" }] } }
//
// ipMasq is inverted: when the daemon masquerades (FLANNEL_IPMASQ=true) the bridge must not do it a second time.
//
// A dual-stack subnet.env (FLANNEL_IPV6_NETWORK=fd00:5::/48 FLANNEL_IPV6_SUBNET=fd00:5:0:3::1/64) adds a second range
// set and a route to the IPv6 network, as flannel's plugin does (cni-plugin flannel_linux.go, getDelegateIPAM):
//   "ranges": [[{ "subnet": "10.5.3.0/24" }], [{ "subnet": "fd00:5:0:3::/64" }]],
//   "routes": [{ "dst": "10.5.0.0/16", "gw": "10.5.3.1" }, { "dst": "fd00:5::/48", "gw": "fd00:5:0:3::1" }]
// An IPv6-only subnet.env has only the IPv6 range and route.
import { z } from 'zod';
import { type ParsedSubnetEnv } from '../lease/subnet-env.js';
import { firstHost, formatIPv4, formatSubnet } from '../ip/subnet.js';
import { firstHost6, formatIPv6, formatSubnet6 } from '../ip/ipv6.js';
import { CniCode, CniError, SUPPORTED_VERSIONS, isSupportedVersion, type CniVersion } from './spec.js';

export const DEFAULT_SUBNET_FILE = '/run/flannel/subnet.env';
export const DEFAULT_DATA_DIR = '/var/lib/cni/weft';

const jsonObject = z.record(z.string(), z.unknown());
const absPath = z.string().regex(/^\/[^\0]*$/, 'an absolute path');
// A delegate's type is the name of an executable in CNI_PATH: a bare file name.
const pluginName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'a plugin name (a file name in CNI_PATH)');

const attachment = z.object({ containerID: z.string(), ifname: z.string() }).loose();

const netConfSchema = z
  .object({
    cniVersion: z.string().refine(isSupportedVersion, { message: `one of ${SUPPORTED_VERSIONS.join(', ')}` }),
    name: z.string().min(1),
    type: z.string().min(1),
    subnetFile: absPath.default(DEFAULT_SUBNET_FILE),
    dataDir: absPath.default(DEFAULT_DATA_DIR),
    delegate: jsonObject.optional(),
    ipam: jsonObject.optional(),
    runtimeConfig: jsonObject.optional(),
    args: jsonObject.optional(),
    prevResult: jsonObject.optional(),
    'cni.dev/valid-attachments': z.array(attachment).optional(),
  })
  .loose(); // the runtime may add keys (capabilities, etc.): ignore them

export interface NetConf {
  cniVersion: CniVersion;
  name: string;
  type: string;
  subnetFile: string;
  dataDir: string;
  delegate?: Record<string, unknown>;
  ipam?: Record<string, unknown>;
  runtimeConfig?: Record<string, unknown>;
  args?: Record<string, unknown>;
  prevResult?: Record<string, unknown>;
  'cni.dev/valid-attachments'?: { containerID: string; ifname: string }[];
}

/** The JSON object handed to the delegate on stdin. */
export type DelegateConf = Record<string, unknown> & { type: string; cniVersion: string; name: string };

/** The version a config asks for, when it says one: used to label errors even when the rest is invalid. */
export function requestedVersion(raw: unknown): string | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const v = (raw as Record<string, unknown>).cniVersion;
  return typeof v === 'string' ? v : undefined;
}

/** Parses stdin: CniError 6 when it is not JSON, 1 for an unsupported version, 7 when a field is invalid. */
export function parseNetConf(stdin: string): NetConf {
  let raw: unknown;
  try {
    raw = JSON.parse(stdin);
  } catch (e) {
    throw new CniError(
      CniCode.DecodeFailure,
      'network config on stdin is not JSON',
      e instanceof Error ? e.message : '',
    );
  }
  const v = requestedVersion(raw);
  if (v !== undefined && !isSupportedVersion(v)) {
    throw new CniError(
      CniCode.IncompatibleVersion,
      `incompatible CNI version ${v}`,
      `supported: ${SUPPORTED_VERSIONS.join(', ')}`,
    );
  }
  const r = netConfSchema.safeParse(raw);
  if (!r.success) {
    const first = r.error.issues[0];
    const where = first === undefined || first.path.length === 0 ? 'config' : first.path.join('.');
    throw new CniError(
      CniCode.InvalidNetworkConfig,
      `invalid network config: ${where}: ${first?.message ?? 'invalid'}`,
    );
  }
  const d = r.data;
  return {
    cniVersion: d.cniVersion as CniVersion,
    name: d.name,
    type: d.type,
    subnetFile: d.subnetFile,
    dataDir: d.dataDir,
    delegate: d.delegate,
    ipam: d.ipam,
    runtimeConfig: d.runtimeConfig,
    args: d.args,
    prevResult: d.prevResult,
    'cni.dev/valid-attachments': d['cni.dev/valid-attachments'],
  };
}

function isRoute(x: unknown): x is { dst: string } {
  return typeof x === 'object' && x !== null && typeof (x as Record<string, unknown>).dst === 'string';
}

/**
 * The delegate config for ADD (flannel's doFlannelAdd): defaults from subnet.env under the plugin's `delegate`
 * overrides; `ipam` always gets the lease's range and the route to the whole network.
 */
export function buildDelegateConf(conf: NetConf, env: ParsedSubnetEnv, subnetFile: string): DelegateConf {
  if (env.subnet !== null && env.network === null) {
    throw new CniError(CniCode.TryAgainLater, `${subnetFile} has no valid FLANNEL_NETWORK`);
  }
  if (env.ipv6Subnet !== null && env.ipv6Network === null) {
    throw new CniError(CniCode.TryAgainLater, `${subnetFile} has no valid FLANNEL_IPV6_NETWORK`);
  }
  if (env.mtu === null) throw new CniError(CniCode.TryAgainLater, `${subnetFile} has no valid FLANNEL_MTU`);
  const d: Record<string, unknown> = { ...(conf.delegate ?? {}) };
  const type = d.type ?? 'bridge';
  if (!pluginName.safeParse(type).success) {
    throw new CniError(
      CniCode.InvalidNetworkConfig,
      `invalid network config: delegate.type ${JSON.stringify(type)} is not a plugin name`,
    );
  }
  d.type = type;
  d.name = conf.name;
  d.cniVersion = conf.cniVersion;
  if (!('ipMasq' in d)) d.ipMasq = !(env.ipMasq ?? false);
  if (!('mtu' in d)) d.mtu = env.mtu;
  if (type === 'bridge') {
    if (!('bridge' in d)) d.bridge = 'cni0';
    if (!('isGateway' in d)) d.isGateway = true;
  }
  const userRoutes = Array.isArray(conf.ipam?.routes) ? conf.ipam.routes.filter(isRoute) : [];
  // flannel leaves `gw` out and the bridge fills in the gateway; but bridge CHECK before containernetworking/plugins
  // v1.3.0 (PR #887; Debian ships 1.1.1) then looks for a route without gateway and fails. Naming host-local's
  // default gateway (the subnet's first host, FLANNEL_SUBNET) gives the same route and a passing CHECK.
  const ranges: { subnet: string }[][] = [];
  const routes: { dst: string; gw: string }[] = [];
  if (env.subnet !== null && env.network !== null) {
    ranges.push([{ subnet: formatSubnet(env.subnet) }]);
    routes.push({ dst: formatSubnet(env.network), gw: formatIPv4(firstHost(env.subnet)) });
  }
  if (env.ipv6Subnet !== null && env.ipv6Network !== null) {
    ranges.push([{ subnet: formatSubnet6(env.ipv6Subnet) }]);
    routes.push({ dst: formatSubnet6(env.ipv6Network), gw: formatIPv6(firstHost6(env.ipv6Subnet)) });
  }
  d.ipam = {
    ...(conf.ipam ?? {}),
    type: typeof conf.ipam?.type === 'string' ? conf.ipam.type : 'host-local',
    ranges,
    routes: [...userRoutes.filter((r) => !routes.some((n) => n.dst === r.dst)), ...routes],
  };
  if (conf.runtimeConfig !== undefined) d.runtimeConfig = conf.runtimeConfig;
  if (conf.args !== undefined) d.args = conf.args;
  return d as DelegateConf;
}
