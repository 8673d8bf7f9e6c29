// `tsnet run -- CMD`: the rootless launcher. One command gives a workload
// its own user (caller mapped to root), mount, network, PID (fresh /proc)
// and UTS namespaces, built on util-linux `unshare`, and a working network
// before the workload's first instruction:
//
//   tsnet ── setpriv --pdeathsig KILL unshare -r -m -n -p -u --fork --mount-proc --kill-child ── sh (stage)
//              │                                                                          │ bind-mounts resolv.conf/hosts,
//              │◀─────────────────────────── "staged" on fd 3 ────────────────────────────│ sets the hostname
//              │ removes the temp dir; serveNetwork(target = the stage's PID, -c)         │ then waits
//              └──────────────────────────── "go" on fd 3 ───────────────────────────────▶│ exec CMD (PID 1)
//
// On a terminal (stdin and stdout both a TTY, tsnet in its foreground, no
// --no-tty) CMD gets a pseudo-terminal of its own and is the leader of a
// session of its own (`setsid --ctty`), as under `podman run -it`, so a
// shell has job control; src/host/pty-relay.ts copies between the user's
// terminal and the pty. Otherwise stdin/stdout/stderr are passed through
// untouched. CMD's exit status becomes tsnet's (128+N when killed by signal
// N; 125, 126, 127 when tsnet failed or CMD could not be run or found:
// src/app/exit-codes.ts). SIGINT/SIGTERM/SIGHUP are
// forwarded to CMD; as PID 1 it ignores signals it has no handler for, so
// after a grace period the namespace is killed. When CMD exits, tsnet
// stops the stack: nothing is left behind.
//
// If tsnet itself dies, whatever the cause (SIGKILL included), the kernel
// ends the namespace, with no process of ours left to do it:
//   - before "go": the stage's `read go` sees EOF on fd 3 and exits;
//   - always: setpriv sets PR_SET_PDEATHSIG=SIGKILL on itself and execs
//     unshare (the setting survives execve of a binary that is not setuid
//     and has no file capabilities, and unshare(CLONE_NEWUSER) keeps it), so
//     unshare is SIGKILLed when the thread that forked it exits. Node forks
//     children from its main thread (libuv's uv_spawn runs on the event
//     loop), which lives as long as the process. unshare --kill-child in turn
//     gives PID 1 PR_SET_PDEATHSIG=SIGKILL, and PID 1's death kills every
//     process of the PID namespace. The setting is in place before "go" (the
//     stage only exists once setpriv has exec'd unshare), so no window is
//     left between the two.
// The temp dir (resolv.conf, hosts for the bind mounts) is removed as soon
// as the stage has mounted them; its name carries tsnet's PID and start
// time, so one left by a tsnet killed during startup is removed by the next
// `tsnet run` of the same user.

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import type { Socket } from 'node:net';
import os from 'node:os';
import tty from 'node:tty';
import path from 'node:path';
import { inForeground, sharedPoller } from '../../native/index.js';
import { PtyRelay } from '../host/pty-relay.js';
import { confine, restartSandboxed } from './confine.js';
import { serveNetwork, statsOnSignal, type NetworkOptions } from './attach.js';
import { makeLogger } from '../host/log.js';
import { makeConfig } from '../stack/config.js';
import { ipv4ToString } from '../wire/address.js';
import { checkSubordinateIds } from './doctor.js';
import { PrereqError } from '../launcher/errors.js';
import { CMD_NOT_EXECUTABLE, CMD_NOT_FOUND, RUN_FAILED } from './exit-codes.js';

export interface RunOptions extends Omit<NetworkOptions, 'configure' | 'tapName'> {
  command: string[];
  hostname: string;
  mapAuto: boolean;
  /** How long CMD may take to exit after a forwarded signal before the namespace is killed. */
  stopTimeoutMs?: number;
  /** The seccomp filter (native/seccomp.ts) once CMD has been let go; on unless --no-seccomp. */
  seccomp?: boolean;
  /** The sandbox (native/sandbox.ts) once CMD has been let go; on unless --no-sandbox (or --map-auto). */
  sandbox?: boolean;
  /** A pty for CMD when tsnet runs on a terminal (src/host/pty-relay.ts); off with --no-tty. */
  tty?: boolean;
}

const DEFAULT_STOP_TIMEOUT_MS = 3000;

// Runs inside the new namespaces (as root of the user namespace), before CMD.
// $1 is the temp dir, $2 the hostname, $3 "ctty" on a terminal, the rest is CMD.
const STAGE = `
set -e
dir=$1; name=$2; ctty=$3; shift 3
# The host's files stay untouched: these mounts exist only in our namespace.
[ -e /etc/resolv.conf ] && mount --bind "$dir/resolv.conf" /etc/resolv.conf
[ -e /etc/hosts ] && mount --bind "$dir/hosts" /etc/hosts
hostname "$name" 2>/dev/null || busybox hostname "$name"
# The mounts hold the files: tsnet removes the temp dir now.
echo staged >&3
read go <&3 || exit 125
exec 3<&-
# On a terminal: CMD leads a session of its own with the pty as its terminal.
[ "$ctty" = ctty ] && exec setsid --ctty "$@"
exec "$@"
`;

const SIGNALS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGTERM: 15 };

/**
 * The host PID of the process unshare --fork created (PID 1 inside): the
 * child in a network namespace other than ours — with --map-auto, unshare
 * first forks a helper that runs newuidmap in the host namespaces — once
 * its user namespace has its uid and gid maps: unshare writes them after
 * the fork, and until then nothing can enter the namespace as anyone.
 */
async function forkedChild(unsharePid: number, timeoutMs = 5000): Promise<number> {
  const t0 = Date.now();
  const ourNet = fs.readlinkSync('/proc/self/ns/net');
  for (;;) {
    try {
      const kids = fs.readFileSync(`/proc/${unsharePid}/task/${unsharePid}/children`, 'utf8').trim();
      for (const k of kids ? kids.split(/\s+/) : []) {
        try {
          if (fs.readlinkSync(`/proc/${k}/ns/net`) !== ourNet && mapped(k)) return Number(k);
        } catch {
          // exited meanwhile (the map helper)
        }
      }
    } catch {
      throw new PrereqError('unshare: the namespace launcher (setpriv, unshare) exited before the workload could start (see its message above; `tsnet doctor` checks the prerequisites; tsnet run needs util-linux 2.33 or newer)');
    }
    if (Date.now() - t0 > timeoutMs) throw new PrereqError('unshare: timed out creating the namespaces (a loaded machine? `tsnet doctor` checks the prerequisites)');
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Whether process pid's user namespace has both its uid and gid maps written. */
function mapped(pid: string): boolean {
  return fs.readFileSync(`/proc/${pid}/uid_map`, 'utf8').trim() !== '' && fs.readFileSync(`/proc/${pid}/gid_map`, 'utf8').trim() !== '';
}

const RUN_DIR_PREFIX = 'tsnet-run-';
const RUN_DIR_RE = /^tsnet-run-(\d+)-(\d+)-/;

/** The start time of process pid (clock ticks after boot, /proc/PID/stat field 22), or undefined when it is gone or a zombie. */
function processStart(pid: number | 'self'): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields[0] is field 3 (state)
    if (fields[0] === 'Z' || fields[0] === 'X') return undefined;
    return fields[19];
  } catch {
    return undefined;
  }
}

/**
 * Removes the `tsnet-run-PID-START-*` dirs in tmp that belong to this user
 * and whose tsnet (that PID with that start time) is gone: left by a tsnet
 * killed between creating its temp dir and the stage's mounts. Returns their paths.
 */
export function removeStaleRunDirs(tmp = os.tmpdir()): string[] {
  const removed: string[] = [];
  let names: string[];
  try {
    names = fs.readdirSync(tmp);
  } catch {
    return removed;
  }
  const uid = process.getuid!();
  for (const name of names) {
    const m = RUN_DIR_RE.exec(name);
    if (!m) continue;
    const p = path.join(tmp, name);
    try {
      const st = fs.lstatSync(p);
      if (!st.isDirectory() || st.uid !== uid) continue;
      if (processStart(Number(m[1])) === m[2]) continue; // its tsnet is still running
      fs.rmSync(p, { recursive: true, force: true });
      removed.push(p);
    } catch {
      // removed meanwhile, or not ours to remove
    }
  }
  return removed;
}

/**
 * Finds CMD as the workload's exec will: a name with a slash as it is, any
 * other through $PATH (the workload sees the host's filesystem and our
 * environment). Fails with the status sh would give: 127 not found, 126
 * found but not executable. Checked before any namespace is made, so a
 * typo costs nothing; the stage's exec remains the final word.
 */
export function resolveCommand(name: string, envPath = process.env.PATH ?? ''): { ok: true; path: string } | { ok: false; code: number; message: string } {
  const check = (p: string): 'ok' | 'missing' | 'dir' | 'noexec' => {
    let st: fs.Stats;
    try {
      st = fs.statSync(p);
    } catch {
      return 'missing';
    }
    if (st.isDirectory()) return 'dir';
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return 'ok';
    } catch {
      return 'noexec';
    }
  };
  if (name === '') return { ok: false, code: CMD_NOT_FOUND, message: `"": command not found (name a program after --)` };
  if (name.includes('/')) {
    const r = check(name);
    if (r === 'ok') return { ok: true, path: name };
    if (r === 'missing') return { ok: false, code: CMD_NOT_FOUND, message: `${name}: no such file (check the path)` };
    return { ok: false, code: CMD_NOT_EXECUTABLE, message: `${name}: cannot be executed: ${r === 'dir' ? 'it is a directory' : 'permission denied'} (chmod +x it, or run it through its interpreter)` };
  }
  let noexec: string | undefined;
  for (const dir of envPath.split(':')) {
    const p = path.join(dir === '' ? '.' : dir, name);
    const r = check(p);
    if (r === 'ok') return { ok: true, path: p };
    if (r === 'noexec' || r === 'dir') noexec ??= p;
  }
  if (noexec) return { ok: false, code: CMD_NOT_EXECUTABLE, message: `${name}: cannot be executed: ${noexec} is not executable (chmod +x it)` };
  return { ok: false, code: CMD_NOT_FOUND, message: `${name}: command not found (check the name, or install it; PATH is searched)` };
}

export async function runWorkload(o: RunOptions): Promise<number> {
  const cmd = resolveCommand(o.command[0] ?? '');
  if (!cmd.ok) {
    process.stderr.write(`tsnet: ${cmd.message}\n`);
    return cmd.code;
  }
  const log = makeLogger(o.logLevel, o.logFormat);
  if (o.sandbox !== false && !o.mapAuto && process.env.TSNET_SANDBOX_NS !== '1') startAgainSandboxed(log);
  if (o.mapAuto) {
    const ids = checkSubordinateIds();
    if (!ids.ok) throw new PrereqError(`--map-auto: needs subordinate ids: ${ids.detail} (${ids.fix})`);
  }
  const cfg = makeConfig({ cidr: o.cidr, mtu: o.mtu, macAddress: o.macAddress, disableHostLoopback: o.disableHostLoopback, enableIpv6: o.enableIpv6 });
  for (const p of removeStaleRunDirs()) log.info({ dir: p }, 'removed the temp dir of a tsnet run that died');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${RUN_DIR_PREFIX}${process.pid}-${processStart('self') ?? 0}-`));
  fs.chmodSync(dir, 0o755);
  fs.writeFileSync(path.join(dir, 'resolv.conf'), `nameserver ${ipv4ToString(cfg.dns)}\n`);
  fs.writeFileSync(
    path.join(dir, 'hosts'),
    `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n${ipv4ToString(cfg.guest)}\t${o.hostname}\n`,
  );

  const unshareArgs = ['--user', '--map-root-user', ...(o.mapAuto ? ['--map-auto'] : []), '--mount', '--net', '--pid', '--uts', '--fork', '--mount-proc', '--kill-child'];
  // Signal keys typed at the terminal that PID 1 would ignore end the namespace (onSignalKey below).
  let onSignalKey: (sig: 'SIGINT' | 'SIGQUIT') => void = () => {};
  const relay = o.tty !== false && tty.isatty(0) && tty.isatty(1) && inForeground(0) ? new PtyRelay((sig) => onSignalKey(sig)) : undefined;
  const stdio = relay ? [relay.slave!, relay.slave!, relay.slave!, 'pipe' as const] : (['inherit', 'inherit', 'inherit', 'pipe'] as const);
  const child = spawn('setpriv', ['--pdeathsig', 'KILL', 'unshare', ...unshareArgs, '--', '/bin/sh', '-c', STAGE, 'tsnet-stage', dir, o.hostname, relay ? 'ctty' : '', ...o.command], {
    stdio: [...stdio],
  });
  relay?.closeSlave();
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  const spawnError = new Promise<never>((_, reject) =>
    child.once('error', (e: NodeJS.ErrnoException) =>
      reject(e.code === 'ENOENT' ? new PrereqError('setpriv: not found (ENOENT) (install util-linux 2.33 or newer)') : e),
    ),
  );
  const cleanupDir = () => fs.rmSync(dir, { recursive: true, force: true });
  // fd 3 is a socket pair: "staged" comes back on it, "go" goes out.
  const ctl = child.stdio[3] as Socket;
  ctl.on('error', () => {});
  let letGo = false; // the stage reported "staged": from then on only CMD's exec can fail
  const staged = new Promise<void>((resolve) => {
    let got = '';
    ctl.setEncoding('utf8');
    ctl.on('data', (d: string) => {
      got += d;
      if (got.includes('staged\n')) {
        letGo = true;
        resolve();
      }
    });
    ctl.on('end', resolve); // the stage is gone: it needs the dir no more
  });
  void staged.then(cleanupDir);

  let workload: number;
  let served: Awaited<ReturnType<typeof serveNetwork>>;
  try {
    workload = await Promise.race([forkedChild(child.pid!), spawnError]);
    served = await serveNetwork({ ...o, configure: true, tapName: 'tap0' }, cfg, { type: 'pid', pid: workload }, log, (err) =>
      log.error({ err: err.message }, 'TAP device failed'),
    );
  } catch (e) {
    child.kill('SIGKILL');
    await exited;
    await relay?.finish();
    cleanupDir();
    await sharedPoller().close();
    throw e;
  }

  // Forward stop signals to CMD; kill the namespace if it does not exit.
  // As PID 1, CMD ignores signals it has no handler for (`sleep` would never
  // die of SIGTERM): then the namespace is killed at once and tsnet reports
  // the status the signal would have given (128+N).
  let killTimer: NodeJS.Timeout | undefined;
  let killedBy: NodeJS.Signals | undefined;
  const killNamespace = (sig: NodeJS.Signals) => {
    killedBy ??= sig;
    // unshare --kill-child makes the kernel SIGKILL PID 1 (and with it the
    // whole PID namespace) when unshare dies; killing unshare itself also
    // spares us its "sigprocmask unblock failed" complaint.
    child.kill('SIGKILL');
  };
  onSignalKey = (sig) => {
    if (catchesSignal(workload, SIGNALS[sig]!)) return; // the pty delivers it
    log.info({ signal: sig }, 'the workload (PID 1) does not handle this key\'s signal: killing its namespace');
    killNamespace(sig);
  };
  const onSignal = (sig: NodeJS.Signals) => {
    if (!catchesSignal(workload, SIGNALS[sig] ?? 0)) {
      log.info({ signal: sig }, 'the workload (PID 1) does not handle this signal: killing its namespace');
      killNamespace(sig);
      return;
    }
    log.info({ signal: sig }, 'forwarding signal to the workload');
    try {
      process.kill(workload, sig);
    } catch {
      // already gone
    }
    killTimer ??= setTimeout(() => {
      log.warn('workload did not exit after the signal: killing its namespace');
      try {
        process.kill(workload, 'SIGKILL');
      } catch {
        // gone
      }
    }, o.stopTimeoutMs ?? DEFAULT_STOP_TIMEOUT_MS);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);
  const offStats = statsOnSignal(served, log);

  // The network is up and the temp dir gone: let CMD start.
  await Promise.race([staged, exited]);
  cleanupDir();
  relay?.start(workload);
  ctl.end('go\n');
  // tsnet will not open a path, run a program, mount, trace or enter a namespace again.
  const sandboxed = process.env.TSNET_SANDBOX_NS === '1';
  // Read through an fd once /proc is out of sight (catchesSignal).
  if (sandboxed) {
    try {
      workloadStatus = fs.openSync(`/proc/${workload}/status`, 'r');
    } catch {
      // CMD is gone already: no signal will need forwarding
    }
  }
  confine({ sandbox: sandboxed, seccomp: o.seccomp !== false, resolvConf: o.resolvConf, onUnavailable: 'warn', announce: false }, log);

  const r = await exited;
  await relay?.finish();
  if (killTimer) clearTimeout(killTimer);
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  process.off('SIGHUP', onSignal);
  offStats();
  await served.close();
  await sharedPoller().close();
  cleanupDir();
  log.info({ code: r.code, signal: r.signal }, 'workload exited');
  log.debug({ counters: served.stats() }, 'final counters');
  if (killedBy) return 128 + SIGNALS[killedBy]!;
  if (!letGo) {
    // The stage (mounts, hostname) ended before CMD was let go: tsnet's failure, not CMD's status.
    log.error({ code: r.code, signal: r.signal }, 'the namespace setup ended before the workload started (see the message above)');
    return RUN_FAILED;
  }
  // unshare re-raises the workload's fatal signal on itself.
  if (r.signal) return 128 + (SIGNALS[r.signal] ?? os.constants.signals[r.signal] ?? 0);
  return r.code ?? 1;
}

/**
 * The workload's /proc/PID/status, opened before the sandbox hides /proc:
 * read again through the fd whenever a signal comes.
 */
let workloadStatus: number | undefined;

function readStatus(pid: number): string {
  if (workloadStatus === undefined) return fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const buf = Buffer.alloc(8192);
  const n = fs.readSync(workloadStatus, buf, 0, buf.length, 0);
  return buf.subarray(0, n).toString('utf8');
}

/**
 * tsnet run's sandbox is made before anything else: tsnet starts again (same
 * PID, same arguments) through src/cli/sandbox.sh in a new user namespace of
 * its own, with a private mount namespace; the workload's namespaces are
 * then made as children of that user namespace. Where the host cannot, one
 * warning line, and tsnet runs as before.
 */
function startAgainSandboxed(log: ReturnType<typeof makeLogger>): void {
  const probe = spawnSync('unshare', ['--user', '--map-root-user', '--mount', 'true'], { stdio: 'ignore', timeout: 5000 });
  if (probe.status !== 0) {
    log.warn('running without the sandbox: this host cannot make a user and mount namespace for it (tsnet doctor says why; --no-sandbox silences this)');
    return;
  }
  restartSandboxed('', 'new');
}

/** Whether pid has a handler for signal number sig (SigCgt in /proc/PID/status). */
function catchesSignal(pid: number, sig: number): boolean {
  try {
    const m = /^SigCgt:\s*([0-9a-f]+)$/m.exec(readStatus(pid));
    return m !== null && sig > 0 && ((BigInt(`0x${m[1]}`) >> BigInt(sig - 1)) & 1n) === 1n;
  } catch {
    return false;
  }
}
