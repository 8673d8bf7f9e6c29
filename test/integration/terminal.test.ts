// `tsnet run` as a person meets it: on a terminal (util-linux `script` gives
// tsnet one, as the test user) CMD gets a pty and a session of its own, so
// an interactive shell has job control and exits with its own status; ^C
// reaches the foreground job, and ends a PID 1 that has no handler for it.
// What tsnet prints there: readable lines, one "network up" line at info,
// JSON only when asked. And the exit codes of each failure class.

import net from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { collect, integrationSkip, killAll, spawnAs, startTsnet, tsnetMain } from './harness.js';

/**
 * Runs `tsnet ARGS` under `script` (a pty of its own), typing each [delay ms,
 * keys] step into the terminal. Resolves with the terminal's output and the
 * exit status script passes on (-e: tsnet's).
 */
async function onTerminal(args: string[], steps: Array<[number, string]>, timeoutMs = 30_000): Promise<{ code: number | null; out: string }> {
  const cmd = [tsnetMain, ...args].map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(' ');
  const child = spawnAs('script', ['-qec', cmd, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdin!.on('error', () => {});
  const done = collect(child, timeoutMs);
  void (async () => {
    for (const [delay, keys] of steps) {
      await new Promise((r) => setTimeout(r, delay));
      if (child.exitCode !== null) return;
      child.stdin!.write(keys);
    }
  })();
  const r = await done;
  return { code: r.code, out: r.stdout + r.stderr };
}

/** The shell has printed its prompt (or anything) after `text`: wait for the workload to be ready. */
const READY = 2500;

describe.skipIf(integrationSkip !== '')('tsnet run on a terminal', () => {
  afterAll(killAll);

  it('gives an interactive sh its own session and pty: job control works, no tty complaint, its own exit status', { timeout: 45_000 }, async () => {
    const r = await onTerminal(['run', '--', 'sh'], [
      [READY, 'tty; ps -o pid,sid,tpgid,comm\n'],
      [500, 'sleep 30\n'],
      [800, '\x1a'], // ^Z: the job stops
      [500, 'jobs\n'],
      [300, 'kill -9 %1; wait\n'],
      [300, 'sleep 30\n'],
      [800, '\x03'], // ^C: the foreground job dies, the shell stays
      [500, 'echo "after=$?"\n'],
      [300, 'exit 4\n'],
    ]);
    expect(r.out).toMatch(/^\/dev\/pts\/\d+\s*$/m);
    // PID 1 leads the session; ps runs as a job in a foreground process group of its own (job control).
    const fg = /^\s*1\s+1\s+(\d+) sh\s*$/m.exec(r.out)?.[1];
    expect(fg, r.out).toBeDefined();
    expect(r.out).toMatch(new RegExp(`^\\s*${fg}\\s+1\\s+${fg} ps\\s*$`, 'm'));
    expect(r.out).toMatch(/\[1\] \+ Stopped\s+sleep 30/);
    expect(r.out).toMatch(/after=130/);
    expect(r.out).not.toMatch(/Cannot set tty process group/);
    expect(r.code, r.out).toBe(4);
  });

  it('^C ends a PID 1 without a SIGINT handler (sleep) at once: 130', async () => {
    const t0 = Date.now();
    const r = await onTerminal(['run', '--', 'sleep', '30'], [[READY, '\x03']]);
    expect(r.code, r.out).toBe(130);
    expect(Date.now() - t0).toBeLessThan(15_000);
  });

  it('prints readable lines: one "network up" line at info, JSON with --log-format json, nothing by default', async () => {
    const info = await onTerminal(['run', '--log-level', 'info', '-p', '127.0.0.1:0:80', '--', 'true'], []);
    // a flag tsnet refuses (port 0 is for the API only) ends it with 125 before anything starts
    expect(info.code).toBe(125);
    expect(info.out).toMatch(/^tsnet: --publish: /m);

    const port = await freePort();
    const up = await onTerminal(['run', '--log-level', 'info', '-p', `127.0.0.1:${port}:80`, '--', 'true'], []);
    expect(up.code, up.out).toBe(0);
    const lines = up.out.split(/\r?\n/).filter((l) => l.startsWith('tsnet: network up: '));
    expect(lines, up.out).toHaveLength(1);
    expect(lines[0]).toMatch(
      new RegExp(`^tsnet: network up: tap0 10\\.0\\.2\\.100/24, gateway 10\\.0\\.2\\.2 \\(host 127\\.0\\.0\\.1\\), dns 10\\.0\\.2\\.3, mtu 65520, ipv6 fd00::/64 by SLAAC, gateway fd00::2, dns fd00::3, offloads on, forwards 127\\.0\\.0\\.1:${port}->80/tcp$`),
    );
    expect(up.out).not.toMatch(/^\{"level"/m);
    // Where this host keeps ping sockets from the user: said once, at info, with the fix.
    const ping = up.out.split(/\r?\n/).filter((l) => l.includes('ping to outside addresses is off'));
    expect(ping.length).toBeLessThanOrEqual(1);
    if (ping.length) expect(ping[0]).toMatch(/^tsnet: ping to outside addresses is off: .*sysctl -w net\.ipv4\.ping_group_range=/);

    const json = await onTerminal(['run', '--log-level', 'info', '--log-format', 'json', '--', 'true'], []);
    expect(json.code).toBe(0);
    const objs = json.out.split(/\r?\n/).filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { msg: string; level: number });
    expect(objs.some((o) => o.msg.startsWith('network up: ') && o.level === 30)).toBe(true);

    const quiet = await onTerminal(['run', '--', 'sh', '-c', 'echo only-this'], []);
    expect(quiet.code).toBe(0);
    expect(quiet.out.trim()).toBe('only-this');
  });

  it('without a terminal, CMD keeps the caller\'s stdin/stdout (no pty)', async () => {
    const t = startTsnet(['run', '--', 'sh', '-c', 'tty || true']);
    expect((await t.exited).code).toBe(0);
    expect(t.stderr().trim()).toBe('not a tty');
  });

  it('exit codes: 125 when tsnet fails (a port it cannot bind), 127 not found, 126 not executable, CMD\'s own otherwise', async () => {
    const holder = net.createServer().listen(0, '127.0.0.1');
    await new Promise((r) => holder.once('listening', r));
    const port = (holder.address() as net.AddressInfo).port;
    try {
      const busy = startTsnet(['run', '-p', `127.0.0.1:${port}:80`, '--', 'true']);
      expect((await busy.exited).code).toBe(125);
      expect(busy.stderr()).toMatch(new RegExp(`^tsnet: --publish: cannot publish 127\\.0\\.0\\.1:${port} -> 80/tcp: .*EADDRINUSE.* \\(pick another host port or address, or stop what holds it\\)$`, 'm'));
    } finally {
      holder.close();
    }
    const missing = startTsnet(['run', '--', 'no-such-command-tsnet']);
    expect((await missing.exited).code).toBe(127);
    const notExec = startTsnet(['run', '--', '/proc/self/status']);
    expect((await notExec.exited).code).toBe(126);
    const own = startTsnet(['run', '--', 'sh', '-c', 'exit 125']);
    expect((await own.exited).code).toBe(125); // CMD's own 125 passes through too
  });
});

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}
