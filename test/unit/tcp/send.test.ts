// The send path: windows, retransmission timer and backoff, fast
// retransmit/NewReno, SACK-aware retransmission, zero-window probing,
// backpressure and giving up.

import { describe, expect, it } from 'vitest';
import { TcpState } from '../../../src/stack/tcp/state.js';
import { ACK, LINUX_SYN, established, expectSeg, g, o, pattern } from './helpers.js';

const ack = (n: number, extra = {}) => ({ ...ACK, seq: g(0), ack: o(n), ...extra });
/** Nothing left to do but the (2 h) keepalive timer. */
const IDLE = 7_000_000;

describe('sending data', () => {
  it('sends within the peer window and cwnd, PSH on the last segment', () => {
    const h = established();
    expect(h.conn.send(pattern(0, 20_000))).toBe(20_000);
    const segs = h.out();
    // RFC 6928: IW = min(10*1460, max(2*1460, 14600)) = 14600 = 10 segments.
    expect(segs).toHaveLength(10);
    segs.forEach((s, i) => expectSeg(s, { flags: 'A', seq: o(i * 1460), len: 1460, ack: g(0) }));
    expect(Buffer.concat(segs.map((s) => s.payload))).toEqual(pattern(0, 14600));
    // Slow start: acking 2 segments grows cwnd by 2920, room for 4 more.
    h.in(ack(2920));
    const more = h.out();
    expect(more.map((s) => s.seq)).toEqual([o(14600), o(16060), o(17520), o(18980)]);
    expectSeg(more[3], { flags: 'PA', len: 1020 });
    expect(h.conn.stats.bytesOut).toBe(20_000);
  });

  it('keeps ACKs inside the peer window after the peer shrank it and dropped data (tcp_acceptable_seq)', () => {
    const h = established();
    h.conn.send(pattern(0, 14_600));
    expect(h.out()).toHaveLength(10); // SND.MAX = o(14600)
    // The peer (Linux under receive-memory pressure) pruned everything after
    // its RCV.NXT = o(0) and now offers 1024 bytes; it also sends us data.
    h.in({ ...ACK, seq: g(0), ack: o(0), window: 1024, payload: pattern(0, 1460) });
    h.in({ ...ACK, seq: g(1460), ack: o(0), window: 1024, payload: pattern(1460, 1460) });
    const [ackSeg] = h.out().filter((s) => s.payload.length === 0);
    // SEQ = SND.MAX (o(14600)) would lie beyond RCV.NXT + RCV.WND: the peer
    // would drop the segment, ACK field included. The window's right edge is
    // acceptable.
    expectSeg(ackSeg, { flags: 'A', seq: o(1024), ack: g(2920) });
  });

  it('retransmits after RTO and doubles it', () => {
    const h = established();
    h.now = 100;
    h.conn.send(pattern(0, 100));
    const [first] = h.out();
    expectSeg(first, { seq: o(0), len: 100 });
    // The handshake's RTT sample (0 ms) gives RTO = 200 ms (the floor).
    expect(h.conn.pollAt()).toBe(300);
    expectSeg(h.fire()[0], { flags: 'PA', seq: o(0), len: 100 });
    expect(h.conn.pollAt()).toBe(700);
    h.fire();
    expect(h.conn.pollAt()).toBe(1500);
    expect(h.conn.stats.rtoFired).toBe(2);
    expect(h.conn.stats.retransmits).toBe(2);
    // The ACK stops the timer; the next sample (Karn: none from a
    // retransmission without timestamps) leaves RTO backed off until then.
    h.in(ack(100));
    expect(h.conn.pollAt()).toBeGreaterThan(IDLE);
  });

  it('fast retransmit after three duplicate ACKs', () => {
    const h = established();
    h.conn.send(pattern(0, 14600));
    h.out();
    h.in(ack(1460));
    h.out();
    h.in(ack(1460));
    h.in(ack(1460));
    expect(h.out()).toEqual([]);
    h.in(ack(1460));
    const [rtx] = h.out();
    expectSeg(rtx, { seq: o(1460), len: 1460 });
    expect(h.conn.stats.fastRetransmits).toBe(1);
    expect(h.conn.stats.dupAcks).toBe(3);
    // A partial ACK: NewReno retransmits the next unacknowledged segment.
    h.in(ack(4380));
    expectSeg(h.out()[0], { seq: o(4380), len: 1460 });
    // Full ACK ends recovery.
    h.in(ack(14600));
    expect(h.out()).toEqual([]);
    expect(h.conn.pollAt()).toBeGreaterThan(IDLE);
  });

  it('does not retransmit SACKed data', () => {
    const h = established({}, LINUX_SYN);
    const T = { tsVal: 5000, tsEcr: 0, window: 1000 }; // 1000 << 7 bytes
    h.conn.send(pattern(0, 1448 * 10));
    const segs = h.out();
    expect(segs).toHaveLength(10);
    const at = (i: number) => o(i * 1448);
    // Segments 1 and 4 are lost; the guest SACKs what it got.
    h.in(ack(1448, T));
    h.in(ack(1448, { ...T, sackBlocks: [[at(2), at(3)]] }));
    h.in(ack(1448, { ...T, sackBlocks: [[at(2), at(4)]] }));
    h.in(ack(1448, { ...T, sackBlocks: [[at(5), at(6)], [at(2), at(4)]] }));
    const rtx1 = h.out();
    expect(rtx1.map((s) => s.seq)).toEqual([at(1)]);
    h.in(ack(1448, { ...T, sackBlocks: [[at(5), at(10)], [at(2), at(4)]] }));
    const rtx2 = h.out();
    // The next hole (segment 4) and nothing SACKed.
    expect(rtx2.map((s) => s.seq)).toEqual([at(4)]);
    h.in(ack(1448 * 4, { ...T, sackBlocks: [[at(5), at(10)]] }));
    expect(h.out().map((s) => s.seq)).toEqual([]);
    h.in(ack(1448 * 10, T));
    expect(h.conn.stats.retransmits).toBe(2);
    expect(h.conn.pollAt()).toBeGreaterThan(IDLE);
  });

  it('go-back-N after RTO skips data SACKed after the timeout', () => {
    const h = established({}, LINUX_SYN);
    const T = { tsVal: 5000, tsEcr: 0, window: 1000 };
    h.conn.send(pattern(0, 1448 * 6));
    h.out();
    const at = (i: number) => o(i * 1448);
    // RFC 8985 §7: first the tail loss probe (the last segment again)...
    expect(h.fire().map((s) => s.seq)).toEqual([at(5)]);
    expect(h.conn.lossStats.tlpProbes).toBe(1);
    // ...then the RTO: segments 0 and 1 again (cwnd = LW = 2 MSS).
    expect(h.fire().map((s) => s.seq)).toEqual([at(0), at(1)]);
    expect(h.conn.stats.rtoFired).toBe(1);
    // Segment 0 arrives; the guest holds 2..5 and says so: nothing more to resend.
    h.in(ack(1448, { ...T, sackBlocks: [[at(2), at(6)]] }));
    expect(h.out()).toEqual([]);
    h.in(ack(1448 * 6, T));
    expect(h.out()).toEqual([]);
    expect(h.conn.stats.retransmits).toBe(3);
  });

  it('zero window: persist probes with backoff then resumes', () => {
    const h = established();
    h.in(ack(0, { window: 0 }));
    h.now = 1000;
    h.conn.send(pattern(0, 3000));
    expect(h.out()).toEqual([]);
    expect(h.conn.pollAt()).toBe(1200);
    const [p1] = h.fire();
    expectSeg(p1, { seq: o(0), len: 1 });
    h.in(ack(0, { window: 0 }));
    expect(h.conn.pollAt()).toBe(1600);
    const [p2] = h.fire();
    expectSeg(p2, { seq: o(0), len: 1 });
    h.in(ack(0, { window: 0 }));
    expect(h.conn.pollAt()).toBe(2400);
    // The window opens: data flows from the probed byte on.
    h.in(ack(0, { window: 10_000 }));
    const segs = h.out();
    expect(segs.map((s) => [s.seq, s.payload.length])).toEqual([
      [o(0), 1460],
      [o(1460), 1460],
      [o(2920), 80],
    ]);
    h.in(ack(3000));
    expect(h.conn.pollAt()).toBeGreaterThan(IDLE);
  });

  it('a probe accepted by a reopened window advances SND.UNA', () => {
    const h = established();
    h.in(ack(0, { window: 0 }));
    h.conn.send(pattern(0, 100));
    expect(h.out()).toEqual([]);
    expectSeg(h.fire()[0], { seq: o(0), len: 1 });
    h.in(ack(1, { window: 5000 }));
    expect(h.out().map((s) => [s.seq, s.payload.length])).toEqual([[o(1), 99]]);
  });

  it('backpressure: send() takes at most the free space, onSendSpace when acked', () => {
    const h = established({ sndBufSize: 10_000 });
    expect(h.conn.send(pattern(0, 6000))).toBe(6000);
    expect(h.conn.sendSpace()).toBe(4000);
    expect(h.conn.send(pattern(6000, 6000))).toBe(4000);
    expect(h.conn.sendSpace()).toBe(0);
    h.out();
    h.in(ack(1460));
    expect(h.app.sendSpace).toBe(0); // < 1/4 of the buffer free
    h.in(ack(4380));
    expect(h.app.sendSpace).toBe(1);
    expect(h.conn.sendSpace()).toBe(4380);
  });

  it('gives up after maxRetries with RST and onReset(timeout)', () => {
    const h = established({ maxRetries: 3 });
    h.conn.send(pattern(0, 10));
    h.out();
    for (let i = 0; i < 3; i++) expectSeg(h.fire()[0], { seq: o(0), len: 10 });
    const last = h.fire();
    expect(last).toHaveLength(1);
    expectSeg(last[0], { flags: 'RA', seq: o(10), ack: g(0) });
    expect(h.app.resets).toEqual(['timeout']);
    expect(h.app.closed).toBe(1);
    expect(h.conn.state).toBe(TcpState.Closed);
    expect(h.conn.pollAt()).toBe(Infinity);
  });

  it('a window that stays shut past maxRetries probes ends with RST and onReset(timeout)', () => {
    const h = established({ maxRetries: 2 });
    h.in(ack(0, { window: 0 }));
    h.conn.send(pattern(0, 100));
    expect(h.out()).toEqual([]);
    for (let i = 0; i < 2; i++) {
      expectSeg(h.fire()[0], { seq: o(0), len: 1 });
      h.in(ack(0, { window: 0 }));
    }
    const last = h.fire();
    expect(last).toHaveLength(1);
    expectSeg(last[0], { flags: 'RA', seq: o(0), ack: g(0) });
    expect(h.app.resets).toEqual(['timeout']);
    expect(h.app.closed).toBe(1);
    expect(h.conn.pollAt()).toBe(Infinity);
  });

  it('honours window scaling of the peer window', () => {
    const h = established({}, LINUX_SYN);
    // 3 << 7 = 384 bytes of window.
    h.in(ack(0, { window: 3, tsVal: 1001, tsEcr: 0 }));
    h.conn.send(pattern(0, 1000));
    const segs = h.out();
    expect(segs.map((s) => s.payload.length)).toEqual([384]);
  });

  it('takes RTT samples from timestamp echoes', () => {
    // Without SACK there is no tail loss probe: pollAt() is the RTO.
    const h = established({}, { ...LINUX_SYN, sackPermitted: false });
    h.now = 1000;
    h.conn.send(pattern(0, 100));
    const [s] = h.out();
    h.now = 1050;
    h.in(ack(100, { tsVal: 1002, tsEcr: s.tsVal }));
    h.conn.send(pattern(100, 100));
    h.out();
    // SRTT = 50, RTTVAR = 25: RTO = 50 + 4*25 = 150 → floor 200.
    expect(h.conn.pollAt()).toBe(1250);
    h.now = 1100;
    h.in(ack(200, { tsVal: 1003, tsEcr: (s.tsVal! - 400) >>> 0 }));
    h.conn.send(pattern(200, 100));
    h.out();
    // Samples so far: 0 ms (handshake), 50 ms, now 500 ms (RFC 6298 §2.3):
    // after 50: RTTVAR = 12.5, SRTT = 6.25; after 500: RTTVAR = 0.75*12.5 +
    // 0.25*493.75 = 132.8125, SRTT = 0.875*6.25 + 62.5 = 67.96875;
    // RTO = SRTT + 4*RTTVAR = 599.21875.
    expect(h.conn.pollAt()).toBeCloseTo(1100 + 599.21875, 5);
  });
});
