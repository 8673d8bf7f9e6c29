// Port forwarding into the guest, as an unprivileged user: `tsnet attach -c
// -p HOST:GUEST` and the --api-socket, with real servers inside a rootless
// namespace and real clients on the host. The guest must see the client's
// own address (the gateway for loopback clients).

import { execFileSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { integrationSkip, readyFrom, runAs, startTsnet, statsOf, stopTsnet, type Tsnet, namespaceFixture } from './harness.js';
import { apiCall } from '../support/api-client.js';
import { closedPort } from './servers.js';
import dgram from 'node:dgram';

const MiB = 1024 * 1024;
const FULL = process.env.TSNET_TEST_SCALE === 'full';
const BULK = FULL ? 1024 * MiB : 16 * MiB;
const CONNS = 200;
const CONN_BYTES = FULL ? MiB : 64 * 1024;
const LONG = FULL ? 3_600_000 : 120_000;

/** One UDP client: sends `text`, resolves with the first reply. */
function udpAsk(port: number, text: string, host = '127.0.0.1', localPort = 0): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
    const timer = setTimeout(() => {
      s.close();
      reject(new Error(`no UDP reply for ${text}`));
    }, 5000);
    s.on('message', (m) => {
      clearTimeout(timer);
      s.close();
      resolve(m.toString());
    });
    s.bind(localPort, host, () => s.send(text, port, host));
  });
}

/** Sends `data` on a new connection, half-closes, resolves with everything echoed back. */
function echoThrough(port: number, data: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    const got: Buffer[] = [];
    s.on('data', (d) => got.push(d));
    s.on('end', () => {
      s.end();
      resolve(Buffer.concat(got));
    });
    s.on('error', reject);
    s.end(data);
  });
}

/** Connects to host:port, optionally sends data and half-closes, returns all it reads. */
function fetchFrom(port: number, host = '127.0.0.1', send?: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port, allowHalfOpen: true });
    let out = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => (out += d));
    s.on('end', () => resolve(out));
    s.on('error', reject);
    if (send) s.end(send);
  });
}

describe.skipIf(integrationSkip !== '')('port forwarding (rootless namespace)', () => {
  const fx = namespaceFixture('tsnet-fwd-');

  async function attach(extra: string[]): Promise<Tsnet> {
    const t = startTsnet(['attach', '-c', '-r', '3', ...extra, String(fx.ns.pid)], ['pipe']);
    expect(await readyFrom(t)).toBe('1');
    fx.tsnet = t;
    return t;
  }

  it('-p forwards a host port to the guest; a loopback client appears as 10.0.2.2', async () => {
    const port = await closedPort();
    await attach(['-p', `127.0.0.1:${port}:8080`]);
    const srv = await fx.ns.serve(['serve-peer', '8080', '1']);
    expect(await fetchFrom(port)).toMatch(/^peer=10\.0\.2\.2:\d+\n$/);
    // The server exits after its one connection (it may already have).
    if (srv.proc.exitCode === null && srv.proc.signalCode === null) await new Promise((r) => srv.proc.once('exit', r));
  });

  it(`moves ${BULK / MiB} MiB up to a guest sink and down from a guest source intact`, async () => {
    const port = await closedPort();
    await attach(['-p', `127.0.0.1:${port}:9000`]);
    await fx.ns.serve(['serve-sink', '9000']);
    const data = crypto.randomBytes(Math.min(BULK, 64 * MiB));
    const h = crypto.createHash('sha256');
    let sent = 0;
    // Upload BULK bytes (the random block repeated) and compare hashes.
    const reply = await new Promise<string>((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
      let out = '';
      s.setEncoding('utf8');
      s.on('data', (d: string) => (out += d));
      s.on('end', () => resolve(out));
      s.on('error', reject);
      const pump = () => {
        while (sent < BULK) {
          const chunk = data.subarray(0, Math.min(data.length, BULK - sent));
          h.update(chunk);
          sent += chunk.length;
          if (!s.write(chunk)) return void s.once('drain', pump);
        }
        s.end();
      };
      pump();
    });
    expect(reply).toBe(`${BULK} ${h.digest('hex')}`);

    const src = await fx.ns.serve(['serve-source', '9000', String(BULK)]);
    const down = await new Promise<string>((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port });
      const hd = crypto.createHash('sha256');
      let n = 0;
      s.on('data', (d: Buffer) => {
        hd.update(d);
        n += d.length;
      });
      s.on('end', () => resolve(`${n} ${hd.digest('hex')}`));
      s.on('error', reject);
    });
    expect(down).toBe((await src.lines.next()).value);
  }, LONG);

  it(`${CONNS} concurrent forwarded connections echo their data intact; the flow table empties`, async () => {
    const port = await closedPort();
    const t = await attach(['-p', `127.0.0.1:${port}:7000`]);
    const srv = await fx.ns.serve(['serve-echo', '7000']);
    try {
      const payloads = Array.from({ length: CONNS }, () => crypto.randomBytes(CONN_BYTES));
      const echoed = await Promise.all(payloads.map((p) => echoThrough(port, p)));
      echoed.forEach((e, i) => expect(e.equals(payloads[i]!), `connection ${i}`).toBe(true));
      let s = await statsOf(t);
      const t0 = Date.now();
      while (s.tcpFlows !== 0 && Date.now() - t0 < 10_000) {
        await new Promise((r) => setTimeout(r, 250));
        s = await statsOf(t);
      }
      expect(s.tcpFlows).toBe(0);
      expect(s.hostTcpSockets).toBe(0);
    } finally {
      srv.proc.kill('SIGKILL');
    }
  }, LONG);

  it('-p HOST:GUEST/udp: a guest echo server answers two host clients, each gets its own replies', async () => {
    const port = await closedPort();
    await attach(['-p', `127.0.0.1:${port}:5353/udp`]);
    const srv = await fx.ns.serve(['udp-echo-server', '5353']);
    try {
      const [a, b] = await Promise.all([udpAsk(port, 'client-a'), udpAsk(port, 'client-b')]);
      expect(a).toMatch(/^10\.0\.2\.2:\d+ client-a$/);
      expect(b).toMatch(/^10\.0\.2\.2:\d+ client-b$/);
      expect(a.split(' ')[0]).not.toBe(b.split(' ')[0]);
    } finally {
      srv.proc.kill('SIGKILL');
    }
  });

  it('-6: a UDP forward to the guest\'s IPv6 address (API guest_addr) carries an IPv6 client as itself', async () => {
    const sock = path.join(fx.tmp, 'api.sock');
    await attach(['-6', '--api-socket', sock]);
    await fx.ns.ipv6Ready();
    const guest6 = /inet6 (fd00::[0-9a-f:]+)\/64 scope global/.exec((await fx.ns.exec(['ip', '-6', 'addr', 'show', 'dev', 'tap0'])).stdout)![1]!;
    const port = await closedPort('::1');
    const add = await apiCall(sock, { execute: 'add_hostfwd', arguments: { proto: 'udp', host_addr: '::1', host_port: port, guest_addr: guest6, guest_port: 5353 } });
    expect(add.return?.id, JSON.stringify(add)).toBe(1);
    const srv = await fx.ns.serve(['udp-echo-server', '5353', 'any']);
    try {
      expect(await udpAsk(port, 'over v6', '::1')).toMatch(/^fd00::2:\d+ over v6$/);
    } finally {
      srv.proc.kill('SIGKILL');
    }
  });

  it('-6: -p on [::1] for UDP carries an IPv6 client over IPv6 to a guest on [::]; a guest on IPv4 only refuses it, and it goes over IPv4', async () => {
    const port = await closedPort('::1');
    await attach(['-6', '-p', `[::1]:${port}:5353/udp`, '-p', `[::1]:${port + 1}:5354/udp`]);
    await fx.ns.ipv6Ready();
    const any = await fx.ns.serve(['udp-echo-server', '5353', 'any']);
    const v4only = await fx.ns.serve(['udp-echo-server', '5354']);
    try {
      expect(await udpAsk(port, 'to [::]', '::1')).toMatch(/^fd00::2:\d+ to \[::\]$/);
      // The first datagram is refused over IPv6 (ICMPv6 port unreachable) and sent again over IPv4.
      expect(await udpAsk(port + 1, 'to 0.0.0.0', '::1')).toMatch(/^10\.0\.2\.2:\d+ to 0\.0\.0\.0$/);
    } finally {
      any.proc.kill('SIGKILL');
      v4only.proc.kill('SIGKILL');
    }
  });

  it('UDP forward: clients on 127.0.0.1 and ::1 with the same source port stay two conversations', async () => {
    const port = await closedPort();
    // One dual-stack listener: both clients reach the same forward.
    await attach(['-p', `[::]:${port}:5353/udp`]);
    const srv = await fx.ns.serve(['udp-echo-server', '5353']);
    try {
      const src = await closedPort();
      // Both appear to the guest as 10.0.2.2 with the same port: tsnet must re-map one.
      const [a, b] = await Promise.all([udpAsk(port, 'client-v4', '127.0.0.1', src), udpAsk(port, 'client-v6', '::1', src)]);
      expect(a).toMatch(/^10\.0\.2\.2:\d+ client-v4$/);
      expect(b).toMatch(/^10\.0\.2\.2:\d+ client-v6$/);
      expect(a.split(' ')[0]).not.toBe(b.split(' ')[0]);
    } finally {
      srv.proc.kill('SIGKILL');
    }
  });

  it('resets the client promptly when nothing listens in the guest', async () => {
    const port = await closedPort();
    await attach(['-p', `127.0.0.1:${port}:8081`]);
    const t0 = Date.now();
    await expect(fetchFrom(port)).rejects.toThrow(/ECONNRESET/);
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  it('[::1]:PORT:GUEST works for a client connecting to ::1 (it appears as the gateway)', async () => {
    const port = await closedPort();
    await attach(['-p', `[::1]:${port}:8080`]);
    await fx.ns.serve(['serve-peer', '8080', '1']);
    expect(await fetchFrom(port, '::1')).toMatch(/^peer=10\.0\.2\.2:\d+\n$/);
  });

  it('-6: an IPv6 client reaches a guest server on [::] over IPv6 (::1 appears as fd00::2); a guest server on IPv4 only is reached over IPv4', async () => {
    const port = await closedPort('::1');
    await attach(['-6', '-p', `[::1]:${port}:8080`, '-p', `[::1]:${port + 1}:8081`]);
    await fx.ns.ipv6Ready();
    await fx.ns.serve(['serve-peer-any', '8080', '1']);
    expect(await fetchFrom(port, '::1')).toMatch(/^peer=fd00::2:\d+\n$/);
    // The guest refuses over IPv6 (nothing on [::]:8081): tsnet tries IPv4.
    await fx.ns.serve(['serve-peer', '8081', '1']);
    expect(await fetchFrom(port + 1, '::1')).toMatch(/^peer=10\.0\.2\.2:\d+\n$/);
  });

  it('resets the client when the guest never answers (SYN retries, ~7 s)', async () => {
    const sock = path.join(fx.tmp, 'api.sock');
    await attach(['--api-socket', sock]);
    const port = await closedPort();
    // 10.0.2.50: nobody answers ARP, so the SYN never gets an answer.
    const add = await apiCall(sock, { execute: 'add_hostfwd', arguments: { proto: 'tcp', host_addr: '127.0.0.1', host_port: port, guest_addr: '10.0.2.50', guest_port: 80 } });
    expect(add.return.id).toBe(1);
    const t0 = Date.now();
    await expect(fetchFrom(port)).rejects.toThrow(/ECONNRESET/);
    expect(Date.now() - t0).toBeLessThan(12_000);
  }, 20_000);

  it('remove_hostfwd closes the listener but open connections keep working', async () => {
    const sock = path.join(fx.tmp, 'api.sock');
    await attach(['--api-socket', sock]);
    const port = await closedPort();
    await apiCall(sock, { execute: 'add_hostfwd', arguments: { proto: 'tcp', host_addr: '127.0.0.1', host_port: port, guest_port: 9000 } });
    await fx.ns.serve(['serve-sink', '9000']);
    const c = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    await new Promise((r) => c.once('connect', r));
    c.write(Buffer.alloc(1000, 1));
    expect(await apiCall(sock, { execute: 'remove_hostfwd', arguments: { id: 1 } })).toEqual({ return: {} });
    await expect(fetchFrom(port)).rejects.toThrow(/ECONNREFUSED/);
    const reply = await new Promise<string>((resolve) => {
      let out = '';
      c.setEncoding('utf8');
      c.on('data', (d: string) => (out += d));
      c.on('end', () => resolve(out));
      c.end(Buffer.alloc(1000, 1));
    });
    expect(reply).toBe(`2000 ${crypto.createHash('sha256').update(Buffer.alloc(2000, 1)).digest('hex')}`);
  });

  it('rejects a bad -p spec with one line naming the bad part', async () => {
    const t = startTsnet(['attach', '-p', '8080:80/sctp', String(fx.ns.pid)]);
    const r = await t.exited;
    expect(r.code).toBe(1);
    expect(t.stderr()).toMatch(/^tsnet: --publish: "8080:80\/sctp": protocol must be tcp or udp \(e\.g\. -p 8080:80 or -p 127\.0\.0\.1:5353:53\/udp\)$/m);
  });

  it('--api-socket: add, list, remove, errors', async () => {
    const sock = path.join(fx.tmp, 'api.sock');
    await attach(['--api-socket', sock]);
    expect(fs.statSync(sock).mode & 0o777).toBe(0o600);
    const port = await closedPort();
    const add = await apiCall(sock, { execute: 'add_hostfwd', arguments: { proto: 'tcp', host_addr: '127.0.0.1', host_port: port, guest_port: 8080 } });
    expect(add).toEqual({ return: { id: 1 } });
    await fx.ns.serve(['serve-peer', '8080', '1']);
    expect(await fetchFrom(port)).toMatch(/^peer=10\.0\.2\.2:/);
    const list = await apiCall(sock, { execute: 'list_hostfwd' });
    const entry = { id: 1, proto: 'tcp', host_addr: '127.0.0.1', host_port: port, guest_addr: '10.0.2.100', guest_port: 8080 };
    expect(list).toEqual({ entries: [entry], return: { entries: [entry] } });
    expect(await apiCall(sock, { execute: 'remove_hostfwd', arguments: { id: 1 } })).toEqual({ return: {} });
    await expect(fetchFrom(port)).rejects.toThrow(/ECONNREFUSED/);
    expect(await apiCall(sock, 'not json')).toEqual({ error: { desc: 'bad request: cannot parse JSON' } });
    expect(await apiCall(sock, { execute: 'remove_hostfwd', arguments: { id: 1 } })).toEqual({ error: { desc: 'bad request: remove_hostfwd: bad arguments.id' } });
    const eph = await apiCall(sock, { execute: 'add_hostfwd', arguments: { proto: 'tcp', host_addr: '127.0.0.1', host_port: 0, guest_port: 8080 } });
    expect(eph.return.id).toBe(2);
    expect(eph.return.host_port).toBeGreaterThan(0);
    const dup = await apiCall(sock, { execute: 'add_hostfwd', arguments: { proto: 'tcp', host_addr: '127.0.0.1', host_port: eph.return.host_port, guest_port: 1 } });
    expect(dup.error.desc).toMatch(/^bad request: add_hostfwd: slirp_add_hostfwd failed: EADDRINUSE/);
    const stats = await apiCall(sock, { execute: 'get_stats' });
    expect(stats.return.forwardedConnections).toBe(1);
  });

  it.skipIf(runAs === null)('shows a client from another host (a veth namespace) with its own address', async () => {
    const testns = `tsnet-fwd-client-${process.pid}`;
    const ip = (...a: string[]) => spawnSyncOk('ip', a);
    ip('netns', 'add', testns);
    try {
      ip('link', 'add', 'tsfw-h', 'type', 'veth', 'peer', 'name', 'tsfw-c');
      ip('link', 'set', 'tsfw-c', 'netns', testns);
      ip('addr', 'add', '10.202.0.1/24', 'dev', 'tsfw-h');
      ip('link', 'set', 'tsfw-h', 'up');
      ip('-n', testns, 'addr', 'add', '10.202.0.2/24', 'dev', 'tsfw-c');
      ip('-n', testns, 'link', 'set', 'tsfw-c', 'up');
      const port = await closedPort();
      await attach(['-p', `10.202.0.1:${port}:8080`]);
      await fx.ns.serve(['serve-peer', '8080', '1']);
      const client = spawn('ip', ['netns', 'exec', testns, '/usr/bin/python3', '-c',
        `import socket; s = socket.create_connection(("10.202.0.1", ${port}), timeout=10); print(s.recv(100).decode().strip())`], { stdio: ['ignore', 'pipe', 'inherit'] });
      const out = await new Promise<string>((resolve) => {
        let o = '';
        client.stdout!.setEncoding('utf8').on('data', (d: string) => (o += d));
        client.on('close', () => resolve(o.trim()));
      });
      expect(out).toMatch(/^peer=10\.202\.0\.2:\d+$/);
      // Over IPv6: -6, a forward on the host's IPv6 address of the veth, the client seen as itself.
      ip('addr', 'add', '2001:db8:9::1/64', 'dev', 'tsfw-h', 'nodad');
      ip('-n', testns, 'addr', 'add', '2001:db8:9::2/64', 'dev', 'tsfw-c', 'nodad');
      await stopTsnet(fx.tsnet!);
      fx.tsnet = undefined;
      const port6 = await closedPort('2001:db8:9::1');
      await attach(['-6', '-p', `[2001:db8:9::1]:${port6}:8080`]);
      await fx.ns.ipv6Ready();
      await fx.ns.serve(['serve-peer-any', '8080', '1']);
      const client6 = spawn('ip', ['netns', 'exec', testns, '/usr/bin/python3', '-c',
        `import socket; s = socket.create_connection(("2001:db8:9::1", ${port6}), timeout=10); print(s.recv(100).decode().strip())`], { stdio: ['ignore', 'pipe', 'inherit'] });
      const out6 = await new Promise<string>((resolve) => {
        let o = '';
        client6.stdout!.setEncoding('utf8').on('data', (d: string) => (o += d));
        client6.on('close', () => resolve(o.trim()));
      });
      expect(out6).toMatch(/^peer=2001:db8:9::2:\d+$/);
    } finally {
      try {
        ip('link', 'del', 'tsfw-h');
      } catch {
        // gone with the namespace
      }
      ip('netns', 'del', testns);
    }
  });
});

function spawnSyncOk(cmd: string, args: string[]): void {
  execFileSync(cmd, args, { stdio: 'pipe' });
}
