// The TAP device as the bottom Port: the I/O loop around the TAP fd
// (docs/ARCHITECTURE.md, "The life of a frame"). Reading has two engines:
//   - "stream" (default): the fd is wrapped in a libuv pipe handle
//     (pipe_wrap; uv_pipe_open accepts any fd), so readiness comes from the
//     event loop's own epoll and libuv drains it synchronously, one frame per
//     read(2), up to 32 per wake-up. No threadpool hop: measured p50 latency
//     and connect rate improve markedly over the poll engine.
//   - "poll": a koffi async poll(2) on the libuv threadpool, then a
//     synchronous drain until EAGAIN (at most BATCH per wake-up). Used when
//     the pipe_wrap binding is unavailable (TSNET_TAP_ENGINE=poll forces it).
// After each burst onBatchEnd runs (once, via setImmediate for the stream
// engine) so the layers above flush their writes. Writes always go straight
// to the fd with write(2) — never through the libuv stream, whose writev
// would glue frames together; a write that would block is counted and
// dropped (the peer's TCP recovers it), never queued without bound.

import net from 'node:net';
import { NativeError, POLLERR, POLLHUP, POLLNVAL, readFrame, setNonBlocking, sharedPoller, writeFrame, closeFd } from '../../native/index.js';
import type { FrameHandler, Port } from './port.js';

/** Frames read per wake-up before yielding to the event loop. */
const BATCH = 256;
/** Large enough for a 65521-byte MTU frame plus headers. */
const FRAME_BUF = 65536 + 64;

export interface TapStats {
  rxFrames: number;
  txFrames: number;
  txDropped: number;
  txErrors: number;
}

export class TapPort implements Port {
  readonly stats: TapStats = { rxFrames: 0, txFrames: 0, txDropped: 0, txErrors: 0 };
  private up: FrameHandler = () => {};
  private readonly rbuf = Buffer.allocUnsafe(FRAME_BUF);
  private running = false;
  private closed = false;
  /** Called after each batch of received frames (flush upper layers). */
  onBatchEnd: () => void = () => {};
  /** Called once if the device goes away (read error, hang-up). */
  onFailure: (err: Error) => void = () => {};

  constructor(readonly fd: number, readonly name: string) {
    setNonBlocking(fd);
  }

  setReceiver(handler: FrameHandler): void {
    this.up = handler;
  }

  private stream: net.Socket | undefined;
  private batchQueued = false;

  /** Which read engine runs (see the file header). */
  get engine(): 'stream' | 'poll' {
    return this.stream ? 'stream' : 'poll';
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    const stream = process.env.TSNET_TAP_ENGINE === 'poll' ? undefined : openStream(this.fd, this.rbuf, (n) => this.onStreamFrame(n));
    if (!stream) {
      sharedPoller().add(this.fd, (revents) => this.onReadable(revents));
      return;
    }
    this.stream = stream;
    stream.on('error', (err) => this.fail(err));
    stream.on('end', () => this.fail(new Error(`TAP device ${this.name} hung up`)));
  }

  /** Stream engine: libuv read one frame of n bytes into rbuf. */
  private onStreamFrame(n: number): void {
    if (!this.running) return;
    this.stats.rxFrames++;
    // The handler must copy what it keeps: rbuf is reused for the next read.
    this.up(this.rbuf.subarray(0, n));
    if (!this.batchQueued) {
      this.batchQueued = true;
      setImmediate(this.endBatch);
    }
  }

  private readonly endBatch = (): void => {
    this.batchQueued = false;
    if (this.running) this.onBatchEnd();
  };

  private onReadable(revents: number): void {
    if (!this.running) return;
    let n = 0;
    try {
      for (; n < BATCH; n++) {
        const len = readFrame(this.fd, this.rbuf);
        if (len < 0) break;
        this.stats.rxFrames++;
        // The handler must copy what it keeps: rbuf is reused.
        this.up(this.rbuf.subarray(0, len));
      }
    } catch (e) {
      this.fail(e as Error);
      return;
    } finally {
      this.onBatchEnd();
    }
    if (n === 0 && revents & (POLLERR | POLLHUP | POLLNVAL)) {
      this.fail(new Error(`TAP device ${this.name} hung up`));
    }
  }

  private fail(err: Error): void {
    if (!this.running) return;
    this.running = false;
    if (!this.stream) void sharedPoller().remove(this.fd);
    this.onFailure(err);
  }

  send(frame: Buffer): void {
    if (this.closed) return;
    try {
      if (writeFrame(this.fd, frame) < 0) this.stats.txDropped++;
      else this.stats.txFrames++;
    } catch (e) {
      // EIO: the interface is down inside the namespace; the frame is lost
      // as on a wire with no carrier.
      if (e instanceof NativeError) this.stats.txErrors++;
      else throw e;
    }
  }

  flush(): void {}

  /** Stops polling and closes the fd (after no poll references it). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.running = false;
    this.closed = true;
    if (this.stream) {
      // libuv owns the fd now: destroying the handle closes it.
      const s = this.stream;
      await new Promise<void>((resolve) => {
        s.once('close', () => resolve());
        s.destroy();
      });
      return;
    }
    await sharedPoller().remove(this.fd);
    closeFd(this.fd);
  }
}

interface PipeBinding {
  Pipe: new (type: number) => { open(fd: number): number };
  constants: { SOCKET: number };
}

/**
 * Wraps fd in a libuv pipe handle as a read-only net.Socket reading into
 * `buf` (Node's onread: no allocation per frame), or undefined when the
 * binding is unavailable.
 */
function openStream(fd: number, buf: Buffer, onFrame: (n: number) => void): net.Socket | undefined {
  let binding: PipeBinding;
  try {
    binding = (process as unknown as { binding(name: string): PipeBinding }).binding('pipe_wrap');
  } catch {
    return undefined;
  }
  const handle = new binding.Pipe(binding.constants.SOCKET);
  if (handle.open(fd) !== 0) return undefined;
  return new net.Socket({
    handle,
    readable: true,
    writable: false,
    onread: {
      buffer: buf,
      callback: (n: number) => {
        onFrame(n);
        return true;
      },
    },
  } as net.SocketConstructorOpts);
}
