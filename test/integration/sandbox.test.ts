// Confinement of a running tsnet, checked from outside (/proc/PID/status of
// every thread, /proc/PID/root, getpcaps) and from inside (the get_sandbox
// API command: capabilities, the root's entries, calls the filter blocks):
// --enable-seccomp and --enable-sandbox on attach (which starts itself again
// through src/cli/sandbox.sh, keeping its PID) and on the drop-in (whose
// launcher starts it there), in a one-uid user namespace (unshare -r) and in
// one with a subordinate range (podman's kind), and that the network, the
// API and resolv.conf changes keep working inside.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { apiCall } from '../support/api-client.js';
import { integrationSkip, namespaceFixture, Netns, readyFrom, runAs, spawnAs, stageDir, startTsnet, stopTsnet } from './harness.js';
import { dnsServer, echoServer } from './servers.js';

const NET_BIND_SERVICE = 0x400n;

function capsOf(status: string, field: 'CapEff' | 'CapPrm' | 'CapBnd'): bigint {
  return BigInt('0x' + new RegExp(`^${field}:\\s*([0-9a-f]+)$`, 'm').exec(status)![1]!);
}

function threadStatus(pid: number): string[] {
  return fs.readdirSync(`/proc/${pid}/task`).map((t) => fs.readFileSync(`/proc/${pid}/task/${t}/status`, 'utf8'));
}

describe.skipIf(integrationSkip !== '')('sandbox and seccomp (rootless attach)', () => {
  const fx = namespaceFixture('tsnet-sandbox-');

  it('--enable-seccomp: every thread filtered with no_new_privs, blocked calls fail with EPERM inside, traffic and the API still work', async () => {
    const sock = path.join(fx.tmp, 'api.sock');
    fx.tsnet = startTsnet(['attach', '-c', '-r', '3', '--enable-seccomp', '-a', sock, String(fx.ns.pid)], ['pipe']);
    expect(await readyFrom(fx.tsnet)).toBe('1');
    expect(fx.tsnet.stderr()).toMatch(/^seccomp: The following syscalls will be blocked by seccomp: execve execveat .* unshare .*\.$/m);

    const pid = fx.tsnet.proc.pid!;
    const threads = threadStatus(pid);
    expect(threads.length).toBeGreaterThan(1);
    for (const st of threads) {
      expect(st).toMatch(/^Seccomp:\s+2$/m);
      expect(st).toMatch(/^NoNewPrivs:\s+1$/m);
    }

    const inside = await apiCall(sock, { execute: 'get_sandbox' });
    expect(inside.return.blocked_calls).toEqual({ unshare: 'EPERM', setns: 'EPERM', execve: 'EPERM' });

    // The stack still serves: ping, a TCP exchange through NAT, a forward added now.
    const gw = await fx.ns.exec(['ping', '-c', '1', '-W', '2', '10.0.2.2']);
    expect(gw.stdout, gw.stderr).toMatch(/1 received/);
    const echo = await echoServer();
    try {
      expect(await fx.ns.guest(['echo-many', '10.0.2.2', String(echo.port), '4', '20000'])).toBe('ok 4');
    } finally {
      await echo.close();
    }
    const add = await apiCall(sock, { execute: 'add_hostfwd', arguments: { proto: 'tcp', host_addr: '127.0.0.1', host_port: 0, guest_port: 8080 } });
    expect(add.return?.id, JSON.stringify(add)).toBe(1);
    // Through the forward to a guest echo server and back. (With no server
    // the guest's RST could reach the client before its 'connect' event.)
    const srv = await fx.ns.serve(['serve-echo', '8080']);
    try {
      const echoed = await new Promise<Buffer>((resolve, reject) => {
        const c = net.connect({ host: '127.0.0.1', port: add.return.host_port, allowHalfOpen: true });
        const got: Buffer[] = [];
        c.on('data', (d) => got.push(d));
        c.on('end', () => {
          c.end();
          resolve(Buffer.concat(got));
        });
        c.on('error', reject);
        c.end('through the forward');
      });
      expect(echoed.toString()).toBe('through the forward');
    } finally {
      srv.proc.kill();
    }
  });

  it('without it the same probes run unblocked (the report is not hard-wired)', async () => {
    const sock = path.join(fx.tmp, 'api.sock');
    fx.tsnet = startTsnet(['attach', '-r', '3', '-a', sock, String(fx.ns.pid)], ['pipe']);
    expect(await readyFrom(fx.tsnet)).toBe('1');
    for (const st of threadStatus(fx.tsnet.proc.pid!)) expect(st).toMatch(/^Seccomp:\s+0$/m);
    const inside = await apiCall(sock, { execute: 'get_sandbox' });
    expect(inside.return.blocked_calls).toEqual({ unshare: 'ok', setns: 'EBADF', execve: 'ENOENT' });
    expect(inside.return.root).toEqual(expect.arrayContaining(['etc', 'run', 'proc']));
  });

  it.skipIf(runAs === null)('--enable-sandbox on attach: same PID, root holds /etc and /run only, cap_net_bind_service, no_new_privs; DNS follows a resolv.conf under /run', async () => {
    const runDir = fs.mkdtempSync('/run/tsnet-sandbox-test-');
    fs.chmodSync(runDir, 0o755);
    const resolv = path.join(runDir, 'resolv.conf');
    fs.writeFileSync(resolv, 'nameserver 127.0.0.78\n');
    fs.chmodSync(resolv, 0o644);
    const dns1 = await dnsServer('127.0.0.78', { 'test.tsnet': '192.0.2.44' });
    const dns2 = await dnsServer('127.0.0.77', { 'test.tsnet': '192.0.2.77' });
    try {
      const sock = path.join(fx.tmp, 'api.sock');
      fx.tsnet = startTsnet(['attach', '-c', '-r', '3', '--enable-sandbox', '--resolv-conf', resolv, '-a', sock, String(fx.ns.pid)], ['pipe']);
      expect(await readyFrom(fx.tsnet)).toBe('1');
      const pid = fx.tsnet.proc.pid!;
      expect(fs.readdirSync(`/proc/${pid}/root`).sort()).toEqual(['etc', 'run']);
      expect(execFileSync('getpcaps', [String(pid)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })).toMatch(/cap_net_bind_service=eip/);
      const main = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
      expect(capsOf(main, 'CapEff')).toBe(NET_BIND_SERVICE);
      expect(capsOf(main, 'CapBnd')).toBe(NET_BIND_SERVICE);
      for (const st of threadStatus(pid)) expect(st).toMatch(/^NoNewPrivs:\s+1$/m);

      const inside = (await apiCall(sock, { execute: 'get_sandbox' })).return;
      expect(inside.root).toEqual(['etc', 'run']);
      expect(inside.capabilities.effective).toEqual(['cap_net_bind_service']);

      // The network works, and a changed resolv.conf is read from inside the sandbox.
      expect((await fx.ns.exec(['ping', '-c', '1', '-W', '2', '10.0.2.2'])).stdout).toMatch(/1 received/);
      expect(await fx.ns.guest(['dns-udp', '10.0.2.3', 'test.tsnet'])).toBe('192.0.2.44');
      fs.writeFileSync(resolv, 'nameserver 127.0.0.77\n');
      const later = new Date(Date.now() + 5000);
      fs.utimesSync(resolv, later, later);
      expect(await fx.ns.guest(['dns-udp', '10.0.2.3', 'test.tsnet'])).toBe('192.0.2.77');

      const r = await stopTsnet(fx.tsnet);
      fx.tsnet = undefined;
      expect(r.code).toBe(0);
      expect(fs.existsSync(sock)).toBe(false); // removed through the directory held open
    } finally {
      await dns1.close();
      await dns2.close();
      fs.rmSync(runDir, { recursive: true, force: true });
    }
  });

  it.skipIf(runAs === null)("the drop-in with podman's flags in a namespace with a subordinate uid range: every thread down to cap_net_bind_service", async () => {
    // unshare --map-auto: uid 0 is the test user, 1..65535 its subordinate range (as podman's namespaces).
    const ns = await Netns.create(['--map-auto', '--map-root-user']);
    try {
      const sock = path.join(fx.tmp, 's4.sock');
      const bin = path.join(stageDir, 'dist/src/cli/slirp4netns');
      const t = spawnAs(bin, ['--disable-host-loopback', '--mtu=65520', '--enable-sandbox', '--enable-seccomp', '-c', '-r', '3', '--api-socket', sock, String(ns.pid), 'tap0'], {
        stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
      });
      let err = '';
      t.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
      const ready = await new Promise<string>((resolve) => {
        let d = '';
        (t.stdio[3] as NodeJS.ReadableStream).setEncoding('utf8').on('data', (c: string) => (d += c)).on('end', () => resolve(d));
      });
      expect(ready, err).toBe('1');
      const threads = threadStatus(t.pid!);
      for (const st of threads) {
        expect(capsOf(st, 'CapEff') & ~NET_BIND_SERVICE).toBe(0n);
        expect(capsOf(st, 'CapPrm') & ~NET_BIND_SERVICE).toBe(0n);
        expect(st).toMatch(/^Seccomp:\s+2$/m);
      }
      expect(fs.readdirSync(`/proc/${t.pid}/root`).sort()).toEqual(['etc', 'run']);
      const inside = (await apiCall(sock, { execute: 'get_sandbox' })).return;
      expect(inside.blocked_calls).toEqual({ unshare: 'EPERM', setns: 'EPERM', execve: 'EPERM' });
      const exited = new Promise((r) => t.on('exit', r));
      t.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      await ns.destroy();
    }
  });
});
