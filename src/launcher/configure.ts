// Making the TAP device and --configure, inside the target's namespace. The
// device is made as a persistent TAP and, with -c, configured in the same
// `ip -batch -` (one nsenter) — lo up, TAP MTU (and MAC when given) and up,
// the recommended guest address (network+100) and the default route via the
// gateway, as slirp4netns -c does — so that it appears already configured:
// scripts written for slirp4netns wait for the device, then use it. tsnet
// then attaches to it and drops its persistence (src/launcher/tap.ts).

import { spawn, spawnSync } from 'node:child_process';
import { macToString, ipv4ToString } from '../wire/address.js';
import type { StackConfig } from '../stack/config.js';
import { PrereqError } from './errors.js';
import { nsenterArgs, type Target } from './target.js';

export function configureCommands(cfg: StackConfig, tap: string): string[] {
  const cmds = ['link set lo up', `link set ${tap} mtu ${cfg.mtu}`];
  if (cfg.guestMac !== undefined) cmds.push(`link set ${tap} address ${macToString(cfg.guestMac)}`);
  cmds.push(
    `link set ${tap} up`,
    `addr add ${ipv4ToString(cfg.guest)}/${cfg.prefixLen} dev ${tap}`,
    `route add default via ${ipv4ToString(cfg.gateway)} dev ${tap}`,
  );
  return cmds;
}

/**
 * The batch that makes `tap` and, given cfg, configures it so that it never
 * shows half-configured under its name: made and configured as `tmp`, then
 * renamed, brought up and routed. (src/cli/slirp4netns.sh writes the same
 * lines; test/unit/launcher/launcher.test.ts holds the two together.)
 * `renamedAt`: the 1-based line after which the device is called `tap`.
 */
export function creationCommands(tap: string, tmp: string, cfg?: StackConfig): { cmds: string[]; renamedAt: number } {
  if (!cfg) return { cmds: [`tuntap add dev ${tap} mode tap`], renamedAt: 1 };
  const cmds = [`tuntap add dev ${tmp} mode tap`, 'link set lo up', `link set ${tmp} mtu ${cfg.mtu}`];
  if (cfg.guestMac !== undefined) cmds.push(`link set ${tmp} address ${macToString(cfg.guestMac)}`);
  cmds.push(`addr add ${ipv4ToString(cfg.guest)}/${cfg.prefixLen} dev ${tmp}`, `link set ${tmp} name ${tap}`);
  const renamedAt = cmds.length;
  cmds.push(`link set ${tap} up`, `route add default via ${ipv4ToString(cfg.gateway)} dev ${tap}`);
  return { cmds, renamedAt };
}

/**
 * Makes `tap` (persistent) and, given cfg, configures it, in one batch. False
 * when a device of that name exists already (ip says EBUSY, or EEXIST at the
 * rename): the caller attaches to it as it is (rootlesskit makes tap0
 * itself), and TUNSETIFF says EBUSY if someone holds it.
 */
export async function createTap(target: Target, tap: string, cfg?: StackConfig): Promise<boolean> {
  const tmp = `tsn${process.pid}`;
  const { cmds, renamedAt } = creationCommands(tap, tmp, cfg);
  const r = await ipBatch(target, cmds);
  if (r.ok) return true;
  const at = r.failedAt ?? 0;
  if (cfg && at >= 2) removeTap(target, at <= renamedAt ? tmp : tap);
  if ((at === 1 && /busy/i.test(r.why)) || (at === renamedAt && /exists/i.test(r.why))) return false;
  throw new PrereqError(`${at === 1 ? 'creating' : 'configuring'} ${tap} failed: ${r.why}`);
}

/** Configures an existing `tap` (one the launcher made without configuring it, or one that existed before us). */
export async function configureInterface(target: Target, cfg: StackConfig, tap: string): Promise<void> {
  const r = await ipBatch(target, configureCommands(cfg, tap));
  if (!r.ok) throw new PrereqError(`configuring ${tap} failed: ${r.why}`);
}

/** Runs `ip -batch -` inside the target's namespaces with what it takes to change them. */
async function ipBatch(target: Target, cmds: string[]): Promise<{ ok: boolean; failedAt?: number; why: string }> {
  if (target.type === 'tapfd') throw new PrereqError('--configure: cannot be used with --netns-type=tapfd (there is no namespace to enter: configure the interface yourself)');
  const child = spawn('nsenter', [...nsenterArgs(target, true), '--', 'ip', '-batch', '-'], { stdio: ['pipe', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  child.stdin.on('error', () => {}); // ip may exit before reading everything
  child.stdin.end(cmds.join('\n') + '\n');
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('error', (e: NodeJS.ErrnoException) =>
      reject(e.code === 'ENOENT' ? new PrereqError('nsenter: not found (ENOENT) (install util-linux: apt-get install util-linux)') : e),
    );
    // 'close', not 'exit': its pipes are closed too, so no fd outlives the call.
    child.on('close', (c) => resolve(c));
  });
  return ipOutcome(code, stderr);
}

/** What `ip -batch -` exiting with `code` and writing `stderr` says: which line failed, and why. */
export function ipOutcome(code: number | null, stderr: string): { ok: boolean; failedAt?: number; why: string } {
  if (code === 0) return { ok: true, why: '' };
  if (/exec.*ip.*No such file/i.test(stderr) || code === 127) {
    throw new PrereqError('ip: not found inside the namespace (install iproute2, or configure the interface yourself and drop -c)');
  }
  // ip stops at the first failing command: "Command failed -:N" names it.
  const m = /Command failed -:(\d+)/.exec(stderr);
  const why = stderr.trim().split('\n').filter((l) => l && !l.startsWith('Command failed')).slice(-2).join('; ') || `ip exited with ${code}`;
  return { ok: false, failedAt: m ? Number(m[1]) : undefined, why };
}

/** Removes a device we made (after a failed configuration). Best effort, synchronous. */
export function removeTap(target: Target, tap: string): void {
  if (target.type === 'tapfd') return;
  deleteLink(nsenterArgs(target, true), tap);
}

/** `nsenter ARGS -- ip link del dev NAME`: best effort, synchronous (it may run on the way out). */
export function deleteLink(nsenter: string[], name: string): void {
  spawnSync('nsenter', [...nsenter, '--', 'ip', 'link', 'del', 'dev', name], { stdio: 'ignore', timeout: 5000 });
}
