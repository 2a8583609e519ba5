// Interop with a real WireGuard peer: Debian's wireguard-go (0.0.20220316) on one namespace host, and on the other
// a test-only endpoint made of weft's handshake (src/wireguard) and C transport calls over a dgram socket
// (test/helpers/wg-endpoint.ts, a child program driven over stdin/stdout):
//
//   h1 (w<id>-h1): wireguard-go -f w<id>wg1, TUN 10.77.0.1/24 mtu 1420, UDP 51820 on eth0 198.18.<id>.1
//                  wg set: peer <weft public key> allowed-ips 10.77.0.2/32 endpoint 198.18.<id>.2:51820
//   h2 (w<id>-h2): node test/helpers/wg-endpoint.ts, UDP 198.18.<id>.2:51820, holds 10.77.0.2 itself (no TUN):
//                  answers echo requests, sends echo requests to 10.77.0.1 (which h1's kernel answers)
//
// Shows: the handshake started by wireguard-go (ping from h1) and by weft; ICMP echo carried both ways in transport
// data; keepalives both ways; a rekey started by weft (REKEY_AFTER_TIME shortened on the weft side only); a cookie
// reply when weft is forced under load, after which wireguard-go's retry carries mac2 and is accepted.
// Cleanup (also on failure): the testbed's namespaces and processes, the wireguard-go UAPI socket
// /var/run/wireguard/<dev>.sock, /var/run/wireguard when this test made it, the key folder.
import t from 'tap';
import type { ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { createTestbed, type Host, type Testbed } from '../testbed/hosts.js';
import { killChild } from '../testbed/exec.js';
import { ping } from '../testbed/traffic.js';
import { ensurePeerInstalled, linkExists, must, tailOutput, waitFor } from '../bench/suite/peers/common.js';
import { wgDevice, wgSetPeer } from '../bench/suite/peers/wireguard-go.js';
import { PrivateKey, type Timing } from '../src/wireguard/index.js';
import { sleep } from './helpers/wait.js';
import { wireguardGoFiles } from './helpers/wireguard-go-files.js';

const PORT = 51820;
const ENDPOINT_PROGRAM = new URL('./helpers/wg-endpoint.ts', import.meta.url).pathname;
// tap runs this file with its TypeScript loader; the child program needs it too.
const LOADER = process.execArgv.filter((a) => a.includes('typescript'));

t.setTimeout(240_000);

type Ev = { ev: string } & Record<string, unknown>;
interface Stats {
  device: Record<string, number>;
  transport: Record<string, number>;
  current: { localIndex: number; isInitiator: boolean } | null;
}

/** The weft endpoint child: commands in, events out. */
class WeftEndpoint {
  readonly events: Ev[] = [];
  #waiters: { pred: (e: Ev) => boolean; resolve: (e: Ev) => void }[] = [];
  readonly out: () => string;

  private constructor(readonly child: ChildProcess) {
    this.out = tailOutput(child);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      let e: Ev;
      try {
        e = JSON.parse(line) as Ev;
      } catch {
        return;
      }
      this.events.push(e);
      this.#waiters = this.#waiters.filter((w) => (w.pred(e) ? (w.resolve(e), false) : true));
    });
  }

  static async start(
    tb: Testbed,
    host: Host,
    cfg: {
      privateKey: PrivateKey;
      peer: string;
      endpoint: string | null;
      persistentKeepalive?: number;
      timing?: Partial<Timing>;
    },
  ): Promise<WeftEndpoint> {
    const child = tb.spawn(host, [process.execPath, ...LOADER, ENDPOINT_PROGRAM], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const e = new WeftEndpoint(child);
    const ready = e.next((x) => x.ev === 'ready', 20_000);
    child.stdin!.write(
      JSON.stringify({
        privateKey: cfg.privateKey.exportBase64(), // over the pipe, never argv
        peer: cfg.peer,
        bind: `${host.ip}:${PORT}`,
        endpoint: cfg.endpoint,
        persistentKeepalive: cfg.persistentKeepalive ?? 0,
        timing: cfg.timing,
      }) + '\n',
    );
    await ready;
    return e;
  }

  cmd(o: object): void {
    this.child.stdin!.write(JSON.stringify(o) + '\n');
  }

  /** The next event matching pred (or one already received after `since`), within ms. */
  next(pred: (e: Ev) => boolean, ms = 10_000, since = this.events.length): Promise<Ev> {
    const seen = this.events.slice(since).find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no matching event within ${ms} ms: ${this.out()}`)), ms);
      this.#waiters.push({
        pred,
        resolve: (e) => {
          clearTimeout(timer);
          resolve(e);
        },
      });
    });
  }

  async stats(): Promise<Stats> {
    const since = this.events.length;
    this.cmd({ cmd: 'stats' });
    return (await this.next((e) => e.ev === 'stats', 5_000, since)) as never;
  }

  /** Send echo requests seq.. one at a time; resolves with the sequence numbers answered. */
  async pings(seqs: number[], gapMs = 0): Promise<number[]> {
    const got: number[] = [];
    for (const seq of seqs) {
      const since = this.events.length;
      this.cmd({ cmd: 'ping', seq });
      const sent = await this.next((e) => e.ev === 'sent' && e['seq'] === seq, 5_000, since);
      if (sent['ok'] === true) {
        try {
          await this.next((e) => e.ev === 'reply' && e['seq'] === seq, 3_000, since);
          got.push(seq);
        } catch {
          // lost: the caller counts
        }
      }
      if (gapMs) await sleep(gapMs);
    }
    return got;
  }

  async stop(): Promise<void> {
    this.child.stdin!.end();
    await killChild(this.child, 3_000);
  }
}

async function wgShow(tb: Testbed, h: Host, dev: string, what: string): Promise<string[]> {
  return (await must(tb, h, ['wg', 'show', dev, what])).trim().split('\t');
}

t.test('weft WireGuard against Debian wireguard-go', async (t) => {
  try {
    t.comment(await ensurePeerInstalled('wireguard-go'));
  } catch (e) {
    t.fail(`wireguard-go could not be installed: ${(e as Error).message}`);
    return;
  }
  const tb = await createTestbed({ hosts: 2 });
  const [h1, h2] = [tb.host(1), tb.host(2)];
  const dev = wgDevice(tb.id, 1);
  const { dir, sock, removeFiles } = wireguardGoFiles(dev, 'wg-interop');
  t.teardown(async () => {
    await tb.destroy();
    removeFiles();
  });

  // wireguard-go's side: its key from wg genkey, TUN with address, the weft endpoint as its peer.
  const wgPriv = (await must(tb, h1, ['wg', 'genkey'])).trim();
  const wgPub = (await must(tb, h1, ['wg', 'pubkey'], wgPriv + '\n')).trim();
  const keyFile = join(dir, 'h1.key');
  writeFileSync(keyFile, wgPriv + '\n', { mode: 0o600 });
  const weftKey = PrivateKey.generate();
  const weftPub = weftKey.publicKey.toString();
  const wg = tb.spawn(h1, ['wireguard-go', '-f', dev], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, LOG_LEVEL: 'verbose' },
  });
  const wgOut = tailOutput(wg);
  await waitFor('wireguard-go', wg, wgOut, async () => existsSync(sock) && (await linkExists(tb, h1, dev)));
  await must(tb, h1, ['ip', 'addr', 'add', '10.77.0.1/24', 'dev', dev]);
  await must(tb, h1, ['ip', 'link', 'set', dev, 'mtu', '1420', 'up']);
  const configurePeer = (): Promise<string> =>
    wgSetPeer(tb, h1, dev, keyFile, { publicKey: weftPub, allowedIps: '10.77.0.2/32', endpoint: `${h2.ip}:${PORT}` });
  await configurePeer();

  await t.test('handshake started by wireguard-go: ping from h1 answered by weft', async (t) => {
    const e = await WeftEndpoint.start(tb, h2, { privateKey: weftKey, peer: wgPub, endpoint: null });
    t.teardown(() => e.stop());
    const r = await ping(h1, '10.77.0.2', { count: 3, timeoutSec: 3 });
    t.ok(r.ok, `ping 10.77.0.2 from h1: ${r.received}/${r.transmitted}`);
    const s = await e.stats();
    t.ok(s.device['rx_initiation']! >= 1, 'weft consumed an initiation');
    t.ok(s.device['responses_sent']! >= 1, 'and answered it');
    t.equal(s.current?.isInitiator, false, 'weft holds the keypair as responder');
    t.equal(e.events.filter((x) => x.ev === 'request' && x['answered'] === true).length, 3, '3 echo requests answered');
    t.equal(s.transport['wg_bad_tag'], 0, 'no authentication failure');
    t.ok(Number((await wgShow(tb, h1, dev, 'latest-handshakes'))[1]) > 0, 'wg show: a handshake');
  });

  await t.test('handshake started by weft: echo requests to 10.77.0.1 answered by h1, rekey, keepalives', async (t) => {
    const e = await WeftEndpoint.start(tb, h2, {
      privateKey: weftKey,
      peer: wgPub,
      endpoint: `${h1.ip}:${PORT}`,
      persistentKeepalive: 1,
      // Shortened on the weft side only, to see a rekey within the test; > REKEY_TIMEOUT so it is not rate limited.
      timing: { rekeyAfterTimeMs: 7_000 },
    });
    t.teardown(() => e.stop());
    e.cmd({ cmd: 'initiate' });
    const hs = await e.next((x) => x.ev === 'handshake');
    t.equal(hs['verdict'], 'response', "wireguard-go's response authenticated");
    const first = (await e.stats()).current;
    t.equal(first?.isInitiator, true);
    t.same(await e.pings([1, 2, 3]), [1, 2, 3], 'echo replies from h1 through wireguard-go');

    // Rekey: pings once a second until past REKEY_AFTER_TIME; the keypair changes, no ping is lost.
    const seqs = Array.from({ length: 9 }, (_, i) => 10 + i);
    const answered = await e.pings(seqs, 1000);
    const s = await e.stats();
    t.same(answered, seqs, 'every echo request answered across the rekey');
    t.ok(s.device['initiations_sent']! >= 2, `weft started a new handshake (${s.device['initiations_sent']})`);
    t.ok(s.device['handshakes_completed']! >= 2, 'and completed it');
    t.not(s.current?.localIndex, first?.localIndex, 'a new current keypair');

    // Persistent keepalives while idle, one side at a time (any authenticated packet, a keepalive from the other
    // side too, pushes them back): weft's every second towards wireguard-go (32 bytes each in its rx count) ...
    const idle = async (): Promise<{ s0: Stats; s1: Stats; rx: number }> => {
      const rx0 = Number((await wgShow(tb, h1, dev, 'transfer'))[1]);
      const s0 = await e.stats();
      await sleep(3_500);
      const s1 = await e.stats();
      return { s0, s1, rx: Number((await wgShow(tb, h1, dev, 'transfer'))[1]) - rx0 };
    };
    const ours = await idle();
    const sent = ours.s1.device['keepalives_sent']! - ours.s0.device['keepalives_sent']!;
    t.ok(sent >= 2, `weft sent ${sent} keepalives in 3.5 idle seconds`);
    t.ok(ours.rx >= 32 * 2, `wireguard-go authenticated them (${ours.rx} bytes counted)`);
    // ... and wireguard-go's towards weft.
    e.cmd({ cmd: 'persistentKeepalive', seconds: 0 });
    await must(tb, h1, ['wg', 'set', dev, 'peer', weftPub, 'persistent-keepalive', '1']);
    const theirs = await idle();
    await must(tb, h1, ['wg', 'set', dev, 'peer', weftPub, 'persistent-keepalive', '0']);
    const got = theirs.s1.transport['wg_keepalives_rx']! - theirs.s0.transport['wg_keepalives_rx']!;
    t.ok(got >= 2, `weft opened ${got} keepalives from wireguard-go`);
    const s1 = theirs.s1;
    t.equal(s1.transport['wg_bad_tag'], 0);
    t.equal(s1.transport['wg_replay'], 0);
  });

  await t.test('cookie reply when weft is under load; the retry with mac2 is accepted', async (t) => {
    // A fresh peer entry in wireguard-go forgets its keypairs, so the next ping needs a handshake.
    await must(tb, h1, ['wg', 'set', dev, 'peer', weftPub, 'remove']);
    await configurePeer();
    const e = await WeftEndpoint.start(tb, h2, { privateKey: weftKey, peer: wgPub, endpoint: null });
    t.teardown(() => e.stop());
    e.cmd({ cmd: 'underLoad', on: true });
    // One echo request, waited for up to 12 s (testbed's ping() counts every probe sent until its deadline).
    const r = await tb.exec(h1, ['ping', '-n', '-c', '1', '-W', '12', '10.77.0.2'], { timeoutMs: 20_000 });
    t.equal(r.code, 0, `the echo request staged by wireguard-go went through once the handshake completed`);
    if (r.code !== 0) t.comment(JSON.stringify(e.events), r.stdout, wgOut());
    const s = await e.stats();
    t.ok(
      s.device['cookie_replies_sent']! >= 1,
      `weft answered with a cookie reply (${s.device['cookie_replies_sent']})`,
    );
    t.ok(s.device['rx_initiation']! >= 1, 'then accepted an initiation carrying a valid mac2');
    const verdicts = e.events.filter((x) => x.ev === 'handshake').map((x) => x['verdict']);
    t.equal(verdicts[0], 'cookie_sent', `first initiation: cookie (${verdicts.join(', ')})`);
    t.ok(verdicts.includes('initiation'));
  });

  t.equal(wg.exitCode, null, `wireguard-go still running: ${wgOut()}`);
});
