// Helpers for integration tests: run commands as the unprivileged test user,
// create rootless namespaces (unshare -Urn) and run tools inside them, start
// tsnet from the staged package, and clean up every process by its own PID.

import type { ChildProcess, SpawnOptions } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, afterEach, beforeEach, inject } from 'vitest';
import { collect, killAll, run as runProc, spawnAs as spawnProc, waitFor, type RunResult } from '../support/proc.js';

export { collect, killAll, waitFor, type RunResult };

export const stageDir = inject('stageDir');
export const runAs = inject('runAs');
export const integrationSkip = inject('integrationSkip');
/** The command users run (src/cli/tsnet.sh, which starts main.cjs). */
export const tsnetMain = path.join(stageDir, 'dist/src/cli/tsnet');
/** The guest-side test client (test/integration/guest/guest.py), readable by the test user. */
export const guestPy = path.join(stageDir, 'guest/guest.py');

export function spawnAs(cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
  return spawnProc(runAs, cmd, args, opts);
}

export function runAsUser(cmd: string, args: string[], opts: SpawnOptions & { input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return runProc(runAs, cmd, args, opts);
}

/** A rootless user+net namespace held open by `sleep`, created as the test user. */
export class Netns {
  private constructor(readonly proc: ChildProcess) {}

  get pid(): number {
    return this.proc.pid!;
  }

  /** `unshareArgs`: how the user namespace is made (`--map-auto --map-root-user` for a subordinate range). */
  static async create(unshareArgs = ['-Ur']): Promise<Netns> {
    const proc = spawnAs('unshare', [...unshareArgs, '-n', 'sleep', '1000'], { stdio: 'ignore' });
    const ns = new Netns(proc);
    // unshare execs sleep once the namespaces exist and the maps are written.
    await waitFor(() => {
      try {
        return fs.readFileSync(`/proc/${proc.pid}/comm`, 'utf8').trim() === 'sleep';
      } catch {
        return false;
      }
    }, 5000, `unshare ${unshareArgs.join(' ')} -n to exec sleep`);
    return ns;
  }

  /** Runs a command inside the namespace (as the namespace's root). */
  exec(args: string[], timeoutMs = 20_000): Promise<RunResult> {
    return runAsUser('nsenter', ['--preserve-credentials', '-U', '-n', '-t', String(this.pid), ...args], { timeoutMs });
  }

  /**
   * Waits until tap0 has a global fd00:: address (SLAAC from tsnet's router
   * advertisement) out of duplicate address detection, so it can be used.
   */
  async ipv6Ready(timeoutMs = 10_000): Promise<void> {
    await waitFor(
      async () => /inet6 fd00::[0-9a-f:]+\/64 scope global(?![^\n]*tentative)/.test((await this.exec(['ip', '-6', 'addr', 'show', 'dev', 'tap0'])).stdout),
      timeoutMs,
      'a global fd00:: address on tap0',
    );
  }

  /** Runs guest.py inside the namespace; resolves with its trimmed stdout (rejects on failure). */
  async guest(args: string[], timeoutMs = 60_000): Promise<string> {
    const r = await this.exec(['/usr/bin/python3', guestPy, ...args], timeoutMs);
    if (r.code !== 0) throw new Error(`guest.py ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
    return r.stdout.trim();
  }

  /** Starts a guest.py server inside the namespace; resolves once it says "listening". */
  async serve(args: string[]): Promise<{ proc: ChildProcess; lines: AsyncIterator<string> }> {
    const proc = spawnAs('nsenter', ['--preserve-credentials', '-U', '-n', '-t', String(this.pid), '/usr/bin/python3', guestPy, ...args], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const lines = createInterface({ input: proc.stdout! })[Symbol.asyncIterator]();
    const first = (await lines.next()).value;
    if (first !== 'listening') throw new Error(`guest.py ${args.join(' ')} did not start: ${String(first)}`);
    return { proc, lines };
  }

  async destroy(): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      const exited = new Promise((r) => this.proc.once('exit', r));
      this.proc.kill('SIGKILL');
      await exited;
    }
  }
}

export interface Tsnet {
  proc: ChildProcess;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Starts `tsnet <args>` as the test user. extraFds become fds 3, 4, ... of
 * the child (pass 'pipe' for a ready/exit pipe).
 */
export function startTsnet(args: string[], extraFds: Array<'pipe' | 'ignore' | number> = [], env?: NodeJS.ProcessEnv): Tsnet {
  // Run as a user would: the file itself (its #! line carries tsnet's V8 flags).
  const proc = spawnAs(tsnetMain, args, { stdio: ['ignore', 'pipe', 'pipe', ...extraFds], env });
  let err = '';
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.on('exit', (code, signal) => resolve({ code, signal })),
  );
  return { proc, stderr: () => err, exited };
}

/** Resolves with what tsnet wrote to its ready fd (fd 3 when extraFds[0] is 'pipe'). */
export function readyFrom(t: Tsnet, fdIndex = 3, timeoutMs = 15_000): Promise<string> {
  const stream = t.proc.stdio[fdIndex] as NodeJS.ReadableStream;
  return new Promise((resolve, reject) => {
    let data = '';
    const timer = setTimeout(() => reject(new Error(`tsnet not ready after ${timeoutMs} ms: ${t.stderr()}`)), timeoutMs);
    stream.setEncoding('utf8');
    stream.on('data', (d: string) => (data += d));
    stream.on('end', () => {
      clearTimeout(timer);
      resolve(data);
    });
    void t.exited.then(({ code }) => {
      clearTimeout(timer);
      if (data === '') reject(new Error(`tsnet exited (${code}) before ready: ${t.stderr()}`));
    });
  });
}

/** Stops a tsnet by its PID with SIGTERM (SIGKILL after a grace period). */
export async function stopTsnet(t: Tsnet, graceMs = 5000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (t.proc.exitCode !== null || t.proc.signalCode !== null) return t.exited;
  t.proc.kill('SIGTERM');
  const timer = setTimeout(() => t.proc.kill('SIGKILL'), graceMs);
  const r = await t.exited;
  clearTimeout(timer);
  return r;
}

/**
 * Asks a running tsnet for its counters: SIGUSR1 → one log line on stderr,
 * `tsnet: stats counters={json}` (text) or `{..."msg":"stats","counters":{json}}` (--log-format json).
 */
export async function statsOf(t: Tsnet): Promise<Record<string, any>> {
  const before = t.stderr().length;
  t.proc.kill('SIGUSR1');
  let line: string | undefined;
  await waitFor(() => {
    const out = t.stderr().slice(before);
    line = /^tsnet: stats counters=(.*)$/m.exec(out)?.[1];
    const json = /^\{.*"msg":"stats".*\}$/m.exec(out)?.[0];
    if (line === undefined && json !== undefined) line = JSON.stringify((JSON.parse(json) as { counters: unknown }).counters);
    return line !== undefined;
  }, 5000, 'tsnet stats on SIGUSR1');
  return JSON.parse(line!);
}

/** GET url: the body on 200, else "HTTP <code> <body>", or "error <message>" when it fails. */
export function httpGet(url: string): Promise<string> {
  return new Promise((resolve) => {
    http
      .get(url, (res) => {
        let b = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (b += d));
        res.on('end', () => resolve(res.statusCode === 200 ? b : `HTTP ${res.statusCode} ${b}`));
      })
      .on('error', (e) => resolve(`error ${e.message}`));
  });
}

/** GETs url every 100 ms until the answer is `want` (at most `tries` times); returns the last answer. */
export async function httpPoll(url: string, want: string, tries = 100): Promise<string> {
  let got = '';
  for (let i = 0; i < tries && got !== want; i++) {
    await new Promise((r) => setTimeout(r, 100));
    got = await httpGet(url);
  }
  return got;
}

export interface NamespaceFixture {
  /** This test's rootless namespace. */
  ns: Netns;
  /** This test's temp dir (writable by the test user). */
  tmp: string;
  /** A tsnet the test started; stopped after the test. */
  tsnet: Tsnet | undefined;
}

/**
 * Registers per-test setup for a describe block: a fresh namespace and temp
 * dir before each test; afterwards the tsnet in fx.tsnet is stopped, the
 * namespace destroyed and the dir removed; leftover processes killed at the end.
 */
export function namespaceFixture(tmpPrefix: string): NamespaceFixture {
  const fx = { tsnet: undefined } as NamespaceFixture;
  beforeEach(async () => {
    fx.ns = await Netns.create();
    fx.tmp = userTempDir(tmpPrefix);
  });
  afterEach(async () => {
    if (fx.tsnet) await stopTsnet(fx.tsnet);
    fx.tsnet = undefined;
    await fx.ns.destroy();
    fs.rmSync(fx.tmp, { recursive: true, force: true });
  });
  afterAll(killAll);
  return fx;
}

/** The open fds of process pid: fd number → what it points to (readlink /proc/PID/fd/N). */
export function fdsOf(pid: number): Map<number, string> {
  const fds = new Map<number, string>();
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      fds.set(Number(fd), fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
    } catch {
      // closed meanwhile
    }
  }
  return fds;
}

/** The children of pid, zombies included: every thread's /proc/PID/task/TID/children (a child belongs to the thread that forked it). */
export function childrenOf(pid: number): number[] {
  const kids: number[] = [];
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      const k = fs.readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
      if (k) kids.push(...k.split(/\s+/).map(Number));
    } catch {
      // thread exited
    }
  }
  return kids;
}

/** Whether pid has died: no such process, or a zombie waiting for its parent (or init) to reap it. */
export function isDead(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return /^[ZX]$/.test(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0]!);
  } catch {
    return true;
  }
}

/** Live processes (zombies excluded) whose namespace of this kind (e.g. 'pid', 'net') is `id` (readlink /proc/PID/ns/KIND). */
export function processesInNamespace(kind: string, id: string): number[] {
  const pids: number[] = [];
  for (const p of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      // A zombie still shows its PID namespace (not its net namespace): it is dead all the same.
      if (fs.readlinkSync(`/proc/${p}/ns/${kind}`) === id && !isDead(Number(p))) pids.push(Number(p));
    } catch {
      // exited
    }
  }
  return pids;
}

/** A temp dir the test user can write to. */
export function userTempDir(prefix: string): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  fs.chmodSync(d, 0o777);
  return d;
}
