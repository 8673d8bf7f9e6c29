// The TAP device as the bottom Port: the I/O loop around the TAP fd
// (DESIGN.md §4). The fd is non-blocking; when the shared Poller reports it
// readable, frames are drained synchronously until EAGAIN (at most BATCH per
// wake-up, so timers and sockets get their turn), handed up one by one, and
// then onBatchEnd runs so the layers above can flush their writes. Writes go
// straight to the fd; a write that would block is counted and dropped (the
// peer's TCP recovers it), never queued without bound.

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

  start(): void {
    if (this.running) return;
    this.running = true;
    sharedPoller().add(this.fd, (revents) => this.onReadable(revents));
  }

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
    void sharedPoller().remove(this.fd);
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
    await sharedPoller().remove(this.fd);
    closeFd(this.fd);
  }
}
