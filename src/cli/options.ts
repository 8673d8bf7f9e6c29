// Flag parsers shared by tsnet's commands: each turns one flag's text into a
// typed value or throws commander's InvalidArgumentError with a precise
// message. No behaviour lives here.

import net from 'node:net';
import os from 'node:os';
import { InvalidArgumentError } from 'commander';
import { parseMtu, parseCidr, parseMac, ConfigError } from '../stack/config.js';
import { FaultSpecError, LOG_FORMATS, LOG_LEVELS, PublishSpecError, parseFaultSpec, parsePublish, type ForwardSpec, type LogFormat, type LogLevel, type NetnsType } from '../app/specs.js';

/**
 * A parser from the layers below, its error turned into commander's
 * InvalidArgumentError in tsnet's style: the value quoted once, then what
 * is wrong, then the fix (src/cli/errors.ts adds "tsnet: --flag: ").
 */
function wrap<T>(f: (s: string) => T, what: (s: string, why: string) => string): (s: string) => T {
  return (s: string) => {
    try {
      return f(s);
    } catch (e) {
      if (e instanceof ConfigError || e instanceof FaultSpecError || e instanceof PublishSpecError) throw new InvalidArgumentError(what(s, e.message));
      throw e;
    }
  };
}

export const mtuOption = wrap(parseMtu, (s) => `${JSON.stringify(s)} is not an MTU (use a whole number from 68 to 65521)`);
export const cidrOption = wrap(
  (s) => {
    parseCidr(s);
    return s;
  },
  (s, why) =>
    why.startsWith('invalid CIDR')
      ? `${JSON.stringify(s)} is not an IPv4 network (use ADDRESS/PREFIX, e.g. 10.0.2.0/24)`
      : `${JSON.stringify(s)}: ${why} (e.g. 10.0.2.0/24)`,
);
export const macOption = wrap(
  (s) => {
    parseMac(s);
    return s;
  },
  (s) => `${JSON.stringify(s)} is not a unicast MAC address (use six hex bytes, e.g. 02:00:00:00:00:01)`,
);
export const faultOption = wrap(parseFaultSpec, (_s, why) => `${why.replace(/^--fault: /, '')} (e.g. drop=0.01,seed=1)`);

export function fdOption(s: string): number {
  if (!/^\d+$/.test(s)) throw new InvalidArgumentError(`${JSON.stringify(s)} is not a file descriptor number (e.g. 3, an fd the caller opened)`);
  return Number(s);
}

export function netnsTypeOption(s: string): NetnsType {
  if (s === 'pid' || s === 'path' || s === 'tapfd') return s;
  throw new InvalidArgumentError(`${JSON.stringify(s)} is not a target type (use pid, path or tapfd)`);
}

export function logLevelOption(s: string): LogLevel {
  if ((LOG_LEVELS as readonly string[]).includes(s)) return s as LogLevel;
  throw new InvalidArgumentError(`${JSON.stringify(s)} is not a log level (use one of ${LOG_LEVELS.join(', ')})`);
}

export function secondsOption(s: string): number {
  const v = Number(s);
  if (!/^\d+(\.\d+)?$/.test(s) || !(v > 0)) throw new InvalidArgumentError(`${JSON.stringify(s)} is not a number of seconds (use a positive number, e.g. 60)`);
  return v;
}

/** A whole number in [min, max] (--max-flows, --max-half-open). */
export function countOption(min: number, max: number): (s: string) => number {
  return (s: string) => {
    const v = Number(s);
    if (!/^\d+$/.test(s) || v < min || v > max) throw new InvalidArgumentError(`${JSON.stringify(s)} is out of range (use a whole number from ${min} to ${max})`);
    return v;
  };
}

/** --memory-budget: MiB as a whole number (at least 8), returned in bytes. */
export function mebibytesOption(s: string): number {
  const v = Number(s);
  if (!/^\d+$/.test(s) || v < 8 || v > 1 << 20) throw new InvalidArgumentError(`${JSON.stringify(s)} is out of range (use a whole number of MiB from 8 to 1048576)`);
  return v * 1024 * 1024;
}

/**
 * --outbound-addr: an IPv4 address, or an interface name whose first IPv4
 * address is used (slirp4netns accepts both).
 */
export function outboundAddrOption(s: string): string {
  if (net.isIPv4(s)) return s;
  if (net.isIPv6(s)) throw new InvalidArgumentError(`"${s}" is an IPv6 address (use --outbound-addr6 for IPv6)`);
  const addrs = os.networkInterfaces()[s];
  const v4 = addrs?.find((a) => a.family === 'IPv4');
  if (!addrs) throw new InvalidArgumentError(`"${s}" is neither an IPv4 address nor a network interface (ip -br addr lists them)`);
  if (!v4) throw new InvalidArgumentError(`interface "${s}" has no IPv4 address (name an address or another interface)`);
  return v4.address;
}

/** --outbound-addr6: an IPv6 address, or an interface (its first address that is not link-local). */
export function outboundAddr6Option(s: string): string {
  if (net.isIPv6(s)) return s;
  if (net.isIPv4(s)) throw new InvalidArgumentError(`"${s}" is an IPv4 address (use --outbound-addr for IPv4)`);
  const addrs = os.networkInterfaces()[s];
  if (!addrs) throw new InvalidArgumentError(`"${s}" is neither an IPv6 address nor a network interface (ip -br addr lists them)`);
  const v6 = addrs.find((a) => a.family === 'IPv6' && !a.address.toLowerCase().startsWith('fe80'));
  if (!v6) throw new InvalidArgumentError(`interface "${s}" has no IPv6 address other than link-local (name an address or another interface)`);
  return v6.address;
}

/** -p, repeatable: accumulates the parsed forwards. */
export function publishOption(s: string, previous: ForwardSpec[] = []): ForwardSpec[] {
  try {
    return [...previous, ...parsePublish(s)];
  } catch (e) {
    if (e instanceof PublishSpecError) {
      const why = e.message.replace(/^invalid --publish "[\s\S]*?": /, '');
      throw new InvalidArgumentError(`${JSON.stringify(s)}: ${why} (e.g. -p 8080:80 or -p 127.0.0.1:5353:53/udp)`);
    }
    throw e;
  }
}

export function logFormatOption(s: string): LogFormat {
  if ((LOG_FORMATS as readonly string[]).includes(s)) return s as LogFormat;
  throw new InvalidArgumentError(`${JSON.stringify(s)} is not a log format (use text or json)`);
}
