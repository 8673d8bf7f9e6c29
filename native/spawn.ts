// native/spawn.ts — owns: starting a helper program with posix_spawnp, its
// stdin, stdout and stderr as pipes, and reaping it.
//
// Read this first:
// - Why not child_process: libuv starts a child with fork(), which copies
//   the page tables of tsnet's whole ~50 MiB process and leaves every page
//   copy-on-write until the child execs; on a paravirtualized 2-vCPU machine
//   that was ~9 ms of start-up, and the TAP helper (src/launcher/tap.ts)
//   runs before tsnet is ready. glibc's posix_spawn uses clone(CLONE_VM |
//   CLONE_VFORK): the child borrows our memory until it execs, nothing is
//   copied.
// - The child starts clean: every signal at its default and none blocked
//   (Node.js ignores SIGPIPE; a shell must not inherit that; glibc keeps
//   its two internal real-time signals, 32 and 33, to itself), and no fd
//   but 0-2: closefrom(3) in the child (glibc 2.34+; before that, every fd
//   tsnet opens is O_CLOEXEC, but one it inherited without the flag would
//   pass on).
// - The environment is process.env as it is now.
// - libuv reaps only the children it started: the caller waits for the
//   exit through a pidfd (native/pidfd.ts) and calls reap(), or the child
//   stays a zombie.

import { closeFd, libc, NativeError, pipe } from './libc.js';

type Ptr = Uint8Array | Int32Array | null;

const posixSpawnp = libc.func(
  'int posix_spawnp(void *pid, const char *file, void *file_actions, void *attrp, const char **argv, const char **envp)',
) as (pid: Int32Array, file: string, fa: Ptr, attr: Ptr, argv: (string | null)[], envp: (string | null)[]) => number;
const faInit = libc.func('int posix_spawn_file_actions_init(void *fa)') as (fa: Ptr) => number;
const faDestroy = libc.func('int posix_spawn_file_actions_destroy(void *fa)') as (fa: Ptr) => number;
const faDup2 = libc.func('int posix_spawn_file_actions_adddup2(void *fa, int fd, int newfd)') as (fa: Ptr, fd: number, to: number) => number;
/** glibc 2.34+: closes every fd from 3 up in the child; undefined before. */
const faCloseFrom = (() => {
  try {
    return libc.func('int posix_spawn_file_actions_addclosefrom_np(void *fa, int from)') as (fa: Ptr, from: number) => number;
  } catch {
    return undefined;
  }
})();
const attrInit = libc.func('int posix_spawnattr_init(void *attr)') as (attr: Ptr) => number;
const attrDestroy = libc.func('int posix_spawnattr_destroy(void *attr)') as (attr: Ptr) => number;
const attrSetFlags = libc.func('int posix_spawnattr_setflags(void *attr, short flags)') as (attr: Ptr, flags: number) => number;
const attrSetSigDefault = libc.func('int posix_spawnattr_setsigdefault(void *attr, const void *set)') as (attr: Ptr, set: Ptr) => number;
const attrSetSigMask = libc.func('int posix_spawnattr_setsigmask(void *attr, const void *set)') as (attr: Ptr, set: Ptr) => number;
const sigFillSet = libc.func('int sigfillset(void *set)') as (set: Ptr) => number;
const sigEmptySet = libc.func('int sigemptyset(void *set)') as (set: Ptr) => number;
const waitpid = libc.func('int waitpid(int pid, void *status, int options)') as (pid: number, status: Int32Array, options: number) => number;

const POSIX_SPAWN_SETSIGDEF = 0x04;
const POSIX_SPAWN_SETSIGMASK = 0x08;
const WNOHANG = 1;
// glibc x86_64/aarch64: posix_spawn_file_actions_t 80 bytes, posix_spawnattr_t
// 336, sigset_t 128. Room to spare.
const FA_SIZE = 256;
const ATTR_SIZE = 512;
const SIGSET_SIZE = 128;

/** A started helper: its PID and our ends of its stdio pipes (O_CLOEXEC, blocking). */
export interface Spawned {
  pid: number;
  /** Write end of its stdin. */
  stdin: number;
  /** Read end of its stdout. */
  stdout: number;
  /** Read end of its stderr. */
  stderr: number;
}

function check(what: string, rc: number): void {
  // posix_spawn* return the error number instead of setting errno.
  if (rc !== 0) throw new NativeError(rc, what);
}

/**
 * Starts `file` (looked up in PATH) with argv `args` (args[0] is its name),
 * stdio on three new pipes. Throws NativeError (ENOENT: not found).
 */
export function spawnPiped(file: string, args: string[]): Spawned {
  const fa = Buffer.alloc(FA_SIZE);
  const attr = Buffer.alloc(ATTR_SIZE);
  const sigs = Buffer.alloc(SIGSET_SIZE);
  const opened: number[] = [];
  check('posix_spawn_file_actions_init', faInit(fa));
  check('posix_spawnattr_init', attrInit(attr));
  try {
    const [inR, inW] = pipe();
    opened.push(inR, inW);
    const [outR, outW] = pipe();
    opened.push(outR, outW);
    const [errR, errW] = pipe();
    opened.push(errR, errW);
    check('posix_spawn_file_actions_adddup2', faDup2(fa, inR, 0));
    check('posix_spawn_file_actions_adddup2', faDup2(fa, outW, 1));
    check('posix_spawn_file_actions_adddup2', faDup2(fa, errW, 2));
    if (faCloseFrom) check('posix_spawn_file_actions_addclosefrom_np', faCloseFrom(fa, 3));
    sigFillSet(sigs);
    check('posix_spawnattr_setsigdefault', attrSetSigDefault(attr, sigs));
    sigEmptySet(sigs);
    check('posix_spawnattr_setsigmask', attrSetSigMask(attr, sigs));
    check('posix_spawnattr_setflags', attrSetFlags(attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK));
    const env = Object.entries(process.env).map(([k, v]) => `${k}=${v ?? ''}`);
    const pid = new Int32Array(1);
    check('posix_spawnp', posixSpawnp(pid, file, fa, attr, [...args, null], [...env, null]));
    // The child's ends are its own now.
    for (const fd of [inR, outW, errW]) closeFd(fd);
    opened.length = 0;
    return { pid: pid[0]!, stdin: inW, stdout: outR, stderr: errR };
  } finally {
    for (const fd of opened) closeFd(fd);
    faDestroy(fa);
    attrDestroy(attr);
  }
}

/**
 * Collects the exit of child `pid` without blocking: its exit code (128 +
 * the signal's number when a signal ended it), or undefined while it runs.
 */
export function reap(pid: number): number | undefined {
  const status = new Int32Array(1);
  const r = waitpid(pid, status, WNOHANG);
  if (r <= 0) return undefined;
  const s = status[0]!;
  return (s & 0x7f) === 0 ? (s >> 8) & 0xff : 128 + (s & 0x7f);
}

