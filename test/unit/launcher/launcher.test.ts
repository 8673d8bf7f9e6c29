// src/cli/slirp4netns.sh (the drop-in's launcher) against
// src/launcher/configure.ts: for the same command line the shell writes the
// same ip batch that tsnet would (TSNET_LAUNCHER_PRINT prints it instead of
// running it), and it leaves alone what it cannot be sure of. And
// src/cli/tsnet.sh's one decision (start tsnet run in the sandbox's
// namespaces), with stand-ins for node and unshare.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { creationCommands } from '../../../src/launcher/configure.js';
import { makeConfig } from '../../../src/stack/config.js';

const launcher = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../src/cli/slirp4netns.sh');

/** The launcher's batch for args (our own PID as the target: same namespaces, nothing entered). */
function batchFor(args: string[]): string[] | 'entry' {
  // Run from src/cli/, where the entry (slirp4netns.cjs) does not exist: when
  // the launcher hands over instead of printing, that hand-over fails.
  try {
    const out = execFileSync('sh', [launcher, ...args], {
      env: { TSNET_LAUNCHER_PRINT: '1', PATH: '/usr/sbin:/usr/bin:/sbin:/bin' },
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return out.trim().split('\n');
  } catch {
    return 'entry';
  }
}

describe('slirp4netns launcher (shell) and tsnet write the same batch', () => {
  const pid = String(process.pid);
  const cases: Array<{ args: string[]; cfg?: Parameters<typeof makeConfig>[0] }> = [
    { args: [pid, 'tap0'] },
    { args: ['-c', pid, 'tap0'], cfg: {} },
    { args: ['--configure', '--mtu=65520', pid, 'tap11'], cfg: { mtu: 65520 } },
    { args: ['-c', '-m', '9000', '--cidr', '10.0.135.128/25', pid, 'tap11'], cfg: { mtu: 9000, cidr: '10.0.135.128/25' } },
    { args: ['-c', '--macaddress', '0E:D4:18:D9:38:FB', pid, 'tap11'], cfg: { macAddress: '0e:d4:18:d9:38:fb' } },
    { args: ['--disable-host-loopback', '--mtu=65520', '--enable-sandbox', '--enable-seccomp', '--enable-ipv6', '-c', '-e', '3', '-r', '4', pid, 'tap0'], cfg: { mtu: 65520 } },
  ];
  for (const c of cases) {
    it(c.args.join(' '), () => {
      const tmp = 'TMP';
      const want = creationCommands(c.args.at(-1)!, tmp, c.cfg ? makeConfig({ mtu: 1500, cidr: '10.0.2.0/24', ...c.cfg }) : undefined).cmds;
      const got = batchFor(c.args);
      expect(got).not.toBe('entry');
      expect((got as string[]).map((l) => l.replace(/tsn\d+/g, tmp))).toEqual(want);
    });
  }

  it('makes nothing when it cannot be sure: the entry gets the command line as it is', () => {
    const pid = String(process.pid);
    for (const args of [
      ['--help'],
      ['-c6', pid, 'tap0'],
      ['--mt=1500', pid, 'tap0'],
      ['--api-socket', '/tmp/x.sock', pid, 'tap0'],
      ['--netns-type=tapfd', '5'],
      [pid, 'tap0', 'extra'],
    ]) {
      expect(batchFor(args), args.join(' ')).toBe('entry');
    }
  });

  it('configures nothing from values tsnet would refuse (tsnet reports them)', () => {
    for (const args of [
      ['-c', '--cidr=10.0.2.5/24', pid],
      ['-c', '--mtu=99999', pid],
      ['-c', '--macaddress=01:00:00:00:00:01', pid],
      // Addresses the launcher's own parser (shell builtins only) must refuse, as tsnet does.
      ['-c', '--cidr=10.0.2/24', pid],
      ['-c', '--cidr=010.0.2.0/24', pid],
      ['-c', '--cidr=10.0.256.0/24', pid],
      ['-c', '--cidr=10..2.0/24', pid],
      ['-c', '--cidr=10.0.2.0./24', pid],
      ['-c', '--cidr=a.b.c.d/24', pid],
      ['-c', '--cidr=10.0.2.0.0/24', pid],
    ]) {
      expect(batchFor(args), args.join(' ')).toEqual(['tuntap add dev tap0 mode tap']);
    }
  });
});

describe('tsnet launcher (src/cli/tsnet.sh): tsnet run starts inside the sandbox namespaces only when tsnet would', () => {
  const script = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../src/cli/tsnet.sh');
  // Stand-ins that say how they were started: node, and unshare (which also answers the probe).
  const bin = fs.mkdtempSync(path.join(os.tmpdir(), 'tsnet-launcher-'));
  fs.writeFileSync(path.join(bin, 'node'), '#!/bin/sh\necho "node sandbox=${TSNET_SANDBOX_NS:-} $*"\n', { mode: 0o755 });
  fs.writeFileSync(
    path.join(bin, 'unshare'),
    '#!/bin/sh\nif [ "$4" = true ]; then exit "${PROBE_RC:-0}"; fi\nwhile [ "$1" != -- ]; do shift; done; shift; exec "$@"\n',
    { mode: 0o755 },
  );
  afterAll(() => fs.rmSync(bin, { recursive: true, force: true }));
  const start = (args: string[], env: Record<string, string> = {}) =>
    execFileSync('sh', [script, ...args], { env: { PATH: `${bin}:/usr/bin:/bin`, ...env }, encoding: 'utf8' }).trim();
  const flags = '--max-semi-space-size=1 --max-old-space-size=1024 --v8-pool-size=1';
  const entry = path.join(path.dirname(script), 'main.cjs');

  it('run (any flags but those two): one Node.js, started in the namespaces (TSNET_SANDBOX_NS=1)', () => {
    expect(start(['run', '--', 'true'])).toBe(`node sandbox=1 ${flags} ${entry} run -- true`);
    expect(start(['run', '-p', '8080:80', 'sh', '-c', 'x'])).toBe(`node sandbox=1 ${flags} ${entry} run -p 8080:80 sh -c x`);
    // CMD's own words after -- are CMD's.
    expect(start(['run', '--', 'sh', '--no-sandbox'])).toBe(`node sandbox=1 ${flags} ${entry} run -- sh --no-sandbox`);
  });

  it('anything else, or when unsure, starts tsnet as it is and lets it decide', () => {
    for (const args of [
      ['run', '--no-sandbox', '--', 'true'],
      ['run', '--map-auto', '--', 'true'],
      ['run', 'sh', '--no-sandbox'], // maybe CMD's, maybe tsnet's: tsnet knows
      ['attach', '1234'],
      ['--version'],
      [],
    ]) {
      expect(start(args), args.join(' ')).toBe(`node sandbox= ${flags} ${entry}${args.length ? ' ' + args.join(' ') : ''}`);
    }
    // The host cannot make the namespaces: tsnet warns about it itself.
    expect(start(['run', '--', 'true'], { PROBE_RC: '1' })).toBe(`node sandbox= ${flags} ${entry} run -- true`);
    // Already inside them.
    expect(start(['run', '--', 'true'], { TSNET_SANDBOX_NS: '1' })).toBe(`node sandbox=1 ${flags} ${entry} run -- true`);
  });
});
