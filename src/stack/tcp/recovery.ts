// src/stack/tcp/recovery.ts — the peer's ACKs: what they acknowledge, the
// window they offer, RTT samples, congestion control and loss detection.
//
// Read this first: every segment sent is a record in the Scoreboard
// (scoreboard.ts) with its transmit time and sacked / lost / retransmitted
// flags; sender.ts retransmits records marked lost. Losses are marked by
// - RACK (RFC 8985 §6, rack.ts) when the peer does SACK: by time, from SACKs
//   and cumulative ACKs, including lost retransmissions;
// - NewReno (RFC 5681/6582) duplicate ACKs and partial ACKs without SACK;
// - the RTO (RFC 6298, timers.ts): everything not SACKed.
// A Tail Loss Probe (RFC 8985 §7) replaces most RTOs for SACK peers: when
// ACKs stop, new data or the last segment goes out after ~2 RTTs so the
// peer's SACKs let RACK find the losses (armed by updateTlp below).

import { TcpFlags, type TcpRepr } from '../../wire/tcp.js';
import { MAX_RTO_MS } from './rtt.js';
import { seqAdd, seqDiff, seqGe, seqGt, seqLe, seqLt, seqMax } from './seq.js';
import { TcpState, canSendData } from './state.js';
import type { Tcb } from './tcb.js';
import { challengeAck } from './receiver.js';

const { SYN, FIN } = TcpFlags;

/**
 * RFC 8985 §7.2: PTO = 2*SRTT, plus WCDelAckT when only one segment is in
 * flight (the peer may hold its ACK for a lone segment). Linux's delayed-ACK
 * timer starts at 40 ms (TCP_DELACK_MIN) for bulk data; 50 ms leaves a
 * margin, and a probe that turns out spurious costs one duplicate segment.
 */
const TLP_WC_DEL_ACK_MS = 50;
/**
 * Floor of the PTO. On tsnet's local link SRTT is well under 1 ms, so
 * 2*SRTT alone would probe before a guest busy for a moment could answer.
 * Linux adds 2 ms (TCP_TIMEOUT_MIN) for flights above one segment; we floor
 * at MIN_PTO_MS, a few event-loop turns. A probe sent too early costs one
 * segment (new data, which is never wasted, or a duplicate of the last one
 * that the guest answers at once with a D-SACK).
 */
const MIN_PTO_MS = 2;
/** RFC 8985 §7.2: PTO without an RTT sample. */
const TLP_INITIAL_PTO_MS = 1000;

/**
 * RFC 9293 §3.10.7.4 (fifth, ACK) for ESTABLISHED and the closing states.
 * Returns false when the segment must be dropped.
 */
export function processAck(t: Tcb, now: number, seg: TcpRepr): boolean {
  const ack = seg.ack | 0;
  // RFC 9293: "If the ACK acks something not yet sent (SEG.ACK > SND.NXT)
  // then send an ACK, drop the segment, and return."
  if (seqGt(ack, t.sndMax)) {
    if (!(t.sndMax === t.sndUna && ack === t.probeEnd && seqGt(t.probeEnd, t.sndMax))) {
      t.ackNow = true;
      return false;
    }
    // The peer took our zero-window probe byte.
    t.sndMax = ack;
  }
  // RFC 5961 §5.2: acceptable ACKs lie in [SND.UNA - MAX.SND.WND, SND.NXT];
  // older ones are answered with an ACK and the segment is dropped.
  if (seqLt(ack, seqAdd(t.sndUna, -t.maxSndWnd))) {
    challengeAck(t, now);
    return false;
  }
  const acked = seqDiff(ack, t.sndUna);
  const segWnd = seg.window * (1 << t.sndShift);
  t.rack.advanced = false;

  if (acked > 0) {
    newAck(t, now, seg, ack, acked);
  } else if (acked === 0 && seqGt(t.sndMax, t.sndUna) && seg.payload.length === 0 && !(seg.flags & (SYN | FIN))) {
    if (segWnd === t.sndWnd && segWnd !== 0) {
      // RFC 5681 §2 (DUPLICATE ACKNOWLEDGMENT): outstanding data, no data,
      // no SYN/FIN, ACK = SND.UNA, same window. (Answers to zero-window
      // probes repeat the ACK but are no loss signal.)
      t.stats.dupAcks++;
      if (!t.sackOk) dupAck(t, ack);
    }
  }
  if (t.sackOk) sackAck(t, now, seg, ack, acked);

  // RFC 9293 §3.10.7.4: window update if SND.WL1 < SEG.SEQ, or
  // SND.WL1 = SEG.SEQ and SND.WL2 ≤ SEG.ACK — and, as Linux's
  // tcp_may_update_window does, whenever the ACK moves SND.UNA: the window
  // is counted from SND.UNA, so keeping the old SND.WND while SND.UNA
  // advances would invent a right edge the peer never offered (a segment
  // that arrives late, older SEQ, with a newer ACK and a smaller window).
  const seq = seg.seq | 0;
  if (acked > 0 || seqLt(t.sndWl1, seq) || (t.sndWl1 === seq && seqLe(t.sndWl2, ack))) {
    t.sndWnd = segWnd;
    t.sndWl1 = seq;
    t.sndWl2 = ack;
    if (segWnd > t.maxSndWnd) t.maxSndWnd = segWnd;
  }

  // Our FIN acknowledged?
  if (t.finQueued && seqGt(t.sndUna, t.finSeq)) {
    const s = t.state;
    if (s === TcpState.FinWait1 || s === TcpState.Closing || s === TcpState.LastAck) t.move('rcv-ack-of-fin', now);
  }

  if (acked > 0 && t.sendBlocked) {
    const space = t.sendBuf.space;
    if (space >= (space + t.sendBuf.length) * 0.25 || t.sendBuf.length === 0) {
      t.sendBlocked = false;
      if (!t.finQueued) t.events.sendSpace();
    }
  }
  return true;
}

export function rttSample(t: Tcb, now: number, seg: TcpRepr, ack: number): void {
  // RFC 7323 §4.1: with timestamps every ACK of new data yields a sample
  // from TSecr, unambiguous even for retransmissions (Karn's rule is moot).
  if (t.tsOk && seg.tsEcr !== undefined && seg.tsEcr !== 0) {
    // An echo older than our last retransmission is suspect: when the
    // peer's ACK of the original was lost, our retransmission reaches it
    // as a duplicate, which (RFC 7323 §4.3) does not refresh TS.Recent, so
    // its ACK echoes the original's TSval and would measure the whole
    // timeout as RTT. Such samples are skipped (Karn's rule applied to
    // timestamps), as are echoes from the future.
    if (t.lastRtxTs !== undefined && seqLt(seg.tsEcr, t.lastRtxTs)) return;
    const r = seqDiff(t.tsNow(now), seg.tsEcr);
    if (r >= 0 && r < MAX_RTO_MS) {
      t.rtt.sample(r);
      t.rttTiming = false;
      return;
    }
  }
  // RFC 6298 §3 (Karn): the timed segment was never retransmitted
  // (retransmissions cancel timing), so its ACK is an unambiguous sample.
  if (t.rttTiming && seqGt(ack, t.rttSeq)) {
    t.rttTiming = false;
    t.rtt.sample(now - t.rttTime);
  }
}

/** Our TSecr echoed back, as a time on our clock (ms, floored), or undefined. */
function echoMs(t: Tcb, seg: TcpRepr): number | undefined {
  if (!t.tsOk || seg.tsEcr === undefined || seg.tsEcr === 0) return undefined;
  return (seg.tsEcr - t.tsOffset) | 0;
}

function newAck(t: Tcb, now: number, seg: TcpRepr, ack: number, acked: number): void {
  rttSample(t, now, seg, ack);
  // Bytes of data acknowledged: the FIN takes one sequence number but no buffer.
  let dataAcked = acked;
  if (t.finQueued && seqGt(ack, t.finSeq)) dataAcked -= 1;
  t.sendBuf.ack(Math.min(dataAcked, t.sendBuf.length));
  const echo = echoMs(t, seg);
  t.sb.ackTo(ack, (r) => t.rack.onDelivered(r, now, echo));
  t.sndUna = ack;
  if (seqLt(t.sndNxt, ack)) t.sndNxt = ack;
  t.retries = 0;
  t.probesOut = 0;
  t.cc.onProgress();
  // RFC 8985 §7.2: (re)arm the PTO on an ACK of new data.
  t.tlpRearm = true;
  const flight = seqDiff(t.sndMax, t.sndUna);
  let restartTimer = true;
  if (t.rtoRecovery && seqGe(ack, t.cc.recover)) t.rtoRecovery = false;
  if (t.sackOk) {
    // RFC 6675 §5: cwnd does not grow during fast recovery; RTO recovery
    // and normal operation follow RFC 5681 (slow start / CA).
    if (!t.cc.inRecovery) t.cc.onAck(acked);
    t.dupAcks = 0;
  } else if (t.cc.inRecovery) {
    if (t.cc.onAckInRecovery(ack, acked, flight) === 'partial') {
      // RFC 6582 §3.2 step 5: retransmit the first unacknowledged segment.
      const head = t.sb.first();
      if (head !== undefined) {
        t.sb.markLost(head);
        t.forcedRtx = 1;
      }
      // RFC 6582 §3.2 step 5 ("Impatient"): reset the timer for the first partial ACK only.
      restartTimer = t.cc.takeFirstPartial();
    } else {
      t.dupAcks = 0;
      t.forcedRtx = 0;
    }
  } else {
    t.cc.onAck(acked);
    t.dupAcks = 0;
  }
  // RFC 6298 §5.2: all outstanding data acknowledged → stop the timer;
  // §5.3: new data acknowledged → restart it.
  if (t.sndUna === t.sndMax) {
    t.timers.rto = Infinity;
    t.timers.tlp = Infinity;
    t.timers.reo = Infinity;
  } else if (restartTimer || t.timers.rto === Infinity) t.timers.rto = now + t.rtt.rto();
}

/** RFC 5681 §3.2 / RFC 6582 (peers without SACK): a duplicate ACK. */
function dupAck(t: Tcb, ack: number): void {
  t.dupAcks++;
  if (t.cc.inRecovery) {
    // RFC 5681 §3.2 step 4: inflate cwnd by one segment per duplicate.
    t.cc.onDupAckInRecovery();
    return;
  }
  // RFC 5681 §3.2 step 2: the third duplicate ACK triggers fast retransmit.
  if (t.dupAcks === 3 && t.cc.onThirdDupAck(ack, seqDiff(t.sndMax, t.sndUna), t.sndMax)) {
    t.stats.fastRetransmits++;
    const head = t.sb.first();
    if (head !== undefined) t.sb.markLost(head);
    t.forcedRtx = 1;
    t.rttTiming = false;
  }
}

/**
 * Loss detection for SACK peers, after the cumulative ACK was taken:
 * SACK blocks into the scoreboard (RFC 2018, D-SACK per RFC 2883), end of
 * recovery, RACK's reordering window and loss marking (RFC 8985 §6.2),
 * the TLP episode (§7.4), and the start of fast recovery (RFC 6675 §5).
 */
function sackAck(t: Tcb, now: number, seg: TcpRepr, ack: number, acked: number): void {
  let dsack = false;
  const blocks = seg.sackBlocks;
  if (blocks !== undefined && blocks.length > 0) {
    const echo = echoMs(t, seg);
    for (let i = 0; i < blocks.length; i++) {
      const l = blocks[i][0] | 0;
      const r = blocks[i][1] | 0;
      if (!seqLt(l, r)) continue;
      // RFC 2883 §4: the first block reports a duplicate when it lies below
      // the cumulative ACK or inside the second block.
      if (i === 0 && (seqLe(r, ack) || (blocks.length > 1 && seqGe(l, blocks[1][0] | 0) && seqLe(r, blocks[1][1] | 0)))) {
        dsack = true;
        t.lossStats.dsacks++;
        continue;
      }
      // Ignore nonsense and anything beyond what we sent.
      if (seqLe(r, t.sndUna) || seqGt(r, t.sndMax)) continue;
      t.sb.sack(seqMax(l, t.sndUna), r, (rec) => t.rack.onDelivered(rec, now, echo));
    }
  }
  // RFC 2018 §8: the peer may drop data it SACKed; a cumulative ACK that
  // stops exactly at a SACKed segment says it did. Resend all of it.
  const head = t.sb.first();
  if (head !== undefined && head.sacked && head.start === t.sndUna) t.sb.renege();

  let exited = false;
  if (t.cc.inRecovery && seqGe(t.sndUna, t.cc.recover)) {
    // RFC 6675 §5: a cumulative ACK covering RecoveryPoint ends recovery.
    t.cc.exitRecovery();
    exited = true;
  }
  if (t.rtoRecovery && seqGe(t.sndUna, t.cc.recover)) {
    t.rtoRecovery = false;
    exited = true;
  }
  t.rack.updateReoWnd(dsack, t.sndUna, t.sndMax, exited);
  tlpAck(t, ack, acked, dsack, seg);
  rackDetect(t, now);
}

/** RFC 8985 §6.2 step 5, and the start of recovery when it finds losses. */
export function rackDetect(t: Tcb, now: number): void {
  const recovering = t.cc.inRecovery || t.rtoRecovery;
  const reoWnd = t.rack.reoWnd(recovering, t.sb.sackedSegs, t.rtt.srtt);
  let marked = 0;
  const wait = t.rack.detectLoss(t.sb, now, reoWnd, () => marked++);
  // RFC 8985 §6.3: the reordering timer fires when the oldest undecided
  // segment's window passes.
  t.timers.reo = wait > 0 ? now + wait : Infinity;
  if (marked === 0) return;
  t.lossStats.rackLost += marked;
  if (!recovering && t.cc.enterRecovery(seqDiff(t.sndMax, t.sndUna), t.sndMax)) {
    // RFC 6675 §5 step 4.3: the first loss goes out at once.
    t.stats.fastRetransmits++;
    t.forcedRtx = 1;
    t.rttTiming = false;
    t.timers.tlp = Infinity;
  }
}

/**
 * RFC 8985 §7.4 (TLP_process_ack): once the probe is acknowledged, decide
 * whether it repaired a loss (then reduce cwnd once) or both the original
 * and the probe arrived (D-SACK, or a pure duplicate ACK: no loss).
 */
function tlpAck(t: Tcb, ack: number, acked: number, dsack: boolean, seg: TcpRepr): void {
  const end = t.tlpEndSeq;
  if (end === undefined || seqLt(ack, end)) return;
  if (!t.tlpIsRetrans || dsack) {
    t.tlpEndSeq = undefined;
  } else if (seqGt(ack, end)) {
    // The ACK moved past the probe without a D-SACK: the probe filled a hole.
    t.tlpEndSeq = undefined;
    t.lossStats.tlpRepairs++;
    t.cc.onProbeRepairedLoss();
  } else if (acked === 0 && seg.payload.length === 0 && (seg.sackBlocks === undefined || seg.sackBlocks.length === 0)) {
    t.tlpEndSeq = undefined;
  }
}

/**
 * RFC 8985 §7.2: arm the PTO after new data went out or new data was
 * acknowledged — for SACK peers, outside recovery, with nothing SACKed
 * (RACK's reordering timer covers that case) and no probe outstanding.
 */
export function updateTlp(t: Tcb, now: number): void {
  if (
    !t.sackOk ||
    t.cc.inRecovery ||
    t.rtoRecovery ||
    t.sndMax === t.sndUna ||
    t.sb.sackedBytes > 0 ||
    t.tlpEndSeq !== undefined ||
    !canSendData(t.state)
  ) {
    t.timers.tlp = Infinity;
    t.tlpRearm = false;
    return;
  }
  if (!t.tlpRearm) return;
  t.tlpRearm = false;
  let pto: number;
  const srtt = t.rack.hasSrtt ? t.rack.srtt : t.rtt.hasSample ? t.rtt.srtt : undefined;
  if (srtt === undefined) pto = TLP_INITIAL_PTO_MS;
  else {
    pto = 2 * srtt;
    // FlightSize of one segment: the guest may be delaying its ACK.
    if (t.sb.first() === t.sb.last()) pto += TLP_WC_DEL_ACK_MS;
    pto = Math.max(pto, MIN_PTO_MS);
  }
  // RFC 8985 §7.2: never later than the RTO.
  t.timers.tlp = Math.min(now + pto, t.timers.rto);
}
