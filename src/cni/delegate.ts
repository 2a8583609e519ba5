// Running a delegate plugin as a CNI runtime would (libcni's invoke.Delegate*): the executable named by the
// config's `type`, found in CNI_PATH, with our CNI_* environment (CNI_COMMAND set to the verb) and the delegate
// config on stdin. Its stdout is the result, or on failure the spec's error object, passed on as it is.
import { spawn } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { join } from 'node:path';
import { CniCode, CniError } from './spec.js';

/** A delegate that neither finishes nor fails within this is killed (a runtime would time out the pod anyway). */
export const DELEGATE_TIMEOUT_MS = 60_000;
const MAX_OUTPUT = 1 << 20;

/** The first executable file `name` in the colon-separated CNI_PATH; CniError when there is none. */
export function findPlugin(name: string, cniPath: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(name)) {
    throw new CniError(CniCode.InvalidNetworkConfig, `plugin type ${JSON.stringify(name)} is not a file name`);
  }
  for (const dir of cniPath.split(':')) {
    if (dir === '') continue;
    const p = join(dir, name);
    try {
      if (!statSync(p).isFile()) continue;
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  throw new CniError(CniCode.InvalidEnvironment, `failed to find plugin "${name}" in path [${cniPath}]`);
}

export interface DelegateOptions {
  command: 'ADD' | 'DEL' | 'CHECK' | 'VERSION';
  /** The environment to pass: ours, with overrides (GC sets another container's ID and interface). */
  env: NodeJS.ProcessEnv;
  cniPath: string;
  timeoutMs?: number;
}

function delegateError(type: string, command: string, stdout: string, stderr: string, exit: string): CniError {
  try {
    const o = JSON.parse(stdout) as unknown;
    if (typeof o === 'object' && o !== null) {
      const e = o as Record<string, unknown>;
      if (typeof e.code === 'number' && typeof e.msg === 'string') {
        return new CniError(e.code, e.msg, typeof e.details === 'string' ? e.details : '');
      }
    }
  } catch {
    // not the spec's error object: report what we have
  }
  const text = (stdout + '\n' + stderr).trim().slice(-500);
  return new CniError(CniCode.IoFailure, `delegate ${type} ${command} failed (${exit})`, text);
}

/** Runs the delegate; resolves with its stdout (may be empty: DEL, CHECK), rejects with a CniError. */
export function execDelegate(type: string, stdin: string, opts: DelegateOptions): Promise<string> {
  const path = findPlugin(type, opts.cniPath);
  const env: NodeJS.ProcessEnv = { ...opts.env, CNI_COMMAND: opts.command, CNI_PATH: opts.cniPath };
  for (const k of Object.keys(env)) if (env[k] === undefined) delete env[k];
  return new Promise((resolve, reject) => {
    const child = spawn(path, [], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? DELEGATE_TIMEOUT_MS);
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      if (stdout.length < MAX_OUTPUT) stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr = (stderr + d).slice(-4096);
    });
    child.stdin.on('error', () => undefined); // a delegate that exits without reading stdin
    child.stdin.end(stdin);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(new CniError(CniCode.IoFailure, `cannot run delegate ${path}`, e.message));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(stdout);
      else
        reject(
          delegateError(type, opts.command, stdout, stderr, signal !== null ? `signal ${signal}` : `exit ${code}`),
        );
    });
  });
}

/** The delegate's VERSION answer: the versions it accepts; [] when it does not say. */
export async function delegateVersions(
  type: string,
  cniVersion: string,
  opts: Omit<DelegateOptions, 'command'>,
): Promise<string[]> {
  const out = await execDelegate(type, JSON.stringify({ cniVersion }), { ...opts, command: 'VERSION' });
  try {
    const o = JSON.parse(out) as { supportedVersions?: unknown };
    return Array.isArray(o.supportedVersions)
      ? o.supportedVersions.filter((v): v is string => typeof v === 'string')
      : [];
  } catch {
    return [];
  }
}
