#!/usr/bin/env node
// weft-cni: the CNI plugin that puts containers on weft's subnet (flannel's CNI plugin, for weft's subnet.env).
// A runtime execs it from CNI_PATH with CNI_COMMAND and the other CNI_* variables set and the network config on
// stdin; it prints the result (or the spec's error object) on stdout and exits 0 (or 1). Logs go to stderr at
// WEFT_CNI_LOG_LEVEL (default warn). The commands are in plugin.ts.
import type { Level } from 'pino';
import { createLogger } from '../log.js';
import { runCommand } from './plugin.js';

// A network config is a few KiB; more than this is not one.
const MAX_STDIN = 1 << 20;

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) return ''; // run by hand (VERSION): nothing to read
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    const b = chunk as Buffer;
    size += b.length;
    if (size > MAX_STDIN) break;
    chunks.push(b);
  }
  return Buffer.concat(chunks).toString('utf8');
}

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];
const wanted = process.env.WEFT_CNI_LOG_LEVEL ?? 'warn';
const log = createLogger(LEVELS.includes(wanted) ? (wanted as Level | 'silent') : 'warn', { pretty: false });

const stdin = await readStdin();
const out = await runCommand(process.env, stdin, log);
if (out.stdout !== '') process.stdout.write(out.stdout + '\n');
process.exitCode = out.exitCode;
