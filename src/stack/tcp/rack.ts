// src/stack/tcp/rack.ts — RACK loss detection (RFC 8985 §6).
//
// Read this first: RACK declares a segment lost when a segment sent
// *after* it has been delivered (cumulatively ACKed or SACKed) and more than
// one RTT plus a reordering window has passed since it was sent — time, not
// duplicate-ACK counting, so it also catches lost retransmissions and losses
// in short flights. The connection feeds it every segment newly delivered by
// an ACK (onDelivered), then asks for the reordering window (updateReoWnd)
// and runs detectLoss over the scoreboard's time-ordered list. detectLoss
// returns the delay after which the oldest undecided segment can be judged
// (the RACK reordering timer, §6.3), or 0.
//
// Times are ms (fractional allowed). Per-segment RTT samples come from our
// own send timestamps, which are finer than the 1 ms TCP timestamps; the
// smoothed value kept here (srtt) serves the reordering window and the TLP
// timeout, while the RFC 6298 RTO keeps its own estimator (rtt.ts).

import type { Scoreboard, SegRecord } from './scoreboard.js';
import { seqGe, seqGt } from './seq.js';
import { DOUBLE_ZERO } from '../numbers.js';

/** RFC 8985 §6.2 step 4: reo_wnd_persist restarts at 16 recoveries after a D-SACK. */
const REO_WND_PERSIST = 16;
/** RFC 6675 DupThresh. */
const DUP_THRESH = 3;
/** min_RTT is a windowed minimum (Linux tcp_min_rtt_wlen is 300 s; the local link does not change often). */
const MIN_RTT_WINDOW_MS = 10_000;

export class Rack {
  /**
   * RACK.xmit_ts / RACK.end_seq: the most recently sent segment delivered
   * so far; `order` is its transmission order (scoreboard.ts), which stands
   * in for RACK_sent_after()'s (time, end_seq) comparison.
   */
  xmitTs = -Infinity;
  endSeq = 0;
  order = 0;
  /** RACK.rtt: RTT of that segment. */
  rtt = DOUBLE_ZERO;
  /** RACK.fack: highest sequence number delivered (end). */
  fack: number;
  minRtt = Infinity;
  private minRttAt = -Infinity;
  /** Smoothed per-segment RTT (RFC 6298 §2 weights), for reo_wnd and PTO. */
  srtt = DOUBLE_ZERO;
  hasSrtt = false;
  reorderingSeen = false;
  reoWndMult = 1;
  reoWndPersist = 0;
  /** RACK.dsack_round: SND.NXT when the last D-SACK-driven increase happened (undefined = none). */
  dsackRound: number | undefined;
  /** Set by onDelivered when RACK.xmit_ts moved during this ACK. */
  advanced = false;

  constructor(iss: number) {
    this.fack = iss;
  }

  /**
   * RFC 8985 §6.2 steps 1-3 for one segment newly delivered by this ACK.
   * `tsEcr` is the ACK's echoed timestamp converted to our clock (ms), or
   * undefined without timestamps.
   */
  onDelivered(r: SegRecord, now: number, tsEcrMs: number | undefined): void {
    const rtt = now - r.xmit;
    if (r.rtx > 0) {
      // Step 2: the ACK may be for an earlier transmission of a
      // retransmitted segment: ignore it when the echo predates the latest
      // transmission, or the RTT would be implausibly short.
      if (tsEcrMs !== undefined && tsEcrMs < Math.floor(r.xmit)) return;
      if (rtt < this.minRtt) return;
    } else {
      // Step 1 (min_RTT) and the smoothed RTT, from unambiguous samples only.
      this.rttSample(rtt, now);
    }
    // Step 3: a never-retransmitted segment delivered below the highest
    // delivered sequence number arrived out of order.
    if (seqGt(r.end, this.fack)) this.fack = r.end;
    else if (r.rtx === 0) this.reorderingSeen = true;
    // Step 2: RACK.xmit_ts, end_seq and rtt follow the most recently sent.
    if (r.order > this.order) {
      this.xmitTs = r.xmit;
      this.endSeq = r.end;
      this.order = r.order;
      this.rtt = rtt;
      this.advanced = true;
    }
  }

  private rttSample(rtt: number, now: number): void {
    if (rtt <= this.minRtt || now - this.minRttAt > MIN_RTT_WINDOW_MS) {
      this.minRtt = rtt;
      this.minRttAt = now;
    }
    if (!this.hasSrtt) {
      this.srtt = rtt;
      this.hasSrtt = true;
    } else this.srtt += (rtt - this.srtt) / 8;
  }

  /**
   * RFC 8985 §6.2 step 4: D-SACK-driven adaptation of the reordering
   * window. `dsack`: this ACK carried a D-SACK; `exitedRecovery`: it ended
   * fast or RTO recovery.
   */
  updateReoWnd(dsack: boolean, sndUna: number, sndNxt: number, exitedRecovery: boolean): void {
    if (this.dsackRound !== undefined && seqGe(sndUna, this.dsackRound)) this.dsackRound = undefined;
    if (this.dsackRound === undefined && dsack) {
      this.dsackRound = sndNxt;
      this.reoWndMult++;
      this.reoWndPersist = REO_WND_PERSIST;
    } else if (exitedRecovery) {
      if (--this.reoWndPersist <= 0) this.reoWndMult = 1;
    }
  }

  /** RFC 8985 §6.2 step 4: the reordering window in ms. */
  reoWnd(inRecovery: boolean, sackedSegs: number, rtoSrtt: number): number {
    if (!this.reorderingSeen && (inRecovery || sackedSegs >= DUP_THRESH)) return 0;
    const minRtt = this.minRtt === Infinity ? 0 : this.minRtt;
    const srtt = this.hasSrtt ? this.srtt : rtoSrtt;
    return Math.min((this.reoWndMult * minRtt) / 4, srtt);
  }

  /**
   * RFC 8985 §6.2 step 5 (RACK_detect_loss): marks lost every segment in
   * flight sent before RACK.xmit_ts whose deadline (xmit + RACK.rtt +
   * reo_wnd) has passed; returns ms until the next undecided one expires
   * (0: none). Walks the scoreboard's time-ordered list from the oldest
   * transmission and stops at the first segment it cannot mark, so the cost
   * is the number of segments marked, plus one.
   */
  detectLoss(sb: Scoreboard, now: number, reoWnd: number, onLost: (r: SegRecord) => void): number {
    for (let r = sb.oldest; r !== undefined; r = sb.oldest) {
      // RACK_sent_after(RACK.xmit_ts, RACK.end_seq, r.xmit_ts, r.end_seq).
      if (r.order >= this.order) return 0;
      const remaining = r.xmit + this.rtt + reoWnd - now;
      if (remaining > 0) return remaining;
      sb.markLost(r);
      onLost(r);
    }
    return 0;
  }
}
