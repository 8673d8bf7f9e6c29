// Logging through pino, to stderr, synchronously (so nothing is lost when the
// process exits on a signal). Quiet by default (warn); --log-level debug
// explains every dropped frame and every flow opened or closed.
//
// Two formats (--log-format, TSNET_LOG_FORMAT):
//   text (default)  one line a person reads: `tsnet: warning: <msg> key=value`
//                   (info lines carry no level word; debug and trace lines
//                   start with the time of day). Objects are compact JSON.
//   json            pino's own lines, one JSON object each, for machines.
// Both go through the same pino logger: the text format is a destination
// that re-renders pino's line, so levels, child bindings and serializers
// behave identically in both.

import { pino, type DestinationStream, type Logger } from 'pino';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const LOG_FORMATS = ['text', 'json'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];
export type { Logger };

const LEVEL_WORD: Record<number, string> = { 10: 'trace: ', 20: 'debug: ', 30: '', 40: 'warning: ', 50: 'error: ', 60: 'fatal: ' };
/** pino's own fields: not repeated after the message. */
const OWN = new Set(['level', 'time', 'pid', 'hostname', 'name', 'msg']);

function renderValue(v: unknown): string {
  if (typeof v === 'string') return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v);
  if (v !== null && typeof v === 'object') {
    // pino's error serializer: the message is what a person needs.
    const e = v as { type?: string; message?: unknown; stack?: unknown };
    if (typeof e.message === 'string' && typeof e.stack === 'string') return JSON.stringify(e.message);
    return JSON.stringify(v);
  }
  return String(v);
}

function clock(ms: number): string {
  const d = new Date(ms);
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)} `;
}

/** One pino JSON line rendered for a person (exported for the tests). */
export function renderText(line: string): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line.endsWith('\n') ? line : `${line}\n`;
  }
  const level = typeof o.level === 'number' ? o.level : 30;
  let out = level <= 20 && typeof o.time === 'number' ? clock(o.time) : '';
  out += `tsnet: ${LEVEL_WORD[level] ?? ''}${typeof o.msg === 'string' ? o.msg : ''}`;
  for (const [k, v] of Object.entries(o)) if (!OWN.has(k) && v !== undefined) out += ` ${k}=${renderValue(v)}`;
  return `${out}\n`;
}

/** stderr, synchronously, each line re-rendered as text. */
function textDestination(): DestinationStream {
  const raw = pino.destination({ fd: 2, sync: true });
  return { write: (line: string) => raw.write(renderText(line)) };
}

export function makeLogger(level: LogLevel = 'warn', format: LogFormat = 'text'): Logger {
  return pino(
    { name: 'tsnet', level, base: { pid: process.pid } },
    format === 'json' ? pino.destination({ fd: 2, sync: true }) : textDestination(),
  );
}

/**
 * What a user asked for explicitly (SIGUSR1's counters): printed whatever
 * --log-level says, through the same logger and format.
 */
export function alwaysLogger(log: Logger): Logger {
  return log.child({}, { level: 'info' });
}
