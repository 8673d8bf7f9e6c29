// podman (Debian's 4.x, rootless, as the unprivileged test user) with
// tsnet's slirp4netns bin as its network command: a container gets a
// working network and a published port through port_handler=slirp4netns.
// Set up the way these machines need it: runc with cgroup_manager=cgroupfs,
// vfs storage, a subordinate uid range for the user (from the global
// setup), and an image imported from a busybox-static root filesystem
// (there is no registry). Skipped when podman or runc is not installed.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpGet, httpPoll, integrationSkip, killAll, runAs, runAsUser, stageDir, userTempDir } from './harness.js';

function has(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const ready = integrationSkip === '' && runAs !== null && has('podman') && has('runc') && fs.existsSync('/bin/busybox');

describe.skipIf(!ready)('podman on tsnet (--network-cmd-path, rootless)', () => {
  const slirpBin = path.join(stageDir, 'dist/src/cli/slirp4netns');
  let dir = '';
  let env: Record<string, string> = {};

  const podman = (args: string[], timeoutMs = 120_000) =>
    runAsUser('podman', [`--network-cmd-path=${slirpBin}`, ...args], { env, timeoutMs });

  beforeAll(async () => {
    // The global setup gave the test user its subordinate range (test/support/stage.ts),
    // and podman runs in / (test/support/proc.ts): it chdirs to its cwd as the user.
    // Short: podman puts its API socket at $XDG_RUNTIME_DIR/libpod/tmp/<64-hex id>.net,
    // and a socket path of 108 bytes or more is refused (as by slirp4netns).
    dir = userTempDir('tsp-');
    const home = path.join(dir, 'h');
    env = {
      HOME: home,
      XDG_RUNTIME_DIR: path.join(dir, 'r'),
      XDG_CONFIG_HOME: path.join(home, '.config'),
      XDG_DATA_HOME: path.join(home, '.local/share'),
    };
    for (const d of [env.XDG_RUNTIME_DIR!, path.join(env.XDG_CONFIG_HOME!, 'containers'), env.XDG_DATA_HOME!]) fs.mkdirSync(d, { recursive: true });
    fs.writeFileSync(path.join(env.XDG_CONFIG_HOME!, 'containers/containers.conf'), '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\nruntime = "runc"\n');
    fs.writeFileSync(path.join(env.XDG_CONFIG_HOME!, 'containers/storage.conf'), '[storage]\ndriver = "vfs"\n');
    // A busybox-static root filesystem with a CGI that prints the client's address.
    const rootfs = path.join(dir, 'rootfs');
    for (const d of ['bin', 'etc', 'proc', 'sys', 'dev', 'tmp', 'www/cgi-bin']) fs.mkdirSync(path.join(rootfs, d), { recursive: true });
    fs.copyFileSync('/bin/busybox', path.join(rootfs, 'bin/busybox'));
    fs.chmodSync(path.join(rootfs, 'bin/busybox'), 0o755);
    for (const c of ['sh', 'ip', 'wget', 'cat', 'httpd', 'sleep', 'id']) fs.symlinkSync('busybox', path.join(rootfs, 'bin', c));
    fs.writeFileSync(path.join(rootfs, 'www/index.html'), 'podman page\n');
    fs.writeFileSync(path.join(rootfs, 'www/cgi-bin/peer'), '#!/bin/sh\nprintf "Content-Type: text/plain\\r\\n\\r\\n"\necho "peer=$REMOTE_ADDR"\n');
    fs.chmodSync(path.join(rootfs, 'www/cgi-bin/peer'), 0o755);
    const tar = path.join(dir, 'rootfs.tar');
    execFileSync('tar', ['-C', rootfs, '-cf', tar, '.']);
    execFileSync('chown', ['-R', `${runAs!.uid}:${runAs!.gid}`, dir]);
    const imp = await podman(['import', tar, 'localhost/tsnet-busybox']);
    expect(imp.code, imp.stderr).toBe(0);
  }, 180_000);

  afterAll(async () => {
    await podman(['rm', '-af']).catch(() => undefined);
    // Rootless podman keeps a pause process holding its user namespace: stop it by its PID.
    const pauseFile = path.join(env.XDG_RUNTIME_DIR ?? '/nonexistent', 'libpod/tmp/pause.pid');
    if (fs.existsSync(pauseFile)) {
      try {
        process.kill(Number(fs.readFileSync(pauseFile, 'utf8').trim()), 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await killAll();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  /** podman run with `extra` flags: tap0 configured, and a page from a host-loopback server through 10.0.2.2. */
  async function reachesHostPage(extra: string[]): Promise<void> {
    const host = http.createServer((_, res) => res.end('host page\n'));
    await new Promise<void>((r) => host.listen(0, '127.0.0.1', () => r()));
    const port = (host.address() as net.AddressInfo).port;
    try {
      const r = await podman(['run', '--rm', ...extra, '--network', 'slirp4netns:allow_host_loopback=true', 'localhost/tsnet-busybox',
        'sh', '-c', `ip -4 addr show tap0; wget -qO- http://10.0.2.2:${port}/`]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/inet 10\.0\.2\.100\/24/);
      expect(r.stdout).toContain('host page');
    } finally {
      await new Promise<void>((r) => host.close(() => r()));
    }
  }

  it('a container reaches a host-loopback server through 10.0.2.2 (allow_host_loopback=true)', () => reachesHostPage([]), 120_000);

  // keep-id maps the calling user to its own uid inside the container's user
  // namespace (not root), and --uidmap can leave uid 0 elsewhere: tap0 must
  // still be configured with the capabilities the namespace's owner holds.
  for (const userns of [['--userns=keep-id'], ['--uidmap', '0:1:1000', '--uidmap', '1000:0:1', '--uidmap', '1001:1001:64535']]) {
    it(`configures tap0 and reaches the host with ${userns.join(' ')}`, () => reachesHostPage(userns), 120_000);
  }

  it('IPv6 by default (podman passes --enable-ipv6): the container gets a global fd00:: address and reaches fd00::2 over TCP', async () => {
    const host = http.createServer((_, res) => res.end('host page over ipv6\n'));
    await new Promise<void>((r) => host.listen(0, '::1', () => r()));
    const port = (host.address() as net.AddressInfo).port;
    try {
      const wait = 'for i in $(seq 100); do ip -6 addr show dev tap0 scope global | grep fd00 | grep -qv tentative && break; sleep 0.1; done';
      const r = await podman(['run', '--rm', '--network', 'slirp4netns:allow_host_loopback=true', 'localhost/tsnet-busybox',
        'sh', '-c', `${wait}; ip -6 addr show dev tap0 scope global; wget -qO- http://[fd00::2]:${port}/`]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/inet6 fd00::[0-9a-f:]+\/64 scope global/);
      expect(r.stdout).toContain('host page over ipv6');
    } finally {
      await new Promise<void>((r) => host.close(() => r()));
    }
  }, 120_000);

  it('-p with port_handler=slirp4netns publishes the container port through the API', async () => {
    const port = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const run = await podman(['run', '-d', '--name', 'tsnet-web', '--network', 'slirp4netns:port_handler=slirp4netns', '-p', `127.0.0.1:${port}:80`,
      'localhost/tsnet-busybox', 'httpd', '-f', '-p', '80', '-h', '/www']);
    expect(run.code, run.stderr).toBe(0);
    const get = (p: string) => httpGet(`http://127.0.0.1:${port}${p}`);
    const body = await httpPoll(`http://127.0.0.1:${port}/`, 'podman page\n');
    expect(body).toBe('podman page\n');
    // A loopback client appears as the gateway (tsnet keeps real addresses for other clients).
    let peer = '';
    for (let i = 0; i < 20 && !peer.startsWith('peer='); i++) {
      peer = await get('/cgi-bin/peer');
      if (!peer.startsWith('peer=')) await new Promise((r) => setTimeout(r, 100));
    }
    expect(peer, peer).toMatch(/^peer=(\[::ffff:)?10\.0\.2\.2\]?\n$/);
    const rm = await podman(['rm', '-f', '-t', '0', 'tsnet-web']);
    expect(rm.code).toBe(0);
  }, 120_000);

  it("keeps the client's source address: a client in a veth namespace is seen as itself", async () => {
    const ns = `tsnet-pm-client-${process.pid}`;
    const ip = (...a: string[]) => execFileSync('ip', a, { stdio: 'pipe' });
    ip('netns', 'add', ns);
    try {
      ip('link', 'add', 'tspm-h', 'type', 'veth', 'peer', 'name', 'tspm-c');
      ip('link', 'set', 'tspm-c', 'netns', ns);
      ip('addr', 'add', '10.204.0.1/24', 'dev', 'tspm-h');
      ip('link', 'set', 'tspm-h', 'up');
      ip('-n', ns, 'addr', 'add', '10.204.0.2/24', 'dev', 'tspm-c');
      ip('-n', ns, 'link', 'set', 'tspm-c', 'up');
      const port = 18000 + (process.pid % 1000);
      const run = await podman(['run', '-d', '--name', 'tsnet-peer', '--network', 'slirp4netns:port_handler=slirp4netns', '-p', `10.204.0.1:${port}:80`,
        'localhost/tsnet-busybox', 'httpd', '-f', '-p', '80', '-h', '/www']);
      expect(run.code, run.stderr).toBe(0);
      let out = '';
      for (let i = 0; i < 50 && !out.startsWith('peer='); i++) {
        await new Promise((r) => setTimeout(r, 100));
        try {
          out = execFileSync('ip', ['netns', 'exec', ns, 'busybox', 'wget', '-qO-', `http://10.204.0.1:${port}/cgi-bin/peer`], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
        } catch {
          out = '';
        }
      }
      expect(out).toMatch(/^peer=(\[::ffff:)?10\.204\.0\.2\]?\n$/);
      await podman(['rm', '-f', '-t', '0', 'tsnet-peer']);
    } finally {
      try {
        ip('link', 'del', 'tspm-h');
      } catch {
        // gone with the namespace
      }
      ip('netns', 'del', ns);
    }
  }, 120_000);
});
