// What a user reads when something is wrong, and what a script sees: one
// error style (`tsnet: <flag>: <what> (<fix>)`, the value quoted once) for
// commander's messages, our parsers and the environment variables; exit
// codes (1, and for `tsnet run` 125/126/127); the text log format.
// Runs the built entry point as a user would (no namespaces needed).

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { commanderMessage } from '../../../src/cli/errors.js';
import { renderText } from '../../../src/host/log.js';
import { checkEnv } from '../../../src/cli/env.js';
import { resolveCommand } from '../../../src/app/run.js';

/** A file without execute permission. */
const plainFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tsnet-output-')), 'not-a-program');
fs.writeFileSync(plainFile, 'echo hi\n', { mode: 0o644 });
afterAll(() => fs.rmSync(path.dirname(plainFile), { recursive: true, force: true }));

const main = fileURLToPath(new URL('../../../dist/src/cli/main.cjs', import.meta.url));
const built = fs.existsSync(main);

function tsnet(args: string[], env: NodeJS.ProcessEnv = {}): { code: number | null; err: string } {
  const r = spawnSync(main, args, { encoding: 'utf8', env: { PATH: process.env.PATH, ...env }, timeout: 20_000 });
  return { code: r.status, err: r.stderr };
}

describe('commander messages in tsnet style', () => {
  it('name the flag once, quote the value once, say how to fix', () => {
    expect(commanderMessage(`error: option '-p, --publish <spec>' argument 'abc' is invalid. "abc": expected X (e.g. -p 8080:80)\n`, 'run')).toBe(
      'tsnet: --publish: "abc": expected X (e.g. -p 8080:80)',
    );
    expect(commanderMessage(`error: unknown option '--frob'`, 'attach')).toBe('tsnet: --frob: unknown option (tsnet attach --help lists them)');
    expect(commanderMessage(`error: unknown option '--mtux'\n(Did you mean --mtu?)`, 'run')).toBe(
      'tsnet: --mtux: unknown option (did you mean --mtu? tsnet run --help lists them)',
    );
    expect(commanderMessage(`error: option '-m, --mtu <mtu>' argument missing`, 'attach')).toBe('tsnet: --mtu: needs a value (tsnet attach --help shows its form)');
    expect(commanderMessage(`error: missing required argument 'target'`, 'attach')).toBe('tsnet: <target>: missing (tsnet attach --help shows the usage)');
    expect(commanderMessage(`error: unknown command 'atach'\n(Did you mean attach?)`, '')).toBe(
      'tsnet: atach: unknown command (did you mean attach? tsnet --help lists them)',
    );
    expect(commanderMessage(`error: option '--log-level <level>' value 'loud' from env 'TSNET_LOG_LEVEL' is invalid. "loud" is not a log level (use x)`, 'run')).toBe(
      'tsnet: TSNET_LOG_LEVEL: "loud" is not a log level (use x)',
    );
    expect(commanderMessage(`error: too many arguments for 'replay'. Expected 1 argument but got 2.`, 'replay')).toBe(
      'tsnet: replay: too many arguments: expected at most 1, got 2 (tsnet replay --help shows the usage)',
    );
  });
});

describe('environment variables', () => {
  it('are checked with one line naming the variable', () => {
    expect(checkEnv({})).toEqual({});
    expect(checkEnv({ TSNET_LOG_LEVEL: 'debug', TSNET_LOG_FORMAT: 'json' })).toEqual({ logLevel: 'debug', logFormat: 'json' });
    expect(() => checkEnv({ TSNET_LOG_LEVEL: 'loud' })).toThrow('TSNET_LOG_LEVEL: "loud" is not a log level (use one of fatal, error, warn, info, debug, trace, silent)');
    expect(() => checkEnv({ TSNET_LOG_FORMAT: 'xml' })).toThrow('TSNET_LOG_FORMAT: "xml" is not a log format (use text or json)');
    expect(() => checkEnv({ TSNET_TAP_ENGINE: 'fast' })).toThrow('TSNET_TAP_ENGINE: "fast" is not a TAP engine');
    expect(() => checkEnv({ TSNET_RESOLV_CONF: '/nonexistent/resolv.conf' })).toThrow('TSNET_RESOLV_CONF: cannot read "/nonexistent/resolv.conf" (ENOENT)');
  });
});

describe('tsnet run: finding CMD', () => {
  it('gives sh\'s statuses: 127 not found, 126 not executable', () => {
    expect(resolveCommand('sh')).toMatchObject({ ok: true });
    expect(resolveCommand('no-such-command-tsnet')).toMatchObject({ ok: false, code: 127 });
    expect(resolveCommand('/nonexistent/x')).toMatchObject({ ok: false, code: 127 });
    expect(resolveCommand(plainFile)).toMatchObject({ ok: false, code: 126 });
    expect(resolveCommand('/etc')).toMatchObject({ ok: false, code: 126 });
  });
});

describe('text log lines', () => {
  it('read as `tsnet: [level: ]message key=value`, objects as JSON, errors by their message', () => {
    expect(renderText('{"level":40,"time":1,"pid":7,"name":"tsnet","msg":"ping to outside addresses is off"}\n')).toBe('tsnet: warning: ping to outside addresses is off\n');
    expect(renderText('{"level":30,"time":1,"pid":7,"name":"tsnet","msg":"network up: tap0"}')).toBe('tsnet: network up: tap0\n');
    expect(renderText('{"level":30,"msg":"stats","counters":{"rxFrames":3}}')).toBe('tsnet: stats counters={"rxFrames":3}\n');
    expect(renderText('{"level":50,"msg":"failed","file":"/tmp/a b","err":{"type":"Error","message":"EIO","stack":"Error: EIO\\n at x"}}')).toBe(
      'tsnet: error: failed file="/tmp/a b" err="EIO"\n',
    );
    expect(renderText('{"level":20,"time":0,"msg":"drop","reason":"dst-port-zero"}')).toMatch(/^\d\d:\d\d:\d\d\.\d{3} tsnet: debug: drop reason=dst-port-zero\n$/);
  });
});

describe.skipIf(!built)('the built command line', () => {
  it('reports bad flags in one style, exit 1 (attach) and 125 (run)', () => {
    const cases: Array<[string[], number, string]> = [
      [['run', '-p', 'abc', '--', 'true'], 125, 'tsnet: --publish: "abc": expected [HOSTADDR:]HOSTPORT:GUESTPORT[/tcp|/udp] (e.g. -p 8080:80 or -p 127.0.0.1:5353:53/udp)\n'],
      [['run', '--mtu', '5', '--', 'true'], 125, 'tsnet: --mtu: "5" is not an MTU (use a whole number from 68 to 65521)\n'],
      [['run', '--frob', '--', 'true'], 125, 'tsnet: --frob: unknown option (tsnet run --help lists them)\n'],
      [['attach', '--cidr', '10.0.0.0/28', '1'], 1, 'tsnet: --cidr: "10.0.0.0/28": prefix length needs to be 1-25 (e.g. 10.0.2.0/24)\n'],
      [['attach'], 1, 'tsnet: <target>: missing (tsnet attach --help shows the usage)\n'],
      [['attach', '--log-format', 'xml', '1'], 1, 'tsnet: --log-format: "xml" is not a log format (use text or json)\n'],
      [['frob'], 1, 'tsnet: frob: unknown command (tsnet --help lists them)\n'],
    ];
    for (const [args, code, err] of cases) {
      const r = tsnet(args);
      expect({ args, code: r.code, err: r.err }).toEqual({ args, code, err });
    }
  });

  it('checks its environment variables before anything else', () => {
    expect(tsnet(['run', '--', 'true'], { TSNET_LOG_LEVEL: 'loud' })).toEqual({
      code: 125,
      err: 'tsnet: TSNET_LOG_LEVEL: "loud" is not a log level (use one of fatal, error, warn, info, debug, trace, silent)\n',
    });
    expect(tsnet(['attach', '1'], { TSNET_LOG_FORMAT: 'xml' })).toEqual({ code: 1, err: 'tsnet: TSNET_LOG_FORMAT: "xml" is not a log format (use text or json)\n' });
  });

  it('tsnet run: 127 for a command not found, 126 for one that cannot be executed, before any namespace', () => {
    expect(tsnet(['run', '--', 'no-such-command-tsnet'])).toEqual({
      code: 127,
      err: 'tsnet: no-such-command-tsnet: command not found (check the name, or install it; PATH is searched)\n',
    });
    expect(tsnet(['run', '--', plainFile])).toEqual({ code: 126, err: `tsnet: ${plainFile}: cannot be executed: permission denied (chmod +x it, or run it through its interpreter)\n` });
  });

  it('documents every flag of every command in the man page and the README', () => {
    const slirp = fileURLToPath(new URL('../../../dist/src/cli/slirp4netns.cjs', import.meta.url));
    const helps = ['', 'run', 'attach', 'replay', 'doctor'].map((c) => spawnSync(main, c ? [c, '--help'] : ['--help'], { encoding: 'utf8' }).stdout);
    helps.push(spawnSync(slirp, ['--help'], { encoding: 'utf8' }).stdout);
    const flags = new Set(helps.flatMap((h) => [...h.matchAll(/(?<![\w-])--[a-z][a-z0-9-]+/g)].map((m) => m[0])));
    expect(flags.size).toBeGreaterThan(40);
    const man = fs.readFileSync(fileURLToPath(new URL('../../../man/tsnet.1', import.meta.url)), 'utf8').replaceAll('\\-', '-');
    const readme = fs.readFileSync(fileURLToPath(new URL('../../../README.md', import.meta.url)), 'utf8');
    expect([...flags].filter((f) => !man.includes(f))).toEqual([]);
    expect([...flags].filter((f) => !readme.includes(f))).toEqual([]);
  });

  it('names the flag of a file it cannot use', () => {
    const pcap = fileURLToPath(new URL('../../../pcaps/http-curl.pcap', import.meta.url));
    expect(tsnet(['replay', '/nonexistent/in.pcap'])).toEqual({
      code: 1,
      err: 'tsnet: <in.pcap>: cannot read "/nonexistent/in.pcap": no such file or directory (ENOENT) (name an Ethernet pcap, e.g. one written by --pcap or tcpdump -w)\n',
    });
    expect(tsnet(['replay', pcap, '--out', '/nonexistent/out.pcap'])).toEqual({
      code: 1,
      err: 'tsnet: --out: cannot create "/nonexistent/out.pcap": no such file or directory (ENOENT) (name a file in a directory you can write)\n',
    });
    const r = tsnet(['replay', plainFile]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^tsnet: <in\.pcap>: ".*not-a-program" is not a pcap file: .* \(name an Ethernet pcap, e\.g\. one written by --pcap or tcpdump -w\)\n$/);
  });
});

describe.skipIf(!built)('the built commands start from their code caches', () => {
  // What src/cli/load.cjs does, reported: V8 takes or rejects the cache the
  // build wrote beside each bundle, under the flags of load.cjs's #! line.
  const flags = fs.readFileSync(main, 'utf8').split('\n')[0]!.replace('#!/usr/bin/env -S node', '').trim().split(/\s+/).filter(Boolean);
  const probe = `
    const fs = require('node:fs'), vm = require('node:vm'), Module = require('node:module');
    const file = process.argv[1];
    let src = fs.readFileSync(file, 'utf8');
    if (src.startsWith('#!')) src = '//' + src.slice(2);
    const s = new vm.Script(Module.wrap(src), { filename: file, cachedData: fs.readFileSync(file + '.cache') });
    process.stdout.write(s.cachedDataRejected ? 'rejected' : 'accepted');`;
  for (const name of ['main', 'slirp4netns']) {
    it(`${name}.bundle.cjs.cache is accepted with the #! flags, and rejected (harmlessly) without them`, () => {
      const bundle = path.join(path.dirname(main), `${name}.bundle.cjs`);
      expect(flags).toContain('--max-semi-space-size=1');
      // The shell launchers (the drop-in's, tsnet's) start the same entries with the same flags.
      for (const launcher of ['slirp4netns', 'tsnet']) {
        const sh = fs.readFileSync(path.join(path.dirname(main), launcher), 'utf8');
        expect(/^node_flags='?([^'\n]*)'?$/m.exec(sh)?.[1]?.split(' '), launcher).toEqual(flags);
      }
      expect(spawnSync(process.execPath, [...flags, '-e', probe, bundle], { encoding: 'utf8' }).stdout).toBe('accepted');
      expect(spawnSync(process.execPath, ['-e', probe, bundle], { encoding: 'utf8' }).stdout).toBe('rejected');
      // The command still runs when V8 rejects the cache.
      const r = spawnSync(process.execPath, [path.join(path.dirname(main), `${name}.cjs`), '--version'], { encoding: 'utf8' });
      expect(r.status).toBe(0);
      expect(r.stdout).toMatch(/0\.1\.0/);
    });
  }
});
