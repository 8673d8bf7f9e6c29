// Naming the namespace tsnet attaches to, and turning it into nsenter
// arguments. Three forms, as in slirp4netns:
//   pid   — the target process's user and network namespaces (/proc/PID/ns/*)
//   path  — a network namespace file (e.g. podman's /run/.../netns/netns-UUID),
//           plus the user namespace from --userns-path when given
//   tapfd — an already-open TAP file descriptor inherited from the parent
// The user namespace is only joined when it differs from ours (setns into
// one's own user namespace fails with EINVAL).

import fs from 'node:fs';
import { PrereqError } from './errors.js';

export type NetnsType = 'pid' | 'path' | 'tapfd';

export type Target =
  | { type: 'pid'; pid: number }
  | { type: 'path'; netnsPath: string; usernsPath?: string }
  | { type: 'tapfd'; fd: number };

export function parseTarget(arg: string, netnsType: NetnsType, usernsPath?: string): Target {
  switch (netnsType) {
    case 'pid': {
      if (!/^\d+$/.test(arg) || Number(arg) < 1) {
        throw new PrereqError(`target "${arg}" is not a PID; use --netns-type=path for a namespace file`);
      }
      if (usernsPath !== undefined) {
        throw new PrereqError('--userns-path requires --netns-type=path');
      }
      return { type: 'pid', pid: Number(arg) };
    }
    case 'path':
      return { type: 'path', netnsPath: arg, usernsPath };
    case 'tapfd': {
      if (!/^\d+$/.test(arg)) throw new PrereqError(`target "${arg}" is not a file descriptor number (--netns-type=tapfd)`);
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
      throw new PrereqError(`target process ${t.pid} does not exist (ESRCH): start the container process first, or pass its current PID`);
    }
    if (nsId(`/proc/${t.pid}/ns/net`) === undefined) {
      throw new PrereqError(
        `cannot read /proc/${t.pid}/ns/net (EACCES): process ${t.pid} belongs to another user; run tsnet as the user who owns it`,
      );
    }
  } else if (t.type === 'path') {
    if (!fs.existsSync(t.netnsPath)) {
      throw new PrereqError(`network namespace ${t.netnsPath} does not exist (ENOENT)`);
    }
    if (t.usernsPath !== undefined && !fs.existsSync(t.usernsPath)) {
      throw new PrereqError(`user namespace ${t.usernsPath} does not exist (ENOENT)`);
    }
  }
}

/** nsenter arguments that enter the target's network (and, if different, user) namespace. */
export function nsenterArgs(t: Target): string[] {
  const self = nsId('/proc/self/ns/user');
  if (t.type === 'pid') {
    const args = ['--target', String(t.pid), '--net'];
    if (nsId(`/proc/${t.pid}/ns/user`) !== self) args.unshift('--preserve-credentials', '--user');
    return args;
  }
  if (t.type === 'path') {
    const args = [`--net=${t.netnsPath}`];
    if (t.usernsPath !== undefined && nsId(t.usernsPath) !== self) {
      args.unshift('--preserve-credentials', `--user=${t.usernsPath}`);
    }
    return args;
  }
  throw new Error('a tapfd target has no namespace to enter');
}
