// Getting the TAP device's fd into tsnet, rootless and without a compiled
// helper:
//   1. spawn `nsenter <target's user+net ns> sh -c 'exec 3<>/dev/net/tun; echo ok; read _'`
//      — the tun driver binds the fd to the netns it was opened in;
//   2. pidfd_open(opener) + pidfd_getfd(pidfd, 3): now we hold that fd;
//   3. TUNSETIFF from here (the owner of a user namespace has CAP_NET_ADMIN
//      in it), then close the opener's stdin so it exits.
// With --netns-type=tapfd the fd is inherited and only checked (TUNGETIFF),
// or attached with TUNSETIFF when the parent passed a bare /dev/net/tun fd.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import {
  closeFd,
  getIff,
  IFF_VNET_HDR,
  NativeError,
  pidfdGetfd,
  pidfdOpen,
  setIff,
  setOffload,
  setPersist,
  TUN_F_CSUM,
  TUN_F_TSO4,
  TUN_F_TSO6,
  TUN_F_TSO_ECN,
  TUN_F_USO4,
  TUN_F_USO6,
} from '../../native/index.js';
import { PrereqError } from './errors.js';
import { deleteLink } from './configure.js';
import { nsenterArgs, type Target } from './target.js';

const OPENER_SCRIPT = 'exec 3<>/dev/net/tun || exit 97; echo ok; read _';
const OPENER_TIMEOUT_MS = 10_000;

export interface OpenedTap {
  fd: number;
  name: string;
  /** Frames carry a virtio_net_hdr (IFF_VNET_HDR). */
  vnetHdr: boolean;
  /** The TUN_F_* offloads the guest's kernel may use (0: none). */
  offloads: number;
}

/**
 * Lets the guest's kernel leave checksums to us and hand over TCP (and,
 * where the kernel has it, UDP) super-segments: TUNSETOFFLOAD, with USO
 * dropped on kernels before 6.2 (EINVAL). Returns the TUN_F_* bits set.
 */
function enableOffloads(fd: number): number {
  const tcp = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;
  for (const flags of [tcp | TUN_F_USO4 | TUN_F_USO6, tcp]) {
    try {
      setOffload(fd, flags);
      return flags;
    } catch (e) {
      if (!(e instanceof NativeError && e.code === 'EINVAL')) throw e;
    }
  }
  return 0;
}

/** Fails early, with the fix, when this user cannot open /dev/net/tun at all. */
export function checkTunAccess(path = '/dev/net/tun'): void {
  try {
    fs.accessSync(path, fs.constants.R_OK | fs.constants.W_OK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new PrereqError(`${path}: does not exist (ENOENT) (load the tun module: modprobe tun, or create the node: mknod ${path} c 10 200)`);
    }
    throw new PrereqError(
      `${path}: cannot open it (${code}): it must be readable and writable by this user (most distributions ship it mode 0666; fix: sudo chmod 0666 ${path})`,
    );
  }
}

/** Runs the opener inside the target's namespaces and takes its fd 3. */
async function takeTunFdFrom(target: Target): Promise<number> {
  const child = spawn('nsenter', [...nsenterArgs(target), '--', 'sh', '-c', OPENER_SCRIPT], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  let closed = false;
  child.on('close', () => (closed = true));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const release = () => {
    child.stdin.end();
  };
  try {
    await new Promise<void>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new PrereqError('nsenter: timed out opening /dev/net/tun in the target namespace (a loaded machine? `tsnet doctor` checks the prerequisites)')), OPENER_TIMEOUT_MS);
      child.on('error', (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        if (e.code === 'ENOENT') reject(new PrereqError('nsenter: not found (ENOENT) (install util-linux: apt-get install util-linux)'));
        else reject(e);
      });
      child.stdout.setEncoding('utf8').on('data', (d: string) => {
        out += d;
        if (out.includes('ok\n')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.on('exit', (code) => {
        clearTimeout(timer);
        const why = stderr.trim().split('\n').pop() ?? '';
        if (code === 97) {
          reject(new PrereqError(`/dev/net/tun: cannot open it inside the target namespace: ${why || 'permission denied'} (it must be mode 0666: sudo chmod 0666 /dev/net/tun)`));
        } else {
          reject(new PrereqError(`<target>: cannot enter its namespaces: ${why || `nsenter exited with ${code}`} (run tsnet as the owner of the target's user namespace)`));
        }
      });
    });
    const pidfd = pidfdOpen(child.pid!);
    try {
      return pidfdGetfd(pidfd, 3);
    } catch (e) {
      if (e instanceof NativeError && e.code === 'ENOSYS') {
        throw new PrereqError('pidfd_getfd: not available (ENOSYS) (tsnet needs Linux 5.6 or newer)');
      }
      if (e instanceof NativeError && e.code === 'EPERM') {
        throw new PrereqError(
          'pidfd_getfd: refused (EPERM): ptrace access to the namespace helper is denied (check kernel.yama.ptrace_scope <= 1)',
        );
      }
      throw e;
    } finally {
      closeFd(pidfd);
    }
  } finally {
    release();
    child.stdout.destroy();
    // The helper exits once its stdin closes; wait for that (and its pipes),
    // so no fd of ours outlives the open. Bounded: a wedged helper is not waited for.
    if (!closed) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 2000);
        child.once('close', () => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }
}

/** A device the slirp4netns launcher made ahead of time, and how it entered the namespaces to make it. */
export interface PrecreatedTap {
  name: string;
  nsenter: string[];
  /** -c: the launcher also ran the configuration (src/launcher/configure.ts's commands). */
  configured: boolean;
}

/** Takes the launcher's note from the environment (and removes it, so no helper inherits it). */
export function takePrecreatedTap(env: NodeJS.ProcessEnv = process.env): PrecreatedTap | undefined {
  const name = env.TSNET_TAP_PRECREATED;
  const how = env.TSNET_TAP_NSENTER;
  const configured = env.TSNET_TAP_CONFIGURED === '1';
  delete env.TSNET_TAP_PRECREATED;
  delete env.TSNET_TAP_NSENTER;
  delete env.TSNET_TAP_CONFIGURED;
  if (!name || !how) return undefined;
  return { name, nsenter: how.split('\n').filter(Boolean), configured };
}

/**
 * Removes a device the launcher made when tsnet stops before attaching to it
 * (bad arguments, an unreachable target): the same nsenter, `ip link del`.
 * Best effort, synchronous (it runs on the way out).
 */
export function removePrecreatedTap(pre: PrecreatedTap): void {
  // Started sandboxed, tsnet may be inside that user namespace by now: then it is not entered again.
  const joined = pre.nsenter.find((a) => a.startsWith('--user='));
  let args = pre.nsenter;
  try {
    if (joined && fs.readlinkSync(joined.slice('--user='.length)) === fs.readlinkSync('/proc/self/ns/user')) {
      args = args.filter((a) => !/^--(user=|preserve-credentials|setuid=|setgid=)/.test(a));
    }
  } catch {
    // the namespace is gone: nothing to remove from
    return;
  }
  deleteLink(args, pre.name);
}

/**
 * The TAP fd for `target`. `precreated`: the slirp4netns launcher already made
 * `tapName` as a persistent device (so that it exists before the runtime
 * loads); we attach to it and drop its persistence, so it goes away with us.
 * `offload`: attach with a virtio-net header and enable the offloads
 * (enableOffloads); an inherited, attached fd keeps the header it has.
 */
export async function openTap(target: Target, tapName: string, precreated = false, offload = false): Promise<OpenedTap> {
  if (target.type === 'tapfd') {
    try {
      const info = getIff(target.fd);
      const vnetHdr = (info.flags & IFF_VNET_HDR) !== 0;
      return { fd: target.fd, name: info.name, vnetHdr, offloads: vnetHdr && offload ? enableOffloads(target.fd) : 0 };
    } catch (e) {
      // EBADFD: a /dev/net/tun fd not yet attached — attach it.
      if (e instanceof NativeError && e.code === 'EBADFD') {
        const name = setIff(target.fd, tapName, { vnetHdr: offload });
        return { fd: target.fd, name, vnetHdr: offload, offloads: offload ? enableOffloads(target.fd) : 0 };
      }
      if (e instanceof NativeError && e.code === 'EBADF') {
        throw new PrereqError(`<target>: fd ${target.fd} is not open (EBADF) (--netns-type=tapfd needs an inherited TAP fd)`);
      }
      throw e;
    }
  }
  checkTunAccess();
  const fd = await takeTunFdFrom(target);
  try {
    const name = setIff(fd, tapName, { vnetHdr: offload });
    if (precreated) setPersist(fd, false);
    return { fd, name, vnetHdr: offload, offloads: offload ? enableOffloads(fd) : 0 };
  } catch (e) {
    closeFd(fd);
    if (e instanceof NativeError && e.code === 'EPERM') {
      throw new PrereqError(
        `${tapName}: creating it was refused (EPERM) (run tsnet as the owner of the target's user namespace, or pass its --userns-path)`,
      );
    }
    if (e instanceof NativeError && e.code === 'EBUSY') {
      throw new PrereqError(`${tapName}: already attached to another process (EBUSY) (pick another TAP name)`);
    }
    throw e;
  }
}
