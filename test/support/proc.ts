// Process helpers shared by the benchmark and the integration tests:
// spawning as the unprivileged user, collecting output with a timeout,
// polling for a condition. Every process is tracked so it can be stopped by
// its own PID.

import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import os from 'node:os';
import type { RunAs } from './stage.js';

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

const started = new Set<ChildProcess>();

/**
 * Spawns cmd as the unprivileged user (runAs), or as ourselves when null.
 * The user's processes start in / unless opts.cwd says otherwise: our own
 * cwd (the clone) may be a directory only root can enter (/root, a mode
 * 0700 `mktemp -d`), and some programs (podman, runc) chdir to it.
 */
export function spawnAs(runAs: RunAs | null, cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
  const child = spawn(cmd, args, {
    ...opts,
    ...(runAs ? { uid: runAs.uid, gid: runAs.gid, cwd: opts.cwd ?? '/' } : {}),
    env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', HOME: os.tmpdir(), ...(opts.env ?? {}) },
  });
  started.add(child);
  child.on('exit', () => started.delete(child));
  return child;
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

export function run(runAs: RunAs | null, cmd: string, args: string[], opts: SpawnOptions & { input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  const child = spawnAs(runAs, cmd, args, { stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'], ...opts });
  if (opts.input !== undefined) {
    child.stdin!.on('error', () => {}); // the command may exit without reading
    child.stdin!.end(opts.input);
  }
  return collect(child, opts.timeoutMs);
}

export async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const t0 = Date.now();
  // Awaited: an async condition is a Promise, which is always truthy.
  while (!(await cond())) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** SIGKILLs every tracked process still running, by its PID, and waits for them. */
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

/** Stops a process by its PID: SIGTERM, then SIGKILL after graceMs. */
export async function stop(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}
