// Copies of guest data on their way into host sockets, carved from large
// recycled slabs instead of one fresh Buffer per segment. A write holds its
// slab until its write completes (the write callback); a slab with no
// write outstanding is reused. Like the send buffer's block pool, this keeps
// V8's external memory flat: a 64 KiB ArrayBuffer per segment made V8 run a
// major GC every ~20 ms at a few Gbit/s.
//
// A copy whose write did not complete at once (the host peer reads slowly)
// pins its whole slab: pin() says so, and the slab's full size is then
// counted by the caller's budget until the last write in it completes
// (onUnpin). Writes to a socket that already has a backlog should not use
// the arena at all (exact copies cost only their length).

export const SLAB = 1024 * 1024;
/** Free slabs kept (8 MiB); beyond that they are left to the GC. */
const FREE_MAX = 8;

export interface Slab {
  buf: Buffer;
  used: number;
  refs: number;
  pinned: boolean;
}

export interface ArenaCopy {
  data: Buffer;
  /** The slab it lives in (undefined: a plain copy). */
  slab: Slab | undefined;
}

export class WriteArena {
  private current: Slab | undefined;
  private readonly free: Slab[] = [];

  /** Called with SLAB when a pinned slab is free again. */
  constructor(private readonly onUnpin: (bytes: number) => void = () => {}) {}

  /** A copy of src, valid until release(copy). One small object per copy: this is the per-segment path. */
  copy(src: Buffer): ArenaCopy {
    const n = src.length;
    if (n > SLAB / 4) {
      // Rare (segments are at most ~64 KiB): a plain copy.
      return { data: Buffer.from(src), slab: undefined };
    }
    let s = this.current;
    if (!s || s.used + n > SLAB) {
      if (s && s.refs === 0) this.recycle(s);
      s = this.current = this.free.pop() ?? { buf: Buffer.allocUnsafeSlow(SLAB), used: 0, refs: 0, pinned: false };
      s.used = 0;
    }
    const data = s.buf.subarray(s.used, s.used + n);
    src.copy(data);
    s.used += n;
    s.refs++;
    return { data, slab: s };
  }

  /** The copy is no longer needed (its write completed). */
  release(copy: ArenaCopy): void {
    const slab = copy.slab;
    if (!slab || --slab.refs > 0) return;
    if (slab.pinned) {
      slab.pinned = false;
      this.onUnpin(SLAB);
    }
    if (slab !== this.current) this.recycle(slab);
  }

  /** The copy's write is still queued, so its slab stays held: true the first time for a slab (count SLAB bytes until onUnpin). */
  pin(copy: ArenaCopy): boolean {
    const slab = copy.slab;
    if (!slab || slab.pinned) return false;
    slab.pinned = true;
    return true;
  }

  private recycle(s: Slab): void {
    if (this.free.length < FREE_MAX) this.free.push(s);
  }
}
