// src/host/host-socket.ts against real loopback peers: connect, reads into
// the owner's buffers, writes and their completions (also when the peer does
// not read, and when the socket is closed with writes queued), shutdown
// after queued writes, EOF, close once both directions are done, reset,
// errors as errno names, and an accepted connection's handle taken over.

import net from 'node:net';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { HostSocket, type HostSocketOwner } from '../../../src/host/host-socket.js';

const servers: net.Server[] = [];
const peers: net.Socket[] = [];

afterEach(async () => {
  for (const p of peers.splice(0)) p.destroy();
  for (const s of servers.splice(0)) await new Promise<void>((r) => s.close(() => r()));
});

async function listen(onConn: (s: net.Socket) => void, opts: net.ServerOpts = {}): Promise<{ server: net.Server; port: number }> {
  const server = net.createServer({ allowHalfOpen: true, ...opts }, (s) => {
    peers.push(s);
    onConn(s);
  });
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as net.AddressInfo).port };
}

/** An owner that records what it hears, reading into one 64 KiB buffer. */
function recorder(opts: { stopAfter?: number } = {}) {
  const events: string[] = [];
  const chunks: Buffer[] = [];
  const buf = Buffer.alloc(65536);
  let reads = 0;
  let wake: (() => void) | undefined;
  const owner: HostSocketOwner<string> = {
    connected: (tag) => note(`connected ${tag}`),
    nextBuffer: () => buf,
    read: (_tag, n, b) => {
      expect(b).toBe(buf);
      chunks.push(Buffer.from(b.subarray(0, n)));
      reads++;
      note('read');
      return opts.stopAfter === undefined || reads < opts.stopAfter;
    },
    ended: () => note('ended'),
    failed: (_tag, code) => note(`failed ${code}`),
  };
  function note(e: string): void {
    events.push(e);
    wake?.();
  }
  const until = async (pred: () => boolean, ms = 5000): Promise<void> => {
    const deadline = Date.now() + ms;
    while (!pred()) {
      if (Date.now() > deadline) throw new Error(`timed out; events: ${events.join(', ')}`);
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, 20);
      });
    }
  };
  return { owner, events, data: () => Buffer.concat(chunks).toString(), until };
}

describe('HostSocket', () => {
  it('connects, reads, writes, sends FIN after its writes, hears EOF, and closes once both directions are done', async () => {
    let peer!: net.Socket;
    const got: Buffer[] = [];
    const { port } = await listen((s) => {
      peer = s;
      s.on('data', (d) => got.push(d));
    });
    const r = recorder();
    const s = HostSocket.connect(r.owner, 'a', '127.0.0.1', port, undefined);
    expect(s.connected).toBe(false);
    // Written before the connect completes: waits for it.
    const done: number[] = [];
    s.write(Buffer.from('early '), (st) => done.push(st));
    await r.until(() => r.events.includes('connected a'));
    s.write(Buffer.from('late'), (st) => done.push(st));
    await r.until(() => done.length === 2);
    expect(done).toEqual([0, 0]);
    peer.write('hello');
    await r.until(() => r.data() === 'hello');
    s.end();
    await once(peer, 'end');
    expect(Buffer.concat(got).toString()).toBe('early late');
    expect(s.destroyed).toBe(false); // the peer may still send
    peer.end('bye');
    await r.until(() => r.events.includes('ended'));
    expect(r.data()).toBe('hellobye');
    await r.until(() => s.destroyed);
    expect(s.fd).toBe(-1);
    expect(r.events.filter((e) => e.startsWith('failed'))).toEqual([]);
  });

  it('reports a refused connect as ECONNREFUSED, and a bind the kernel refuses at once on a later tick, completing writes that waited', async () => {
    const { server, port } = await listen(() => {});
    await new Promise<void>((res) => server.close(() => res()));
    servers.splice(servers.indexOf(server), 1);
    const r = recorder();
    const s = HostSocket.connect(r.owner, 'x', '127.0.0.1', port, undefined);
    await r.until(() => r.events.length > 0);
    expect(r.events).toEqual(['failed ECONNREFUSED']);
    expect(s.destroyed).toBe(true);

    const r2 = recorder();
    // 192.0.2.1 (TEST-NET-1) is no address of this host: bind(2) fails with EADDRNOTAVAIL.
    const s2 = HostSocket.connect(r2.owner, 'y', '127.0.0.1', port, '192.0.2.1');
    expect(r2.events).toEqual([]); // never from inside connect()
    // A write waiting for the connect still completes (with an error) when it fails.
    const status: number[] = [];
    s2.write(Buffer.from('never sent'), (st) => status.push(st));
    expect(s2.writableLength).toBe(10);
    await r2.until(() => r2.events.length > 0);
    expect(r2.events).toEqual(['failed EADDRNOTAVAIL']);
    expect(status).toHaveLength(1);
    expect(status[0]).toBeLessThan(0);
    expect(s2.writableLength).toBe(0);
  });

  it('counts writes the kernel could not take until they complete; closing with writes queued completes them all', async () => {
    let peer!: net.Socket;
    const { port } = await listen((p) => {
      peer = p;
      p.pause(); // reads nothing
    });
    const r = recorder();
    const s = HostSocket.connect(r.owner, 'w', '127.0.0.1', port, undefined);
    await r.until(() => r.events.includes('connected w'));
    const block = Buffer.alloc(1 << 20, 0x61);
    const status: number[] = [];
    for (let i = 0; i < 32 && s.writableLength === 0; i++) s.write(block, (st) => status.push(st));
    expect(s.writableLength).toBeGreaterThan(0);
    s.write(block, (st) => status.push(st));
    peer.resume();
    await r.until(() => s.writableLength === 0 && status.length >= 2);
    expect(status.every((st) => st === 0)).toBe(true);

    peer.pause();
    const before = status.length;
    let n = 0;
    while (s.writableLength === 0 && n++ < 64) s.write(block, (st) => status.push(st));
    const pending = n + before - status.length;
    expect(pending).toBeGreaterThan(0);
    s.destroy();
    // libuv cancels them: every callback still comes (the caller's budget comes back).
    await r.until(() => status.length === before + n);
    expect(status.slice(before).some((st) => st < 0)).toBe(true);
    expect(r.events.filter((e) => e.startsWith('failed'))).toEqual([]);
  });

  it('sends FIN at once with nothing queued, and only after the queue when writes wait', async () => {
    let peer!: net.Socket;
    let received = 0;
    const { port } = await listen((p) => {
      peer = p;
      p.pause();
      p.on('data', (d) => (received += d.length));
    });
    const r = recorder();
    const s = HostSocket.connect(r.owner, 'f', '127.0.0.1', port, undefined);
    await r.until(() => r.events.includes('connected f'));
    const block = Buffer.alloc(1 << 20, 0x62);
    let written = 0;
    for (let i = 0; i < 64 && s.writableLength === 0; i++) {
      s.write(block, () => {});
      written += block.length;
    }
    expect(s.writableLength).toBeGreaterThan(0);
    let flushed = false;
    s.end();
    s.whenFlushed(() => (flushed = true));
    expect(flushed).toBe(false); // the FIN waits for the queue
    peer.resume();
    await once(peer, 'end');
    expect(received).toBe(written); // every byte came before the FIN
    await r.until(() => flushed);

    // Nothing queued: done before end() returns.
    const r2 = recorder();
    let peer2!: net.Socket;
    const { port: port2 } = await listen((p) => (peer2 = p));
    const s2 = HostSocket.connect(r2.owner, 'g', '127.0.0.1', port2, undefined);
    await r2.until(() => r2.events.includes('connected g'));
    s2.end();
    let flushed2 = false;
    s2.whenFlushed(() => (flushed2 = true));
    expect(flushed2).toBe(true);
    peer2.resume();
    await once(peer2, 'end');
    peer2.end();
    await r2.until(() => s2.destroyed);
    expect([...r.events, ...r2.events].filter((e) => e.startsWith('failed'))).toEqual([]);
  });

  it('stops reading when the owner says so; the first read after resume() lands in the buffer handed out with the pause', async () => {
    let peer!: net.Socket;
    const { port } = await listen((p) => (peer = p));
    // A fresh buffer per call, numbered, to see where each read lands.
    const handed: Buffer[] = [];
    const landed: number[] = [];
    let text = '';
    let connected = false;
    const owner: HostSocketOwner<string> = {
      connected: () => (connected = true),
      nextBuffer: () => {
        handed.push(Buffer.alloc(1024));
        return handed[handed.length - 1]!;
      },
      read: (_tag, n, b) => {
        landed.push(handed.indexOf(b as Buffer));
        text += Buffer.from(b.subarray(0, n)).toString();
        return landed.length !== 1; // stop after the first read
      },
      ended: () => {},
      failed: () => {},
    };
    const until = async (pred: () => boolean) => {
      for (let i = 0; i < 250 && !pred(); i++) await new Promise((r) => setTimeout(r, 20));
      expect(pred()).toBe(true);
    };
    const s = HostSocket.connect(owner, 'p', '127.0.0.1', port, undefined);
    await until(() => connected && peer !== undefined);
    peer.write('one');
    await until(() => text === 'one');
    peer.write('two');
    await new Promise((res) => setTimeout(res, 100));
    expect(text).toBe('one');
    // One buffer when reading started, one after the read that paused: none since.
    expect(handed.length).toBe(2);
    s.resume();
    await until(() => text === 'onetwo');
    expect(landed).toEqual([0, 1]);
    expect(handed.length).toBe(3);
    s.destroy();
  });

  it('resetAndDestroy sends the peer a RST', async () => {
    let peer!: net.Socket;
    const { port } = await listen((p) => (peer = p));
    const r = recorder();
    const s = HostSocket.connect(r.owner, 'r', '127.0.0.1', port, undefined);
    await r.until(() => r.events.includes('connected r') && peer !== undefined);
    const err = once(peer, 'error');
    s.resetAndDestroy();
    const [e] = (await err) as [NodeJS.ErrnoException];
    expect(e.code).toBe('ECONNRESET');
    expect(s.destroyed).toBe(true);
  });

  it("takes over an accepted connection's handle; closing it gives the server its connection back", async () => {
    let accepted!: net.Socket;
    const { server, port } = await listen((p) => (accepted = p), { pauseOnConnect: true });
    const client = net.connect(port, '127.0.0.1');
    peers.push(client);
    client.write('from client');
    await once(client, 'connect');
    await new Promise<void>((res) => {
      const t = setInterval(() => accepted && (clearInterval(t), res()), 5);
    });
    const srv = server as net.Server & { _connections: number };
    expect(srv._connections).toBe(1);
    const handle = (accepted as net.Socket & { _handle: object })._handle;
    (accepted as net.Socket & { _handle: object | null })._handle = null;
    let closed = 0;
    const r = recorder();
    const s = HostSocket.adopt(r.owner, 'f', handle, () => closed++);
    await r.until(() => r.data() === 'from client');
    const back: Buffer[] = [];
    client.on('data', (d) => back.push(d));
    s.write(Buffer.from('to client'), () => {});
    s.end();
    await once(client, 'end');
    expect(Buffer.concat(back).toString()).toBe('to client');
    client.end();
    await r.until(() => s.destroyed);
    expect(closed).toBe(1);
  });
});
