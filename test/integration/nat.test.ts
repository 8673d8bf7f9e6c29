// TCP and UDP termination end to end, as an unprivileged user: real tools in
// a rootless namespace behind `tsnet attach -c`, real servers on the host
// loopback reached through the gateway address (10.0.2.2). Sizes here are
// small enough for npm test; TSNET_TEST_SCALE=full runs the same tests at
// full size (1 GiB each way, 500 connections of 1 MiB, 1 GiB over the lossy
// link):  TSNET_TEST_SCALE=full npx vitest run test/integration/nat.test.ts

import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  guestPy,
  integrationSkip,
  readyFrom,
  runAs,
  startTsnet,
  statsOf,
  stopTsnet,
  type Tsnet,
  namespaceFixture,
  waitFor,
} from './harness.js';
import { closedPort, dnsServer, echoServer, sinkServer, sourceServer, udpEchoServer } from './servers.js';

const MiB = 1024 * 1024;
const FULL = process.env.TSNET_TEST_SCALE === 'full';
const BULK = FULL ? 1024 * MiB : 32 * MiB;
const LOSSY = FULL ? 1024 * MiB : 4 * MiB;
const CONNS = FULL ? 500 : 100;
const CONN_BYTES = FULL ? MiB : 256 * 1024;
const LONG = FULL ? 3_600_000 : 180_000;

function fdCount(pid: number): number {
  return fs.readdirSync(`/proc/${pid}/fd`).length;
}

describe.skipIf(integrationSkip !== '')('TCP/UDP termination (rootless namespace)', () => {
  const fx = namespaceFixture('tsnet-nat-');

  async function attach(extra: string[] = []): Promise<Tsnet> {
    const t = startTsnet(['attach', '-c', '-r', '3', ...extra, String(fx.ns.pid)], ['pipe']);
    expect(await readyFrom(t)).toBe('1');
    fx.tsnet = t;
    return t;
  }


  for (const mtu of [1500, 65520]) {
    it(`downloads and uploads ${BULK / MiB} MiB through 10.0.2.2 at MTU ${mtu}, sha256 identical`, async () => {
      await attach(['--mtu', String(mtu)]);
      const src = await sourceServer(BULK);
      const sink = await sinkServer();
      try {
        const down = await fx.ns.guest(['download', '10.0.2.2', String(src.port)], LONG);
        expect(down).toBe(`${BULK} ${src.sent[0]}`);
        const up = await fx.ns.guest(['upload', '10.0.2.2', String(sink.port), String(BULK)], LONG);
        const [bytes, sha] = up.split(' ');
        expect(sink.received).toEqual([{ bytes: Number(bytes), sha256: sha }]);
      } finally {
        await src.close();
        await sink.close();
      }
    }, LONG);
  }

  it('offloads at MTU 1500: the guest hands over TCP super-segments and takes ours whole; --no-offload moves wire-sized frames', async () => {
    const src = await sourceServer(8 * MiB);
    const sink = await sinkServer();
    try {
      let t = await attach(['--mtu', '1500']);
      expect(await fx.ns.guest(['download', '10.0.2.2', String(src.port)], LONG)).toBe(`${8 * MiB} ${src.sent[0]}`);
      const up = await fx.ns.guest(['upload', '10.0.2.2', String(sink.port), String(8 * MiB)], LONG);
      expect(sink.received[0]).toEqual({ bytes: 8 * MiB, sha256: up.split(' ')[1] });
      let s = await statsOf(t);
      // Toward the guest: super-segments for its kernel to take whole (TSO).
      expect(s.tap.txGso).toBeGreaterThan(0);
      expect(s.txBytes / s.txFrames).toBeGreaterThan(4000);
      // From the guest: its TSO super-segments, far above the 1514-byte frame.
      expect(s.rxBytes / s.rxFrames).toBeGreaterThan(4000);
      expect(s.drops['tcp-bad-checksum'] ?? 0).toBe(0);
      await stopTsnet(t);

      t = await attach(['--mtu', '1500', '--no-offload']);
      const up2 = await fx.ns.guest(['upload', '10.0.2.2', String(sink.port), String(2 * MiB)], LONG);
      expect(sink.received[1]).toEqual({ bytes: 2 * MiB, sha256: up2.split(' ')[1] });
      s = await statsOf(t);
      expect(s.tap.txGso).toBe(0);
      expect(s.rxBytes / s.rxFrames).toBeLessThanOrEqual(1514);
    } finally {
      await src.close();
      await sink.close();
    }
  }, LONG);

  it('--no-offload at MTU 65520: 64 KiB segments leave as headers + payload written from the send buffer, checksummed in full; 8 MiB down intact', async () => {
    const src = await sourceServer(8 * MiB);
    try {
      const t = await attach(['--mtu', '65520', '--no-offload']);
      // The guest's kernel checks every TCP checksum here: one wrong sum over
      // a payload written where it lies would stall the download.
      expect(await fx.ns.guest(['download', '10.0.2.2', String(src.port)], LONG)).toBe(`${8 * MiB} ${src.sent[0]}`);
      const s = await statsOf(t);
      expect(s.tap.txGso).toBe(0);
      expect(s.txBytes / s.txFrames).toBeGreaterThan(8000);
    } finally {
      await src.close();
    }
  }, LONG);

  it('offloads: an app\'s UDP_SEGMENT send (USO) leaves as separate datagrams, each echoed', async () => {
    const t = await attach(['--mtu', '1500']);
    const echo = await udpEchoServer();
    try {
      expect(await fx.ns.guest(['udp-gso', '10.0.2.2', String(echo.port), '1000', '4500'])).toBe('1000 1000 1000 1000 500');
      const s = await statsOf(t);
      expect(s.tap.rxUdpGso).toBe(1);
      expect(s.tap.rxBadVnet).toBe(0);
    } finally {
      await echo.close();
    }
  });

  it('survives a lossy link: drop=0.05,duplicate=0.01,reorder=0.01,corrupt=0.01 both ways', async () => {
    await attach(['--fault', 'drop=0.05,duplicate=0.01,reorder=0.01,corrupt=0.01,seed=7']);
    const src = await sourceServer(LOSSY);
    const sink = await sinkServer();
    try {
      const down = await fx.ns.guest(['download', '10.0.2.2', String(src.port)], LONG);
      expect(down).toBe(`${LOSSY} ${src.sent[0]}`);
      const up = await fx.ns.guest(['upload', '10.0.2.2', String(sink.port), String(LOSSY)], LONG);
      const [bytes, sha] = up.split(' ');
      expect(sink.received).toEqual([{ bytes: Number(bytes), sha256: sha }]);
      const s = await statsOf(fx.tsnet!);
      expect(s.fault.dropped).toBeGreaterThan(0);
      expect(s.fault.corrupted).toBeGreaterThan(0);
    } finally {
      await src.close();
      await sink.close();
    }
  }, LONG);

  it(`runs ${CONNS} concurrent echo connections of ${CONN_BYTES / 1024} KiB; afterwards no flow and no fd is left`, async () => {
    const t = await attach();
    const echo = await echoServer();
    try {
      const fds0 = fdCount(t.proc.pid!);
      expect(await fx.ns.guest(['echo-many', '10.0.2.2', String(echo.port), String(CONNS), String(CONN_BYTES)], LONG)).toBe(`ok ${CONNS}`);
      expect(echo.connections()).toBe(CONNS);
      // Flows leave the table once both sides closed (TIME_WAIT, if ours, is short).
      let s = await statsOf(t);
      const t0 = Date.now();
      while ((s.tcpFlows !== 0 || s.hostTcpSockets !== 0) && Date.now() - t0 < 10_000) {
        await new Promise((r) => setTimeout(r, 250));
        s = await statsOf(t);
      }
      expect(s.tcpFlows).toBe(0);
      expect(s.hostTcpSockets).toBe(0);
      expect(fdCount(t.proc.pid!)).toBe(fds0);
    } finally {
      await echo.close();
    }
  }, LONG);

  it('leases an address to busybox udhcpc without --configure (DHCP)', async () => {
    const t = startTsnet(['attach', '-r', '3', '--mtu', '9000', String(fx.ns.pid)], ['pipe']);
    expect(await readyFrom(t)).toBe('1');
    fx.tsnet = t;
    await fx.ns.exec(['ip', 'link', 'set', 'tap0', 'up']);
    const script = path.join(path.dirname(guestPy), 'udhcpc.sh');
    const r = await fx.ns.exec(['busybox', 'udhcpc', '-i', 'tap0', '-f', '-q', '-n', '-t', '5', '-s', script]);
    expect(r.stdout, r.stderr).toMatch(/lease ip=10\.0\.2\.15 mask=24 router=10\.0\.2\.2 dns=10\.0\.2\.3 mtu=9000/);
    const ping = await fx.ns.exec(['ping', '-c', '1', '-W', '2', '10.0.2.2']);
    expect(ping.stdout).toMatch(/1 received/);
  });

  it('refuses a connection to a closed host port immediately (RST)', async () => {
    await attach();
    const port = await closedPort();
    const [result, ms] = (await fx.ns.guest(['connect', '10.0.2.2', String(port)])).split(' ');
    expect(result).toBe('ECONNREFUSED');
    expect(Number(ms)).toBeLessThan(1000);
  });

  it('-6: TCP over IPv6 — echo connections through fd00::2 to a server on the host\'s ::1, a closed port refused at once, nothing left after', async () => {
    const t = await attach(['-6']);
    await fx.ns.ipv6Ready();
    const echo = await echoServer('::1');
    try {
      expect(await fx.ns.guest(['echo-many', 'fd00::2', String(echo.port), '20', String(64 * 1024)], LONG)).toBe('ok 20');
      expect(echo.connections()).toBe(20);
    } finally {
      await echo.close();
    }
    const port = await closedPort('::1');
    const [result, ms] = (await fx.ns.guest(['connect', 'fd00::2', String(port)])).split(' ');
    expect(result).toBe('ECONNREFUSED');
    expect(Number(ms)).toBeLessThan(1000);
    await waitFor(async () => (await statsOf(t)).tcpFlows === 0, 10_000, 'the IPv6 flows to close');
  });

  it('round-trips UDP through a host echo server and reports a closed port as ECONNREFUSED', async () => {
    await attach();
    const echo = await udpEchoServer();
    try {
      expect(await fx.ns.guest(['udp-echo', '10.0.2.2', String(echo.port)])).toBe(`hello tsnet 10.0.2.2 ${echo.port}`);
      expect(await fx.ns.guest(['udp-refused', '10.0.2.2', String(await closedPort())])).toBe('refused');
    } finally {
      await echo.close();
    }
  });

  it.skipIf(runAs === null)('-6: UDP over IPv6 — echo through fd00::2 to ::1 (the reply from fd00::2), a closed port refused; DNS through fd00::3 over UDP and TCP', async () => {
    const dns = await dnsServer('127.0.0.78', { 'test.tsnet': '192.0.2.44' });
    const resolv = path.join(fx.tmp, 'resolv.conf');
    fs.writeFileSync(resolv, 'nameserver 127.0.0.78\n');
    fs.chmodSync(resolv, 0o644);
    const echo = await udpEchoServer('::1');
    try {
      await attach(['-6', '--resolv-conf', resolv]);
      await fx.ns.ipv6Ready();
      expect(await fx.ns.guest(['udp-echo', 'fd00::2', String(echo.port)])).toBe(`hello tsnet fd00::2 ${echo.port}`);
      expect(await fx.ns.guest(['udp-refused', 'fd00::2', String(await closedPort('::1'))])).toBe('refused');
      expect(await fx.ns.guest(['dns-udp', 'fd00::3', 'test.tsnet'])).toBe('192.0.2.44');
      expect(await fx.ns.guest(['dns-tcp', 'fd00::3', 'test.tsnet'])).toBe('192.0.2.44');
      expect(dns.queries).toEqual({ udp: 1, tcp: 1 });
    } finally {
      await echo.close();
      await dns.close();
    }
  });

  it.skipIf(runAs === null)('a nameserver list mixing IPv6 and IPv4: a silent ::1 first, then 127.0.0.78 answers (UDP and TCP)', async () => {
    const dns = await dnsServer('127.0.0.78', { 'test.tsnet': '192.0.2.45' });
    const resolv = path.join(fx.tmp, 'resolv.conf');
    fs.writeFileSync(resolv, 'nameserver ::1\nnameserver 127.0.0.78\n');
    fs.chmodSync(resolv, 0o644);
    try {
      await attach(['--resolv-conf', resolv]);
      expect(await fx.ns.guest(['dns-udp', '10.0.2.3', 'test.tsnet'])).toBe('192.0.2.45');
      expect(await fx.ns.guest(['dns-tcp', '10.0.2.3', 'test.tsnet'])).toBe('192.0.2.45');
    } finally {
      await dns.close();
    }
  });

  it('--disable-host-loopback: TCP and UDP to 10.0.2.2 are unreachable, ping still answers', async () => {
    await attach(['--disable-host-loopback']);
    const echo = await echoServer();
    try {
      const [result] = (await fx.ns.guest(['connect', '10.0.2.2', String(echo.port)])).split(' ');
      expect(result).toBe('ENETUNREACH');
      const ping = await fx.ns.exec(['ping', '-c', '1', '-W', '2', '10.0.2.2']);
      expect(ping.stdout).toMatch(/1 received/);
      expect(echo.connections()).toBe(0);
    } finally {
      await echo.close();
    }
  });

  it.skipIf(runAs === null)('resolves through 10.0.2.3 over UDP and TCP against --resolv-conf nameservers, in order', async () => {
    // 127.0.0.79 is not listening: the forwarder must fall through to 127.0.0.78.
    const dns = await dnsServer('127.0.0.78', { 'test.tsnet': '192.0.2.44' });
    const resolv = path.join(fx.tmp, 'resolv.conf');
    fs.writeFileSync(resolv, 'nameserver 127.0.0.79\nnameserver 127.0.0.78\n');
    fs.chmodSync(resolv, 0o644);
    try {
      await attach(['--resolv-conf', resolv]);
      const udp = await fx.ns.exec(['busybox', 'nslookup', 'test.tsnet', '10.0.2.3']);
      expect(udp.stdout, udp.stderr).toMatch(/Address:\s*192\.0\.2\.44/);
      expect(await fx.ns.guest(['dns-tcp', '10.0.2.3', 'test.tsnet'])).toBe('192.0.2.44');
      expect(dns.queries.udp).toBeGreaterThan(0);
      expect(dns.queries.tcp).toBe(1);
    } finally {
      await dns.close();
    }
  });

  it.skipIf(runAs === null)('--disable-dns drops queries to 10.0.2.3 silently', async () => {
    const dns = await dnsServer('127.0.0.78', { 'test.tsnet': '192.0.2.44' });
    const resolv = path.join(fx.tmp, 'resolv.conf');
    fs.writeFileSync(resolv, 'nameserver 127.0.0.78\n');
    fs.chmodSync(resolv, 0o644);
    try {
      await attach(['--resolv-conf', resolv, '--disable-dns']);
      expect(await fx.ns.guest(['dns-udp', '10.0.2.3', 'test.tsnet'])).toBe('timeout');
      expect(dns.queries.udp).toBe(0);
    } finally {
      await dns.close();
    }
  });
});
