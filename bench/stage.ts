// Running tsnet the rootless way from a root shell (CI, `npm run bench` as
// root): an unprivileged user to run as, /dev/net/tun opened up to 0666 as
// distributions ship it, and a staged copy of the built package in a temp
// directory that user can read (the clone may sit under /root). Shared by
// the integration tests' global setup and the benchmark.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const TEST_USER = 'tsnet-test';

export interface RunAs {
  uid: number;
  gid: number;
}

/** When root: ensures the unprivileged user exists and returns its ids; otherwise null (run as ourselves). */
export function unprivilegedUser(): RunAs | null {
  if (process.getuid!() !== 0) return null;
  try {
    execFileSync('id', ['-u', TEST_USER], { stdio: 'ignore' });
  } catch {
    execFileSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', TEST_USER]);
  }
  const id = (flag: string) => Number(execFileSync('id', [flag, TEST_USER], { encoding: 'utf8' }).trim());
  return { uid: id('-u'), gid: id('-g') };
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
