// The TAP device as the bottom Port: the I/O loop around the TAP fd
// (docs/ARCHITECTURE.md, "The life of a frame"). Reading has two engines:
//   - "stream" (default): the fd is wrapped in a libuv pipe handle
//     (pipe_wrap; uv_pipe_open accepts any fd, src/host/libuv.ts), read
//     through the handle's own onread (no net.Socket around it: no stream
//     state, timer or callback chain per wake-up), so readiness comes from
//     the event loop's own epoll. libuv reads the first frame; the port drains
//     the rest with read(2) until EAGAIN (at most BATCH), since libuv itself
//     takes one short read per loop turn. No threadpool hop: measured p50
//     latency and connect rate improve markedly over the poll engine.
//   - "poll": a koffi async poll(2) on the libuv threadpool, then a
//     synchronous drain until EAGAIN (at most BATCH per wake-up). Used when
//     the pipe_wrap binding is unavailable (TSNET_TAP_ENGINE=poll forces it).
// After each burst onBatchEnd runs once, synchronously, so the layers above
// flush their writes. Writes always go straight
// to the fd, one frame per write(2), or per writev(2) for a frame given in
// two pieces (sendParts: headers here, the payload from the TCP send
// buffer) — never through the libuv stream, whose writev would glue frames
// together; a write that would block is counted and dropped (the peer's
// TCP recovers it), never queued without bound.
//
// Offloads (`vnetHdr`: the TAP was opened with IFF_VNET_HDR and TUNSETOFFLOAD
// let the guest's kernel hand over work): every read starts with a 10-byte
// virtio_net_hdr. A TCP super-segment (TSO) goes up whole, a UDP
// super-datagram (USO) is cut back into its datagrams (src/wire/gso.ts),
// and a partial or checked checksum goes up as trusted. Every write gets
// the header too: zero for a complete frame, or NEEDS_CSUM (and GSO for a
// TCP super-segment) when the stack passed `gso` (src/host/port.ts). The
// header's fields come from the guest: a header tsnet cannot honour is
// counted (rxBadVnet) and the frame dropped.

import { NativeError, POLLERR, POLLHUP, POLLNVAL, readFrame, setNonBlocking, sharedPoller, writeFrame, writeFrame2, closeFd } from '../../native/index.js';
import { splitUdpGso, txOffloadHeader } from '../wire/gso.js';
import { VirtioGsoType, VirtioNetFlags, VIRTIO_NET_HDR_LEN } from '../wire/virtio-net.js';
import { WireError } from '../wire/errors.js';
import type { FrameHandler, Port } from './port.js';
import { pipeHandle, readResult, UV_EOF, type StreamHandle } from './libuv.js';

/** Frames read per wake-up before yielding to the event loop. */
const BATCH = 256;
/** The stream engine drains while its drains find at least half a frame on average (1/256 frames; see onStreamFrame). */
const DRAIN_WORTH = 128;
/** While drains are skipped, every this-many-th wake-up drains anyway, to notice a burst (a power of 2). */
const PROBE_EVERY = 8;
/**
 * Large enough for the biggest frame plus a virtio header: a 65521-byte MTU
 * frame, or a super-segment of 14 + 40 + 65535 bytes.
 */
const FRAME_BUF = 65536 + 128;

export interface TapStats {
  rxFrames: number;
  txFrames: number;
  txDropped: number;
  txErrors: number;
  /** Frames from the guest whose virtio header asked for something tsnet cannot do (counted, dropped). */
  rxBadVnet: number;
  /** UDP super-datagrams (USO) cut into datagrams. */
  rxUdpGso: number;
  /** TCP super-segments sent for the kernel to cut (TSO toward the guest). */
  txGso: number;
  /** Drains that found no frame beyond the one that woke the port (a read(2) for nothing). */
  rxEmptyDrains: number;
}

export interface TapPortOptions {
  /** The fd was attached with IFF_VNET_HDR (10-byte header on every frame). */
  vnetHdr?: boolean;
}

export class TapPort implements Port {
  readonly stats: TapStats = { rxFrames: 0, txFrames: 0, txDropped: 0, txErrors: 0, rxBadVnet: 0, rxUdpGso: 0, txGso: 0, rxEmptyDrains: 0 };
  /** Frames carry a virtio_net_hdr: the stack may pass `gso` to send(). */
  readonly offload: boolean;
  private up: FrameHandler = () => {};
  private readonly rbuf = Buffer.allocUnsafe(FRAME_BUF);
  /** Where a frame is put behind its virtio header for write(2). */
  private readonly wbuf: Buffer | undefined;
  /** Where UDP super-datagrams are cut. */
  private readonly ubuf: Buffer | undefined;
  private running = false;
  private closed = false;
  /** Moving average of the frames a drain found beyond libuv's, in 1/256 frames (see onStreamFrame). */
  private drainScore = 256;
  /** Wake-ups whose drain was skipped, for the periodic probe. */
  private skipped = 0;
  /** Called after each batch of received frames (flush upper layers). */
  onBatchEnd: () => void = () => {};
  /** Called once if the device goes away (read error, hang-up). */
  onFailure: (err: Error) => void = () => {};

  constructor(
    readonly fd: number,
    readonly name: string,
    opts: TapPortOptions = {},
  ) {
    setNonBlocking(fd);
    this.offload = opts.vnetHdr ?? false;
    if (this.offload) {
      this.wbuf = Buffer.allocUnsafeSlow(FRAME_BUF);
      this.ubuf = Buffer.allocUnsafeSlow(FRAME_BUF);
    }
  }

  setReceiver(handler: FrameHandler): void {
    this.up = handler;
  }

  private stream: StreamHandle | undefined;

  /** Which read engine runs (see the file header). */
  get engine(): 'stream' | 'poll' {
    return this.stream ? 'stream' : 'poll';
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    const stream = process.env.TSNET_TAP_ENGINE === 'poll' ? undefined : pipeHandle(this.fd);
    if (!stream) {
      sharedPoller().add(this.fd, (revents) => this.onReadable(revents));
      return;
    }
    this.stream = stream;
    const self = this;
    stream.onread = function onread(): undefined {
      const n = readResult();
      if (n > 0) self.onStreamFrame(n);
      else if (n < 0) self.fail(n === UV_EOF ? new Error(`TAP device ${self.name} hung up`) : new NativeError(-n, 'read', `read from TAP device ${self.name}`));
      return undefined;
    };
    stream.useUserBuffer(this.rbuf);
    const err = stream.readStart();
    if (err !== 0) this.fail(new NativeError(-err, 'read', `reading TAP device ${this.name}`));
  }

  /**
   * Stream engine: libuv read one frame of n bytes into rbuf. libuv stops
   * reading after a read that did not fill its buffer, which every TAP read
   * is (one frame), and would come back only after a whole event-loop turn;
   * so the rest of the burst is drained here with read(2) until EAGAIN, and
   * the burst ends in one flush, at once.
   *
   * When frames come one per wake-up (request/response, connections
   * opening and closing), that drain is a read(2) that finds nothing
   * nearly every time. So the port keeps a moving average of the frames its
   * drains found (drainScore: 1/256 frames, the last eight drains weighing
   * most, each counting at most 4) and drains only while it is at least
   * half a frame; otherwise every PROBE_EVERY-th wake-up drains anyway, and
   * a probe that finds a burst brings draining back at once. Skipping
   * loses nothing: the loop's epoll is level-triggered, so a frame left
   * queued wakes it again at once (one frame per wake-up until a probe).
   */
  private onStreamFrame(n: number): void {
    if (!this.running) return;
    try {
      this.deliver(n);
      if (this.drainScore >= DRAIN_WORTH || (++this.skipped & (PROBE_EVERY - 1)) === 0) {
        const found = this.drain(1) - 1;
        if (found === 0) this.stats.rxEmptyDrains++;
        this.drainScore += ((Math.min(found, 4) << 8) - this.drainScore) >> 3;
      }
    } catch (e) {
      if (!(e instanceof NativeError)) throw e;
      this.fail(e);
      return;
    } finally {
      if (this.running) this.onBatchEnd();
    }
  }

  private onReadable(revents: number): void {
    if (!this.running) return;
    let n = 0;
    try {
      n = this.drain(0);
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

  /**
   * Reads frames with read(2) and hands them up until EAGAIN (or the port
   * stops), `count` frames already taken this wake-up, at most BATCH in
   * all; returns how many were taken in all.
   */
  private drain(count: number): number {
    for (; count < BATCH && this.running; count++) {
      const len = readFrame(this.fd, this.rbuf);
      if (len < 0) break;
      this.deliver(len);
    }
    return count;
  }

  /** Hands the n bytes read into rbuf up (past the virtio header, cut if USO). */
  private deliver(n: number): void {
    this.stats.rxFrames++;
    // The handler must copy what it keeps: rbuf is reused for the next read.
    if (!this.offload) {
      this.up(this.rbuf.subarray(0, n));
      return;
    }
    const b = this.rbuf;
    if (n < VIRTIO_NET_HDR_LEN) {
      this.stats.rxBadVnet++;
      return;
    }
    const frame = b.subarray(VIRTIO_NET_HDR_LEN, n);
    const trusted = (b[0]! & (VirtioNetFlags.NEEDS_CSUM | VirtioNetFlags.DATA_VALID)) !== 0;
    const gso = b[1]! & ~VirtioGsoType.ECN;
    if (gso === VirtioGsoType.NONE || gso === VirtioGsoType.TCPV4 || gso === VirtioGsoType.TCPV6) {
      this.up(frame, trusted);
      return;
    }
    if (gso !== VirtioGsoType.UDP_L4) {
      // UFO (never offered) or a type this kernel should not produce.
      this.stats.rxBadVnet++;
      return;
    }
    try {
      splitUdpGso(frame, b[4]! | (b[5]! << 8), this.ubuf!, (d) => this.up(d, true));
      this.stats.rxUdpGso++;
    } catch (e) {
      if (!(e instanceof WireError)) throw e;
      this.stats.rxBadVnet++;
    }
  }

  private fail(err: Error): void {
    if (!this.running) return;
    this.running = false;
    if (!this.stream) void sharedPoller().remove(this.fd);
    this.onFailure(err);
  }

  send(frame: Buffer, gso?: number): void {
    this.put(frame, gso, undefined);
  }

  /**
   * A frame in two pieces (Port.sendParts): the headers go behind the
   * virtio header in wbuf, the payload is written from where it lies —
   * writev(2), no copy of the payload at all.
   */
  sendParts(head: Buffer, payload: Buffer, gso?: number): void {
    this.put(head, gso, payload);
  }

  /** Writes `frame` (then `payload`, when given) as one frame: one write(2) or writev(2). */
  private put(frame: Buffer, gso: number | undefined, payload: Buffer | undefined): void {
    if (this.closed) return;
    try {
      let n: number;
      if (this.wbuf) {
        // The header, then the frame behind it.
        const w = this.wbuf;
        txOffloadHeader(frame, gso, w);
        frame.copy(w, VIRTIO_NET_HDR_LEN);
        const len = VIRTIO_NET_HDR_LEN + frame.length;
        n = payload === undefined ? writeFrame(this.fd, w, len) : writeFrame2(this.fd, w, len, payload);
        if (gso) this.stats.txGso++;
      } else {
        n = payload === undefined ? writeFrame(this.fd, frame) : writeFrame2(this.fd, frame, frame.length, payload);
      }
      if (n < 0) this.stats.txDropped++;
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
      // libuv owns the fd now: closing the handle closes it.
      const s = this.stream;
      s.readStop();
      await new Promise<void>((resolve) => s.close(() => resolve()));
      return;
    }
    await sharedPoller().remove(this.fd);
    closeFd(this.fd);
  }
}
