// The terminal relay of `tsnet run` on a terminal: as `podman run -it`
// does, the workload gets a pseudo-terminal of its own, in a session of its
// own (it is the session leader, the pty its controlling terminal), so an
// interactive shell has job control (^Z, fg, bg, its own foreground process
// groups) and exits with its own status. tsnet sits between the user's
// terminal and the pty's master:
//
//   user's terminal (raw) ── stdin ──▶ master ══ pty ══ slave: CMD's 0, 1, 2
//                        ◀─ stdout ── master
//
// Keystrokes go through untouched: the pty's line discipline, which the
// workload controls, turns ^C into SIGINT for its foreground group. The one
// thing tsnet adds: a ^C or ^\ that would reach PID 1 itself when PID 1 has
// no handler for it (PID 1 ignores such signals; `sleep` would never stop)
// is reported through onSignalKey, and `tsnet run` then ends the namespace
// as it does for a SIGINT sent to tsnet. The window size follows the user's
// terminal (SIGWINCH reaches the workload through the pty).

import net from 'node:net';
import { closeFd, foregroundGroup, openPty, setWindowSize, signalKeys } from '../../native/index.js';
import { pipeHandle } from './libuv.js';

export class PtyRelay {
  readonly master: number;
  /** The workload's stdin/stdout/stderr until handed over (closeSlave). */
  slave: number | undefined;
  private readonly sock: net.Socket;
  private readonly drained: Promise<void>;
  private raw = false;
  private workloadPid = 0;
  private readonly onInput = (d: Buffer) => this.input(d);
  private readonly onResize = () => this.resize();

  constructor(private readonly onSignalKey: (sig: 'SIGINT' | 'SIGQUIT') => void) {
    const pair = openPty();
    this.master = pair.master;
    this.slave = pair.slave;
    const handle = pipeHandle(this.master);
    if (!handle) throw new Error('cannot watch the pty master');
    this.sock = new net.Socket({ handle, readable: true, writable: true } as net.SocketConstructorOpts);
    this.sock.on('data', (d: Buffer) => process.stdout.write(d));
    // Once every holder of the slave is gone the master reads EIO: the end of the output.
    this.drained = new Promise<void>((resolve) => {
      this.sock.on('error', () => resolve());
      this.sock.on('close', () => resolve());
      this.sock.on('end', () => resolve());
    });
    this.resize();
  }

  /** The slave has been given to the workload: tsnet holds only the master from now on. */
  closeSlave(): void {
    if (this.slave === undefined) return;
    closeFd(this.slave);
    this.slave = undefined;
  }

  /** Starts relaying keystrokes (the user's terminal in raw mode) for the workload with this host PID. */
  start(workloadPid: number): void {
    this.workloadPid = workloadPid;
    if (process.stdin.isTTY) {
      process.stdin.setRawMode(true);
      this.raw = true;
    }
    process.stdin.on('data', this.onInput);
    process.stdin.resume();
    process.stdout.on('resize', this.onResize);
  }

  private input(d: Buffer): void {
    // The pty's settings once per chunk (a paste is one chunk), not per byte.
    const keys = signalKeys(this.master);
    if (keys) {
      for (const b of d) {
        const sig = b === keys.intr ? 'SIGINT' : b === keys.quit ? 'SIGQUIT' : undefined;
        if (sig && foregroundGroup(this.master) === this.workloadPid) this.onSignalKey(sig);
      }
    }
    this.sock.write(d);
  }

  private resize(): void {
    const rows = process.stdout.rows;
    const cols = process.stdout.columns;
    if (rows && cols) setWindowSize(this.master, rows, cols);
  }

  /**
   * The workload has exited: waits (at most timeoutMs) for the last of its
   * output, then gives the user's terminal back as it was.
   */
  async finish(timeoutMs = 2000): Promise<void> {
    this.closeSlave();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.drained, new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)))]);
    clearTimeout(timer);
    process.stdin.off('data', this.onInput);
    process.stdout.off('resize', this.onResize);
    if (this.raw) process.stdin.setRawMode(false);
    process.stdin.pause();
    process.stdin.destroy();
    this.sock.destroy();
  }
}
