// src/stack/tcp/send-buffer.ts — bytes accepted from the app, not yet
// acknowledged by the peer.
//
// Read this first: a bounded byte queue indexed by offset from SND.UNA. The
// connection pushes app data at the tail (push), cuts segments out of it by
// offset (slice) — for the first transmission and for retransmissions — and
// drops the front when the peer acknowledges it (ack).
// - push() copies into fixed-size blocks taken from a process-wide pool and
//   returned to it once acknowledged. Keeping the app's buffers instead
//   (zero copy) looked cheaper but was not: every 64 KiB host-socket read is
//   a fresh ArrayBuffer, and at a few Gbit/s that external-memory churn made
//   V8 run a major GC every ~20 ms (measured with --trace-gc and perf). One
//   memcpy into recycled blocks costs far less, and lets the host side read
//   into a single reused buffer (Node's onread).
// - A reader may also fill the queue in place (lend/commit): a host socket's
//   read lands straight in the tail block, with no copy at all. While lent,
//   the tail block is never released: a read may land in it any time until
//   commit() or unlend(), so an acknowledgement leaves it held and dispose()
//   leaves it to the garbage collector rather than the pool.
// - A segment inside one block is a zero-copy view; one spanning two blocks
//   is assembled in a shared scratch buffer (see slice()).
// - Positions count from the start of the first block kept: block k covers
//   [k·BLOCK, (k+1)·BLOCK). Releasing a block renumbers what is left, so
//   positions stay below capacity + BLOCK however much the connection moves
//   (absolute stream offsets would pass 2^31 after 2 GiB and turn every
//   position into a double: src/stack/numbers.ts).
// - Memory: every block a buffer holds is taken from the stack's
//   MemoryBudget (src/stack/budget.ts) and given back when acknowledged; a
//   push that needs a block the budget refuses stops short. `limit` narrows
//   the capacity to the flow's fair share of the budget.

import type { MemoryBudget } from '../budget.js';
import { idiv } from '../numbers.js';

/** Block size: large enough that few MSS-sized segments span two blocks. */
export const BLOCK = 256 * 1024;
/** Free blocks kept for reuse across all connections (16 MiB). */
const POOL_MAX = 64;
const pool: Buffer[] = [];

function takeBlock(): Buffer {
  return pool.pop() ?? Buffer.allocUnsafeSlow(BLOCK);
}

function releaseBlock(b: Buffer): void {
  if (pool.length < POOL_MAX) pool.push(b);
}

/**
 * Segments spanning two blocks are assembled here. slice() results are used
 * only until the segment has been emitted (copied into a frame), so one
 * shared buffer serves every connection.
 */
const SPAN_SCRATCH = Buffer.allocUnsafeSlow(128 * 1024);

export class SendBuffer {
  private readonly blocks: Buffer[] = [];
  /** Position of the first unacknowledged byte (from the start of blocks[0]). */
  private base = 0;
  /** Position just after the last byte. */
  private end = 0;
  /** The block lend() handed out room in, until commit() or unlend(). */
  private lentBlock: Buffer | undefined = undefined;

  constructor(
    readonly capacity: number,
    private readonly budget?: MemoryBudget,
    /** What this buffer may hold given the memory it holds now (its share of the budget). */
    private readonly limit?: (held: number) => number,
  ) {}

  /** Memory held in blocks. */
  get held(): number {
    return this.blocks.length * BLOCK;
  }

  /** Bytes queued (unsent + sent-but-unacknowledged). */
  get length(): number {
    return this.end - this.base;
  }

  /** Bytes push() would accept now. */
  get space(): number {
    // A flow may always fill the blocks it already holds (their memory is
    // counted either way); beyond them, its share of the budget.
    const cap = this.limit ? Math.min(this.capacity, Math.max(this.limit(this.held), this.held)) : this.capacity;
    let space = Math.max(0, cap - (this.end - this.base));
    if (this.budget) {
      // Promise only what push() can store: room in the blocks held plus
      // the blocks the budget can still give.
      const inBlocks = this.held - this.end;
      space = Math.max(0, Math.min(space, inBlocks + idiv(this.budget.free, BLOCK) * BLOCK));
    }
    return space;
  }

  /** Copies up to `space` bytes of data in; returns how many were taken. The caller may reuse `data` at once. */
  push(data: Buffer): number {
    if (this.lentBlock) throw new Error('send buffer: push while room is lent');
    const n = Math.min(data.length, this.space);
    let done = 0;
    while (done < n) {
      const pos = this.end + done;
      const k = idiv(pos, BLOCK);
      if (k === this.blocks.length) {
        if (this.budget && !this.budget.take(BLOCK)) break;
        this.blocks.push(takeBlock());
      }
      const at = pos - k * BLOCK;
      done += data.copy(this.blocks[k]!, at, done, Math.min(n, done + BLOCK - at));
    }
    this.end += done;
    return done;
  }

  /** The peer acknowledged the first n bytes: release them. */
  ack(n: number): void {
    if (n <= 0) return;
    this.base = Math.min(this.end, this.base + n);
    while (this.blocks.length > 0 && BLOCK <= this.base) {
      // blocks[0] is wholly acknowledged: release it and renumber.
      this.giveBack(this.blocks.shift()!);
      this.base -= BLOCK;
      this.end -= BLOCK;
    }
    this.releaseIfEmpty();
  }

  /**
   * Everything acknowledged: give the last block back too (unless its room
   * is lent); the next push starts a fresh block at its beginning.
   */
  private releaseIfEmpty(): void {
    if (this.base === this.end && this.blocks.length > 0 && this.lentBlock === undefined) {
      this.giveBack(this.blocks.pop()!);
      this.base = 0;
      this.end = 0;
    }
  }

  /**
   * Lends the room after the last byte, at most `max` bytes and within
   * `space`, for a reader to fill in place: a view of the tail block (a
   * block is taken when the tail one is full). The reader then calls
   * commit(n) with what it wrote, or unlend(); until then push() is refused
   * and the block stays held. Undefined when there is no room.
   */
  lend(max: number): Buffer | undefined {
    if (this.lentBlock) throw new Error('send buffer: room already lent');
    const n = Math.min(max, this.space);
    if (n <= 0) return undefined;
    const k = idiv(this.end, BLOCK);
    if (k === this.blocks.length) {
      if (this.budget && !this.budget.take(BLOCK)) return undefined;
      this.blocks.push(takeBlock());
    }
    const block = this.blocks[k]!;
    const at = this.end - k * BLOCK;
    this.lentBlock = block;
    return block.subarray(at, at + Math.min(n, BLOCK - at));
  }

  /** The reader wrote n bytes at the start of the lent room: they join the queue. Returns n. */
  commit(n: number): number {
    const block = this.lentBlock;
    if (!block) throw new Error('send buffer: commit without lend');
    this.lentBlock = undefined;
    const k = idiv(this.end, BLOCK);
    const at = this.end - k * BLOCK;
    // The lent room is still the tail: acknowledgements renumber positions
    // but never release the block holding it.
    if (this.blocks[k] !== block || n < 0 || n > BLOCK - at) throw new Error('send buffer: commit outside the lent room');
    this.end += n;
    this.releaseIfEmpty();
    return n;
  }

  /** The reader will not write into the lent room (its socket ended). */
  unlend(): void {
    this.lentBlock = undefined;
    this.releaseIfEmpty();
  }

  /**
   * Returns every block (the connection is gone). A block whose room is lent
   * may still be written by its reader: it is not pooled, only its budget
   * comes back.
   */
  dispose(): void {
    while (this.blocks.length > 0) {
      const b = this.blocks.pop()!;
      if (b === this.lentBlock) this.budget?.release(BLOCK);
      else this.giveBack(b);
    }
    this.lentBlock = undefined;
    this.base = 0;
    this.end = 0;
  }

  private giveBack(b: Buffer): void {
    releaseBlock(b);
    this.budget?.release(BLOCK);
  }

  /**
   * `len` bytes starting `offset` bytes after the first unacknowledged byte.
   * A view when they lie in one block, else a copy in a shared scratch
   * buffer that the next slice() overwrites — use the result before slicing
   * again. The range must be inside [0, length).
   */
  slice(offset: number, len: number): Buffer {
    const pos = this.base + offset;
    if (len <= 0) return Buffer.alloc(0);
    if (offset < 0 || pos + len > this.end) throw new RangeError('send buffer slice out of range');
    const k = idiv(pos, BLOCK);
    const at = pos - k * BLOCK;
    if (at + len <= BLOCK) return this.blocks[k]!.subarray(at, at + len);
    const out = len <= SPAN_SCRATCH.length ? SPAN_SCRATCH.subarray(0, len) : Buffer.allocUnsafe(len);
    let done = this.blocks[k]!.copy(out, 0, at);
    for (let j = k + 1; done < len; j++) done += this.blocks[j]!.copy(out, done, 0, Math.min(BLOCK, len - done));
    return out;
  }
}
