// `tsnet run -- CMD` as an unprivileged user: new user/mount/net/PID/UTS
// namespaces, the network configured before CMD starts, resolv.conf and
// hosts bind-mounted, exit status and signals propagated, nothing left
// behind.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { httpPoll, integrationSkip, killAll, runAs, startTsnet, userTempDir } from './harness.js';
import { TEST_USER } from '../../bench/stage.js';

function webServer(body: string): Promise<{ port: number; close: () => Promise<void> }> {
  const s = http.createServer((_, res) => res.end(body));
  return new Promise((resolve) =>
    s.listen(0, '127.0.0.1', () => resolve({ port: (s.address() as net.AddressInfo).port, close: () => new Promise((r) => s.close(() => r())) })),
  );
}

/** Processes of the test user whose command line contains `needle` (for checking, never for killing). */
function leftover(needle: string): string[] {
  const uid = runAs?.uid ?? process.getuid!();
  const out: string[] = [];
  for (const pid of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      if (fs.statSync(`/proc/${pid}`).uid !== uid) continue;
      const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
      if (cmd.includes(needle)) out.push(`${pid} ${cmd}`);
    } catch {
      // exited
    }
  }
  return out;
}

describe.skipIf(integrationSkip !== '')('tsnet run (rootless launcher)', () => {
  afterAll(killAll);

  it('gives CMD root in a new user namespace, PID 1, tap0 configured, the host via 10.0.2.2 and its own resolv.conf', async () => {
    const web = await webServer('host page\n');
    try {
      const t = startTsnet(['run', '--log-level', 'error', '--', 'sh', '-c',
        `id -u; cat /proc/self/uid_map; echo $$; ip -4 addr show tap0; busybox wget -qO- http://10.0.2.2:${web.port}/; cat /etc/resolv.conf; hostname; ip link show tap0`]);
      const r = await t.exited;
      const out = t.stderr();
      expect(r.code, out).toBe(0);
      const lines = out.split('\n');
      expect(lines[0]).toBe('0');
      expect(lines[1]).toMatch(/^\s*0\s+\d+\s+1$/);
      expect(lines[2]).toBe('1');
      expect(out).toMatch(/inet 10\.0\.2\.100\/24/);
      expect(out).toContain('host page');
      expect(out).toContain('nameserver 10.0.2.3');
      expect(out).toMatch(/^tsnet$/m);
      expect(out).toMatch(/mtu 65520/);
      expect(fs.readFileSync('/etc/resolv.conf', 'utf8')).not.toContain('nameserver 10.0.2.3'); // the host's is untouched
    } finally {
      await web.close();
    }
  });

  it('propagates the exit status', async () => {
    const t = startTsnet(['run', '--log-level', 'error', '--', 'sh', '-c', 'exit 7']);
    expect((await t.exited).code).toBe(7);
  });

  it('SIGTERM ends `sleep 100` (PID 1, no handler) promptly with 143 and leaves nothing running', async () => {
    const t = startTsnet(['run', '--log-level', 'error', '--', 'sleep', '1007']);
    await new Promise((r) => setTimeout(r, 1500));
    expect(leftover('sleep 1007').length).toBeGreaterThan(0);
    const t0 = Date.now();
    t.proc.kill('SIGTERM');
    const r = await t.exited;
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(r.code).toBe(143);
    await new Promise((r) => setTimeout(r, 200));
    expect(leftover('sleep 1007')).toEqual([]);
    expect(leftover('tsnet-run-')).toEqual([]);
  });

  it('a workload with a SIGTERM handler gets the signal and exits by itself', async () => {
    const t = startTsnet(['run', '--log-level', 'error', '--', 'sh', '-c', "trap 'echo got TERM; exit 5' TERM; while :; do sleep 0.1; done"]);
    await new Promise((r) => setTimeout(r, 1500));
    t.proc.kill('SIGTERM');
    const r = await t.exited;
    expect(r.code).toBe(5);
    expect(t.stderr()).toContain('got TERM');
  });

  it('-p publishes a guest server (busybox httpd) on the host', async () => {
    const dir = userTempDir('tsnet-run-www-');
    fs.writeFileSync(path.join(dir, 'index.html'), 'guest page\n');
    fs.chmodSync(path.join(dir, 'index.html'), 0o644);
    const port = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const t = startTsnet(['run', '--log-level', 'error', '-p', `127.0.0.1:${port}:80`, '--', 'busybox', 'httpd', '-f', '-p', '80', '-h', dir]);
    try {
      const body = await httpPoll(`http://127.0.0.1:${port}/`, 'guest page\n', 50);
      expect(body).toBe('guest page\n');
    } finally {
      t.proc.kill('SIGTERM');
      await t.exited;
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it.skipIf(runAs === null)('--map-auto maps the subordinate range so chown to other uids works', async () => {
    // Give the test user a subordinate range, as an administrator would.
    for (const f of ['/etc/subuid', '/etc/subgid']) {
      if (!fs.existsSync(f) || !fs.readFileSync(f, 'utf8').split('\n').some((l) => l.startsWith(`${TEST_USER}:`))) {
        execFileSync('usermod', [f === '/etc/subuid' ? '--add-subuids' : '--add-subgids', '300000-365535', TEST_USER]);
      }
    }
    const dir = userTempDir('tsnet-run-chown-');
    try {
      const t = startTsnet(['run', '--log-level', 'error', '--map-auto', '--', 'sh', '-c', `cat /proc/self/uid_map; touch ${dir}/f; chown 1000:1000 ${dir}/f && echo chowned`]);
      const r = await t.exited;
      expect(r.code, t.stderr()).toBe(0);
      const maps = t.stderr().split('\n').filter((l) => /^\s*\d+\s+\d+\s+\d+$/.test(l));
      expect(maps).toHaveLength(2);
      expect(t.stderr()).toContain('chowned');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
