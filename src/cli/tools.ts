// The commands that run weft's tools rather than a host's daemon: the demo (testbed/), the bench, the scale run and
// the soak (bench/). They live outside src/ and load only when their command runs, so a daemon never loads them.
// This file is the one place src/ points at the tools (checked by .dependency-cruiser.cjs).
import type { Command } from 'commander';

export function addToolCommands(program: Command): void {
  program
    .command('soak')
    .description('bounded soak: iperf3 at a capped rate between pods while peers join and leave; RSS and crashes')
    .option('--minutes <n>', 'how long', '10')
    .option('--hosts <n>', 'steady hosts (a churn host joins and leaves beside them)', '3')
    .option('--bitrate <rate>', 'iperf3 --bitrate cap per stream', '200M')
    .option('--encap <name>', 'udp | vxlan | geneve', 'udp')
    .action(async (o: { minutes: string; hosts: string; bitrate: string; encap: string }) => {
      const { runSoak } = await import('../../bench/soak/main.js');
      await runSoak({ minutes: Number(o.minutes), hosts: Number(o.hosts), bitrate: o.bitrate, encap: o.encap });
    });

  program
    .command('demo')
    .description('local etcd + three namespace hosts running weft: leases, ping matrix, throughput; cleans up after')
    .option('--tiers <list>', 'tiers to show: dgram, batch, offload', 'dgram,batch,offload')
    .option('--encap <name>', 'udp | vxlan | geneve', 'udp')
    .option('--seconds <n>', 'seconds per throughput run', '3')
    .option('--ipv6', 'instead: a dual-stack network on the kernel vxlan backend, leases and ping/ping6 matrices')
    .action(async (o: { tiers: string; encap: string; seconds: string; ipv6?: boolean }) => {
      if (o.ipv6 === true) {
        const { runDemoIPv6 } = await import('../../testbed/demo-ipv6.js');
        await runDemoIPv6();
        return;
      }
      const { runDemo } = await import('../../testbed/demo.js');
      await runDemo({ tiers: o.tiers.split(','), encap: o.encap, seconds: Number(o.seconds) });
    });

  program
    .command('bench')
    .description('benchmark every path (underlay, kernel VXLAN, host-gw, weft tiers x encaps) on fresh namespace hosts')
    .option('--quick', 'within 2 minutes: 1 repeat, short tests, paths underlay,kernel-vxlan,dgram/udp,batch/udp')
    .option('--only <paths>', 'comma list of paths, e.g. underlay,kernel-vxlan,batch/vxlan')
    .option('--repeats <n>', 'repeats of every test (default 5, --quick 1)')
    .option('--seconds <n>', 'seconds per test (default: fit the planned run into 30 minutes; --quick 2)')
    .option('--retries <n>', 'extra runs of a test with more than 5 % foreign CPU before it is marked disturbed (2)')
    .option(
      '--socket-buffers <equal|os>',
      "equal: every path's sockets get weft's 8 MiB buffers for the run (default); os: the machine's defaults",
    )
    .option('--round-trips <n>', 'ping-pong round trips per latency test (default 2000)')
    .option('--topology <pods|host>', 'pods: iperf3 in a pod behind cni0 (default); host: on the hosts themselves')
    .option('--out <dir>', 'output folder (default bench/results/<timestamp>)')
    .option('--json', 'print the result JSON to stdout')
    .option(
      '--profile',
      'perf CPU split per path (default: on without --quick when perf works; installs linux-perf when missing)',
    )
    .option('--no-profile', 'no perf CPU split')
    .option('--no-idle-memory', "skip the read of each path's idle daemon memory (it waits until the daemons settled)")
    .option('--peers', 'add wireguard-go, nebula and tinc (alone: kernel-vxlan, weft udp tiers and the peers)')
    .action(async (o: import('../../bench/suite/cli.js').BenchCliOptions) => {
      const { benchCommand } = await import('../../bench/suite/cli.js');
      await benchCommand(o);
    });

  program
    .command('scale')
    .description(
      'a few real weft hosts against thousands of simulated ones (leases in etcd); ' +
        'writes bench/results/scale-<timestamp>/',
    )
    .option('--sizes <list>', 'simulated hosts, loaded cumulatively (default 1000,5000)')
    .option('--hosts <n>', 'real weft hosts (default 3)')
    .option('--probes <n>', 'probe leases per size for the route-live latency (default 20; 0: skip)')
    .option('--lookup <list>', 'route counts for the lookup micro-benchmark (default 10,1000,5000; none: skip)')
    .option('--kernel <list>', 'peer counts for the ip -batch timing (default: the sizes; none: skip)')
    .option('--failover', 'also run the 3-member etcd failover scenario and add it to the report')
    .option('--out <dir>', 'output folder (default bench/results/scale-<timestamp>)')
    .option('--json', 'print the results as JSON')
    .action(async (o: import('../../bench/scale/cli.js').ScaleCliOptions) => {
      const { scaleCommand } = await import('../../bench/scale/cli.js');
      await scaleCommand(o);
    });
}
