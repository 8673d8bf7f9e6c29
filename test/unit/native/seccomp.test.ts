// native/seccomp.ts: the BPF program checked instruction by instruction in
// JS (every blocked name, clone with and without namespace flags, clone3, a
// foreign ABI), then the real filter installed in a child Node process: a
// blocked call fails with EPERM, every thread carries the filter and
// no_new_privs, and the runtime keeps working (threads start, files read).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  BLOCKED,
  CLONE_NAMESPACE_FLAGS,
  SECCOMP_RET_ALLOW,
  SECCOMP_RET_ERRNO,
  SECCOMP_RET_KILL_PROCESS,
  auditArch,
  blockedOn,
  buildFilter,
  evaluate,
  syscallNumber,
  type Arch,
} from '../../../native/seccomp.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const EPERM = SECCOMP_RET_ERRNO | 1;
const ENOSYS = SECCOMP_RET_ERRNO | 38;

describe.each(['x64', 'arm64'] as Arch[])('seccomp filter program (%s)', (arch) => {
  const prog = buildFilter(arch);
  const run = (name: string, arg0 = 0) => evaluate(prog, { nr: syscallNumber(arch, name)!, arch: auditArch(arch), arg0 });

  it('blocks every listed syscall with EPERM', () => {
    for (const name of blockedOn(arch)) expect(run(name), name).toBe(EPERM);
    expect(blockedOn(arch).length).toBeGreaterThanOrEqual(BLOCKED.length - 3);
  });

  it('allows what a running stack uses', () => {
    const others = { x64: [0, 1, 3, 7, 41, 42, 44, 45, 232, 257, 434], arm64: [63, 64, 57, 73, 198, 203, 206, 207, 21, 56, 434] }[arch];
    for (const nr of others) expect(evaluate(prog, { nr, arch: auditArch(arch) }), String(nr)).toBe(SECCOMP_RET_ALLOW);
  });

  it('lets clone start threads but not namespaces; clone3 gets ENOSYS', () => {
    const thread = 0x3d0f00; // CLONE_VM|FS|FILES|SIGHAND|THREAD|SYSVSEM|SETTLS|PARENT_SETTID|CHILD_CLEARTID
    expect(run('clone', thread)).toBe(SECCOMP_RET_ALLOW);
    expect(run('clone', 0x11)).toBe(SECCOMP_RET_ALLOW); // fork-like: SIGCHLD
    for (let bit = 0; bit < 32; bit++) {
      const flag = 1 << bit;
      if (CLONE_NAMESPACE_FLAGS & flag) expect(run('clone', thread | flag), flag.toString(16)).toBe(EPERM);
    }
    expect(run('clone3')).toBe(ENOSYS);
  });

  it('refuses a foreign ABI', () => {
    expect(evaluate(prog, { nr: 1, arch: 0x40000003 })).toBe(SECCOMP_RET_KILL_PROCESS);
    if (arch === 'x64') expect(evaluate(prog, { nr: 0x40000000 | 1, arch: auditArch(arch) })).toBe(EPERM);
  });
});

const built = fs.existsSync(path.join(root, 'dist/native/seccomp.js'));

describe.skipIf(!built || (process.arch !== 'x64' && process.arch !== 'arm64'))('seccomp filter installed (child process)', () => {
  it('blocks with EPERM on every thread; threads and files keep working', () => {
    const script = `
      import fs from 'node:fs';
      import { spawnSync } from 'node:child_process';
      import { installSeccomp } from '${path.join(root, 'dist/native/seccomp.js')}';
      import { raw, errno } from '${path.join(root, 'dist/native/libc.js')}';
      const blocked = installSeccomp();
      const out = { blocked: blocked.length };
      out.unshare = raw.syscall(${process.arch === 'x64' ? 272 : 97}, 'long', 0) < 0 ? errno() : 0;
      out.setns = raw.syscall(${process.arch === 'x64' ? 308 : 268}, 'long', -1, 'long', 0) < 0 ? errno() : 0;
      out.spawn = spawnSync('/bin/true').error?.code ?? 'ran';
      // More concurrent reads than the pool has threads: new threads start under the filter.
      await Promise.all(Array.from({ length: 16 }, () => fs.promises.readFile('/proc/self/status', 'utf8')));
      const tasks = fs.readdirSync('/proc/self/task');
      out.threads = tasks.length;
      out.filtered = tasks.filter((t) => /Seccomp:\\s+2/.test(fs.readFileSync('/proc/self/task/' + t + '/status', 'utf8'))).length;
      out.nnp = tasks.filter((t) => /NoNewPrivs:\\s+1/.test(fs.readFileSync('/proc/self/task/' + t + '/status', 'utf8'))).length;
      console.log(JSON.stringify(out));
    `;
    const r = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' }).trim());
    expect(r.blocked).toBe(blockedOn(process.arch as Arch).length);
    expect(r.unshare).toBe(1);
    expect(r.setns).toBe(1);
    expect(r.spawn).toBe('EPERM');
    expect(r.threads).toBeGreaterThan(4);
    expect(r.filtered).toBe(r.threads);
    expect(r.nnp).toBe(r.threads);
  });
});
