// native/send.ts: send(2) straight onto the fd under a connected net.Socket —
// what the kernel takes whole, a short count or 0 when its buffer is full,
// -1 on an error for Node to report — and no fd once the socket is gone.

import net from 'node:net';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { sendNow } from '../../../native/index.js';

/** The fd under a connected net.Socket's handle, or -1 once it is gone. */
function streamFd(socket: net.Socket): number {
  const fd = (socket as net.Socket & { _handle?: { fd?: unknown } | null })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : -1;
}

const open: net.Socket[] = [];
let server: net.Server | undefined;

afterEach(async () => {
  for (const s of open.splice(0)) s.destroy();
  if (server) await new Promise<void>((r) => server!.close(() => r()));
  server = undefined;
});

/** A connected pair on loopback: [ours, the accepted end] (the accepted end paused: it reads nothing). */
async function pair(allowHalfOpen = false): Promise<[net.Socket, net.Socket]> {
  server = net.createServer({ pauseOnConnect: true });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'connection') as Promise<[net.Socket]>;
  const ours = net.connect({ port: (server.address() as net.AddressInfo).port, host: '127.0.0.1', allowHalfOpen });
  await once(ours, 'connect');
  const [theirs] = await accepted;
  open.push(ours, theirs);
  return [ours, theirs];
}

describe('sendNow', () => {
  it('writes what the kernel takes, in order with what the peer reads', async () => {
    const [ours, theirs] = await pair();
    const fd = streamFd(ours);
    expect(fd).toBeGreaterThan(2);
    expect(sendNow(fd, Buffer.from('hello '))).toBe(6);
    // A view inside a larger buffer: its offset is respected.
    const big = Buffer.from('xxworldxx');
    expect(sendNow(fd, big.subarray(2, 7))).toBe(5);
    theirs.resume();
    const [chunk] = (await once(theirs, 'data')) as [Buffer];
    expect(chunk.toString()).toBe('hello world');
  });

  it('returns a short count, then 0, once the socket buffers are full (a peer that does not read)', async () => {
    const [ours] = await pair();
    const fd = streamFd(ours);
    const block = Buffer.alloc(1 << 20, 1);
    let total = 0;
    let last = -2;
    for (let i = 0; i < 512; i++) {
      last = sendNow(fd, block);
      if (last === 0) break;
      expect(last).toBeGreaterThan(0);
      total += last;
    }
    expect(last).toBe(0); // EAGAIN: nothing blocked, nothing lost
    expect(total).toBeGreaterThan(0);
  });

  it('returns -1 (for Node to report) on an error: the write side already shut down (EPIPE)', async () => {
    const [ours] = await pair(true);
    ours.end();
    await once(ours, 'finish');
    const fd = streamFd(ours);
    expect(fd).toBeGreaterThan(2); // half-open: the handle lives on for reading
    expect(sendNow(fd, Buffer.from('x'))).toBe(-1);
  });

  it('has no fd for a destroyed socket (never a number that may be reused)', async () => {
    const [ours] = await pair();
    expect(streamFd(ours)).toBeGreaterThan(2);
    ours.destroy();
    expect(streamFd(ours)).toBe(-1);
  });
});
