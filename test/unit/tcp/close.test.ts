// Closing: half-close both ways, FIN after queued data, simultaneous close,
// TIME-WAIT and FIN-WAIT-2 timers, keepalive, and onClosed exactly once.

import { describe, expect, it } from 'vitest';
import { TcpState } from '../../../src/stack/tcp/state.js';
import { ACK, F, established, expectSeg, g, o, pattern } from './helpers.js';

const ack = (n: number, extra = {}) => ({ ...ACK, seq: g(0), ack: o(n), ...extra });

describe('closing', () => {
  it('half-close: guest FIN then app data still flows', () => {
    const h = established();
    h.in({ ...ACK, flags: F.ACK | F.FIN, seq: g(0), ack: o(0), payload: pattern(0, 10) });
    expect(h.app.data).toEqual(pattern(0, 10));
    expect(h.app.eof).toBe(1);
    expect(h.conn.state).toBe(TcpState.CloseWait);
    // The ACK of the FIN waits for the app (delayed ACK, as Linux's pingpong mode)...
    expect(h.out()).toEqual([]);
    // ...and goes alone when the app stays silent that long.
    expect(h.conn.pollAt()).toBe(h.now + 10);
    expectSeg(h.fire()[0], { flags: 'A', ack: g(11) });
    h.conn.send(pattern(0, 3000));
    const segs = h.out();
    expect(segs.map((s) => s.payload.length)).toEqual([1460, 1460, 80]);
    h.in({ ...ACK, seq: g(11), ack: o(3000) });
    h.conn.close(h.now);
    expect(h.conn.state).toBe(TcpState.LastAck);
    expectSeg(h.out()[0], { flags: 'FA', seq: o(3000), ack: g(11) });
    h.in({ ...ACK, seq: g(11), ack: o(3001) });
    expect(h.conn.state).toBe(TcpState.Closed);
    expect(h.app.closed).toBe(0);
    expect(h.conn.pollAt()).toBe(0);
    expect(h.out()).toEqual([]);
    expect(h.app.closed).toBe(1);
    expect(h.app.resets).toEqual([]);
    expect(h.conn.pollAt()).toBe(Infinity);
  });

  it('the peer closes first and the app at once: one FIN|ACK acknowledges its FIN (no bare ACK before it)', () => {
    const h = established();
    h.in({ ...ACK, flags: F.ACK | F.FIN, seq: g(0), ack: o(0), payload: pattern(0, 10) });
    expect(h.app.eof).toBe(1);
    h.conn.close(h.now);
    const segs = h.out();
    expect(segs).toHaveLength(1);
    expectSeg(segs[0], { flags: 'FA', seq: o(0), ack: g(11) });
    expect(h.conn.state).toBe(TcpState.LastAck);
  });

  it('a FIN ahead of a hole is acknowledged at once (duplicate ACK), and so is one that answers ours', () => {
    const h = established();
    h.in({ ...ACK, flags: F.ACK | F.FIN, seq: g(10), ack: o(0), payload: pattern(10, 10) });
    expectSeg(h.out()[0], { flags: 'A', ack: g(0) });
    const h2 = established();
    h2.conn.close(h2.now);
    expectSeg(h2.out()[0], { flags: 'FA', seq: o(0) });
    h2.in({ ...ACK, flags: F.ACK | F.FIN, seq: g(0), ack: o(1) });
    expectSeg(h2.out()[0], { flags: 'A', ack: g(1) });
    expect(h2.conn.state).toBe(TcpState.TimeWait);
  });

  it('app close sends FIN after queued data', () => {
    const h = established();
    h.conn.send(pattern(0, 3000));
    h.conn.close(h.now);
    expect(h.conn.state).toBe(TcpState.FinWait1);
    expect(h.conn.send(Buffer.from('late'))).toBe(0);
    const segs = h.out();
    expect(segs).toHaveLength(3);
    expectSeg(segs[2], { flags: 'FPA', seq: o(2920), len: 80 });
    h.in(ack(3001));
    expect(h.conn.state).toBe(TcpState.FinWait2);
    // The guest keeps sending in FIN-WAIT-2 (half-close), then closes.
    h.in({ ...ACK, flags: F.ACK | F.PSH, seq: g(0), ack: o(3001), payload: pattern(0, 50) });
    h.in({ ...ACK, flags: F.ACK | F.FIN, seq: g(50), ack: o(3001) });
    expect(h.app.data).toEqual(pattern(0, 50));
    expect(h.app.eof).toBe(1);
    expect(h.conn.state).toBe(TcpState.TimeWait);
    expectSeg(h.out()[0], { flags: 'A', seq: o(3001), ack: g(51) });
  });

  it('retransmits a lost FIN', () => {
    const h = established();
    h.conn.close(h.now);
    expectSeg(h.out()[0], { flags: 'FA', seq: o(0) });
    expectSeg(h.fire()[0], { flags: 'FA', seq: o(0) });
    h.in(ack(1));
    expect(h.conn.state).toBe(TcpState.FinWait2);
  });

  it('simultaneous close through CLOSING to TIME_WAIT', () => {
    const h = established();
    h.conn.close(h.now);
    expectSeg(h.out()[0], { flags: 'FA', seq: o(0), ack: g(0) });
    // The guest's FIN crosses ours: it does not acknowledge our FIN yet.
    h.in({ ...ACK, flags: F.ACK | F.FIN, seq: g(0), ack: o(0) });
    expect(h.conn.state).toBe(TcpState.Closing);
    expectSeg(h.out()[0], { flags: 'A', ack: g(1) });
    h.in({ ...ACK, seq: g(1), ack: o(1) });
    expect(h.conn.state).toBe(TcpState.TimeWait);
    expect(h.app.eof).toBe(1);
  });

  it('FIN and ACK of our FIN in one segment go straight to TIME_WAIT', () => {
    const h = established();
    h.conn.close(h.now);
    h.out();
    h.in({ ...ACK, flags: F.ACK | F.FIN, seq: g(0), ack: o(1) });
    expect(h.conn.state).toBe(TcpState.TimeWait);
  });

  it('TIME_WAIT expires after timeWaitMs', () => {
    const h = established({ timeWaitMs: 4000 });
    h.conn.close(h.now);
    h.out();
    h.now = 100;
    h.in({ ...ACK, flags: F.ACK | F.FIN, seq: g(0), ack: o(1) });
    expect(h.conn.pollAt()).toBe(0); // the ACK of the FIN
    h.out();
    expect(h.conn.pollAt()).toBe(4100);
    // A retransmitted FIN is acknowledged again and restarts the timer.
    h.now = 1000;
    h.in({ ...ACK, flags: F.ACK | F.FIN, seq: g(0), ack: o(1) });
    expectSeg(h.out()[0], { flags: 'A', seq: o(1), ack: g(1) });
    expect(h.conn.pollAt()).toBe(5000);
    expect(h.fire()).toEqual([]);
    expect(h.conn.state).toBe(TcpState.Closed);
    expect(h.app.closed).toBe(1);
    expect(h.app.resets).toEqual([]);
  });

  it('FIN_WAIT_2 times out', () => {
    const h = established({ finWait2TimeoutMs: 60_000 });
    h.conn.close(h.now);
    h.out();
    h.now = 10;
    h.in(ack(1));
    expect(h.conn.state).toBe(TcpState.FinWait2);
    expect(h.conn.pollAt()).toBe(60_010);
    // Activity from the guest postpones it.
    h.now = 30_000;
    h.in({ ...ACK, flags: F.ACK | F.PSH, seq: g(0), ack: o(1), payload: pattern(0, 5) });
    expectSeg(h.fire()[0], { flags: 'A', ack: g(5) }); // the delayed ACK
    expect(h.conn.pollAt()).toBe(90_000);
    const segs = h.fire();
    expectSeg(segs[0], { flags: 'RA', seq: o(1), ack: g(5) });
    expect(h.app.resets).toEqual(['timeout']);
    expect(h.app.closed).toBe(1);
  });

  it('keepalive probes an idle peer and aborts when it is gone', () => {
    const h = established({ keepaliveIdleMs: 7_200_000 });
    expect(h.conn.pollAt()).toBe(7_200_000);
    const [p] = h.fire();
    // RFC 1122 §4.2.3.6: SEG.SEQ = SND.NXT − 1, no data.
    expectSeg(p, { flags: 'A', seq: o(-1), ack: g(0), len: 0 });
    // The guest answers: the idle period starts over.
    h.in(ack(0));
    expect(h.conn.pollAt()).toBe(h.now + 7_200_000);
    h.fire();
    for (let i = 1; i < 9; i++) {
      expect(h.conn.pollAt()).toBe(h.now + 75_000);
      expectSeg(h.fire()[0], { flags: 'A', seq: o(-1) });
    }
    const last = h.fire();
    expectSeg(last[0], { flags: 'RA', seq: o(0) });
    expect(h.app.resets).toEqual(['timeout']);
    expect(h.app.closed).toBe(1);
  });

  it('a peer RST in CLOSE_WAIT reports peer-reset then closes once', () => {
    const h = established();
    h.in({ ...ACK, flags: F.ACK | F.FIN, seq: g(0), ack: o(0) });
    h.out();
    h.in({ seq: g(1), flags: F.RST });
    expect(h.app.resets).toEqual(['peer-reset']);
    h.out();
    h.out();
    expect(h.app.closed).toBe(1);
  });

  it('a FIN received out of order waits for the data before it', () => {
    const h = established();
    h.in({ ...ACK, flags: F.ACK | F.FIN, seq: g(100), ack: o(0), payload: pattern(100, 50) });
    expect(h.app.eof).toBe(0);
    expect(h.conn.state).toBe(TcpState.Established);
    h.in({ ...ACK, seq: g(0), ack: o(0), payload: pattern(0, 100) });
    expect(h.app.data).toEqual(pattern(0, 150));
    expect(h.app.eof).toBe(1);
    expect(h.conn.state).toBe(TcpState.CloseWait);
    expectSeg(h.out()[0], { ack: g(151) });
  });

  it('abort() in the middle of onData stops processing', () => {
    const h = established();
    h.app.onData = () => h.conn.abort(h.now);
    h.in({ ...ACK, flags: F.ACK | F.FIN, seq: g(0), ack: o(0), payload: pattern(0, 10) });
    expect(h.app.eof).toBe(0);
    const segs = h.out();
    expectSeg(segs[0], { flags: 'RA' });
    expect(h.app.closed).toBe(1);
  });
});
