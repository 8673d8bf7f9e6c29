// tsnet doctor's checks that need no privileges to test: version gates,
// subordinate-id parsing, and the exit code rule (required checks only).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkKernel, checkNode, checkSandbox, checkSubordinateIds, formatChecks, type Check } from '../../../src/app/doctor.js';

describe('tsnet doctor checks', () => {
  it('requires Linux 5.6 (pidfd_getfd) and Node.js 20', () => {
    expect(checkKernel('6.18.44-fc').ok).toBe(true);
    expect(checkKernel('5.6.0').ok).toBe(true);
    expect(checkKernel('5.4.0-150-generic')).toMatchObject({ ok: false, required: true });
    expect(checkNode('20.20.2').ok).toBe(true);
    expect(checkNode('18.19.0')).toMatchObject({ ok: false, fix: 'tsnet needs Node.js 20 or newer' });
  });

  it('finds subordinate id ranges by user name or uid, and names what is missing', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsnet-doctor-'));
    try {
      const subuid = path.join(dir, 'subuid');
      const subgid = path.join(dir, 'subgid');
      fs.writeFileSync(subuid, 'alice:100000:65536\nbob:165536:65536\n');
      fs.writeFileSync(subgid, '1001:100000:65536\n');
      const alice = { username: 'alice', uid: 1001, gid: 1001, shell: null, homedir: '/' };
      const c = checkSubordinateIds(alice, { subuid, subgid });
      expect(c.required).toBe(false);
      expect(c.detail).toMatch(/subuid 100000\+65536, subgid 100000\+65536|newuidmap/);
      const carol = { ...alice, username: 'carol', uid: 1002 };
      const none = checkSubordinateIds(carol, { subuid, subgid });
      expect(none.ok).toBe(false);
      expect(none.detail).toContain(`no range for carol in ${subuid}`);
      expect(none.fix).toMatch(/usermod --add-subuids/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('exits 0 only when every required check passed; optional problems are notes', () => {
    const ok: Check = { name: 'a', ok: true, detail: 'fine', required: true };
    const note: Check = { name: 'ping', ok: false, detail: 'no', fix: 'sysctl', required: false };
    const bad: Check = { name: 'TUN device', ok: false, detail: 'mode 0600', fix: 'chmod 0666', required: true };
    expect(formatChecks([ok, note]).code).toBe(0);
    const r = formatChecks([ok, note, bad]);
    expect(r.code).toBe(1);
    expect(r.text).toMatch(/^PROBLEM TUN device\s+mode 0600 — fix: chmod 0666$/m);
    expect(r.text).toMatch(/^note {4}ping/m);
    expect(r.text).toMatch(/tsnet cannot run here: TUN device\n$/);
  });
});

describe('checkSandbox', () => {
  const userOk = { name: 'user namespaces', ok: true, detail: '', required: true };
  it('is fine with seccomp filters and user namespaces', () => {
    expect(checkSandbox('Seccomp:\t0\nSeccomp_filters:\t0\n', userOk).ok).toBe(true);
  });
  it('names what is missing', () => {
    expect(checkSandbox('Name:\tnode\n', userOk).detail).toMatch(/no seccomp/);
    expect(checkSandbox('Seccomp:\t0\n', userOk).detail).toMatch(/not seccomp filters/);
    const r = checkSandbox('Seccomp:\t0\nSeccomp_filters:\t0\n', { ...userOk, ok: false });
    expect(r.ok).toBe(false);
    expect(r.required).toBe(false);
    expect(r.detail).toMatch(/user namespaces/);
  });
});
