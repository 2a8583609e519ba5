// The host's WireGuard private key, in flannel's key file (pkg/backend/wireguard/device.go setupKeys):
// $WIREGUARD_KEY_FILE, else /run/flannel/wgkey; base64 of the 32 bytes as `wg genkey` writes it. When the file is
// missing a key is generated and the file created with mode 0400 (its folder 0755), so a weft host and a flannel
// host that share the path keep one identity across restarts and across a switch between the two daemons.
import { closeSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { WeftError, errorMessage } from '../errors.js';
import { PrivateKey } from '../wireguard/keys.js';

export const DEFAULT_KEY_FILE = '/run/flannel/wgkey';

export function keyFilePath(env: NodeJS.ProcessEnv = process.env): string {
  const p = env['WIREGUARD_KEY_FILE'];
  return p !== undefined ? p : DEFAULT_KEY_FILE;
}

function isMissing(e: unknown): boolean {
  return typeof e === 'object' && e !== null && (e as { code?: unknown }).code === 'ENOENT';
}

/** Reads the key, or creates the file with a new one. Errors name the file, never its content. Synchronous: the
 *  backend needs the public key for the lease before anything else runs, once at start. */
export function loadOrCreateKey(path: string): { key: PrivateKey; created: boolean } {
  let text: string | null = null;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if (!isMissing(e)) throw new WeftError('WEFT_ERR_BACKEND', `wireguard key file ${path}: ${errorMessage(e)}`);
  }
  if (text !== null) {
    const key = PrivateKey.fromBase64(text);
    if (!key) {
      throw new WeftError(
        'WEFT_ERR_BACKEND',
        `wireguard key file ${path}: not a WireGuard private key (base64 of 32 bytes, as \`wg genkey\` writes)`,
      );
    }
    return { key, created: false };
  }
  const key = PrivateKey.generate();
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
    // 'wx': a file that appeared meanwhile (another daemon starting) is not overwritten; read it instead.
    const fd = openSync(path, 'wx', 0o400);
    try {
      writeSync(fd, key.exportBase64() + '\n');
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    if ((e as { code?: unknown }).code === 'EEXIST') {
      key.destroy();
      return loadOrCreateKey(path);
    }
    throw new WeftError('WEFT_ERR_BACKEND', `wireguard key file ${path}: cannot create: ${errorMessage(e)}`);
  }
  return { key, created: true };
}
