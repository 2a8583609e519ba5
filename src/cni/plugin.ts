// weft-cni's commands. Each takes the CNI_* environment and the stdin text and returns what goes to stdout, or
// throws a CniError that main.ts prints as the spec's error object.
//
//   ADD:     subnet.env -> delegate config -> store it under the container ID -> delegate ADD -> its result
//   DEL:     stored delegate config -> delegate DEL -> forget it (no record: nothing to do, success)
//   CHECK:   stored delegate config + the runtime's prevResult -> delegate CHECK (0.4.0 and later)
//   STATUS:  ready when subnet.env is readable (1.1.0)
//   GC:      delegate DEL for every stored attachment the runtime no longer lists as valid (1.1.0)
//   VERSION: the versions weft-cni accepts
import { readSubnetEnv } from '../lease/subnet-env.js';
import type { Logger } from '../log.js';
import { buildDelegateConf, parseNetConf, requestedVersion, type DelegateConf, type NetConf } from './config.js';
import { delegateVersions, execDelegate } from './delegate.js';
import { AttachmentStore } from './store.js';
import {
  CniCode,
  CniError,
  LATEST_VERSION,
  SUPPORTED_VERSIONS,
  compareVersions,
  isSupportedVersion,
  readCniEnv,
  requireEnv,
  type CniEnv,
} from './spec.js';

export interface CommandOutput {
  stdout: string;
  exitCode: number;
}

interface Ctx {
  env: CniEnv;
  processEnv: NodeJS.ProcessEnv;
  log: Logger;
}

// Version 1.1.0 results have 1.0.0's shape: a delegate that stops at 1.0.0 (Debian's plugins) is run at 1.0.0 and
// its result relabelled, so a 1.1.0 runtime can still use it.
async function delegateVersionFor(ctx: Ctx, d: DelegateConf): Promise<string> {
  if (d.cniVersion !== '1.1.0') return d.cniVersion;
  const have = await delegateVersions(d.type, d.cniVersion, { env: ctx.processEnv, cniPath: ctx.env.path ?? '' });
  if (have.includes('1.1.0') || !have.includes('1.0.0')) return d.cniVersion;
  return '1.0.0';
}

function withVersion(resultJson: string, cniVersion: string): string {
  let o: unknown;
  try {
    o = JSON.parse(resultJson);
  } catch {
    throw new CniError(CniCode.IoFailure, 'delegate ADD printed no JSON result', resultJson.slice(0, 500));
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) {
    throw new CniError(CniCode.IoFailure, 'delegate ADD printed no result object', resultJson.slice(0, 500));
  }
  return JSON.stringify({ ...o, cniVersion });
}

async function cmdAdd(ctx: Ctx, conf: NetConf): Promise<string> {
  requireEnv(ctx.env, ['containerId', 'netns', 'ifName', 'path']);
  const containerId = ctx.env.containerId as string;
  const subnetEnv = readSubnetEnv(conf.subnetFile);
  if (subnetEnv === null) {
    throw new CniError(
      CniCode.TryAgainLater,
      `${conf.subnetFile} is missing or has no valid FLANNEL_SUBNET or FLANNEL_IPV6_SUBNET`,
      'is weft daemon running on this host with --subnet-file set to this path?',
    );
  }
  const delegate = buildDelegateConf(conf, subnetEnv, conf.subnetFile);
  delegate.cniVersion = await delegateVersionFor(ctx, delegate);
  const store = new AttachmentStore(conf.dataDir);
  // Stored first, so a DEL after a failed or half-done ADD (killed runtime, timeout) still reaches the delegate.
  await store.save(containerId, { ifName: ctx.env.ifName as string, delegate });
  // On failure the record stays: the runtime follows a failed ADD with DEL (as with flannel's plugin), and that
  // DEL must reach the delegate to undo what it did half-way. Undoing it here could tear down an attachment that a
  // repeated ADD found already in place.
  const out = await execDelegate(delegate.type, JSON.stringify(delegate), {
    command: 'ADD',
    env: ctx.processEnv,
    cniPath: ctx.env.path as string,
  });
  return withVersion(out, conf.cniVersion);
}

async function cmdDel(ctx: Ctx, conf: NetConf): Promise<string> {
  requireEnv(ctx.env, ['containerId', 'ifName', 'path']);
  const containerId = ctx.env.containerId as string;
  const store = new AttachmentStore(conf.dataDir);
  const rec = await store.load(containerId);
  if (rec === null) return ''; // never added or already deleted: DEL must succeed
  await execDelegate(rec.delegate.type, JSON.stringify(rec.delegate), {
    command: 'DEL',
    env: ctx.processEnv,
    cniPath: ctx.env.path as string,
  });
  await store.remove(containerId);
  return '';
}

async function cmdCheck(ctx: Ctx, conf: NetConf): Promise<string> {
  if (compareVersions(conf.cniVersion, '0.4.0') < 0) {
    throw new CniError(CniCode.IncompatibleVersion, `config version ${conf.cniVersion} does not allow CHECK`);
  }
  requireEnv(ctx.env, ['containerId', 'netns', 'ifName', 'path']);
  if (conf.prevResult === undefined)
    throw new CniError(CniCode.InvalidNetworkConfig, 'CHECK needs prevResult in the config');
  const rec = await new AttachmentStore(conf.dataDir).load(ctx.env.containerId as string);
  if (rec === null)
    throw new CniError(CniCode.ContainerUnknown, `no attachment of container ${ctx.env.containerId} is known`);
  // The delegate parses prevResult at its own config's version (1.0.0 when a 1.1.0 ADD was run at 1.0.0).
  const d = { ...rec.delegate, prevResult: { ...conf.prevResult, cniVersion: rec.delegate.cniVersion } };
  await execDelegate(d.type, JSON.stringify(d), {
    command: 'CHECK',
    env: ctx.processEnv,
    cniPath: ctx.env.path as string,
  });
  return '';
}

function need110(conf: NetConf, command: string): void {
  if (compareVersions(conf.cniVersion, '1.1.0') < 0) {
    throw new CniError(CniCode.IncompatibleVersion, `config version ${conf.cniVersion} does not allow ${command}`);
  }
}

function cmdStatus(conf: NetConf): string {
  need110(conf, 'STATUS');
  if (readSubnetEnv(conf.subnetFile) === null) {
    throw new CniError(
      CniCode.PluginNotAvailable,
      `${conf.subnetFile} is missing or has no valid FLANNEL_SUBNET or FLANNEL_IPV6_SUBNET`,
    );
  }
  return '';
}

async function cmdGc(ctx: Ctx, conf: NetConf): Promise<string> {
  need110(conf, 'GC');
  requireEnv(ctx.env, ['path']);
  const valid = conf['cni.dev/valid-attachments'];
  // Without the list every attachment would look stale: refuse rather than tear all pods down.
  if (valid === undefined) throw new CniError(CniCode.InvalidNetworkConfig, 'GC needs cni.dev/valid-attachments');
  const keep = new Set(valid.map((a) => `${a.containerID}\n${a.ifname}`));
  const store = new AttachmentStore(conf.dataDir);
  const failed: string[] = [];
  for (const id of await store.list()) {
    let rec;
    try {
      rec = await store.load(id);
    } catch (e) {
      failed.push(`${id}: ${e instanceof Error ? e.message : String(e)}`);
      continue;
    }
    if (rec === null || keep.has(`${id}\n${rec.ifName}`)) continue;
    const env: NodeJS.ProcessEnv = {
      ...ctx.processEnv,
      CNI_CONTAINERID: id,
      CNI_IFNAME: rec.ifName,
      CNI_NETNS: undefined,
    };
    try {
      await execDelegate(rec.delegate.type, JSON.stringify(rec.delegate), {
        command: 'DEL',
        env,
        cniPath: ctx.env.path as string,
      });
      await store.remove(id);
      ctx.log.info({ containerId: id, ifName: rec.ifName }, 'weft-cni: GC removed a stale attachment');
    } catch (e) {
      failed.push(`${id}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  if (failed.length > 0)
    throw new CniError(CniCode.IoFailure, `GC failed for ${failed.length} attachment(s)`, failed.join('; '));
  return '';
}

function cmdVersion(stdin: string): string {
  let requested: string | undefined;
  try {
    requested = stdin.trim() === '' ? undefined : requestedVersion(JSON.parse(stdin));
  } catch {
    requested = undefined; // VERSION answers whatever the input is
  }
  const cniVersion = requested !== undefined && isSupportedVersion(requested) ? requested : LATEST_VERSION;
  return JSON.stringify({ cniVersion, supportedVersions: SUPPORTED_VERSIONS });
}

/** One CNI invocation: never throws; errors become the spec's error object and a non-zero exit code. */
export async function runCommand(processEnv: NodeJS.ProcessEnv, stdin: string, log: Logger): Promise<CommandOutput> {
  const env = readCniEnv(processEnv);
  const ctx: Ctx = { env, processEnv, log };
  let label: string = LATEST_VERSION;
  try {
    label = requestedVersion(JSON.parse(stdin)) ?? LATEST_VERSION;
  } catch {
    // not JSON: parseNetConf says so below
  }
  try {
    if (env.command === 'VERSION') return { stdout: cmdVersion(stdin), exitCode: 0 };
    if (!['ADD', 'DEL', 'CHECK', 'STATUS', 'GC'].includes(env.command)) {
      throw new CniError(CniCode.InvalidEnvironment, `unknown CNI_COMMAND ${JSON.stringify(env.command)}`);
    }
    const conf = parseNetConf(stdin);
    let stdout: string;
    switch (env.command) {
      case 'ADD':
        stdout = await cmdAdd(ctx, conf);
        break;
      case 'DEL':
        stdout = await cmdDel(ctx, conf);
        break;
      case 'CHECK':
        stdout = await cmdCheck(ctx, conf);
        break;
      case 'STATUS':
        stdout = cmdStatus(conf);
        break;
      default:
        stdout = await cmdGc(ctx, conf);
    }
    return { stdout, exitCode: 0 };
  } catch (e) {
    const err = e instanceof CniError ? e : new CniError(CniCode.IoFailure, e instanceof Error ? e.message : String(e));
    log.debug({ command: env.command, code: err.code, msg: err.message }, 'weft-cni: failed');
    return { stdout: JSON.stringify(err.toJSON(label)), exitCode: 1 };
  }
}
