// `tsnet doctor`: checks every prerequisite of rootless networking for the
// user running it and says, one line each, ok or the problem and its fix.
// Required checks decide the exit code (0 only when `tsnet run`/`attach`
// can work); optional ones (ICMP, multi-uid mappings) only inform.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { pingAllowed } from '../../native/index.js';

export interface Check {
  name: string;
  ok: boolean;
  /** What was found (versions, values). */
  detail: string;
  /** How to fix it, when not ok. */
  fix?: string;
  /** Whether tsnet cannot work without it. */
  required: boolean;
}

function run(cmd: string, args: string[]): { ok: boolean; out: string } {
  try {
    const out = execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 5000 });
    return { ok: true, out: out.trim() };
  } catch (e) {
    const err = e as { code?: string; stderr?: string; message: string };
    if (err.code === 'ENOENT') return { ok: false, out: 'not found' };
    return { ok: false, out: (err.stderr ?? err.message).toString().trim().split('\n').pop() ?? 'failed' };
  }
}

function readTrim(path: string): string | undefined {
  try {
    return fs.readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** Linux ≥ 5.6: pidfd_getfd hands the TAP fd over. */
export function checkKernel(release = os.release()): Check {
  const m = /^(\d+)\.(\d+)/.exec(release);
  const ok = !!m && (Number(m[1]) > 5 || (Number(m[1]) === 5 && Number(m[2]) >= 6));
  return {
    name: 'kernel',
    ok,
    detail: `Linux ${release}`,
    fix: ok ? undefined : 'tsnet needs Linux 5.6 or newer (pidfd_getfd)',
    required: true,
  };
}

export function checkTunDevice(path = '/dev/net/tun'): Check {
  let st: fs.Stats;
  try {
    st = fs.statSync(path);
  } catch {
    return { name: 'TUN device', ok: false, detail: `${path} does not exist`, fix: 'load the tun module: sudo modprobe tun', required: true };
  }
  const mode = (st.mode & 0o777).toString(8).padStart(4, '0');
  try {
    fs.accessSync(path, fs.constants.R_OK | fs.constants.W_OK);
  } catch {
    return {
      name: 'TUN device',
      ok: false,
      detail: `${path} is mode ${mode}, not readable and writable by uid ${process.getuid!()}`,
      fix: `most distributions ship it 0666: sudo chmod 0666 ${path}`,
      required: true,
    };
  }
  const note = process.getuid!() === 0 && (st.mode & 0o006) !== 0o006 ? ` (usable by root only: unprivileged users need sudo chmod 0666 ${path})` : '';
  return { name: 'TUN device', ok: true, detail: `${path} mode ${mode}, read/write for this user${note}`, required: true };
}

export function checkUserNamespaces(): Check {
  const clone = readTrim('/proc/sys/kernel/unprivileged_userns_clone');
  const max = readTrim('/proc/sys/user/max_user_namespaces');
  const apparmor = readTrim('/proc/sys/kernel/apparmor_restrict_unprivileged_userns');
  const trial = run('unshare', ['-Ur', 'true']);
  if (trial.ok) {
    return { name: 'user namespaces', ok: true, detail: `unshare -Ur works (max_user_namespaces=${max ?? '?'})`, required: true };
  }
  let fix = 'enable unprivileged user namespaces';
  if (clone === '0') fix = 'sudo sysctl -w kernel.unprivileged_userns_clone=1';
  else if (max === '0') fix = 'sudo sysctl -w user.max_user_namespaces=28633';
  else if (apparmor === '1') fix = 'AppArmor restricts them: sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0 (or an AppArmor profile for node)';
  return { name: 'user namespaces', ok: false, detail: `unshare -Ur true failed: ${trial.out}`, fix, required: true };
}

export function checkTool(name: string, args: string[], pkg: string, required: boolean, why: string): Check {
  const r = run(name, args);
  return {
    name,
    ok: r.ok,
    detail: r.ok ? r.out.split('\n')[0]! : `${name} ${r.out}`,
    fix: r.ok ? undefined : `install ${pkg} (${why})`,
    required,
  };
}

/** /etc/subuid and /etc/subgid ranges for this user, and newuidmap/newgidmap (for --map-auto). */
export function checkSubordinateIds(user = os.userInfo(), files = { subuid: '/etc/subuid', subgid: '/etc/subgid' }): Check {
  const ranges = (path: string) =>
    (readTrim(path) ?? '')
      .split('\n')
      .map((l) => l.split(':'))
      .filter((f) => f.length === 3 && (f[0] === user.username || f[0] === String(user.uid)))
      .map((f) => `${f[1]}+${f[2]}`);
  const u = ranges(files.subuid);
  const g = ranges(files.subgid);
  const tools = ['newuidmap', 'newgidmap'].filter((t) => run('sh', ['-c', `command -v ${t}`]).ok);
  const ok = u.length > 0 && g.length > 0 && tools.length === 2;
  const missing: string[] = [];
  if (u.length === 0) missing.push(`no range for ${user.username} in ${files.subuid}`);
  if (g.length === 0) missing.push(`no range for ${user.username} in ${files.subgid}`);
  if (tools.length < 2) missing.push('newuidmap/newgidmap not installed');
  return {
    name: 'subordinate ids',
    ok,
    detail: ok ? `subuid ${u.join(',')}, subgid ${g.join(',')}, newuidmap/newgidmap present` : missing.join('; '),
    fix: ok
      ? undefined
      : `needed only for multi-uid mappings (--map-auto): sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 ${user.username}; apt-get install uidmap`,
    required: false,
  };
}

export function checkPing(): Check {
  const p = pingAllowed();
  return {
    name: 'ICMP echo',
    ok: p.ok,
    detail: p.ok
      ? `ping sockets allowed (net.ipv4.ping_group_range ${p.range.join(' ')})`
      : (p.reason ?? 'ping sockets not allowed').split('; allow it with')[0]!,
    fix: p.ok ? undefined : 'optional (ping to outside addresses): sudo sysctl -w net.ipv4.ping_group_range="0 2147483647"',
    required: false,
  };
}

/**
 * What --enable-seccomp and --enable-sandbox need: seccomp filters in the
 * kernel (/proc/self/status has Seccomp_filters), and a user namespace to
 * make the sandbox's mount namespace in (the user namespace check above).
 */
export function checkSandbox(status = readTrim('/proc/self/status') ?? '', userns = checkUserNamespaces()): Check {
  const filters = /^Seccomp_filters:/m.test(status);
  const seccomp = /^Seccomp:/m.test(status);
  const missing: string[] = [];
  if (!seccomp || !filters) missing.push(seccomp ? 'the kernel has seccomp but not seccomp filters (CONFIG_SECCOMP_FILTER)' : 'the kernel has no seccomp (CONFIG_SECCOMP)');
  if (!userns.ok) missing.push('no unprivileged user namespaces (see above)');
  return {
    name: 'sandbox',
    ok: missing.length === 0,
    detail: missing.length === 0 ? '--enable-sandbox and --enable-seccomp can be used (seccomp filters, user namespaces)' : missing.join('; '),
    fix: missing.length === 0 ? undefined : 'optional: without them --enable-sandbox / --enable-seccomp exit with an error; tsnet run starts without them and says so',
    required: false,
  };
}

export function checkNode(version = process.versions.node): Check {
  const major = Number(version.split('.')[0]);
  return {
    name: 'Node.js',
    ok: major >= 20,
    detail: `Node.js ${version}`,
    fix: major >= 20 ? undefined : 'tsnet needs Node.js 20 or newer',
    required: true,
  };
}

export function runChecks(): Check[] {
  const userns = checkUserNamespaces();
  return [
    checkKernel(),
    checkTunDevice(),
    userns,
    checkTool('unshare', ['--version'], 'util-linux', true, 'creates namespaces'),
    checkTool('nsenter', ['--version'], 'util-linux', true, 'enters the target namespace'),
    checkTool('ip', ['-V'], 'iproute2', true, 'configures the interface (-c)'),
    checkSubordinateIds(),
    checkPing(),
    checkSandbox(undefined, userns),
    checkNode(),
  ];
}

/** One line per check; the exit code is 0 only when every required check passed. */
export function formatChecks(checks: Check[]): { text: string; code: number } {
  const width = Math.max(...checks.map((c) => c.name.length));
  const lines = checks.map((c) => {
    const status = c.ok ? 'ok     ' : c.required ? 'PROBLEM' : 'note   ';
    return `${status} ${c.name.padEnd(width)}  ${c.detail}${c.ok || !c.fix ? '' : ` — fix: ${c.fix}`}`;
  });
  const failed = checks.filter((c) => c.required && !c.ok);
  lines.push(
    failed.length === 0
      ? 'tsnet can run here' + (process.getuid!() === 0 ? ' (as root; run doctor as the user who will run tsnet)' : '')
      : `tsnet cannot run here: ${failed.map((c) => c.name).join(', ')}`,
  );
  return { text: lines.join('\n') + '\n', code: failed.length === 0 ? 0 : 1 };
}
