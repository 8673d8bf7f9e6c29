// The command line's value parsers for the outbound addresses: what each
// accepts and the one-line error for what it does not.

import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { outboundAddr6Option, outboundAddrOption } from '../../../src/cli/options.js';

describe('--outbound-addr and --outbound-addr6', () => {
  it('take an address of their family, or an interface', () => {
    expect(outboundAddrOption('192.0.2.7')).toBe('192.0.2.7');
    expect(outboundAddr6Option('2001:db8::7')).toBe('2001:db8::7');
    expect(outboundAddrOption('lo')).toBe('127.0.0.1');
    const lo6 = os.networkInterfaces().lo?.find((a) => a.family === 'IPv6');
    if (lo6) expect(outboundAddr6Option('lo')).toBe('::1');
  });

  it('name what is wrong with the other family or an unknown name', () => {
    expect(() => outboundAddr6Option('192.0.2.7')).toThrow('"192.0.2.7" is an IPv4 address (use --outbound-addr for IPv4)');
    expect(() => outboundAddrOption('2001:db8::7')).toThrow('"2001:db8::7" is an IPv6 address (use --outbound-addr6 for IPv6)');
    expect(() => outboundAddr6Option('nosuchif0')).toThrow('"nosuchif0" is neither an IPv6 address nor a network interface');
  });
});
