// The application hears a connection only through deliverEvents(), after
// process() or dispatch() returned: in a fixed order, never re-entrantly,
// and nothing but onClosed once it aborted the connection itself.

import { describe, expect, it } from 'vitest';
import { TcpConnection, type TcpAppEvents } from '../../../src/stack/tcp/connection.js';
import { TcpState } from '../../../src/stack/tcp/state.js';
import { TcpRepr } from '../../../src/wire/tcp.js';
import { MemoryBudget } from '../../../src/stack/budget.js';
import { BLOCK } from '../../../src/stack/tcp/send-buffer.js';
import { ACK, F, LINUX_SYN, config, g, o, pattern, seg } from './helpers.js';

/** Records event names; fails any event that arrives while the engine is inside process() or dispatch(). */
class Log implements TcpAppEvents {
  names: string[] = [];
  inside = false;
  conn!: TcpConnection;
  private note(n: string): void {
    expect(this.inside, `${n} delivered from inside the engine`).toBe(false);
    this.names.push(n);
  }
  onData(d: Buffer): void {
    this.note(`data ${d.length}`);
    this.conn.consumed(d.length);
  }
  onEof(): void {
    this.note('eof');
  }
  onEstablished(): void {
    this.note('established');
  }
  onSendSpace(): void {
    this.note('send-space');
  }
  onReset(r: string): void {
    this.note(`reset ${r}`);
  }
  onClosed(): void {
    this.note('closed');
  }
}

function open() {
  const log = new Log();
  let now = 0;
  const conn = TcpConnection.fromSyn(now, seg(LINUX_SYN), config(), log);
  log.conn = conn;
  const sent: TcpRepr[] = [];
  const step = (f: () => void) => {
    log.inside = true;
    f();
    log.inside = false;
  };
  const input = (r: TcpRepr) => step(() => conn.process(now, r));
  const dispatch = () => step(() => conn.dispatch(now, (s) => sent.push(new TcpRepr(s.repr))));
  conn.accept(now);
  dispatch();
  const synAck = sent[0];
  return {
    log,
    conn,
    sent,
    input,
    dispatch,
    synAck,
    at: (t: number) => (now = t),
    ts: () => ({ tsVal: 2000, tsEcr: synAck.tsVal }),
  };
}

describe('connection events', () => {
  it('are held until deliverEvents(), then come in order: established, data, eof', () => {
    const c = open();
    // One segment completes the handshake, carries data and the FIN.
    c.input(seg({ ...ACK, flags: F.ACK | F.FIN | F.PSH, seq: g(0), ack: o(0), payload: pattern(0, 300), ...c.ts() }));
    expect(c.log.names).toEqual([]);
    expect(c.conn.state).toBe(TcpState.CloseWait);
    c.conn.deliverEvents();
    expect(c.log.names).toEqual(['established', 'data 300', 'eof']);
    c.conn.deliverEvents();
    expect(c.log.names).toHaveLength(3);
  });

  it('out-of-order data is delivered in sequence once the gap fills', () => {
    const c = open();
    c.input(seg({ ...ACK, seq: g(0), ack: o(0), ...c.ts() }));
    c.input(seg({ ...ACK, seq: g(100), ack: o(0), payload: pattern(100, 100), ...c.ts() }));
    c.input(seg({ ...ACK, seq: g(0), ack: o(0), payload: pattern(0, 100), ...c.ts() }));
    c.conn.deliverEvents();
    expect(c.log.names).toEqual(['established', 'data 100', 'data 100']);
  });

  it('a reset is followed by closed, delivered after the dispatch that ended the connection', () => {
    const c = open();
    c.input(seg({ ...ACK, seq: g(0), ack: o(0), ...c.ts() }));
    c.input(seg({ flags: F.RST, seq: g(0), ack: 0 }));
    c.conn.deliverEvents();
    expect(c.log.names).toEqual(['established', 'reset peer-reset']);
    c.dispatch();
    c.conn.deliverEvents();
    expect(c.log.names).toEqual(['established', 'reset peer-reset', 'closed']);
  });

  it('after the app aborts from onData it hears only closed', () => {
    const c = open();
    c.log.onData = () => c.conn.abort(0);
    c.input(seg({ ...ACK, flags: F.ACK | F.FIN, seq: g(0), ack: o(0), payload: pattern(0, 10), ...c.ts() }));
    c.input(seg({ ...ACK, seq: g(0), ack: o(0), payload: pattern(0, 10), ...c.ts() }));
    c.conn.deliverEvents();
    expect(c.log.names).toEqual(['established']);
    c.dispatch();
    c.conn.deliverEvents();
    expect(c.log.names).toEqual(['established', 'closed']);
    expect(c.sent.at(-1)!.flags & F.RST).toBeTruthy();
  });

  it('send space comes once the peer acknowledges a full buffer', () => {
    const c = open();
    c.input(seg({ ...ACK, seq: g(0), ack: o(0), window: 65535, ...c.ts() }));
    const big = Buffer.alloc(70_000, 1);
    const n = c.conn.send(big);
    expect(n).toBeLessThan(big.length);
    // Acknowledge each flight (cwnd grows) until a quarter of the buffer is free.
    for (let i = 0; i < 4 && c.log.names.length < 2; i++) {
      c.dispatch();
      const last = c.sent.at(-1)!;
      c.input(seg({ ...ACK, seq: g(0), ack: (last.seq + last.payload.length) >>> 0, window: 65535, ...c.ts() }));
      c.conn.deliverEvents();
    }
    expect(c.log.names).toEqual(['established', 'send-space']);
  });

  it('room announced but taken before the app looked: asking sendSpace() and finding none brings another onSendSpace (no lost wake-up)', () => {
    // One memory budget for this flow and "other flows" (the test taking from it).
    const budget = new MemoryBudget(4 * BLOCK);
    const log = new Log();
    const conn = TcpConnection.fromSyn(0, seg(LINUX_SYN), config({ sndBufSize: 4 * BLOCK, budget }), log);
    log.conn = conn;
    const sent: TcpRepr[] = [];
    const emit = (s: { repr: TcpRepr }) => sent.push(new TcpRepr(s.repr));
    conn.accept(0);
    conn.dispatch(0, emit);
    const synAck = sent[0]!;
    const ts = () => ({ tsVal: 2000, tsEcr: synAck.tsVal });
    conn.process(0, seg({ ...ACK, seq: g(0), ack: o(0), window: 65535, ...ts() }));
    conn.deliverEvents();
    const want = 4 * BLOCK + 1;
    const took = conn.send(Buffer.alloc(want, 1));
    expect(took).toBeLessThan(want); // full: onSendSpace once there is room
    // The peer acknowledges every byte as it comes: the blocks go back to the budget.
    for (let i = 0; i < 20 && sent.length > 0; i++) {
      sent.length = 0;
      conn.dispatch(i, emit);
      const last = sent.filter((x) => x.payload.length > 0).at(-1);
      if (last) conn.process(i, seg({ ...ACK, seq: g(0), ack: (last.seq + last.payload.length) >>> 0, window: 65535, ...ts() }));
    }
    // Room is announced — but before the app hears of it, other flows take the whole budget.
    const taken = budget.free;
    expect(budget.take(taken)).toBe(true);
    let looked = -1;
    log.onSendSpace = () => {
      log.names.push('send-space');
      looked = conn.sendSpace();
    };
    conn.deliverEvents();
    expect(looked).toBe(0);
    // The budget eases and the owner wakes its flows: this one must hear again.
    budget.release(taken);
    conn.wake();
    conn.deliverEvents();
    expect(log.names.filter((n) => n === 'send-space')).toHaveLength(2);
  });
});
