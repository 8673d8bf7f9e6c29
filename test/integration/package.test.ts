// The npm package as a new user gets it: the repository's files as a fresh
// clone has them (git ls-files, no dist/) are packed with `npm pack`, which
// must build through prepack; the tarball must hold everything the commands
// need (bundles, their source maps and the sources they name, the drop-in's
// launcher, LICENSE, the man page, the README's example captures) and
// package.json the fields a registry shows. Installed from the tarball into
// an empty prefix (no build step), `tsnet --help`, `tsnet doctor`,
// `tsnet run` and the drop-in `tsnet-slirp4netns` work as the test user —
// nothing named `slirp4netns` lands on the PATH, and `man tsnet` works.

import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Netns, integrationSkip, killAll, readyFrom, runAs, runAsUser, spawnAs, stopTsnet, userTempDir, type Tsnet } from './harness.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const isCheckout = fs.existsSync(path.join(root, '.git'));

let work = '';
let tarball = '';
let prefix = '';
let files: string[] = [];

/** Runs a command as ourselves in dir; throws with its output when it fails. */
function sh(cmd: string, args: string[], cwd: string, timeout = 180_000): string {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout, env: { ...process.env, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' } });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

describe.skipIf(integrationSkip !== '' || !isCheckout)('npm package: packed from a fresh checkout, installed into an empty prefix', () => {
  beforeAll(() => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'tsnet-pack-'));
    fs.chmodSync(work, 0o755);
    // What a fresh clone holds: the tracked (and new, not ignored) files, no dist/.
    const clone = path.join(work, 'clone');
    const list = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: root, encoding: 'utf8' }).split('\0').filter(Boolean);
    for (const f of list) {
      const from = path.join(root, f);
      if (!fs.existsSync(from)) continue; // deleted in the working tree
      fs.mkdirSync(path.dirname(path.join(clone, f)), { recursive: true });
      fs.copyFileSync(from, path.join(clone, f));
      fs.chmodSync(path.join(clone, f), fs.statSync(from).mode);
    }
    expect(fs.existsSync(path.join(clone, 'dist'))).toBe(false);
    // The dev dependencies `npm ci` would install (the build needs tsc and esbuild).
    fs.symlinkSync(path.join(root, 'node_modules'), path.join(clone, 'node_modules'));
    const out = sh('npm', ['pack', '--json', '--pack-destination', work], clone);
    const info = JSON.parse(out.slice(out.indexOf('['))) as Array<{ filename: string; files: Array<{ path: string }> }>;
    tarball = path.join(work, info[0]!.filename);
    files = info[0]!.files.map((f) => f.path).sort();
    prefix = path.join(work, 'prefix');
    // koffi comes from npm's cache (npm ci filled it); from the registry only if it is not there.
    try {
      sh('npm', ['install', '--global', '--prefix', prefix, '--offline', tarball], work);
    } catch {
      sh('npm', ['install', '--global', '--prefix', prefix, '--prefer-offline', tarball], work);
    }
    execFileSync('chmod', ['-R', 'a+rX', work]);
  }, 300_000);

  afterAll(async () => {
    await killAll();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  it('holds the built commands, their maps and sources, the launcher scripts, LICENSE, the man page and the example captures', () => {
    for (const f of [
      'package.json', 'LICENSE', 'README.md', 'man/tsnet.1',
      'dist/src/cli/tsnet', 'dist/src/cli/main.cjs', 'dist/src/cli/main.bundle.cjs', 'dist/src/cli/main.bundle.cjs.map', 'dist/src/cli/main.bundle.cjs.cache',
      'dist/src/cli/slirp4netns.cjs', 'dist/src/cli/slirp4netns.bundle.cjs', 'dist/src/cli/slirp4netns.bundle.cjs.map', 'dist/src/cli/slirp4netns.bundle.cjs.cache',
      'dist/src/cli/slirp4netns', 'dist/src/cli/sandbox.sh',
      'pcaps/http-curl.pcap', 'pcaps/http-download-loss.pcap', 'src/stack/stack.ts', 'native/libc.ts',
    ]) {
      expect(files, f).toContain(f);
    }
    // No test code, no tsc output the bundles do not use.
    expect(files.filter((f) => f.startsWith('test/') || f.startsWith('bench/') || /^dist\/src\/(stack|wire|host)\//.test(f))).toEqual([]);
    const pkg = JSON.parse(fs.readFileSync(path.join(prefix, 'lib/node_modules/tsnet/package.json'), 'utf8'));
    expect(pkg.license).toBe('MIT');
    expect(pkg.os).toEqual(['linux']);
    expect(pkg.repository?.url).toMatch(/^git\+https:\/\//);
    expect(pkg.bin).toEqual({ tsnet: 'dist/src/cli/tsnet', 'tsnet-slirp4netns': 'dist/src/cli/slirp4netns' });
    expect(Object.keys(pkg.dependencies)).toEqual(['koffi']); // everything else is in the bundles
  });

  it('source maps name only what ships, or carry the text of what does not', () => {
    const installed = path.join(prefix, 'lib/node_modules/tsnet');
    for (const map of ['dist/src/cli/main.bundle.cjs.map', 'dist/src/cli/slirp4netns.bundle.cjs.map']) {
      const m = JSON.parse(fs.readFileSync(path.join(installed, map), 'utf8')) as { sources: string[]; sourcesContent?: Array<string | null> };
      const missing = m.sources.filter((s, i) => !fs.existsSync(path.resolve(path.dirname(path.join(installed, map)), s)) && !m.sourcesContent?.[i]);
      expect(missing, map).toEqual([]);
      // Our own sources resolve to files in the package.
      const ours = m.sources.filter((s) => /(^|\/)(src|native)\/.*\.ts$/.test(s) && !s.includes('node_modules'));
      expect(ours.length).toBeGreaterThan(50);
      for (const s of ours) expect(fs.existsSync(path.resolve(path.dirname(path.join(installed, map)), s)), s).toBe(true);
    }
  });

  it('puts tsnet and tsnet-slirp4netns on the PATH, never a slirp4netns, and the man page on the MANPATH', () => {
    expect(fs.readdirSync(path.join(prefix, 'bin')).sort()).toEqual(['tsnet', 'tsnet-slirp4netns']);
    expect(fs.existsSync(path.join(prefix, 'share/man/man1/tsnet.1'))).toBe(true);
  });

  it.skipIf(spawnSync('podman', ['--version']).status !== 0)('podman, with the install on the PATH, still uses the system slirp4netns', async () => {
    // A podman state of its own (as test/integration/podman.test.ts), so its pause process can be stopped by its PID.
    const dir = userTempDir('tspk-');
    const env = {
      PATH: `${path.join(prefix, 'bin')}:${process.env.PATH ?? ''}`,
      HOME: path.join(dir, 'h'),
      XDG_RUNTIME_DIR: path.join(dir, 'r'),
      XDG_CONFIG_HOME: path.join(dir, 'h/.config'),
      XDG_DATA_HOME: path.join(dir, 'h/.local/share'),
    };
    for (const d of [env.XDG_RUNTIME_DIR, path.join(env.XDG_CONFIG_HOME, 'containers'), env.XDG_DATA_HOME]) fs.mkdirSync(d, { recursive: true });
    fs.writeFileSync(path.join(env.XDG_CONFIG_HOME, 'containers/containers.conf'), '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\nruntime = "runc"\n');
    fs.writeFileSync(path.join(env.XDG_CONFIG_HOME, 'containers/storage.conf'), '[storage]\ndriver = "vfs"\n');
    if (runAs) execFileSync('chown', ['-R', `${runAs.uid}:${runAs.gid}`, dir]);
    try {
      const info = await runAsUser('podman', ['info', '--format', '{{.Host.Slirp4NetNS.Executable}}|{{.Host.Slirp4NetNS.Version}}'], { env, timeoutMs: 60_000 });
      expect(info.code, info.stderr).toBe(0);
      expect(info.stdout).not.toContain(prefix);
      expect(info.stdout).not.toContain('tsnet');
    } finally {
      const pauseFile = path.join(env.XDG_RUNTIME_DIR, 'libpod/tmp/pause.pid');
      try {
        process.kill(Number(fs.readFileSync(pauseFile, 'utf8').trim()), 'SIGKILL');
      } catch {
        // none started, or gone
      }
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('tsnet --help, tsnet doctor and tsnet run work from the install, as the test user', async () => {
    const bin = path.join(prefix, 'bin/tsnet');
    const help = await runAsUser(bin, ['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/Examples:/);
    const doctor = await runAsUser(bin, ['doctor']);
    expect(doctor.code, doctor.stdout).toBe(0);
    const run = await runAsUser(bin, ['run', '--', 'sh', '-c', 'ip -4 -br addr show tap0; ping -c 1 -W 3 10.0.2.2 >/dev/null && echo gateway-ok'], { timeoutMs: 30_000 });
    expect(run.code, run.stdout + run.stderr).toBe(0);
    expect(run.stdout).toMatch(/tap0\s+UP\s+10\.0\.2\.100\/24/);
    expect(run.stdout).toMatch(/gateway-ok/);
  });

  it('the drop-in, tsnet-slirp4netns, serves a namespace the way podman starts slirp4netns', async () => {
    const drop = path.join(prefix, 'bin/tsnet-slirp4netns');
    const v = await runAsUser(drop, ['--version']);
    expect(v.code).toBe(0);
    expect(v.stdout).toMatch(/^slirp4netns version 1\.2\.0\+tsnet\./m);
    const ns = await Netns.create();
    const proc = spawnAs(drop, ['-c', '-r', '3', String(ns.pid), 'tap0'], { stdio: ['ignore', 'pipe', 'pipe', 'pipe'] });
    let err = '';
    proc.stdout!.setEncoding('utf8').on('data', (d: string) => (err += d));
    proc.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
    const t: Tsnet = { proc, stderr: () => err, exited: new Promise((r) => proc.on('exit', (code, signal) => r({ code, signal }))) };
    try {
      expect(await readyFrom(t)).toBe('1');
      const ping = await ns.exec(['ping', '-c', '1', '-W', '3', '10.0.2.2']);
      expect(ping.stdout, ping.stderr + err).toMatch(/1 received/);
    } finally {
      await stopTsnet(t);
      await ns.destroy();
    }
  });
});
