// --configure: sets up the interface inside the target's namespace, as
// slirp4netns -c does — lo up, TAP MTU (and MAC when given) and up, the
// recommended guest address (network+100) and the default route via the
// gateway. Runs iproute2's `ip -batch -` once, through nsenter.

import { spawn } from 'node:child_process';
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

export async function configureInterface(target: Target, cfg: StackConfig, tap: string): Promise<void> {
  if (target.type === 'tapfd') throw new PrereqError('--configure cannot be used with --netns-type=tapfd (no namespace to enter)');
  const cmds = configureCommands(cfg, tap);
  const child = spawn('nsenter', [...nsenterArgs(target, true), '--', 'ip', '-batch', '-'], { stdio: ['pipe', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  child.stdin.end(cmds.join('\n') + '\n');
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('error', (e: NodeJS.ErrnoException) =>
      reject(e.code === 'ENOENT' ? new PrereqError('nsenter not found (ENOENT): install util-linux') : e),
    );
    child.on('exit', (c) => resolve(c));
  });
  if (code !== 0) {
    const why = stderr.trim().split('\n').filter(Boolean).slice(-2).join('; ');
    if (/exec.*ip.*No such file/i.test(stderr) || code === 127) {
      throw new PrereqError('ip (iproute2) not found inside the namespace: install iproute2, or configure the interface yourself and drop -c');
    }
    throw new PrereqError(`configuring ${tap} failed: ${why || `ip exited with ${code}`}`);
  }
}
