// Property: two TcpConnections (one active, one passive) joined by a lossy
// in-memory link — seeded drops, duplicates, reordering and corruption —
// move 4 MiB each way with random app write/read sizes; both byte streams
// arrive identical and both ends reach CLOSED exactly once, without resets.
// Segments cross the link as real bytes (TcpRepr.emit with checksum, then
// TcpPacket/TcpRepr.parse verifying it), so corruption is caught the way the
// stack will catch it.

import { describe, expect, it } from 'vitest';
import {
  TcpConnection,
  type TcpAppEvents,
  type TcpResetReason,
  type TcpSegmentOut,
} from '../../../src/stack/tcp/connection.js';
import { TcpState } from '../../../src/stack/tcp/state.js';
import { pseudoV4 } from '../../../src/wire/checksum.js';
import { IpProtocol } from '../../../src/wire/ipv4.js';
import { TcpPacket, TcpRepr } from '../../../src/wire/tcp.js';
import { makePrng as mulberry32 } from '../../../src/host/fault.js';


/** A stream of `len` bytes derived from `seed`, generated once. */
function stream(seed: number, len: number): Buffer {
  const b = Buffer.allocUnsafe(len);
  let x = seed >>> 0;
  for (let i = 0; i < len; i += 4) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    b.writeUInt32LE(x, i);
  }
  return b;
}

interface Faults {
  drop: number;
  dup: number;
  reorder: number;
  corrupt: number;
  /** Remove SACK/timestamps/window scale from SYNs (exercise the plain paths). */
  stripOptions?: boolean;
}

const IP_A = 0x0a000202;
const IP_B = 0x0a000264;
const TOTAL = 4 << 20;

class Side implements TcpAppEvents {
  conn?: TcpConnection;
  sent = 0;
  received: Buffer[] = [];
  receivedLen = 0;
  unconsumed = 0;
  eof = 0;
  established = 0;
  resets: TcpResetReason[] = [];
  closed = 0;
  closedCalled = false;
  constructor(
    readonly name: string,
    readonly out: Buffer,
    readonly rnd: () => number,
  ) {}
  onData(d: Buffer): void {
    this.received.push(Buffer.from(d)); // valid during onData only
    this.receivedLen += d.length;
    this.unconsumed += d.length;
  }
  onEof(): void {
    this.eof++;
  }
  onEstablished(): void {
    this.established++;
  }
  onSendSpace(): void {}
  onReset(r: TcpResetReason): void {
    this.resets.push(r);
  }
  onClosed(): void {
    this.closed++;
  }
  /** Random app activity: write a random amount, consume a random amount. */
  tick(now: number): void {
    const c = this.conn;
    if (!c || this.closed) return;
    if (this.sent < this.out.length) {
      const want = 1 + Math.floor(this.rnd() * (this.rnd() < 0.2 ? 100 : 70_000));
      const n = c.send(this.out.subarray(this.sent, Math.min(this.out.length, this.sent + want)));
      this.sent += n;
      if (this.sent === this.out.length) c.close(now);
    }
    if (this.unconsumed > 0 && this.rnd() < 0.7) {
      const n = this.rnd() < 0.5 ? this.unconsumed : Math.ceil(this.rnd() * this.unconsumed);
      this.unconsumed -= n;
      c.consumed(n);
    }
  }
}

interface InFlight {
  at: number;
  order: number;
  toB: boolean;
  frame: Buffer;
}

function run(seed: number, faults: Faults, mss: number, bufSize: number) {
  const rnd = mulberry32(seed);
  const a = new Side('A', stream(seed * 3 + 1, TOTAL), mulberry32(seed + 11));
  const b = new Side('B', stream(seed * 7 + 2, TOTAL), mulberry32(seed + 23));
  const cfg = (iss: number) => ({ mss, rcvBufSize: bufSize, sndBufSize: bufSize, iss, timeWaitMs: 4000 });
  let now = 0;
  let order = 0;
  const flight: InFlight[] = [];
  const stats = { frames: 0, dropped: 0, duplicated: 0, reordered: 0, corrupted: 0 };

  const put = (toB: boolean, seg: TcpSegmentOut) => {
    const r = seg.repr;
    if (faults.stripOptions && r.flags & 0x02) {
      r.sackPermitted = false;
      r.tsVal = r.tsEcr = undefined;
      r.windowScale = undefined;
    }
    const len = r.bufferLen();
    const frame = Buffer.alloc(len);
    const [src, dst] = toB ? [IP_A, IP_B] : [IP_B, IP_A];
    r.emit(frame, pseudoV4(src, dst, IpProtocol.TCP, len));
    stats.frames++;
    if (rnd() < faults.drop) {
      stats.dropped++;
      return;
    }
    let copies = 1;
    if (rnd() < faults.dup) {
      copies = 2;
      stats.duplicated++;
    }
    for (let i = 0; i < copies; i++) {
      let f = frame;
      if (rnd() < faults.corrupt) {
        f = Buffer.from(frame);
        f[Math.floor(rnd() * f.length)] ^= 1 + Math.floor(rnd() * 255);
        stats.corrupted++;
      }
      let at = now + 0.5;
      if (rnd() < faults.reorder) {
        at += 1 + rnd() * 3;
        stats.reordered++;
      }
      flight.push({ at, order: order++, toB, frame: f });
    }
  };
  const emitA = (s: TcpSegmentOut) => put(true, s);
  const emitB = (s: TcpSegmentOut) => put(false, s);

  const deliver = (f: InFlight) => {
    const [src, dst] = f.toB ? [IP_A, IP_B] : [IP_B, IP_A];
    let repr: TcpRepr;
    try {
      repr = TcpRepr.parse(TcpPacket.newChecked(f.frame), {
        pseudoSum: pseudoV4(src, dst, IpProtocol.TCP, f.frame.length),
      });
    } catch {
      return; // corrupted: dropped like the stack would
    }
    if (f.toB) {
      if (!b.conn) {
        if (repr.flags !== 0x02) return;
        b.conn = TcpConnection.fromSyn(now, repr, cfg(0xfffff000 + seed), b);
        b.conn.accept(now);
      } else b.conn.process(now, repr);
      b.conn.deliverEvents();
    } else {
      a.conn!.process(now, repr);
      a.conn!.deliverEvents();
    }
  };

  a.conn = TcpConnection.connect(now, 40000, 8080, cfg(0x7ffffff0 + seed), a);
  let iterations = 0;
  const LIMIT_MS = 300_000;
  while (a.closed === 0 || b.closed === 0) {
    if (++iterations > 2_000_000 || now > LIMIT_MS) {
      throw new Error(
        `stuck at ${now} ms: A ${a.conn?.state} sent ${a.sent} got ${a.receivedLen}; B ${b.conn?.state} sent ${b.sent} got ${b.receivedLen}`,
      );
    }
    // Frames due now, in time order (stable for equal times).
    flight.sort((x, y) => x.at - y.at || x.order - y.order);
    let i = 0;
    while (i < flight.length && flight[i].at <= now) deliver(flight[i++]);
    if (i > 0) flight.splice(0, i);
    a.tick(now);
    b.tick(now);
    if (!a.closed) a.conn!.dispatch(now, emitA);
    a.conn!.deliverEvents();
    if (b.conn && !b.closed) b.conn.dispatch(now, emitB);
    b.conn?.deliverEvents();
    // Next event: a frame, a connection timer, or the next app tick (1 ms).
    let next = now + 1;
    if (flight.length > 0) next = Math.min(next, flight.reduce((m, f) => Math.min(m, f.at), Infinity));
    const appIdle = (s: Side) => s.sent === s.out.length && s.unconsumed === 0;
    if (appIdle(a) && appIdle(b)) {
      next = Math.min(
        flight.length > 0 ? flight.reduce((m, f) => Math.min(m, f.at), Infinity) : Infinity,
        a.closed ? Infinity : a.conn!.pollAt(),
        b.conn && !b.closed ? b.conn.pollAt() : Infinity,
      );
      if (next === Infinity) break;
    }
    now = Math.max(now, next);
  }
  return { a, b, stats, now };
}

describe('lossy link property', () => {
  const cases: [string, number, Faults, number, number][] = [
    ['5% drop, 1% dup, 1% reorder, 0.5% corrupt; SACK+TS+WS', 1, { drop: 0.05, dup: 0.01, reorder: 0.01, corrupt: 0.005 }, 1460, 256 << 10],
    ['same faults, SYN options stripped (NewReno without SACK, timestamps or window scale)', 2, { drop: 0.05, dup: 0.01, reorder: 0.01, corrupt: 0.005, stripOptions: true }, 1460, 64 << 10],
    ['heavy reordering and duplicates, jumbo MSS', 3, { drop: 0.02, dup: 0.05, reorder: 0.1, corrupt: 0.01 }, 9000, 512 << 10],
  ];
  for (const [name, seed, faults, mss, buf] of cases) {
    it(`transfers 4 MiB both ways intact: ${name}`, () => {
      const { a, b, stats } = run(seed, faults, mss, buf);
      expect(a.resets).toEqual([]);
      expect(b.resets).toEqual([]);
      expect(a.receivedLen).toBe(TOTAL);
      expect(b.receivedLen).toBe(TOTAL);
      expect(Buffer.concat(a.received).equals(b.out)).toBe(true);
      expect(Buffer.concat(b.received).equals(a.out)).toBe(true);
      expect([a.eof, b.eof]).toEqual([1, 1]);
      expect([a.established, b.established]).toEqual([1, 1]);
      expect([a.closed, b.closed]).toEqual([1, 1]);
      expect(a.conn!.state).toBe(TcpState.Closed);
      expect(b.conn!.state).toBe(TcpState.Closed);
      expect(stats.dropped).toBeGreaterThan(0);
      expect(a.conn!.stats.retransmits + b.conn!.stats.retransmits).toBeGreaterThan(0);
    });
  }
});
