// Helpers for integration tests: run commands as the unprivileged test user,
// create rootless namespaces (unshare -Urn) and run tools inside them, start
// tsnet from the staged package, and clean up every process by its own PID.

import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { inject } from 'vitest';

export const stageDir = inject('stageDir');
export const runAs = inject('runAs');
export const integrationSkip = inject('integrationSkip');
export const tsnetMain = path.join(stageDir, 'dist/src/cli/main.js');
/** The guest-side test client (test/integration/guest/guest.py), readable by the test user. */
export const guestPy = path.join(stageDir, 'guest/guest.py');

const started = new Set<ChildProcess>();

export function spawnAs(cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
  const child = spawn(cmd, args, {
    ...opts,
    ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {}),
    env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', HOME: os.tmpdir(), ...(opts.env ?? {}) },
  });
  started.add(child);
  child.on('exit', () => started.delete(child));
  return child;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function collect(child: ChildProcess, timeoutMs = 20_000): Promise<RunResult> {
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`timed out after ${timeoutMs} ms: ${child.spawnargs.join(' ')}\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

export function runAsUser(cmd: string, args: string[], opts: SpawnOptions & { input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  const child = spawnAs(cmd, args, { stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'], ...opts });
  if (opts.input !== undefined) {
    child.stdin!.on('error', () => {}); // the command may exit without reading
    child.stdin!.end(opts.input);
  }
  return collect(child, opts.timeoutMs);
}

export async function waitFor(cond: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A rootless user+net namespace held open by `sleep`, created as the test user. */
export class Netns {
  private constructor(readonly proc: ChildProcess) {}

  get pid(): number {
    return this.proc.pid!;
  }

  static async create(): Promise<Netns> {
    const proc = spawnAs('unshare', ['-Urn', 'sleep', '1000'], { stdio: 'ignore' });
    const ns = new Netns(proc);
    // unshare execs sleep once the namespaces exist and the maps are written.
    await waitFor(() => {
      try {
        return fs.readFileSync(`/proc/${proc.pid}/comm`, 'utf8').trim() === 'sleep';
      } catch {
        return false;
      }
    }, 5000, 'unshare -Urn to exec sleep');
    return ns;
  }

  /** Runs a command inside the namespace (as the namespace's root). */
  exec(args: string[], timeoutMs = 20_000): Promise<RunResult> {
    return runAsUser('nsenter', ['--preserve-credentials', '-U', '-n', '-t', String(this.pid), ...args], { timeoutMs });
  }

  /** Runs guest.py inside the namespace; resolves with its trimmed stdout (rejects on failure). */
  async guest(args: string[], timeoutMs = 60_000): Promise<string> {
    const r = await this.exec(['/usr/bin/python3', guestPy, ...args], timeoutMs);
    if (r.code !== 0) throw new Error(`guest.py ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
    return r.stdout.trim();
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
export function startTsnet(args: string[], extraFds: Array<'pipe' | 'ignore'> = [], env?: NodeJS.ProcessEnv): Tsnet {
  const proc = spawnAs(process.execPath, [tsnetMain, ...args], { stdio: ['ignore', 'pipe', 'pipe', ...extraFds], env });
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

/** Kills every process this file started that is still running (afterAll). */
export async function killAll(): Promise<void> {
  const waits: Promise<unknown>[] = [];
  for (const c of started) {
    if (c.exitCode === null && c.signalCode === null) {
      waits.push(new Promise((r) => c.once('exit', r)));
      c.kill('SIGKILL');
    }
  }
  await Promise.all(waits);
}

/** A temp dir the test user can write to. */
export function userTempDir(prefix: string): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  fs.chmodSync(d, 0o777);
  return d;
}
