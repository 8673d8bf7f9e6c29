// native/sandbox.ts — owns: the in-process half of --enable-sandbox, and
// what the running process can tell about its own confinement.
//
// Read this first:
// - A multithreaded process cannot enter a user or mount namespace, and a
//   Node.js process has threads before its first line of JS. So the launcher
//   (src/cli/sandbox.sh) starts tsnet already inside a private mount
//   namespace, in a user namespace where it holds capabilities (the target's,
//   as slirp4netns joins it, or its own when it already has them). Every
//   thread shares that mount namespace from birth.
// - enterSandbox() runs once tsnet has opened everything it needs (TAP, API
//   socket, pcap file, target pidfd): a tmpfs root holding /etc and /run (both
//   read-only binds, /run a slave so resolv.conf updates still arrive), then
//   pivot_root — which moves the root of every thread, since they share it —
//   the old root detached, the new one read-only; then capabilities: the
//   bounding set and the calling thread down to cap_net_bind_service. Capability
//   sets are per thread: where the user namespace maps a second uid, glibc's
//   setresuid (which glibc applies to every thread) moves all threads off uid
//   0, which empties theirs, the calling thread keeping cap_net_bind_service
//   through PR_SET_KEEPCAPS; with one uid mapped (unshare -r) only threads
//   that exist later inherit the drop — the report says which kept what.
// - no_new_privs is not set here: the seccomp install after this (TSYNC) sets
//   it on every thread, which is why a sandboxed tsnet installs a filter even
//   without seccomp (one that blocks nothing; src/app/confine.ts).
// - Reports: capability sets (capget, per thread) and probes that attempt
//   calls the seccomp filter blocks, in forms harmless when it does not
//   (unshare(0) changes nothing, setns(-1) and execve of a missing path fail
//   anyway) — EPERM from all three means the filter is live.

import fs from 'node:fs';
import { NativeError, errno, errnoName, libc, raw } from './libc.js';
import { nr } from './seccomp.js';


const LINUX_CAPABILITY_VERSION_3 = 0x20080522;

/** Capability names by number (linux/capability.h), for reports. */
export const CAP_NAMES = [
  'chown', 'dac_override', 'dac_read_search', 'fowner', 'fsetid', 'kill', 'setgid', 'setuid', 'setpcap',
  'linux_immutable', 'net_bind_service', 'net_broadcast', 'net_admin', 'net_raw', 'ipc_lock', 'ipc_owner',
  'sys_module', 'sys_rawio', 'sys_chroot', 'sys_ptrace', 'sys_pacct', 'sys_admin', 'sys_boot', 'sys_nice',
  'sys_resource', 'sys_time', 'sys_tty_config', 'mknod', 'lease', 'audit_write', 'audit_control', 'setfcap',
  'mac_override', 'mac_admin', 'syslog', 'wake_alarm', 'block_suspend', 'audit_read', 'perfmon', 'bpf',
  'checkpoint_restore',
].map((n) => `cap_${n}`);

export interface CapSets {
  effective: bigint;
  permitted: bigint;
  inheritable: bigint;
}

/** struct __user_cap_header_struct for thread `tid` (0 = the caller). */
function capHeader(tid = 0): Buffer {
  const hdr = Buffer.alloc(8);
  hdr.writeUInt32LE(LINUX_CAPABILITY_VERSION_3, 0);
  hdr.writeInt32LE(tid, 4);
  return hdr;
}

/** capget(2) for the calling thread (tid 0 = self). */
export function capGet(tid = 0): CapSets {
  const hdr = capHeader(tid);
  const data = Buffer.alloc(24);
  if (raw.syscall(nr('capget'), 'void *', hdr, 'void *', data) < 0) {
    throw new Error(`capget: ${errnoName(errno())}`);
  }
  const set = (off: number) => BigInt(data.readUInt32LE(off)) | (BigInt(data.readUInt32LE(off + 12)) << 32n);
  return { effective: set(0), permitted: set(4), inheritable: set(8) };
}

/** The names in a capability mask. */
export function capNames(mask: bigint): string[] {
  const out: string[] = [];
  for (let i = 0; i < 64; i++) if (mask & (1n << BigInt(i))) out.push(CAP_NAMES[i] ?? `cap_${i}`);
  return out;
}

/** Attempts three calls the filter blocks; each result is 'ok' or the errno's name. */
export function probeBlocked(): { unshare: string; setns: string; execve: string } {
  const res = (rc: number) => (rc < 0 ? errnoName(errno()) : 'ok');
  return {
    unshare: res(raw.syscall(nr('unshare'), 'long', 0)),
    setns: res(raw.syscall(nr('setns'), 'long', -1, 'long', 0)),
    execve: res(raw.syscall(nr('execve'), 'const char *', '/nonexistent/tsnet-probe', 'void *', null, 'void *', null)),
  };
}

// ---------------------------------------------------------------------------
// entering the sandbox

const mountFn = libc.func('int mount(const char *src, const char *target, const char *fstype, unsigned long flags, const char *data)') as unknown as (
  src: string | null,
  target: string,
  fstype: string | null,
  flags: number,
  data: string | null,
) => number;
const umount2Fn = libc.func('int umount2(const char *target, int flags)') as unknown as (target: string, flags: number) => number;
const chdirFn = libc.func('int chdir(const char *path)') as unknown as (path: string) => number;
// glibc's setresuid applies the change to every thread of the process.
const setresuidFn = libc.func('int setresuid(uint32_t r, uint32_t e, uint32_t s)') as unknown as (r: number, e: number, s: number) => number;

const MS_RDONLY = 0x1;
const MS_NOSUID = 0x2;
const MS_NODEV = 0x4;
const MS_NOEXEC = 0x8;
const MS_REMOUNT = 0x20;
const MS_BIND = 0x1000;
const MS_REC = 0x4000;
const MS_PRIVATE = 0x40000;
const MS_SLAVE = 0x80000;
const MNT_DETACH = 2;

const PR_SET_KEEPCAPS = 8;
const PR_CAPBSET_DROP = 24;
const PR_CAP_AMBIENT = 47;
const PR_CAP_AMBIENT_CLEAR_ALL = 4;
const CAP_NET_BIND_SERVICE = 10;
const CAP_LAST_POSSIBLE = 63;

function check(rc: number, call: string, doing: string): void {
  if (rc < 0) throw new NativeError(errno(), call, doing);
}

function prctl(option: number, arg2 = 0, arg3 = 0): number {
  return raw.syscall(nr('prctl'), 'long', option, 'long', arg2, 'long', arg3, 'long', 0, 'long', 0);
}

/** capset(2) on the calling thread: effective = permitted = inheritable = `mask` (caps 0..63). */
function capSet(mask: bigint): void {
  const hdr = capHeader();
  const data = Buffer.alloc(24);
  const lo = Number(mask & 0xffffffffn);
  const hi = Number(mask >> 32n);
  for (const off of [0, 4, 8]) {
    data.writeUInt32LE(lo, off);
    data.writeUInt32LE(hi, off + 12);
  }
  check(raw.syscall(nr('capset'), 'void *', hdr, 'void *', data), 'capset', 'capset(cap_net_bind_service)');
}

/** This thread's id. */
export function gettid(): number {
  return raw.syscall(nr('gettid'));
}

function bindReadOnly(from: string, to: string, slave: boolean): void {
  check(mountFn(from, to, null, MS_BIND | MS_REC | (slave ? MS_SLAVE : 0), null), 'mount', `bind-mounting ${from}`);
  if (slave) check(mountFn(null, to, null, MS_SLAVE | MS_REC, null), 'mount', `making ${to} a slave mount`);
  check(mountFn(from, to, null, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, null), 'mount', `remounting ${to} read-only`);
}

/** The rows of a /proc/PID/uid_map (or gid_map): inside id, outside id, count. */
export function parseUidMap(text: string): Array<{ inside: number; outside: number; count: number }> {
  return text
    .split('\n')
    .map((l) => l.trim().split(/\s+/).map(Number))
    .filter((f) => f.length === 3 && f.every((n) => Number.isInteger(n)))
    .map(([inside, outside, count]) => ({ inside: inside!, outside: outside!, count: count! }));
}

/** A non-zero uid mapped in our user namespace (65534 if it is), from /proc/self/uid_map; undefined with one uid. */
export function otherMappedUid(map = fs.readFileSync('/proc/self/uid_map', 'utf8')): number | undefined {
  const rows = parseUidMap(map);
  const has = (u: number) => rows.some((r) => u >= r.inside && u < r.inside + r.count);
  if (has(65534)) return 65534;
  let best: number | undefined;
  for (const r of rows) {
    const top = r.inside + r.count - 1;
    if (top > 0 && (best === undefined || top > best)) best = top;
  }
  return best !== undefined && best <= 0xfffffffe ? best : undefined;
}

export interface SandboxResult {
  /** The uid all threads now run as (0 where only one uid is mapped). */
  uid: number;
  /** Threads (by id) that existed at the drop and still hold more than cap_net_bind_service. */
  threadsWithCaps: number[];
}

/**
 * Builds the root and drops capabilities (see the header). Call from the main
 * thread, inside the launcher's private mount namespace, once every path and
 * helper tsnet needs has been used. Throws NativeError naming the step.
 */
export function enterSandbox(): SandboxResult {
  const tasks = fs.readdirSync('/proc/self/task').map(Number);
  const otherUid = otherMappedUid();
  // 1. The new root: a small tmpfs with /etc and /run bound read-only.
  check(mountFn(null, '/', null, MS_REC | MS_PRIVATE, null), 'mount', 'making / private');
  check(mountFn('tmpfs', '/tmp', 'tmpfs', MS_NOSUID | MS_NODEV | MS_NOEXEC, 'size=16k,mode=0755'), 'mount', 'mounting a tmpfs on /tmp');
  for (const d of ['etc', 'run', 'old']) fs.mkdirSync(`/tmp/${d}`, { mode: 0o755 });
  bindReadOnly('/etc', '/tmp/etc', true);
  bindReadOnly('/run', '/tmp/run', true);
  // 2. pivot_root moves every thread's root and cwd off the old one.
  check(chdirFn('/tmp'), 'chdir', 'chdir to the new root');
  check(raw.syscall(nr('pivot_root'), 'const char *', '.', 'const char *', 'old'), 'pivot_root', 'pivot_root to the new root');
  check(chdirFn('/'), 'chdir', 'chdir to /');
  check(umount2Fn('/old', MNT_DETACH), 'umount2', 'detaching the old root');
  fs.rmdirSync('/old');
  check(mountFn(null, '/', null, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_BIND, null), 'mount', 'remounting / read-only');
  // 3. Capabilities.
  check(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL), 'prctl', 'clearing ambient capabilities');
  for (let cap = 0; cap <= CAP_LAST_POSSIBLE; cap++) {
    if (cap === CAP_NET_BIND_SERVICE) continue;
    if (prctl(PR_CAPBSET_DROP, cap) < 0) {
      if (errno() === 22) break; // EINVAL: past the last capability this kernel knows
      throw new NativeError(errno(), 'prctl', `dropping capability ${cap} from the bounding set`);
    }
  }
  let uid = 0;
  if (otherUid !== undefined) {
    check(prctl(PR_SET_KEEPCAPS, 1), 'prctl', 'PR_SET_KEEPCAPS');
    check(setresuidFn(otherUid, otherUid, otherUid), 'setresuid', `setresuid(${otherUid}) on every thread`);
    check(prctl(PR_SET_KEEPCAPS, 0), 'prctl', 'PR_SET_KEEPCAPS off');
    uid = otherUid;
  }
  capSet(1n << BigInt(CAP_NET_BIND_SERVICE));
  const self = gettid();
  const threadsWithCaps = tasks.filter((tid) => {
    if (tid === self) return false;
    try {
      const c = capGet(tid);
      return (c.permitted & ~(1n << BigInt(CAP_NET_BIND_SERVICE))) !== 0n;
    } catch {
      return false; // gone
    }
  });
  return { uid, threadsWithCaps };
}

const fcntlFn = libc.func('int fcntl(int fd, int cmd, long arg)') as unknown as (fd: number, cmd: number, arg: number) => number;
const execveFn = libc.func('int execve(const char *path, const char **argv, const char **envp)') as unknown as (
  path: string,
  argv: Array<string | null>,
  envp: Array<string | null>,
) => number;
const F_SETFD = 2;

/**
 * Replaces this process (same PID) with `argv` run by `path`, keeping fds
 * 0-2 and `keepFds` open across the exec (Node.js marks every fd
 * close-on-exec at start, the inherited ones included). Returns only on
 * failure, by throwing.
 */
export function execReplace(path: string, argv: string[], env: NodeJS.ProcessEnv, keepFds: number[] = []): never {
  for (const fd of [0, 1, 2, ...keepFds]) fcntlFn(fd, F_SETFD, 0);
  const envp = Object.entries(env)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${v}`);
  execveFn(path, [...argv, null], [...envp, null]);
  throw new NativeError(errno(), 'execve', `running ${path}`);
}
