// A host TCP connection on a bare libuv handle (Node's tcp_wrap binding,
// src/host/libuv.ts),
// the host side of one TCP flow (src/host/tcp-host.ts). net.Socket wraps
// the same handle in a Duplex stream: two stream states, a write request
// and a completion tick per write, event emitters, timers — ~60 µs of CPU
// per connect + request + close on a 2-vCPU machine (a client alone against
// a loopback echo server: 176 µs per connection through net.Socket, 115
// through the bare handle), which a NAT that opens a host connection per
// guest connection pays every time. What the flow needs is small: connect
// (after an optional bind), reads into buffers the caller hands out (libuv
// calls back with the count; no allocation per read), writes whose
// completion is reported, a shutdown after them, close or reset.
//
// Semantics kept from net.Socket where tcp-host relied on them:
//   - errors arrive asynchronously, once, as an errno name ('ECONNREFUSED'),
//     and the handle is already closed when they do;
//   - a connect error the kernel reports at once (ENETUNREACH, EMFILE) comes
//     the same way, on the next tick, never from inside connect();
//   - shutdown() waits for queued writes (libuv queues it after them; with
//     nothing queued it is shutdown(2) at once); a write or shutdown before
//     the connect completes waits for it;
//   - once the peer's EOF has been read and our shutdown has completed, the
//     handle is closed (net.Socket's autoDestroy with allowHalfOpen).
// Reads: `owner.read(tag, n, buf)` for each one (false stops reading until
// resume()), then `owner.nextBuffer(tag)` for where the next one lands (also
// when reading stops: the first read after resume() lands there); the first
// buffer is asked when reading starts.

import { getSystemErrorName } from 'node:util';
import { lastWriteWasAsync, readResult, streamWrap, tcpWrap, UV_EOF, type TcpHandle } from './libuv.js';
import { shutdownNow } from '../../native/index.js';

const UV_EPIPE = -32;
const UV_ECANCELED = -125;

/** What a HostSocket reports to, with the tag it was made with (no closure per connection). */
export interface HostSocketOwner<T> {
  /** The connect completed (connect() only). */
  connected(tag: T): void;
  /** n bytes landed in buf; false: stop reading until resume(). */
  read(tag: T, n: number, buf: Uint8Array): boolean;
  /** Where the next read lands. */
  nextBuffer(tag: T): Uint8Array;
  /** The peer finished sending (EOF), after every byte it sent was read. */
  ended(tag: T): void;
  /** The connection failed (errno name); the handle is closed. Once, never after destroy(). */
  failed(tag: T, code: string): void;
}

function errName(status: number): string {
  try {
    return getSystemErrorName(status);
  } catch {
    return 'EIO';
  }
}

/** A write completion: status 0 when its bytes went to the kernel. */
export type WriteCallback = (status: number) => void;

export class HostSocket<T> {
  private readonly handle: TcpHandle;
  /** Connected (by connect(), or an accepted connection's handle). */
  connected: boolean;
  /** Closed (destroy, reset, an error, or both directions finished): nothing more is reported. */
  destroyed = false;
  /** The peer's EOF has been read. */
  readableEnded = false;
  /** shutdown() was asked for. */
  writableEnded = false;
  /** The shutdown completed: everything written left for the kernel, FIN included. */
  writableFinished = false;
  /** Bytes of writes that have not completed (libuv's queue). */
  writableLength = 0;
  private reading = false;
  private paused = false;
  /** Writes asked for before the connect completed, in order. */
  private early: Array<{ data: Uint8Array; cb: WriteCallback }> | undefined;
  /** Called once when the shutdown completes or the socket closes, whichever comes first. */
  private flushed: (() => void) | undefined;
  /** The buffer libuv reads into now: the last one handed to it. */
  private lastBuffer: Uint8Array | undefined;
  /** Called once when the handle is closed (an accepted connection's server bookkeeping). */
  private onClose: (() => void) | undefined;

  private constructor(
    handle: TcpHandle,
    connected: boolean,
    private readonly owner: HostSocketOwner<T>,
    private readonly tag: T,
  ) {
    this.handle = handle;
    this.connected = connected;
    const self = this;
    // libuv reads into the buffer last handed to useUserBuffer (or returned here).
    handle.onread = function onread(): Uint8Array | undefined {
      return self.onRead();
    };
  }

  /**
   * Connects to host:port (an address literal), from localAddress when
   * given. The outcome comes later: owner.connected, or owner.failed.
   */
  static connect<T>(owner: HostSocketOwner<T>, tag: T, host: string, port: number, localAddress: string | undefined): HostSocket<T> {
    const s = new HostSocket(new tcpWrap.TCP(tcpWrap.constants.SOCKET), false, owner, tag);
    s.handle.setNoDelay(true);
    const v6 = host.includes(':');
    let err = 0;
    if (localAddress !== undefined) err = v6 ? s.handle.bind6(localAddress, 0, 0) : s.handle.bind(localAddress, 0);
    if (err === 0) {
      const req = new tcpWrap.TCPConnectWrap();
      req.oncomplete = (status: number) => s.onConnect(status);
      req.address = host;
      req.port = port;
      err = v6 ? s.handle.connect6(req, host, port) : s.handle.connect(req, host, port);
    }
    if (err !== 0) process.nextTick(() => s.fail(err));
    // Reading starts with the connect (libuv allows it on a connecting
    // handle and reports the connect first): the fd is registered once for
    // both, where starting at the connect's completion cost one more
    // epoll_ctl per connection (libuv's ADD, EEXIST, then MOD).
    else s.startReading();
    return s;
  }

  /**
   * Takes over an accepted connection's libuv handle (one that nothing
   * has read from: net.Server's pauseOnConnect), reading from it at once.
   */
  static adopt<T>(owner: HostSocketOwner<T>, tag: T, handle: object, onClose?: () => void): HostSocket<T> {
    const s = new HostSocket(handle as TcpHandle, true, owner, tag);
    s.onClose = onClose;
    s.handle.setNoDelay(true);
    s.startReading();
    return s;
  }

  /** The socket's fd, or -1 once closed. */
  get fd(): number {
    return this.destroyed ? -1 : this.handle.fd;
  }

  private onConnect(status: number): void {
    if (this.destroyed) return;
    if (status !== 0) {
      this.fail(status);
      return;
    }
    this.connected = true;
    this.startReading();
    const early = this.early;
    this.early = undefined;
    if (early) for (const w of early) this.write(w.data, w.cb);
    if (this.writableEnded && !this.destroyed) this.doShutdown();
    if (!this.destroyed) this.owner.connected(this.tag);
  }

  private startReading(): void {
    if (this.destroyed || this.reading || this.paused || this.readableEnded) return;
    if (this.lastBuffer === undefined) {
      // Once per handle: each call pushes another read listener in Node
      // (a chain that grows with every pause). Later buffers are onread's
      // return values, kept across readStop/readStart.
      const buf = this.owner.nextBuffer(this.tag);
      this.lastBuffer = buf;
      this.handle.useUserBuffer(buf);
    }
    const err = this.handle.readStart();
    if (err !== 0) {
      this.fail(err);
      return;
    }
    this.reading = true;
  }

  private onRead(): Uint8Array | undefined {
    const n = readResult();
    if (this.destroyed) return undefined;
    if (n > 0) {
      const more = this.owner.read(this.tag, n, this.lastBuffer!);
      if (this.destroyed) return undefined;
      // The next read's buffer, now, even when reading stops: it is where
      // the first read after resume() lands (as net.Socket's onread does).
      const next = this.owner.nextBuffer(this.tag);
      this.lastBuffer = next;
      if (!more) this.pause();
      return next;
    }
    if (n === 0) return undefined;
    this.reading = false;
    if (n !== UV_EOF) {
      this.fail(n);
      return undefined;
    }
    this.readableEnded = true;
    this.owner.ended(this.tag);
    this.closeIfDone();
    return undefined;
  }

  pause(): void {
    this.paused = true;
    if (!this.reading || this.destroyed) return;
    this.reading = false;
    this.handle.readStop();
  }

  resume(): void {
    this.paused = false;
    if (this.connected) this.startReading();
  }

  /**
   * Writes data (which must stay unchanged until cb). cb(0) once it left
   * for the kernel — at once when libuv wrote it whole — or cb(errno) if
   * the socket failed first (then owner.failed reports the failure).
   */
  write(data: Uint8Array, cb: WriteCallback): void {
    if (this.destroyed) {
      cb(UV_EPIPE);
      return;
    }
    if (!this.connected) {
      (this.early ??= []).push({ data, cb });
      this.writableLength += data.length;
      return;
    }
    const req = new streamWrap.WriteWrap();
    req.handle = this.handle;
    req.async = false;
    req.bytes = 0;
    req.buffer = data;
    const len = data.length;
    req.oncomplete = (status: number) => {
      this.writableLength -= len;
      cb(status);
      if (status < 0) this.fail(status);
    };
    const err = this.handle.writeBuffer(req, data);
    if (err !== 0) {
      cb(err);
      this.fail(err);
      return;
    }
    if (lastWriteWasAsync()) this.writableLength += len;
    else cb(0);
  }

  /** Sends FIN after every queued write. */
  end(): void {
    if (this.writableEnded || this.destroyed) return;
    this.writableEnded = true;
    if (this.connected) this.doShutdown();
  }

  private doShutdown(): void {
    // Nothing queued: the FIN at once (native/send.ts), complete as libuv's
    // would be once written. Otherwise libuv sends it after the queue.
    if (this.writableLength === 0 && shutdownNow(this.handle.fd)) {
      this.writableFinished = true;
      this.runFlushed();
      this.closeIfDone();
      return;
    }
    const req = new streamWrap.ShutdownWrap();
    req.handle = this.handle;
    req.oncomplete = (status: number) => {
      if (this.destroyed) return;
      if (status < 0) {
        this.fail(status);
        return;
      }
      this.writableFinished = true;
      this.runFlushed();
      this.closeIfDone();
    };
    const err = this.handle.shutdown(req);
    if (err !== 0) this.fail(err);
  }

  /** cb once the shutdown has completed or the socket is closed, whichever comes first. */
  whenFlushed(cb: () => void): void {
    if (this.destroyed || this.writableFinished) {
      cb();
      return;
    }
    this.flushed = cb;
  }

  private runFlushed(): void {
    const f = this.flushed;
    this.flushed = undefined;
    f?.();
  }

  setKeepAlive(on: boolean, ms: number): void {
    if (!this.destroyed) this.handle.setKeepAlive(on, Math.floor(ms / 1000));
  }

  /** Closes now; queued writes are dropped (their callbacks get ECANCELED). */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.handle.close();
    this.closedNow();
  }

  private closedNow(): void {
    // Writes that waited for a connect that never came complete too, as
    // libuv completes queued ones (ECANCELED): their callers' budgets come back.
    const early = this.early;
    this.early = undefined;
    if (early) {
      for (const w of early) {
        this.writableLength -= w.data.length;
        w.cb(UV_ECANCELED);
      }
    }
    this.runFlushed();
    const f = this.onClose;
    this.onClose = undefined;
    f?.();
  }

  /** Closes with a RST to the peer (SO_LINGER 0), as net.Socket.resetAndDestroy. */
  resetAndDestroy(): void {
    if (this.destroyed) return;
    if (!this.connected) {
      this.destroy();
      return;
    }
    this.destroyed = true;
    if (this.handle.reset() !== 0) this.handle.close();
    this.closedNow();
  }

  private closeIfDone(): void {
    if (this.readableEnded && this.writableFinished) this.destroy();
  }

  private fail(status: number): void {
    if (this.destroyed) return;
    this.destroy();
    this.owner.failed(this.tag, errName(status));
  }
}
