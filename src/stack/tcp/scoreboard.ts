// src/stack/tcp/scoreboard.ts — what we sent and what became of it.
//
// Read this first: one record per segment of data (or FIN) sent and not yet
// cumulatively acknowledged, in sequence order — the sender's view of
// [SND.UNA, SND.MAX). Each record carries the time of its latest
// transmission (RFC 8985 §6.1 "Segment.xmit_ts") and three flags:
// - sacked: the peer holds it (a SACK block covers all of it, RFC 2018);
// - lost:   RACK, NewReno or the RTO declared it lost; it stays lost until
//           acknowledged, SACKed, or (after a retransmission) re-declared;
// - rtxOut: a retransmission of it is in flight and not deemed lost.
// From these the scoreboard keeps RFC 6675's "pipe" as running byte counts,
// the way Linux does (packets_in_flight = out − sacked − lost + retrans):
//   pipe = outBytes − sackedBytes − lostBytes + rtxOutBytes.
//
// Cost: O(1) amortised per segment. Records sit in an array with a moving
// head (cumulative ACKs drop from the front); SACK blocks are first diffed
// against the SACKed ranges already known, so only newly covered records are
// visited; a doubly-linked list orders the records still "in flight" by
// transmit time, so RACK's loss scan (rack.ts) starts from the oldest
// transmission and stops at the first one it cannot yet judge; lost records
// wait in a FIFO for their retransmission.
//
// Sequence numbers are absolute (unsigned 32-bit), compared with seq.ts.

import { seqAdd, seqDiff, seqGe, seqGt, seqLe, seqLt, seqMax, seqMin } from './seq.js';

export interface SegRecord {
  start: number;
  /** One past the last sequence number (the FIN's, if `fin`). */
  end: number;
  fin: boolean;
  /** Time (ms) of the latest transmission. */
  xmit: number;
  /**
   * Order of the latest transmission among all of ours: RFC 8985's
   * RACK_sent_after() breaks time ties by sequence number, which misorders a
   * retransmission sent in the same millisecond as later new data; a
   * counter gives the true order.
   */
  order: number;
  /** Times retransmitted. */
  rtx: number;
  sacked: boolean;
  lost: boolean;
  rtxOut: boolean;
  /** Cumulatively acknowledged (removed). */
  acked: boolean;
  /** Time-ordered list of records in flight (not SACKed, not lost, not acked). */
  prev: SegRecord | undefined;
  next: SegRecord | undefined;
  linked: boolean;
}

/** SACKed ranges remembered for diffing incoming blocks; more only cost time, not correctness. */
const MAX_RANGES = 64;

export class Scoreboard {
  private recs: SegRecord[] = [];
  private head = 0;
  /** Oldest and newest transmission among records in flight. */
  oldest: SegRecord | undefined;
  private newest: SegRecord | undefined;
  private lostQ: SegRecord[] = [];
  private lostHead = 0;
  /** Sorted disjoint [start, end) pairs: what SACK blocks covered so far. */
  private ranges: number[] = [];
  private orderSeq = 0;

  outBytes = 0;
  sackedBytes = 0;
  sackedSegs = 0;
  lostBytes = 0;
  rtxOutBytes = 0;

  /** RFC 6675 pipe (bytes), Linux's packets_in_flight in bytes. */
  get pipe(): number {
    return this.outBytes - this.sackedBytes - this.lostBytes + this.rtxOutBytes;
  }

  /** Records outstanding (sent, not cumulatively acknowledged). */
  get count(): number {
    return this.recs.length - this.head;
  }

  get isEmpty(): boolean {
    return this.head === this.recs.length;
  }

  /** The record with the highest sequence numbers. */
  last(): SegRecord | undefined {
    return this.isEmpty ? undefined : this.recs[this.recs.length - 1];
  }

  first(): SegRecord | undefined {
    return this.isEmpty ? undefined : this.recs[this.head];
  }

  /** New data (or FIN) went out for the first time. */
  add(start: number, end: number, fin: boolean, now: number): void {
    const r: SegRecord = {
      start,
      end,
      fin,
      xmit: now,
      order: ++this.orderSeq,
      rtx: 0,
      sacked: false,
      lost: false,
      rtxOut: false,
      acked: false,
      prev: undefined,
      next: undefined,
      linked: false,
    };
    this.recs.push(r);
    this.outBytes += seqDiff(end, start);
    this.link(r);
  }

  /** `r` was sent again at `now` (a repair or a loss probe). */
  retransmitted(r: SegRecord, now: number): void {
    r.xmit = now;
    r.order = ++this.orderSeq;
    r.rtx++;
    if (!r.rtxOut) {
      r.rtxOut = true;
      this.rtxOutBytes += len(r);
    }
    this.unlink(r);
    this.link(r);
  }

  /**
   * Cumulative ACK up to `ack`: drops covered records, trims a straddling
   * one. `delivered` sees each record that reached the peer with this ACK
   * (not those SACKed before).
   */
  ackTo(ack: number, delivered: (r: SegRecord) => void): void {
    const recs = this.recs;
    while (this.head < recs.length) {
      const r = recs[this.head];
      if (seqLe(r.end, ack)) {
        if (!r.sacked) delivered(r);
        this.drop(r);
        recs[this.head] = undefined as unknown as SegRecord;
        this.head++;
        continue;
      }
      if (seqLt(r.start, ack)) {
        // Partly acknowledged (a receiver that took part of a segment).
        const cut = seqDiff(ack, r.start);
        this.outBytes -= cut;
        if (r.sacked) this.sackedBytes -= cut;
        else if (r.lost) this.lostBytes -= cut;
        if (r.rtxOut && !r.sacked) this.rtxOutBytes -= cut;
        r.start = ack;
      }
      break;
    }
    if (this.head === recs.length && this.head >= 64) {
      // All acknowledged: start over. Not after every ACK: emptying an
      // array drops its storage, and the next send would allocate anew
      // (once per round trip for request/response traffic).
      recs.length = 0;
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > recs.length) {
      recs.splice(0, this.head);
      this.head = 0;
    }
    this.pruneRanges(ack);
  }

  private drop(r: SegRecord): void {
    const n = len(r);
    this.outBytes -= n;
    if (r.sacked) {
      this.sackedBytes -= n;
      this.sackedSegs--;
    } else {
      if (r.lost) this.lostBytes -= n;
      if (r.rtxOut) this.rtxOutBytes -= n;
    }
    r.acked = true;
    this.unlink(r);
  }

  /**
   * One SACK block [l, r) above SND.UNA (RFC 2018 §4): marks the records it
   * newly covers and reports each to `delivered`.
   */
  sack(l: number, r: number, delivered: (rec: SegRecord) => void): void {
    const rg = this.ranges;
    // Parts of [l, r) not yet covered by a known range.
    const parts: number[] = [];
    let cur = l;
    for (let i = 0; i < rg.length && seqLt(cur, r); i += 2) {
      if (seqLe(rg[i + 1], cur)) continue;
      if (seqGe(rg[i], r)) break;
      if (seqLt(cur, rg[i])) parts.push(cur, rg[i]);
      cur = seqMax(cur, rg[i + 1]);
    }
    if (seqLt(cur, r)) parts.push(cur, r);
    if (parts.length === 0) return;
    const [ml, mr] = this.addRange(l, r);
    for (let p = 0; p < parts.length; p += 2) {
      let i = this.indexAt(parts[p]);
      const recs = this.recs;
      while (i < recs.length && seqLt(recs[i].start, parts[p + 1])) {
        const rec = recs[i++];
        // Only whole records count as SACKed.
        if (rec.sacked || seqLt(rec.start, ml) || seqGt(rec.end, mr)) continue;
        this.markSacked(rec);
        delivered(rec);
      }
    }
  }

  private markSacked(rec: SegRecord): void {
    const n = len(rec);
    if (rec.lost) {
      rec.lost = false;
      this.lostBytes -= n;
    }
    if (rec.rtxOut) {
      rec.rtxOut = false;
      this.rtxOutBytes -= n;
    }
    rec.sacked = true;
    this.sackedBytes += n;
    this.sackedSegs++;
    this.unlink(rec);
  }

  /** Index of the first record ending after `seq`. */
  private indexAt(seq: number): number {
    const recs = this.recs;
    let a = this.head;
    let b = recs.length;
    while (a < b) {
      const m = (a + b) >>> 1;
      if (seqLe(recs[m].end, seq)) a = m + 1;
      else b = m;
    }
    return a;
  }

  /** Merges [l, r) into the known ranges; returns the merged range holding it. */
  private addRange(l: number, r: number): [number, number] {
    const sk = this.ranges;
    let i = 0;
    while (i < sk.length && seqLt(sk[i + 1], l)) i += 2;
    let j = i;
    let nl = l;
    let nr = r;
    while (j < sk.length && seqLe(sk[j], nr)) {
      nl = seqMin(nl, sk[j]);
      nr = seqMax(nr, sk[j + 1]);
      j += 2;
    }
    sk.splice(i, j - i, nl, nr);
    if (sk.length > 2 * MAX_RANGES) sk.length = 2 * MAX_RANGES;
    return [nl, nr];
  }

  private pruneRanges(ack: number): void {
    const sk = this.ranges;
    let i = 0;
    while (i < sk.length && seqLe(sk[i + 1], ack)) i += 2;
    if (i > 0) sk.splice(0, i);
    if (sk.length > 0 && seqLt(sk[0], ack)) sk[0] = ack;
  }

  /** Declares `r` lost (again, if its retransmission is presumed lost too). */
  markLost(r: SegRecord): void {
    if (r.sacked || r.acked) return;
    const n = len(r);
    if (r.rtxOut) {
      r.rtxOut = false;
      this.rtxOutBytes -= n;
    }
    if (!r.lost) {
      r.lost = true;
      this.lostBytes += n;
    }
    this.unlink(r);
    this.lostQ.push(r);
  }

  /**
   * RFC 6675 §5.1 / RFC 8985 §6.3 (RTO): every record not SACKed is lost,
   * in sequence order.
   */
  markAllLost(): void {
    this.lostQ.length = 0;
    this.lostHead = 0;
    for (let i = this.head; i < this.recs.length; i++) this.markLost(this.recs[i]);
  }

  /** The peer dropped data it had SACKed (RFC 2018 §8): forget all SACKs; those records are lost. */
  renege(): void {
    this.ranges.length = 0;
    for (let i = this.head; i < this.recs.length; i++) {
      const r = this.recs[i];
      if (!r.sacked) continue;
      r.sacked = false;
      this.sackedBytes -= len(r);
      this.sackedSegs--;
      this.markLost(r);
    }
  }

  /** RFC 6675 NextSeg() rule 1: the next lost record still waiting for its retransmission. */
  nextLost(): SegRecord | undefined {
    const q = this.lostQ;
    while (this.lostHead < q.length) {
      const r = q[this.lostHead];
      if (r.lost && !r.rtxOut && !r.sacked && !r.acked) return r;
      this.lostHead++;
    }
    // Emptied only when it holds something: storing an array's length is a
    // call into the runtime, and this runs on every send with nothing lost.
    if (q.length !== 0) q.length = 0;
    this.lostHead = 0;
    return undefined;
  }

  /**
   * Splits `r` after `n` sequence numbers (a retransmission that must be
   * shorter than the original); the tail becomes its own record with the
   * same state. Rare: O(records).
   */
  split(r: SegRecord, n: number): void {
    const i = this.indexAt(r.start);
    const tail: SegRecord = { ...r, start: seqAdd(r.start, n), prev: undefined, next: undefined, linked: false };
    // The tail keeps r's order: it was sent at the same moment.
    r.end = tail.start;
    r.fin = false;
    this.recs.splice(i + 1, 0, tail);
    if (tail.sacked) this.sackedSegs++;
    if (tail.lost && !tail.rtxOut) this.lostQ.push(tail);
    else if (!tail.lost && !tail.sacked) this.link(tail);
  }

  // --- time-ordered list ---
  private link(r: SegRecord): void {
    r.prev = this.newest;
    r.next = undefined;
    if (this.newest) this.newest.next = r;
    else this.oldest = r;
    this.newest = r;
    r.linked = true;
  }

  private unlink(r: SegRecord): void {
    if (!r.linked) return;
    if (r.prev) r.prev.next = r.next;
    else this.oldest = r.next;
    if (r.next) r.next.prev = r.prev;
    else this.newest = r.prev;
    r.prev = r.next = undefined;
    r.linked = false;
  }
}

function len(r: SegRecord): number {
  return seqDiff(r.end, r.start);
}
