// src/stack/tcp/timers.ts — when a connection next has work (pollAt) and
// what happens when a deadline passes (runTimers).
//
// Read this first: the deadlines are plain numbers in Tcb.timers (absolute
// ms on the owner's clock, Infinity = off); nothing here reads a clock or
// sets a real timer. The owner asks pollAt() and calls dispatch() at that
// time; dispatch() runs runTimers() before output, so a passed deadline turns
// into segments in the same call. Deadlines:
// - close: TIME-WAIT's 2*MSL (→ CLOSED) or FIN-WAIT-2's silence (→ reset);
// - reo: RACK's reordering window (RFC 8985 §6.3) → loss detection;
// - rto (RFC 6298): the SYN again, or go-back to every unSACKed segment;
// - tlp (RFC 8985 §7.2): a loss probe is due (sender.ts sends it);
// - persist: a zero-window probe is due (sender.ts);
// - delAck: a delayed ACK is due;
// - keep-alive (RFC 1122 §4.2.3.6), computed from the last segment received.

import { LOSS_WINDOW_SEGMENTS } from './congestion.js';
import { synDue } from './handshake.js';
import { rackDetect } from './recovery.js';
import { emitSegment } from './receiver.js';
import { nextSendLen, persistNeeded, retransmitReady } from './sender.js';
import { seqAdd, seqDiff } from './seq.js';
import { TcpFlags } from '../../wire/tcp.js';
import { TcpState } from './state.js';
import { EMPTY, type Tcb } from './tcb.js';

/** Linux tcp_keepalive_intvl (75 s) and tcp_keepalive_probes (9). */
const KEEPALIVE_INTERVAL_MS = 75_000;
const KEEPALIVE_PROBES = 9;

/** Earliest time dispatch() has something to do (0 = now, Infinity = nothing). */
export function pollAt(t: Tcb): number {
  if (t.closedNotified) return Infinity;
  if (t.ctlQueue.length > 0 || t.isClosed()) return 0;
  if (t.state === TcpState.Listen) return Infinity;
  if (t.ackNow || t.tlpDue || retransmitReady(t) || synDue(t)) return 0;
  if (nextSendLen(t) >= 0) return 0;
  // A zero window blocks pending data and the persist timer is not armed
  // yet (send() has no clock): dispatch() arms it.
  if (t.timers.persist === Infinity && persistNeeded(t)) return 0;
  return Math.min(t.timers.earliest(), keepaliveAt(t));
}

function keepaliveAt(t: Tcb): number {
  const s = t.state;
  if (s !== TcpState.Established && s !== TcpState.CloseWait) return Infinity;
  // Only an idle connection is probed: outstanding or unsent data is watched by
  // the retransmission and persist timers instead.
  if (t.sndMax !== t.sndUna || t.sendBuf.length > 0) return Infinity;
  return t.lastRecvAt + t.keepaliveIdleMs + t.keepaliveProbes * KEEPALIVE_INTERVAL_MS;
}

/** Acts on every deadline that passed by `now`. */
export function runTimers(t: Tcb, now: number): void {
  const timers = t.timers;
  if (timers.close <= now) {
    timers.close = Infinity;
    if (t.state === TcpState.TimeWait) {
      // RFC 9293 §3.10.8: TIME-WAIT timeout → CLOSED.
      t.move('timeout', now);
      return;
    }
    if (t.state === TcpState.FinWait2) {
      // The peer stayed silent for finWait2TimeoutMs after acknowledging
      // our FIN: give up and tell it so.
      t.reset(now, 'timeout', true);
      return;
    }
  }
  if (timers.reo <= now) {
    timers.reo = Infinity;
    if (t.sackOk) rackDetect(t, now);
  }
  if (timers.rto <= now) {
    timers.rto = Infinity;
    timers.tlp = Infinity;
    onRetransmitTimeout(t, now);
    if (t.isClosed()) return;
  } else if (timers.tlp <= now) {
    // RFC 8985 §7.3: the PTO expired; output() sends the probe.
    timers.tlp = Infinity;
    t.tlpDue = true;
  }
  if (keepaliveAt(t) <= now) {
    if (t.keepaliveProbes >= KEEPALIVE_PROBES) {
      // RFC 1122 §4.2.3.6 / Linux: the peer answered none of the probes.
      t.reset(now, 'timeout', true);
      return;
    }
    t.keepaliveProbes++;
    // RFC 1122 §4.2.3.6: a keep-alive is an ACK with SEG.SEQ = SND.NXT-1,
    // which the peer must answer with an ACK.
    emitSegment(t, now, TcpFlags.ACK, seqAdd(t.sndUna, -1), EMPTY);
  }
  if (timers.delAck <= now) {
    timers.delAck = Infinity;
    t.ackNow = true;
  }
}

function onRetransmitTimeout(t: Tcb, now: number): void {
  t.stats.rtoFired++;
  if (t.state === TcpState.SynSent || t.state === TcpState.SynReceived) {
    // RFC 6298 §5.5-5.6 for the SYN / SYN-ACK: back off and resend.
    if (++t.synRetries > t.maxSynAckRetries) {
      t.reset(now, 'timeout', true);
      return;
    }
    t.rtt.backoff();
    t.rttTiming = false;
    t.sndNxt = t.iss;
    return;
  }
  if (t.sndMax === t.sndUna) return;
  if (++t.retries > t.maxRetries) {
    t.reset(now, 'timeout', true);
    return;
  }
  // RFC 5681 §3.1: ssthresh, and cwnd = LW (congestion.ts explains why
  // LW is 2 segments when two or more are outstanding).
  const lw = t.sb.outBytes > t.cc.mss ? LOSS_WINDOW_SEGMENTS : 1;
  t.cc.onRto(seqDiff(t.sndMax, t.sndUna), t.sndMax, lw);
  // RFC 6298 §5.5: back off the timer.
  t.rtt.backoff();
  // RFC 6298 §3 (Karn): no RTT sample from what we are about to resend.
  t.rttTiming = false;
  // RFC 6675 §5.1 / RFC 8985 §6.3: everything not SACKed is lost. SACK
  // information is kept (RFC 6675 §5.1 recommends using it: reneging is
  // rare, and is detected in recovery.ts if it happens).
  t.sb.markAllLost();
  t.rtoRecovery = true;
  t.dupAcks = 0;
  // RFC 6298 §5.4: retransmit the earliest unacknowledged segment; the
  // rest follows in sequence order as cwnd allows (RFC 5681 §3.1 note).
  t.forcedRtx = 1;
  t.tlpDue = false;
  t.tlpEndSeq = undefined;
  t.timers.reo = Infinity;
  // RFC 6298 §5.6: the timer restarts when the retransmission goes out.
}
