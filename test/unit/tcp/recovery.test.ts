// Loss recovery with a SACK peer: RACK-TLP (RFC 8985), RFC 6675 pipe-based
// recovery, the restart after an RTO, and D-SACK reporting (RFC 2883).

import { describe, expect, it } from 'vitest';
import { ACK, LINUX_SYN, established, g, o, pattern } from './helpers.js';

const MSS = 1448; // 1460 minus the timestamps option
const at = (i: number) => o(i * MSS);
/** A guest ACK (timestamps on, window 1000 << 7). */
const ack = (n: number, extra = {}) => ({ ...ACK, seq: g(0), ack: o(n), tsVal: 5000, tsEcr: 0, window: 1000, ...extra });
const seqs = (segs: { seq: number }[]) => segs.map((s) => s.seq);

describe('RACK-TLP and SACK recovery', () => {
  it('tail loss probe recovers a lost last segment without an RTO', () => {
    const h = established({}, LINUX_SYN);
    h.conn.send(pattern(0, 3 * MSS));
    expect(seqs(h.out())).toEqual([at(0), at(1), at(2)]);
    // Segments 0 and 1 are acknowledged after 1 ms; segment 2 is lost.
    h.now = 1;
    h.in(ack(2 * MSS));
    expect(h.out()).toEqual([]);
    // One segment in flight: PTO = 2*SRTT + the guest's worst-case delayed ACK, well before the RTO.
    const pto = h.conn.pollAt();
    expect(pto).toBeGreaterThan(h.now + 40);
    expect(pto).toBeLessThan(h.now + 200);
    const probe = h.fire();
    expect(seqs(probe)).toEqual([at(2)]);
    expect(probe[0].payload).toEqual(pattern(2 * MSS, MSS));
    expect(h.conn.lossStats.tlpProbes).toBe(1);
    h.in(ack(3 * MSS));
    expect(h.conn.stats.rtoFired).toBe(0);
    expect(h.conn.pollAt()).toBeGreaterThan(7_000_000); // only keepalive left
  });

  it('tail loss probe sends new data when the window allows, whatever cwnd says', () => {
    const h = established({}, LINUX_SYN);
    h.conn.send(pattern(0, 20 * MSS));
    expect(h.out()).toHaveLength(10); // initial window
    const probe = h.fire();
    expect(seqs(probe)).toEqual([at(10)]);
    expect(h.conn.stats.retransmits).toBe(0);
  });

  it('RACK marks a segment lost once a later one is SACKed and the reorder window passed', () => {
    const h = established({}, LINUX_SYN);
    // One exchange gives RACK min_RTT = 4 ms, so reo_wnd = min_RTT/4 = 1 ms.
    h.conn.send(pattern(0, MSS));
    h.out();
    h.now = 4;
    h.in(ack(MSS));
    h.now = 10;
    h.conn.send(pattern(MSS, 3 * MSS));
    expect(seqs(h.out())).toEqual([at(1), at(2), at(3)]);
    // At 14 ms segment 2 is SACKed: segment 1, sent before it, may just be
    // reordered until 10 + RACK.rtt (4) + reo_wnd (1) = 15 ms.
    h.now = 14;
    h.in(ack(MSS, { sackBlocks: [[at(2), at(3)]] }));
    expect(h.out()).toEqual([]);
    expect(h.conn.pollAt()).toBeCloseTo(15, 6);
    const rtx = h.fire();
    expect(seqs(rtx)).toEqual([at(1)]);
    expect(h.conn.lossStats.rackLost).toBe(1);
    expect(h.conn.stats.fastRetransmits).toBe(1);
    expect(h.conn.stats.dupAcks).toBe(1); // one duplicate ACK was enough
  });

  it('SACK recovery sends several segments per ACK while pipe < cwnd', () => {
    const h = established({}, LINUX_SYN);
    h.conn.send(pattern(0, 20 * MSS));
    expect(h.out()).toHaveLength(10);
    // Segments 1, 2, 3 are lost; one ACK SACKs 4..9 (≥ DupThresh segments: reo_wnd = 0).
    h.now = 1;
    h.in(ack(MSS, { sackBlocks: [[at(4), at(10)]] }));
    const out = h.out();
    // Recovery: cwnd = ssthresh = FlightSize/2 = 4.5 segments; pipe was 0,
    // so all three holes go out at once, then new data while room is left.
    expect(seqs(out)).toEqual([at(1), at(2), at(3), at(10)]);
    expect(h.conn.stats.fastRetransmits).toBe(1);
    expect(h.conn.stats.retransmits).toBe(3);
  });

  it('a lost retransmission is detected by RACK, not by RTO', () => {
    const h = established({}, LINUX_SYN);
    h.conn.send(pattern(0, 20 * MSS));
    h.out();
    h.now = 1;
    h.in(ack(MSS, { sackBlocks: [[at(4), at(10)]] }));
    expect(seqs(h.out())).toEqual([at(1), at(2), at(3), at(10)]);
    // The retransmission of segment 1 is lost; 2, 3 and the new segment 10 arrive.
    h.now = 2;
    h.in(ack(MSS, { sackBlocks: [[at(2), at(4)], [at(4), at(10)]] }));
    h.in(ack(MSS, { sackBlocks: [[at(2), at(11)]] }));
    const out = h.out();
    // Segment 10 was sent after the retransmission and is delivered: the
    // retransmission is lost too, and goes again at once.
    expect(seqs(out)[0]).toBe(at(1));
    expect(h.conn.stats.rtoFired).toBe(0);
    h.in(ack(11 * MSS));
    expect(h.conn.stats.rtoFired).toBe(0);
  });

  it('after an RTO two segments go out so a delayed-ACK receiver answers at once', () => {
    // No SACK: no probe, the RTO itself.
    const h = established({}, { ...LINUX_SYN, sackPermitted: false });
    h.conn.send(pattern(0, 4 * MSS));
    expect(h.out()).toHaveLength(4);
    const rto = h.fire();
    expect(h.conn.stats.rtoFired).toBe(1);
    expect(seqs(rto)).toEqual([at(0), at(1)]);
  });

  it('reports a duplicate segment as a D-SACK block (RFC 2883)', () => {
    const h = established({}, LINUX_SYN);
    const T = { tsVal: 1001, tsEcr: 0 };
    h.in({ ...ACK, seq: g(0), ack: o(0), payload: pattern(0, 1000), ...T });
    h.in({ ...ACK, seq: g(1000), ack: o(0), payload: pattern(1000, 1000), ...T });
    h.out();
    // The guest resends the first segment: it is a duplicate.
    h.in({ ...ACK, seq: g(0), ack: o(0), payload: pattern(0, 1000), ...T });
    const [a] = h.out();
    expect(a.ack).toBe(g(2000));
    expect(a.sackBlocks).toEqual([[g(0), g(1000)]]);
    // Reported once.
    h.in({ ...ACK, seq: g(2000), ack: o(0), payload: pattern(2000, 3000), ...T });
    const [b] = h.out();
    expect(b.sackBlocks ?? []).toEqual([]);
  });
});
