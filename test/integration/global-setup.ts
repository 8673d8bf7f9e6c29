// Integration tests run tsnet the way users do: as an unprivileged user, from
// the built package. When the suite runs as root (CI does), a test user is
// created, /dev/net/tun is opened up to mode 0666 as distributions ship it,
// and the built package (package.json, dist, node_modules) is staged in a
// temp directory that user can read — CI's clone may sit under /root.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';

export const TEST_USER = 'tsnet-test';

declare module 'vitest' {
  export interface ProvidedContext {
    stageDir: string;
    runAs: { uid: number; gid: number } | null;
    integrationSkip: string;
  }
}

function userIds(name: string): { uid: number; gid: number } {
  const uid = Number(execFileSync('id', ['-u', name], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', name], { encoding: 'utf8' }).trim());
  return { uid, gid };
}

function tunUsableByOthers(): boolean {
  try {
    const st = fs.statSync('/dev/net/tun');
    return (st.mode & 0o006) === 0o006;
  } catch {
    return false;
  }
}

export default function setup(project: TestProject): () => void {
  const root = fileURLToPath(new URL('../..', import.meta.url));
  let skip = '';
  let runAs: { uid: number; gid: number } | null = null;
  if (!fs.existsSync(path.join(root, 'dist/src/cli/main.js'))) skip = 'dist/ is missing: run `npm run build` (npm test does)';
  if (process.getuid!() === 0) {
    try {
      execFileSync('id', ['-u', TEST_USER], { stdio: 'ignore' });
    } catch {
      execFileSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', TEST_USER]);
    }
    runAs = userIds(TEST_USER);
    if (!tunUsableByOthers() && fs.existsSync('/dev/net/tun')) fs.chmodSync('/dev/net/tun', 0o666);
  } else {
    try {
      fs.accessSync('/dev/net/tun', fs.constants.R_OK | fs.constants.W_OK);
    } catch {
      skip ||= '/dev/net/tun is not readable and writable by this user (chmod 0666 /dev/net/tun)';
    }
  }
  const stage = fs.mkdtempSync(path.join(os.tmpdir(), 'tsnet-stage-'));
  fs.chmodSync(stage, 0o755);
  if (!skip) {
    fs.copyFileSync(path.join(root, 'package.json'), path.join(stage, 'package.json'));
    execFileSync('cp', ['-a', path.join(root, 'dist'), path.join(root, 'node_modules'), path.join(root, 'test/integration/guest'), stage]);
    execFileSync('chmod', ['-R', 'a+rX', stage]);
  }
  project.provide('stageDir', stage);
  project.provide('runAs', runAs);
  project.provide('integrationSkip', skip);
  return () => {
    fs.rmSync(stage, { recursive: true, force: true });
  };
}
