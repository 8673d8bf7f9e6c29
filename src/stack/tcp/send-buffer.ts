// src/stack/tcp/send-buffer.ts — bytes accepted from the app, not yet
// acknowledged by the peer.
//
// Read this first: a bounded byte queue indexed by offset from SND.UNA. The
// connection pushes app data at the tail (push), cuts segments out of it by
// offset (slice) — for the first transmission and for retransmissions — and
// drops the front when the peer acknowledges it (ack).
// - Chunks are kept by reference (the app promises not to modify a buffer it
//   handed over), so a 64 KiB read from a host socket is never copied; a
//   segment that lies inside one chunk is a zero-copy view, one that spans
//   chunks costs a single copy.
// - Small writes (< SMALL_WRITE bytes) are copied into a shared tail block
//   instead, so a stream of 1-byte writes cannot pile up millions of Buffer
//   objects.
// - Chunk lookup is amortised O(1): positions are absolute stream offsets
//   (never renumbered on ack), a cursor remembers the last chunk found, and
//   the chunk array is compacted only when its dead prefix dominates.

const SMALL_WRITE = 2048;
const TAIL_BLOCK = 16 * 1024;

export class SendBuffer {
  private chunks: (Buffer | undefined)[] = [];
  /** Absolute stream position of each chunk's first byte. */
  private starts: number[] = [];
  private head = 0;
  private cursor = 0;
  /** Absolute position of the first unacknowledged byte. */
  private base = 0;
  /** Absolute position just after the last byte. */
  private end = 0;
  /** Block small writes are coalesced into, and how much of it is used. */
  private tail: Buffer | undefined;
  private tailUsed = 0;
  /** Index of the chunk that views `tail` (−1 if none open). */
  private tailChunk = -1;
  private tailChunkStart = 0;

  constructor(readonly capacity: number) {}

  /** Bytes queued (unsent + sent-but-unacknowledged). */
  get length(): number {
    return this.end - this.base;
  }

  /** Bytes push() would accept now. */
  get space(): number {
    return Math.max(0, this.capacity - (this.end - this.base));
  }

  /** Queues up to `space` bytes of data; returns how many were taken. */
  push(data: Buffer): number {
    const n = Math.min(data.length, this.space);
    if (n === 0) return 0;
    if (n < SMALL_WRITE) {
      this.pushSmall(n === data.length ? data : data.subarray(0, n));
    } else {
      this.tailChunk = -1;
      this.chunks.push(n === data.length ? data : data.subarray(0, n));
      this.starts.push(this.end);
      this.end += n;
    }
    return n;
  }

  private pushSmall(data: Buffer): void {
    const n = data.length;
    let tail = this.tail;
    if (tail === undefined || this.tailUsed + n > tail.length) {
      tail = this.tail = Buffer.allocUnsafe(TAIL_BLOCK);
      this.tailUsed = 0;
      this.tailChunk = -1;
    }
    data.copy(tail, this.tailUsed);
    this.tailUsed += n;
    if (this.tailChunk >= this.head && this.tailChunk === this.chunks.length - 1) {
      // Extend the open chunk: a wider view of the same block.
      this.chunks[this.tailChunk] = tail.subarray(this.tailChunkStart, this.tailUsed);
    } else {
      this.tailChunkStart = this.tailUsed - n;
      this.tailChunk = this.chunks.length;
      this.chunks.push(tail.subarray(this.tailChunkStart, this.tailUsed));
      this.starts.push(this.end);
    }
    this.end += n;
  }

  /** The peer acknowledged the first n bytes: release them. */
  ack(n: number): void {
    if (n <= 0) return;
    this.base = Math.min(this.end, this.base + n);
    const chunks = this.chunks;
    const starts = this.starts;
    while (this.head < chunks.length && starts[this.head] + chunks[this.head]!.length <= this.base) {
      if (this.head === this.tailChunk) this.tailChunk = -1;
      chunks[this.head] = undefined;
      this.head++;
    }
    if (this.head === chunks.length) {
      // Everything acknowledged: start over (cheap, and frees the arrays).
      chunks.length = 0;
      starts.length = 0;
      this.head = 0;
      this.cursor = 0;
      this.tailChunk = -1;
    } else if (this.head > 64 && this.head * 2 > chunks.length) {
      const h = this.head;
      chunks.splice(0, h);
      starts.splice(0, h);
      this.cursor = Math.max(0, this.cursor - h);
      if (this.tailChunk >= 0) this.tailChunk -= h;
      this.head = 0;
    }
  }

  /**
   * `len` bytes starting `offset` bytes after the first unacknowledged byte.
   * A view when they lie in one chunk, else one fresh copy. The range must be
   * inside [0, length).
   */
  slice(offset: number, len: number): Buffer {
    const pos = this.base + offset;
    if (len <= 0) return Buffer.alloc(0);
    if (offset < 0 || pos + len > this.end) throw new RangeError('send buffer slice out of range');
    const chunks = this.chunks;
    const starts = this.starts;
    let c = Math.max(this.cursor, this.head);
    if (c >= chunks.length || starts[c] > pos) {
      // Behind the cursor (a retransmission): binary search.
      let a = this.head;
      let b = chunks.length - 1;
      while (a < b) {
        const m = (a + b + 1) >>> 1;
        if (starts[m] <= pos) a = m;
        else b = m - 1;
      }
      c = a;
    } else {
      while (starts[c] + chunks[c]!.length <= pos) c++;
    }
    this.cursor = c;
    const chunk = chunks[c]!;
    const at = pos - starts[c];
    if (at + len <= chunk.length) return chunk.subarray(at, at + len);
    const out = Buffer.allocUnsafe(len);
    let done = chunk.copy(out, 0, at);
    while (done < len) {
      c++;
      const next = chunks[c]!;
      done += next.copy(out, done, 0, Math.min(next.length, len - done));
    }
    return out;
  }
}
