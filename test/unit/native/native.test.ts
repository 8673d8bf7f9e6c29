// test/unit/native/native.test.ts — native/ without root or namespaces:
// errno naming, NativeError shape, fd helpers, pidfd, poll/Waker/Poller.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { accessSync, constants } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import {
  E,
  tuneMalloc,
  NativeError,
  O_RDONLY,
  POLLIN,
  Poller,
  Waker,
  closeFd,
  drain,
  errnoName,
  getFeatures,
  isFdOpen,
  onPidExit,
  openPath,
  openTun,
  pidfdExited,
  pidfdGetfd,
  pidfdOpen,
  pipe,
  randomFill,
  readFrame,
  setIff,
  waitReadable,
  waitReadableAsync,
  writeFrame,
  IFF_TAP,
  IFF_NO_PI,
  IFF_VNET_HDR,
} from '../../../native/index.js';

function probe(f: () => number): boolean {
  try {
    closeFd(f());
    return true;
  } catch (e) {
    if (e instanceof NativeError && e.code === 'ENOSYS') return false;
    throw e;
  }
}
const hasPidfd = probe(() => pidfdOpen(process.pid));
const hasGetfd =
  hasPidfd &&
  (() => {
    const p = pidfdOpen(process.pid);
    try {
      return probe(() => pidfdGetfd(p, p));
    } finally {
      closeFd(p);
    }
  })();
const tunAccessible = (() => {
  try {
    accessSync('/dev/net/tun', constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
})();

const toClose: number[] = [];
afterEach(() => {
  for (const fd of toClose.splice(0)) if (isFdOpen(fd)) closeFd(fd);
});
function pipeFds(nonBlocking = true): [number, number] {
  const p = pipe(nonBlocking);
  toClose.push(...p);
  return p;
}

describe('randomFill (getrandom)', () => {
  it('fills every byte, and two fills differ', () => {
    const a = Buffer.alloc(4096);
    const b = Buffer.alloc(4096);
    randomFill(a);
    randomFill(b);
    expect(a.equals(b)).toBe(false);
    // 4096 random bytes: every byte value turns up (the chance one is missing is ~1e-4).
    expect(new Set(a).size).toBeGreaterThan(240);
    randomFill(a.subarray(4090));
    expect(a.length).toBe(4096);
  });
});

describe('errno naming', () => {
  it('names the errnos tsnet meets', () => {
    expect(errnoName(1)).toBe('EPERM');
    expect(errnoName(2)).toBe('ENOENT');
    expect(errnoName(3)).toBe('ESRCH');
    expect(errnoName(11)).toBe('EAGAIN');
    expect(errnoName(13)).toBe('EACCES');
    expect(errnoName(16)).toBe('EBUSY');
    expect(errnoName(19)).toBe('ENODEV');
    expect(errnoName(22)).toBe('EINVAL');
    expect(errnoName(38)).toBe('ENOSYS');
    expect(errnoName(77)).toBe('EBADFD');
    expect(errnoName(95)).toBe('EOPNOTSUPP');
    expect(errnoName(101)).toBe('ENETUNREACH');
    expect(errnoName(110)).toBe('ETIMEDOUT');
    expect(errnoName(111)).toBe('ECONNREFUSED');
    expect(errnoName(113)).toBe('EHOSTUNREACH');
    expect(E.EAGAIN).toBe(11);
  });

  it('falls back for unknown numbers', () => {
    expect(errnoName(4000)).toBe('E4000');
  });
});

describe('NativeError', () => {
  it('has code, errno, syscall and a "CODE doing: strerror" message', () => {
    const e = new NativeError(1, 'open', 'opening /dev/net/tun');
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe('NativeError');
    expect(e.code).toBe('EPERM');
    expect(e.errno).toBe(1);
    expect(e.syscall).toBe('open');
    expect(e.message).toBe('EPERM opening /dev/net/tun: Operation not permitted');
  });

  it('is what a failing open(2) throws, with the real errno', () => {
    let err: unknown;
    try {
      openPath('/nonexistent-tsnet/x', O_RDONLY);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(NativeError);
    const ne = err as NativeError;
    expect(ne.code).toBe('ENOENT');
    expect(ne.errno).toBe(2);
    expect(ne.syscall).toBe('open');
    expect(ne.message).toBe('ENOENT opening /nonexistent-tsnet/x: No such file or directory');
  });

  it('openTun reports the path it tried', () => {
    expect(() => openTun('/nonexistent-tsnet/tun')).toThrow(
      'ENOENT opening /nonexistent-tsnet/tun: No such file or directory',
    );
  });

  it('setIff rejects an over-long interface name before any syscall', () => {
    expect(() => setIff(-1, 'a-very-long-name0')).toThrow(/^EINVAL interface name/);
  });
});

describe('fd read/write helpers', () => {
  it('readFrame returns -1 on EAGAIN and the length otherwise', () => {
    const [r, w] = pipeFds();
    const buf = Buffer.alloc(64);
    expect(readFrame(r, buf)).toBe(-1);
    expect(writeFrame(w, Buffer.from('hello world'), 5)).toBe(5);
    expect(readFrame(r, buf)).toBe(5);
    expect(buf.toString('utf8', 0, 5)).toBe('hello');
  });

  it('drain stops at EAGAIN', () => {
    const [r, w] = pipeFds();
    writeFrame(w, Buffer.from('abc'));
    const bufs = [Buffer.alloc(16), Buffer.alloc(16)];
    const lens = [0, 0];
    expect(drain(r, bufs, lens)).toBe(1);
    expect(lens[0]).toBe(3);
    expect(drain(r, bufs, lens)).toBe(0);
  });

  it('readFrame throws EBADF on a closed fd', () => {
    const [r] = pipe(true);
    closeFd(r);
    expect(() => readFrame(r, Buffer.alloc(8))).toThrow(expect.objectContaining({ code: 'EBADF', syscall: 'read' }));
  });
});

describe('pidfd', () => {
  it.skipIf(!hasPidfd)('pidfdOpen on our own pid works and is not exited', () => {
    const p = pidfdOpen(process.pid);
    toClose.push(p);
    expect(p).toBeGreaterThanOrEqual(0);
    expect(pidfdExited(p)).toBe(false);
  });

  it.skipIf(!hasPidfd)('pidfdOpen of a dead (reaped) pid throws ESRCH', async () => {
    const child = spawn('true', { stdio: 'ignore' });
    await once(child, 'exit'); // node has reaped it by now
    expect(() => pidfdOpen(child.pid!)).toThrow(
      expect.objectContaining({ code: 'ESRCH', errno: 3, syscall: 'pidfd_open' }),
    );
  });

  it.skipIf(!hasGetfd)('pidfdGetfd duplicates an fd of a process (ourselves)', () => {
    const p = pidfdOpen(process.pid);
    toClose.push(p);
    const [r, w] = pipeFds();
    const dup = pidfdGetfd(p, w);
    toClose.push(dup);
    expect(dup).not.toBe(w);
    writeFrame(dup, Buffer.from('x'));
    expect(readFrame(r, Buffer.alloc(4))).toBe(1);
    expect(() => pidfdGetfd(p, 1_000_000)).toThrow(expect.objectContaining({ code: 'EBADF' }));
  });

  it.skipIf(!hasPidfd)('onPidExit fires when a child exits', async () => {
    const child = spawn('sleep', ['0.05'], { stdio: 'ignore' });
    const poller = new Poller();
    const seen = new Promise<void>((resolve) => onPidExit(child.pid!, resolve, poller));
    await seen;
    expect(poller.size).toBe(0);
    await poller.close();
  });
});

describe('poll', () => {
  it('waitReadable fires when the pipe is written', async () => {
    const [r, w] = pipeFds();
    const p = waitReadableAsync(r, 5000);
    setTimeout(() => writeFrame(w, Buffer.from('!')), 20);
    const res = await p;
    expect(res.revents & POLLIN).toBe(POLLIN);
    expect(res.woken).toBe(false);
    expect(res.timedOut).toBe(false);
  });

  it('waitReadable times out with revents 0', async () => {
    const [r] = pipeFds();
    const res = await waitReadableAsync(r, 20);
    expect(res).toEqual({ revents: 0, woken: false, timedOut: true });
  });

  it('a Waker (eventfd) cancels an infinite wait at once', async () => {
    const [r] = pipeFds();
    const waker = new Waker();
    try {
      const t0 = Date.now();
      const done = new Promise<[number, boolean]>((resolve, reject) =>
        waitReadable(r, -1, (err, revents, woken) => (err ? reject(err) : resolve([revents, woken])), waker),
      );
      setTimeout(() => waker.wake(), 20);
      expect(await done).toEqual([0, true]);
      expect(Date.now() - t0).toBeLessThan(1000);
    } finally {
      waker.close();
    }
  });

  it('Poller calls back per readiness and quiesces on remove/close', async () => {
    const [r, w] = pipeFds();
    const poller = new Poller();
    const got: string[] = [];
    const buf = Buffer.alloc(16);
    let notify = (): void => {};
    poller.add(r, () => {
      let n;
      while ((n = readFrame(r, buf)) > 0) got.push(buf.toString('utf8', 0, n));
      notify();
    });
    for (const msg of ['a', 'b']) {
      const seen = new Promise<void>((resolve) => (notify = resolve));
      writeFrame(w, Buffer.from(msg));
      await seen;
    }
    expect(got).toEqual(['a', 'b']);
    await poller.remove(r); // resolves only once no poll references r
    expect(poller.size).toBe(0);
    await poller.close();
  });
});

describe('tun (needs /dev/net/tun access, no privileges)', () => {
  it.skipIf(!tunAccessible)('openTun + TUNGETFEATURES reports TAP/NO_PI/VNET_HDR support', () => {
    const fd = openTun();
    toClose.push(fd);
    const f = getFeatures(fd);
    expect(f & IFF_TAP).toBe(IFF_TAP);
    expect(f & IFF_NO_PI).toBe(IFF_NO_PI);
    expect(f & IFF_VNET_HDR).toBe(IFF_VNET_HDR);
  });
});

describe('tuneMalloc (mallopt)', () => {
  it('glibc takes both settings, and again (the entry points may both call it)', () => {
    expect(tuneMalloc()).toBe(true);
    expect(tuneMalloc()).toBe(true);
  });
});
