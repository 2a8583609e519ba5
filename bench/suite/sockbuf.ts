// Like-for-like socket buffers. weft forces its UDP sockets' buffers to SOCKET_BUFFER_BYTES (SO_RCVBUFFORCE; the
// kernel books twice the value asked, so sk_rcvbuf reads 16 MiB), while wireguard-go, nebula, tinc and the kernel's
// own VXLAN socket take the machine's defaults (net.core.rmem_default, 208 KiB): a flood fills theirs first. With
// 'equal' (the default) the bench gives every socket weft's buffers for the run: rmem_default/wmem_default at what
// weft's sockets end up with, rmem_max/wmem_max at what weft asks for (a program that sets SO_RCVBUF itself gets the
// same as weft). These four sysctls are not per network namespace on this kernel (inside a netns they are
// read-only copies of the machine's), so they are set machine-wide and put back when the last run that set them ends,
// also on a signal.
// 'os' leaves them alone: weft then runs with its forced buffers and every other path with the defaults.
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { SOCKET_BUFFER_BYTES } from '../../src/datapath/batch-tier.js';

export type SocketBufferMode = 'equal' | 'os';

const SYSCTLS = ['rmem_default', 'wmem_default', 'rmem_max', 'wmem_max'] as const;
type Sysctl = (typeof SYSCTLS)[number];

const file = (k: Sysctl): string => `/proc/sys/net/core/${k}`;

function read(k: Sysctl): number {
  return Number(readFileSync(file(k), 'utf8').trim());
}

/** What 'equal' sets: the default is what weft's forced sockets get (twice what it asks), the cap what it asks. */
export function equalSettings(): Record<Sysctl, number> {
  return {
    rmem_default: 2 * SOCKET_BUFFER_BYTES,
    wmem_default: 2 * SOCKET_BUFFER_BYTES,
    rmem_max: SOCKET_BUFFER_BYTES,
    wmem_max: SOCKET_BUFFER_BYTES,
  };
}

export interface SocketBuffers {
  mode: SocketBufferMode;
  /** The values during the run (bytes). */
  during: Record<Sysctl, number>;
  /** The values before the run, put back at its end. */
  before: Record<Sysctl, number>;
}

// Runs that overlap (two engineers, or a run killed with SIGKILL) share one record of the values from before any of
// them: the first one in writes it, the last one out puts them back and removes it.
const STATE_FILE = '/run/weft-bench-socket-buffers.json';

interface SharedState {
  before: Record<Sysctl, number>;
  holders: number[];
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function readState(): SharedState | null {
  try {
    return JSON.parse(readFileSync(STATE_FILE, 'utf8')) as SharedState;
  } catch {
    return null;
  }
}

/** Applies `mode` and returns what was done and how to undo it (also run on process exit; idempotent). */
export function applySocketBuffers(mode: SocketBufferMode): { info: SocketBuffers; restore: () => void } {
  const current = Object.fromEntries(SYSCTLS.map((k) => [k, read(k)])) as Record<Sysctl, number>;
  if (mode === 'os') return { info: { mode, during: current, before: current }, restore: () => undefined };
  const shared = readState();
  // a record left by a killed run holds the true values from before it; live holders keep theirs in use
  const before = shared?.before ?? current;
  const holders = (shared?.holders ?? []).filter(alive);
  writeFileSync(STATE_FILE, JSON.stringify({ before, holders: [...holders, process.pid] }));
  const during = equalSettings();
  let restored = false;
  const restore = (): void => {
    if (restored) return;
    restored = true;
    process.removeListener('exit', restore);
    try {
      const now = readState();
      const others = (now?.holders ?? []).filter((p) => p !== process.pid && alive(p));
      if (others.length > 0) {
        writeFileSync(STATE_FILE, JSON.stringify({ before: now?.before ?? before, holders: others }));
        return;
      }
      for (const k of SYSCTLS) writeFileSync(file(k), String((now?.before ?? before)[k]));
      rmSync(STATE_FILE, { force: true });
    } catch {
      // best effort on the way out: the run's figures do not depend on it
    }
  };
  process.on('exit', restore);
  try {
    for (const k of SYSCTLS) writeFileSync(file(k), String(during[k]));
  } catch (e) {
    restore();
    throw e;
  }
  return { info: { mode, during, before }, restore };
}

/** The UDP sockets in namespace `ns` with their receive and send buffers (sk_rcvbuf, sk_sndbuf) from `ss -uam`. */
export function udpSocketBuffers(ns: string): { local: string; rcvbuf: number; sndbuf: number }[] {
  let out: string;
  try {
    out = execFileSync('ip', ['netns', 'exec', ns, 'ss', '-uamnH'], { encoding: 'utf8', timeout: 5_000 });
  } catch {
    return [];
  }
  return parseSsSockets(out);
}

/** Parses `ss -uamnH`: a socket line ("UNCONN 0 0 0.0.0.0:8472 0.0.0.0:*") followed by its skmem line. */
export function parseSsSockets(text: string): { local: string; rcvbuf: number; sndbuf: number }[] {
  const out: { local: string; rcvbuf: number; sndbuf: number }[] = [];
  let local: string | null = null;
  for (const line of text.split('\n')) {
    const mem = /skmem:\(r\d+,rb(\d+),t\d+,tb(\d+)/.exec(line);
    if (mem && local !== null) {
      out.push({ local, rcvbuf: Number(mem[1]), sndbuf: Number(mem[2]) });
      local = null;
      continue;
    }
    const f = line.trim().split(/\s+/);
    if (f.length >= 4 && /:\d+$/.test(f[3]!)) local = f[3]!;
  }
  return out;
}
