// native/spawn.ts: a helper started with posix_spawnp gets its stdio on our
// pipes, a clean signal state and no fd of ours, and is reaped by reap().

import { describe, expect, it } from 'vitest';
import { closeFd, readFrame, reap, spawnPiped, writeFrame } from '../../../native/index.js';

/** Everything until EOF from a blocking fd (readFrame: -1 only on EAGAIN, 0 at EOF). */
function readAll(fd: number): string {
  const buf = Buffer.alloc(65536);
  let out = '';
  for (;;) {
    const n = readFrame(fd, buf);
    if (n <= 0) return out;
    out += buf.toString('utf8', 0, n);
  }
}

async function exitOf(pid: number): Promise<number> {
  for (let i = 0; i < 500; i++) {
    const code = reap(pid);
    if (code !== undefined) return code;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`${pid} did not exit`);
}

describe('spawnPiped', () => {
  it('runs the program with its argv, stdin, stdout and stderr on pipes, and reap() gives its exit code', async () => {
    const h = spawnPiped('sh', ['sh', '-c', 'read x; echo "got $x and $1"; echo oops >&2; exit 7', 'sh', 'arg one']);
    writeFrame(h.stdin, Buffer.from('hello\n'));
    closeFd(h.stdin);
    expect(readAll(h.stdout)).toBe('got hello and arg one\n');
    expect(readAll(h.stderr)).toBe('oops\n');
    closeFd(h.stdout);
    closeFd(h.stderr);
    expect(await exitOf(h.pid)).toBe(7);
  });

  it('starts clean: no signal ignored or blocked (Node ignores SIGPIPE), only fds 0-2 open', async () => {
    const h = spawnPiped('sh', ['sh', '-c', 'grep -E "^Sig(Ign|Blk)" /proc/self/status; ls /proc/self/fd | tr "\\n" " "']);
    closeFd(h.stdin);
    const out = readAll(h.stdout);
    closeFd(h.stdout);
    closeFd(h.stderr);
    expect(out).toMatch(/SigBlk:\s+0+\n/);
    // Signals 1-31 (bits 0-30) at their default; glibc keeps its internal 32 and 33.
    const ignored = BigInt('0x' + /SigIgn:\s+([0-9a-f]+)/.exec(out)![1]!);
    expect(ignored & 0x7fffffffn).toBe(0n);
    // ls's own directory fd is the fourth.
    expect(out.trim().split('\n').pop()!.trim().split(' ')).toEqual(['0', '1', '2', '3']);
    expect(await exitOf(h.pid)).toBe(0);
  });

  it('a program not in PATH is ENOENT, with no fd left behind', () => {
    expect(() => spawnPiped('tsnet-no-such-program', ['x'])).toThrow(expect.objectContaining({ code: 'ENOENT', syscall: 'posix_spawnp' }));
  });

  it('a signal shows as 128 + its number', async () => {
    const h = spawnPiped('sh', ['sh', '-c', 'kill -TERM $$']);
    closeFd(h.stdin);
    closeFd(h.stdout);
    closeFd(h.stderr);
    expect(await exitOf(h.pid)).toBe(128 + 15);
  });
});
