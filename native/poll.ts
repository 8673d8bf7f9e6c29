// native/poll.ts — owns: waiting for fd readiness without blocking the event
// loop. A koffi `.async` call of poll(2) runs on a libuv threadpool thread
// and calls back on the main thread. Cancellation goes through an eventfd
// (Waker) polled alongside, so stopping is immediate, not timeout-bound.
//
// Read this first:
// - Each in-flight poll occupies one libuv threadpool thread (default 4,
//   UV_THREADPOOL_SIZE, shared with fs.* and dns.lookup). Use ONE Poller for
//   all long-lived watches (tap fd, pidfds) so tsnet holds a single thread.
// - An in-flight poll keeps the Node process alive (uv work requests cannot
//   be unref'd). Close the Poller (or wake) to let the process exit.
// - Never close an fd while a poll on it is in flight: Linux poll() does not
//   return when another thread closes the fd, and the number may be reused.
//   Poller.remove(fd) resolves once no poll references fd; close it then.
// - Level-triggered: a Poller callback must consume the readiness (drain the
//   tap to EAGAIN, or remove the fd), or the next poll returns immediately.

import { E, NativeError, eventfd, closeFd, errno, raw } from './libc.js';

export const POLLIN = 0x001;
export const POLLPRI = 0x002;
export const POLLOUT = 0x004;
export const POLLERR = 0x008;
export const POLLHUP = 0x010;
export const POLLNVAL = 0x020;

const POLLFD_SIZE = 8; // struct pollfd { int fd; short events; short revents; }

function pollfds(fds: readonly number[], events: readonly number[] | number): Buffer {
  const b = Buffer.alloc(fds.length * POLLFD_SIZE);
  for (let i = 0; i < fds.length; i++) {
    b.writeInt32LE(fds[i]!, i * POLLFD_SIZE);
    b.writeInt16LE(typeof events === 'number' ? events : events[i]!, i * POLLFD_SIZE + 4);
  }
  return b;
}

function reventsOf(b: Buffer, n: number): number[] {
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) out[i] = b.readUInt16LE(i * POLLFD_SIZE + 6);
  return out;
}

/**
 * An eventfd that other code writes to in order to wake a pending poll.
 * Sticky: once woken it stays readable (every poll including it returns at
 * once) until reset().
 */
export class Waker {
  readonly fd: number;
  private closed = false;
  private readonly one = Buffer.from([1, 0, 0, 0, 0, 0, 0, 0]);
  private readonly scratch = Buffer.alloc(8);

  constructor() {
    this.fd = eventfd(0);
  }

  /** Make the eventfd readable (wakes polls that include it). */
  wake(): void {
    if (this.closed) return;
    if (raw.write(this.fd, this.one, 8) < 0) {
      const e = errno();
      // EAGAIN: counter saturated, which is still "readable": fine.
      if (e !== E.EAGAIN) throw new NativeError(e, 'write', `waking eventfd ${this.fd}`);
    }
  }

  /** Consume pending wakes (non-blocking). */
  reset(): void {
    if (this.closed) return;
    raw.read(this.fd, this.scratch, 8); // EAGAIN when not woken: ignored
  }

  /** Close the eventfd. Only once no poll including it is in flight. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeFd(this.fd);
  }
}

export type PollCallback = (err: NativeError | null, revents: number[]) => void;

/**
 * One asynchronous poll(2) over fds (on the threadpool). cb gets revents per
 * fd (all 0 on timeout). timeoutMs -1 = forever. EINTR reported as all-zero
 * revents (spurious wake-up; just poll again).
 */
export function pollAsync(
  fds: readonly number[],
  events: readonly number[] | number,
  timeoutMs: number,
  cb: PollCallback,
): void {
  const buf = pollfds(fds, events);
  raw.poll.async(buf, fds.length, timeoutMs, (err: unknown, n: number) => {
    // koffi restores the worker's errno on this thread during the callback.
    if (err) return cb(err instanceof NativeError ? err : new NativeError(E.EIO, 'poll', String(err)), []);
    if (n < 0) {
      const e = errno();
      if (e === E.EINTR) return cb(null, new Array<number>(fds.length).fill(0));
      return cb(new NativeError(e, 'poll', `polling fds ${fds.join(',')}`), []);
    }
    cb(null, reventsOf(buf, fds.length));
  });
}

/** Synchronous poll(2) with timeout 0: current readiness, never blocks. */
export function pollNow(fds: readonly number[], events: readonly number[] | number = POLLIN): number[] {
  const buf = pollfds(fds, events);
  const n = raw.poll(buf, fds.length, 0);
  if (n < 0) {
    const e = errno();
    if (e === E.EINTR) return new Array<number>(fds.length).fill(0);
    throw new NativeError(e, 'poll', `polling fds ${fds.join(',')}`);
  }
  return reventsOf(buf, fds.length);
}

/**
 * Wait (off the main thread) until fd is readable, the waker is woken, or
 * timeoutMs passes (-1 = forever). cb(err, revents, woken): revents is 0 on
 * timeout or wake; POLLIN/POLLHUP/POLLERR/POLLNVAL otherwise.
 */
export function waitReadable(
  fd: number,
  timeoutMs: number,
  cb: (err: NativeError | null, revents: number, woken: boolean) => void,
  waker?: Waker,
): void {
  const fds = waker ? [fd, waker.fd] : [fd];
  pollAsync(fds, POLLIN, timeoutMs, (err, rev) => {
    if (err) return cb(err, 0, false);
    const woken = waker !== undefined && rev[1]! !== 0;
    cb(null, rev[0]!, woken);
  });
}

export interface WaitResult {
  revents: number;
  woken: boolean;
  timedOut: boolean;
}

/** Promise form of waitReadable. */
export function waitReadableAsync(fd: number, timeoutMs: number, waker?: Waker): Promise<WaitResult> {
  return new Promise((resolve, reject) => {
    waitReadable(
      fd,
      timeoutMs,
      (err, revents, woken) => {
        if (err) reject(err);
        else resolve({ revents, woken, timedOut: revents === 0 && !woken });
      },
      waker,
    );
  });
}

export type ReadyCallback = (revents: number) => void;

/**
 * Long-lived readiness watcher over a set of fds, using one poll in flight
 * (one threadpool thread) at a time, re-armed after every batch of callbacks.
 * Adding/removing fds wakes the in-flight poll through its Waker.
 */
export class Poller {
  private readonly waker = new Waker();
  private readonly watches = new Map<number, { events: number; cb: ReadyCallback }>();
  private inFlight = false;
  private dispatching = false;
  private wakeRequested = false;
  private closed = false;
  private settled: Array<() => void> = [];
  /** Called with errors from poll itself (default: throw, i.e. uncaught). Polling stops until the next add(). */
  onError: (err: NativeError) => void = (err) => {
    throw err;
  };

  /** Watch fd; cb(revents) runs on the main thread each time it is ready. */
  add(fd: number, cb: ReadyCallback, events: number = POLLIN): void {
    if (this.closed) throw new Error('Poller is closed');
    this.watches.set(fd, { events, cb });
    this.rearm();
  }

  /**
   * Stop watching fd. Resolves when no poll in flight references it — only
   * then may the caller close it.
   */
  remove(fd: number): Promise<void> {
    this.watches.delete(fd);
    return this.quiesce();
  }

  /** Stop everything; resolves once the in-flight poll returned and the eventfd is closed. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.watches.clear();
    await this.quiesce();
    this.waker.close();
  }

  get size(): number {
    return this.watches.size;
  }

  private quiesce(): Promise<void> {
    if (!this.inFlight) return Promise.resolve();
    return new Promise((resolve) => {
      this.settled.push(resolve);
      this.requestWake();
    });
  }

  private requestWake(): void {
    if (!this.inFlight || this.wakeRequested) return;
    this.wakeRequested = true;
    this.waker.wake();
  }

  private rearm(): void {
    if (this.inFlight) {
      // New fd set: have the current poll return and re-arm with it.
      this.requestWake();
      return;
    }
    if (this.closed || this.dispatching || this.watches.size === 0) return;
    const fds = [this.waker.fd];
    const events = [POLLIN];
    for (const [fd, w] of this.watches) {
      fds.push(fd);
      events.push(w.events);
    }
    this.inFlight = true;
    pollAsync(fds, events, -1, (err, rev) => this.complete(fds, err, rev));
  }

  private complete(fds: number[], err: NativeError | null, rev: number[]): void {
    this.inFlight = false;
    if (this.wakeRequested || (rev[0] ?? 0) !== 0) {
      this.wakeRequested = false;
      this.waker.reset();
    }
    const settled = this.settled;
    this.settled = [];
    for (const s of settled) s();
    if (err) {
      // Not re-armed: a failing poll would fail again. add() restarts it.
      this.onError(err);
      return;
    }
    this.dispatching = true;
    try {
      for (let i = 1; i < fds.length; i++) {
        const r = rev[i]!;
        if (r === 0) continue;
        const w = this.watches.get(fds[i]!);
        if (!w) continue; // removed while in flight
        // POLLNVAL: the fd was closed behind our back; stop watching it.
        if (r & POLLNVAL) this.watches.delete(fds[i]!);
        w.cb(r);
      }
    } finally {
      this.dispatching = false;
      this.rearm(); // even if a callback threw
    }
  }
}

let shared: Poller | undefined;

/**
 * The process-wide Poller (lazily created), so the tap fd and every pidfd
 * share one threadpool thread. It holds no thread while it watches nothing.
 */
export function sharedPoller(): Poller {
  if (!shared) shared = new Poller();
  return shared;
}
