// src/host/tcp-host.ts against real loopback sockets and a stand-in for the
// stack's TCP table: keepalive is turned on by the sweep, not at connect.

import net from 'node:net';
import { once } from 'node:events';
import { spawn, type ChildProcess } from 'node:child_process';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { getSockOptInt, SOL_SOCKET } from '../../../native/index.js';
import { Guard } from '../../../src/host/guard.js';
import type { Logger } from '../../../src/host/log.js';
import { TcpHost } from '../../../src/host/tcp-host.js';
import type { TcpFlow, TcpTable } from '../../../src/stack/tcp-flows.js';

const SO_KEEPALIVE = 9;

const quiet = { debug() {}, info() {}, warn() {}, error() {}, isLevelEnabled: () => false } as unknown as Logger;

let server: net.Server | undefined;
let host: TcpHost | undefined;
const children: ChildProcess[] = [];

afterEach(async () => {
  for (const c of children.splice(0)) c.kill();
  vi.useRealTimers();
  host?.closeAll();
  if (server) await new Promise<void>((r) => server!.close(() => r()));
  server = undefined;
});

describe('TcpHost', () => {
  it('turns TCP keepalive on 10-20 s after a host connection opens, not at connect', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    server = net.createServer(() => {});
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as net.AddressInfo).port;
    let accepted!: () => void;
    const connected = new Promise<void>((r) => (accepted = r));
    const table = {
      budget: { release() {}, force() {} },
      sendSpace: () => 65536,
      send: (_id: number, d: Buffer) => d.length,
      accepted: () => accepted(),
      refused() {},
      unreachable() {},
      close() {},
      abort() {},
      consumed() {},
    } as unknown as TcpTable;
    const clock = () => performance.now();
    host = new TcpHost({ nameservers: () => [], log: quiet, guard: new Guard(quiet, clock), clock }, () => {});
    host.bind(table);
    host.open({ id: 1, peerPort: port } as TcpFlow, { kind: 'host', addr: 0x7f000001 } as never);
    await connected;
    const socket = (host as unknown as { conns: Map<number, { socket: { fd: number } }> }).conns.get(1)!.socket;
    const keepalive = () => getSockOptInt(socket.fd, SOL_SOCKET, SO_KEEPALIVE);
    expect(keepalive()).toBe(0);
    vi.advanceTimersByTime(10_000);
    expect(keepalive()).toBe(0); // one sweep: seen
    vi.advanceTimersByTime(10_000);
    expect(keepalive()).toBe(1); // two: on
  });

  it('a host connect that never completes answers the guest with host unreachable after connectTimeoutMs, and only those', async () => {
    // A listener with a full accept queue (backlog 0, one connection never
    // accepted): the kernel drops further SYNs, so a connect hangs.
    const py = spawn('python3', ['-c', "import socket,sys\ns=socket.socket()\ns.bind(('127.0.0.1',0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\nsys.stdin.read()"], { stdio: ['pipe', 'pipe', 'inherit'] });
    children.push(py);
    const [line] = (await once(py.stdout!, 'data')) as [Buffer];
    const port = Number(line.toString().trim());
    const filler = net.connect({ port, host: '127.0.0.1' });
    await once(filler, 'connect');
    const events: string[] = [];
    const table = {
      budget: { release() {}, force() {} },
      sendSpace: () => 65536,
      send: (_id: number, d: Buffer) => d.length,
      accepted: (_now: number, id: number) => events.push(`accepted ${id}`),
      refused: (_now: number, id: number) => events.push(`refused ${id}`),
      unreachable: (_now: number, id: number, code: number) => events.push(`unreachable ${id} ${code}`),
      close() {},
      abort() {},
      consumed() {},
    } as unknown as TcpTable;
    const clock = () => performance.now();
    host = new TcpHost({ nameservers: () => [], log: quiet, guard: new Guard(quiet, clock), clock, connectTimeoutMs: 300 }, () => {});
    host.bind(table);
    const t0 = performance.now();
    host.open({ id: 1, peerPort: port } as TcpFlow, { kind: 'host', addr: 0x7f000001 } as never);
    await new Promise((r) => setTimeout(r, 100));
    host.open({ id: 2, peerPort: port } as TcpFlow, { kind: 'host', addr: 0x7f000001 } as never);
    // A third one that completes: its timeout must not fire later.
    server = net.createServer(() => {});
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    host.open({ id: 3, peerPort: (server.address() as net.AddressInfo).port } as TcpFlow, { kind: 'host', addr: 0x7f000001 } as never);
    const until = async (n: number) => {
      for (let i = 0; i < 200 && events.length < n; i++) await new Promise((r) => setTimeout(r, 10));
    };
    await until(2);
    expect(events).toEqual(['accepted 3', 'unreachable 1 1']);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(290);
    await until(3);
    expect(events).toEqual(['accepted 3', 'unreachable 1 1', 'unreachable 2 1']);
    expect(performance.now() - t0).toBeLessThan(1500);
    await new Promise((r) => setTimeout(r, 400));
    expect(events.length).toBe(3);
    filler.destroy();
  });

  it('a throw where the next read is to land resets that flow alone, counted, and nothing escapes', async () => {
    let peer!: net.Socket;
    server = net.createServer((s) => (peer = s));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as net.AddressInfo).port;
    const events: string[] = [];
    // After a read: the read itself asks sendSpace (room left?), then the
    // next read's buffer asks it again; only that second call throws.
    let calls = -1;
    let connected!: () => void;
    const up = new Promise<void>((r) => (connected = r));
    const table = {
      budget: { release() {}, force() {} },
      sendSpace: () => {
        if (calls >= 0 && ++calls === 2) throw new Error('bug in sendSpace');
        return 65536;
      },
      send: (_id: number, d: Buffer) => {
        events.push(`data ${d.toString()}`);
        calls = 0;
        return d.length;
      },
      accepted: () => connected(),
      abort: (_now: number, id: number) => events.push(`abort ${id}`),
      close() {},
      consumed() {},
    } as unknown as TcpTable;
    const clock = () => performance.now();
    const guard = new Guard(quiet, clock);
    host = new TcpHost({ nameservers: () => [], log: quiet, guard, clock }, () => {});
    host.bind(table);
    host.open({ id: 7, peerPort: port } as TcpFlow, { kind: 'host', addr: 0x7f000001 } as never);
    await up;
    for (let i = 0; i < 200 && !peer; i++) await new Promise((r) => setTimeout(r, 10));
    const peerClosed = once(peer, 'close');
    const escaped: unknown[] = [];
    const onUncaught = (e: unknown) => escaped.push(e);
    process.on('uncaughtException', onUncaught);
    try {
      peer.write('x');
      for (let i = 0; i < 200 && !events.includes('abort 7'); i++) await new Promise((r) => setTimeout(r, 10));
      expect(events).toEqual(['data x', 'abort 7']);
      expect(guard.snapshot()).toMatchObject({ 'tcp-host': 1 });
      expect((host as unknown as { conns: Map<number, unknown> }).conns.has(7)).toBe(false);
      await peerClosed;
      expect(escaped).toEqual([]);
    } finally {
      process.off('uncaughtException', onUncaught);
    }
  });

  it("adopts a forwarded client's handle (the server's count follows it), and resets a client whose handle cannot move", async () => {
    const accepted: net.Socket[] = [];
    server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (s) => accepted.push(s));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as net.AddressInfo).port;
    const events: string[] = [];
    const got: Buffer[] = [];
    const table = {
      budget: { release() {}, force() {} },
      sendSpace: () => 65536,
      send: (_id: number, d: Buffer) => (got.push(Buffer.from(d)), d.length),
      close: (_now: number, id: number) => events.push(`close ${id}`),
      abort: (_now: number, id: number) => events.push(`abort ${id}`),
      consumed() {},
    } as unknown as TcpTable;
    const clock = () => performance.now();
    host = new TcpHost({ nameservers: () => [], log: quiet, guard: new Guard(quiet, clock), clock }, () => {});
    host.bind(table);
    const until = async (pred: () => boolean) => {
      for (let i = 0; i < 200 && !pred(); i++) await new Promise((r) => setTimeout(r, 10));
      expect(pred()).toBe(true);
    };
    const srv = server as net.Server & { _connections: number };

    const a = net.connect(port, '127.0.0.1');
    a.end('hello');
    await until(() => accepted.length === 1);
    host.adopt(1, accepted[0]!);
    await until(() => events.includes('close 1'));
    expect(Buffer.concat(got).toString()).toBe('hello');
    expect(srv._connections).toBe(1);
    host.closed({ id: 1 } as TcpFlow);
    await until(() => srv._connections === 0);

    // Destroyed before the guest answered: nothing to take over.
    const b = net.connect(port, '127.0.0.1');
    await until(() => accepted.length === 2);
    accepted[1]!.destroy();
    host.adopt(2, accepted[1]!);
    expect(events).toContain('abort 2');
    expect((host as unknown as { conns: Map<number, unknown> }).conns.has(2)).toBe(false);
    a.destroy();
    b.destroy();
  });
});
