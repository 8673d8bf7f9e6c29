// native/sockerr.ts — owns: ICMP errors on unconnected datagram sockets.
// IP_RECVERR / IPV6_RECVERR, draining the socket error queue with
// recvmsg(MSG_ERRQUEUE) into typed SockError records, and attachRecvErr():
// the correct way to do that under a Node `dgram` socket.
//
// Read this first (all verified on Linux 6.x / Node 20 / libuv 1.x, see
// test/unit/native/sockets.test.ts and the notes at attachRecvErr):
// - Without IP_RECVERR Linux drops ICMP errors for unconnected UDP sockets.
//   With it, each ICMP error (and some local errors) is queued on the
//   socket's error queue together with the destination the failed datagram
//   was sent to (msg_name) and the ICMP type/code/offender, AND the
//   socket's pending error sk_err is set (ECONNREFUSED, EHOSTUNREACH, ...).
// - sk_err is consumed ("read and cleared") by the NEXT recvmsg() — which
//   then fails with that errno, so Node emits 'error' (syscall 'recvmsg') on
//   the dgram socket — or by the next sendmsg(), which then FAILS with that
//   errno and sends nothing (the datagram, for an unrelated destination, is
//   lost unless retried). Draining the error queue to empty clears sk_err.
// - While the error queue is non-empty the fd polls POLLERR. libuv turns a
//   bare EPOLLERR into a read attempt, recvmsg() returns EAGAIN (sk_err was
//   already consumed), nothing reaches JS, and epoll (level-triggered)
//   reports the fd again at once: the event loop spins at 100% CPU until
//   someone drains the queue. attachRecvErr() drains on every 'error' event
//   and on every failed send() made through it, which covers all paths that
//   consume sk_err.
// - Node does not close a dgram socket on recv errors; it only emits
//   'error'. With no 'error' listener that is an uncaught exception, so
//   IP_RECVERR must never be enabled on a socket without a listener.

import type dgram from 'node:dgram';
import { E, NativeError, errno, errnoName, koffi, raw } from './libc.js';
import {
  MSG_DONTWAIT,
  MSG_ERRQUEUE,
  SOCKADDR_STORAGE_LEN,
  SOL_IP,
  SOL_IPV6,
  IP_RECVERR,
  IPV6_RECVERR,
  decodeSockaddr,
  setSockOptInt,
  takeSocketError,
  type Family,
} from './sockopt.js';

// linux/errqueue.h
export const SO_EE_ORIGIN_NONE = 0;
export const SO_EE_ORIGIN_LOCAL = 1;
export const SO_EE_ORIGIN_ICMP = 2;
export const SO_EE_ORIGIN_ICMP6 = 3;
export const SO_EE_ORIGIN_TXSTATUS = 4;
export const SO_EE_ORIGIN_ZEROCOPY = 5;
export const SO_EE_ORIGIN_TXTIME = 6;

/** One entry of a socket's error queue. */
export interface SockError {
  /** ee_errno, e.g. 111 */
  errno: number;
  /** errno name, e.g. 'ECONNREFUSED' (port unreachable) */
  code: string;
  /** ee_origin: SO_EE_ORIGIN_LOCAL=1, ICMP=2, ICMP6=3 */
  origin: number;
  /** ee_type: ICMP(v6) type of the error (3 = dest unreachable, 1 for ICMPv6) */
  icmpType: number;
  /** ee_code: ICMP(v6) code (3 = port unreachable, 4 for ICMPv6) */
  icmpCode: number;
  /** ee_info: next-hop MTU for frag-needed / packet-too-big (else 0) */
  info: number;
  /** ee_data (RFC 4884 fields; usually 0) */
  data: number;
  /** Where the failed datagram was sent (msg_name). v4 errors on a dual-stack v6 socket read '::ffff:a.b.c.d'. */
  dstAddr: string;
  /** Its destination port (0 for ping sockets). */
  dstPort: number;
  /** SO_EE_OFFENDER: the host that sent the ICMP error (absent for LOCAL errors). */
  offender?: string;
  /**
   * The start (up to PAYLOAD_MAX bytes) of what the kernel returned as data:
   * the failed datagram's UDP payload; for ping sockets, the original ICMP
   * echo header + data (so the echo sequence number can be recovered).
   */
  payload: Buffer;
}

/** How much of the returned data is kept in SockError.payload. */
export const PAYLOAD_MAX = 64;

// ---------------------------------------------------------------------------
// recvmsg scratch memory
//
// struct msghdr's embedded pointers must be real addresses, so the msghdr and
// everything it points to live in one koffi.alloc() block (malloc'ed, never
// moves, never freed: ~1 KiB per process). Only used synchronously on the
// main thread, so one block is enough.

const MSGHDR_OFF = 0; // struct msghdr, 56 bytes on 64-bit
const IOV_OFF = 64; // struct iovec, 16 bytes
const NAME_OFF = 80; // sockaddr_storage, 128 bytes
const CTRL_OFF = 208; // control buffer
const CTRL_LEN = 512;
const DATA_OFF = CTRL_OFF + CTRL_LEN; // 720
const DATA_LEN = 256;
const SCRATCH_LEN = DATA_OFF + DATA_LEN;

interface Scratch {
  mem: Buffer;
  base: bigint;
}
let scratch: Scratch | undefined;

function getScratch(): Scratch {
  if (scratch) return scratch;
  const ptr = koffi.alloc('uint8_t', SCRATCH_LEN);
  const base = koffi.address(ptr);
  const mem = Buffer.from(koffi.view(ptr, SCRATCH_LEN));
  mem.fill(0);
  // msghdr: name, namelen(+pad), iov, iovlen, control, controllen, flags(+pad)
  mem.writeBigUInt64LE(base + BigInt(NAME_OFF), MSGHDR_OFF + 0);
  mem.writeBigUInt64LE(base + BigInt(IOV_OFF), MSGHDR_OFF + 16);
  mem.writeBigUInt64LE(1n, MSGHDR_OFF + 24);
  mem.writeBigUInt64LE(base + BigInt(CTRL_OFF), MSGHDR_OFF + 32);
  // iovec
  mem.writeBigUInt64LE(base + BigInt(DATA_OFF), IOV_OFF + 0);
  mem.writeBigUInt64LE(BigInt(DATA_LEN), IOV_OFF + 8);
  scratch = { mem, base };
  return scratch;
}

const CMSG_HDR_LEN = 16; // size_t len; int level; int type
const EE_LEN = 16; // struct sock_extended_err
const cmsgAlign = (n: number): number => (n + 7) & ~7;

// ---------------------------------------------------------------------------

/**
 * Turn on IP_RECVERR (family 4) or IPV6_RECVERR (family 6) on fd. On an
 * AF_INET6 socket that is not v6-only, IP_RECVERR is also set (best effort)
 * so errors for IPv4-mapped destinations are queued as well.
 */
export function enableRecvErr(fd: number, family: Family): void {
  if (family === 4) {
    setSockOptInt(fd, SOL_IP, IP_RECVERR, 1, 'IP_RECVERR');
    return;
  }
  setSockOptInt(fd, SOL_IPV6, IPV6_RECVERR, 1, 'IPV6_RECVERR');
  try {
    setSockOptInt(fd, SOL_IP, IP_RECVERR, 1, 'IP_RECVERR');
  } catch {
    // v6-only or a kernel that refuses SOL_IP on AF_INET6: v4 errors cannot occur or are not needed
  }
}

/**
 * Drain fd's error queue: recvmsg(MSG_ERRQUEUE|MSG_DONTWAIT) until EAGAIN.
 * Returns the entries oldest first ([] if the queue was empty). Never
 * blocks. Throws NativeError for anything but EAGAIN/EINTR (EBADF, ...).
 * Draining to empty also clears the socket's pending error (sk_err).
 * `family` is the socket's family (only used in error messages: the cmsg
 * level/type and msg_name family are read from the data itself).
 */
export function readErrorQueue(fd: number, family: Family): SockError[] {
  const out: SockError[] = [];
  const { mem } = getScratch();
  const hdr = mem.subarray(MSGHDR_OFF, MSGHDR_OFF + 56);
  for (;;) {
    mem.writeUInt32LE(SOCKADDR_STORAGE_LEN, MSGHDR_OFF + 8); // msg_namelen
    mem.writeBigUInt64LE(BigInt(CTRL_LEN), MSGHDR_OFF + 40); // msg_controllen
    mem.writeInt32LE(0, MSGHDR_OFF + 48); // msg_flags
    mem.fill(0, NAME_OFF, NAME_OFF + 2); // sa_family: stays AF_UNSPEC if the kernel gives no name
    const n = raw.recvmsg(fd, hdr, MSG_ERRQUEUE | MSG_DONTWAIT);
    if (n < 0) {
      const e = errno();
      if (e === E.EAGAIN) return out;
      if (e === E.EINTR) continue;
      throw new NativeError(e, 'recvmsg', `reading the error queue of fd ${fd} (IPv${family})`);
    }
    const nameLen = Math.min(mem.readUInt32LE(MSGHDR_OFF + 8), SOCKADDR_STORAGE_LEN);
    const ctrlLen = Math.min(Number(mem.readBigUInt64LE(MSGHDR_OFF + 40)), CTRL_LEN);
    const dst = decodeSockaddr(mem, NAME_OFF, nameLen);
    const payload = Buffer.from(mem.subarray(DATA_OFF, DATA_OFF + Math.min(n, DATA_LEN, PAYLOAD_MAX)));
    let found = false;
    for (let off = 0; off + CMSG_HDR_LEN <= ctrlLen; ) {
      const at = CTRL_OFF + off;
      const clen = Number(mem.readBigUInt64LE(at));
      if (clen < CMSG_HDR_LEN || off + clen > ctrlLen) break;
      const level = mem.readInt32LE(at + 8);
      const type = mem.readInt32LE(at + 12);
      if (
        clen >= CMSG_HDR_LEN + EE_LEN &&
        ((level === SOL_IP && type === IP_RECVERR) || (level === SOL_IPV6 && type === IPV6_RECVERR))
      ) {
        const ee = at + CMSG_HDR_LEN;
        const eeErrno = mem.readUInt32LE(ee);
        const offender =
          clen > CMSG_HDR_LEN + EE_LEN ? decodeSockaddr(mem, ee + EE_LEN, clen - CMSG_HDR_LEN - EE_LEN) : null;
        const se: SockError = {
          errno: eeErrno,
          code: errnoName(eeErrno),
          origin: mem[ee + 4]!,
          icmpType: mem[ee + 5]!,
          icmpCode: mem[ee + 6]!,
          info: mem.readUInt32LE(ee + 8),
          data: mem.readUInt32LE(ee + 12),
          dstAddr: dst?.address ?? '',
          dstPort: dst?.port ?? 0,
          payload,
        };
        if (offender) se.offender = offender.address;
        out.push(se);
      }
      off += cmsgAlign(clen);
    }
    // An entry without an extended-error cmsg (not expected for IP/IPv6
    // sockets; or MSG_CTRUNC) was still dequeued: just go on.
  }
}

// ---------------------------------------------------------------------------
// Node dgram integration

/** errnos Linux derives from ICMP/ICMPv6 errors (icmp_err_convert, icmpv6_err_convert), plus local EMSGSIZE. */
export const ICMP_ERRNOS: ReadonlySet<string> = new Set([
  'ECONNREFUSED', // port unreachable
  'EHOSTUNREACH', // host unreachable, admin prohibited (v4), time exceeded, address unreachable (v6)
  'ENETUNREACH', // net unreachable, no route (v6)
  'EHOSTDOWN', // host unknown
  'ENONET', // host isolated
  'ENOPROTOOPT', // protocol unreachable
  'EOPNOTSUPP', // source route failed
  'EMSGSIZE', // frag needed / packet too big (and local: too big with DF)
  'EPROTO', // parameter problem
  'EACCES', // v6 admin prohibited / policy / reject route
]);

interface UdpHandle {
  fd?: number;
}

/**
 * Node's UDPWrap of a dgram socket: socket[kStateSymbol].handle (the
 * symbol's description is 'state symbol', Node 12..22), else the public but
 * deprecated socket._handle (DEP0112: reading it prints a warning once).
 * null once the socket is closed, undefined if neither exists.
 */
function udpHandle(socket: dgram.Socket): UdpHandle | null | undefined {
  const sym = Object.getOwnPropertySymbols(socket).find((s) => s.description === 'state symbol');
  if (sym !== undefined) {
    const state = (socket as unknown as Record<symbol, { handle?: UdpHandle | null } | undefined>)[sym];
    if (state && 'handle' in state) return state.handle;
  }
  return (socket as unknown as { _handle?: UdpHandle | null })._handle;
}

/**
 * The OS fd under a bound Node dgram socket. This reads an internal
 * (UDPWrap's `fd` getter on the socket's handle, see udpHandle) and checks
 * it at run time: throws a plain Error if the socket is closed or not bound
 * yet (call after bind()'s callback or 'listening') or if this Node version
 * no longer exposes it. The fd stays owned by Node: never close it.
 */
export function socketFd(socket: dgram.Socket): number {
  const handle = udpHandle(socket);
  if (handle === null) throw new Error('socketFd: the dgram socket is closed');
  if (handle === undefined || typeof handle.fd !== 'number') {
    throw new Error(
      `socketFd: this Node version (${process.version}) does not expose the fd of a dgram socket ` +
        '(socket[kStateSymbol].handle.fd / socket._handle.fd); IP_RECVERR cannot be enabled on it',
    );
  }
  if (handle.fd < 0) throw new Error('socketFd: the dgram socket is not bound yet (call after bind() / "listening")');
  return handle.fd;
}

export interface RecvErrHandle {
  readonly fd: number;
  readonly family: Family;
  /**
   * Drain the error queue now and hand each entry to onIcmpError. Returns
   * the count. Safe to call any time (no-op once the socket is closed).
   */
  drain(): number;
  /**
   * socket.send() that cannot lose a datagram to a pending ICMP error: if
   * the send fails with an ICMP-derived errno (the socket's pending error
   * was consumed by this send, which then sent nothing), the error queue
   * is drained and the send retried (up to twice). Also drains after any
   * failed send (local errors such as EMSGSIZE are queued too). cb gets the
   * final outcome. Use this (or drain() in your own send callbacks) for
   * EVERY send on the socket — see attachRecvErr.
   */
  send(
    msg: Uint8Array | readonly Uint8Array[],
    port: number,
    address: string,
    cb?: (err: Error | null, bytes?: number) => void,
  ): void;
  /**
   * Turn IP_RECVERR/IPV6_RECVERR off again (the kernel purges the queue),
   * clear the pending error and remove the listeners.
   */
  detach(): void;
}

export interface AttachRecvErrOptions {
  /**
   * Non-ICMP 'error' events on the socket. By default they are rethrown
   * when attachRecvErr's listener is the socket's only 'error' listener
   * (Node's behaviour for an unhandled 'error'), and ignored otherwise.
   */
  onOtherError?: (err: Error) => void;
  /** Retries of a send that failed with an ICMP-derived errno (default 2). */
  sendRetries?: number;
}

/**
 * Enable IP_RECVERR/IPV6_RECVERR on a BOUND Node dgram socket and deliver
 * every queued ICMP error to onIcmpError (with the destination the failed
 * datagram was sent to), without spinning the event loop and without
 * losing datagrams. Returns a handle whose send() must be used for sends.
 *
 * Why each piece is needed (measured, see the file header):
 * 1. An ICMP error sets sk_err; libuv's next recvmsg() fails with it, Node
 *    emits 'error' {code: 'ECONNREFUSED', syscall: 'recvmsg'} and keeps the
 *    socket open and receiving. Our 'error' listener drains the queue there.
 *    (Queued datagrams are not lost: recvmsg returns the error first and
 *    the data on the next read.)
 * 2. If a send() runs between the ICMP's arrival and that recvmsg (on
 *    loopback the ICMP is generated inside the sendmsg of the datagram that
 *    triggers it, so two send()s in one tick hit this), the second sendmsg
 *    fails with ECONNREFUSED and sends nothing. No 'error' event is emitted
 *    then (Node only reports send errors to the send callback, and drops
 *    them without one), and the still-full error queue makes the loop spin.
 *    handle.send() drains and retries.
 * 3. Local errors (EMSGSIZE with DF) are queued without setting sk_err; the
 *    failing send's callback is the only signal. handle.send() drains.
 */
export function attachRecvErr(
  socket: dgram.Socket,
  onIcmpError: (e: SockError) => void,
  opts: AttachRecvErrOptions = {},
): RecvErrHandle {
  const fd = socketFd(socket);
  const family: Family = socket.address().family === 'IPv6' ? 6 : 4;
  enableRecvErr(fd, family);
  const retries = opts.sendRetries ?? 2;
  let detached = false;

  const alive = (): boolean => {
    if (detached) return false;
    const h = udpHandle(socket);
    return h != null && h.fd === fd; // closed sockets: the fd number may already be reused
  };

  const drain = (): number => {
    if (!alive()) return 0;
    const errs = readErrorQueue(fd, family);
    // queue is empty now; callbacks may throw without leaving it full
    for (const e of errs) onIcmpError(e);
    return errs.length;
  };

  const onError = (err: Error): void => {
    const ne = err as NodeJS.ErrnoException;
    if (ne.syscall === 'recvmsg' && ne.code !== undefined && ICMP_ERRNOS.has(ne.code)) {
      drain();
      return;
    }
    drain(); // cheap (one recvmsg) and keeps the loop from spinning whatever the error was
    if (opts.onOtherError) opts.onOtherError(err);
    else if (socket.listenerCount('error') === 1) throw err;
  };
  const onClose = (): void => {
    detached = true;
    socket.off('error', onError);
  };
  socket.on('error', onError);
  socket.once('close', onClose);

  const send: RecvErrHandle['send'] = (msg, port, address, cb) => {
    let left = retries;
    const attempt = (): void => {
      socket.send(msg as Uint8Array, port, address, (err: Error | null, bytes?: number) => {
        if (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (alive()) {
            drain();
            if (left-- > 0 && code !== undefined && ICMP_ERRNOS.has(code)) return attempt();
          }
          cb?.(err);
          return;
        }
        cb?.(null, bytes);
      });
    };
    attempt();
  };

  return {
    fd,
    family,
    drain,
    send,
    detach(): void {
      if (detached) return;
      if (alive()) {
        // Turning IP_RECVERR off purges the queue; then clear sk_err, or the
        // next recvmsg would still fail into an 'error' nobody handles.
        if (family === 6) setSockOptInt(fd, SOL_IPV6, IPV6_RECVERR, 0, 'IPV6_RECVERR');
        try {
          setSockOptInt(fd, SOL_IP, IP_RECVERR, 0, 'IP_RECVERR');
        } catch {
          // v6-only socket
        }
        readErrorQueue(fd, family);
        takeSocketError(fd);
      }
      detached = true;
      socket.off('error', onError);
      socket.off('close', onClose);
    },
  };
}
