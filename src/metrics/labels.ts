// Label text for the series weft writes itself on /metrics (without prom-client, which loads only when /metrics is
// served): built once per lease, read at every scrape.

/**
 * One peer's lease-TTL series: its label text escaped once, when the lease arrives, so that a scrape at 5,000 peers
 * writes 5,000 lines instead of building 5,000 label objects through prom-client (~6.6 MB of garbage per scrape).
 */
export interface PeerTtlSeries {
  /** `subnet="…",public_ip="…",backend_type="…"`, escaped as Prometheus's text format asks. */
  readonly labels: string;
  /** ms since the epoch when the lease expires; null for a reservation or when unknown (the series shows -1). */
  readonly expiresAt: number | null;
}

/** A label value as Prometheus's text format wants it: backslash, double quote and newline escaped. */
export function escapeLabelValue(v: string): string {
  return v.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`));
}

/** The `subnet,public_ip,backend_type` label text of a peer's lease-TTL series. */
export function peerTtlLabels(subnet: string, publicIp: string, backendType: string): string {
  return (
    `subnet="${escapeLabelValue(subnet)}",public_ip="${escapeLabelValue(publicIp)}",` +
    `backend_type="${escapeLabelValue(backendType)}"`
  );
}
