// The receive path: in-order delivery and ACK coalescing, reassembly with
// SACK, trimming, the receive window and its updates, RFC 5961 checks.

import { describe, expect, it } from 'vitest';
import { TcpState } from '../../../src/stack/tcp/state.js';
import { seqAdd, seqGe } from '../../../src/stack/tcp/seq.js';
import { ACK, F, LINUX_SYN, SYN, established, expectSeg, g, o, pattern } from './helpers.js';

/** Guest data segment carrying stream bytes [from, from+len). */
const data = (from: number, len: number, extra = {}) => ({
  ...ACK,
  flags: F.ACK | F.PSH,
  seq: g(from),
  ack: o(0),
  payload: pattern(from, len),
  ...extra,
});

describe('receiving data', () => {
  it('delivers data in order and coalesces ACKs', () => {
    const h = established();
    h.now = 10;
    h.in(data(0, 100));
    expect(h.app.data).toEqual(pattern(0, 100));
    // One small segment: the ACK is delayed (delayedAckMs = 10).
    expect(h.out()).toEqual([]);
    expect(h.conn.pollAt()).toBe(20);
    const [a1] = h.fire();
    expectSeg(a1, { flags: 'A', seq: o(0), ack: g(100) });
    // Two full-sized segments in one batch: one immediate ACK covering both (RFC 5681 §4.2).
    h.in(data(100, 1460));
    h.in(data(1560, 1460));
    h.in(data(3020, 1460));
    const acks = h.out();
    expect(acks).toHaveLength(1);
    expectSeg(acks[0], { flags: 'A', ack: g(4480) });
    expect(h.app.data).toEqual(pattern(0, 4480));
    expect(h.conn.stats.bytesIn).toBe(4480);
  });

  it('reassembles out-of-order segments and SACKs the holes', () => {
    const h = established({}, LINUX_SYN);
    const ts = { tsVal: 2000, tsEcr: 0 };
    h.in(data(1000, 500, ts));
    expect(h.app.chunks).toEqual([]);
    let [a] = h.out();
    // Immediate duplicate ACK with the block just received (RFC 2018 §4).
    expectSeg(a, { flags: 'A', ack: g(0) });
    expect(a.sackBlocks).toEqual([[g(1000), g(1500)]]);
    h.in(data(2000, 500, ts));
    [a] = h.out();
    expect(a.sackBlocks).toEqual([
      [g(2000), g(2500)],
      [g(1000), g(1500)],
    ]);
    // Adjacent block merges with its neighbour.
    h.in(data(1500, 200, ts));
    [a] = h.out();
    expect(a.sackBlocks).toEqual([
      [g(1000), g(1700)],
      [g(2000), g(2500)],
    ]);
    // Fill the first hole: everything up to 1700 is delivered, one hole remains.
    h.in(data(0, 1000, ts));
    [a] = h.out();
    expectSeg(a, { ack: g(1700) });
    expect(a.sackBlocks).toEqual([[g(2000), g(2500)]]);
    h.in(data(1700, 300, ts));
    [a] = h.out();
    expectSeg(a, { ack: g(2500) });
    expect(a.sackBlocks).toBeUndefined();
    expect(h.app.data).toEqual(pattern(0, 2500));
    expect(h.conn.stats.outOfOrder).toBe(3);
  });

  it('trims duplicate and overlapping segments', () => {
    const h = established();
    h.in(data(0, 100));
    // Overlaps RCV.NXT: only the new part is delivered, and ACKed at once.
    h.in(data(50, 100));
    expect(h.app.data).toEqual(pattern(0, 150));
    expectSeg(h.out()[0], { ack: g(150) });
    // Complete duplicate: nothing delivered, immediate ACK.
    h.in(data(0, 100));
    expect(h.app.data.length).toBe(150);
    expectSeg(h.out()[0], { ack: g(150) });
    // Out-of-order overlapping pieces, then the filler.
    h.in(data(200, 100));
    h.in(data(250, 100));
    h.in(data(180, 40));
    h.in(data(150, 60));
    expect(h.app.data).toEqual(pattern(0, 350));
    expectSeg(h.out()[0], { ack: g(350) });
  });

  it('shrinks the advertised window until consumed()', () => {
    const h = established({ rcvBufSize: 4000 });
    h.app.autoConsume = false;
    h.in(data(0, 1000));
    h.now = 100;
    expectSeg(h.fire()[0], { ack: g(1000), win: 3000 });
    h.in(data(1000, 1460));
    h.in(data(2460, 1460));
    h.in(data(3920, 80));
    expectSeg(h.out()[0], { ack: g(4000), win: 0 });
    // Zero window: a probe byte is not taken, but answered.
    h.in(data(4000, 1));
    expect(h.app.data.length).toBe(4000);
    expectSeg(h.out()[0], { ack: g(4000), win: 0 });
    // A small consumption is not worth a window update (SWS avoidance).
    h.conn.consumed(1000);
    expect(h.out()).toEqual([]);
    // Past min(2*MSS, buffer/2) = 2000 it is.
    h.conn.consumed(1000);
    expectSeg(h.out()[0], { ack: g(4000), win: 2000 });
    h.in(data(4000, 2000));
    expect(h.app.data).toEqual(pattern(0, 6000));
  });

  it('a request on a fresh connection draws no bare window update: the reply carries the scaled window', () => {
    // The SYN-ACK could offer 65535 of a 747520-byte buffer; the guest still
    // has ~64 KiB of room after one byte, so it is not waiting for us.
    const h = established({ rcvBufSize: 747520 }, { ...SYN, windowScale: 7 });
    expect(h.synAck.window).toBe(65535);
    h.in(data(0, 1));
    expect(h.app.data.length).toBe(1); // consumed at once (autoConsume)
    expect(h.out()).toEqual([]);
    h.conn.send(Buffer.from('y'));
    const [reply] = h.out();
    expectSeg(reply, { flags: 'PA', ack: g(1) });
    expect(reply!.window * 2 ** h.synAck.windowScale!).toBeGreaterThan(65535);
  });

  it('at MTU 65520 too: a short request leaves the guest a full segment of room, so no bare update; a full segment draws one', () => {
    const mss = 65480;
    const h = established({ rcvBufSize: 4 << 20, mss }, { ...SYN, mss, windowScale: 7 });
    expect(h.synAck.window).toBe(65535);
    h.in(data(0, 1));
    expect(h.out()).toEqual([]);
    h.conn.send(Buffer.from('y'));
    const [reply] = h.out();
    expectSeg(reply, { flags: 'PA', ack: g(1) });
    expect(reply!.window * 2 ** h.synAck.windowScale!).toBeGreaterThan(65535);
    // A bulk sender on a fresh connection fills the one segment it may send: the update goes at once.
    const b = established({ rcvBufSize: 4 << 20, mss }, { ...SYN, mss, windowScale: 7 });
    b.in(data(0, 65535));
    const [upd] = b.out();
    expectSeg(upd, { ack: g(65535) });
    expect(upd!.window * 2 ** b.synAck.windowScale!).toBeGreaterThan(65535 * 4);
  });

  it('sends no window updates beyond what an unscaled window can express', () => {
    // No window scale from the guest: our window field caps at 65535 although
    // the buffer is 256 KiB, so consuming data must not trigger updates.
    const h = established({ rcvBufSize: 256 << 10 });
    h.in(data(0, 1000));
    h.now = 50;
    expectSeg(h.fire()[0], { ack: g(1000), win: 65535 });
    h.conn.consumed(0);
    expect(h.out()).toEqual([]);
    expect(h.conn.pollAt()).toBeGreaterThan(1000);
  });

  it('never retracts the right window edge', () => {
    // Window scale 1 (buffer 100000): odd windows cannot be expressed exactly.
    const h = established({ rcvBufSize: 100_000, mss: 1000 }, { ...SYN, windowScale: 0 });
    h.app.autoConsume = false;
    let edge = 0;
    let first = true;
    let pos = 0;
    let consumedSoFar = 0;
    let x = 12345;
    const rnd = (n: number) => {
      x = (x * 1103515245 + 12345) & 0x7fffffff;
      return x % n;
    };
    for (let i = 0; i < 400; i++) {
      const len = 1 + rnd(999);
      h.in(data(pos, len));
      pos = h.conn.stats.bytesIn;
      if (rnd(3) === 0) {
        const c = rnd(pos - consumedSoFar + 1);
        h.conn.consumed(c);
        consumedSoFar += c;
      }
      h.now += 20;
      for (const s of h.out()) {
        const right = seqAdd(s.ack, s.window * 2);
        if (!first) expect(seqGe(right, edge)).toBe(true);
        edge = right;
        first = false;
      }
    }
    expect(pos).toBeGreaterThan(100_000);
    expect(h.app.data.equals(pattern(0, pos))).toBe(true);
  });

  it('accepts RST only exactly at RCV.NXT; challenge-ACKs in-window RST (RFC 5961)', () => {
    const h = established();
    h.in(data(0, 10));
    h.out();
    // In window, not exact: challenge ACK, connection intact.
    h.in({ seq: g(500), flags: F.RST });
    expect(h.conn.state).toBe(TcpState.Established);
    expectSeg(h.out()[0], { flags: 'A', seq: o(0), ack: g(10) });
    // Out of window: silently dropped.
    h.in({ seq: g(900_000), flags: F.RST });
    expect(h.out()).toEqual([]);
    expect(h.conn.state).toBe(TcpState.Established);
    // Exactly at RCV.NXT: accepted.
    h.in({ seq: g(10), flags: F.RST });
    expect(h.app.resets).toEqual(['peer-reset']);
    expect(h.out()).toEqual([]);
    expect(h.app.closed).toBe(1);
  });

  it('challenge-ACKs a SYN in ESTABLISHED', () => {
    const h = established();
    h.in({ ...SYN, seq: g(100) });
    expect(h.conn.state).toBe(TcpState.Established);
    expectSeg(h.out()[0], { flags: 'A', seq: o(0), ack: g(0) });
    h.in({ ...SYN, seq: 12345 });
    expectSeg(h.out()[0], { flags: 'A', ack: g(0) });
    expect(h.app.resets).toEqual([]);
  });

  it('drops a segment acknowledging unsent data (RFC 5961 §5) and ACKs it', () => {
    const h = established();
    h.in(data(0, 10, { ack: o(500) }));
    expect(h.app.chunks).toEqual([]);
    expectSeg(h.out()[0], { flags: 'A', ack: g(0) });
    // Too old an ACK (below SND.UNA - MAX.SND.WND): also dropped.
    h.in(data(0, 10, { ack: seqAdd(o(0), -200_000) }));
    expect(h.app.chunks).toEqual([]);
    expectSeg(h.out()[0], { flags: 'A', ack: g(0) });
    // A merely old ACK is ignored but the data is taken.
    h.in(data(0, 10, { ack: seqAdd(o(0), -5) }));
    expect(h.app.data).toEqual(pattern(0, 10));
  });

  it('never holds out-of-order data beyond the window', () => {
    const h = established({ rcvBufSize: 3000 });
    h.app.autoConsume = false;
    h.in(data(2000, 1460)); // 2000..3460: only 2000..3000 fit
    h.in(data(5000, 100)); // entirely outside: dropped
    h.in(data(0, 2000));
    expect(h.app.data).toEqual(pattern(0, 3000));
    expectSeg(h.out()[0], { ack: g(3000), win: 0 });
  });
});
