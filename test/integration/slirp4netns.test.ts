// The `slirp4netns` bin driven the way the engines drive slirp4netns:
// podman 4 runs it inside its rootless user namespace and joins only the
// network namespace by path (-c -e 3 -r 4 --api-socket ... --netns-type=path
// PATH tap0); rootlesskit 1 runs it from outside by PID without -c
// (--mtu 65520 -r 3 --disable-host-loopback --api-socket ... PID tap0) and
// configures tap0 itself.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { apiCall } from '../support/api-client.js';
import { httpPoll, integrationSkip, killAll, runAs, spawnAs, stageDir, userTempDir, namespaceFixture } from './harness.js';

// The bin engines run: the launcher (src/cli/slirp4netns.sh), which execs the Node.js entry.
const slirpBin = path.join(stageDir, 'dist/src/cli/slirp4netns');

function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve) => {
    let d = '';
    stream.setEncoding('utf8');
    stream.on('data', (c: string) => (d += c));
    stream.on('end', () => resolve(d));
  });
}

describe.skipIf(integrationSkip !== '')('slirp4netns drop-in (engine argument vectors)', () => {
  const fx = namespaceFixture('tsnet-s4-');

  it('--help exits 0 and names the options podman and rootlesskit grep for; bad args print usage and exit 1', async () => {
    const help = spawnAs(slirpBin, ['--help'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const text = await readAll(help.stdout!);
    expect(await new Promise((r) => help.on('exit', r))).toBe(0);
    for (const o of ['--disable-host-loopback', '--mtu', '--enable-sandbox', '--enable-seccomp', '--enable-ipv6', '--api-socket', '--netns-type', '--userns-path']) {
      expect(text).toContain(o);
    }
    const bad = spawnAs(slirpBin, ['--bogus'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const err = await readAll(bad.stderr!);
    expect(await new Promise((r) => bad.on('exit', r))).toBe(1);
    expect(err).toMatch(/unrecognized option '--bogus'\nUsage: slirp4netns/);
  });

  it("podman's way: inside the user namespace, netns by path, -c -e 3 -r 4 and the API socket", async () => {
    const sock = path.join(fx.tmp, 'api.sock');
    const proc = spawnAs(
      'nsenter',
      ['--preserve-credentials', '-U', '-t', String(fx.ns.pid), '--', slirpBin,
        '--disable-host-loopback', '--mtu=65520', '--enable-sandbox', '--enable-seccomp', '--enable-ipv6',
        '-c', '-e', '3', '-r', '4', '--api-socket', sock, '--netns-type=path', `/proc/${fx.ns.pid}/ns/net`, 'tap0'],
      { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'] },
    );
    let stderr = '';
    proc.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const ready = await readAll(proc.stdio[4] as NodeJS.ReadableStream);
    expect(ready, stderr).toBe('1');
    const addr = await fx.ns.exec(['ip', '-4', 'addr', 'show', 'tap0']);
    expect(addr.stdout).toMatch(/inet 10\.0\.2\.100\/24/);
    expect((await fx.ns.exec(['ip', 'link', 'show', 'tap0'])).stdout).toMatch(/mtu 65520/);
    expect((await fx.ns.exec(['ping', '-c', '1', '-W', '2', '10.0.2.2'])).stdout).toMatch(/1 received/);
    // podman passes --enable-ipv6: the guest configures an fd00:: address from the router advertisement.
    await fx.ns.ipv6Ready();
    expect((await fx.ns.exec(['ping', '-6', '-c', '1', '-W', '2', 'fd00::3'])).stdout).toMatch(/1 received/);
    const add = await apiCall(sock, { execute: 'add_hostfwd', arguments: { proto: 'tcp', host_addr: '127.0.0.1', host_port: 0, guest_port: 80 } });
    expect(add.return.id).toBe(1);
    // Closing the exit fd (podman's exit pipe) makes it exit.
    const exited = new Promise((r) => proc.on('exit', r));
    (proc.stdio[3] as NodeJS.WritableStream & { destroy(): void }).destroy();
    expect(await exited).toBe(0);
    expect(fs.existsSync(sock)).toBe(false);
  });

  it('attaches to an existing TAP of that name instead of recreating it', async () => {
    expect((await fx.ns.exec(['ip', 'tuntap', 'add', 'tap0', 'mode', 'tap'])).code).toBe(0);
    const before = (await fx.ns.exec(['ip', '-o', 'link', 'show', 'tap0'])).stdout.split(':')[0];
    const proc = spawnAs(slirpBin, ['-c', '-r', '3', String(fx.ns.pid), 'tap0'], { stdio: ['ignore', 'ignore', 'pipe', 'pipe'] });
    expect(await readAll(proc.stdio[3] as NodeJS.ReadableStream)).toBe('1');
    expect((await fx.ns.exec(['ip', '-o', 'link', 'show', 'tap0'])).stdout.split(':')[0]).toBe(before); // same ifindex
    expect((await fx.ns.exec(['ping', '-c', '1', '-W', '2', '10.0.2.2'])).stdout).toMatch(/1 received/);
    const exited = new Promise((r) => proc.on('exit', r));
    proc.kill('SIGTERM');
    expect(await exited).toBe(0);
  });

  it("rootlesskit's way: by PID from outside, no -c (tap0 configured by the caller)", async () => {
    const sock = path.join(fx.tmp, 'api.sock');
    const proc = spawnAs(slirpBin, ['--mtu', '65520', '-r', '3', '--disable-host-loopback', '--api-socket', sock, String(fx.ns.pid), 'tap0'], {
      stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
    });
    expect(await readAll(proc.stdio[3] as NodeJS.ReadableStream)).toBe('1');
    for (const cmd of [['ip', 'link', 'set', 'tap0', 'mtu', '65520', 'up'], ['ip', 'addr', 'add', '10.0.2.100/24', 'dev', 'tap0'], ['ip', 'route', 'add', 'default', 'via', '10.0.2.2']]) {
      expect((await fx.ns.exec(cmd)).code).toBe(0);
    }
    expect((await fx.ns.exec(['ping', '-c', '1', '-W', '2', '10.0.2.3'])).stdout).toMatch(/1 received/);
    const list = await apiCall(sock, { execute: 'list_hostfwd' });
    expect(list).toEqual({ entries: [], return: { entries: [] } });
    const exited = new Promise((r) => proc.on('exit', r));
    proc.kill('SIGTERM');
    expect(await exited).toBe(0);
  });
});

const hasRootlesskit = (() => {
  try {
    execFileSync('sh', ['-c', 'command -v rootlesskit'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

/**
 * rootlesskit maps a subordinate id range: as root the global setup gave the
 * test user one (test/support/stage.ts); as a normal user, it is yours to have.
 */
const hasSubordinateIds =
  runAs !== null ||
  ['/etc/subuid', '/etc/subgid'].every((f) => {
    try {
      const me = os.userInfo();
      return fs.readFileSync(f, 'utf8').split('\n').some((l) => l.startsWith(`${me.username}:`) || l.startsWith(`${me.uid}:`));
    } catch {
      return false;
    }
  });

describe.skipIf(integrationSkip !== '' || !hasRootlesskit || !hasSubordinateIds)('rootlesskit on tsnet (Debian rootlesskit, --net=slirp4netns)', () => {
  afterAll(killAll);

  it('gives the child a network (host loopback via 10.0.2.2, DNS 10.0.2.3) and publishes a port through the API', async () => {
    const http = await import('node:http');
    const host = http.createServer((_, res) => res.end('host page\n'));
    await new Promise<void>((r) => host.listen(0, '127.0.0.1', () => r()));
    const hostPort = (host.address() as net.AddressInfo).port;
    const www = userTempDir('tsnet-rk-www-');
    fs.writeFileSync(path.join(www, 'index.html'), 'guest via rootlesskit\n');
    fs.chmodSync(path.join(www, 'index.html'), 0o644);
    const published = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const rk = spawnAs(
      'rootlesskit',
      ['--net=slirp4netns', `--slirp4netns-binary=${slirpBin}`, '--port-driver=slirp4netns', '-p', `127.0.0.1:${published}:80/tcp`,
        '--copy-up=/etc', '--disable-host-loopback=false', '--',
        'sh', '-c', `ip -4 addr show tap0; busybox wget -qO- http://10.0.2.2:${hostPort}/; cat /etc/resolv.conf; exec busybox httpd -f -p 80 -h ${www}`],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const rkExited = new Promise((r) => rk.once('exit', r));
    let out = '';
    rk.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
    rk.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d));
    try {
      const body = await httpPoll(`http://127.0.0.1:${published}/`, 'guest via rootlesskit\n');
      expect(body, out).toBe('guest via rootlesskit\n');
      expect(out).toMatch(/inet 10\.0\.2\.100\/24/);
      expect(out).toContain('host page');
      expect(out).toContain('nameserver 10.0.2.3');
    } finally {
      // rootlesskit may have exited already (a failed start): then there is nothing to stop.
      if (rk.exitCode === null && rk.signalCode === null) rk.kill('SIGTERM');
      await rkExited;
      await new Promise<void>((r) => host.close(() => r()));
      fs.rmSync(www, { recursive: true, force: true });
    }
  }, 60_000);

  for (const extra of [[], ['--slirp4netns-sandbox=true', '--slirp4netns-seccomp=true']]) {
  it.skipIf(process.getuid!() !== 0)(`answers DNS through 10.0.2.3 (nameservers from TSNET_RESOLV_CONF)${extra.length ? ', sandboxed and filtered as rootlesskit asks' : ''}`, async () => {
    const { dnsServer } = await import('./servers.js');
    const dns = await dnsServer('127.0.0.78', { 'rk.tsnet': '192.0.2.55' });
    const dir = userTempDir('tsnet-rk-dns-');
    const resolv = path.join(dir, 'resolv.conf');
    fs.writeFileSync(resolv, 'nameserver 127.0.0.78\n');
    fs.chmodSync(resolv, 0o644);
    try {
      const rk = spawnAs(
        'rootlesskit',
        ['--net=slirp4netns', `--slirp4netns-binary=${slirpBin}`, ...extra, '--copy-up=/etc', '--disable-host-loopback', '--', 'busybox', 'nslookup', 'rk.tsnet', '10.0.2.3'],
        { stdio: ['ignore', 'pipe', 'pipe'], env: { TSNET_RESOLV_CONF: resolv } },
      );
      let out = '';
      rk.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
      rk.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d));
      await new Promise((r) => rk.once('exit', r));
      expect(out).toMatch(/Address:\s*192\.0\.2\.55/);
      expect(dns.queries.udp).toBeGreaterThan(0);
    } finally {
      await dns.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
  }
});
