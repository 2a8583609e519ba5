// What tcpdump saw: start it and wait until it listens, then read its pcap (classic format, `-w`).
import type { ChildProcess } from 'node:child_process';

/**
 * Waits (bounded) until a tcpdump child says it listens; rejects when it exits first. `done` resolves once it has
 * exited, with what it wrote to stdout (a pcap with `-w -`) and stderr.
 */
export async function tcpdumpListening(
  child: ChildProcess,
  ms = 5000,
): Promise<{ done: Promise<{ stdout: Buffer; stderr: string }> }> {
  const chunks: Buffer[] = [];
  let stderr = '';
  child.stdout?.on('data', (c: Buffer) => chunks.push(c));
  const done = new Promise<{ stdout: Buffer; stderr: string }>((resolve) =>
    child.once('close', () => resolve({ stdout: Buffer.concat(chunks), stderr })),
  );
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`tcpdump not listening after ${ms} ms: ${stderr}`)), ms);
    child.stderr?.on('data', (c: Buffer) => {
      stderr += c.toString();
      if (stderr.includes('listening on')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', () => {
      clearTimeout(timer);
      reject(new Error(`tcpdump exited: ${stderr}`));
    });
  });
  // Wrapped: an async function returning a bare promise would wait for it (promises flatten).
  return { done };
}

/** The records of a classic pcap file (either byte order, micro- or nanosecond), with its link type (-1: empty). */
export function readPcap(b: Buffer): { linkType: number; records: Buffer[] } {
  if (b.length < 24) return { linkType: -1, records: [] };
  const magics = [0xa1b2c3d4, 0xa1b23c4d];
  const le = magics.includes(b.readUInt32LE(0));
  if (!le && !magics.includes(b.readUInt32BE(0))) throw new Error('not a pcap file');
  const u32 = (at: number): number => (le ? b.readUInt32LE(at) : b.readUInt32BE(at));
  const records: Buffer[] = [];
  for (let at = 24; at + 16 <= b.length;) {
    const caplen = u32(at + 8);
    if (at + 16 + caplen > b.length) break;
    records.push(b.subarray(at + 16, at + 16 + caplen));
    at += 16 + caplen;
  }
  return { linkType: u32(20), records };
}
