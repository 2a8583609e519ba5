#!/usr/bin/env -S node --max-semi-space-size=1 --v8-pool-size=1 --heap-growing-percent=50 --no-opt --no-sparkplug
// weft's command line. Each command parses its flags, resolves configuration and hands over to one module; errors
// end as one clear line on stderr and a non-zero exit, never a stack trace.
// The shebang's --max-semi-space-size=1 caps V8's young generation at 1 MiB per semi-space (16 by default): an idle
// daemon's RSS falls by about 13 MB (91 -> 78 MB, batch tier, 3 hosts); run node with it when not using the bin.
// --v8-pool-size=1: one V8 background thread instead of four (background compiles and GC helpers; the daemon's heap
// is small): 3-5 MB less anonymous RSS per idle daemon (79.6-82.9 -> 75.5-78.2 MB, batch tier, 3 hosts).
// --heap-growing-percent=50: V8 lets the old space grow to 1.5x what the last full GC left before the next one (it
// picks 1.1x to 4x from its GC and allocation speeds). A burst of leases promotes its garbage (the young generation
// is small): at 5,000 peers a daemon held 78 MB of heap for 30 MB of live objects, 146 MB RSS; with the flag 94 MB,
// the same CPU to absorb the burst (weft scale, bench/README.md). The forwarding path allocates nothing per packet.
// --no-opt --no-sparkplug: no TurboFan and no baseline code while starting (src/start-tiering.ts); each command
// turns them on before its work, the daemon once subnet.env is written: ~7 MB less RSS per idle daemon.
import { Command, CommanderError, Option } from 'commander';
import { DAEMON_OPTIONS } from '../config/daemon.js';
import { ConfigError, errorMessage, isWeftError } from '../errors.js';
import { VERSION } from '../package-root.js';
import { optimizeFromNowOn } from '../start-tiering.js';
import { addToolCommands } from './tools.js';

function addDaemonOptions(cmd: Command, only?: readonly string[]): Command {
  for (const spec of DAEMON_OPTIONS) {
    if (only && !only.includes(spec.flag)) continue;
    const arg = spec.kind === 'bool' ? `--${spec.flag} [bool]` : `--${spec.flag} <value>`;
    const fallback = spec.fallback === undefined ? '' : ` (default: ${String(spec.fallback)})`;
    const opt = new Option(arg, spec.describe + fallback);
    cmd.addOption(opt);
  }
  return cmd.option('--config <file>', 'JSON file with any of these options (keys as flag names)');
}

// Commander gives `true` for a bare boolean flag; the resolver coerces strings, so keep the user's words.
function givenFlags(cmd: Command): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(cmd.opts())) {
    if (v === undefined) continue;
    out[k] = v === true ? 'true' : v;
  }
  return out;
}

const ETCD_FLAGS = [
  'etcd-endpoints',
  'etcd-prefix',
  'etcd-cafile',
  'etcd-certfile',
  'etcd-keyfile',
  'etcd-username',
  'etcd-password',
  'log-level',
];

async function main(argv: string[]): Promise<void> {
  const program = new Command('weft')
    .description('userspace overlay network for container hosts, flannel-compatible')
    .version(VERSION)
    // Commander's error text becomes one line of ours (usageErrors); it prints nothing itself.
    .configureOutput({ outputError: () => undefined });
  const daemon = addDaemonCommand(program);
  program.hook('preAction', (_program, action) => {
    if (action !== daemon) optimizeFromNowOn();
  });
  addEtcdCommands(program);
  addStatusCommand(program);
  addToolCommands(program);
  usageErrors(program, 'weft');
  await program.parseAsync(argv);
}

/** Exits that Commander has already printed for: help (asked for, or a command group without its command), version. */
const PRINTED = new Set(['commander.helpDisplayed', 'commander.help', 'commander.version']);

/**
 * A usage error (unknown command or option, missing argument or value) of `cmd` or its subcommands ends as one line
 * naming the command's help, and exit 2, as an invalid value does (a ConfigError in main's catch).
 */
function usageErrors(cmd: Command, path: string): void {
  cmd.exitOverride((err) => {
    if (PRINTED.has(err.code)) throw err;
    const what = err.message.replace(/^error: /, '').replace(/\s*\n\s*/g, ' ');
    throw new ConfigError(`${what}; see ${path} --help`, { cause: err });
  });
  for (const sub of cmd.commands) usageErrors(sub, `${path} ${sub.name()}`);
}

function addDaemonCommand(program: Command): Command {
  return addDaemonOptions(
    program.command('daemon').description('run on every host: lease a subnet, forward packets'),
  ).action(async (_o, cmd: Command) => {
    const { runDaemon } = await import('../daemon.js');
    await runDaemon(givenFlags(cmd));
  });
}

/** The commands that read or write etcd: leases, network get|set. */
function addEtcdCommands(program: Command): void {
  addDaemonOptions(program.command('leases').description('list the subnet leases in etcd'), ETCD_FLAGS)
    .option('--json', 'print JSON instead of a table')
    .action(async (_o, cmd: Command) => {
      const { printLeases } = await import('./leases.js');
      const flags = givenFlags(cmd);
      const json = flags['json'] !== undefined;
      delete flags['json'];
      await printLeases(flags, json);
    });

  const network = program.command('network').description('read or write the network config (<prefix>/config)');
  addDaemonOptions(network.command('get').description('print the network config'), ETCD_FLAGS).action(
    async (_o, cmd: Command) => {
      const { getNetwork } = await import('./network.js');
      await getNetwork(givenFlags(cmd));
    },
  );
  addDaemonOptions(
    network
      .command('set')
      .description('validate and write the network config')
      .argument('<json|@file>', 'the config JSON, or @path'),
    [...ETCD_FLAGS, 'encap-module'],
  ).action(async (value: string, _o, cmd: Command) => {
    const { setNetwork } = await import('./network.js');
    await setNetwork(givenFlags(cmd), value);
  });
}

function addStatusCommand(program: Command): void {
  program
    .command('status')
    .description('ask a running daemon (its --healthz-port) for lease, tier, encap, peers and counters')
    .requiredOption('--healthz-port <port>', "the daemon's --healthz-port")
    .option('--healthz-ip <ip>', "the daemon's --healthz-ip", '127.0.0.1')
    .option('--json', 'print the JSON document')
    .option('--all', 'show zero counters too')
    .action(async (o: { healthzPort: string; healthzIp: string; json?: boolean; all?: boolean }) => {
      const { printStatus } = await import('./status.js');
      const port = Number(o.healthzPort);
      if (!Number.isInteger(port) || port < 1 || port > 65535) {
        throw new ConfigError(`--healthz-port=${JSON.stringify(o.healthzPort)}: expected a port 1..65535`);
      }
      await printStatus({ healthzIp: o.healthzIp, healthzPort: port, json: o.json === true, all: o.all === true });
    });
}

main(process.argv).then(
  // Every command has finished its work and cleanup here; a client library's stray timer (seen with gRPC and a
  // DNS-named etcd endpoint in containers) must not keep a one-shot command alive.
  () => process.exit(),
  (e: unknown) => {
    // Help or version, printed already: 0 when asked for, 2 when a command was missing.
    if (e instanceof CommanderError) process.exit(e.exitCode === 0 ? 0 : 2);
    // Expected failures (bad config, etcd down, exhausted network) are one line; anything else keeps its stack.
    process.stderr.write(
      `weft: ${isWeftError(e) ? e.message : e instanceof Error ? (e.stack ?? e.message) : errorMessage(e)}\n`,
    );
    process.exit(isWeftError(e) && e.code === 'WEFT_ERR_CONFIG' ? 2 : 1);
  },
);
