// Beyond the host loopback: a test host in a network namespace this test
// creates (veth pair, 10.201.0.0/24 — never any other address), reached by
// the guest through tsnet's NAT like any outside address. Root only (ip
// netns, sysctl); CI runs as root. Covers ICMP echo through unprivileged
// ping sockets, ICMP host unreachable for a dead address, and TCP/UDP to a
// non-loopback host. Also what --disable-host-loopback closes and what it
// leaves open (README "What the guest sees"): the host's own addresses
// (10.201.0.1 here, the veth's host side) and a link-local address
// (169.254.169.254, given to the test host) stay reachable.

import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import { createInterface } from 'node:readline';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { integrationSkip, killAll, Netns, readyFrom, runAs, startTsnet, stopTsnet, type Tsnet } from './harness.js';

const TESTNS = `tsnet-test-host-${process.pid}`;
const HOST_SIDE = 'tsnt-h';
const HOST_IP = '10.201.0.1';
const PEER_IP = '10.201.0.2';
const DEAD_IP = '10.201.0.77';
const LINK_LOCAL_IP = '169.254.169.254';
/** IPv6 on the same veth (documentation prefix, only on this pair). */
const HOST_IP6 = '2001:db8:7::1';
const PEER_IP6 = '2001:db8:7::2';
const HOST_IP6_2 = '2001:db8:7::11';
const PING_RANGE = '/proc/sys/net/ipv4/ping_group_range';

const ip = (...args: string[]) => execFileSync('ip', args, { stdio: 'pipe' });

describe.skipIf(integrationSkip !== '' || runAs === null)('outside addresses (test host in a veth namespace)', () => {
  let ns: Netns;
  let tsnet: Tsnet | undefined;
  let savedRange = '';

  beforeAll(() => {
    ip('netns', 'add', TESTNS);
    ip('link', 'add', HOST_SIDE, 'type', 'veth', 'peer', 'name', 'tsnt-p');
    ip('link', 'set', 'tsnt-p', 'netns', TESTNS);
    ip('addr', 'add', `${HOST_IP}/24`, 'dev', HOST_SIDE);
    ip('link', 'set', HOST_SIDE, 'up');
    ip('-n', TESTNS, 'addr', 'add', `${PEER_IP}/24`, 'dev', 'tsnt-p');
    ip('-n', TESTNS, 'link', 'set', 'tsnt-p', 'up');
    ip('-n', TESTNS, 'link', 'set', 'lo', 'up');
    // A link-local address on the test host (where a cloud metadata service would be).
    ip('-n', TESTNS, 'addr', 'add', `${LINK_LOCAL_IP}/32`, 'dev', 'tsnt-p');
    ip('route', 'add', `${LINK_LOCAL_IP}/32`, 'dev', HOST_SIDE);
    ip('addr', 'add', `${HOST_IP6}/64`, 'dev', HOST_SIDE, 'nodad');
    ip('-n', TESTNS, 'addr', 'add', `${PEER_IP6}/64`, 'dev', 'tsnt-p', 'nodad');
    savedRange = fs.readFileSync(PING_RANGE, 'utf8').trim().replace(/\s+/, ' ');
    // Let the unprivileged test user open ping sockets, as distributions do.
    fs.writeFileSync(PING_RANGE, `0 2147483647`);
  });
  afterAll(async () => {
    await killAll();
    if (savedRange) fs.writeFileSync(PING_RANGE, savedRange);
    try {
      ip('link', 'del', HOST_SIDE);
    } catch {
      // removed with the namespace
    }
    ip('netns', 'del', TESTNS);
  });
  beforeEach(async () => {
    ns = await Netns.create();
    tsnet = startTsnet(['attach', '-c', '-r', '3', String(ns.pid)], ['pipe']);
    expect(await readyFrom(tsnet)).toBe('1');
  });
  afterEach(async () => {
    if (tsnet) await stopTsnet(tsnet);
    tsnet = undefined;
    await ns.destroy();
  });

  it('forwards ping to an outside host through a ping socket', async () => {
    const r = await ns.exec(['ping', '-c', '3', '-i', '0.2', '-W', '2', PEER_IP]);
    expect(r.stdout, r.stderr + tsnet!.stderr()).toMatch(/3 packets transmitted, 3 received/);
  });

  it('reaches a TCP server on the test host (sha256 compared)', async () => {
    // The server runs inside the test namespace, bound to its own address.
    const server = await sourceServerIn(TESTNS, 4 * 1024 * 1024);
    try {
      const out = await ns.guest(['download', PEER_IP, String(server.port)]);
      expect(out).toBe(`${4 * 1024 * 1024} ${await server.sha}`);
    } finally {
      server.stop();
    }
  });

  it('--disable-host-loopback closes 10.0.2.2 -> 127.0.0.1 only: the host\'s own addresses and link-local stay reachable', async () => {
    // Host servers: one on every address, one on loopback only.
    const any = net.createServer((c) => c.end()).listen(0, '0.0.0.0');
    const lo = net.createServer((c) => c.end()).listen(0, '127.0.0.1');
    await Promise.all([any, lo].map((srv) => new Promise((r) => srv.once('listening', r))));
    const anyPort = (any.address() as net.AddressInfo).port;
    const loPort = (lo.address() as net.AddressInfo).port;
    const linkLocal = await sourceServerIn(TESTNS, 1024, LINK_LOCAL_IP);
    try {
      const connect = async (host: string, port: number) => (await ns.guest(['connect', host, String(port)], 30_000)).split(' ')[0];
      // Without the flag: the gateway is the host's loopback.
      expect(await connect('10.0.2.2', loPort)).toBe('ok');
      await stopTsnet(tsnet!);
      tsnet = startTsnet(['attach', '-c', '-r', '3', '--disable-host-loopback', String(ns.pid)], ['pipe']);
      expect(await readyFrom(tsnet)).toBe('1');
      // Closed: the gateway no longer leads to the host's loopback (ICMP net unreachable).
      expect(await connect('10.0.2.2', loPort)).toBe('ENETUNREACH');
      expect(await connect('10.0.2.2', anyPort)).toBe('ENETUNREACH');
      // Open, as in slirp4netns and pasta: the host's own non-loopback
      // addresses (services bound to them or to 0.0.0.0; podman's
      // host.containers.internal relies on it) ...
      expect(await connect(HOST_IP, anyPort)).toBe('ok');
      // ... but a loopback-only service is not reachable through them.
      expect(await connect(HOST_IP, loPort)).toBe('ECONNREFUSED');
      // ... and link-local addresses are forwarded like any outside address.
      expect(await ns.guest(['download', LINK_LOCAL_IP, String(linkLocal.port)])).toBe(`1024 ${await linkLocal.sha}`);
    } finally {
      linkLocal.stop();
      any.close();
      lo.close();
    }
  }, 60_000);

  it('-6: ping (an IPv6 ping socket) and a TCP download reach the test host over the host\'s IPv6', async () => {
    await stopTsnet(tsnet!);
    tsnet = startTsnet(['attach', '-c', '-6', '-r', '3', String(ns.pid)], ['pipe']);
    expect(await readyFrom(tsnet)).toBe('1');
    await ns.ipv6Ready();
    const r = await ns.exec(['ping', '-6', '-c', '3', '-i', '0.2', '-W', '2', PEER_IP6]);
    expect(r.stdout, r.stderr + tsnet.stderr()).toMatch(/3 packets transmitted, 3 received/);
    const server = await sourceServerIn(TESTNS, 1024 * 1024, PEER_IP6);
    try {
      const out = await ns.guest(['download', PEER_IP6, String(server.port)]);
      expect(out).toBe(`${1024 * 1024} ${await server.sha}`);
      expect(await server.peer).toBe(HOST_IP6);
    } finally {
      server.stop();
    }
  });

  it('--outbound-addr6 picks the source address of IPv6 host sockets: the test host sees it', async () => {
    await stopTsnet(tsnet!);
    // A second address on the veth, so the choice is visible (the kernel would pick the first).
    ip('addr', 'add', `${HOST_IP6_2}/64`, 'dev', HOST_SIDE, 'nodad');
    try {
      tsnet = startTsnet(['attach', '-c', '-6', '--outbound-addr6', HOST_IP6_2, '-r', '3', String(ns.pid)], ['pipe']);
      expect(await readyFrom(tsnet)).toBe('1');
      await ns.ipv6Ready();
      const server = await sourceServerIn(TESTNS, 64 * 1024, PEER_IP6);
      try {
        await ns.guest(['download', PEER_IP6, String(server.port)]);
        expect(await server.peer).toBe(HOST_IP6_2);
      } finally {
        server.stop();
      }
    } finally {
      ip('addr', 'del', `${HOST_IP6_2}/64`, 'dev', HOST_SIDE);
    }
  });

  it('reports a dead outside address as host unreachable (ICMP), not a hang', async () => {
    const [result, ms] = (await ns.guest(['connect', DEAD_IP, '80'], 30_000)).split(' ');
    expect(['EHOSTUNREACH', 'ENETUNREACH']).toContain(result);
    expect(Number(ms)).toBeLessThan(15_000);
  }, 40_000);
});

/** A one-shot TCP source inside `netns`: python streams n random bytes; `sha` resolves to their sha256. */
/** A server in the test namespace: sends n random bytes to one client; tells the client's address and the bytes' sha256. */
async function sourceServerIn(netns: string, n: number, addr = PEER_IP): Promise<{ port: number; peer: Promise<string>; sha: Promise<string>; stop: () => void }> {
  const code = `
import socket, os, hashlib
s = socket.socket(socket.AF_INET6 if ":" in "${addr}" else socket.AF_INET); s.bind(("${addr}", 0)); s.listen(1)
print(s.getsockname()[1], flush=True)
c, peer = s.accept(); print(peer[0], flush=True); h = hashlib.sha256(); left = ${n}
while left > 0:
    b = os.urandom(min(1 << 20, left)); c.sendall(b); h.update(b); left -= len(b)
c.close(); print(h.hexdigest(), flush=True)
`;
  const p = spawn('ip', ['netns', 'exec', netns, '/usr/bin/python3', '-c', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: p.stdout! })[Symbol.asyncIterator]();
  const port = Number((await lines.next()).value);
  const peer = lines.next().then((r) => String(r.value ?? ''));
  const sha = peer.then(() => lines.next()).then((r) => String(r.value ?? ''));
  return { port, peer, sha, stop: () => p.kill('SIGKILL') };
}
