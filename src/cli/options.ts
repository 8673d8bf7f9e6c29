// Flag parsers shared by tsnet's commands: each turns one flag's text into a
// typed value or throws commander's InvalidArgumentError with a precise
// message. No behaviour lives here.

import net from 'node:net';
import os from 'node:os';
import { InvalidArgumentError } from 'commander';
import { parseMtu, parseCidr, parseMac, ConfigError } from '../stack/config.js';
import { FaultSpecError, LOG_LEVELS, PublishSpecError, parseFaultSpec, parsePublish, type ForwardSpec, type LogLevel, type NetnsType } from '../app/specs.js';

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

export function secondsOption(s: string): number {
  const v = Number(s);
  if (!/^\d+(\.\d+)?$/.test(s) || !(v > 0)) throw new InvalidArgumentError(`must be a positive number of seconds, got "${s}"`);
  return v;
}

/** A whole number in [min, max] (--max-flows, --max-half-open). */
export function countOption(min: number, max: number): (s: string) => number {
  return (s: string) => {
    const v = Number(s);
    if (!/^\d+$/.test(s) || v < min || v > max) throw new InvalidArgumentError(`must be a whole number from ${min} to ${max}, got "${s}"`);
    return v;
  };
}

/** --memory-budget: MiB as a whole number (at least 8), returned in bytes. */
export function mebibytesOption(s: string): number {
  const v = Number(s);
  if (!/^\d+$/.test(s) || v < 8 || v > 1 << 20) throw new InvalidArgumentError(`must be a whole number of MiB from 8 to 1048576, got "${s}"`);
  return v * 1024 * 1024;
}

/**
 * --outbound-addr: an IPv4 address, or an interface name whose first IPv4
 * address is used (slirp4netns accepts both).
 */
export function outboundAddrOption(s: string): string {
  if (net.isIPv4(s)) return s;
  if (net.isIPv6(s)) throw new InvalidArgumentError(`"${s}" is IPv6; use --outbound-addr6 for IPv6`);
  const addrs = os.networkInterfaces()[s];
  const v4 = addrs?.find((a) => a.family === 'IPv4');
  if (!addrs) throw new InvalidArgumentError(`"${s}" is neither an IPv4 address nor a network interface`);
  if (!v4) throw new InvalidArgumentError(`interface ${s} has no IPv4 address`);
  return v4.address;
}

/** --outbound-addr6: an IPv6 address, or an interface (its first address that is not link-local). */
export function outboundAddr6Option(s: string): string {
  if (net.isIPv6(s)) return s;
  if (net.isIPv4(s)) throw new InvalidArgumentError(`"${s}" is IPv4; --outbound-addr6 takes an IPv6 address or an interface`);
  const addrs = os.networkInterfaces()[s];
  if (!addrs) throw new InvalidArgumentError(`"${s}" is neither an IPv6 address nor a network interface`);
  const v6 = addrs.find((a) => a.family === 'IPv6' && !a.address.toLowerCase().startsWith('fe80'));
  if (!v6) throw new InvalidArgumentError(`interface ${s} has no IPv6 address other than link-local`);
  return v6.address;
}

/** -p, repeatable: accumulates the parsed forwards. */
export function publishOption(s: string, previous: ForwardSpec[] = []): ForwardSpec[] {
  try {
    return [...previous, ...parsePublish(s)];
  } catch (e) {
    if (e instanceof PublishSpecError) throw new InvalidArgumentError(e.message);
    throw e;
  }
}
