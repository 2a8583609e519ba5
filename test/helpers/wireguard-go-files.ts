// The files a test running wireguard-go makes: a scratch folder (keys, PSK) and the device's UAPI socket, which
// Debian's wireguard-go always puts in /var/run/wireguard/<dev>.sock. removeFiles() (also run at process exit, should
// the run die before the test's teardown) takes away exactly the socket, the socket folder when this test made it and
// nothing else is in it, and the scratch folder. Call it once the processes are gone: a SIGKILLed wireguard-go leaves
// its socket behind.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onCleanup } from '../../bench/suite/peers/common.js';
import { WG_SOCKET_DIR } from '../../bench/suite/peers/wireguard-go.js';

export function wireguardGoFiles(dev: string, name: string): { dir: string; sock: string; removeFiles: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `weft-${name}-`));
  const sock = join(WG_SOCKET_DIR, `${dev}.sock`);
  const madeSocketDir = !existsSync(WG_SOCKET_DIR);
  if (madeSocketDir) mkdirSync(WG_SOCKET_DIR, { recursive: true, mode: 0o700 });
  const removeFiles = onCleanup(() => {
    rmSync(sock, { force: true });
    if (madeSocketDir && existsSync(WG_SOCKET_DIR) && readdirSync(WG_SOCKET_DIR).length === 0) {
      rmdirSync(WG_SOCKET_DIR);
    }
    rmSync(dir, { recursive: true, force: true });
  });
  return { dir, sock, removeFiles };
}
