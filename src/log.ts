// Structured logs through pino: JSON by default, pretty on a terminal (as flanneld's users read it by hand).
import { pino, type Logger, type Level } from 'pino';

export type { Logger };

export function createLogger(level: Level | 'silent' = 'info', opts: { pretty?: boolean } = {}): Logger {
  const pretty = opts.pretty ?? process.stderr.isTTY === true;
  if (pretty) {
    return pino({
      level,
      transport: { target: 'pino-pretty', options: { destination: 2, colorize: true } },
    });
  }
  return pino({ level, base: { pid: process.pid } }, pino.destination({ dest: 2, sync: true }));
}

// A logger that drops everything: for tests and library use.
export const silentLogger: Logger = pino({ level: 'silent' });
