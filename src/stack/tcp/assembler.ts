// src/stack/tcp/assembler.ts — out-of-order reassembly of received data.
//
// Read this first: the connection delivers a segment that starts exactly at
// RCV.NXT straight to the app; everything that arrives ahead of RCV.NXT is
// parked here until the hole before it is filled (RFC 9293 §3.10.7.4,
// "segments with higher beginning sequence numbers SHOULD be held for later
// processing"). The assembler
// - keeps pieces sorted by sequence number and never overlapping: a new
//   segment only adds the bytes that no stored piece covers, so duplicates
//   and partial overlaps cost nothing;
// - never holds a byte outside [RCV.NXT, RCV.NXT + window) — the caller
//   passes the window it advertised, so memory is bounded by it — and at most
//   `maxPieces` pieces (a flood of 1-byte segments cannot make it grow);
// - copies each kept segment once (Buffer.from of the useful range); pieces of
//   one segment are views of that copy, handed to the app without a second
//   copy by pop();
// - reports SACK blocks (RFC 2018 §4): the block holding the most recently
//   received segment first, then the most recently reported others.
//
// Sequence numbers are absolute (unsigned 32-bit); positions are compared as
// offsets from the current RCV.NXT, so wrap-around needs no special case.

import { seqAdd, seqDiff } from './seq.js';

interface Piece {
  seq: number;
  data: Buffer;
}

/** RFC 2018 §3: at most 4 SACK blocks fit in the 40 option bytes. */
export const MAX_SACK_BLOCKS = 4;
/** How many recently received segment positions we remember for SACK ordering. */
const RECENT = 8;

export class Assembler {
  private pieces: Piece[] = [];
  /** Absolute seqs of recently stored segments, most recent first. */
  private recent: number[] = [];
  /** Bytes currently held. */
  bytes = 0;

  constructor(readonly maxPieces = 256) {}

  get isEmpty(): boolean {
    return this.pieces.length === 0;
  }

  get pieceCount(): number {
    return this.pieces.length;
  }

  clear(): void {
    this.pieces.length = 0;
    this.recent.length = 0;
    this.bytes = 0;
  }

  /**
   * Stores `data` (which starts at sequence number `seq`), clipped to
   * [rcvNxt, rcvNxt + window). Returns the number of bytes newly stored
   * (0 for a pure duplicate, or when the piece limit is reached).
   * `data` is only read during the call.
   */
  insert(rcvNxt: number, seq: number, data: Buffer, window: number): number {
    const off = seqDiff(seq, rcvNxt);
    const lo = Math.max(off, 0);
    const hi = Math.min(off + data.length, window);
    if (lo >= hi) return 0;
    const pieces = this.pieces;
    const n = pieces.length;
    // First piece that ends after lo (pieces are sorted and disjoint).
    let a = 0;
    let b = n;
    while (a < b) {
      const m = (a + b) >>> 1;
      const p = pieces[m];
      if (seqDiff(p.seq, rcvNxt) + p.data.length <= lo) a = m + 1;
      else b = m;
    }
    // Walk the stored pieces overlapping [lo, hi) and collect the gaps.
    let gaps: number[] | undefined;
    let cur = lo;
    let i = a;
    while (cur < hi) {
      if (i < n) {
        const pOff = seqDiff(pieces[i].seq, rcvNxt);
        if (pOff <= cur) {
          cur = Math.max(cur, pOff + pieces[i].data.length);
          i++;
          continue;
        }
        const gapEnd = Math.min(hi, pOff);
        (gaps ??= []).push(cur, gapEnd);
        cur = gapEnd;
      } else {
        (gaps ??= []).push(cur, hi);
        cur = hi;
      }
    }
    this.noteRecent(seqAdd(rcvNxt, lo));
    if (gaps === undefined) return 0;
    const k = gaps.length / 2;
    if (n + k > this.maxPieces) return 0;
    // One copy of the useful range; every gap is a view of it.
    const first = gaps[0];
    const last = gaps[gaps.length - 1];
    const copy = Buffer.from(data.subarray(first - off, last - off));
    const added: Piece[] = [];
    let stored = 0;
    for (let g = 0; g < gaps.length; g += 2) {
      const s = gaps[g];
      const e = gaps[g + 1];
      added.push({ seq: seqAdd(rcvNxt, s), data: copy.subarray(s - first, e - first) });
      stored += e - s;
    }
    // Gaps lie between stored pieces; merge the two sorted runs from index a.
    if (k === 1 || a === n) {
      // Common case: one gap, or everything goes at the end — the run is
      // contiguous in the array.
      if (k === 1) {
        let j = a;
        const s = seqDiff(added[0].seq, rcvNxt);
        while (j < n && seqDiff(pieces[j].seq, rcvNxt) < s) j++;
        pieces.splice(j, 0, added[0]);
      } else {
        pieces.push(...added);
      }
    } else {
      const tail = pieces.splice(a);
      let x = 0;
      let y = 0;
      while (x < tail.length || y < added.length) {
        if (y >= added.length || (x < tail.length && seqDiff(tail[x].seq, rcvNxt) < seqDiff(added[y].seq, rcvNxt))) {
          pieces.push(tail[x++]);
        } else {
          pieces.push(added[y++]);
        }
      }
    }
    this.bytes += stored;
    return stored;
  }

  /**
   * Removes and returns the data that continues the stream at rcvNxt, if the
   * first stored piece reaches it (trimming what lies below rcvNxt), else
   * undefined. Call repeatedly, advancing rcvNxt, until undefined.
   */
  pop(rcvNxt: number): Buffer | undefined {
    const pieces = this.pieces;
    while (pieces.length > 0) {
      const p = pieces[0];
      const off = seqDiff(p.seq, rcvNxt);
      if (off > 0) return undefined;
      pieces.shift();
      this.bytes -= p.data.length;
      if (off + p.data.length > 0) return p.data.subarray(-off);
    }
    return undefined;
  }

  /** Drops everything at or beyond the given offset from rcvNxt (used if the window is ever cut). */
  trimBeyond(rcvNxt: number, window: number): void {
    const pieces = this.pieces;
    while (pieces.length > 0) {
      const p = pieces[pieces.length - 1];
      const off = seqDiff(p.seq, rcvNxt);
      if (off + p.data.length <= window) break;
      if (off >= window) {
        pieces.pop();
        this.bytes -= p.data.length;
      } else {
        const keep = window - off;
        this.bytes -= p.data.length - keep;
        p.data = p.data.subarray(0, keep);
      }
    }
  }

  /**
   * Up to `max` SACK blocks [left, right) (absolute), RFC 2018 §4 order: the
   * block holding the most recently received segment first, then the blocks
   * of other recent segments, then the rest in sequence order.
   */
  sackBlocks(rcvNxt: number, max = MAX_SACK_BLOCKS): [number, number][] {
    const pieces = this.pieces;
    if (pieces.length === 0 || max <= 0) return [];
    // Contiguous runs of pieces form the blocks (offsets from rcvNxt).
    const runs: number[] = [];
    for (let i = 0; i < pieces.length; i++) {
      const s = seqDiff(pieces[i].seq, rcvNxt);
      const e = s + pieces[i].data.length;
      if (e <= 0) continue;
      const r = runs.length;
      if (r > 0 && runs[r - 1] === s) runs[r - 1] = e;
      else runs.push(Math.max(s, 0), e);
    }
    const out: [number, number][] = [];
    const used = new Set<number>();
    for (const seq of this.recent) {
      if (out.length >= max) break;
      const off = seqDiff(seq, rcvNxt);
      for (let r = 0; r < runs.length; r += 2) {
        if (runs[r] <= off && off < runs[r + 1]) {
          if (!used.has(r)) {
            used.add(r);
            out.push([seqAdd(rcvNxt, runs[r]), seqAdd(rcvNxt, runs[r + 1])]);
          }
          break;
        }
      }
    }
    for (let r = 0; r < runs.length && out.length < max; r += 2) {
      if (!used.has(r)) out.push([seqAdd(rcvNxt, runs[r]), seqAdd(rcvNxt, runs[r + 1])]);
    }
    return out;
  }

  private noteRecent(seq: number): void {
    const recent = this.recent;
    const at = recent.indexOf(seq);
    if (at >= 0) recent.splice(at, 1);
    recent.unshift(seq);
    if (recent.length > RECENT) recent.length = RECENT;
  }
}
