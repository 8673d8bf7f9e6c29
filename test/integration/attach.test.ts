// `tsnet attach` end to end, as an unprivileged user: a rootless namespace
// (unshare -Urn), tsnet attached with -c, real iproute2 and ping inside, the
// pcap read back by tshark. Also the lifecycle: --ready-fd, --exit-fd, target
// exit, SIGTERM, and one-line errors for missing prerequisites.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  childrenOf,
  fdsOf,
  integrationSkip,
  readyFrom,
  startTsnet,
  statsOf,
  stopTsnet,
  namespaceFixture,
  waitFor,
} from './harness.js';
import { closedPort, echoServer, udpEchoServer } from './servers.js';

function hasTool(name: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe.skipIf(integrationSkip !== '')('tsnet attach (rootless namespace)', () => {
  const fx = namespaceFixture('tsnet-attach-');

  it('configures tap0 and answers ping to the gateway and DNS addresses; pcap shows it', async () => {
    const pcap = path.join(fx.tmp, 'cap.pcap');
    fx.tsnet = startTsnet(['attach', '-c', '--ready-fd', '3', '--pcap', pcap, String(fx.ns.pid)], ['pipe']);
    expect(await readyFrom(fx.tsnet)).toBe('1');

    const addr = await fx.ns.exec(['ip', '-4', 'addr', 'show', 'tap0']);
    expect(addr.stdout).toContain('inet 10.0.2.100/24');
    const route = await fx.ns.exec(['ip', 'route']);
    expect(route.stdout).toMatch(/default via 10\.0\.2\.2 dev tap0/);
    const lo = await fx.ns.exec(['ip', 'link', 'show', 'lo']);
    expect(lo.stdout).toMatch(/UP/);

    const gw = await fx.ns.exec(['ping', '-c', '3', '-i', '0.2', '-W', '2', '10.0.2.2']);
    expect(gw.stdout, gw.stderr).toMatch(/3 packets transmitted, 3 received/);
    const dns = await fx.ns.exec(['ping', '-c', '3', '-i', '0.2', '-W', '2', '10.0.2.3']);
    expect(dns.stdout, dns.stderr).toMatch(/3 packets transmitted, 3 received/);
    // Not ours: no ARP answer, so ping fails.
    const other = await fx.ns.exec(['ping', '-c', '1', '-W', '1', '10.0.2.50']);
    expect(other.code).not.toBe(0);

    const r = await stopTsnet(fx.tsnet);
    fx.tsnet = undefined;
    expect(r.code).toBe(0);

    if (hasTool('tshark')) {
      const out = execFileSync(
        'tshark',
        ['-r', pcap, '-o', 'ip.check_checksum:TRUE', '-T', 'fields',
          '-e', 'arp.opcode', '-e', 'icmp.type', '-e', 'ip.checksum.status', '-e', 'icmp.checksum.status'],
        { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
      );
      const rows = out.trim().split('\n').map((l) => l.split('\t'));
      expect(rows.some((c) => c[0] === '1')).toBe(true); // who-has
      expect(rows.some((c) => c[0] === '2')).toBe(true); // is-at
      expect(rows.filter((c) => c[1] === '8').length).toBeGreaterThanOrEqual(6); // echo requests
      expect(rows.filter((c) => c[1] === '0').length).toBeGreaterThanOrEqual(6); // echo replies
      for (const c of rows.filter((c) => c[1] !== '' && c[1] !== undefined)) {
        expect(c, out).toHaveLength(4);
        // tshark checksum status: 0 bad, 1 good, 2 unverified
        expect(c[2]).toBe('1');
        expect(c[3]).toBe('1');
      }
    }
  });

  it('--enable-ipv6: the guest configures fd00::/64 by SLAAC with a default route via fe80::2 and pings fd00::2, fd00::3 and fe80::2', async () => {
    fx.tsnet = startTsnet(['attach', '-c', '-6', '--ready-fd', '3', String(fx.ns.pid)], ['pipe']);
    expect(await readyFrom(fx.tsnet)).toBe('1');
    // SLAAC: the address appears once duplicate address detection is over (about 1 s).
    let addr = '';
    await waitFor(async () => {
      addr = (await fx.ns.exec(['ip', '-6', 'addr', 'show', 'dev', 'tap0', 'scope', 'global'])).stdout;
      return /inet6 fd00::[0-9a-f:]+\/64/.test(addr) && !addr.includes('tentative');
    }, 10_000, 'a global fd00:: address on tap0');
    const route = await fx.ns.exec(['ip', '-6', 'route', 'show', 'default']);
    expect(route.stdout).toMatch(/default via fe80::2 dev tap0/);
    for (const target of ['fd00::2', 'fd00::3', 'fe80::2%tap0']) {
      const p = await fx.ns.exec(['ping', '-6', '-c', '2', '-i', '0.2', '-W', '2', target]);
      expect(p.stdout, `${target}: ${p.stderr}`).toMatch(/2 packets transmitted, 2 received/);
    }
    const r = await stopTsnet(fx.tsnet);
    fx.tsnet = undefined;
    expect(r.code).toBe(0);
  });

  it('applies --mtu 65520 and exits when --exit-fd hangs up', async () => {
    fx.tsnet = startTsnet(['attach', '-c', '--mtu', '65520', '-r', '3', '-e', '4', String(fx.ns.pid), 'tap0'], ['pipe', 'pipe']);
    expect(await readyFrom(fx.tsnet)).toBe('1');
    const link = await fx.ns.exec(['ip', 'link', 'show', 'tap0']);
    expect(link.stdout).toMatch(/mtu 65520/);
    const big = await fx.ns.exec(['ping', '-c', '1', '-s', '60000', '-W', '2', '10.0.2.2']);
    expect(big.stdout, big.stderr).toMatch(/1 received/);
    // Closing our end of the exit pipe must make tsnet exit by itself.
    const exitPipe = fx.tsnet.proc.stdio[4] as NodeJS.WritableStream & { destroy(): void };
    exitPipe.destroy();
    const r = await Promise.race([fx.tsnet.exited, new Promise((r) => setTimeout(() => r('timeout'), 5000))]);
    expect(r).toEqual({ code: 0, signal: null });
    fx.tsnet = undefined;
  });

  it('makes tap0 its own (gone when tsnet stops, never seen under a temporary name); a tap0 made before it is configured with -c and left', async () => {
    const links = async () => (await fx.ns.exec(['ip', '-o', 'link', 'show'])).stdout;
    const addr = async () => (await fx.ns.exec(['ip', '-o', '-4', 'addr', 'show', 'dev', 'tap0'])).stdout;
    fx.tsnet = startTsnet(['attach', '-c', '-r', '3', String(fx.ns.pid), 'tap0'], ['pipe']);
    expect(await readyFrom(fx.tsnet)).toBe('1');
    expect(await links()).toMatch(/: tap0: .*\bUP\b.* state UP /);
    expect(await links()).not.toMatch(/tsn\d+/);
    expect(await addr()).toMatch(/10\.0\.2\.100\/24/);
    expect((await stopTsnet(fx.tsnet)).code).toBe(0);
    fx.tsnet = undefined;
    expect(await links()).not.toMatch(/tap0|tsn\d+/);

    // rootlesskit's way: the device exists (persistent) before tsnet starts.
    expect((await fx.ns.exec(['ip', 'tuntap', 'add', 'dev', 'tap0', 'mode', 'tap'])).code).toBe(0);
    fx.tsnet = startTsnet(['attach', '-c', '-r', '3', String(fx.ns.pid), 'tap0'], ['pipe']);
    expect(await readyFrom(fx.tsnet)).toBe('1');
    expect(await addr()).toMatch(/10\.0\.2\.100\/24/);
    expect((await fx.ns.exec(['ping', '-c', '1', '-W', '2', '10.0.2.2'])).stdout).toMatch(/1 received/);
    expect(await links()).not.toMatch(/tsn\d+/);
    expect((await stopTsnet(fx.tsnet)).code).toBe(0);
    fx.tsnet = undefined;
    expect(await links()).toMatch(/: tap0: /);
    expect(await links()).not.toMatch(/tsn\d+/);
    await fx.ns.exec(['ip', 'link', 'del', 'dev', 'tap0']);
  });

  it('leaves no helper process and no fd behind: nsenter (TAP opener, ip -batch) reaped, fds back to the baseline after traffic', async () => {
    fx.tsnet = startTsnet(['attach', '-c', '-r', '3', '--udp-idle-timeout', '1', String(fx.ns.pid)], ['pipe']);
    const pid = fx.tsnet.proc.pid!;
    expect(await readyFrom(fx.tsnet)).toBe('1');
    // Both helpers have exited by the time tsnet is ready, and were reaped (a zombie is still listed as a child).
    await waitFor(() => childrenOf(pid).length === 0, 2000, 'tsnet to have no child process');
    const baseline = fdsOf(pid);
    const show = (fds: Map<number, string>) => [...fds].map(([fd, to]) => `${fd} -> ${to}`).join('\n');
    expect([...baseline.values()].filter((to) => to === '/dev/net/tun'), show(baseline)).toHaveLength(1);
    // fds 1-2 are the harness's stdio socket pairs; a socket or pipe shared with a helper would show up beyond them.
    expect([...baseline].filter(([fd, to]) => fd > 2 && to.startsWith('socket:')), show(baseline)).toEqual([]);

    const echo = await echoServer();
    const udp = await udpEchoServer();
    try {
      expect(await fx.ns.guest(['echo-many', '10.0.2.2', String(echo.port), '8', '4096'])).toBe('ok 8');
      expect((await fx.ns.guest(['connect', '10.0.2.2', String(await closedPort())])).split(' ')[0]).toBe('ECONNREFUSED');
      expect(await fx.ns.guest(['udp-echo', '10.0.2.2', String(udp.port)])).toBe(`hello tsnet 10.0.2.2 ${udp.port}`);
      expect((await fx.ns.exec(['ping', '-c', '2', '-i', '0.2', '-W', '2', '10.0.2.2'])).stdout).toMatch(/2 received/);
      // TCP flows end with their connections, the UDP flow after its 1 s idle timeout.
      const t0 = Date.now();
      let s = await statsOf(fx.tsnet);
      while ((s.tcpFlows !== 0 || s.udpFlows !== 0 || s.hostTcpSockets !== 0) && Date.now() - t0 < 10_000) {
        await new Promise((r) => setTimeout(r, 250));
        s = await statsOf(fx.tsnet);
      }
      expect(s.tcpFlows).toBe(0);
      expect(s.udpFlows).toBe(0);
      expect(s.hostTcpSockets).toBe(0);
      let now = fdsOf(pid);
      for (let i = 0; i < 50 && now.size > baseline.size; i++) {
        await new Promise((r) => setTimeout(r, 100));
        now = fdsOf(pid);
      }
      expect(now.size, `after:\n${show(now)}\nbaseline:\n${show(baseline)}`).toBeLessThanOrEqual(baseline.size);
      expect(childrenOf(pid)).toEqual([]);
    } finally {
      await echo.close();
      await udp.close();
    }
  });

  it('exits when the target process exits (PID mode)', async () => {
    fx.tsnet = startTsnet(['attach', '-r', '3', String(fx.ns.pid)], ['pipe']);
    expect(await readyFrom(fx.tsnet)).toBe('1');
    await fx.ns.destroy();
    const r = await Promise.race([fx.tsnet.exited, new Promise((r) => setTimeout(() => r('timeout'), 5000))]);
    expect(r).toEqual({ code: 0, signal: null });
    fx.tsnet = undefined;
  });

  it('a --ready-fd it cannot write to is one clear error, and the network is taken down with it', async () => {
    const readOnly = fs.openSync('/dev/null', 'r');
    try {
      const t = startTsnet(['attach', '-c', '-r', '3', String(fx.ns.pid)], [readOnly]);
      const r = await Promise.race([t.exited, new Promise((r) => setTimeout(() => r('timeout'), 10_000))]);
      expect(r).toEqual({ code: 1, signal: null });
      expect(t.stderr()).toMatch(/^tsnet: --ready-fd: cannot write to fd 3 \(EBADF\) \(pass the write end of a pipe\)$/m);
    } finally {
      fs.closeSync(readOnly);
    }
  });

  it('attaches by namespace path (--netns-type=path --userns-path)', async () => {
    fx.tsnet = startTsnet(
      ['attach', '-c', '-r', '3', '--netns-type=path', `--userns-path=/proc/${fx.ns.pid}/ns/user`, `/proc/${fx.ns.pid}/ns/net`, 'tap1'],
      ['pipe'],
    );
    expect(await readyFrom(fx.tsnet)).toBe('1');
    const gw = await fx.ns.exec(['ping', '-c', '1', '-W', '2', '10.0.2.2']);
    expect(gw.stdout, gw.stderr).toMatch(/1 received/);
    const link = await fx.ns.exec(['ip', 'link', 'show', 'tap1']);
    expect(link.code).toBe(0);
  });

  it('fails with one clear line when the target does not exist', async () => {
    const t = startTsnet(['attach', '-c', '999999999']);
    const r = await t.exited;
    expect(r.code).toBe(1);
    expect(t.stderr().trim().split('\n')).toHaveLength(1);
    expect(t.stderr()).toMatch(/^tsnet: <target>: process 999999999 does not exist \(ESRCH\) \(start the container process first, or pass its current PID\)$/m);
  });

  it('names the missing prerequisite when nsenter is not installed', async () => {
    // A PATH with node on it (tsnet's #! line runs `env node`) and nothing else.
    const bin = path.join(fx.tmp, 'bin');
    fs.mkdirSync(bin);
    fs.symlinkSync(process.execPath, path.join(bin, 'node'));
    const t = startTsnet(['attach', '-c', String(fx.ns.pid)], [], { PATH: bin });
    const r = await t.exited;
    expect(r.code).toBe(1);
    expect(t.stderr().trim()).toBe('tsnet: nsenter: not found (ENOENT) (install util-linux: apt-get install util-linux)');
  });

  it('rejects bad flags with a precise message', async () => {
    const bad = [
      [['attach', '--mtu', '70000', '1'], /^tsnet: --mtu: "70000" is not an MTU \(use a whole number from 68 to 65521\)$/m],
      [['attach', '--cidr', '10.0.2.100/24', '1'], /CIDR needs to be a network address like 10\.0\.2\.0\/24, not like 10\.0\.2\.100\/24/],
      [['attach', '--cidr', '10.0.2.0/26', '1'], /prefix length needs to be 1-25/],
      [['attach', '--cidr', 'foo', '1'], /^tsnet: --cidr: "foo" is not an IPv4 network/m],
      [['attach', '--netns-type', 'bogus', '1'], /^tsnet: --netns-type: "bogus" is not a target type \(use pid, path or tapfd\)$/m],
      [['attach', '--macaddress', '52:54:00:12:34:56', String(process.pid)], /^tsnet: --macaddress: can only be used with --configure \(add -c\)$/m],
    ] as const;
    for (const [args, re] of bad) {
      const t = startTsnet([...args]);
      const r = await t.exited;
      expect(r.code, args.join(' ')).toBe(1);
      expect(t.stderr()).toMatch(re);
      expect(t.stderr()).not.toMatch(/\n\s+at /); // no stack trace
    }
  });
});

describe.skipIf(integrationSkip !== '')('tsnet doctor (as the unprivileged user)', () => {
  it('reports every prerequisite on its own line and exits 0 on this machine', async () => {
    const t = startTsnet(['doctor']);
    const r = await t.exited;
    const out = t.stderr();
    for (const name of ['kernel', 'TUN device', 'user namespaces', 'unshare', 'nsenter', 'ip', 'subordinate ids', 'ICMP echo', 'Node.js']) {
      expect(out).toMatch(new RegExp(`^(ok|PROBLEM|note)\\s+${name}\\s`, 'm'));
    }
    expect(out).toMatch(/^ok\s+TUN device\s+\/dev\/net\/tun mode 0666/m);
    expect(r.code).toBe(0);
    expect(out).toMatch(/tsnet can run here/);
  });
});
