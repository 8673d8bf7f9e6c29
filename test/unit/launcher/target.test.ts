// Target naming and the nsenter arguments built from it: which namespaces a
// helper joins, and as whom (keeping our credentials where we are root inside
// the target's user namespace, uid/gid 0 where podman's keep-id or --uidmap
// maps us elsewhere).

import { describe, expect, it } from 'vitest';
import { parseUidMap } from '../../../native/index.js';
import { mapsUsToRoot, nsenterArgs, parseTarget } from '../../../src/launcher/target.js';

describe('parseTarget', () => {
  it('takes --userns-path with a PID target, as slirp4netns does', () => {
    expect(parseTarget('42', 'pid', '/proc/7/ns/user')).toEqual({ type: 'pid', pid: 42, usernsPath: '/proc/7/ns/user' });
    expect(parseTarget('42', 'pid')).toEqual({ type: 'pid', pid: 42, usernsPath: undefined });
  });

  it('refuses a PID that is not one', () => {
    expect(() => parseTarget('abc', 'pid')).toThrow('<target>: "abc" is not a PID (use --netns-type=path for a namespace file)');
    expect(() => parseTarget('0', 'pid')).toThrow(/not a PID/);
  });
});

describe('uid maps', () => {
  it('parses /proc/PID/uid_map rows', () => {
    expect(parseUidMap('         0       1000          1\n         1     300000      65536\n')).toEqual([
      { inside: 0, outside: 1000, count: 1 },
      { inside: 1, outside: 300000, count: 65536 },
    ]);
    expect(parseUidMap('')).toEqual([]);
  });

  it('tells whether our uid is root in a process user namespace', () => {
    // Our own namespace: the initial map (0 0 4294967295) maps uid 0 to 0 and no other uid to 0.
    expect(mapsUsToRoot('/proc/self/ns/user'.replace('self', String(process.pid)), 0)).toBe(true);
    expect(mapsUsToRoot(`/proc/${process.pid}/ns/user`, 1000)).toBe(false);
    expect(mapsUsToRoot('/run/user/1000/userns')).toBeUndefined();
    expect(mapsUsToRoot('/proc/999999999/ns/user')).toBeUndefined();
  });
});

describe('nsenterArgs', () => {
  it('does not join our own user namespace', () => {
    expect(nsenterArgs({ type: 'pid', pid: process.pid })).toEqual(['--target', String(process.pid), '--net']);
    expect(nsenterArgs({ type: 'path', netnsPath: '/run/netns/x' })).toEqual(['--net=/run/netns/x']);
    expect(nsenterArgs({ type: 'path', netnsPath: '/run/netns/x', usernsPath: `/proc/${process.pid}/ns/user` })).toEqual(['--net=/run/netns/x']);
  });

  it('has no namespace for a tapfd target', () => {
    expect(() => nsenterArgs({ type: 'tapfd', fd: 5 })).toThrow(/no namespace/);
  });
});
