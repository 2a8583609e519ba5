// /healthz and /metrics for the daemon, on --healthz-ip:--healthz-port (127.0.0.1 by default: counters tell an
// observer about the traffic, so they are not published to the network unless asked).
import http from 'node:http';
import { Registry, Gauge } from 'prom-client';
import type { Logger } from '../log.js';

export interface MetricsSource {
  /** True when the lease is valid and the datapath runs. */
  healthy(): boolean;
  /** Datapath counters by name (packets, bytes, syscalls, drops by reason). */
  counters(): Record<string, number>;
  leaseSecondsLeft(): number | null;
  peers(): number;
}

export function startMetricsServer(host: string, port: number, source: MetricsSource, log: Logger): http.Server {
  const registry = new Registry();
  const datapath = new Gauge({
    name: 'weft_datapath_total',
    help: 'datapath counters (packets, bytes, syscalls, copies, drops by reason); monotonic',
    labelNames: ['counter'],
    registers: [registry],
    collect() {
      for (const [name, value] of Object.entries(source.counters())) this.set({ counter: name }, value);
    },
  });
  void datapath;
  new Gauge({
    name: 'weft_lease_ttl_seconds',
    help: 'seconds until our subnet lease expires',
    registers: [registry],
    collect() {
      const left = source.leaseSecondsLeft();
      if (left !== null) this.set(left);
    },
  });
  new Gauge({
    name: 'weft_peers',
    help: 'peers the datapath forwards to',
    registers: [registry],
    collect() {
      this.set(source.peers());
    },
  });
  const server = http.createServer((req, res) => {
    if (req.url === '/healthz') {
      const ok = source.healthy();
      res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' }).end(ok ? 'ok\n' : 'unhealthy\n');
      return;
    }
    if (req.url === '/metrics') {
      registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
        (err: unknown) => res.writeHead(500).end(String(err)),
      );
      return;
    }
    res.writeHead(404).end();
  });
  server.on('error', (err) => log.error({ err, host, port }, 'metrics listener failed'));
  server.listen(port, host, () => log.info({ host, port }, 'serving /healthz and /metrics'));
  return server;
}
