// The -p, --publish flag: "[HOSTADDR:]HOSTPORT:GUESTPORT[/tcp|/udp]" parsed
// into one ForwardSpec per forwarded port. HOSTADDR is an IPv4 address or a
// bracketed IPv6 address ("[::1]:8443:443"), default 0.0.0.0; the protocol
// defaults to tcp. Equal-length port ranges ("8000-8010:8000-8010") expand
// into one forward per port. The guest address is not part of the flag: the
// forward table fills in the recommended guest address (network+100).
// Nothing here binds anything.

import net from 'node:net';

export type Proto = 'tcp' | 'udp';

export interface ForwardSpec {
  proto: Proto;
  hostAddr: string;
  /** 1..65535; 0 (an ephemeral port) only through the API, never from -p. */
  hostPort: number;
  /** Absent: the forward table's default (the recommended guest address). */
  guestAddr?: string;
  guestPort: number;
}

export class PublishSpecError extends Error {}

export const DEFAULT_HOST_ADDR = '0.0.0.0';
export const DEFAULT_PROTO: Proto = 'tcp';

interface PortRange {
  first: number;
  last: number;
}

/**
 * Parses one --publish value. Throws PublishSpecError with a one-line message
 * that quotes the whole flag and names the bad part.
 */
export function parsePublish(text: string): ForwardSpec[] {
  const fail = (why: string): never => {
    throw new PublishSpecError(`invalid --publish "${text}": ${why}`);
  };
  let rest = text.trim();
  if (rest === '') fail('expected [HOSTADDR:]HOSTPORT:GUESTPORT[/tcp|/udp]');

  // Protocol suffix. Neither IPv4 nor IPv6 addresses contain '/'.
  let proto: Proto = DEFAULT_PROTO;
  const slash = rest.indexOf('/');
  if (slash >= 0) {
    const p = rest.slice(slash + 1);
    if (p !== 'tcp' && p !== 'udp') fail('protocol must be tcp or udp');
    proto = p as Proto;
    rest = rest.slice(0, slash);
  }

  // Host address: bracketed IPv6, or IPv4 when there are three fields.
  let hostAddr = DEFAULT_HOST_ADDR;
  if (rest.startsWith('[')) {
    const close = rest.indexOf(']');
    if (close < 0) fail(`host address "${rest}" has no closing "]"`);
    const addr = rest.slice(1, close);
    if (!net.isIPv6(addr)) fail(`host address "[${addr}]" is not an IPv6 address`);
    if (rest[close + 1] !== ':') fail(`expected ":" after host address "[${addr}]"`);
    hostAddr = addr;
    rest = rest.slice(close + 2);
  } else {
    const fields = rest.split(':');
    if (fields.length > 3) {
      fail('too many ":"-separated fields (an IPv6 host address must be bracketed, e.g. [::1]:8080:80)');
    }
    if (fields.length === 3) {
      const addr = fields[0]!;
      if (!net.isIPv4(addr)) fail(`host address "${addr}" is not an IPv4 address or a bracketed IPv6 address`);
      hostAddr = addr;
      rest = rest.slice(addr.length + 1);
    }
  }

  const ports = rest.split(':');
  if (ports.length !== 2) fail('expected [HOSTADDR:]HOSTPORT:GUESTPORT[/tcp|/udp]');
  const host = parseRange(ports[0]!, 'host', fail);
  const guest = parseRange(ports[1]!, 'guest', fail);
  if (host.last - host.first !== guest.last - guest.first) {
    fail(`ranges ${ports[0]} and ${ports[1]} differ in length`);
  }

  const specs: ForwardSpec[] = [];
  for (let i = 0; i <= host.last - host.first; i++) {
    specs.push({ proto, hostAddr, hostPort: host.first + i, guestPort: guest.first + i });
  }
  return specs;
}

/** "80" or "8000-8010", each port 1..65535, low to high. */
function parseRange(text: string, which: 'host' | 'guest', fail: (why: string) => never): PortRange {
  const dash = text.indexOf('-');
  if (dash <= 0) {
    const p = parsePort(text, which, fail);
    return { first: p, last: p };
  }
  const first = parsePort(text.slice(0, dash), which, fail);
  const last = parsePort(text.slice(dash + 1), which, fail);
  if (last < first) fail(`${which} port range "${text}" goes from high to low`);
  return { first, last };
}

function parsePort(text: string, which: 'host' | 'guest', fail: (why: string) => never): number {
  const n = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  if (!(n >= 1 && n <= 65535)) fail(`${which} port "${text}" is not a number 1-65535`);
  return n;
}
