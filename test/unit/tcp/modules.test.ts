// The small modules under the connection: sequence arithmetic, the RFC 6298
// estimator, reassembly, the send buffer, NewReno and the state table.

import { describe, expect, it } from 'vitest';
import { Assembler } from '../../../src/stack/tcp/assembler.js';
import { NewReno, initialWindow } from '../../../src/stack/tcp/congestion.js';
import { MAX_RTO_MS, MIN_RTO_MS, RttEstimator } from '../../../src/stack/tcp/rtt.js';
import { Scoreboard } from '../../../src/stack/tcp/scoreboard.js';
import { BLOCK, SendBuffer } from '../../../src/stack/tcp/send-buffer.js';
import { MemoryBudget } from '../../../src/stack/budget.js';
import { inWindow, seqAdd, seqDiff, seqGe, seqGt, seqLe, seqLt, seqMax, seqMin } from '../../../src/stack/tcp/seq.js';
import { TRANSITIONS, TcpState, transition } from '../../../src/stack/tcp/state.js';
import { pattern } from './helpers.js';

describe('seq', () => {
  it('compares across the 2^32 wrap', () => {
    expect(seqLt(0xfffffff0, 0x10)).toBe(true);
    expect(seqGt(0x10, 0xfffffff0)).toBe(true);
    expect(seqLe(5, 5) && seqGe(5, 5)).toBe(true);
    expect(seqAdd(0xffffffff, 2)).toBe(1);
    expect(seqAdd(0x7fffffff, 1)).toBe(-0x80000000);
    expect(seqLt(0x7fffffff, -0x80000000) && seqLt(-1, 0)).toBe(true);
    expect(seqAdd(1, -2)).toBe(-1); // signed 32-bit: the bits of 0xffffffff
    expect(seqDiff(0x10, 0xfffffff0)).toBe(0x20);
    expect(seqDiff(0xfffffff0, 0x10)).toBe(-0x20);
    expect(seqMax(0xfffffff0, 0x10)).toBe(0x10);
    expect(seqMin(0xfffffff0, 0x10)).toBe(0xfffffff0);
    expect(inWindow(0x5, 0xfffffffe, 10)).toBe(true);
    expect(inWindow(0xfffffffe + 10, 0xfffffffe, 10)).toBe(false);
    expect(inWindow(7, 7, 0)).toBe(false);
  });
});

describe('RttEstimator (RFC 6298)', () => {
  it('starts at 1 s, follows SRTT + 4*RTTVAR, floors at 200 ms and backs off to 60 s', () => {
    const r = new RttEstimator();
    expect(r.rto()).toBe(1000);
    r.sample(400);
    // SRTT = 400, RTTVAR = 200 → 400 + 800.
    expect(r.rto()).toBe(1200);
    r.sample(400);
    // RTTVAR = 0.75*200 = 150, SRTT = 400 → 1000.
    expect(r.rto()).toBe(1000);
    r.backoff();
    expect(r.rto()).toBe(2000);
    for (let i = 0; i < 10; i++) r.backoff();
    expect(r.rto()).toBe(MAX_RTO_MS);
    for (let i = 0; i < 50; i++) r.sample(1);
    expect(r.rto()).toBe(MIN_RTO_MS);
  });
});

describe('Assembler', () => {
  const base = 0xffffff00; // wraps inside the tests
  it('holds out-of-order data, trims overlaps and pops it in order', () => {
    const a = new Assembler();
    expect(a.insert(base, seqAdd(base, 100), pattern(100, 50), 1000)).toBe(50);
    expect(a.insert(base, seqAdd(base, 120), pattern(120, 60), 1000)).toBe(30); // overlap: 150..180 new
    expect(a.insert(base, seqAdd(base, 100), pattern(100, 80), 1000)).toBe(0); // duplicate
    expect(a.insert(base, seqAdd(base, 300), pattern(300, 10), 1000)).toBe(10);
    // One segment spanning a stored piece fills both gaps around it.
    expect(a.insert(base, seqAdd(base, 90), pattern(90, 220), 1000)).toBe(10 + 120);
    expect(a.bytes).toBe(50 + 30 + 10 + 130);
    expect(a.pop(base)).toBeUndefined();
    let next = seqAdd(base, 90);
    const got: Buffer[] = [];
    for (let b = a.pop(next); b; b = a.pop(next)) {
      got.push(b);
      next = seqAdd(next, b.length);
    }
    expect(Buffer.concat(got)).toEqual(pattern(90, 220));
    expect(a.isEmpty).toBe(true);
    expect(a.bytes).toBe(0);
  });

  it('never holds data outside the window', () => {
    const a = new Assembler();
    expect(a.insert(base, seqAdd(base, 900), pattern(900, 200), 1000)).toBe(100);
    expect(a.insert(base, seqAdd(base, 1000), pattern(1000, 10), 1000)).toBe(0);
    expect(a.insert(base, seqAdd(base, -50), pattern(0, 20), 1000)).toBe(0);
    expect(a.sackBlocks(base)).toEqual([[seqAdd(base, 900), seqAdd(base, 1000)]]);
  });

  it('is bounded in pieces', () => {
    const a = new Assembler(4);
    for (let i = 0; i < 10; i++) a.insert(0, 10 * i + 5, Buffer.alloc(1), 1000);
    expect(a.pieceCount).toBe(4);
  });

  it('reports at most 4 SACK blocks, most recent first (RFC 2018 §4)', () => {
    const a = new Assembler();
    for (const off of [100, 300, 500, 700, 900]) a.insert(0, off, Buffer.alloc(10), 10_000);
    expect(a.sackBlocks(0)).toEqual([
      [900, 910],
      [700, 710],
      [500, 510],
      [300, 310],
    ]);
    a.insert(0, 100, Buffer.alloc(5), 10_000); // refreshes the first block
    expect(a.sackBlocks(0, 3)).toEqual([
      [100, 110],
      [900, 910],
      [700, 710],
    ]);
  });

  it('keeps its own copy of the data', () => {
    const a = new Assembler();
    const src = Buffer.from('abcdef');
    a.insert(0, 10, src, 100);
    src.fill(0);
    a.insert(0, 0, Buffer.from('0123456789'), 100);
    expect(a.pop(10)!.toString()).toBe('abcdef');
  });
});

describe('SendBuffer', () => {
  it('is bounded, slices across chunks and releases acknowledged data', () => {
    const b = new SendBuffer(10_000);
    expect(b.push(pattern(0, 6000))).toBe(6000);
    expect(b.push(pattern(6000, 6000))).toBe(4000);
    expect(b.space).toBe(0);
    expect(b.slice(0, 100)).toEqual(pattern(0, 100));
    expect(b.slice(5900, 200)).toEqual(pattern(5900, 200)); // spans two chunks
    b.ack(5950);
    expect(b.length).toBe(4050);
    expect(b.slice(0, 100)).toEqual(pattern(5950, 100));
    expect(b.slice(4000, 50)).toEqual(pattern(9950, 50));
    expect(() => b.slice(4000, 51)).toThrow(RangeError);
    b.ack(4050);
    expect(b.length).toBe(0);
    expect(b.push(pattern(10_000, 10))).toBe(10);
    expect(b.slice(0, 10)).toEqual(pattern(10_000, 10));
  });

  it('copies pushes into pooled blocks: the caller may reuse its buffer; in-block slices are views', () => {
    const big = pattern(0, 8192);
    const b = new SendBuffer(1 << 20);
    b.push(big);
    big.fill(0); // the app reuses its buffer (as with Node's onread)
    expect(b.slice(0, 8192)).toEqual(pattern(0, 8192));
    const v1 = b.slice(100, 1000);
    const v2 = b.slice(2000, 10);
    expect(v1.buffer).toBe(v2.buffer); // both views of one block, no copy
    for (let i = 0; i < 1000; i++) b.push(pattern(8192 + i, 1));
    const expected = Buffer.concat([pattern(0, 8192), Buffer.from(Array.from({ length: 1000 }, (_, i) => pattern(8192 + i, 1)[0]))]);
    expect(b.slice(0, b.length)).toEqual(expected);
  });

  it('slices across block boundaries and returns acknowledged blocks', () => {
    const b = new SendBuffer(4 * BLOCK);
    let pushed = 0;
    while (b.space > 0) pushed += b.push(pattern(pushed, 100_000));
    expect(pushed).toBe(4 * BLOCK);
    const at = BLOCK - 30;
    expect(b.slice(at, 65480)).toEqual(pattern(at, 65480)); // spans blocks 0 and 1
    b.ack(BLOCK + 5);
    expect(b.slice(0, 10)).toEqual(pattern(BLOCK + 5, 10));
    expect(b.push(pattern(pushed, BLOCK))).toBe(BLOCK + 5 > BLOCK ? BLOCK : 0);
    pushed += BLOCK;
    b.ack(b.length);
    expect(b.length).toBe(0);
    expect(b.push(pattern(pushed, 10))).toBe(10);
    expect(b.slice(0, 10)).toEqual(pattern(pushed, 10));
  });

  it('survives many chunks being acknowledged (compaction)', () => {
    const b = new SendBuffer(1 << 20);
    let pushed = 0;
    let acked = 0;
    for (let round = 0; round < 500; round++) {
      pushed += b.push(pattern(pushed, 3000));
      if (round % 3 === 0 && b.length > 7100) {
        const n = 7000;
        b.ack(n);
        acked += n;
      }
      expect(b.slice(0, 10)).toEqual(pattern(acked, 10));
      expect(b.slice(b.length - 10, 10)).toEqual(pattern(pushed - 10, 10));
    }
  });

  it('lends its room for a reader to fill in place: no copy, a new block at a boundary, no push meanwhile', () => {
    const budget = new MemoryBudget(8 * BLOCK);
    const b = new SendBuffer(4 * BLOCK, budget);
    b.push(pattern(0, BLOCK - 100));
    const room = b.lend(1 << 20)!;
    expect(room.length).toBe(100); // the rest of the tail block only
    expect(() => b.push(pattern(0, 1))).toThrow(/lent/);
    pattern(BLOCK - 100, 60).copy(room); // the read lands here
    expect(b.commit(60)).toBe(60);
    expect(b.length).toBe(BLOCK - 40);
    expect(b.slice(BLOCK - 140, 100)).toEqual(pattern(BLOCK - 140, 100));
    b.push(pattern(BLOCK - 40, 40)); // fills block 0
    const next = b.lend(1 << 20)!;
    expect(next.length).toBe(BLOCK); // a fresh block
    expect(budget.used).toBe(2 * BLOCK);
    pattern(BLOCK, 5000).copy(next);
    b.commit(5000);
    expect(b.slice(BLOCK - 10, 20)).toEqual(pattern(BLOCK - 10, 20));
    expect(b.slice(BLOCK, 5000).buffer).toBe(next.buffer); // a view of where the read landed
  });

  it('keeps lent room held while everything is acknowledged, and gives it back on unlend', () => {
    const budget = new MemoryBudget(8 * BLOCK);
    const b = new SendBuffer(4 * BLOCK, budget);
    b.push(pattern(0, 1000));
    const room = b.lend(500)!;
    expect(room.length).toBe(500);
    b.ack(1000); // all acknowledged: the block would go back, but a read may still land in it
    expect(budget.used).toBe(BLOCK);
    pattern(1000, 300).copy(room);
    b.commit(300);
    expect(b.slice(0, 300)).toEqual(pattern(1000, 300));
    b.ack(300);
    expect(budget.used).toBe(0);
    b.push(pattern(0, 10));
    b.lend(100);
    b.ack(10);
    expect(budget.used).toBe(BLOCK);
    b.unlend();
    expect(budget.used).toBe(0);
  });

  it('never pools a block whose room is lent when the connection goes: a late read corrupts nothing', () => {
    const budget = new MemoryBudget(64 * BLOCK);
    const gone = new SendBuffer(4 * BLOCK, budget);
    gone.push(pattern(0, 100));
    const room = gone.lend(BLOCK)!;
    gone.dispose();
    expect(budget.used).toBe(0);
    // Other connections take blocks from the pool; the reader writes late.
    const data = pattern(7, BLOCK);
    const others = Array.from({ length: 8 }, () => new SendBuffer(4 * BLOCK, budget));
    for (const o of others) o.push(data);
    room.fill(0xab);
    for (const o of others) expect(o.slice(0, BLOCK).equals(data)).toBe(true);
    for (const o of others) o.dispose();
  });

  it('keeps its positions small however much passes through (no double past 2^31)', () => {
    const b = new SendBuffer(1 << 20);
    const positions = () => b as unknown as { base: number; end: number };
    let pushed = 0;
    let acked = 0;
    // 96 MiB through a 1 MiB buffer, acknowledged in uneven steps.
    while (pushed < 96 * 1024 * 1024) {
      pushed += b.push(pattern(pushed, 200_000));
      const n = Math.min(b.length, 170_000 + (pushed % 7919));
      b.ack(n);
      acked += n;
      expect(positions().end).toBeLessThanOrEqual((1 << 20) + BLOCK);
      expect(b.slice(0, Math.min(10, b.length))).toEqual(pattern(acked, Math.min(10, b.length)));
    }
    b.ack(b.length);
    expect(positions().base).toBe(0);
    expect(positions().end).toBe(0);
  });
});

describe('NewReno', () => {
  it('initial window is 10 segments whatever the MSS (Linux TCP_INIT_CWND, not RFC 6928\'s 14600-byte cap)', () => {
    expect(initialWindow(1460)).toBe(14600);
    expect(initialWindow(536)).toBe(5360);
    expect(initialWindow(65480)).toBe(10 * 65480);
  });

  it('slow start, fast recovery, congestion avoidance, timeout', () => {
    const cc = new NewReno(1000, 0);
    expect(cc.cwnd).toBe(10_000);
    cc.onAck(2000);
    expect(cc.cwnd).toBe(12_000);
    // Third duplicate ACK with 12000 in flight: ssthresh 6000, cwnd 9000.
    expect(cc.onThirdDupAck(1000, 12_000, 13_000)).toBe(true);
    expect([cc.ssthresh, cc.cwnd, cc.inRecovery]).toEqual([6000, 9000, true]);
    cc.onDupAckInRecovery();
    expect(cc.cwnd).toBe(10_000);
    expect(cc.onAckInRecovery(5000, 4000, 8000)).toBe('partial');
    expect(cc.cwnd).toBe(7000);
    expect(cc.onAckInRecovery(13_000, 8000, 0)).toBe('full');
    expect(cc.cwnd).toBe(2000); // min(ssthresh, max(flight, MSS) + MSS)
    expect(cc.inRecovery).toBe(false);
    // Duplicates at or below "recover" do not start another recovery.
    expect(cc.onThirdDupAck(13_000, 5000, 20_000)).toBe(false);
    // Congestion avoidance: one MSS per cwnd of bytes acknowledged.
    cc.cwnd = 6000;
    cc.onAck(3000);
    expect(cc.cwnd).toBe(6000);
    cc.onAck(3000);
    expect(cc.cwnd).toBe(7000);
    cc.onRto(7000, 30_000);
    expect([cc.cwnd, cc.ssthresh]).toEqual([1000, 3500]);
    // A second timeout for the same loss keeps ssthresh (RFC 5681 §3.1).
    cc.onRto(1000, 30_000);
    expect(cc.ssthresh).toBe(3500);
  });
});

describe('Scoreboard', () => {
  it('keeps RFC 6675 pipe = out - sacked - lost + retransmitted across ACK, SACK, loss and RTO', () => {
    const base = 0xfffff000 | 0; // wraps inside the test (signed, as the stack holds it)
    const sb = new Scoreboard();
    for (let i = 0; i < 6; i++) sb.add(seqAdd(base, i * 1000), seqAdd(base, (i + 1) * 1000), false, i);
    expect(sb.pipe).toBe(6000);
    const delivered: number[] = [];
    sb.sack(seqAdd(base, 2000), seqAdd(base, 4000), (r) => delivered.push(seqDiff(r.start, base)));
    // Overlapping block: only the newly covered record is reported.
    sb.sack(seqAdd(base, 2000), seqAdd(base, 5000), (r) => delivered.push(seqDiff(r.start, base)));
    expect(delivered).toEqual([2000, 3000, 4000]);
    expect(sb.pipe).toBe(3000);
    expect(sb.oldest!.start).toBe(base); // time order: records 0, 1, 5 in flight
    sb.markLost(sb.first()!);
    expect(sb.pipe).toBe(2000);
    const lost = sb.nextLost()!;
    sb.retransmitted(lost, 10);
    expect(sb.pipe).toBe(3000);
    expect(sb.nextLost()).toBeUndefined();
    sb.ackTo(seqAdd(base, 1000), () => {});
    expect(sb.pipe).toBe(2000);
    sb.markAllLost();
    expect([sb.pipe, sb.lostBytes]).toEqual([0, 2000]);
    sb.ackTo(seqAdd(base, 6000), () => {});
    expect([sb.isEmpty, sb.pipe, sb.outBytes, sb.sackedBytes, sb.lostBytes, sb.rtxOutBytes]).toEqual([true, 0, 0, 0, 0, 0]);
  });
});

describe('state table', () => {
  it('has the RFC 9293 arms', () => {
    const S = TcpState;
    expect(transition(S.Listen, 'accept')).toBe(S.SynReceived);
    expect(transition(S.Closed, 'connect')).toBe(S.SynSent);
    expect(transition(S.SynSent, 'rcv-syn-ack')).toBe(S.Established);
    expect(transition(S.SynSent, 'rcv-syn')).toBe(S.SynReceived);
    expect(transition(S.SynReceived, 'rcv-ack-of-syn')).toBe(S.Established);
    expect(transition(S.Established, 'close')).toBe(S.FinWait1);
    expect(transition(S.CloseWait, 'close')).toBe(S.LastAck);
    expect(transition(S.Established, 'rcv-fin')).toBe(S.CloseWait);
    expect(transition(S.FinWait1, 'rcv-fin')).toBe(S.Closing);
    expect(transition(S.FinWait2, 'rcv-fin')).toBe(S.TimeWait);
    expect(transition(S.FinWait1, 'rcv-ack-of-fin')).toBe(S.FinWait2);
    expect(transition(S.Closing, 'rcv-ack-of-fin')).toBe(S.TimeWait);
    expect(transition(S.LastAck, 'rcv-ack-of-fin')).toBe(S.Closed);
    expect(transition(S.TimeWait, 'timeout')).toBe(S.Closed);
    expect(transition(S.Established, 'timeout')).toBeUndefined();
    for (const s of Object.values(S)) {
      if (s !== S.Closed) expect(TRANSITIONS.reset[s]).toBe(S.Closed);
    }
  });
});
