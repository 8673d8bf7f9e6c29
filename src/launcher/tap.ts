// Getting the TAP device's fd into tsnet, rootless and without a compiled
// helper:
//   1. spawn `nsenter <target's user+net ns> sh -c 'exec 3<>/dev/net/tun; echo ok; read go; exec ip -batch -'`
//      — the tun driver binds the fd to the netns it was opened in;
//   2. pidfd_open(opener) + pidfd_getfd(pidfd, 3): now we hold that fd;
//   3. TUNSETIFF from here (the owner of a user namespace has CAP_NET_ADMIN
//      in it): makeTap makes the device under a temporary name and hands the
//      helper the `ip` lines that configure it and rename it (one helper for
//      the whole job); openTap attaches to a device that exists and ends the
//      helper at once (its stdin closes, it exits).
// With --netns-type=tapfd the fd is inherited and only checked (TUNGETIFF),
// or attached with TUNSETIFF when the parent passed a bare /dev/net/tun fd.

import fs from 'node:fs';
import net from 'node:net';
import {
  closeFd,
  getIff,
  IFF_VNET_HDR,
  NativeError,
  onPidExit,
  pidfdGetfd,
  pidfdOpen,
  reap,
  setIff,
  setOffload,
  setPersist,
  spawnPiped,
  type Spawned,
  TUN_F_CSUM,
  TUN_F_TSO4,
  TUN_F_TSO6,
  TUN_F_TSO_ECN,
  TUN_F_USO4,
  TUN_F_USO6,
} from '../../native/index.js';
import { PrereqError } from './errors.js';
import { creationCommands, deleteLink, ipOutcome } from './configure.js';
import type { StackConfig } from '../stack/config.js';
import { nsenterArgs, type Target } from './target.js';

// Told "go" on its stdin, the same process runs `ip -batch -` on the rest
// (without the tun fd); at end of input it just exits.
const OPENER_SCRIPT = 'exec 3<>/dev/net/tun || exit 97; echo ok; read go || exit 0; exec ip -batch - 3>&-';
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

/** The opener, started inside the target's namespaces, holding /dev/net/tun open as its fd 3. */
interface Opener {
  /** Our copy of its fd 3 (pidfd_getfd). */
  fd: number;
  /**
   * Ends the helper: with `batch`, the same process first runs `ip -batch -`
   * on those lines (as whoever it entered as). Resolves once it has exited
   * and its pipes are closed, with ip's exit code and its stderr (0 and ''
   * without a batch). Bounded: a wedged helper is not waited for.
   */
  finish(batch?: string[]): Promise<{ code: number | null; stderr: string }>;
}

/**
 * The opener's process (posix_spawn: native/spawn.ts, no fork of tsnet),
 * its stdio as Node streams; `closed` resolves with its exit code once it
 * has exited, been reaped and its stdout and stderr are closed.
 */
function spawnHelper(args: string[]) {
  let h: Spawned;
  try {
    h = spawnPiped('nsenter', ['nsenter', ...args]);
  } catch (e) {
    if (e instanceof NativeError && e.code === 'ENOENT') throw new PrereqError('nsenter: not found (ENOENT) (install util-linux: apt-get install util-linux)');
    throw e;
  }
  const stdin = new net.Socket({ fd: h.stdin, readable: false, writable: true });
  const stdout = new net.Socket({ fd: h.stdout, readable: true, writable: false });
  const stderr = new net.Socket({ fd: h.stderr, readable: true, writable: false });
  stdin.on('error', () => {}); // the helper may exit before reading everything
  const closedStream = (s: net.Socket) => new Promise<void>((resolve) => (s.destroyed ? resolve() : s.once('close', () => resolve())));
  const exited = new Promise<number>((resolve) => onPidExit(h.pid, () => resolve(reap(h.pid) ?? -1)));
  const closed = exited.then(async (code) => {
    await Promise.all([closedStream(stdout), closedStream(stderr)]);
    return code;
  });
  return { pid: h.pid, stdin, stdout, stderr, exited, closed };
}

/** Runs the opener inside the target's namespaces and takes its fd 3. */
async function startOpener(target: Target): Promise<Opener> {
  const child = spawnHelper([...nsenterArgs(target), '--', 'sh', '-c', OPENER_SCRIPT]);
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const finish = async (batch?: string[]) => {
    const before = stderr.length;
    if (batch) child.stdin.end(`go\n${batch.join('\n')}\n`);
    else child.stdin.end();
    child.stdout.destroy();
    let timer: NodeJS.Timeout | undefined;
    const code = await Promise.race([child.closed, new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), batch ? OPENER_TIMEOUT_MS : 2000)))]);
    clearTimeout(timer);
    return { code: batch ? code : 0, stderr: stderr.slice(before) };
  };
  try {
    await new Promise<void>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new PrereqError('nsenter: timed out opening /dev/net/tun in the target namespace (a loaded machine? `tsnet doctor` checks the prerequisites)')), OPENER_TIMEOUT_MS);
      child.stdout.setEncoding('utf8').on('data', (d: string) => {
        out += d;
        if (out.includes('ok\n')) {
          clearTimeout(timer);
          resolve();
        }
      });
      void child.exited.then((code) => {
        clearTimeout(timer);
        const why = stderr.trim().split('\n').pop() ?? '';
        if (code === 97) {
          reject(new PrereqError(`/dev/net/tun: cannot open it inside the target namespace: ${why || 'permission denied'} (it must be mode 0666: sudo chmod 0666 /dev/net/tun)`));
        } else {
          reject(new PrereqError(`<target>: cannot enter its namespaces: ${why || `nsenter exited with ${code}`} (run tsnet as the owner of the target's user namespace)`));
        }
      });
    });
    const pidfd = pidfdOpen(child.pid);
    try {
      return { fd: pidfdGetfd(pidfd, 3), finish };
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
  } catch (e) {
    await finish();
    throw e;
  }
}

/** The opener's fd alone: the helper is ended at once. */
async function takeTunFdFrom(target: Target): Promise<number> {
  const opener = await startOpener(target);
  await opener.finish();
  return opener.fd;
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
 * Whether one helper can both hold the tun fd and run ip: it enters as we
 * are (pidfd_getfd needs that), so it must be who ip has to be there —
 * always, unless our uid maps to someone other than root in the target's
 * user namespace (podman's keep-id), where ip runs as its root instead.
 */
export function oneHelperWillDo(target: Target): boolean {
  return target.type !== 'tapfd' && nsenterArgs(target, true).join('\0') === nsenterArgs(target).join('\0');
}

/**
 * `tapName` made, configured (given cfg, as creationCommands says) and
 * attached, with one helper: TUNSETIFF on the fd we took makes a device
 * under a temporary name — ours alone, not persistent, so it goes when our
 * fd closes, whatever fails later — and the same helper's `ip -batch -`
 * configures it, renames it to tapName and routes it, so that it never
 * shows half-configured under its name. One nsenter instead of two: ~20 ms
 * of start-up. Undefined when a device called tapName exists already (the
 * rename says so): the caller attaches to that one instead.
 */
export async function makeTap(target: Target, tapName: string, cfg: StackConfig | undefined, offload: boolean): Promise<OpenedTap | undefined> {
  checkTunAccess();
  const tmp = `tsn${process.pid}`;
  const opener = await startOpener(target);
  const { fd } = opener;
  let finished = false;
  let keep = false;
  try {
    let offloads = 0;
    try {
      setIff(fd, tmp, { vnetHdr: offload });
      if (offload) offloads = enableOffloads(fd);
    } catch (e) {
      if (e instanceof NativeError && e.code === 'EPERM') {
        throw new PrereqError(`${tapName}: creating it was refused (EPERM) (run tsnet as the owner of the target's user namespace, or pass its --userns-path)`);
      }
      throw e;
    }
    const made = creationCommands(tapName, tmp, cfg);
    // Its first line (tuntap add) is what TUNSETIFF just did. Configured and
    // brought up with its carrier off, then given carrier, the device goes
    // through the states it would if it were attached last (a link event;
    // operstate UP, not UNKNOWN), as a device the launcher made does.
    const cmds = cfg ? [`link set ${tmp} carrier off`, ...made.cmds.slice(1), `link set ${tapName} carrier on`] : [`link set ${tmp} name ${tapName}`];
    const renamedAt = cfg ? made.renamedAt : 1;
    const { code, stderr } = await opener.finish(cmds);
    finished = true;
    const r = code === null ? { ok: false, failedAt: undefined, why: 'ip did not finish in time' } : ipOutcome(code, stderr);
    if (r.ok) {
      keep = true;
      return { fd, name: tapName, vnetHdr: offload, offloads };
    }
    if (r.failedAt === renamedAt && /exists/i.test(r.why)) return undefined;
    throw new PrereqError(`configuring ${tapName} failed: ${r.why}`);
  } finally {
    if (!keep) closeFd(fd); // the device goes with it, under either name
    if (!finished) await opener.finish();
  }
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
