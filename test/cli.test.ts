// The command line as a user meets it (the built CLI, run as a process): exit codes as README states them (0 done,
// 1 failed, 2 what was typed is wrong), errors as one line that names where a bad value came from (the flag, the
// variable, the --config file and key) and says what to do. Nothing here needs root or a running etcd: etcd is
// asked for at a loopback port where nothing listens.
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { WEFT_CLI } from '../testbed/cluster.js';
import { tempDir } from './helpers/tmp.js';

const NO_ETCD = '--etcd-endpoints=http://127.0.0.1:1';

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

function weft(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [WEFT_CLI, ...args],
      // No WEFT_/FLANNELD_ variables from the caller's environment: each case sets its own.
      { env: { PATH: process.env['PATH'], ...env }, timeout: 30_000 },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : null;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
  });
}

/** One line on stderr, "weft: ..." (no usage text, no stack). */
function oneLine(t: Test, r: Ran, re: RegExp, what: string): void {
  const lines = r.stderr.trimEnd().split('\n');
  t.equal(lines.length, 1, `${what}: one line (${JSON.stringify(r.stderr.slice(0, 300))})`);
  t.match(lines[0], /^weft: /, `${what}: starts with "weft: "`);
  t.match(lines[0], re, what);
}

t.test('what was typed is wrong: exit 2, one line with a hint', async (t) => {
  const flag = await weft(['leases', '--bogus']);
  t.equal(flag.code, 2, 'an unknown flag exits 2');
  oneLine(t, flag, /unknown option '--bogus'; see weft leases --help$/, 'unknown flag');
  const typo = await weft(['leases', '--jsn']);
  oneLine(t, typo, /\(Did you mean --json\?\)/, 'a near miss is named');
  const cmd = await weft(['frobnicate']);
  t.equal(cmd.code, 2, 'an unknown command exits 2');
  oneLine(t, cmd, /unknown command 'frobnicate'; see weft --help$/, 'unknown command');
  const missing = await weft(['network', 'set']);
  t.equal(missing.code, 2, 'a missing argument exits 2');
  oneLine(t, missing, /missing required argument .*; see weft network set --help$/, 'missing argument');
  const none = await weft([]);
  t.equal(none.code, 2, 'no command: the help, exit 2');
  t.match(none.stderr, /^Usage: weft /);
});

t.test('a bad value names its source: flag, variable, --config file and key; exit 2', async (t) => {
  const flag = await weft(['daemon', '--tier=fast']);
  t.equal(flag.code, 2);
  oneLine(t, flag, /^weft: --tier="fast": /, 'from a flag');
  const env = await weft(['daemon'], { WEFT_TIER: 'fast' });
  t.equal(env.code, 2);
  oneLine(t, env, /^weft: WEFT_TIER="fast": /, 'from a variable, which the message names (not --tier)');
  const flannel = await weft(['daemon'], { FLANNELD_SUBNET_LEASE_TTL: 'abc' });
  t.equal(flannel.code, 2);
  oneLine(t, flannel, /^weft: FLANNELD_SUBNET_LEASE_TTL: expected an integer, got "abc"$/, "from flannel's name");
  const file = join(tempDir(t, 'cli'), 'daemon.json');
  writeFileSync(file, JSON.stringify({ 'etcd-prefix': '/coreos.com/network', tier: 'fast' }));
  const fromFile = await weft(['daemon', `--config=${file}`]);
  t.equal(fromFile.code, 2);
  oneLine(t, fromFile, new RegExp(`^weft: --config ${file}: tier="fast": `), 'from a file key');
  writeFileSync(file, JSON.stringify({ 'log-level': 'loud' }));
  const flagWins = await weft(['leases', `--config=${file}`, '--log-level=warn', NO_ETCD]);
  t.equal(flagWins.code, 1, 'a flag overrides the bad file value: only etcd is missing (exit 1)');
});

t.test('network set refuses what a daemon refuses: exit 2, the daemon line', async (t) => {
  const port = await weft(['network', 'set', '{"Network":"10.5.0.0/16","Backend":{"Port":70000}}', NO_ETCD]);
  t.equal(port.code, 2, 'refused before etcd is asked');
  oneLine(t, port, /^weft: network config: Backend\.Port 70000: not a UDP port$/, 'Backend.Port');
  const type = await weft(['network', 'set', '{"Network":"10.5.0.0/16","Backend":{"Type":"nope"}}', NO_ETCD]);
  t.equal(type.code, 2);
  oneLine(t, type, /Backend\.Type "nope": no such backend/, 'Backend.Type');
});

t.test('etcd not there: exit 1, one line that says what to do', async (t) => {
  for (const args of [['leases'], ['network', 'get'], ['network', 'set', '{"Network":"10.5.0.0/16"}']]) {
    const r = await weft([...args, NO_ETCD]);
    t.equal(r.code, 1, `weft ${args[0]} ${args[1] ?? ''}: exit 1`);
    oneLine(t, r, /ECONNREFUSED 127\.0\.0\.1:1: is etcd running there\? Point --etcd-endpoints/, args.join(' '));
    t.notMatch(r.stderr, /Resolution note|UNAVAILABLE/, 'no gRPC leftovers');
  }
});

t.test('help and version: exit 0 on stdout', async (t) => {
  const version = await weft(['--version']);
  t.equal(version.code, 0);
  t.match(version.stdout, /^\d+\.\d+\.\d+\n$/);
  const help = await weft(['daemon', '--help']);
  t.equal(help.code, 0);
  for (const flag of ['--config', '--encap-module', '--log-level'])
    t.match(help.stdout, flag, `daemon --help lists ${flag}`);
  t.match(
    help.stdout.replace(/\s+/g, ' '),
    /trace \| debug \| info \| warn \| error \| fatal \| silent/,
    'every log level',
  );
});
