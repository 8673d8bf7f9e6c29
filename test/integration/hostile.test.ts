// A hostile guest, from inside a real rootless namespace behind `tsnet
// attach -c` (as the unprivileged test user): datagrams and connects to
// port 0 and to every special address class, stalled connections against a
// host server that never stops sending, a spoofed SYN flood, a UDP source
// port flood and connection churn — while a download runs. After each tsnet
// is alive, the download completes with its sha256 intact, a new connection
// works, the counters name every drop, and flows and fds return to their
// baseline. Memory is sampled throughout (VmHWM of the tsnet process).
// Small sizes here; `npm run soak` runs the large ones.

import crypto from 'node:crypto';
import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { integrationSkip, readyFrom, spawnAs, startTsnet, statsOf, namespaceFixture, tsnetMain, type Tsnet } from './harness.js';
import { closedPort, echoServer } from './servers.js';

/** Connects to a forwarded host port and returns what the guest's serve-peer answers. */
function fetchPeer(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let out = '';
    s.setEncoding('utf8');
    s.setTimeout(8000, () => s.destroy(new Error('timeout')));
    s.on('data', (d: string) => (out += d));
    s.on('end', () => resolve(out));
    s.on('error', reject);
  });
}

const MiB = 1024 * 1024;
const FULL = process.env.TSNET_TEST_SCALE === 'full';
const STALLED = 200;
const SYNS = FULL ? 20_000 : 2000;
const UDP_PORTS = FULL ? 5000 : 1000;
const CHURN = FULL ? 10_000 : 500;

/** Resident memory of pid in MiB: now and the peak (VmRSS, VmHWM). */
function memOf(pid: number): { rss: number; hwm: number } {
  const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)![1]) / 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

function fdCount(pid: number): number {
  return fs.readdirSync(`/proc/${pid}/fd`).length;
}

/** A host server that writes to every client as fast as it will take, forever (until closed). */
async function floodServer(): Promise<{ port: number; close(): Promise<void> }> {
  const chunk = crypto.randomBytes(256 * 1024);
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
    const pump = () => {
      while (!s.destroyed && s.write(chunk));
      if (!s.destroyed) s.once('drain', pump);
    };
    pump();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

/** A host server sending `bytes` random bytes per client, paced (~8 MiB/s), so a download spans the attack. */
async function pacedSource(bytes: number): Promise<{ port: number; sha: string; close(): Promise<void> }> {
  const data = crypto.randomBytes(bytes);
  const sha = crypto.createHash('sha256').update(data).digest('hex');
  const server = net.createServer((s) => {
    s.on('error', () => {});
    let off = 0;
    const tick = setInterval(() => {
      if (s.destroyed) return clearInterval(tick);
      const n = Math.min(512 * 1024, bytes - off);
      s.write(data.subarray(off, off + n));
      off += n;
      if (off >= bytes) {
        clearInterval(tick);
        s.end();
      }
    }, 60);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { port: (server.address() as net.AddressInfo).port, sha, close: () => new Promise((r) => server.close(() => r())) };
}

describe.skipIf(integrationSkip !== '')('a hostile guest (rootless namespace)', () => {
  const fx = namespaceFixture('tsnet-hostile-');

  async function attach(extra: string[] = []): Promise<Tsnet> {
    const t = startTsnet(['attach', '-c', '-r', '3', '--mtu', '65520', '--udp-idle-timeout', '1', '--log-level', 'info', ...extra, String(fx.ns.pid)], ['pipe']);
    expect(await readyFrom(t)).toBe('1');
    fx.tsnet = t;
    return t;
  }

  /** Runs attack() while a paced 24 MiB download runs; then checks the download, a new connection and liveness. */
  async function survives(t: Tsnet, echoPort: number, attack: () => Promise<unknown>): Promise<void> {
    const src = await pacedSource(24 * MiB);
    try {
      const download = fx.ns.guest(['download', '10.0.2.2', String(src.port)], 120_000);
      download.catch(() => {}); // awaited below
      await attack();
      const got = await download.catch((e: Error) => `${e.message}\n${t.stderr().slice(-3000)}`);
      expect(got).toBe(`${24 * MiB} ${src.sha}`);
      expect(await fx.ns.guest(['connect', '10.0.2.2', String(echoPort)])).toMatch(/^ok /);
      expect(t.proc.exitCode).toBeNull();
    } finally {
      await src.close();
    }
  }

  it('port 0 and every special destination: answered or dropped and counted, never a crash', async () => {
    const t = await attach();
    const echo = await echoServer();
    try {
      const targets = ['10.0.2.2', '10.0.2.3', '10.0.2.77', '0.0.0.1', '127.0.0.1', '224.0.0.1', '240.0.0.1', '255.255.255.255', '10.0.2.255'];
      const spray = targets.flatMap((a) => [`${a}:0/udp`, `${a}:0/tcp`, `${a}:53/udp`, `${a}:80/tcp`]);
      await survives(t, echo.port, () => fx.ns.guest(['spray', ...spray]));
      const stats = await statsOf(t);
      expect(stats.drops['dst-port-zero']).toBeGreaterThan(0);
      expect(stats.errors).toEqual({});
      expect(stats.drops['internal-error']).toBeUndefined();
    } finally {
      await echo.close();
    }
  });

  it('virtio-net headers written by a packet socket (PACKET_VNET_HDR): what the kernel lets through is cut or taken as it says, never a crash', async () => {
    const t = await attach();
    const echo = await echoServer();
    const port = await closedPort();
    try {
      let sent = '';
      await survives(t, echo.port, async () => {
        sent = await fx.ns.guest(['vnet-hostile', 'tap0', '10.0.2.2', String(port), '20']);
      });
      const n = Object.fromEntries(sent.split(' ').map((kv) => kv.split('=')).map(([k, v]) => [k, Number(v)]));
      // A valid UDP super-datagram (3 × 1000 bytes) is cut back into datagrams.
      expect(n['uso-3']).toBe(20);
      const stats = await statsOf(t);
      expect(stats.tap.rxUdpGso).toBe(20);
      // Anything the kernel passed that tsnet cannot honour is counted, not fatal.
      expect(stats.tap.rxBadVnet).toBe(0 + (n['uso-1-byte'] ?? 0) + (n['uso-375'] ?? 0) + (n['uso-size-0'] ?? 0) + (n['uso-on-tcp'] ?? 0));
      expect(stats.errors).toEqual({});
      expect(stats.drops['internal-error']).toBeUndefined();
    } finally {
      await echo.close();
    }
  });

  it(`${STALLED} connections that never read, against a host that never stops sending: RSS stays under 256 MiB`, async () => {
    const t = await attach();
    const echo = await echoServer();
    const flood = await floodServer();
    try {
      const pid = t.proc.pid!;
      const before = memOf(pid);
      let peak = 0;
      const sampler = setInterval(() => (peak = Math.max(peak, memOf(pid).rss)), 100);
      try {
        await survives(t, echo.port, async () => expect(await fx.ns.guest(['stall', '10.0.2.2', String(flood.port), String(STALLED), '6'], 60_000)).toBe(`held ${STALLED} refused 0`));
      } finally {
        clearInterval(sampler);
      }
      const stats = await statsOf(t);
      peak = Math.max(peak, memOf(pid).hwm);
      console.log(`stalled: RSS ${before.rss.toFixed(0)} MiB at start, peak ${peak.toFixed(0)} MiB; budget peak ${(stats.memory.peak / MiB).toFixed(1)} of ${(stats.memory.limit / MiB).toFixed(0)} MiB`);
      // Every new allocation is checked against the budget; reads already
      // sized and in flight when others took the rest may pass it, by at
      // most one fair share per flow (README "Limits and hardening").
      expect(stats.memory.peak).toBeLessThanOrEqual(2 * stats.memory.limit);
      expect(peak).toBeLessThan(256);
      expect(stats.errors).toEqual({});
    } finally {
      await flood.close();
      await echo.close();
    }
  });

  it(`a ${SYNS}-SYN spoofed flood, a ${UDP_PORTS}-port UDP flood and ${CHURN} connections of churn: flows and fds return to baseline`, async () => {
    const t = await attach(['--max-half-open', '256']);
    const echo = await echoServer();
    const sink = dgram.createSocket('udp4');
    await new Promise<void>((r) => sink.bind(0, '127.0.0.1', () => r()));
    try {
      const pid = t.proc.pid!;
      const fds0 = fdCount(pid);
      await survives(t, echo.port, async () => {
        await fx.ns.guest(['syn-flood', 'tap0', '10.0.2.2', String(echo.port), String(SYNS)], 120_000);
        await fx.ns.guest(['udp-ports', '10.0.2.2', String(sink.address().port), String(UDP_PORTS)], 120_000);
        await fx.ns.guest(['churn', '10.0.2.2', String(echo.port), String(CHURN)], 120_000);
      });
      const stats = await statsOf(t);
      // The flood hit the half-open cap: the excess was dropped and counted
      // (and old unanswered flows evicted when real connects needed room).
      expect(stats.drops['tcp-half-open-full'] ?? 0).toBeGreaterThan(0);
      console.log(`flood: half-open-full ${stats.drops['tcp-half-open-full']}, evicted ${stats.drops['tcp-half-open-evicted'] ?? 0}, udp flows opened ${stats.events['udp-flow-opened']}`);
      expect(stats.errors).toEqual({});
      // Spoofed half-open flows give up after their SYN-ACK retries (~7 s);
      // UDP flows expire after --udp-idle-timeout 1.
      const settle = Date.now();
      let s = stats;
      while (Date.now() - settle < 30_000) {
        s = await statsOf(t);
        if (s.udpFlows === 0 && s.tcpOpening === 0) break;
        await new Promise((r) => setTimeout(r, 500));
      }
      expect(s.udpFlows).toBe(0);
      expect(s.tcpOpening).toBe(0);
      expect(fdCount(pid)).toBeLessThanOrEqual(fds0 + 4);
    } finally {
      sink.close();
      await echo.close();
    }
  });

  it('-6: an IPv6 SYN flood from spoofed sources, a neighbor discovery flood and odd IPv6 destinations: counted, bounded, back to baseline', async () => {
    const t = await attach(['-6', '--max-half-open', '256']);
    const echo = await echoServer();
    const echo6 = await echoServer('::1');
    try {
      await fx.ns.ipv6Ready();
      await survives(t, echo.port, async () => {
        await fx.ns.guest(['syn-flood6', 'tap0', 'fd00::2', String(echo6.port), String(SYNS)], 120_000);
        await fx.ns.guest(['ndp-flood', 'tap0', '2000'], 120_000);
        const odd = ['::', '::1', 'ff02::1', '::ffff:10.0.2.2', 'fe80::99%tap0', 'fd00::99', '2001:db8::1'];
        await fx.ns.guest(['spray', ...odd.flatMap((a) => [`[${a}]:0/udp`, `[${a}]:80/tcp`, `[${a}]:53/udp`])]);
      });
      // IPv6 still works for the guest itself.
      expect(await fx.ns.guest(['connect', 'fd00::2', String(echo6.port)])).toMatch(/^ok /);
      const stats = await statsOf(t);
      expect(stats.errors).toEqual({});
      expect(stats.drops['tcp-half-open-full'] ?? 0).toBeGreaterThan(0);
      expect(stats.drops['ndp-rs-rate-limited'] ?? 0).toBeGreaterThan(0);
      console.log(`ipv6 flood: half-open-full ${stats.drops['tcp-half-open-full']}, rs rate-limited ${stats.drops['ndp-rs-rate-limited']}, ra sent ${stats.events['ndp-ra-sent']}`);
      // Spoofed half-open flows give up (~7 s); with them go the addresses they held.
      const settle = Date.now();
      let s = stats;
      while (Date.now() - settle < 30_000) {
        s = await statsOf(t);
        if (s.tcpOpening === 0 && s.ipv6Addresses === 0) break;
        await new Promise((r) => setTimeout(r, 500));
      }
      expect(s.tcpOpening).toBe(0);
      expect(s.ipv6Addresses).toBe(0);
    } finally {
      await echo6.close();
      await echo.close();
    }
  }, 90_000);

  it('out of file descriptors (prlimit --nofile=256): new flows are refused cleanly, existing ones go on, service resumes', async () => {
    const echo = await echoServer();
    const flood = await floodServer();
    const fwdPort = await closedPort();
    // prlimit execs tsnet: same PID, 256 fds at most.
    const proc = spawnAs('prlimit', ['--nofile=256:256', tsnetMain, 'attach', '-c', '-r', '3', '--mtu', '65520', '-p', `127.0.0.1:${fwdPort}:8080`, String(fx.ns.pid)], {
      stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
    });
    let err = '';
    proc.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
    const t: Tsnet = { proc, stderr: () => err, exited: new Promise((r) => proc.on('exit', (code, signal) => r({ code, signal }))) };
    fx.tsnet = t;
    try {
      expect(await readyFrom(t)).toBe('1');
      const server = await fx.ns.serve(['serve-peer', '8080', '1000']);
      await survives(t, echo.port, async () => {
        const stall = fx.ns.guest(['stall', '10.0.2.2', String(flood.port), '400', '3'], 60_000);
        // While the guest holds every descriptor: a host client of the
        // forward (accept under EMFILE) is turned away promptly, not hung.
        await new Promise((r) => setTimeout(r, 1500));
        const t0 = Date.now();
        const during = await fetchPeer(fwdPort).catch((e: Error) => `error ${e.message}`);
        expect(Date.now() - t0).toBeLessThan(10_000);
        const held = await stall;
        const [, ok, , refused] = held.split(' ').map(Number);
        expect(ok).toBeGreaterThan(100);
        expect(refused).toBeGreaterThan(0);
        expect(ok + refused).toBe(400);
        console.log(`fd limit: ${ok} held, ${refused} refused; forward client during: ${during.trim()}`);
      });
      const stats = await statsOf(t);
      expect(stats.hostFdRefusals).toBeGreaterThan(0);
      expect(stats.errors).toEqual({});
      // Descriptors free again: a burst of new connections all work, and so does the forward.
      expect(await fx.ns.guest(['churn', '10.0.2.2', String(echo.port), '100'])).toBe('ok 100');
      expect(await fetchPeer(fwdPort)).toMatch(/^peer=10\.0\.2\.2:\d+/);
      server.proc.kill('SIGKILL');
    } finally {
      await flood.close();
      await echo.close();
    }
  });
});
