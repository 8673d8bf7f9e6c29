// native/send.ts — owns: a non-blocking send(2) straight onto the fd of a
// host socket's libuv handle, the per-segment fast path of guest → host TCP
// (src/host/tcp-host.ts), and shutdown(2) the same way for the FIN. A write
// that the kernel takes whole never enters libuv's write queue (write
// request, completion callback): no allocation, no event-loop turn before
// the receive window reopens. A FIN with nothing queued needs no shutdown
// request either (libuv's waits for the socket to be writable: a watch
// added and removed, a loop turn).
//
// Read this first:
// - The fd belongs to the handle: never cached, never closed here. The
//   caller reads it from the live handle each time (-1 once closed,
//   HostSocket.fd), so a closed-and-reused fd number is never written to.
// - Only for a socket with nothing queued (writableLength 0): otherwise
//   these bytes would overtake queued ones. The caller checks.
// - An error is not reported here: the caller falls back to the socket's
//   write() with the same bytes, which reports the failure its usual way.

import { E, errno, raw } from './libc.js';

const MSG_DONTWAIT = 0x40;
/** No SIGPIPE on a peer that has gone (Node ignores it, other hosts may not). */
const MSG_NOSIGNAL = 0x4000;

/**
 * send(2) as much of `buf` as the socket's send buffer takes now: the
 * count (maybe short), 0 when it takes nothing (EAGAIN), -1 on any other
 * error (the caller lets Node's own write report it).
 */
export function sendNow(fd: number, buf: Uint8Array): number {
  for (;;) {
    const n = raw.send(fd, buf, buf.length, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n >= 0) return n;
    const e = errno();
    if (e === E.EINTR) continue;
    return e === E.EAGAIN ? 0 : -1;
  }
}

const SHUT_WR = 1;

/**
 * shutdown(fd, SHUT_WR): the FIN, now. Only for a socket with nothing
 * queued (the FIN would overtake it). false on any error: the caller lets
 * libuv's shutdown do it and report the failure its usual way.
 */
export function shutdownNow(fd: number): boolean {
  return fd >= 0 && raw.shutdown(fd, SHUT_WR) === 0;
}
