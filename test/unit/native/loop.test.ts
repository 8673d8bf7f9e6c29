// native/loop.ts: turning off libuv's idle-time metrics on Node.js's loop.
// Run in a child Node.js (the change is to the process's own event loop);
// the effect shows in performance.eventLoopUtilization(), whose idle time
// libuv counts only while the metric is on — the same flag that makes it
// poll twice before blocking.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const built = fs.existsSync(path.join(root, 'dist/native/loop.js'));

describe.skipIf(!built)('disableLoopIdleMetrics (child process)', () => {
  it('turns the metric off once, and the loop runs on', () => {
    const script = `
      import { performance } from 'node:perf_hooks';
      import { disableLoopIdleMetrics } from '${path.join(root, 'dist/native/loop.js')}';
      const idleOver = (ms) => new Promise((resolve) => {
        const e0 = performance.eventLoopUtilization();
        setTimeout(() => resolve(performance.eventLoopUtilization(e0).idle), ms);
      });
      const before = await idleOver(100);
      const first = disableLoopIdleMetrics();
      const second = disableLoopIdleMetrics();
      const after = await idleOver(100);
      console.log(JSON.stringify({ before, first, second, after }));
    `;
    const r = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' }).trim());
    expect(r.first).toBe('off');
    expect(r.second).toBe('already off');
    // With the metric on, the loop idled most of the 100 ms in epoll_pwait; off, nothing is counted.
    expect(r.before).toBeGreaterThan(50);
    expect(r.after).toBe(0);
  });
});
