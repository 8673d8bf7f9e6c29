// -p, --publish parsing: every accepted form (IPv4 and bracketed IPv6 host
// addresses, defaults, protocols, ranges) and the exact message for each kind
// of mistake.

import { describe, expect, it } from 'vitest';
import { parsePublish, PublishSpecError, type ForwardSpec } from '../../../src/host/forward-spec.js';

const tcp = (hostAddr: string, hostPort: number, guestPort: number): ForwardSpec => ({
  proto: 'tcp',
  hostAddr,
  hostPort,
  guestPort,
});

describe('parsePublish accepts', () => {
  it('HOSTPORT:GUESTPORT with default address 0.0.0.0 and tcp', () => {
    expect(parsePublish('8080:80')).toEqual([tcp('0.0.0.0', 8080, 80)]);
  });

  it('an IPv4 host address', () => {
    expect(parsePublish('127.0.0.1:8080:80')).toEqual([tcp('127.0.0.1', 8080, 80)]);
  });

  it('bracketed IPv6 host addresses', () => {
    expect(parsePublish('[::]:8080:80')).toEqual([tcp('::', 8080, 80)]);
    expect(parsePublish('[::1]:8443:443')).toEqual([tcp('::1', 8443, 443)]);
    expect(parsePublish('[fd00::2]:53:53/udp')).toEqual([{ ...tcp('fd00::2', 53, 53), proto: 'udp' }]);
  });

  it('/tcp and /udp', () => {
    expect(parsePublish('8080:80/tcp')).toEqual([tcp('0.0.0.0', 8080, 80)]);
    expect(parsePublish('127.0.0.1:5353:53/udp')).toEqual([{ ...tcp('127.0.0.1', 5353, 53), proto: 'udp' }]);
  });

  it('leaves the guest address to the forward table', () => {
    expect(parsePublish('8080:80')[0]).not.toHaveProperty('guestAddr');
  });

  it('ports 1 and 65535', () => {
    expect(parsePublish('1:65535')).toEqual([tcp('0.0.0.0', 1, 65535)]);
  });

  it('equal-length ranges, one forward per port', () => {
    const specs = parsePublish('8000-8010:9000-9010/udp');
    expect(specs).toHaveLength(11);
    expect(specs[0]).toEqual({ proto: 'udp', hostAddr: '0.0.0.0', hostPort: 8000, guestPort: 9000 });
    expect(specs[10]).toEqual({ proto: 'udp', hostAddr: '0.0.0.0', hostPort: 8010, guestPort: 9010 });
    expect(specs.map((s) => s.hostPort - s.guestPort)).toEqual(Array(11).fill(-1000));
  });

  it('a range with an address, and one-port ranges', () => {
    expect(parsePublish('[::1]:8000-8001:80-81')).toEqual([tcp('::1', 8000, 80), tcp('::1', 8001, 81)]);
    expect(parsePublish('80-80:90')).toEqual([tcp('0.0.0.0', 80, 90)]);
  });
});

describe('parsePublish rejects', () => {
  const cases: [string, string][] = [
    ['8080:80/sctp', 'protocol must be tcp or udp'],
    ['8080:80/', 'protocol must be tcp or udp'],
    ['8080:80/tcp/udp', 'protocol must be tcp or udp'],
    ['0x50:80', 'host port "0x50" is not a number 1-65535'],
    ['0:80', 'host port "0" is not a number 1-65535'],
    ['65536:80', 'host port "65536" is not a number 1-65535'],
    [':80', 'host port "" is not a number 1-65535'],
    ['8080:0', 'guest port "0" is not a number 1-65535'],
    ['8080:http', 'guest port "http" is not a number 1-65535'],
    ['8080:-1', 'guest port "-1" is not a number 1-65535'],
    ['8000-8010:80-81', 'ranges 8000-8010 and 80-81 differ in length'],
    ['8000-8001:80', 'ranges 8000-8001 and 80 differ in length'],
    ['8010-8000:80-90', 'host port range "8010-8000" goes from high to low'],
    ['300.1.1.1:8080:80', 'host address "300.1.1.1" is not an IPv4 address or a bracketed IPv6 address'],
    ['localhost:8080:80', 'host address "localhost" is not an IPv4 address or a bracketed IPv6 address'],
    [':8080:80', 'host address "" is not an IPv4 address or a bracketed IPv6 address'],
    ['::1:8080:80', 'too many ":"-separated fields (an IPv6 host address must be bracketed, e.g. [::1]:8080:80)'],
    ['[::1:8080:80', 'host address "[::1:8080:80" has no closing "]"'],
    ['[1.2.3.4]:8080:80', 'host address "[1.2.3.4]" is not an IPv6 address'],
    ['[::1]8080:80', 'expected ":" after host address "[::1]"'],
    ['[::1]:8080', 'expected [HOSTADDR:]HOSTPORT:GUESTPORT[/tcp|/udp]'],
    ['8080', 'expected [HOSTADDR:]HOSTPORT:GUESTPORT[/tcp|/udp]'],
    ['', 'expected [HOSTADDR:]HOSTPORT:GUESTPORT[/tcp|/udp]'],
  ];
  for (const [text, why] of cases) {
    it(`"${text}": ${why}`, () => {
      expect(() => parsePublish(text)).toThrow(PublishSpecError);
      expect(() => parsePublish(text)).toThrow(`invalid --publish "${text}": ${why}`);
    });
  }

  it('messages are one line', () => {
    try {
      parsePublish('8080:80/sctp');
      expect.unreachable();
    } catch (e) {
      expect((e as Error).message).toBe('invalid --publish "8080:80/sctp": protocol must be tcp or udp');
    }
  });
});
