// Running tsnet the rootless way from a root shell (CI, `npm run bench` as
// root): an unprivileged user to run as (with a subordinate uid/gid range,
// which rootlesskit, podman and `tsnet run --map-auto` need), /dev/net/tun
// opened up to 0666 as distributions ship it, and a staged copy of the built
// package in a temp directory that user can read (the clone may sit under
// /root or in a mode 0700 directory; test/support/proc.ts starts the user's
// processes in / for the same reason). Shared by the integration tests'
// global setup and the benchmark.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const TEST_USER = 'tsnet-test';

export interface RunAs {
  uid: number;
  gid: number;
}

/**
 * When root: ensures the unprivileged user exists and has a subordinate
 * uid/gid range, and returns its ids; otherwise null (run as ourselves).
 */
export function unprivilegedUser(): RunAs | null {
  if (process.getuid!() !== 0) return null;
  try {
    execFileSync('id', ['-u', TEST_USER], { stdio: 'ignore' });
  } catch {
    execFileSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', TEST_USER]);
  }
  ensureSubordinateIds(TEST_USER);
  const id = (flag: string) => Number(execFileSync('id', [flag, TEST_USER], { encoding: 'utf8' }).trim());
  return { uid: id('-u'), gid: id('-g') };
}

const SUBID_FILES = { uid: '/etc/subuid', gid: '/etc/subgid' } as const;
const SUBID_COUNT = 65536;

/** The `name:start:count` ranges of a subordinate id file (none when it does not exist). */
function subordinateRanges(file: string): Array<{ owner: string; start: number; count: number }> {
  let text = '';
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .map((l) => l.trim().split(':'))
    .filter((f) => f.length === 3 && /^\d+$/.test(f[1]!) && /^\d+$/.test(f[2]!))
    .map((f) => ({ owner: f[0]!, start: Number(f[1]), count: Number(f[2]) }));
}

/**
 * As root: gives user a subordinate uid and gid range (65536 ids, the same
 * numbers in both files) unless it has one, starting at 300000 or past
 * every range already given to anyone. Returns the ranges added ('' when none).
 */
export function ensureSubordinateIds(user: string): string {
  const uid = execFileSync('id', ['-u', user], { encoding: 'utf8' }).trim();
  const all = [...subordinateRanges(SUBID_FILES.uid), ...subordinateRanges(SUBID_FILES.gid)];
  const missing = (Object.keys(SUBID_FILES) as Array<keyof typeof SUBID_FILES>).filter(
    (k) => !subordinateRanges(SUBID_FILES[k]).some((r) => r.owner === user || r.owner === uid),
  );
  if (missing.length === 0) return '';
  let start = 300_000;
  for (let moved = true; moved; ) {
    moved = false;
    for (const r of all) {
      if (start < r.start + r.count && r.start < start + SUBID_COUNT) {
        start = Math.ceil((r.start + r.count) / SUBID_COUNT) * SUBID_COUNT;
        moved = true;
      }
    }
  }
  const range = `${start}-${start + SUBID_COUNT - 1}`;
  const args: string[] = [];
  for (const k of missing) {
    // usermod refuses to add a range when the file does not exist yet.
    if (!fs.existsSync(SUBID_FILES[k])) fs.writeFileSync(SUBID_FILES[k], '', { mode: 0o644 });
    args.push(k === 'uid' ? '--add-subuids' : '--add-subgids', range);
  }
  execFileSync('usermod', [...args, user]);
  return missing.map((k) => `sub${k} ${range}`).join(', ');
}

/** Why /dev/net/tun is unusable for rootless tsnet, or '' when it is fine (as root: fixes the mode). */
export function prepareTun(): string {
  if (!fs.existsSync('/dev/net/tun')) return '/dev/net/tun does not exist (modprobe tun)';
  if (process.getuid!() === 0) {
    if ((fs.statSync('/dev/net/tun').mode & 0o006) !== 0o006) fs.chmodSync('/dev/net/tun', 0o666);
    return '';
  }
  try {
    fs.accessSync('/dev/net/tun', fs.constants.R_OK | fs.constants.W_OK);
    return '';
  } catch {
    return '/dev/net/tun is not readable and writable by this user (chmod 0666 /dev/net/tun)';
  }
}

/** Copies package.json, dist/, node_modules/ and `extra` dirs of the repo at root into a world-readable temp dir. */
export function stagePackage(root: string, extra: string[] = []): string {
  const stage = fs.mkdtempSync(path.join(os.tmpdir(), 'tsnet-stage-'));
  fs.chmodSync(stage, 0o755);
  fs.copyFileSync(path.join(root, 'package.json'), path.join(stage, 'package.json'));
  execFileSync('cp', ['-a', path.join(root, 'dist'), path.join(root, 'node_modules'), ...extra.map((e) => path.join(root, e)), stage]);
  execFileSync('chmod', ['-R', 'a+rX', stage]);
  return stage;
}
