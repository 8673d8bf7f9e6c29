// Confinement of a running tsnet, checked from outside (/proc/PID/status of
// every thread) and from inside (the get_sandbox API command attempts calls
// the filter blocks): --enable-seccomp on attach, and that the network and
// the API keep working under the filter.

import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { apiCall } from '../../bench/api-client.js';
import { integrationSkip, namespaceFixture, readyFrom, startTsnet } from './harness.js';
import { echoServer } from './servers.js';

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
    const c = net.connect(add.return.host_port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => c.on('connect', () => resolve()).on('error', reject));
    c.destroy();
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
});
