// Logging through pino, to stderr, synchronously (so nothing is lost when the
// process exits on a signal). Quiet by default (warn); --log-level debug
// explains every dropped frame and every flow opened or closed.

import { pino, type Logger } from 'pino';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export type { Logger };

export function makeLogger(level: LogLevel = 'warn'): Logger {
  return pino(
    { name: 'tsnet', level, base: { pid: process.pid } },
    pino.destination({ fd: 2, sync: true }),
  );
}
