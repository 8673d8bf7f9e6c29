import { describe, it, expect } from 'vitest';
import {
  ipv4FromString,
  ipv4ToString,
  ipv6Equal,
  ipv6FromString,
  ipv6MulticastMac,
  ipv6SolicitedNode,
  ipv6ToString,
  isIpv4Multicast,
  isIpv6Multicast,
  isMacMulticast,
  macFromString,
  macToString,
  readMac,
  writeMac,
} from '../../../src/wire/address.js';
import { expectWireError } from './fixtures.js';

describe('address helpers', () => {
  it('formats and parses IPv4 as unsigned 32-bit numbers', () => {
    expect(ipv4FromString('10.0.2.2')).toBe(0x0a000202);
    expect(ipv4FromString('255.255.255.255')).toBe(0xffffffff);
    expect(ipv4ToString(0xffffffff)).toBe('255.255.255.255');
    expect(ipv4ToString(0x0a000264)).toBe('10.0.2.100');
    expect(isIpv4Multicast(ipv4FromString('224.0.0.251'))).toBe(true);
    expect(isIpv4Multicast(ipv4FromString('10.0.2.2'))).toBe(false);
  });

  it('rejects malformed IPv4 text', () => {
    for (const s of ['10.0.2', '10.0.2.256', '10.0.2.2.1', 'a.b.c.d', '01.0.0.1', '']) {
      expectWireError(() => ipv4FromString(s), 'address-bad-format');
    }
  });

  it('formats and parses MACs as 48-bit numbers', () => {
    const m = macFromString('52:55:0a:00:02:02');
    expect(m).toBe(0x52550a000202);
    expect(macToString(m)).toBe('52:55:0a:00:02:02');
    expect(macToString(0xffffffffffff)).toBe('ff:ff:ff:ff:ff:ff');
    expect(macFromString('FF-FF-FF-FF-FF-FF')).toBe(0xffffffffffff);
    expect(isMacMulticast(0x333300000001)).toBe(true);
    expect(isMacMulticast(m)).toBe(false);
    const b = Buffer.alloc(6);
    writeMac(b, 0, 0xfedcba987654);
    expect(b.toString('hex')).toBe('fedcba987654');
    expect(readMac(b, 0)).toBe(0xfedcba987654);
    expectWireError(() => macFromString('52:55:0a:00:02'), 'address-bad-format');
    expectWireError(() => macFromString('52:55:0a:00:02:zz'), 'address-bad-format');
  });

  it('formats IPv6 in RFC 5952 canonical form', () => {
    const cases: [string, string][] = [
      ['::', '::'],
      ['::1', '::1'],
      ['fd00:0:0:0:0:0:0:2', 'fd00::2'],
      ['fe80::5054:ff:fe12:3456', 'fe80::5054:ff:fe12:3456'],
      ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // §4.2.3: first of equal runs
      ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // §4.2.2: lone zero kept
      ['2001:0db8::0001', '2001:db8::1'], // §4.1: no leading zeros
      ['2001:DB8::A', '2001:db8::a'], // §4.3: lowercase
      ['::ffff:10.0.2.2', '::ffff:10.0.2.2'], // §5: mapped IPv4
      ['1:0:0:2:0:0:0:3', '1:0:0:2::3'], // longest run wins
    ];
    for (const [input, canon] of cases) expect(ipv6ToString(ipv6FromString(input))).toBe(canon);
  });

  it('rejects malformed IPv6 text', () => {
    for (const s of ['1::2::3', '1:2:3:4:5:6:7', '1:2:3:4:5:6:7:8:9', 'g::1', '12345::', ':::']) {
      expectWireError(() => ipv6FromString(s), 'address-bad-format');
    }
  });

  it('derives solicited-node multicast and its MAC (RFC 4291, RFC 2464)', () => {
    const sn = ipv6SolicitedNode(ipv6FromString('fd00::2'));
    expect(ipv6ToString(sn)).toBe('ff02::1:ff00:2');
    expect(isIpv6Multicast(sn)).toBe(true);
    expect(ipv6MulticastMac(sn)).toBe(0x3333ff000002);
    expect(ipv6Equal(sn, ipv6FromString('ff02::1:ff00:2'))).toBe(true);
    expect(ipv6Equal(sn, ipv6FromString('ff02::1:ff00:3'))).toBe(false);
  });
});
