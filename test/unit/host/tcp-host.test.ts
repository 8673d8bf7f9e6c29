// src/host/tcp-host.ts against real loopback sockets and a stand-in for the
// stack's TCP table: keepalive is turned on by the sweep, not at connect.

import net from 'node:net';
import { once } from 'node:events';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { getSockOptInt, SOL_SOCKET, streamFd } from '../../../native/index.js';
import { Guard } from '../../../src/host/guard.js';
import type { Logger } from '../../../src/host/log.js';
import { TcpHost } from '../../../src/host/tcp-host.js';
import type { TcpFlow, TcpTable } from '../../../src/stack/tcp-flows.js';

const SO_KEEPALIVE = 9;

const quiet = { debug() {}, info() {}, warn() {}, error() {}, isLevelEnabled: () => false } as unknown as Logger;

let server: net.Server | undefined;
let host: TcpHost | undefined;

afterEach(async () => {
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
    const socket = (host as unknown as { conns: Map<number, { socket: net.Socket }> }).conns.get(1)!.socket;
    const keepalive = () => getSockOptInt(streamFd(socket), SOL_SOCKET, SO_KEEPALIVE);
    expect(keepalive()).toBe(0);
    vi.advanceTimersByTime(10_000);
    expect(keepalive()).toBe(0); // one sweep: seen
    vi.advanceTimersByTime(10_000);
    expect(keepalive()).toBe(1); // two: on
  });
});
