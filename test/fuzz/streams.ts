// The TCP byte-stream oracle. Every byte a fuzz TCP stream carries is a
// function of the connection's 4-tuple, its direction and its offset in the
// stream, so either end can check what it receives without keeping copies:
// the guest model checks what the stack sends it, the fake host checks what
// the stack hands its sockets. A connection is checked only while the
// guest model alone has spoken on its 4-tuple: a fuzz frame that lands on
// it (mutated ports, injected segments) taints it, since the stack may then
// rightly deliver bytes nobody planned.

export type Direction = 'to-host' | 'to-guest';

export function tupleKey(guestIp: number, guestPort: number, peerIp: number, peerPort: number): string {
  return `${guestIp}:${guestPort}>${peerIp}:${peerPort}`;
}

function tupleHash(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** The byte at stream offset `off` (offsets wrap at 2^32 like sequence numbers). */
export function streamByte(hash: number, off: number): number {
  let x = Math.imul((off ^ hash) >>> 0, 0x45d9f3b);
  x ^= x >>> 15;
  x = Math.imul(x, 0x2c1b3c6d);
  x ^= x >>> 13;
  return x & 0xff;
}

export class StreamPattern {
  readonly hash: number;
  constructor(key: string, dir: Direction) {
    this.hash = tupleHash(dir + key);
  }

  bytes(off: number, len: number): Buffer {
    const b = Buffer.allocUnsafe(len);
    for (let i = 0; i < len; i++) b[i] = streamByte(this.hash, (off + i) >>> 0);
    return b;
  }

  /** Index of the first byte of `data` that differs from the stream at `off`, or -1. */
  mismatch(off: number, data: Buffer): number {
    for (let i = 0; i < data.length; i++) if (data[i] !== streamByte(this.hash, (off + i) >>> 0)) return i;
    return -1;
  }
}

export type ViolationSink = (invariant: string, detail: string) => void;

export class StreamOracle {
  private readonly tracked = new Map<string, boolean>();
  private readonly patterns = new Map<string, StreamPattern>();
  /** Where mismatches are reported (set by the harness). */
  report: ViolationSink = () => {};
  checkedBytes = 0;

  pattern(key: string, dir: Direction): StreamPattern {
    const k = dir + key;
    let p = this.patterns.get(k);
    if (!p) {
      p = new StreamPattern(key, dir);
      if (this.patterns.size > 50_000) this.patterns.clear();
      this.patterns.set(k, p);
    }
    return p;
  }

  /** Where the guest's FIN sits (stream offset), per 4-tuple. */
  private readonly guestFin = new Map<string, number>();
  /** Where the host's stream ends (the fake host closed after this many bytes). */
  private readonly hostFin = new Map<string, number>();

  /** The guest model runs a connection on this 4-tuple from now on (untainted). */
  track(key: string): void {
    this.tracked.set(key, false);
    this.guestFin.delete(key);
    if (this.tracked.size > 100_000) {
      this.tracked.clear();
      this.guestFin.clear();
      this.hostFin.clear();
    }
  }

  /** The host side opened a connection on this 4-tuple (its stream starts again). */
  hostOpened(key: string): void {
    this.hostFin.delete(key);
  }

  /** The guest sent its FIN after `off` bytes. */
  expectEof(key: string, off: number): void {
    this.guestFin.set(key, off);
  }

  /** The host side saw end-of-stream after `off` bytes: the guest must have sent FIN there. */
  verifyEof(key: string, off: number): void {
    if (!this.checked(key)) return;
    const want = this.guestFin.get(key);
    if (want === undefined) this.report('tcp-eof-without-fin', `${key}: the host was told end-of-stream at ${off}, the guest sent no FIN`);
    else if (want !== off) this.report('tcp-eof-at-wrong-offset', `${key}: end-of-stream after ${off} bytes, the guest's FIN came after ${want}`);
  }

  /** The host closed its side after `off` bytes. */
  hostClosed(key: string, off: number): void {
    this.hostFin.set(key, off);
  }

  /** The guest got the stack's FIN after `off` bytes: the host must have closed there. */
  verifyFin(key: string, off: number): void {
    if (!this.checked(key)) return;
    const want = this.hostFin.get(key);
    if (want === undefined) this.report('tcp-fin-without-close', `${key}: FIN to the guest after ${off} bytes, the host never closed`);
    else if (want !== off) this.report('tcp-fin-at-wrong-offset', `${key}: FIN to the guest after ${off} bytes, the host closed after ${want}`);
  }

  taint(key: string): void {
    if (this.tracked.has(key)) this.tracked.set(key, true);
  }

  /** The guest model is done with this 4-tuple (the host side's record stays: it is the host's). */
  forget(key: string): void {
    this.tracked.delete(key);
    this.guestFin.delete(key);
  }

  /** Are bytes on this 4-tuple to be checked? */
  checked(key: string): boolean {
    return this.tracked.get(key) === false;
  }

  /** Checks `data` received at stream offset `off`; reports the first mismatch. */
  verify(key: string, dir: Direction, off: number, data: Buffer, where: string): boolean {
    if (!this.checked(key)) return true;
    const i = this.pattern(key, dir).mismatch(off, data);
    this.checkedBytes += data.length;
    if (i < 0) return true;
    this.report(
      `tcp-stream-corrupt-${dir}`,
      `${where}: ${key} byte ${(off + i) >>> 0} is 0x${data[i]!.toString(16)}, expected 0x${streamByte(this.pattern(key, dir).hash, (off + i) >>> 0).toString(16)} (segment of ${data.length} at offset ${off})`,
    );
    return false;
  }
}
