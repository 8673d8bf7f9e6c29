// Not a test: simulated completion time of a bulk transfer over a lossy
// link, in virtual time. One TcpConnection sends TOTAL bytes, either to a
// model of a Linux receiver or to another TcpConnection, through a link with
// a one-way delay and seeded faults shaped like src/host/fault.ts (drop,
// duplicate, adjacent-swap reordering, corruption = drop, both directions;
// SYNs are spared) and a 1 Gbit/s serialisation rate.
//   npx vite-node test/unit/tcp/measure-loss.ts
//   SEEDS=1,2,3 TOTAL=4194304 MSS=1460 MBITS=1000 DELAY=0.05 npx vite-node test/unit/tcp/measure-loss.ts
//
// The Linux receiver model (what the guest kernel does, tcp_input.c):
// - ACKs at once every second full-sized segment (RFC 5681 §4.2 /
//   __tcp_ack_snd_check), otherwise after a 40 ms delayed-ACK timer
//   (TCP_DELACK_MIN);
// - ACKs at once an out-of-order segment (with SACK blocks), a segment that
//   fills a hole, and a duplicate (with a D-SACK block, RFC 2883);
// - window 1 MiB (scale 7), timestamps echoed per RFC 7323 §4.3.

import { TcpConnection, type TcpAppEvents, type TcpSegmentOut } from '../../../src/stack/tcp/connection.js';
import { seqAdd, seqDiff, seqGe, seqGt, seqLe, seqLt } from '../../../src/stack/tcp/seq.js';
import { TcpFlags, TcpRepr } from '../../../src/wire/tcp.js';
import { makePrng as mulberry32 } from '../../../src/host/fault.js';

const TOTAL = Number(process.env.TOTAL ?? 4 << 20);
const MSS = Number(process.env.MSS ?? 1460);
const SEEDS = (process.env.SEEDS ?? '1,2,3,4,5').split(',').map(Number);
const DELAY = Number(process.env.DELAY ?? 0.05);
/** Link rate in bytes per ms (default 1 Gbit/s). */
const RATE = (Number(process.env.MBITS ?? 1000) * 1e6) / 8 / 1000;
const FAULTS = {
  drop: Number(process.env.DROP ?? 0.05),
  dup: Number(process.env.DUP ?? 0.01),
  reorder: Number(process.env.REORDER ?? 0.01),
  corrupt: Number(process.env.CORRUPT ?? 0.01),
};
const LIMIT_MS = 600_000;


interface Ev {
  at: number;
  order: number;
  run: () => void;
}

/** Event queue (binary heap on time, FIFO for equal times). */
class Sim {
  now = 0;
  private heap: Ev[] = [];
  private order = 0;
  at(t: number, run: () => void): void {
    const h = this.heap;
    h.push({ at: t, order: this.order++, run });
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (less(h[p], h[i])) break;
      [h[p], h[i]] = [h[i], h[p]];
      i = p;
    }
  }
  next(): Ev | undefined {
    const h = this.heap;
    if (h.length === 0) return undefined;
    const top = h[0];
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && less(h[l], h[m])) m = l;
        if (r < h.length && less(h[r], h[m])) m = r;
        if (m === i) break;
        [h[m], h[i]] = [h[i], h[m]];
        i = m;
      }
    }
    return top;
  }
}
const less = (a: Ev, b: Ev) => a.at < b.at || (a.at === b.at && a.order < b.order);

/** One direction of the link: delay, drop, duplicate, adjacent swap, corruption (= drop). */
class Lane {
  held: TcpRepr | undefined;
  heldTimer = 0;
  frames = 0;
  dropped = 0;
  constructor(
    private readonly sim: Sim,
    private readonly rnd: () => number,
    private readonly deliver: (r: TcpRepr) => void,
  ) {}
  send(r: TcpRepr): void {
    this.frames++;
    // The handshake is spared: a lost SYN costs the same 1 s initial RTO to
    // any sender and would only add noise.
    if (r.flags & TcpFlags.SYN) return this.put(r);
    if (this.rnd() < FAULTS.drop || this.rnd() < FAULTS.corrupt) {
      this.dropped++;
      return;
    }
    if (this.held === undefined && this.rnd() < FAULTS.reorder) {
      this.held = r;
      const id = ++this.heldTimer;
      // Like fault.ts: released behind the next frame, or shortly after.
      this.sim.at(this.sim.now + 1, () => {
        if (this.held !== undefined && this.heldTimer === id) this.release();
      });
      return;
    }
    this.put(r);
    if (this.held !== undefined) this.release();
    if (this.rnd() < FAULTS.dup) this.put(r);
  }
  private release(): void {
    const h = this.held!;
    this.held = undefined;
    this.put(h);
  }
  private busyUntil = 0;
  private put(r: TcpRepr): void {
    const copy = new TcpRepr(r);
    copy.payload = Buffer.from(r.payload);
    if (r.sackBlocks) copy.sackBlocks = r.sackBlocks.map(([a, b]) => [a, b]);
    // Serialisation at RATE (bytes per ms), then the propagation delay.
    this.busyUntil = Math.max(this.busyUntil, this.sim.now) + (copy.payload.length + 66) / RATE;
    this.sim.at(this.busyUntil + DELAY, () => this.deliver(copy));
  }
}

/** A Linux-like receiver: no app, only sequence space, SACK/D-SACK, delayed ACK. */
class LinuxReceiver {
  rcvNxt = 0;
  irs = 0;
  iss = 77777;
  /** Out-of-order ranges [start, end), sorted. */
  ooo: [number, number][] = [];
  recent: number[] = [];
  pendingBytes = 0;
  delackAt = Infinity;
  delackId = 0;
  tsRecent = 0;
  lastAckSent = 0;
  received = 0;
  doneAt = Infinity;
  dsack: [number, number] | undefined;
  readonly shift = 7;
  readonly window = (1 << 20) >> 7;
  constructor(
    private readonly sim: Sim,
    private readonly out: (r: TcpRepr) => void,
    private readonly total: number,
  ) {}

  input(seg: TcpRepr): void {
    const now = this.sim.now;
    if (seg.flags & TcpFlags.SYN) {
      this.irs = seg.seq;
      this.rcvNxt = seqAdd(seg.seq, 1);
      this.lastAckSent = this.rcvNxt;
      this.tsRecent = seg.tsVal ?? 0;
      const r = new TcpRepr({
        srcPort: seg.dstPort,
        dstPort: seg.srcPort,
        seq: this.iss,
        ack: this.rcvNxt,
        flags: TcpFlags.SYN | TcpFlags.ACK,
        window: 64240,
        mss: 1460,
      });
      r.sackPermitted = true;
      r.windowScale = this.shift;
      r.tsVal = Math.floor(now);
      r.tsEcr = this.tsRecent;
      this.out(r);
      return;
    }
    const len = seg.payload.length;
    if (len === 0) return;
    if (seg.tsVal !== undefined && seqLe(seg.seq, this.lastAckSent)) this.tsRecent = seg.tsVal;
    const start = seg.seq;
    const end = seqAdd(start, len);
    if (seqLe(end, this.rcvNxt)) {
      // Duplicate: immediate ACK with D-SACK.
      this.dsack = [start, end];
      this.ack(now, seg);
      return;
    }
    if (seqGt(start, this.rcvNxt)) {
      this.addOoo(start, end);
      this.ack(now, seg);
      return;
    }
    const hadHoles = this.ooo.length > 0;
    this.advance(end);
    if (hadHoles) {
      this.ack(now, seg);
      return;
    }
    this.pendingBytes += len;
    if (this.pendingBytes >= 2 * 1448 - 1 || this.done()) this.ack(now, seg);
    else if (this.delackAt === Infinity) {
      this.delackAt = now + 40;
      const id = ++this.delackId;
      this.sim.at(this.delackAt, () => {
        if (this.delackId === id && this.delackAt !== Infinity) this.ack(this.sim.now, seg);
      });
    }
  }

  private done(): boolean {
    return seqDiff(this.rcvNxt, this.irs) - 1 >= this.total;
  }

  private advance(end: number): void {
    if (seqGt(end, this.rcvNxt)) this.rcvNxt = end;
    while (this.ooo.length > 0 && seqLe(this.ooo[0][0], this.rcvNxt)) {
      const [, e] = this.ooo.shift()!;
      if (seqGt(e, this.rcvNxt)) this.rcvNxt = e;
    }
    if (this.done() && this.doneAt === Infinity) this.doneAt = this.sim.now;
  }

  private addOoo(s: number, e: number): void {
    const r = this.ooo;
    let dup = false;
    for (const [a, b] of r) if (seqLe(a, s) && seqGe(b, e)) dup = true;
    if (dup) this.dsack = [s, e];
    r.push([s, e]);
    r.sort((x, y) => seqDiff(x[0], y[0]));
    const merged: [number, number][] = [];
    for (const [a, b] of r) {
      const last = merged[merged.length - 1];
      if (last && seqLe(a, last[1])) {
        if (seqGt(b, last[1])) last[1] = b;
      } else merged.push([a, b]);
    }
    this.ooo = merged;
    this.recent = [s, ...this.recent.filter((x) => x !== s)].slice(0, 8);
  }

  private ack(now: number, seg: TcpRepr): void {
    this.delackAt = Infinity;
    this.delackId++;
    this.pendingBytes = 0;
    this.lastAckSent = this.rcvNxt;
    const r = new TcpRepr({
      srcPort: seg.dstPort,
      dstPort: seg.srcPort,
      seq: seqAdd(this.iss, 1),
      ack: this.rcvNxt,
      flags: TcpFlags.ACK,
      window: this.window,
    });
    r.tsVal = Math.floor(now);
    r.tsEcr = this.tsRecent;
    const blocks: [number, number][] = [];
    if (this.dsack) blocks.push(this.dsack);
    this.dsack = undefined;
    // Most recent block first (RFC 2018 §4), then the others.
    const order = [...this.recent.map((s) => this.ooo.find(([a, b]) => seqLe(a, s) && seqLt(s, b))), ...this.ooo];
    for (const b of order) {
      if (b && blocks.length < 3 && !blocks.some((x) => x[0] === b[0] && x[1] === b[1])) blocks.push([b[0], b[1]]);
    }
    if (blocks.length > 0) r.sackBlocks = blocks;
    this.out(r);
  }
}

const nop = () => {};

function runToLinux(seed: number) {
  const sim = new Sim();
  const rnd = mulberry32(seed);
  const data = Buffer.alloc(TOTAL, 0x5a);
  let sent = 0;
  let conn!: TcpConnection;
  const ev: TcpAppEvents = { onData: nop, onEof: nop, onEstablished: nop, onSendSpace: nop, onReset: (r) => console.log('reset', r), onClosed: nop };
  const toRcv = new Lane(sim, rnd, (r) => rcv.input(r));
  const toSnd = new Lane(sim, rnd, (r) => {
    conn.process(sim.now, r);
    conn.deliverEvents();
    kick();
  });
  const rcv = new LinuxReceiver(sim, (r) => toSnd.send(r), TOTAL);
  conn = TcpConnection.connect(0, 40000, 80, { mss: MSS, rcvBufSize: 1 << 20, sndBufSize: 1 << 20, iss: 1000 }, ev);
  let timerAt = Infinity;
  const emit = (s: TcpSegmentOut) => toRcv.send(s.repr);
  const kick = () => {
    while (sent < TOTAL) {
      const n = conn.send(data.subarray(sent, Math.min(TOTAL, sent + 65536)));
      if (n === 0) break;
      sent += n;
    }
    conn.dispatch(sim.now, emit);
    conn.deliverEvents();
    const p = conn.pollAt();
    if (p < Infinity && p !== timerAt) {
      timerAt = p;
      sim.at(Math.max(p, sim.now), () => {
        if (timerAt === p) {
          timerAt = Infinity;
          kick();
        }
      });
    }
  };
  kick();
  for (let e = sim.next(); e && rcv.doneAt === Infinity && sim.now < LIMIT_MS; e = sim.next()) {
    sim.now = e.at;
    e.run();
  }
  return { ms: rcv.doneAt, stats: conn.stats, frames: toRcv.frames + toSnd.frames };
}

function runToTsnet(seed: number) {
  const sim = new Sim();
  const rnd = mulberry32(seed);
  const data = Buffer.alloc(TOTAL, 0x5a);
  let sent = 0;
  let received = 0;
  let doneAt = Infinity;
  let a!: TcpConnection;
  let b: TcpConnection | undefined;
  const evA: TcpAppEvents = { onData: nop, onEof: nop, onEstablished: nop, onSendSpace: nop, onReset: (r) => console.log('A reset', r), onClosed: nop };
  const evB: TcpAppEvents = {
    onData: (d) => {
      received += d.length;
      b!.consumed(d.length);
      if (received >= TOTAL && doneAt === Infinity) doneAt = sim.now;
    },
    onEof: nop,
    onEstablished: nop,
    onSendSpace: nop,
    onReset: (r) => console.log('B reset', r),
    onClosed: nop,
  };
  const cfg = (iss: number) => ({ mss: MSS, rcvBufSize: 1 << 20, sndBufSize: 1 << 20, iss });
  const timers = new Map<TcpConnection, number>();
  const emitA = (s: TcpSegmentOut) => toB.send(s.repr);
  const emitB = (s: TcpSegmentOut) => toA.send(s.repr);
  const kick = (c: TcpConnection, emit: (s: TcpSegmentOut) => void) => {
    if (c === a) {
      while (sent < TOTAL) {
        const n = a.send(data.subarray(sent, Math.min(TOTAL, sent + 65536)));
        if (n === 0) break;
        sent += n;
      }
    }
    c.dispatch(sim.now, emit);
    c.deliverEvents();
    const p = c.pollAt();
    if (p < Infinity && p !== timers.get(c)) {
      timers.set(c, p);
      sim.at(Math.max(p, sim.now), () => {
        if (timers.get(c) === p) {
          timers.delete(c);
          kick(c, emit);
        }
      });
    }
  };
  const toB = new Lane(sim, rnd, (r) => {
    if (!b) {
      if (r.flags !== TcpFlags.SYN) return;
      b = TcpConnection.fromSyn(sim.now, r, cfg(5000), evB);
      b.accept(sim.now);
    } else b.process(sim.now, r);
    b.deliverEvents();
    kick(b, emitB);
  });
  const toA = new Lane(sim, rnd, (r) => {
    a.process(sim.now, r);
    a.deliverEvents();
    kick(a, emitA);
  });
  a = TcpConnection.connect(0, 40000, 80, cfg(1000), evA);
  kick(a, emitA);
  for (let e = sim.next(); e && doneAt === Infinity && sim.now < LIMIT_MS; e = sim.next()) {
    sim.now = e.at;
    e.run();
  }
  return { ms: doneAt, stats: a.stats, frames: toA.frames + toB.frames };
}

const fmt = (x: number) => (x === Infinity ? 'stuck' : `${x.toFixed(1)} ms`);
for (const [name, fn] of [
  ['TcpConnection → Linux receiver model', runToLinux],
  ['TcpConnection → TcpConnection', runToTsnet],
] as const) {
  const times: number[] = [];
  for (const seed of SEEDS) {
    const t0 = performance.now();
    const r = fn(seed);
    times.push(r.ms);
    const s = r.stats;
    console.log(
      `${name} seed ${seed}: ${fmt(r.ms)} (rto ${s.rtoFired}, fast ${s.fastRetransmits}, rtx ${s.retransmits}, segs out ${s.segmentsOut}; wall ${(performance.now() - t0).toFixed(0)} ms)`,
    );
  }
  const sorted = [...times].sort((x, y) => x - y);
  console.log(`${name}: median ${fmt(sorted[sorted.length >> 1])}, max ${fmt(sorted[sorted.length - 1])}`);
}
