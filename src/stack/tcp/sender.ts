// src/stack/tcp/sender.ts — the sending half: data the app hands over, what
// may go out now (new data, retransmissions, loss probes, zero-window
// probes) and our FIN.
//
// Read this first:
// - output() runs once per dispatch. In order: a due tail loss probe,
//   retransmissions of segments recovery.ts marked lost (while RFC 6675's
//   pipe < cwnd, or forced), a zero-window probe when the persist timer is
//   due, then new data — and a bare ACK if one is still owed after all that.
// - New data: nextSendLen() alone decides whether a segment may go and how
//   long it is (peer window, cwnd against pipe, segments-in-flight cap,
//   sender SWS avoidance); pollAt() asks the same function, so the two
//   always agree.
// - Every segment sent is a record in the Scoreboard (scoreboard.ts) with
//   its transmit time; SND.NXT never rewinds except to resend a SYN.

import { TcpFlags } from '../../wire/tcp.js';
import { MAX_RTO_MS } from './rtt.js';
import type { SegRecord } from './scoreboard.js';
import { seqAdd, seqDiff, seqGt } from './seq.js';
import { TcpState, canSendData } from './state.js';
import { EMPTY, type Tcb } from './tcb.js';
import { sendSyn, synDue } from './handshake.js';
import { dataOptionsLen, emitSegment } from './receiver.js';

const { FIN, PSH, ACK } = TcpFlags;

/** States in which the app may still queue data (its close() not yet taken). */
function mayQueue(t: Tcb): boolean {
  const s = t.state;
  return (
    s === TcpState.Listen ||
    s === TcpState.SynSent ||
    s === TcpState.SynReceived ||
    s === TcpState.Established ||
    s === TcpState.CloseWait
  );
}

/** Bytes send() would take now. */
export function sendSpace(t: Tcb): number {
  if (t.finQueued || t.closeDeferred || !mayQueue(t)) return 0;
  return t.sendBuf.space;
}

/** Queues app data; returns the bytes accepted (≤ sendSpace()). */
export function send(t: Tcb, data: Buffer): number {
  if (t.finQueued || t.closeDeferred || !mayQueue(t)) return 0;
  const n = t.sendBuf.push(data);
  // Full (or held back by the memory budget): onSendSpace once there is room.
  if (n < data.length || t.sendBuf.space === 0) t.sendBlocked = true;
  return n;
}

/** Lends the send buffer's room for the app to read into in place (SendBuffer.lend); undefined when send() would take nothing. */
export function lendSendRoom(t: Tcb, max: number): Buffer | undefined {
  if (t.finQueued || t.closeDeferred || !mayQueue(t)) return undefined;
  return t.sendBuf.lend(max);
}

/**
 * The app read n bytes into the lent room: queued as send() would queue
 * them. Returns the bytes taken: none when the connection can no longer
 * queue data (the app keeps them, as after a short send()).
 */
export function commitSendRoom(t: Tcb, n: number): number {
  if (t.finQueued || t.closeDeferred || !mayQueue(t)) {
    t.sendBuf.unlend();
    t.sendBlocked = true;
    return 0;
  }
  t.sendBuf.commit(n);
  if (t.sendBuf.space === 0) t.sendBlocked = true;
  return n;
}

/** The app finished sending: our FIN follows the queued data. */
export function startClose(t: Tcb, now: number): void {
  t.finQueued = true;
  t.finSeq = seqAdd(t.sndUna, t.sendBuf.length);
  t.move('close', now);
}

/** Everything the sender may emit at `now` (see the header). */
export function output(t: Tcb, now: number): void {
  // SYN (SYN-SENT) or SYN-ACK (SYN-RECEIVED), first time or after an RTO.
  if (synDue(t)) {
    sendSyn(t, now);
    return;
  }
  if (canSendData(t.state)) {
    if (t.tlpDue) sendLossProbe(t, now);
    sendRetransmissions(t, now);
    sendZeroWindowProbe(t, now);
    sendNewData(t, now);
    updatePersist(t, now);
  }
  // RFC 9293 §3.10.7.4: <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>.
  if (t.ackNow) emitSegment(t, now, ACK, t.acceptableSeq(), EMPTY);
}

/**
 * Length of the next new-data segment from SND.NXT if it may go out now:
 * ≥ 1 for data, 0 for a bare FIN, −1 when nothing may be sent.
 * `ignoreCwnd`: a loss probe (RFC 8985 §7.3 sends new data if the peer's
 * window allows, whatever cwnd says).
 */
export function nextSendLen(t: Tcb, ignoreCwnd = false): number {
  if (!canSendData(t.state)) return -1;
  const off = seqDiff(t.sndNxt, t.sndUna);
  const avail = t.sendBuf.length - off;
  if (avail <= 0) {
    // Everything queued is out: only a FIN may remain. RFC 9293 §3.10.4: it
    // goes once all preceding data has been sent (it needs no window).
    return t.finQueued && t.sndNxt === t.finSeq ? 0 : -1;
  }
  if (t.sb.count >= t.maxSegmentsInFlight) return -1;
  const optLen = dataOptionsLen(t);
  // With segmentation offload a segment may hold many MSS (the link cuts it).
  const maxSeg = t.segPayload(optLen);
  const mssSeg = t.mssPayload(optLen);
  // Respect both the peer's window (RFC 9293 §3.8.6: sequence space beyond
  // SND.UNA) and cwnd (RFC 5681 §3.1), the latter against RFC 6675's pipe:
  // SACKed and lost segments are not in the network.
  const wndLimit = t.sndWnd - off;
  const cwndLimit = ignoreCwnd ? Infinity : t.cc.cwnd - t.sb.pipe;
  const usable = Math.min(wndLimit, cwndLimit);
  const len = Math.min(avail, maxSeg, usable);
  if (len <= 0) return -1;
  // RFC 9293 §3.8.6.2.1 (sender SWS avoidance): send a short segment only
  // if it carries all queued data, or at least half the peer's largest
  // window, or nothing is in flight (no ACK would come to open the window).
  // Data-limited short segments go out at once (like TCP_NODELAY: dispatch
  // runs once per I/O batch, which already coalesces small writes).
  if (len < mssSeg && len < avail && off > 0 && len < t.maxSndWnd * 0.5) return -1;
  return len;
}

function sendNewData(t: Tcb, now: number): void {
  for (;;) {
    const len = nextSendLen(t);
    if (len < 0) return;
    if (sendNewSegment(t, now, len) || len === 0) return;
  }
}

/** Sends `n` new bytes from SND.NXT (with the FIN if they end at it); returns whether the FIN went. */
function sendNewSegment(t: Tcb, now: number, n: number): boolean {
  const seq = t.sndNxt;
  const idle = t.sndMax === t.sndUna && now - t.lastDataSentAt > t.rtt.rto();
  if (idle && n > 0 && t.lastDataSentAt !== -Infinity) t.cc.onIdleRestart();
  const fin = t.finQueued && seqAdd(seq, n) === t.finSeq;
  emitData(t, now, seq, n, fin);
  t.stats.bytesOut += n;
  // RFC 6298 §3 (Karn) / classic RTT timing: time one fresh segment per
  // round trip when timestamps are not available.
  if (!t.rttTiming && !t.tsOk && n > 0) {
    t.rttTiming = true;
    t.rttSeq = seq;
    t.rttTime = now;
  }
  t.sndNxt = seqAdd(seq, n + (fin ? 1 : 0));
  if (seqGt(t.sndNxt, t.sndMax)) t.sndMax = t.sndNxt;
  t.sb.add(seq, t.sndNxt, fin, now);
  // RFC 6298 §5.1: start the timer when data goes out and it is not running.
  if (t.timers.rto === Infinity) t.timers.rto = now + t.rtt.rto();
  // RFC 8985 §7.2: (re)arm the PTO after sending new data.
  t.tlpRearm = true;
  return fin;
}

/** A lost segment may be retransmitted now (same test as sendRetransmissions()). */
export function retransmitReady(t: Tcb): boolean {
  if (!canSendData(t.state)) return false;
  const r = t.sb.nextLost();
  return r !== undefined && (t.forcedRtx > 0 || t.cc.cwnd - t.sb.pipe >= Math.min(seqDiff(r.end, r.start), t.cc.mss));
}

/**
 * RFC 6675 §5 step (C) with NextSeg() rule 1: while cwnd − pipe ≥ 1 SMSS
 * (or a retransmission is owed regardless, see forcedRtx), resend the
 * lowest lost segment not yet resent. Each ACK in recovery can thus
 * release as many segments as it took out of the pipe — retransmissions
 * first, then new data (rule 2) in sendNewData().
 */
function sendRetransmissions(t: Tcb, now: number): void {
  // cwnd and pipe count bytes: after an RTO a flight of tiny segments (an
  // app that wrote byte by byte) would all fit in one MSS of cwnd and go
  // out at once, more frames than the TAP queue holds. So at most
  // maxSegmentsInFlight retransmissions per pass; ACKs release the rest.
  let frames = 0;
  for (let r = t.sb.nextLost(); r !== undefined; r = t.sb.nextLost()) {
    if (frames >= t.maxSegmentsInFlight) return;
    if (t.forcedRtx > 0) t.forcedRtx--;
    else if (t.cc.cwnd - t.sb.pipe < Math.min(seqDiff(r.end, r.start), t.cc.mss)) return;
    retransmitRecord(t, now, r);
    frames++;
  }
  t.forcedRtx = 0;
}

/** Sends record `r` again (cut to what fits with today's options; the rest stays lost). */
function retransmitRecord(t: Tcb, now: number, r: SegRecord): void {
  const maxSeg = t.segPayload(dataOptionsLen(t));
  let len = seqDiff(r.end, r.start) - (r.fin ? 1 : 0);
  if (len > maxSeg) {
    t.sb.split(r, maxSeg);
    len = maxSeg;
  }
  emitData(t, now, r.start, len, r.fin);
  noteRetransmit(t, now);
  t.sb.retransmitted(r, now);
  if (t.timers.rto === Infinity) t.timers.rto = now + t.rtt.rto();
}

/**
 * RFC 8985 §7.3: the PTO expired. Send one new segment if the peer's
 * window allows (ignoring cwnd), else resend the highest segment sent, so
 * that whatever ACK it draws shows RACK what is missing.
 */
function sendLossProbe(t: Tcb, now: number): void {
  t.tlpDue = false;
  if (t.tlpEndSeq === undefined && t.sndMax !== t.sndUna) {
    const len = nextSendLen(t, true);
    if (len >= 0) {
      sendNewSegment(t, now, len);
      t.tlpIsRetrans = false;
      t.tlpEndSeq = t.sndMax;
      t.lossStats.tlpProbes++;
    } else {
      const r = t.sb.last();
      if (r !== undefined && !r.sacked && !r.lost) {
        retransmitRecord(t, now, r);
        t.tlpIsRetrans = true;
        t.tlpEndSeq = t.sndMax;
        t.lossStats.tlpProbes++;
      }
    }
  }
  // RFC 8985 §7.3: after a probe (sent or not) re-arm the RTO, not the PTO.
  t.tlpRearm = false;
  if (t.sndMax !== t.sndUna) t.timers.rto = now + t.rtt.rto();
}

/** RFC 9293 §3.8.6.1: the persist timer is armed while the peer's zero window blocks pending data. */
export function updatePersist(t: Tcb, now: number): void {
  if (!persistNeeded(t)) {
    t.timers.persist = Infinity;
    t.persistBackoff = 0;
    return;
  }
  if (t.timers.persist === Infinity) t.timers.persist = now + persistInterval(t);
}

export function persistNeeded(t: Tcb): boolean {
  return (
    canSendData(t.state) &&
    t.sndNxt === t.sndUna &&
    t.sendBuf.length > 0 &&
    t.sndWnd === 0 &&
    t.timers.rto === Infinity
  );
}

function persistInterval(t: Tcb): number {
  return Math.min(MAX_RTO_MS, t.rtt.rto() * 2 ** t.persistBackoff);
}

/** RFC 9293 §3.8.6.1: probe a zero window with one byte of new data, backing off exponentially. */
function sendZeroWindowProbe(t: Tcb, now: number): void {
  if (t.timers.persist > now) return;
  if (t.sndWnd !== 0 || t.sndNxt !== t.sndUna || t.sendBuf.length === 0) {
    t.timers.persist = Infinity;
    t.persistBackoff = 0;
    return;
  }
  if (++t.probesOut > t.maxRetries) {
    t.reset(now, 'timeout', true);
    return;
  }
  emitData(t, now, t.sndNxt, 1, false);
  // ACKs up to the probe byte are valid from now on, but SND.NXT (and
  // sndMax) stay: the byte goes again with the data that follows once the
  // window opens.
  t.probeEnd = seqAdd(t.sndNxt, 1);
  noteRetransmit(t, now);
  t.persistBackoff++;
  t.timers.persist = now + persistInterval(t);
}

/** Something was sent again: count it, and stop RTT timing (Karn). */
export function noteRetransmit(t: Tcb, now: number): void {
  t.stats.retransmits++;
  t.rttTiming = false;
  t.lastRtxTs = t.tsNow(now);
}

function emitData(t: Tcb, now: number, seq: number, len: number, fin: boolean): void {
  const off = seqDiff(seq, t.sndUna);
  const payload = len > 0 ? t.sendBuf.slice(off, len) : EMPTY;
  let flags = ACK;
  if (fin) flags |= FIN;
  // RFC 9293 §3.9.1 (SEND): PSH marks the end of what the app handed over.
  if (len > 0 && off + len === t.sendBuf.length) flags |= PSH;
  if (len > 0) t.lastDataSentAt = now;
  emitSegment(t, now, flags, seq, payload);
}
