// slirp4netns's own test suite (its tests/ directory, GPL-2.0-or-later, kept
// outside this repository and run from where it lies) against tsnet's
// slirp4netns bin: each test-slirp4netns-*.sh runs as the unprivileged test
// user with the drop-in first on PATH, in its own working directory, and
// must exit 0 (77 = the script's own skip). The suite is found through
// TSNET_SLIRP4NETNS_TESTS, else a `shared/third-party/slirp4netns-tests`
// beside an ancestor of this checkout; without it this file is skipped.
//
// Two scripts source `$(dirname $0)/../tests/common.sh`, so they run through a
// `tests/` directory of symbolic links to the suite's files (nothing copied).

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { integrationSkip, runAs, spawnAs, stageDir, userTempDir } from './harness.js';

function findSuite(): string | undefined {
  const env = process.env.TSNET_SLIRP4NETNS_TESTS;
  if (env) return env;
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const cand = path.join(dir, 'shared/third-party/slirp4netns-tests');
    if (fs.existsSync(path.join(cand, 'common.sh'))) return cand;
    const up = path.dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  const fixed = '/work/shared/third-party/slirp4netns-tests';
  return fs.existsSync(path.join(fixed, 'common.sh')) ? fixed : undefined;
}

const suite = findSuite();
const scripts = suite ? fs.readdirSync(suite).filter((f) => /^test-slirp4netns-.*\.sh$/.test(f)).sort() : [];

/** Scripts tsnet does not pass yet, and why (each is an `it.fails`: it turns red once fixed, so the entry goes). */
const KNOWN_GAPS: Record<string, string> = {
};

/**
 * Scripts whose own cleanup races (upstream, with slirp4netns too): exit 1
 * from the second cleanup is no failure of the drop-in when the trace
 * (set -x) shows the script reached its own cleanup call after its check.
 */
const RACY_CLEANUP: Record<string, string> = {
  // It calls cleanup (kill -9 of its jobs) itself after its check passed, and
  // again from its EXIT trap: when bash has reaped the killed jobs by then,
  // the second kill fails and, under set -e, the script exits 1. A failed
  // check exits before the first call, so the trace holds one "+ cleanup".
  'test-slirp4netns-macaddress': 'kill -9 of already-reaped jobs in the EXIT trap',
};

/** Exit 1 of a RACY_CLEANUP script that came from its second cleanup, after everything it checks passed. */
function racyCleanupOnly(out: string): boolean {
  return (out.match(/^\+ cleanup$/gm) ?? []).length >= 2 && /No such process\s*$/.test(out.trimEnd() + '\n');
}

/**
 * Runs one script as the test user in a process group of its own. A script
 * that fails before it sets its cleanup trap leaves its background jobs (the
 * namespace's sleep, the slirp4netns under test) behind: when bash exits,
 * the rest of its group — our bash's PID is the group's id — is killed.
 */
function runScript(file: string, cwd: string, env: NodeJS.ProcessEnv, timeoutMs = 150_000): Promise<{ code: number | null; out: string }> {
  const child = spawnAs('bash', [file], { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d));
  const killGroup = () => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // the group is already empty
    }
  };
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      out += `\n(timed out after ${timeoutMs} ms)`;
      killGroup();
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      killGroup();
      // Output still buffered in the pipes arrives once the group is gone.
      child.on('close', () => resolve({ code, out }));
    });
  });
}

describe.skipIf(integrationSkip !== '' || runAs === null || suite === undefined)("slirp4netns's own test suite against the drop-in", () => {
  let root = '';
  let bin = '';
  let tests = '';

  beforeAll(() => {
    root = userTempDir('tsnet-s4suite-');
    bin = path.join(root, 'bin');
    tests = path.join(root, 'tests');
    fs.mkdirSync(bin, { mode: 0o755 });
    fs.mkdirSync(tests, { mode: 0o755 });
    fs.symlinkSync(path.join(stageDir, 'dist/src/cli/slirp4netns'), path.join(bin, 'slirp4netns'));
    for (const f of fs.readdirSync(suite!)) fs.symlinkSync(path.join(suite!, f), path.join(tests, f));
  });

  afterAll(() => {
    if (root) fs.rmSync(root, { recursive: true, force: true });
  });

  it('has the 14 scripts it was handed', () => {
    expect(scripts).toHaveLength(14);
  });

  for (const script of scripts) {
    const name = script.replace(/\.sh$/, '');
    const gap = KNOWN_GAPS[name];
    (gap ? it.fails : it)(gap ? `${name} (known gap: ${gap})` : name, async () => {
      const cwd = userTempDir(`tsnet-${name}-`);
      try {
        const env = {
          PATH: [bin, path.dirname(process.execPath), '/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'].join(':'),
          HOME: cwd,
          LANG: 'C.UTF-8',
        };
        const r = await runScript(path.join(tests, script), cwd, env);
        if (r.code === 1 && RACY_CLEANUP[name] && racyCleanupOnly(r.out)) {
          console.log(`${name} exited 1 from its second cleanup after its checks passed (${RACY_CLEANUP[name]})`);
          r.code = 0;
        }
        const tail = r.out.split('\n').slice(-60).join('\n');
        expect([0, 77], `${script} exited ${r.code}:\n${tail}`).toContain(r.code);
      } finally {
        fs.rmSync(cwd, { recursive: true, force: true });
      }
    }, 160_000);
  }
});
