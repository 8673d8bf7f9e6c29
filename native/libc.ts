// native/libc.ts — owns: loading libc once through koffi, the raw libc
// function bindings every other native/ file uses, errno access and naming,
// NativeError, and the few generic fd helpers (open/close/fcntl/eventfd).
//
// Read this first:
// - Only native/ calls into C. Everything here is thin: no protocol logic.
// - errno is read with koffi.errno() immediately after a failing synchronous
//   call (koffi does not save it for sync calls; nothing may run in between).
//   For `.async` calls koffi saves the worker thread's errno and restores it
//   on the main thread while the completion callback runs, so koffi.errno()
//   is valid at the top of that callback too.
// - Linux only (x86_64 / aarch64 share every constant used here).

import { getSystemErrorName } from 'node:util';
import koffi from 'koffi';

export { koffi };

/** The one libc handle of the process. */
export const libc = koffi.load('libc.so.6');

type Fn<A extends unknown[], R> = ((...args: A) => R) & {
  async: (...args: [...A, (err: unknown, res: R) => void]) => void;
};

function fn<A extends unknown[], R>(proto: string): Fn<A, R> {
  return libc.func(proto) as unknown as Fn<A, R>;
}

// Buffers/typed arrays passed as `void *` are handed over by pointer, without
// copy (subarray offsets respected), for sync and async calls alike.
export type Bytes = Uint8Array;

/** Raw libc bindings. Return -1 and set errno on failure, like C. */
export const raw = {
  open: fn<[path: string, flags: number, mode: number], number>(
    'int open(const char *path, int flags, uint32_t mode)',
  ),
  close: fn<[fd: number], number>('int close(int fd)'),
  read: fn<[fd: number, buf: Bytes, count: number], number>(
    'intptr_t read(int fd, void *buf, uintptr_t count)',
  ),
  write: fn<[fd: number, buf: Bytes, count: number], number>(
    'intptr_t write(int fd, const void *buf, uintptr_t count)',
  ),
  writev: fn<[fd: number, iov: Bytes, iovcnt: number], number>('intptr_t writev(int fd, const void *iov, int iovcnt)'),
  // memmove(p, p, 0) copies nothing and returns p: where a buffer's bytes
  // are, for the iovecs writev takes (see native/tun.ts, writeFrame2).
  memmoveAddress: fn<[dst: Bytes, src: Bytes, n: number], number>('uintptr_t memmove(void *dst, const void *src, uintptr_t n)'),
  // fcntl and ioctl are variadic in C; declaring the third argument with a
  // fixed type is ABI-identical on x86_64/aarch64 for integer/pointer args
  // (glibc's wrappers just forward the register), and avoids koffi's slower
  // per-call variadic type parsing.
  fcntlInt: fn<[fd: number, cmd: number, arg: number], number>(
    'int fcntl(int fd, int cmd, long arg)',
  ),
  ioctlPtr: fn<[fd: number, req: number, arg: Bytes], number>(
    'int ioctl(int fd, unsigned long req, void *arg)',
  ),
  ioctlInt: fn<[fd: number, req: number, arg: number], number>(
    'int ioctl(int fd, unsigned long req, unsigned long arg)',
  ),
  pipe2: fn<[fds: Int32Array, flags: number], number>('int pipe2(void *fds, int flags)'),
  socketpair: fn<[domain: number, type: number, protocol: number, fds: Int32Array], number>('int socketpair(int domain, int type, int protocol, void *sv)'),
  eventfd: fn<[initval: number, flags: number], number>('int eventfd(unsigned int initval, int flags)'),
  getrandom: fn<[buf: Bytes, len: number, flags: number], number>('intptr_t getrandom(void *buf, uintptr_t buflen, unsigned int flags)'),
  poll: fn<[fds: Bytes, nfds: number, timeout: number], number>(
    'int poll(void *fds, unsigned long nfds, int timeout)',
  ),
  strerror: fn<[errnum: number], string>('const char *strerror(int errnum)'),
  getpid: fn<[], number>('int getpid()'),
  // Sockets (native/sockopt.ts, sockerr.ts, ping.ts). Addresses and option
  // values travel as Buffers holding the C structs (sockaddr_in/in6, int).
  socket: fn<[domain: number, type: number, protocol: number], number>(
    'int socket(int domain, int type, int protocol)',
  ),
  setsockopt: fn<[fd: number, level: number, name: number, val: Bytes, len: number], number>(
    'int setsockopt(int fd, int level, int name, const void *val, uint32_t len)',
  ),
  // lenp: a 4-byte buffer holding socklen_t in/out.
  getsockopt: fn<[fd: number, level: number, name: number, val: Bytes, lenp: Bytes], number>(
    'int getsockopt(int fd, int level, int name, void *val, void *lenp)',
  ),
  getsockname: fn<[fd: number, addr: Bytes, lenp: Bytes], number>(
    'int getsockname(int fd, void *addr, void *lenp)',
  ),
  bind: fn<[fd: number, addr: Bytes, len: number], number>('int bind(int fd, const void *addr, uint32_t len)'),
  shutdown: fn<[fd: number, how: number], number>('int shutdown(int fd, int how)'),
  send: fn<[fd: number, buf: Bytes, len: number, flags: number], number>(
    'intptr_t send(int fd, const void *buf, uintptr_t len, int flags)',
  ),
  sendto: fn<[fd: number, buf: Bytes, len: number, flags: number, addr: Bytes, addrlen: number], number>(
    'intptr_t sendto(int fd, const void *buf, uintptr_t len, int flags, const void *addr, uint32_t addrlen)',
  ),
  recvfrom: fn<[fd: number, buf: Bytes, len: number, flags: number, addr: Bytes, lenp: Bytes], number>(
    'intptr_t recvfrom(int fd, void *buf, uintptr_t len, int flags, void *addr, void *lenp)',
  ),
  // msg: a struct msghdr whose embedded pointers are real addresses, so it
  // and everything it points to must live in stable memory (koffi.alloc).
  recvmsg: fn<[fd: number, msg: Bytes, flags: number], number>('intptr_t recvmsg(int fd, void *msg, int flags)'),
  // Variadic: call as syscall(nr, 'int', a, 'unsigned int', b, ...). Never
  // .async (koffi cannot run variadic functions asynchronously).
  syscall: libc.func('long syscall(long nr, ...)') as unknown as (nr: number, ...typedArgs: unknown[]) => number,
};

// ---------------------------------------------------------------------------
// errno

/** errno of the calling thread, as left by the last C call. */
export function errno(): number {
  return koffi.errno();
}

// Linux (asm-generic) numbering. Aliases resolve to the first name:
// EWOULDBLOCK = EAGAIN, ENOTSUP = EOPNOTSUPP, EDEADLOCK = EDEADLK.
const ERRNO_NAMES: Record<number, string> = {
  1: 'EPERM', 2: 'ENOENT', 3: 'ESRCH', 4: 'EINTR', 5: 'EIO', 6: 'ENXIO', 7: 'E2BIG',
  8: 'ENOEXEC', 9: 'EBADF', 10: 'ECHILD', 11: 'EAGAIN', 12: 'ENOMEM', 13: 'EACCES',
  14: 'EFAULT', 15: 'ENOTBLK', 16: 'EBUSY', 17: 'EEXIST', 18: 'EXDEV', 19: 'ENODEV',
  20: 'ENOTDIR', 21: 'EISDIR', 22: 'EINVAL', 23: 'ENFILE', 24: 'EMFILE', 25: 'ENOTTY',
  26: 'ETXTBSY', 27: 'EFBIG', 28: 'ENOSPC', 29: 'ESPIPE', 30: 'EROFS', 31: 'EMLINK',
  32: 'EPIPE', 33: 'EDOM', 34: 'ERANGE', 35: 'EDEADLK', 36: 'ENAMETOOLONG', 37: 'ENOLCK',
  38: 'ENOSYS', 39: 'ENOTEMPTY', 40: 'ELOOP', 61: 'ENODATA', 62: 'ETIME', 71: 'EPROTO',
  74: 'EBADMSG', 77: 'EBADFD', 75: 'EOVERFLOW', 84: 'EILSEQ', 88: 'ENOTSOCK', 89: 'EDESTADDRREQ',
  90: 'EMSGSIZE', 91: 'EPROTOTYPE', 92: 'ENOPROTOOPT', 93: 'EPROTONOSUPPORT',
  94: 'ESOCKTNOSUPPORT', 95: 'EOPNOTSUPP', 96: 'EPFNOSUPPORT', 97: 'EAFNOSUPPORT',
  98: 'EADDRINUSE', 99: 'EADDRNOTAVAIL', 100: 'ENETDOWN', 101: 'ENETUNREACH',
  102: 'ENETRESET', 103: 'ECONNABORTED', 104: 'ECONNRESET', 105: 'ENOBUFS', 106: 'EISCONN',
  107: 'ENOTCONN', 108: 'ESHUTDOWN', 110: 'ETIMEDOUT', 111: 'ECONNREFUSED', 112: 'EHOSTDOWN',
  113: 'EHOSTUNREACH', 114: 'EALREADY', 115: 'EINPROGRESS', 116: 'ESTALE', 122: 'EDQUOT',
  125: 'ECANCELED', 130: 'EOWNERDEAD', 64: 'ENONET',
};

/** Symbolic name of an errno value ('EPERM'); 'E<n>' if unknown. */
export function errnoName(n: number): string {
  const name = ERRNO_NAMES[n];
  if (name !== undefined) return name;
  try {
    const s = getSystemErrorName(-n); // 'Unknown system error -n' when unknown
    if (/^E[A-Z0-9]+$/.test(s)) return s;
  } catch {
    // not a valid errno range
  }
  return `E${n}`;
}

/** The errno constants by name (Linux numbering). */
export const E = {
  EPERM: 1, ENOENT: 2, ESRCH: 3, EINTR: 4, EIO: 5, EBADF: 9, EAGAIN: 11, ENOMEM: 12,
  EACCES: 13, EFAULT: 14, EBUSY: 16, EEXIST: 17, ENODEV: 19, EINVAL: 22, ENFILE: 23,
  EMFILE: 24, ENOTTY: 25, EBADFD: 77, ENOSPC: 28, EPIPE: 32, ENOSYS: 38, EOPNOTSUPP: 95,
  ENETUNREACH: 101, ETIMEDOUT: 110, ECONNREFUSED: 111, EHOSTUNREACH: 113,
  EPROTO: 71, EMSGSIZE: 90, ENOPROTOOPT: 92, EAFNOSUPPORT: 97, EADDRINUSE: 98,
  EADDRNOTAVAIL: 99, EHOSTDOWN: 112, ENONET: 64,
} as const;

/** strerror(3) text ('Operation not permitted'). */
export function strerror(n: number): string {
  return raw.strerror(n) ?? `Unknown error ${n}`;
}

/**
 * A failed syscall. `code` is the errno name (like Node's SystemError),
 * message e.g. `EPERM opening /dev/net/tun: Operation not permitted`.
 */
export class NativeError extends Error {
  readonly code: string;
  readonly errno: number;
  readonly syscall: string;

  /**
   * @param errnum  errno value
   * @param syscall the C call that failed ('open', 'ioctl(TUNSETIFF)')
   * @param doing   what we were doing, for the message ('opening /dev/net/tun');
   *                defaults to `syscall`
   */
  constructor(errnum: number, syscall: string, doing?: string) {
    const code = errnoName(errnum);
    super(`${code} ${doing ?? syscall}: ${strerror(errnum)}`);
    this.name = 'NativeError';
    this.code = code;
    this.errno = errnum;
    this.syscall = syscall;
  }
}

/** Throw a NativeError for the current errno. Call right after the failure. */
export function throwErrno(syscall: string, doing?: string): never {
  throw new NativeError(errno(), syscall, doing);
}

// ---------------------------------------------------------------------------
// generic fd helpers

export const O_RDONLY = 0;
export const O_WRONLY = 1;
export const O_RDWR = 2;
export const O_NONBLOCK = 0o4000;
export const O_CLOEXEC = 0o2000000;
export const F_GETFL = 3;
export const F_SETFL = 4;
export const F_GETFD = 1;
export const FD_CLOEXEC = 1;
export const EFD_NONBLOCK = 0o4000;
export const EFD_CLOEXEC = 0o2000000;

/**
 * open(2) a path (O_CLOEXEC is always added). Throws NativeError with a
 * message like `ENOENT opening /nope: No such file or directory`.
 */
export function openPath(path: string, flags: number, mode = 0): number {
  for (;;) {
    const fd = raw.open(path, flags | O_CLOEXEC, mode);
    if (fd >= 0) return fd;
    const e = errno();
    if (e === E.EINTR) continue;
    throw new NativeError(e, 'open', `opening ${path}`);
  }
}

/** close(2). EINTR is not retried (Linux closes the fd anyway). */
export function closeFd(fd: number): void {
  if (raw.close(fd) < 0) {
    const e = errno();
    if (e === E.EINTR) return;
    throw new NativeError(e, 'close', `closing fd ${fd}`);
  }
}

/** fcntl(F_GETFL). */
export function getFlags(fd: number): number {
  const fl = raw.fcntlInt(fd, F_GETFL, 0);
  if (fl < 0) throwErrno('fcntl', `fcntl(F_GETFL) on fd ${fd}`);
  return fl;
}

/** Set or clear O_NONBLOCK on fd. */
export function setNonBlocking(fd: number, on = true): void {
  const fl = getFlags(fd);
  const next = on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK;
  if (next !== fl && raw.fcntlInt(fd, F_SETFL, next) < 0) {
    throwErrno('fcntl', `fcntl(F_SETFL) on fd ${fd}`);
  }
}

/** True if fd is open in this process (fcntl F_GETFD succeeds). */
export function isFdOpen(fd: number): boolean {
  return raw.fcntlInt(fd, F_GETFD, 0) >= 0;
}

/** pipe2(2): [readFd, writeFd], close-on-exec (plus O_NONBLOCK if asked). */
export function pipe(nonBlocking = false): [number, number] {
  const fds = new Int32Array(2);
  if (raw.pipe2(fds, O_CLOEXEC | (nonBlocking ? O_NONBLOCK : 0)) < 0) throwErrno('pipe2');
  return [fds[0]!, fds[1]!];
}

/**
 * socketpair(2) of connected AF_UNIX datagram sockets, close-on-exec: one
 * datagram per read(2), as a TAP gives one frame per read, so tests stand
 * one end in for a TAP device.
 */
export function datagramPair(): [number, number] {
  const fds = new Int32Array(2);
  // AF_UNIX = 1, SOCK_DGRAM = 2; SOCK_CLOEXEC is O_CLOEXEC on Linux.
  if (raw.socketpair(1, 2 | O_CLOEXEC, 0, fds) < 0) throwErrno('socketpair');
  return [fds[0]!, fds[1]!];
}

/** eventfd(2), non-blocking and close-on-exec by default. */
export function eventfd(initval = 0, flags = EFD_NONBLOCK | EFD_CLOEXEC): number {
  const fd = raw.eventfd(initval, flags);
  if (fd < 0) throwErrno('eventfd');
  return fd;
}

/**
 * Fills buf from the kernel's CSPRNG (getrandom(2), blocking only until the
 * pool is first seeded). For tsnet's few random numbers (TCP initial sequence
 * numbers) this spares loading Node's crypto module, ~14 ms of start-up.
 */
export function randomFill(buf: Uint8Array): void {
  let off = 0;
  while (off < buf.length) {
    const n = raw.getrandom(buf.subarray(off), buf.length - off, 0);
    if (n < 0) {
      if (errno() === E.EINTR) continue;
      throwErrno('getrandom');
    }
    off += n;
  }
}

const unlinkatFn = libc.func('int unlinkat(int dirfd, const char *path, int flags)') as unknown as (dirfd: number, path: string, flags: number) => number;
const fstatatFn = libc.func('int fstatat(int dirfd, const char *path, void *buf, int flags)') as unknown as (
  dirfd: number,
  path: string,
  buf: Uint8Array,
  flags: number,
) => number;
const AT_SYMLINK_NOFOLLOW = 0x100;
const STAT_SIZE = 256; // larger than struct stat on x86_64 (144) and aarch64 (128)
const STAT_INO_OFF = 8; // st_ino follows the 8-byte st_dev on both

/**
 * Removes `name` from the directory open as `dirfd` if it is still the file
 * with inode `ino` (so a file someone else put there since is left alone).
 * Works where the directory is no longer reachable by path (a sandbox's
 * detached old root). True if removed.
 */
export function unlinkAtIfSame(dirfd: number, name: string, ino: number): boolean {
  const st = Buffer.alloc(STAT_SIZE);
  if (fstatatFn(dirfd, name, st, AT_SYMLINK_NOFOLLOW) < 0) return false;
  if (Number(st.readBigUInt64LE(STAT_INO_OFF)) !== ino) return false;
  return unlinkatFn(dirfd, name, 0) === 0;
}
