// The slirp4netns command-line contract: the exact argument vectors podman
// and rootlesskit use, getopt_long forms, --help naming every option, and
// usage errors.

import { describe, expect, it } from 'vitest';
import { parseSlirp4netnsArgs, USAGE, UsageError, versionText } from '../../../src/cli/slirp4netns.js';

describe('slirp4netns command line', () => {
  it("parses podman 4's vector (netns by path, exit/ready fds, api socket)", () => {
    const a = parseSlirp4netnsArgs([
      '--disable-host-loopback', '--mtu=65520', '--enable-sandbox', '--enable-seccomp', '--enable-ipv6',
      '-c', '-e', '3', '-r', '4', '--api-socket', '/run/user/1000/libpod/tmp/abc.net',
      '--netns-type=path', '/run/user/1000/netns/netns-1234', 'tap0',
    ]);
    expect(a).toMatchObject({
      disableHostLoopback: true, mtu: 65520, enableSandbox: true, enableSeccomp: true, enableIpv6: true,
      configure: true, exitFd: 3, readyFd: 4, apiSocket: '/run/user/1000/libpod/tmp/abc.net',
      netnsType: 'path', target: '/run/user/1000/netns/netns-1234', tapName: 'tap0',
    });
  });

  it("parses rootlesskit 1's vector (PID mode, separate values)", () => {
    const a = parseSlirp4netnsArgs(['--mtu', '65520', '-r', '3', '--disable-host-loopback', '--api-socket', '/tmp/rootlesskit1/.s4nn.sock', '12345', 'tap0']);
    expect(a).toMatchObject({ mtu: 65520, readyFd: 3, disableHostLoopback: true, netnsType: 'pid', target: '12345', tapName: 'tap0', configure: false });
  });

  it('accepts getopt forms: grouped shorts, attached values, --opt=value, deprecated aliases, default tap0', () => {
    const a = parseSlirp4netnsArgs(['-c6', '-e3', '-m1500', '--no-host-loopback', '--create-sandbox', '--cidr=10.0.135.128/25', '99']);
    expect(a).toMatchObject({ configure: true, enableIpv6: true, exitFd: 3, mtu: 1500, disableHostLoopback: true, enableSandbox: true, cidr: '10.0.135.128/25', tapName: 'tap0' });
  });

  it('takes unambiguous prefixes of long options, as getopt_long does; an ambiguous one is an error naming the candidates', () => {
    const a = parseSlirp4netnsArgs(['--conf', '--disable-host', '--mt=9000', '--api', '/tmp/s', '--userns-p=/proc/1/ns/user', '99', 'tap1']);
    expect(a).toMatchObject({ configure: true, disableHostLoopback: true, mtu: 9000, apiSocket: '/tmp/s', usernsPath: '/proc/1/ns/user', target: '99', tapName: 'tap1' });
    expect(() => parseSlirp4netnsArgs(['--enable-s', '1'])).toThrow(/option '--enable-s' is ambiguous; possibilities: '--enable-sandbox' '--enable-seccomp'/);
  });

  it('rejects bad arguments with slirp4netns-style messages', () => {
    const bad: Array<[string[], RegExp]> = [
      [['--bogus', '1'], /unrecognized option '--bogus'/],
      [['-x', '1'], /invalid option -- 'x'/],
      [['--mtu'], /option '--mtu' requires an argument/],
      [['-c', '--configure=1', '1'], /doesn't allow an argument/],
      [[], /missing PID\|PATH\|FD/],
      [['1', 'tap0', 'extra'], /too many arguments/],
      [['--cidr=10.0.2.100/24', '1'], /CIDR needs to be a network address like 10\.0\.2\.0\/24, not like 10\.0\.2\.100\/24/],
      [['--cidr=10.0.2.0/26', '1'], /prefix length needs to be 1-25/],
      [['--cidr=foo', '1'], /invalid CIDR/],
      [['--macaddress=52:54:00:12:34:56', '1'], /--macaddress can only be used with --configure/],
      [['--netns-type=foo', '1'], /netns-type must be pid, path or tapfd/],
    ];
    for (const [argv, re] of bad) {
      expect(() => parseSlirp4netnsArgs(argv), argv.join(' ')).toThrow(UsageError);
      expect(() => parseSlirp4netnsArgs(argv)).toThrow(re);
    }
  });

  it('--help names every long option (engines feature-detect by grepping it)', () => {
    for (const opt of ['--configure', '--exit-fd', '--ready-fd', '--mtu', '--cidr', '--disable-host-loopback', '--netns-type', '--userns-path',
      '--api-socket', '--enable-ipv6', '--enable-sandbox', '--enable-seccomp', '--outbound-addr', '--outbound-addr6', '--disable-dns',
      '--macaddress', '--target-type', '--help', '--version']) {
      expect(USAGE).toContain(opt);
    }
    expect(USAGE).toMatch(/^Usage: slirp4netns \[OPTION\]\.\.\. PID\|PATH\|FD \[TAPNAME\]/);
  });

  it('-v prints the five lines version parsers expect', () => {
    const lines = versionText().trim().split('\n');
    expect(lines[0]).toMatch(/^slirp4netns version \d+\.\d+\.\d+/);
    expect(lines[1]).toMatch(/^commit: /);
    expect(lines[2]).toMatch(/^libslirp: \d+\.\d+\.\d+$/);
    expect(lines[3]).toMatch(/^SLIRP_CONFIG_VERSION_MAX: \d+$/);
    expect(lines[4]).toMatch(/^libseccomp: /);
  });
});
