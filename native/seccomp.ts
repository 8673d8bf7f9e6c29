// native/seccomp.ts — owns: tsnet's seccomp filter. A classic-BPF program,
// built here (no libseccomp), installed for every thread of the process at
// once (SECCOMP_FILTER_FLAG_TSYNC), after no_new_privs.
//
// Read this first:
// - Allow by default, block by name: what a network stack that has finished
//   setting up never needs and an attacker who took it over would want —
//   running programs, entering or making namespaces, mounting, tracing or
//   reading other processes, taking their fds, loading kernel code, rebooting,
//   changing the clock. The list is slirp4netns's (execve, execveat,
//   open_by_handle_at, name_to_handle_at, ptrace, prctl, process_vm_readv/
//   writev, mount, umount2, setns, unshare) and more (see BLOCKED).
// - A blocked call fails with EPERM; the process lives on. clone(2) is
//   blocked only when it asks for a new namespace (threads still start);
//   clone3(2) gets ENOSYS, whose arguments BPF cannot read, so glibc falls
//   back to clone(2). A foreign ABI (i386 or x32 on x86_64) is refused whole.
// - Install after the last moment tsnet needs any of them: helpers are
//   spawned (nsenter, ip) and the sandbox is made before this runs.
// - x86_64 and aarch64; on another architecture install() throws.

import { NativeError, errno, koffi, raw } from './libc.js';

// struct seccomp_data: int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6].
const OFF_NR = 0;
const OFF_ARCH = 4;
const OFF_ARG0_LO = 16; // little-endian: the low 32 bits of args[0]

// BPF opcodes (linux/filter.h).
const BPF_LD_W_ABS = 0x20; // BPF_LD | BPF_W | BPF_ABS
const BPF_JEQ_K = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const BPF_JGE_K = 0x35; // BPF_JMP | BPF_JGE | BPF_K
const BPF_JSET_K = 0x45; // BPF_JMP | BPF_JSET | BPF_K
const BPF_RET_K = 0x06; // BPF_RET | BPF_K

export const SECCOMP_RET_KILL_PROCESS = 0x80000000;
export const SECCOMP_RET_ERRNO = 0x00050000;
export const SECCOMP_RET_ALLOW = 0x7fff0000;
const EPERM = 1;
const ENOSYS = 38;

const AUDIT_ARCH_X86_64 = 0xc000003e;
const AUDIT_ARCH_AARCH64 = 0xc00000b7;
const X32_SYSCALL_BIT = 0x40000000;

/** Any of these in clone(2)'s flags makes a namespace (sched.h). */
export const CLONE_NAMESPACE_FLAGS =
  0x00020000 | // CLONE_NEWNS
  0x02000000 | // CLONE_NEWCGROUP
  0x04000000 | // CLONE_NEWUTS
  0x08000000 | // CLONE_NEWIPC
  0x10000000 | // CLONE_NEWUSER
  0x20000000 | // CLONE_NEWPID
  0x40000000 | // CLONE_NEWNET
  0x00000080; // CLONE_NEWTIME

type Table = Record<string, number>;

/**
 * Syscall numbers native/ calls or blocks by name: x86_64 from
 * asm/unistd_64.h, aarch64 from asm-generic/unistd.h.
 */
const NR: Record<'x64' | 'arm64', Table> = {
  x64: {
    execve: 59, execveat: 322, open_by_handle_at: 304, name_to_handle_at: 303, ptrace: 101, prctl: 157,
    process_vm_readv: 310, process_vm_writev: 311, mount: 165, umount2: 166, setns: 308, unshare: 272,
    pidfd_getfd: 438, kexec_load: 246, kexec_file_load: 320, reboot: 169, init_module: 175,
    finit_module: 313, delete_module: 176, pivot_root: 155, chroot: 161, swapon: 167, swapoff: 168,
    acct: 163, bpf: 321, perf_event_open: 298, keyctl: 250, add_key: 248, request_key: 249,
    userfaultfd: 323, fsopen: 430, fsconfig: 431, fsmount: 432, fspick: 433, open_tree: 428,
    move_mount: 429, mount_setattr: 442, iopl: 172, ioperm: 173, settimeofday: 164, clock_settime: 227,
    clock_adjtime: 305, adjtimex: 159, quotactl: 179, uselib: 134, vhangup: 153, lookup_dcookie: 212,
    clone: 56, clone3: 435, seccomp: 317, capget: 125, capset: 126, gettid: 186,
  },
  arm64: {
    execve: 221, execveat: 281, open_by_handle_at: 265, name_to_handle_at: 264, ptrace: 117, prctl: 167,
    process_vm_readv: 270, process_vm_writev: 271, mount: 40, umount2: 39, setns: 268, unshare: 97,
    pidfd_getfd: 438, kexec_load: 104, kexec_file_load: 294, reboot: 142, init_module: 105,
    finit_module: 273, delete_module: 106, pivot_root: 41, chroot: 51, swapon: 224, swapoff: 225,
    acct: 89, bpf: 280, perf_event_open: 241, keyctl: 219, add_key: 217, request_key: 218,
    userfaultfd: 282, fsopen: 430, fsconfig: 431, fsmount: 432, fspick: 433, open_tree: 428,
    move_mount: 429, mount_setattr: 442, settimeofday: 170, clock_settime: 112, clock_adjtime: 266,
    adjtimex: 171, quotactl: 60, vhangup: 58, lookup_dcookie: 18, clone: 220, clone3: 435, seccomp: 277, capget: 90,
    capset: 91, gettid: 178,
  },
};

/** Blocked with EPERM, in the order they are printed. */
export const BLOCKED = [
  // slirp4netns's list
  'execve', 'execveat', 'open_by_handle_at', 'ptrace', 'prctl', 'process_vm_readv', 'process_vm_writev',
  'mount', 'name_to_handle_at', 'setns', 'umount2', 'unshare',
  // and: other processes' fds, new mount API, root changes, kernel code and state
  'pidfd_getfd', 'fsopen', 'fsconfig', 'fsmount', 'fspick', 'open_tree', 'move_mount', 'mount_setattr',
  'pivot_root', 'chroot', 'kexec_load', 'kexec_file_load', 'reboot', 'init_module', 'finit_module',
  'delete_module', 'bpf', 'perf_event_open', 'userfaultfd', 'keyctl', 'add_key', 'request_key',
  'swapon', 'swapoff', 'acct', 'quotactl', 'iopl', 'ioperm', 'uselib', 'vhangup', 'lookup_dcookie',
  'settimeofday', 'clock_settime', 'clock_adjtime', 'adjtimex',
] as const;

export type Arch = 'x64' | 'arm64';

interface Insn {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

const stmt = (code: number, k: number): Insn => ({ code, jt: 0, jf: 0, k });
const jump = (code: number, k: number, jt: number, jf: number): Insn => ({ code, jt, jf, k });

/** The names this architecture has (iopl/ioperm/uselib exist only on x86_64). */
export function blockedOn(arch: Arch): string[] {
  return BLOCKED.filter((n) => NR[arch][n] !== undefined);
}

/**
 * The filter program for `arch`: check the ABI, then one comparison per
 * blocked syscall, then clone's flags and clone3.
 */
export function buildFilter(arch: Arch): Insn[] {
  const nr = NR[arch];
  const names = blockedOn(arch);
  const prog: Insn[] = [];
  const auditArch = arch === 'x64' ? AUDIT_ARCH_X86_64 : AUDIT_ARCH_AARCH64;
  prog.push(stmt(BPF_LD_W_ABS, OFF_ARCH));
  prog.push(jump(BPF_JEQ_K, auditArch, 1, 0));
  prog.push(stmt(BPF_RET_K, SECCOMP_RET_KILL_PROCESS));
  prog.push(stmt(BPF_LD_W_ABS, OFF_NR));
  if (arch === 'x64') {
    // x32 calls share the arch value; refuse them all.
    prog.push(jump(BPF_JGE_K, X32_SYSCALL_BIT, 0, 1));
    prog.push(stmt(BPF_RET_K, SECCOMP_RET_ERRNO | EPERM));
  }
  // Each blocked number jumps forward to the shared EPERM return at the end.
  // After this loop: [clone: 3] [clone3: 2] [ALLOW] [EPERM]
  const tail = 3 + 2 + 1; // instructions between the loop and the EPERM return
  names.forEach((name, i) => {
    const remaining = names.length - i - 1;
    prog.push(jump(BPF_JEQ_K, nr[name]!, remaining + tail, 0));
  });
  // clone: EPERM when it asks for a namespace, else allow.
  prog.push(jump(BPF_JEQ_K, nr.clone!, 0, 2));
  prog.push(stmt(BPF_LD_W_ABS, OFF_ARG0_LO));
  prog.push(jump(BPF_JSET_K, CLONE_NAMESPACE_FLAGS, 3, 2));
  // clone3: ENOSYS so that glibc uses clone(2), whose flags we can see.
  prog.push(jump(BPF_JEQ_K, nr.clone3!, 0, 1));
  prog.push(stmt(BPF_RET_K, SECCOMP_RET_ERRNO | ENOSYS));
  prog.push(stmt(BPF_RET_K, SECCOMP_RET_ALLOW));
  prog.push(stmt(BPF_RET_K, SECCOMP_RET_ERRNO | EPERM));
  return prog;
}

/** Runs the program over one seccomp_data the way the kernel would (for tests). */
export function evaluate(prog: Insn[], data: { nr: number; arch: number; arg0?: number }): number {
  let acc = 0;
  for (let pc = 0; pc < prog.length; pc++) {
    const i = prog[pc]!;
    switch (i.code) {
      case BPF_LD_W_ABS:
        acc = i.k === OFF_NR ? data.nr >>> 0 : i.k === OFF_ARCH ? data.arch >>> 0 : i.k === OFF_ARG0_LO ? (data.arg0 ?? 0) >>> 0 : 0;
        break;
      case BPF_JEQ_K:
        pc += acc === i.k >>> 0 ? i.jt : i.jf;
        break;
      case BPF_JGE_K:
        pc += acc >= i.k >>> 0 ? i.jt : i.jf;
        break;
      case BPF_JSET_K:
        pc += (acc & i.k) !== 0 ? i.jt : i.jf;
        break;
      case BPF_RET_K:
        return i.k >>> 0;
      default:
        throw new Error(`unknown BPF opcode ${i.code}`);
    }
  }
  throw new Error('BPF program fell off its end');
}

export function auditArch(arch: Arch): number {
  return arch === 'x64' ? AUDIT_ARCH_X86_64 : AUDIT_ARCH_AARCH64;
}

export function syscallNumber(arch: Arch, name: string): number | undefined {
  return NR[arch][name];
}

/** The number of syscall `name` on this machine (for raw.syscall). */
export function nr(name: string): number {
  const n = NR[currentArch()][name];
  if (n === undefined) throw new Error(`no syscall number for ${name} on ${process.arch}`);
  return n;
}

export function currentArch(): Arch {
  if (process.arch === 'x64' || process.arch === 'arm64') return process.arch;
  throw new Error(`seccomp: no syscall table for ${process.arch}`);
}

const PR_SET_NO_NEW_PRIVS = 38;
const PR_GET_SECCOMP = 21;
const SECCOMP_SET_MODE_FILTER = 1;
const SECCOMP_FILTER_FLAG_TSYNC = 1;

/** prctl(PR_SET_NO_NEW_PRIVS, 1) on the calling thread (TSYNC carries it to the others). */
export function setNoNewPrivs(): void {
  if (raw.syscall(nr('prctl'), 'long', PR_SET_NO_NEW_PRIVS, 'long', 1, 'long', 0, 'long', 0, 'long', 0) < 0) {
    throw new NativeError(errno(), 'prctl', 'prctl(PR_SET_NO_NEW_PRIVS)');
  }
}

/** The seccomp mode of the calling thread (0 none, 2 filter). */
export function seccompMode(): number {
  return raw.syscall(nr('prctl'), 'long', PR_GET_SECCOMP, 'long', 0, 'long', 0, 'long', 0, 'long', 0);
}

/**
 * Sets no_new_privs and installs the filter on every thread. Returns the
 * names blocked. Throws NativeError (ENOSYS/EINVAL where the kernel has no
 * seccomp filters; ESRCH-like positive TIDs are reported as EBUSY).
 */
export function installSeccomp(opts: { allowAll?: boolean } = {}): string[] {
  const arch = currentArch();
  // allowAll: a filter that blocks nothing, for what TSYNC does besides:
  // no_new_privs on every thread (--enable-sandbox without --enable-seccomp).
  const prog = opts.allowAll ? [stmt(BPF_RET_K, SECCOMP_RET_ALLOW)] : buildFilter(arch);
  if (prog.some((ins) => ins.jt > 255 || ins.jf > 255)) throw new Error('seccomp: a jump does not fit in 8 bits');
  // struct sock_fprog { unsigned short len; struct sock_filter *filter; } (16
  // bytes, the pointer at offset 8) followed by the filter itself, in one
  // malloc'ed block whose address is stable (the kernel copies it).
  const size = 16 + prog.length * 8;
  const ptr = koffi.alloc('uint8_t', size);
  const base = koffi.address(ptr) as bigint;
  const mem = Buffer.from(koffi.view(ptr, size));
  mem.fill(0);
  mem.writeUInt16LE(prog.length, 0);
  mem.writeBigUInt64LE(base + 16n, 8);
  prog.forEach((ins, i) => {
    const o = 16 + i * 8;
    mem.writeUInt16LE(ins.code, o);
    mem.writeUInt8(ins.jt, o + 2);
    mem.writeUInt8(ins.jf, o + 3);
    mem.writeUInt32LE(ins.k >>> 0, o + 4);
  });
  try {
    setNoNewPrivs();
    const rc = raw.syscall(nr('seccomp'), 'long', SECCOMP_SET_MODE_FILTER, 'long', SECCOMP_FILTER_FLAG_TSYNC, 'void *', ptr);
    if (rc < 0) throw new NativeError(errno(), 'seccomp', 'seccomp(SECCOMP_SET_MODE_FILTER, TSYNC)');
    if (rc > 0) throw new NativeError(16, 'seccomp', `seccomp(TSYNC): thread ${rc} could not take the filter`);
  } finally {
    koffi.free(ptr);
  }
  return opts.allowAll ? [] : blockedOn(arch);
}
