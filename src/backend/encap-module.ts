// Encaps written outside weft (`--encap-module`): an ES module whose default export is an Encap, registered under
// its name so the network config's Backend.Type can name it. The daemon loads it before it reads the network
// config, and so does `weft network set --encap-module`, so both know the type. Loading runs the module's code and
// nothing else: no device, no addon.
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { WeftError, errorMessage } from '../errors.js';
import type { Encap } from '../encap/encap.js';
import { encapByName, registerEncap } from '../encap/index.js';

/** Paths already loaded, so a second call (or both loaders) registers once. */
const loadedModules = new Map<string, Encap>();

/**
 * Loads a TypeScript-written (compiled to JS) encap: an ES module whose default export (or export named `encap`) is
 * an Encap object. It is registered under its `name`, which the network config's Backend.Type then names. The
 * batch and dgram tiers call its encode/decode per packet (nativeId must be null: there is no C twin).
 */
export async function loadEncapModule(path: string): Promise<Encap> {
  const abs = absolute(path);
  const have = loadedModules.get(abs);
  if (have) return have;
  let mod: unknown;
  try {
    mod = await import(pathToFileURL(abs).href);
  } catch (e) {
    throw new WeftError('WEFT_ERR_BACKEND', `--encap-module ${path}: cannot load: ${errorMessage(e)}`, { cause: e });
  }
  return registerModule(path, abs, mod);
}

function absolute(path: string): string {
  return isAbsolute(path) ? path : resolve(process.cwd(), path);
}

function registerModule(path: string, abs: string, mod: unknown): Encap {
  const m = (typeof mod === 'object' && mod !== null ? mod : {}) as Record<string, unknown>;
  const candidate = m['default'] ?? m['encap'];
  const why = encapProblem(candidate);
  if (why !== null) throw new WeftError('WEFT_ERR_BACKEND', `--encap-module ${path}: ${why}`);
  const encap = candidate as Encap;
  const taken = encapByName(encap.name);
  if (taken !== undefined && ![...loadedModules.values()].includes(taken)) {
    throw new WeftError(
      'WEFT_ERR_BACKEND',
      `--encap-module ${path}: name "${encap.name}" is taken by a built-in encap`,
    );
  }
  registerEncap(encap);
  loadedModules.set(abs, encap);
  return encap;
}

/** Checks the shape of a loaded encap; a string says what is wrong. */
export function encapProblem(e: unknown): string | null {
  if (typeof e !== 'object' || e === null) return 'exports no encap (export default { name, backendType, ... })';
  const o = e as Record<string, unknown>;
  for (const k of ['name', 'backendType'] as const) {
    if (typeof o[k] !== 'string' || !/^[A-Za-z0-9_.-]{1,64}$/.test(o[k] as string)) return `${k} must be a short name`;
  }
  for (const k of ['defaultPort', 'headerLength', 'mtuOverhead'] as const) {
    if (typeof o[k] !== 'number' || !Number.isInteger(o[k])) return `${k} must be an integer`;
  }
  const port = o['defaultPort'] as number;
  if (port < 1 || port > 65535) return 'defaultPort must be a UDP port';
  const hdr = o['headerLength'] as number;
  // The forwarder's headroom (native HEADROOM, 64) holds the header; keep to what the built-ins need at most.
  if (hdr < 0 || hdr > 64) return 'headerLength must be 0..64';
  if ((o['mtuOverhead'] as number) < hdr) return 'mtuOverhead must cover headerLength';
  if (o['nativeId'] !== null) return 'nativeId must be null (a module encap has no C twin)';
  for (const k of ['leaseData', 'parsePeer', 'encode', 'decode'] as const) {
    if (typeof o[k] !== 'function') return `${k} must be a function`;
  }
  return null;
}
