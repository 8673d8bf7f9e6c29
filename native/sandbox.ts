// native/sandbox.ts — owns: what the running process can tell about its own
// confinement, from the inside and without /proc (which a sandbox does not
// mount): its capability sets (capget), and probes that attempt calls the
// seccomp filter blocks, in forms that are harmless when it does not
// (unshare(0) changes nothing, setns(-1) and execve of a missing path fail
// anyway) — EPERM from all three means the filter is live.

import { errno, errnoName, raw } from './libc.js';
import { currentArch, type Arch } from './seccomp.js';

const SYS: Record<Arch, Record<'capget' | 'unshare' | 'setns' | 'execve', number>> = {
  x64: { capget: 125, unshare: 272, setns: 308, execve: 59 },
  arm64: { capget: 90, unshare: 97, setns: 268, execve: 221 },
};

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

/** capget(2) for the calling thread (tid 0 = self). */
export function capGet(tid = 0): CapSets {
  const hdr = Buffer.alloc(8);
  hdr.writeUInt32LE(LINUX_CAPABILITY_VERSION_3, 0);
  hdr.writeInt32LE(tid, 4);
  const data = Buffer.alloc(24);
  if (raw.syscall(SYS[currentArch()].capget, 'void *', hdr, 'void *', data) < 0) {
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
  const nr = SYS[currentArch()];
  const res = (rc: number) => (rc < 0 ? errnoName(errno()) : 'ok');
  return {
    unshare: res(raw.syscall(nr.unshare, 'long', 0)),
    setns: res(raw.syscall(nr.setns, 'long', -1, 'long', 0)),
    execve: res(raw.syscall(nr.execve, 'const char *', '/nonexistent/tsnet-probe', 'void *', null, 'void *', null)),
  };
}
