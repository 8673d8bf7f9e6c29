// native/pidfd.ts — owns: process file descriptors. pidfd_open(2),
// pidfd_getfd(2) (take a copy of another process's fd: how tsnet obtains a
// /dev/net/tun fd opened inside the container's namespaces, src/launcher/tap.ts),
// pidfd_send_signal(2), and exit notification (a pidfd turns readable when
// the process exits; watched through native/poll.ts without blocking).
//
// Read this first:
// - Called through libc's variadic `long syscall(long nr, ...)`; koffi needs
//   a type before each extra argument and cannot run variadics as .async.
//   Arguments are passed as 'long' (the kernel truncates to its int types).
// - Syscall numbers are the unified ones (same on x86_64 and aarch64).
// - pidfd_open needs Linux 5.3, pidfd_getfd 5.6 (ENOSYS before). pidfd_getfd
//   needs PTRACE_MODE_ATTACH_REALCREDS over the target: same uid and
//   dumpable, or CAP_SYS_PTRACE in its user namespace (true for the owner of
//   a child userns; Yama ptrace_scope=1 additionally requires it to be our
//   descendant — spawn the opener ourselves). Both returned fds are O_CLOEXEC.

import { NativeError, closeFd, errno, raw } from './libc.js';
import { POLLIN, type Poller, pollNow, sharedPoller } from './poll.js';

export const SYS_pidfd_send_signal = 424;
export const SYS_pidfd_open = 434;
export const SYS_pidfd_getfd = 438;

/** pidfd_open(pid, flags): a pidfd (O_CLOEXEC). ESRCH if no such process. */
export function pidfdOpen(pid: number, flags = 0): number {
  const fd = raw.syscall(SYS_pidfd_open, 'long', pid, 'long', flags);
  if (fd < 0) throw new NativeError(errno(), 'pidfd_open', `pidfd_open(${pid})`);
  return fd;
}

/**
 * pidfd_getfd(pidfd, targetfd, 0): a duplicate (in this process, O_CLOEXEC)
 * of the target's fd `targetfd`. EBADF if the target has no such fd, EPERM
 * if ptrace access is denied, ESRCH if it exited.
 */
export function pidfdGetfd(pidfd: number, targetfd: number): number {
  const fd = raw.syscall(SYS_pidfd_getfd, 'long', pidfd, 'long', targetfd, 'long', 0);
  if (fd < 0) {
    throw new NativeError(errno(), 'pidfd_getfd', `pidfd_getfd(pidfd ${pidfd}, fd ${targetfd})`);
  }
  return fd;
}

/** pidfd_send_signal(pidfd, sig, NULL, 0). Signal number, e.g. 15 for SIGTERM. */
export function pidfdSendSignal(pidfd: number, sig: number): void {
  if (raw.syscall(SYS_pidfd_send_signal, 'long', pidfd, 'long', sig, 'void *', null, 'long', 0) < 0) {
    throw new NativeError(errno(), 'pidfd_send_signal', `pidfd_send_signal(pidfd ${pidfd}, ${sig})`);
  }
}

/** Non-blocking check: has the process behind pidfd exited? */
export function pidfdExited(pidfd: number): boolean {
  return (pollNow([pidfd], POLLIN)[0]! & POLLIN) !== 0;
}

/**
 * Call onExit once when the process behind pidfd exits. Does not close the
 * pidfd. Returns cancel(), which resolves when the pidfd is no longer
 * polled (then it may be closed).
 */
export function watchPidfd(pidfd: number, onExit: () => void, poller: Poller = sharedPoller()): () => Promise<void> {
  let done = false;
  let cancelled = false;
  poller.add(pidfd, () => {
    if (done) return;
    done = true;
    // Readable stays readable: stop watching before notifying.
    void poller.remove(pidfd).then(() => {
      if (!cancelled) onExit();
    });
  });
  return () => {
    done = true;
    cancelled = true;
    return poller.remove(pidfd);
  };
}

/**
 * Be told when `pid` exits (any process we may see, not only children).
 * Opens and later closes its own pidfd. Throws ESRCH if pid is already gone
 * (and not a zombie). Returns cancel().
 */
export function onPidExit(pid: number, onExit: () => void, poller: Poller = sharedPoller()): () => Promise<void> {
  const pidfd = pidfdOpen(pid);
  let closed = false;
  const closeOnce = (): void => {
    if (!closed) {
      closed = true;
      closeFd(pidfd);
    }
  };
  const cancel = watchPidfd(
    pidfd,
    () => {
      closeOnce();
      onExit();
    },
    poller,
  );
  return async () => {
    await cancel();
    closeOnce();
  };
}
