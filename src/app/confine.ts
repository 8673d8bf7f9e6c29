// What attach and run do to confine tsnet, in one place: starting again
// through src/cli/sandbox.sh (the sandbox's namespaces exist only for a
// process born in them), and the step once everything is open and the last
// helper has run — the sandbox (native/sandbox.ts), then the seccomp filter
// (native/seccomp.ts). Without --enable-seccomp a sandboxed tsnet still
// installs a filter that blocks nothing: TSYNC is how no_new_privs reaches
// every thread.

import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { enterSandbox, execReplace, installSeccomp } from '../../native/index.js';
import type { Logger } from '../host/log.js';
import { PrereqError } from '../launcher/errors.js';

/**
 * Replaces this process (same PID, arguments and the fds in keepFds) with
 * itself started through sandbox.sh, which sets TSNET_SANDBOX_NS=1. userns
 * and creds are sandbox.sh's first two arguments. Never returns.
 */
export function restartSandboxed(userns: string, creds: 'keep' | 'root' | 'new', keepFds: number[] = []): never {
  const script = fileURLToPath(new URL('../cli/sandbox.sh', import.meta.url));
  execReplace('/bin/sh', ['sh', script, userns, creds, '--', process.execPath, ...process.execArgv, ...process.argv.slice(1)], process.env, keepFds);
}

export interface ConfineOptions {
  /** Enter the sandbox (the process was started in its namespaces). */
  sandbox: boolean;
  seccomp: boolean;
  resolvConf?: string;
  /**
   * 'exit': a step the host cannot do is a one-line error naming the flag
   * (attach, where the flag was asked for); 'warn': one warning line and
   * tsnet goes on without it (tsnet run's defaults).
   */
  onUnavailable: 'exit' | 'warn';
  /** Print slirp4netns's "seccomp: The following syscalls will be blocked" line on stdout (attach); else log it. */
  announce: boolean;
}

export function confine(o: ConfineOptions, log: Logger): void {
  if (o.sandbox) {
    const resolv = o.resolvConf ?? '/etc/resolv.conf';
    let real = resolv;
    try {
      real = fs.realpathSync(resolv);
    } catch {
      // not there (yet): judged by its name
    }
    if (!/^\/(etc|run)\//.test(real)) {
      log.warn({ file: resolv }, 'sandbox: the resolv.conf is outside /etc and /run, so changes to it are not seen from now on');
    }
    try {
      const r = enterSandbox();
      if (r.threadsWithCaps.length > 0) {
        log.debug({ threads: r.threadsWithCaps }, 'sandbox: threads started before the drop keep their capabilities (one uid is mapped, so they cannot be moved off uid 0)');
      }
      log.info({ uid: r.uid }, 'sandbox entered: root holds /etc and /run, capabilities down to cap_net_bind_service');
    } catch (e) {
      if (o.onUnavailable === 'exit') throw new PrereqError(`--enable-sandbox: ${(e as Error).message}`);
      log.warn(`running without the sandbox: ${(e as Error).message}`);
    }
  }
  if (!o.seccomp && !o.sandbox) return;
  let blocked: string[];
  try {
    blocked = installSeccomp({ allowAll: !o.seccomp });
  } catch (e) {
    const why = (e as Error).message;
    if (o.onUnavailable === 'warn') {
      log.warn(`running without the seccomp filter: ${why} (tsnet doctor says what this host lacks; --no-seccomp silences this)`);
      return;
    }
    const flag = o.seccomp ? '--enable-seccomp' : '--enable-sandbox';
    throw new PrereqError(`${flag}: cannot install the seccomp filter: ${why} (this kernel lacks seccomp filters; drop the flag)`);
  }
  if (!o.seccomp) return;
  if (o.announce) process.stdout.write(`seccomp: The following syscalls will be blocked by seccomp: ${blocked.join(' ')}.\n`);
  log.info({ blocked: blocked.length }, 'seccomp filter installed');
  log.debug({ blocked }, 'seccomp: blocked syscalls');
}
