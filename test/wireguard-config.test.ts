// Backend wireguard's options (flannel's names and defaults) and its key file, without a datapath.
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { checkNetworkConfig } from '../src/backend/config.js';
import { parseWireguardOptions } from '../src/config/wireguard-options.js';
import { NetworkConfigError, WeftError } from '../src/errors.js';
import { DEFAULT_KEY_FILE, keyFilePath, loadOrCreateKey } from '../src/backend/wireguard-key-file.js';
import { PrivateKey } from '../src/wireguard/keys.js';

const PSK = Buffer.alloc(32, 7).toString('base64');
const wg = (backend: Record<string, unknown>) =>
  checkNetworkConfig(JSON.stringify({ Network: '10.5.0.0/16', Backend: { Type: 'wireguard', ...backend } }));

t.test("flannel's defaults and names (case-insensitive, as Go decodes)", async (t) => {
  t.same(parseWireguardOptions({ Type: 'wireguard' }), {
    listenPort: 51820,
    listenPortV6: 51821,
    mtu: null,
    psk: null,
    persistentKeepaliveSeconds: 0,
    mode: 'separate',
  });
  const o = parseWireguardOptions({
    listenport: 4000,
    ListenPortV6: 4001,
    mtu: 9000,
    PSK,
    PersistentKeepaliveInterval: 25,
    Mode: 'auto',
  });
  t.same(o, {
    listenPort: 4000,
    listenPortV6: 4001,
    mtu: 9000,
    psk: PSK,
    persistentKeepaliveSeconds: 25,
    mode: 'auto',
  });
  t.equal(parseWireguardOptions({ MTU: 0 }).mtu, null, 'MTU 0 is unset');
  t.equal(wg({ ListenPort: 51000 }).backend['ListenPort'], 51000, 'the network config keeps the blob');
});

t.test('the network config check (daemon and network set) refuses bad options in one line', async (t) => {
  const kernel = t.throws(() =>
    checkNetworkConfig(JSON.stringify({ Network: '10.5.0.0/16', Backend: { Type: 'wireguard' } }), {
      datapath: 'kernel',
    }),
  ) as Error;
  t.match(kernel.message, /Backend\.Type "wireguard": no kernel datapath/);
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ ListenPort: 0 }, /Backend\.ListenPort 0: not a UDP port/],
    [{ ListenPort: 70000 }, /Backend\.ListenPort 70000/],
    [{ ListenPort: '51820' }, /Backend\.ListenPort "51820"/],
    [{ ListenPortV6: -1 }, /Backend\.ListenPortV6 -1/],
    [{ ListenPort: 5000, ListenPortV6: 5000 }, /ListenPortV6 5000: must differ/],
    [{ MTU: 600 }, /Backend\.MTU 600: must be at least 656/],
    [{ MTU: 1.5 }, /Backend\.MTU 1\.5/],
    [{ PersistentKeepaliveInterval: 70000 }, /PersistentKeepaliveInterval 70000/],
    [{ Mode: 'both' }, /Backend\.Mode "both": must be one of separate, auto, ipv4, ipv6/],
    [{ Mode: 'ipv6' }, /Backend\.Mode "ipv6": weft tunnels over IPv4 only/],
    [{ PSK: 'c2VjcmV0' }, /Backend\.PSK: not a WireGuard key/],
  ];
  for (const [backend, re] of cases) {
    const e = t.throws(() => wg(backend)) as Error;
    t.ok(e instanceof NetworkConfigError, JSON.stringify(backend));
    t.match(e.message, re);
    t.notOk(e.message.includes('\n'), 'one line');
  }
  const e = t.throws(() => wg({ PSK: 'not-a-key-but-a-secret' })) as Error;
  t.notOk(e.message.includes('not-a-key-but-a-secret'), 'a bad PSK is not echoed');
  const broken = `{"Network": "10.5.0.0/16", "Backend": {"Type": "wireguard", "psk": "${PSK}"`;
  const j = t.throws(() => checkNetworkConfig(broken)) as Error;
  t.match(j.message, /not valid JSON/);
  t.notOk(j.message.includes(PSK), 'nor is a PSK in a document that is not valid JSON');
});

t.test('key file: created 0400 when missing, read back, refused when not a key', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-wgkey-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  t.equal(keyFilePath({}), DEFAULT_KEY_FILE);
  t.equal(keyFilePath({ WIREGUARD_KEY_FILE: '/x/k' }), '/x/k');
  const path = join(dir, 'sub', 'wgkey');
  const first = loadOrCreateKey(path);
  t.equal(first.created, true);
  t.equal(statSync(path).mode & 0o777, 0o400);
  const text = readFileSync(path, 'utf8');
  t.match(text, /^[A-Za-z0-9+/]{43}=\n$/);
  const again = loadOrCreateKey(path);
  t.equal(again.created, false);
  t.ok(again.key.publicKey.equals(first.key.publicKey), 'the same key after a restart');
  const wgGenkey = join(dir, 'from-wg');
  const k = PrivateKey.generate();
  writeFileSync(wgGenkey, k.exportBase64() + '\n');
  t.ok(loadOrCreateKey(wgGenkey).key.publicKey.equals(k.publicKey), 'a key written by wg genkey is taken');
  const bad = join(dir, 'bad');
  writeFileSync(bad, 'secret-looking garbage');
  const e = t.throws(() => loadOrCreateKey(bad)) as Error;
  t.ok(e instanceof WeftError);
  t.match(e.message, /not a WireGuard private key/);
  t.notOk(e.message.includes('garbage'), 'the content is not echoed');
});
