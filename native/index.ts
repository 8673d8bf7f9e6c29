// native/index.ts — owns: the public surface of native/, the only code that
// makes syscalls (through koffi). Import from here, not from the files.

export {
  E,
  NativeError,
  closeFd,
  datagramPair,
  errno,
  errnoName,
  eventfd,
  getFlags,
  isFdOpen,
  openPath,
  pipe,
  randomFill,
  setNonBlocking as setFdNonBlocking,
  strerror,
  throwErrno,
  unlinkAtIfSame,
  O_CLOEXEC,
  O_NONBLOCK,
  O_RDONLY,
  O_RDWR,
  O_WRONLY,
} from './libc.js';
export * from './tun.js';
export * from './poll.js';
export * from './pidfd.js';
export * from './sockopt.js';
export * from './sockerr.js';
export * from './ping.js';
export * from './pty.js';
export { sendNow, shutdownNow } from './send.js';
export { reap, spawnPiped, type Spawned } from './spawn.js';
export { BLOCKED as SECCOMP_BLOCKED, installSeccomp } from './seccomp.js';
export { ARENA_MAX, MMAP_THRESHOLD, tuneMalloc } from './malloc.js';
export * from './sandbox.js';
export { disableLoopIdleMetrics, type IdleMetricsResult } from './loop.js';
export { releasableMappings, releaseMappings, type ReleasableMapping } from './resident.js';
