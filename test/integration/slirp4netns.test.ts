// The `slirp4netns` bin driven the way the engines drive slirp4netns:
// podman 4 runs it inside its rootless user namespace and joins only the
// network namespace by path (-c -e 3 -r 4 --api-socket ... --netns-type=path
// PATH tap0); rootlesskit 1 runs it from outside by PID without -c
// (--mtu 65520 -r 3 --disable-host-loopback --api-socket ... PID tap0) and
// configures tap0 itself.

import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { integrationSkip, killAll, Netns, spawnAs, stageDir, userTempDir } from './harness.js';

const slirpBin = path.join(stageDir, 'dist/src/cli/slirp4netns.js');

function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve) => {
    let d = '';
    stream.setEncoding('utf8');
    stream.on('data', (c: string) => (d += c));
    stream.on('end', () => resolve(d));
  });
}

function apiCall(sock: string, req: object): Promise<any> {
  return new Promise((resolve, reject) => {
    const c = net.connect(sock);
    let out = '';
    c.setEncoding('utf8');
    c.on('data', (d: string) => (out += d));
    c.on('end', () => resolve(JSON.parse(out)));
    c.on('error', reject);
    c.end(JSON.stringify(req));
  });
}

describe.skipIf(integrationSkip !== '')('slirp4netns drop-in (engine argument vectors)', () => {
  let ns: Netns;
  let tmp: string;
  beforeEach(async () => {
    ns = await Netns.create();
    tmp = userTempDir('tsnet-s4-');
  });
  afterEach(async () => {
    await ns.destroy();
    fs.rmSync(tmp, { recursive: true, force: true });
  });
  afterAll(killAll);

  it('--help exits 0 and names the options podman and rootlesskit grep for; bad args print usage and exit 1', async () => {
    const help = spawnAs(process.execPath, [slirpBin, '--help'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const text = await readAll(help.stdout!);
    expect(await new Promise((r) => help.on('exit', r))).toBe(0);
    for (const o of ['--disable-host-loopback', '--mtu', '--enable-sandbox', '--enable-seccomp', '--enable-ipv6', '--api-socket', '--netns-type', '--userns-path']) {
      expect(text).toContain(o);
    }
    const bad = spawnAs(process.execPath, [slirpBin, '--bogus'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const err = await readAll(bad.stderr!);
    expect(await new Promise((r) => bad.on('exit', r))).toBe(1);
    expect(err).toMatch(/unrecognized option '--bogus'\nUsage: slirp4netns/);
  });

  it("podman's way: inside the user namespace, netns by path, -c -e 3 -r 4 and the API socket", async () => {
    const sock = path.join(tmp, 'api.sock');
    const proc = spawnAs(
      'nsenter',
      ['--preserve-credentials', '-U', '-t', String(ns.pid), '--', process.execPath, slirpBin,
        '--disable-host-loopback', '--mtu=65520', '--enable-sandbox', '--enable-seccomp', '--enable-ipv6',
        '-c', '-e', '3', '-r', '4', '--api-socket', sock, '--netns-type=path', `/proc/${ns.pid}/ns/net`, 'tap0'],
      { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'] },
    );
    let stderr = '';
    proc.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const ready = await readAll(proc.stdio[4] as NodeJS.ReadableStream);
    expect(ready, stderr).toBe('1');
    const addr = await ns.exec(['ip', '-4', 'addr', 'show', 'tap0']);
    expect(addr.stdout).toMatch(/inet 10\.0\.2\.100\/24/);
    expect((await ns.exec(['ip', 'link', 'show', 'tap0'])).stdout).toMatch(/mtu 65520/);
    expect((await ns.exec(['ping', '-c', '1', '-W', '2', '10.0.2.2'])).stdout).toMatch(/1 received/);
    expect(stderr).toMatch(/--enable-ipv6 accepted, but tsnet does not serve IPv6/);
    const add = await apiCall(sock, { execute: 'add_hostfwd', arguments: { proto: 'tcp', host_addr: '127.0.0.1', host_port: 0, guest_port: 80 } });
    expect(add.return.id).toBe(1);
    // Closing the exit fd (podman's exit pipe) makes it exit.
    const exited = new Promise((r) => proc.on('exit', r));
    (proc.stdio[3] as NodeJS.WritableStream & { destroy(): void }).destroy();
    expect(await exited).toBe(0);
    expect(fs.existsSync(sock)).toBe(false);
  });

  it("rootlesskit's way: by PID from outside, no -c (tap0 configured by the caller)", async () => {
    const sock = path.join(tmp, 'api.sock');
    const proc = spawnAs(process.execPath, [slirpBin, '--mtu', '65520', '-r', '3', '--disable-host-loopback', '--api-socket', sock, String(ns.pid), 'tap0'], {
      stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
    });
    expect(await readAll(proc.stdio[3] as NodeJS.ReadableStream)).toBe('1');
    for (const cmd of [['ip', 'link', 'set', 'tap0', 'mtu', '65520', 'up'], ['ip', 'addr', 'add', '10.0.2.100/24', 'dev', 'tap0'], ['ip', 'route', 'add', 'default', 'via', '10.0.2.2']]) {
      expect((await ns.exec(cmd)).code).toBe(0);
    }
    expect((await ns.exec(['ping', '-c', '1', '-W', '2', '10.0.2.3'])).stdout).toMatch(/1 received/);
    const list = await apiCall(sock, { execute: 'list_hostfwd' });
    expect(list).toEqual({ entries: [], return: { entries: [] } });
    const exited = new Promise((r) => proc.on('exit', r));
    proc.kill('SIGTERM');
    expect(await exited).toBe(0);
  });
});
