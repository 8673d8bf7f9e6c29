// Flag parsers shared by tsnet's commands: each turns one flag's text into a
// typed value or throws commander's InvalidArgumentError with a precise
// message. No behaviour lives here.

import { InvalidArgumentError } from 'commander';
import { parseMtu, parseCidr, parseMac, ConfigError } from '../stack/config.js';
import { parseFaultSpec, FaultSpecError } from '../host/fault.js';
import { LOG_LEVELS, type LogLevel } from '../host/log.js';
import type { NetnsType } from '../launcher/target.js';

function wrap<T>(f: (s: string) => T): (s: string) => T {
  return (s: string) => {
    try {
      return f(s);
    } catch (e) {
      if (e instanceof ConfigError || e instanceof FaultSpecError) throw new InvalidArgumentError(e.message);
      throw e;
    }
  };
}

export const mtuOption = wrap(parseMtu);
export const cidrOption = wrap((s) => {
  parseCidr(s);
  return s;
});
export const macOption = wrap((s) => {
  parseMac(s);
  return s;
});
export const faultOption = wrap(parseFaultSpec);

export function fdOption(s: string): number {
  if (!/^\d+$/.test(s)) throw new InvalidArgumentError(`not a file descriptor number: ${s}`);
  return Number(s);
}

export function netnsTypeOption(s: string): NetnsType {
  if (s === 'pid' || s === 'path' || s === 'tapfd') return s;
  throw new InvalidArgumentError(`must be pid, path or tapfd, got "${s}"`);
}

export function logLevelOption(s: string): LogLevel {
  if ((LOG_LEVELS as readonly string[]).includes(s)) return s as LogLevel;
  throw new InvalidArgumentError(`must be one of ${LOG_LEVELS.join(', ')}`);
}
