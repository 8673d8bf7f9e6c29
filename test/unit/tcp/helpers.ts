// Shared fixtures for the TCP core tests: segment templates, a recording
// app, a connection harness with injected time, and small matchers.

import { expect } from 'vitest';
import {
  TcpConnection,
  type TcpAppEvents,
  type TcpConnectionConfig,
  type TcpResetReason,
} from '../../../src/stack/tcp/connection.js';
import { seqAdd } from '../../../src/stack/tcp/seq.js';
import { TcpFlags, TcpRepr, type TcpFields } from '../../../src/wire/tcp.js';

export const F = TcpFlags;
export const GUEST_PORT = 45678;
export const LOCAL_PORT = 80;
export const GUEST_ISS = 0xfffffe00; // wraps 2^32 within the first 512 bytes
export const OUR_ISS = 5000;

/** Guest sequence number of its n-th data byte. */
export const g = (n: number) => seqAdd(GUEST_ISS, 1 + n);
/** Our sequence number of our n-th data byte. */
export const o = (n: number) => seqAdd(OUR_ISS, 1 + n);

/** Deterministic payload: byte i of a stream is (i * 31 + 7) & 0xff. */
export function pattern(from: number, len: number): Buffer {
  const b = Buffer.allocUnsafe(len);
  for (let i = 0; i < len; i++) b[i] = ((from + i) * 31 + 7) & 0xff;
  return b;
}

export function seg(f: Partial<TcpFields>): TcpRepr {
  return new TcpRepr({ srcPort: GUEST_PORT, dstPort: LOCAL_PORT, seq: 0, ack: 0, flags: 0, window: 65535, ...f });
}

/** A plain SYN (MSS 1460, no other options): windows are unscaled. */
export const SYN: Partial<TcpFields> = { seq: GUEST_ISS, flags: F.SYN, window: 65535, mss: 1460 };
/** What Linux 6.x sends: MSS, SACK-permitted, timestamps, window scale 7. */
export const LINUX_SYN: Partial<TcpFields> = {
  seq: GUEST_ISS,
  flags: F.SYN,
  window: 64240,
  mss: 1460,
  sackPermitted: true,
  tsVal: 1000,
  tsEcr: 0,
  windowScale: 7,
};
export const ACK: Partial<TcpFields> = { flags: F.ACK, window: 65535 };

export class App implements TcpAppEvents {
  chunks: Buffer[] = [];
  eof = 0;
  established = 0;
  sendSpace = 0;
  resets: TcpResetReason[] = [];
  closed = 0;
  /** Consume data as soon as it arrives. */
  autoConsume = true;
  conn?: TcpConnection;
  onData(d: Buffer): void {
    this.chunks.push(Buffer.from(d)); // valid during onData only
    if (this.autoConsume) this.conn?.consumed(d.length);
  }
  onEof(): void {
    this.eof++;
  }
  onEstablished(): void {
    this.established++;
  }
  onSendSpace(): void {
    this.sendSpace++;
  }
  onReset(r: TcpResetReason): void {
    this.resets.push(r);
  }
  onClosed(): void {
    this.closed++;
  }
  get data(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

export function config(c: Partial<TcpConnectionConfig> = {}): TcpConnectionConfig {
  return { mss: 1460, rcvBufSize: 65535, sndBufSize: 65536, iss: OUR_ISS, ...c };
}

/** Decodes a flags string like "SA" / "FPA" / "RA" into bits (order-free). */
export function flags(s: string): number {
  let f = 0;
  for (const ch of s) {
    f |= { S: F.SYN, A: F.ACK, F: F.FIN, R: F.RST, P: F.PSH }[ch] ?? 0;
  }
  return f;
}

export function flagStr(f: number): string {
  return (f & F.SYN ? 'S' : '') + (f & F.FIN ? 'F' : '') + (f & F.RST ? 'R' : '') + (f & F.PSH ? 'P' : '') + (f & F.ACK ? 'A' : '');
}

export interface Want {
  flags?: string;
  seq?: number;
  ack?: number;
  len?: number;
  win?: number;
}

/** Asserts the fields given in `want` (flags compared exactly, as a string like "PA"). */
export function expectSeg(s: TcpRepr | undefined, want: Want): void {
  expect(s, 'segment expected').toBeDefined();
  const got: Want = {};
  if (want.flags !== undefined) got.flags = flagStr(s!.flags);
  if (want.seq !== undefined) got.seq = s!.seq;
  if (want.ack !== undefined) got.ack = s!.ack;
  if (want.len !== undefined) got.len = s!.payload.length;
  if (want.win !== undefined) got.win = s!.window;
  const norm = { ...want };
  if (norm.flags !== undefined) norm.flags = flagStr(flags(norm.flags));
  expect(got).toEqual(norm);
}

export class Harness {
  app = new App();
  conn!: TcpConnection;
  now = 0;

  /** Dispatch at the current time; returns copies of what was emitted. */
  out(): TcpRepr[] {
    const res: TcpRepr[] = [];
    this.conn.dispatch(this.now, (s) => {
      expect(s.repr.payload).toBe(s.payload);
      expect(s.repr.srcPort).toBe(this.conn.localPort);
      expect(s.repr.dstPort).toBe(this.conn.remotePort);
      const r = new TcpRepr(s.repr);
      r.payload = Buffer.from(s.payload);
      res.push(r);
    });
    this.conn.deliverEvents();
    return res;
  }

  /** Feeds a guest segment built from the template. */
  in(f: Partial<TcpFields>): void {
    this.conn.process(this.now, seg(f));
    this.conn.deliverEvents();
  }

  /** Advances time to pollAt() (asserting it is finite) and dispatches. */
  fire(): TcpRepr[] {
    const t = this.conn.pollAt();
    expect(t).toBeLessThan(Infinity);
    this.now = Math.max(this.now, t);
    return this.out();
  }
}

/**
 * A passive connection through the handshake: guest SYN (template `syn`),
 * accept(), our SYN-ACK, the guest's ACK. The guest's window is 65535
 * (scaled by its shift if negotiated).
 */
export function established(
  c: Partial<TcpConnectionConfig> = {},
  syn: Partial<TcpFields> = SYN,
): Harness & { synAck: TcpRepr } {
  const h = new Harness() as Harness & { synAck: TcpRepr };
  h.conn = TcpConnection.fromSyn(h.now, seg(syn), config(c), h.app);
  h.app.conn = h.conn;
  h.conn.accept(h.now);
  const [synAck] = h.out();
  h.synAck = synAck;
  const ts = syn.tsVal !== undefined ? { tsVal: syn.tsVal + 1, tsEcr: synAck.tsVal } : {};
  h.in({ ...ACK, seq: g(0), ack: o(0), ...ts });
  return h;
}
