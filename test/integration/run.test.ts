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
import { childrenOf, httpPoll, integrationSkip, isDead, killAll, processesInNamespace, runAs, runAsUser, startTsnet, userTempDir, waitFor } from './harness.js';

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

/** Where tsnet, run by the harness without TMPDIR, puts its temp dir (os.tmpdir()). */
const TSNET_TMP = '/tmp';

/** The `tsnet-run-*` temp dirs of the tsnet with this PID. */
function runDirsOf(tsnetPid: number): string[] {
  return fs.readdirSync(TSNET_TMP).filter((n) => n.startsWith(`tsnet-run-${tsnetPid}-`));
}

/** Resolves once tsnet's output (the workload shares its stdout) contains `text`. */
async function waitForText(t: { stderr(): string }, text: string, timeoutMs = 15_000): Promise<void> {
  const t0 = Date.now();
  while (!t.stderr().includes(text)) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`no "${text}" after ${timeoutMs} ms: ${t.stderr()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function comm(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

/** Field 22 of /proc/PID/stat: the process's start time in clock ticks after boot. */
function startTime(pid: number): string {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]!;
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

  it('IPv6 is on by default: CMD gets an fd00:: address by SLAAC and reaches fd00::2; --disable-ipv6 leaves it out', async () => {
    // Wait (at most 10 s) for the address to leave duplicate address detection, then ping.
    const script =
      'for i in $(seq 100); do ip -6 addr show dev tap0 scope global | grep -q "fd00::.*/64" && ! ip -6 addr show dev tap0 | grep -q tentative && break; sleep 0.1; done; ' +
      'ip -6 addr show dev tap0 scope global; ping -6 -c 1 -W 2 fd00::2';
    const on = startTsnet(['run', '--log-level', 'error', '--', 'sh', '-c', script]);
    const r = await on.exited;
    expect(r.code, on.stderr()).toBe(0);
    expect(on.stderr()).toMatch(/inet6 fd00::[0-9a-f:]+\/64 scope global/);
    expect(on.stderr()).toMatch(/1 received/);
    const off = startTsnet(['run', '--log-level', 'error', '--disable-ipv6', '--', 'sh', '-c', 'sleep 1.5; ip -6 addr show dev tap0 scope global | grep -c fd00 || true']);
    expect((await off.exited).code).toBe(0);
    expect(off.stderr().trim()).toBe('0');
  });

  it('propagates the exit status', async () => {
    const t = startTsnet(['run', '--log-level', 'error', '--', 'sh', '-c', 'exit 7']);
    expect((await t.exited).code).toBe(7);
  });

  it('sandboxes tsnet once CMD has started (root of /etc and /run, cap_net_bind_service, seccomp on every thread); --no-sandbox --no-seccomp do not', async () => {
    const cases = [
      { flags: [] as string[], seccomp: '2', root: ['etc', 'run'], capEff: '0000000000000400' },
      // Sandboxed without the filter: no_new_privs still reaches every thread (an allow-all filter carries it).
      { flags: ['--no-seccomp'], seccomp: '2', root: ['etc', 'run'], capEff: '0000000000000400' },
      { flags: ['--no-sandbox', '--no-seccomp'], seccomp: '0', root: undefined, capEff: undefined },
    ];
    for (const c of cases) {
      const t = startTsnet(['run', '--log-level', 'error', ...c.flags, '--', 'sh', '-c', 'ping -c 1 -W 2 10.0.2.2 >/dev/null && echo net-ok; sleep 1008']);
      const pid = t.proc.pid!;
      await waitForText(t, 'net-ok');
      for (const task of fs.readdirSync(`/proc/${pid}/task`)) {
        const st = fs.readFileSync(`/proc/${pid}/task/${task}/status`, 'utf8');
        expect(st).toMatch(new RegExp(`^Seccomp:\\s+${c.seccomp}$`, 'm'));
        if (c.root) expect(st).toMatch(/^NoNewPrivs:\s+1$/m);
      }
      const root = fs.readdirSync(`/proc/${pid}/root`).sort();
      if (c.root) expect(root).toEqual(c.root);
      else expect(root).toEqual(expect.arrayContaining(['etc', 'proc', 'usr']));
      if (c.capEff) expect(fs.readFileSync(`/proc/${pid}/status`, 'utf8')).toMatch(new RegExp(`^CapEff:\\s+${c.capEff}$`, 'm'));
      t.proc.kill('SIGTERM');
      expect((await t.exited).code).toBe(143);
    }
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

  // The global setup gave the test user a subordinate range (test/support/stage.ts).
  it.skipIf(runAs === null)('--map-auto maps the subordinate range so chown to other uids works', async () => {
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

  it('SIGKILL of tsnet: the workload, unshare and the namespaces are gone within 1 s, and no temp dir is left', async () => {
    const t = startTsnet(['run', '--log-level', 'error', '--', 'sleep', '1000']);
    const tsnetPid = t.proc.pid!;
    let unshare = 0;
    let workload = 0;
    // The stage execs sleep only once the network is up.
    await waitFor(() => {
      unshare = childrenOf(tsnetPid).find((p) => comm(p) === 'unshare') ?? 0;
      workload = unshare ? (childrenOf(unshare).find((p) => comm(p) === 'sleep') ?? 0) : 0;
      return workload !== 0;
    }, 15_000, 'the workload (sleep) to start');
    const pidNs = fs.readlinkSync(`/proc/${workload}/ns/pid`);
    const netNs = fs.readlinkSync(`/proc/${workload}/ns/net`);
    expect(pidNs).not.toBe(fs.readlinkSync('/proc/self/ns/pid'));
    // The mounts hold resolv.conf and hosts: the temp dir is already gone.
    expect(runDirsOf(tsnetPid)).toEqual([]);

    const t0 = performance.now();
    t.proc.kill('SIGKILL');
    let gone = 0;
    await waitFor(() => {
      const ok = isDead(workload) && isDead(unshare) && processesInNamespace('pid', pidNs).length === 0 && processesInNamespace('net', netNs).length === 0;
      if (ok) gone = performance.now() - t0;
      return ok;
    }, 1000, 'the workload, unshare and every process of its namespaces to die');
    console.log(`tsnet run: SIGKILL of tsnet → workload, unshare and namespaces gone after ${gone.toFixed(1)} ms`);
    expect(gone).toBeLessThan(1000);
    expect((await t.exited).signal).toBe('SIGKILL');
    expect(runDirsOf(tsnetPid)).toEqual([]);
  });

  it('SIGKILL of tsnet during startup: nothing keeps running, and the next run removes the temp dir left behind', async () => {
    const t = startTsnet(['run', '--log-level', 'error', '--', 'sleep', '1000']);
    const tsnetPid = t.proc.pid!;
    // Kill it while its temp dir exists: after mkdtemp, before the stage has mounted its files.
    const deadline = Date.now() + 10_000;
    let dir: string | undefined;
    while (!dir && Date.now() < deadline) dir = runDirsOf(tsnetPid)[0];
    expect(dir, 'the temp dir of the run').toBeDefined();
    t.proc.kill('SIGKILL');
    const t0 = performance.now();
    await waitFor(() => leftover(dir!).length === 0, 1000, `no process running with ${dir} (the stage)`);
    console.log(`tsnet run: SIGKILL during startup → no process of the run left after ${(performance.now() - t0).toFixed(1)} ms`);
    expect((await t.exited).signal).toBe('SIGKILL');
    const next = startTsnet(['run', '--log-level', 'error', '--', 'true']);
    expect((await next.exited).code, next.stderr()).toBe(0);
    expect(fs.existsSync(path.join(TSNET_TMP, dir!))).toBe(false);
    expect(runDirsOf(tsnetPid)).toEqual([]);
    expect(runDirsOf(next.proc.pid!)).toEqual([]);
  });

  it("at start, removes the user's temp dirs whose tsnet is gone, and only those", async () => {
    const dead = (await runAsUser('sh', ['-c', 'echo $$'])).stdout.trim(); // a PID that has exited
    const me = String(process.pid);
    const mine = runAs ?? { uid: process.getuid!(), gid: process.getgid!() };
    const make = (name: string, owner: { uid: number; gid: number }) => {
      const d = path.join(TSNET_TMP, name);
      fs.mkdirSync(d);
      fs.writeFileSync(path.join(d, 'resolv.conf'), 'nameserver 10.0.2.3\n');
      execFileSync('chown', ['-R', `${owner.uid}:${owner.gid}`, d]);
      return d;
    };
    const suffix = Math.random().toString(36).slice(2, 8);
    const stale = make(`tsnet-run-${dead}-4242-${suffix}`, mine);
    const reused = make(`tsnet-run-${me}-1-${suffix}`, mine); // a live PID, but another process than the one that made it
    const live = make(`tsnet-run-${me}-${startTime(process.pid)}-${suffix}`, mine);
    const foreign = runAs ? make(`tsnet-run-${dead}-4243-${suffix}`, { uid: 0, gid: 0 }) : undefined;
    try {
      const t = startTsnet(['run', '--log-level', 'error', '--', 'true']);
      expect((await t.exited).code, t.stderr()).toBe(0);
      expect(fs.existsSync(stale)).toBe(false);
      expect(fs.existsSync(reused)).toBe(false);
      expect(fs.existsSync(live)).toBe(true);
      if (foreign) expect(fs.existsSync(foreign)).toBe(true);
    } finally {
      for (const d of [stale, reused, live, foreign]) if (d) fs.rmSync(d, { recursive: true, force: true });
    }
  });
});
