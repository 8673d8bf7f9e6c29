// native/pty.ts — owns: pseudo-terminals for `tsnet run` on a terminal:
// opening a pty pair, its window size, and the two questions the relay asks
// of a terminal (which process group is in its foreground; whether its line
// discipline turns a keystroke into a signal). All through ioctl(2).
//
// Linux numbering (x86_64 and aarch64 share it). The kernel's struct termios
// for TCGETS: c_iflag, c_oflag, c_cflag, c_lflag (u32 each), c_line (u8),
// c_cc[19].

import { E, NativeError, O_RDWR, closeFd, errno, libc, openPath, raw } from './libc.js';

const getpgrp = libc.func('int getpgrp()') as unknown as () => number;

const TCGETS = 0x5401;
const TIOCGPGRP = 0x540f;
const TIOCGWINSZ = 0x5413;
const TIOCSWINSZ = 0x5414;
const TIOCGPTN = 0x80045430;
const TIOCSPTLCK = 0x40045431;
const TIOCGPTPEER = 0x5441;
const O_NOCTTY = 0o400;
const O_CLOEXEC = 0o2000000;

const ISIG = 0x1;
const VINTR = 0;
const VQUIT = 1;
const VDISABLE = 0;

export interface PtyPair {
  /** tsnet's end. */
  master: number;
  /** The workload's end: its stdin, stdout and stderr (close it once handed over). */
  slave: number;
}

/**
 * A new pty pair from /dev/ptmx: the master unlocked, the slave opened
 * without becoming anyone's controlling terminal (the workload's session
 * takes it with TIOCSCTTY). TIOCGPTPEER where the kernel has it (4.13+),
 * else the /dev/pts/N path.
 */
export function openPty(): PtyPair {
  const master = openPath('/dev/ptmx', O_RDWR | O_NOCTTY);
  try {
    const zero = new Int32Array(1);
    if (raw.ioctlPtr(master, TIOCSPTLCK, new Uint8Array(zero.buffer)) < 0) throw new NativeError(errno(), 'ioctl(TIOCSPTLCK)', 'unlocking the pty');
    let slave = raw.ioctlInt(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (slave < 0) {
      const e = errno();
      if (e !== E.EINVAL && e !== E.ENOTTY) throw new NativeError(e, 'ioctl(TIOCGPTPEER)', 'opening the pty slave');
      const n = new Uint32Array(1);
      if (raw.ioctlPtr(master, TIOCGPTN, new Uint8Array(n.buffer)) < 0) throw new NativeError(errno(), 'ioctl(TIOCGPTN)', 'naming the pty slave');
      slave = openPath(`/dev/pts/${n[0]}`, O_RDWR | O_NOCTTY);
    }
    return { master, slave };
  } catch (e) {
    closeFd(master);
    throw e;
  }
}

/** The window size of terminal fd as [rows, cols], or undefined when it is not a terminal. */
export function windowSize(fd: number): [number, number] | undefined {
  const ws = new Uint16Array(4);
  if (raw.ioctlPtr(fd, TIOCGWINSZ, new Uint8Array(ws.buffer)) < 0) return undefined;
  return [ws[0]!, ws[1]!];
}

/** Sets the window size of terminal fd (on a pty master: the kernel sends SIGWINCH to the slave's foreground). */
export function setWindowSize(fd: number, rows: number, cols: number): void {
  const ws = new Uint16Array([rows, cols, 0, 0]);
  raw.ioctlPtr(fd, TIOCSWINSZ, new Uint8Array(ws.buffer));
}

/** The foreground process group of terminal fd (on a pty master: of its slave), in our PID namespace; -1 if none. */
export function foregroundGroup(fd: number): number {
  const pg = new Int32Array(1);
  if (raw.ioctlPtr(fd, TIOCGPGRP, new Uint8Array(pg.buffer)) < 0) return -1;
  return pg[0]!;
}

/**
 * The characters with which terminal fd's line discipline sends SIGINT and
 * SIGQUIT (on a pty master: the slave's settings, which the workload
 * controls), or undefined when it sends none (ISIG off). A disabled
 * character is -1, so no byte matches it.
 */
export function signalKeys(fd: number): { intr: number; quit: number } | undefined {
  const t = new Uint8Array(60);
  if (raw.ioctlPtr(fd, TCGETS, t) < 0) return undefined;
  if (!(new DataView(t.buffer).getUint32(12, true) & ISIG)) return undefined;
  const cc = (i: number) => (t[17 + i] === VDISABLE ? -1 : t[17 + i]!);
  return { intr: cc(VINTR), quit: cc(VQUIT) };
}

/** Whether terminal fd has our own process group in its foreground (false when it is not a terminal or we run in the background). */
export function inForeground(fd: number): boolean {
  const fg = foregroundGroup(fd);
  return fg > 0 && fg === getpgrp();
}
