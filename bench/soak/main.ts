// `weft soak --minutes N`: a bounded soak on fresh namespace hosts (not CI). Steady hosts run weft daemons with pods;
// iperf3 moves traffic between two pods at a capped bitrate in 15 s runs; a churn host joins (daemon start,
// ping from every pod) and leaves (daemon stop, host removed) over and over; every 5 s the RSS of each steady daemon
// is sampled.
// At the end: RSS min/max per daemon, crashes (a steady daemon that exited on its own: restarted and counted),
// iperf3 runs and failures, churn cycles and failed pings. Everything is removed at the end, also on Ctrl-C.
//
//   bridge netns: etcd        h1 .. hN: weft daemon + pod      h(N+1): joins and leaves
//   traffic: pod h2 -> pod h1 (iperf3 -b <cap>); each churn cycle every steady pod pings the joiner's TUN address
import { readFileSync } from 'node:fs';
import { Cluster } from '../../testbed/cluster.js';
import { killChild } from '../../testbed/exec.js';
import { ping, runIperf, startIperfServer } from '../../testbed/traffic.js';
import { errorMessage, ConfigError } from '../../src/errors.js';
import { sleep } from '../../src/util/sleep.js';

export interface SoakOptions {
  minutes: number;
  hosts: number;
  bitrate: string;
  encap: string;
}

export interface SoakReport {
  minutes: number;
  samples: number;
  rssMiB: Record<string, { min: number; max: number; first: number; last: number }>;
  crashes: number;
  iperfRuns: number;
  iperfFailures: number;
  meanMbps: number;
  churnCycles: number;
  churnFailures: number;
  pingFailures: number;
}

function rssKiB(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

export async function soak(o: SoakOptions, say: (line: string) => void = () => undefined): Promise<SoakReport> {
  if (!(o.minutes > 0 && o.minutes <= 240)) throw new ConfigError(`--minutes ${o.minutes}: 0 < minutes <= 240`);
  const hosts = Math.max(2, Math.min(o.hosts, 8));
  const cluster = await Cluster.create({
    hosts,
    network: { Network: '10.77.0.0/16', SubnetLen: 24, Backend: { Type: o.encap } },
  });
  const report: SoakReport = {
    minutes: o.minutes,
    samples: 0,
    rssMiB: {},
    crashes: 0,
    iperfRuns: 0,
    iperfFailures: 0,
    meanMbps: 0,
    churnCycles: 0,
    churnFailures: 0,
    pingFailures: 0,
  };
  const end = Date.now() + o.minutes * 60_000;
  let stop = false;
  const onSignal = (): void => {
    stop = true;
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const steady = Array.from({ length: hosts }, (_, i) => i + 1);
  try {
    for (const n of steady) await cluster.startDaemon(n);
    for (const n of steady) await cluster.ensurePod(n);
    const server = await startIperfServer(cluster.pods.get(1)!, 5201);
    let mbpsSum = 0;

    const sampler = (async () => {
      while (!stop && Date.now() < end) {
        for (const n of steady) {
          const d = cluster.daemons.get(n);
          if (d && (d.child.exitCode !== null || d.child.signalCode !== null)) {
            report.crashes++;
            const how = d.child.exitCode ?? d.child.signalCode;
            say(`daemon h${n} exited (${how}); restarting. log: ${cluster.logTail(d.logFile, 5)}`);
            cluster.daemons.delete(n);
            await cluster.startDaemon(n).catch((e: unknown) => say(`restart of h${n} failed: ${errorMessage(e)}`));
            continue;
          }
          const kib = rssKiB(d?.child.pid);
          if (kib === null) continue;
          const mib = Math.round(kib / 102.4) / 10;
          const r = (report.rssMiB[`h${n}`] ??= { min: mib, max: mib, first: mib, last: mib });
          r.min = Math.min(r.min, mib);
          r.max = Math.max(r.max, mib);
          r.last = mib;
        }
        report.samples++;
        await sleep(5000);
      }
    })();

    const traffic = (async () => {
      while (!stop && Date.now() < end - 16_000) {
        try {
          const r = await runIperf(cluster.pods.get(2)!, cluster.pods.get(1)!.ip, { seconds: 15, bitrate: o.bitrate });
          report.iperfRuns++;
          mbpsSum += r.receivedBps / 1e6;
        } catch (e) {
          report.iperfFailures++;
          say(`iperf3 failed: ${errorMessage(e)}`);
          await sleep(2000);
        }
      }
    })();

    const churn = (async () => {
      while (!stop && Date.now() < end - 20_000) {
        let n: number | null = null;
        try {
          const h = await cluster.tb.addHost();
          n = h.n;
          const d = await cluster.startDaemon(h.n);
          // The joiner's TUN address (its subnet's .0) answers without a pod, so churn needs no CNI state.
          const tunIp = d.subnetGateway.replace(/\.1\/\d+$/, '.0');
          await sleep(1000); // the steady daemons learn the new lease through their watch
          for (const s of steady) {
            const p = await ping(cluster.pods.get(s)!, tunIp, { count: 2, timeoutSec: 3 });
            if (!p.ok) report.pingFailures++;
          }
          report.churnCycles++;
        } catch (e) {
          report.churnFailures++;
          say(`churn cycle failed: ${errorMessage(e)}`);
        } finally {
          if (n !== null) {
            await cluster.stopDaemon(n);
            await cluster.tb.removeHost(n).catch(() => undefined);
          }
        }
        await sleep(5000);
      }
    })();

    await Promise.all([sampler, traffic, churn]);
    await killChild(server);
    report.meanMbps = report.iperfRuns > 0 ? Math.round(mbpsSum / report.iperfRuns) : 0;
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    await cluster.destroy();
  }
  return report;
}

export async function runSoak(o: SoakOptions): Promise<void> {
  const say = (line: string): void => void process.stderr.write(`soak: ${line}\n`);
  say(`${o.minutes} min, ${o.hosts} steady hosts + 1 churning, iperf3 capped at ${o.bitrate}, encap ${o.encap}`);
  const r = await soak(o, say);
  const lines = [
    `soak: ${r.minutes} min, ${r.samples} RSS samples per daemon`,
    ...Object.entries(r.rssMiB).map(
      ([h, m]) => `  daemon ${h}: RSS min ${m.min} MiB, max ${m.max} MiB (first ${m.first}, last ${m.last})`,
    ),
    `  crashes: ${r.crashes}`,
    `  iperf3: ${r.iperfRuns} runs, ${r.iperfFailures} failed, mean ${r.meanMbps} Mbit/s`,
    `  churn: ${r.churnCycles} join/leave cycles, ${r.churnFailures} failed, ` +
      `${r.pingFailures} failed pings to the joiner`,
  ];
  process.stdout.write(lines.join('\n') + '\n' + JSON.stringify(r) + '\n');
  if (r.crashes > 0) process.exitCode = 1;
}
