// Naming the namespace tsnet attaches to, and turning it into nsenter
// arguments. Three forms, as in slirp4netns:
//   pid   — the target process's network namespace (/proc/PID/ns/net) and its
//           user namespace, or the one --userns-path names (as slirp4netns)
//   path  — a network namespace file (e.g. podman's /run/.../netns/netns-UUID),
//           plus the user namespace from --userns-path when given
//   tapfd — an already-open TAP file descriptor inherited from the parent
// The user namespace is only joined when it differs from ours (setns into
// one's own user namespace fails with EINVAL).
//
// Who a helper is inside that user namespace matters for what it may exec:
// setns grants the joiner every capability there, but execve keeps them only
// for uid 0. `unshare -r` maps the caller to 0, so keeping our credentials is
// enough (and is all a namespace with setgroups "deny" allows); podman's
// --userns=keep-id and --uidmap map the caller elsewhere, so a helper that
// must hold CAP_NET_ADMIN (ip) becomes uid/gid 0 there, as slirp4netns's
// in-process configuration effectively is.

import fs from 'node:fs';
import { parseUidMap } from '../../native/index.js';
import { PrereqError } from './errors.js';

export type NetnsType = 'pid' | 'path' | 'tapfd';

export type Target =
  | { type: 'pid'; pid: number; usernsPath?: string }
  | { type: 'path'; netnsPath: string; usernsPath?: string }
  | { type: 'tapfd'; fd: number };

export function parseTarget(arg: string, netnsType: NetnsType, usernsPath?: string): Target {
  switch (netnsType) {
    case 'pid': {
      if (!/^\d+$/.test(arg) || Number(arg) < 1) {
        throw new PrereqError(`<target>: "${arg}" is not a PID (use --netns-type=path for a namespace file)`);
      }
      return { type: 'pid', pid: Number(arg), usernsPath };
    }
    case 'path':
      return { type: 'path', netnsPath: arg, usernsPath };
    case 'tapfd': {
      if (!/^\d+$/.test(arg)) throw new PrereqError(`<target>: "${arg}" is not a file descriptor number (--netns-type=tapfd takes an inherited TAP fd)`);
      return { type: 'tapfd', fd: Number(arg) };
    }
  }
}

function nsId(path: string): string | undefined {
  try {
    return fs.readlinkSync(path);
  } catch {
    return undefined;
  }
}

/** Checks the target exists and is reachable; throws PrereqError naming the cause and a fix. */
export function checkTarget(t: Target): void {
  if (t.type === 'pid') {
    if (!fs.existsSync(`/proc/${t.pid}`)) {
      throw new PrereqError(`<target>: process ${t.pid} does not exist (ESRCH) (start the container process first, or pass its current PID)`);
    }
    if (nsId(`/proc/${t.pid}/ns/net`) === undefined) {
      throw new PrereqError(
        `<target>: cannot read /proc/${t.pid}/ns/net (EACCES): process ${t.pid} belongs to another user (run tsnet as the user who owns it)`,
      );
    }
    if (t.usernsPath !== undefined && !fs.existsSync(t.usernsPath)) {
      throw new PrereqError(`--userns-path: ${JSON.stringify(t.usernsPath)} does not exist (ENOENT) (name a user namespace file, e.g. /proc/PID/ns/user)`);
    }
  } else if (t.type === 'path') {
    if (!fs.existsSync(t.netnsPath)) {
      throw new PrereqError(`<target>: network namespace ${JSON.stringify(t.netnsPath)} does not exist (ENOENT) (name a namespace file, e.g. /proc/PID/ns/net)`);
    }
    if (t.usernsPath !== undefined && !fs.existsSync(t.usernsPath)) {
      throw new PrereqError(`--userns-path: ${JSON.stringify(t.usernsPath)} does not exist (ENOENT) (name a user namespace file, e.g. /proc/PID/ns/user)`);
    }
  }
}

/** The user namespace file a target names: --userns-path, else the target process's own. */
function usernsOf(t: Target): string | undefined {
  if (t.type === 'tapfd') return undefined;
  if (t.usernsPath !== undefined) return t.usernsPath;
  return t.type === 'pid' ? `/proc/${t.pid}/ns/user` : undefined;
}

/**
 * Whether our effective uid is uid 0 inside the user namespace `userns`
 * (a /proc/N/ns/user path): read from /proc/N/uid_map, whose outside column
 * is in our own namespace's terms. undefined when it cannot be told (a
 * namespace held by a bind mount, or a map we may not read).
 */
export function mapsUsToRoot(userns: string, euid = process.geteuid?.() ?? 0): boolean | undefined {
  const m = /^\/proc\/(\d+)\/ns\/user$/.exec(userns);
  if (!m) return undefined;
  let map: string;
  try {
    map = fs.readFileSync(`/proc/${m[1]}/uid_map`, 'utf8');
  } catch {
    return undefined;
  }
  const row = parseUidMap(map).find((r) => euid >= r.outside && euid < r.outside + r.count);
  return row !== undefined && row.inside + (euid - row.outside) === 0;
}


/**
 * nsenter arguments that enter the target's network (and, if different, user)
 * namespace. `asRoot`: the helper will exec something that needs
 * capabilities there (see the header) — become uid/gid 0 unless we already
 * are uid 0 inside it (or it cannot be told, where keeping credentials is
 * what works for the common rootless case).
 */
export function nsenterArgs(t: Target, asRoot = false): string[] {
  if (t.type === 'tapfd') throw new Error('a tapfd target has no namespace to enter');
  const self = nsId('/proc/self/ns/user');
  const userns = usernsOf(t);
  const args = t.type === 'pid' ? ['--target', String(t.pid), '--net'] : [`--net=${t.netnsPath}`];
  if (userns !== undefined && nsId(userns) !== self) {
    const join = t.usernsPath !== undefined ? `--user=${t.usernsPath}` : '--user';
    const creds = asRoot && mapsUsToRoot(userns) === false ? ['--setuid', '0', '--setgid', '0'] : ['--preserve-credentials'];
    args.unshift(...creds, join);
  }
  return args;
}

/**
 * For --enable-sandbox (src/cli/sandbox.sh's arguments): the target's user
 * namespace when it is not ours, and whether to join it keeping our
 * credentials or as its root; an empty path when there is none to join.
 */
export function sandboxUserns(t: Target): { userns: string; creds: 'keep' | 'root' } {
  const userns = usernsOf(t);
  if (userns === undefined || nsId(userns) === nsId('/proc/self/ns/user')) return { userns: '', creds: 'keep' };
  return { userns, creds: mapsUsToRoot(userns) === false ? 'root' : 'keep' };
}
