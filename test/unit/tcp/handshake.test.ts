// Opening and refusing connections: passive open held until accept(),
// option negotiation, active open, simultaneous open, handshake timeouts.

import { describe, expect, it } from 'vitest';
import { TcpConnection, rstForUnknown, windowShiftFor } from '../../../src/stack/tcp/connection.js';
import { TcpState } from '../../../src/stack/tcp/state.js';
import { seqAdd } from '../../../src/stack/tcp/seq.js';
import {
  ACK,
  F,
  GUEST_ISS,
  GUEST_PORT,
  Harness,
  LINUX_SYN,
  LOCAL_PORT,
  OUR_ISS,
  SYN,
  config,
  established,
  expectSeg,
  g,
  o,
  seg,
} from './helpers.js';

function passive(synTemplate = SYN, cfg = {}) {
  const h = new Harness();
  h.conn = TcpConnection.fromSyn(h.now, seg(synTemplate), config(cfg), h.app);
  h.app.conn = h.conn;
  return h;
}

describe('passive open', () => {
  it('answers SYN with SYN-ACK only after accept()', () => {
    const h = passive();
    expect(h.conn.state).toBe(TcpState.Listen);
    expect(h.conn.localPort).toBe(LOCAL_PORT);
    expect(h.conn.remotePort).toBe(GUEST_PORT);
    expect(h.conn.pollAt()).toBe(Infinity);
    expect(h.out()).toEqual([]);
    // The guest retransmits its SYN while the host socket connects: absorbed.
    h.now = 1000;
    h.in(SYN);
    expect(h.out()).toEqual([]);
    h.conn.accept(h.now);
    expect(h.conn.state).toBe(TcpState.SynReceived);
    expect(h.conn.pollAt()).toBe(0);
    const [sa, ...rest] = h.out();
    expect(rest).toEqual([]);
    expectSeg(sa, { flags: 'SA', seq: OUR_ISS, ack: g(0), len: 0 });
    expect(sa.mss).toBe(1460);
    // The guest's SYN had no options: none are echoed.
    expect(sa.windowScale).toBeUndefined();
    expect(sa.sackPermitted).toBe(false);
    expect(sa.tsVal).toBeUndefined();
    h.in({ ...ACK, seq: g(0), ack: o(0) });
    expect(h.conn.state).toBe(TcpState.Established);
    expect(h.app.established).toBe(1);
  });

  it('refuse() answers the SYN with RST|ACK', () => {
    const h = passive();
    h.conn.refuse(h.now);
    expect(h.conn.state).toBe(TcpState.Closed);
    const segs = h.out();
    expect(segs).toHaveLength(1);
    expectSeg(segs[0], { flags: 'RA', seq: 0, ack: g(0), len: 0 });
    expect(h.app.closed).toBe(1);
    expect(h.app.resets).toEqual([]);
    expect(h.conn.pollAt()).toBe(Infinity);
    expect(h.out()).toEqual([]);
  });

  it('negotiates MSS, window scale, SACK-permitted and timestamps from a Linux SYN', () => {
    const h = passive(LINUX_SYN, { mss: 65480, rcvBufSize: 4 << 20 });
    h.now = 5;
    h.conn.accept(h.now);
    const [sa] = h.out();
    expectSeg(sa, { flags: 'SA', seq: OUR_ISS, ack: g(0), win: 65535 });
    expect(sa.mss).toBe(65480);
    // RFC 7323 §2.3: 4 MiB >> 7 = 32768 ≤ 65535.
    expect(sa.windowScale).toBe(7);
    expect(sa.sackPermitted).toBe(true);
    expect(sa.tsEcr).toBe(1000);
    expect(sa.tsVal).toBeTypeOf('number');
    // Guest ACK: window 502 << 7 = 64256 bytes.
    h.in({ ...ACK, seq: g(0), ack: o(0), window: 502, tsVal: 1001, tsEcr: sa.tsVal });
    expect(h.conn.state).toBe(TcpState.Established);
    h.conn.send(Buffer.alloc(5000, 1));
    const segs = h.out();
    // Payload per segment: the guest's MSS (1460) minus 12 bytes of timestamps.
    expect(segs.map((s) => s.payload.length)).toEqual([1448, 1448, 1448, 656]);
    for (const s of segs) {
      expect(s.tsEcr).toBe(1001);
      // Our window is scaled by 7 from now on: 4 MiB >> 7.
      expect(s.window).toBe(32768);
      expect(s.windowScale).toBeUndefined();
    }
    expect(segs[1].seq).toBe(o(1448));
  });

  it('clamps a hostile window scale to 14 (RFC 7323 §2.3): the window stays what 14 gives', () => {
    // Window scaling is a shift (1 << n, src/stack/numbers.ts): unclamped,
    // a guest's scale of 255 would shift by 255 & 31 and turn the window negative.
    const h = passive({ ...SYN, mss: 4096, windowScale: 255 }, { mss: 4096, sndBufSize: 1 << 20 });
    h.conn.accept(0);
    h.out();
    h.in({ ...ACK, seq: g(0), ack: o(0), window: 1 });
    h.conn.send(Buffer.alloc(100_000));
    const sent = h.out().reduce((n, s) => n + s.payload.length, 0);
    expect(sent).toBe(1 << 14);
  });

  it('uses MSS 536 and no options when the SYN carries none', () => {
    const h = passive({ seq: GUEST_ISS, flags: F.SYN, window: 8192 }, { mss: 65480, rcvBufSize: 1 << 20 });
    h.conn.accept(0);
    const [sa] = h.out();
    expect(sa.windowScale).toBeUndefined();
    expect(sa.sackPermitted).toBe(false);
    expect(sa.tsVal).toBeUndefined();
    h.in({ ...ACK, seq: g(0), ack: o(0), window: 8192 });
    h.conn.send(Buffer.alloc(2000));
    const segs = h.out();
    expect(segs.map((s) => s.payload.length)).toEqual([536, 536, 536, 392]);
    // Without window scaling our window field is capped at 65535.
    expect(segs[0].window).toBe(65535);
  });

  it('computes the window shift as the smallest s with buf >> s ≤ 65535', () => {
    expect(windowShiftFor(65535)).toBe(0);
    expect(windowShiftFor(65536)).toBe(1);
    expect(windowShiftFor(4 << 20)).toBe(7);
    expect(windowShiftFor(2 ** 40)).toBe(14);
  });

  it('resends the SYN-ACK at once when the guest repeats its SYN', () => {
    const h = passive();
    h.conn.accept(0);
    h.out();
    h.now = 50;
    h.in(SYN);
    const [again] = h.out();
    expectSeg(again, { flags: 'SA', seq: OUR_ISS, ack: g(0) });
    expect(h.conn.stats.retransmits).toBe(1);
  });

  it('retransmits the SYN-ACK on RTO and gives up after maxSynAckRetries', () => {
    const h = passive(SYN, { maxSynAckRetries: 2 });
    h.conn.accept(0);
    h.out();
    expect(h.conn.pollAt()).toBe(1000); // RFC 6298 §2.1: initial RTO 1 s
    expectSeg(h.fire()[0], { flags: 'SA', seq: OUR_ISS });
    expect(h.now).toBe(1000);
    expectSeg(h.fire()[0], { flags: 'SA', seq: OUR_ISS });
    expect(h.now).toBe(3000);
    h.fire();
    expect(h.now).toBe(7000);
    expect(h.app.resets).toEqual(['timeout']);
    expect(h.app.closed).toBe(1);
    expect(h.conn.state).toBe(TcpState.Closed);
  });

  it('rejects a bad ACK in SYN-RECEIVED with a RST at SEG.ACK', () => {
    const h = passive();
    h.conn.accept(0);
    h.out();
    h.in({ ...ACK, seq: g(0), ack: 12345 });
    expect(h.conn.state).toBe(TcpState.SynReceived);
    expectSeg(h.out()[0], { flags: 'R', seq: 12345 });
  });

  it('the guest aborting during the handshake closes the connection', () => {
    const h = passive();
    h.in({ seq: g(0), flags: F.RST });
    expect(h.app.resets).toEqual(['peer-reset']);
    h.out();
    expect(h.app.closed).toBe(1);
  });
});

describe('active open', () => {
  function active(cfg = {}) {
    const h = new Harness();
    h.conn = TcpConnection.connect(h.now, LOCAL_PORT, GUEST_PORT, config({ rcvBufSize: 1 << 20, ...cfg }), h.app);
    h.app.conn = h.conn;
    return h;
  }

  it('active open: SYN, SYN-ACK, ACK, onEstablished', () => {
    const h = active();
    expect(h.conn.state).toBe(TcpState.SynSent);
    const [syn] = h.out();
    expectSeg(syn, { flags: 'S', seq: OUR_ISS, len: 0, win: 65535 });
    expect(syn.mss).toBe(1460);
    expect(syn.windowScale).toBe(5); // 1 MiB >> 5 = 32768
    expect(syn.sackPermitted).toBe(true);
    expect(syn.tsEcr).toBe(0);
    h.now = 3;
    h.in({ ...LINUX_SYN, flags: F.SYN | F.ACK, ack: o(0), tsEcr: syn.tsVal });
    expect(h.conn.state).toBe(TcpState.Established);
    expect(h.app.established).toBe(1);
    const [ack] = h.out();
    expectSeg(ack, { flags: 'A', seq: o(0), ack: g(0), win: (1 << 20) >> 5 });
    expect(ack.tsEcr).toBe(1000);
    h.conn.send(Buffer.from('hello'));
    expectSeg(h.out()[0], { flags: 'PA', seq: o(0), len: 5 });
  });

  it('active open refused by RST → onReset(refused)', () => {
    const h = active();
    h.out();
    // An RST without an acceptable ACK is ignored.
    h.in({ seq: 0, ack: OUR_ISS, flags: F.RST | F.ACK });
    expect(h.conn.state).toBe(TcpState.SynSent);
    h.in({ seq: 0, ack: o(0), flags: F.RST | F.ACK });
    expect(h.app.resets).toEqual(['refused']);
    expect(h.out()).toEqual([]);
    expect(h.app.closed).toBe(1);
  });

  it('answers an unacceptable ACK in SYN-SENT with a RST', () => {
    const h = active();
    h.out();
    h.in({ ...ACK, seq: 77, ack: 999, flags: F.SYN | F.ACK });
    expect(h.conn.state).toBe(TcpState.SynSent);
    expectSeg(h.out()[0], { flags: 'R', seq: 999 });
  });

  it('simultaneous open goes through SYN-RECEIVED', () => {
    const h = active();
    h.out();
    h.in({ ...SYN });
    expect(h.conn.state).toBe(TcpState.SynReceived);
    const [sa] = h.out();
    expectSeg(sa, { flags: 'SA', seq: OUR_ISS, ack: g(0) });
    h.in({ ...ACK, seq: g(0), ack: o(0) });
    expect(h.conn.state).toBe(TcpState.Established);
    expect(h.app.established).toBe(1);
  });

  it('data and close() queued before the handshake go out after it', () => {
    const h = active();
    h.out();
    expect(h.conn.send(Buffer.from('early'))).toBe(5);
    h.conn.close(h.now);
    expect(h.conn.state).toBe(TcpState.SynSent);
    h.in({ ...SYN, flags: F.SYN | F.ACK, ack: o(0) });
    const segs = h.out();
    expectSeg(segs[0], { flags: 'FPA', seq: o(0), ack: g(0), len: 5 });
    expect(h.conn.state).toBe(TcpState.FinWait1);
  });

  it('gives up the SYN after maxSynAckRetries', () => {
    const h = active({ maxSynAckRetries: 1 });
    h.out();
    expectSeg(h.fire()[0], { flags: 'S', seq: OUR_ISS });
    expect(h.fire()).toEqual([]);
    expect(h.app.resets).toEqual(['timeout']);
    expect(h.app.closed).toBe(1);
  });
});

describe('reset generation (RFC 9293 §3.10.7.1)', () => {
  it('answers a segment without ACK with RST|ACK at SEQ+LEN, one with ACK with RST at SEG.ACK', () => {
    const r1 = rstForUnknown(seg({ ...SYN }))!;
    expect(r1.flags).toBe(F.RST | F.ACK);
    expect(r1.seq).toBe(0);
    expect(r1.ack).toBe(seqAdd(GUEST_ISS, 1));
    expect(r1.srcPort).toBe(LOCAL_PORT);
    expect(r1.dstPort).toBe(GUEST_PORT);
    const r2 = rstForUnknown(seg({ ...ACK, seq: 5, ack: 777, payload: Buffer.alloc(3) }))!;
    expect(r2.flags).toBe(F.RST);
    expect(r2.seq).toBe(777);
    expect(rstForUnknown(seg({ flags: F.RST }))).toBeUndefined();
  });

  it('abort() sends RST|ACK at SND.NXT and closes without onReset', () => {
    const h = established();
    h.conn.send(Buffer.alloc(100));
    h.out();
    h.conn.abort(h.now);
    const segs = h.out();
    expectSeg(segs[0], { flags: 'RA', seq: o(100), ack: g(0) });
    expect(h.app.closed).toBe(1);
    expect(h.app.resets).toEqual([]);
  });
});
