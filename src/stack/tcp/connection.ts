// src/stack/tcp/connection.ts — one TCP connection, as a pure object: the
// facade the flow table (src/stack/tcp-flows.ts) and the tests use.
//
// Read this first:
// - Nothing here touches sockets, timers or clocks. Segments come in
//   through process(now, seg); everything that must go out is produced by
//   dispatch(now, emit); pollAt() says when dispatch() next has work. The
//   owner calls dispatch() at the end of every I/O batch and at pollAt().
// - The application hears about the connection only through
//   deliverEvents(), which the owner calls after process() or dispatch()
//   has returned (events.ts): the engine never calls out half way through
//   a segment, so nothing in it has to re-check its state after a callback.
//   onClosed comes from a dispatch, after any final segment (RST) went out;
//   onReset precedes it for abnormal ends.
// - App side: onData/consumed() is the receive path (consumed() reopens the
//   window), send()/onSendSpace the transmit path, close() a half-close
//   (FIN after queued data), abort() a reset.
// - The state of the connection is one Tcb (tcb.ts); the work is split by
//   concern: handshake.ts, receiver.ts, sender.ts, recovery.ts, timers.ts.
//   process() below walks an arriving segment through RFC 9293 §3.10.7's
//   steps in order, handing each step to the file that owns it.

import { TcpFlags, TcpRepr } from '../../wire/tcp.js';
import type { TcpAppEvents } from './events.js';
import { initPassive, processAckOfSyn, processListen, processSynSent } from './handshake.js';
import { acceptable, challengeAck, consumed, processText, updateTsRecent } from './receiver.js';
import { processAck, updateTlp } from './recovery.js';
import { commitSendRoom, lendSendRoom, output, send, sendSpace, startClose, updatePersist } from './sender.js';
import { seqAdd } from './seq.js';
import { TcpState } from './state.js';
import { EMPTY, Tcb, type TcpConnectionConfig, type TcpConnectionStats, type TcpEmit } from './tcb.js';
import { pollAt, runTimers } from './timers.js';

export { TcpState } from './state.js';
export type { TcpAppEvents, TcpResetReason } from './events.js';
export { DEFAULT_PEER_MSS, windowShiftFor } from './tcb.js';
export type { TcpConnectionConfig, TcpConnectionStats, TcpEmit, TcpSegmentOut } from './tcb.js';

const { SYN, RST, ACK } = TcpFlags;

/**
 * RFC 9293 §3.10.7.1 (reset generation): the RST answering `seg` when no
 * connection exists for it — <SEQ=SEG.ACK><CTL=RST> if it carried an ACK,
 * else <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>. Undefined for a RST (never
 * answer a reset). Ports are swapped; the caller wraps it in IP.
 */
export function rstForUnknown(seg: TcpRepr): TcpRepr | undefined {
  if (seg.flags & RST) return undefined;
  if (seg.flags & ACK) {
    return new TcpRepr({ srcPort: seg.dstPort, dstPort: seg.srcPort, seq: seg.ack, ack: 0, flags: RST, window: 0, urgent: 0, payload: EMPTY });
  }
  return new TcpRepr({
    srcPort: seg.dstPort,
    dstPort: seg.srcPort,
    seq: 0,
    ack: seqAdd(seg.seq, seg.seqLen()),
    flags: RST | ACK,
    window: 0,
    urgent: 0,
    payload: EMPTY,
  });
}

export class TcpConnection {
  private readonly t: Tcb;

  private constructor(
    readonly localPort: number,
    readonly remotePort: number,
    cfg: TcpConnectionConfig,
    private readonly app: TcpAppEvents,
    now: number,
    state: TcpState,
  ) {
    this.t = new Tcb(localPort, remotePort, cfg, now, state);
  }

  get state(): TcpState {
    return this.t.state;
  }
  get stats(): TcpConnectionStats {
    return this.t.stats;
  }
  /** Loss-recovery counters beyond the stats (diagnostics, tests). */
  get lossStats(): Tcb['lossStats'] {
    return this.t.lossStats;
  }
  /** One past the highest sequence number sent so far (SND.MAX). */
  get sentUpTo(): number {
    return this.t.sndMax;
  }

  // ======================================================================
  // Opening
  // ======================================================================

  /**
   * Passive open from the guest's SYN. Records the SYN's options and waits in
   * LISTEN: nothing is sent until accept() (tsnet first connects the host
   * socket). Retransmitted SYNs meanwhile are absorbed.
   */
  static fromSyn(now: number, syn: TcpRepr, cfg: TcpConnectionConfig, app: TcpAppEvents): TcpConnection {
    const c = new TcpConnection(syn.dstPort, syn.srcPort, cfg, app, now, TcpState.Listen);
    initPassive(c.t, syn);
    return c;
  }

  /** Active open toward the guest (port forwarding): SYN-SENT, the SYN goes out on the next dispatch(). */
  static connect(now: number, localPort: number, remotePort: number, cfg: TcpConnectionConfig, app: TcpAppEvents): TcpConnection {
    const c = new TcpConnection(localPort, remotePort, cfg, app, now, TcpState.Closed);
    c.t.move('connect', now);
    return c;
  }

  /** Host connect succeeded: answer the held SYN with SYN-ACK (SYN-RECEIVED) on the next dispatch(). */
  accept(now: number): void {
    if (this.t.state === TcpState.Listen) this.t.move('accept', now);
  }

  /** Host refused: RST|ACK to the SYN (ack = SYN.seq + 1), then CLOSED. */
  refuse(now: number): void {
    if (this.t.state === TcpState.Listen) this.t.reset(now, undefined, true);
  }

  // ======================================================================
  // App interface
  // ======================================================================

  /** Queues app data; returns the bytes accepted (≤ sendSpace()). */
  send(data: Buffer): number {
    return send(this.t, data);
  }

  /**
   * The send buffer's room, lent for the app to read into in place (no
   * copy): at most `max` bytes, undefined when send() would take nothing.
   * Follow with commitSendRoom() or unlendSendRoom(); no send() meanwhile.
   */
  lendSendRoom(max: number): Buffer | undefined {
    return lendSendRoom(this.t, max);
  }

  /** n bytes were read into the lent room: queued as send() would; returns how many were taken. */
  commitSendRoom(n: number): number {
    return commitSendRoom(this.t, n);
  }

  /** Nothing will be read into the lent room (the app's source ended). */
  unlendSendRoom(): void {
    this.t.sendBuf.unlend();
  }

  /**
   * Bytes send() would take now. Asking and finding none registers
   * interest: onSendSpace follows once there is room. (Events are delivered
   * after the engine returns, so room announced by one may be gone by the
   * time the app looks — other flows share the memory budget; the app then
   * simply asks again and waits for the next onSendSpace.)
   */
  sendSpace(): number {
    const t = this.t;
    const n = sendSpace(t);
    if (n === 0 && !t.finQueued && !t.closeDeferred && !t.closedNotified) t.sendBlocked = true;
    return n;
  }

  /** The app has passed n bytes of onData on: reopen the window. */
  consumed(n: number): void {
    consumed(this.t, n, false);
  }

  /**
   * Memory pressure eased elsewhere: an app held back by the budget may
   * send again (onSendSpace at the next delivery), and a window the budget
   * kept small may open (an ACK announces it).
   */
  wake(): void {
    const t = this.t;
    if (t.closedNotified) return;
    if (t.sendBlocked && t.sendBuf.space > 0) {
      t.sendBlocked = false;
      if (!t.finQueued) t.events.sendSpace();
    }
    consumed(t, 0, true);
  }

  /** Gives every buffered block back to the budget (the flow is gone without a final dispatch). */
  releaseBuffers(): void {
    this.t.sendBuf.dispose();
  }

  /** The app finished sending: FIN after the queued data. */
  close(now: number): void {
    const t = this.t;
    const s = t.state;
    if (t.finQueued || t.closeDeferred) return;
    if (s === TcpState.Listen || s === TcpState.SynSent || s === TcpState.SynReceived) {
      // RFC 9293 §3.10.4 (CLOSE in SYN-RECEIVED): queued until ESTABLISHED.
      // We defer in SYN-SENT too, so data queued by a port-forward client
      // that closes early still reaches the guest.
      t.closeDeferred = true;
      return;
    }
    if (s === TcpState.Established || s === TcpState.CloseWait) startClose(t, now);
  }

  /** Reset the connection: RST (if the guest is owed one), CLOSED; onClosed, no onReset. */
  abort(now: number): void {
    if (this.t.isClosed()) return;
    this.t.reset(now, undefined, true);
    this.t.events.silence();
  }

  /** Hands the queued events to the application (events.ts); call after process() and dispatch(). */
  deliverEvents(): void {
    this.t.events.deliver(this.app);
  }

  // ======================================================================
  // Output
  // ======================================================================

  /** Earliest time dispatch() has something to do (0 = now, Infinity = nothing). */
  pollAt(): number {
    return pollAt(this.t);
  }

  /** Emits everything due at `now`: control segments, what timers call for, then output. */
  dispatch(now: number, emit: TcpEmit): void {
    const t = this.t;
    if (t.closedNotified) return;
    t.emitFn = emit;
    t.emitNow = now;
    try {
      t.flushCtl();
      if (!t.isClosed() && t.state !== TcpState.Listen) {
        runTimers(t, now);
        if (!t.isClosed()) {
          output(t, now);
          updateTlp(t, now);
        }
        // A reset a timer or a probe decided on goes out in this dispatch.
        t.flushCtl();
      }
      if (t.isClosed()) {
        t.closedNotified = true;
        t.sendBuf.dispose();
        t.quiesce();
        t.events.closed();
      }
    } finally {
      t.emitFn = undefined;
    }
  }

  // ======================================================================
  // Segment arrival (RFC 9293 §3.10.7)
  // ======================================================================

  /** A segment from the guest. seg.payload is only valid until deliverEvents() returns. */
  process(now: number, seg: TcpRepr): void {
    const t = this.t;
    const s = t.state;
    if (s === TcpState.Closed) return;
    t.stats.segmentsIn++;
    t.lastRecvAt = now;
    t.keepaliveProbes = 0;
    if (s === TcpState.Listen) processListen(t, now, seg);
    else if (s === TcpState.SynSent) processSynSent(t, now, seg);
    else this.synchronized(now, seg);
    if (!t.isClosed() && t.state !== TcpState.Listen) {
      updatePersist(t, now);
      updateTlp(t, now);
    }
  }

  /** RFC 9293 §3.10.7.4: SYN-RECEIVED and every synchronized state, step by step. */
  private synchronized(now: number, seg: TcpRepr): void {
    const t = this.t;
    const f = seg.flags;
    const seq = seg.seq | 0;

    // SYN-RECEIVED: the guest retransmitted its SYN, so our SYN-ACK was lost —
    // resend it at once rather than wait for our timer.
    if (t.state === TcpState.SynReceived && f & SYN && !(f & ACK) && seq === t.irs) {
      t.sndNxt = t.iss;
      return;
    }

    // First: sequence number check.
    if (!acceptable(t, now, seg)) return;

    // Second: RST (RFC 5961 §3.2). Exactly at RCV.NXT the reset is genuine;
    // in the window but not exact it could be blind injection: a challenge
    // ACK, which a genuine sender answers with an exact RST.
    if (f & RST) {
      if (seq === t.rcvNxt) t.reset(now, t.state === TcpState.TimeWait ? undefined : 'peer-reset', false);
      else challengeAck(t, now);
      return;
    }

    // Third: security/compartment — not applicable.

    // Fourth: SYN (RFC 5961 §4). In a synchronized state, in window or not
    // (out-of-window ones were answered above), a challenge ACK; dropped.
    if (f & SYN) {
      challengeAck(t, now);
      return;
    }

    // Fifth: ACK. "If the ACK bit is off, drop the segment."
    if (!(f & ACK)) return;
    updateTsRecent(t, seg);
    if (t.state === TcpState.SynReceived && !processAckOfSyn(t, now, seg)) return;
    if (!processAck(t, now, seg)) return;
    // The ACK of our FIN ends LAST-ACK: nothing further in this segment matters.
    if (t.isClosed()) return;
    if (t.state === TcpState.FinWait2 && t.timers.close !== Infinity) {
      // FIN-WAIT-2 times out on silence, not on age: a half-closed guest that
      // is still sending keeps the connection.
      t.timers.close = now + t.finWait2TimeoutMs;
    }

    // Sixth: URG — ignored (RFC 6093: urgent data is deprecated).

    // Seventh and eighth: segment text and FIN.
    processText(t, now, seg);
  }
}
