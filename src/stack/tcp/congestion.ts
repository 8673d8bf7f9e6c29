// src/stack/tcp/congestion.ts — NewReno congestion control.
//
// Read this first: the congestion window limits how many bytes may be in
// flight, on top of the peer's advertised window. The connection tells this
// module what happened (new data acknowledged, the third duplicate ACK, a
// partial or full ACK during recovery, a retransmission timeout, an idle
// restart); it reads `cwnd` back. All sizes are bytes; `mss` is the sender's
// maximum payload per segment (SMSS). Sequence numbers only enter through
// `recover`, compared with seq.ts.
//
// RFC 5681 §3.1 (slow start, congestion avoidance), RFC 5681 §3.2 + RFC 6582
// (fast retransmit / NewReno fast recovery) for peers without SACK, RFC 6675
// §5 (SACK-based recovery: enterRecovery / exitRecovery) for peers with it,
// RFC 3465 (byte counting).

import { seqGe, seqGt } from './seq.js';
import { idiv } from '../numbers.js';

/** Upper bound on cwnd: far beyond any window, and keeps arithmetic small. */
const MAX_CWND = 1 << 30;

/**
 * Initial window: 10 segments whatever the MSS, as Linux (TCP_INIT_CWND).
 * RFC 6928 §2 caps IW at 14600 bytes — 10 segments at a 1460-byte MSS but
 * only 2 at tsnet's 65480-byte MSS on a 65520-byte-MTU TAP. That cap exists
 * for Internet paths with shallow bottleneck queues; tsnet's peer is a
 * kernel on the other end of a local TAP with no bottleneck between us, and
 * the burst is bounded anyway by the guest's advertised window (Linux offers
 * ~64 KiB initially, so at MSS 65480 this is still one or two segments).
 */
export const INITIAL_WINDOW_SEGMENTS = 10;
export function initialWindow(mss: number): number {
  return INITIAL_WINDOW_SEGMENTS * mss;
}

/**
 * RFC 5681 §3.1 sets cwnd to the loss window LW = 1 SMSS after a timeout. We
 * use 2 SMSS when at least two segments are outstanding: a lone segment
 * that does not fill a hole is held by the guest's delayed-ACK timer (40 ms
 * on Linux, up to 200 ms), and that stall repeats after every RTO; two
 * full-sized segments are ACKed at once (RFC 5681 §4.2 "at least every
 * second full-sized segment"). The extra segment is one SMSS on an idle
 * path (the RTO means nothing of ours is queued), RFC 5681 already lets a
 * restart after idle send min(IW, cwnd), and Linux's RTO recovery likewise
 * lets RACK-marked losses go out beyond one segment.
 */
export const LOSS_WINDOW_SEGMENTS = 2;

export class NewReno {
  cwnd: number;
  /** RFC 5681 §3.1: the initial ssthresh SHOULD be arbitrarily high. */
  ssthresh = MAX_CWND;
  /** RFC 6582 §3.2: set while in fast recovery. */
  inRecovery = false;
  /**
   * RFC 6582 §3.2 "recover", kept as one past the highest sequence number
   * sent when recovery began (SND.MAX then): the RFC's recover + 1.
   */
  recover: number;
  /** Bytes acknowledged since cwnd last grew in congestion avoidance. */
  private bytesAcked = 0;
  private partialAckSeen = false;

  constructor(
    public mss: number,
    iss: number,
  ) {
    this.cwnd = initialWindow(mss);
    // RFC 6582 §3.2 step 1 ("recover" starts at the initial send sequence number).
    this.recover = iss;
  }

  /** The MSS changed (option negotiation finished): rescale the initial window. */
  setMss(mss: number): void {
    this.mss = mss;
    this.cwnd = initialWindow(mss);
  }

  /** New data acknowledged outside recovery. */
  onAck(acked: number): void {
    if (this.cwnd < this.ssthresh) {
      // RFC 5681 §3.1 (slow start) grows cwnd by at most SMSS per ACK and
      // RFC 3465 §2.2 by at most L = 2*SMSS. Like Linux we grow by every byte
      // acknowledged: a guest behind GRO, or a receiver that ACKs once per
      // I/O batch, sends "stretch" ACKs covering many segments, and capping
      // the increase per ACK would make slow start crawl. The burst this
      // allows is bounded by the peer's window and the ACK clock on a
      // point-to-point link. Never overshoot ssthresh by more than one ACK's
      // worth, and stop at ssthresh (RFC 5681 §3.1: CA begins there).
      this.cwnd = Math.min(MAX_CWND, this.cwnd + acked);
      if (this.cwnd > this.ssthresh) this.cwnd = Math.max(this.ssthresh, this.cwnd - acked + this.mss);
      return;
    }
    // RFC 5681 §3.1 eq. 3 alternative / RFC 3465 §2.1 byte counting: once a
    // full cwnd of bytes has been acknowledged, grow by one SMSS.
    this.bytesAcked += acked;
    if (this.bytesAcked >= this.cwnd) {
      this.bytesAcked -= this.cwnd;
      this.cwnd = Math.min(MAX_CWND, this.cwnd + this.mss);
    }
  }

  /**
   * The third duplicate ACK arrived. Returns true when fast retransmit /
   * fast recovery starts (the caller then retransmits the first unacked
   * segment).
   */
  onThirdDupAck(ack: number, flight: number, sndMax: number): boolean {
    // RFC 6582 §3.2 step 2: only if the cumulative ACK covers more than
    // "recover" — otherwise these duplicates are echoes of a recovery that
    // already happened (avoids multiple fast retransmits for one window).
    // (ACK − 1 > RFC recover  ⇔  ACK > our recover.)
    if (this.inRecovery || !seqGt(ack, this.recover)) return false;
    // RFC 6582 §3.2 step 2 / RFC 5681 §3.2 step 2: ssthresh = max(FlightSize/2, 2*SMSS).
    this.ssthresh = Math.max(idiv(flight, 2), 2 * this.mss);
    // RFC 6582 §3.2 step 2: record the highest sequence number transmitted.
    this.recover = sndMax;
    // RFC 5681 §3.2 step 3: cwnd = ssthresh + 3*SMSS ("inflating" by the
    // three segments that left the network).
    this.cwnd = this.ssthresh + 3 * this.mss;
    this.inRecovery = true;
    this.partialAckSeen = false;
    this.bytesAcked = 0;
    return true;
  }

  /** RFC 5681 §3.2 step 4 / RFC 6582 §3.2 step 3: each further duplicate ACK inflates cwnd by SMSS. */
  onDupAckInRecovery(): void {
    this.cwnd = Math.min(MAX_CWND, this.cwnd + this.mss);
  }

  /**
   * An ACK for new data while in recovery. Returns 'full' (recovery ended) or
   * 'partial' (the caller retransmits the next hole); `firstPartial` tells the
   * caller whether to restart the retransmission timer (RFC 6582 §3.2 step 5,
   * the "Impatient" variant: only for the first partial ACK).
   */
  onAckInRecovery(ack: number, acked: number, flight: number): 'full' | 'partial' {
    if (seqGe(ack, this.recover)) {
      // RFC 6582 §3.2 step 3 (full acknowledgment: everything up to and
      // including the RFC's recover): deflate to
      // min(ssthresh, max(FlightSize, SMSS) + SMSS), leave recovery.
      this.cwnd = Math.min(this.ssthresh, Math.max(flight, this.mss) + this.mss);
      this.inRecovery = false;
      return 'full';
    }
    // RFC 6582 §3.2 step 3 (partial acknowledgment): deflate by the amount
    // acknowledged, add back SMSS if at least SMSS was acknowledged.
    this.cwnd = Math.max(this.mss, this.cwnd - acked + (acked >= this.mss ? this.mss : 0));
    return 'partial';
  }

  /** True once, for the first partial ACK of a recovery episode. */
  takeFirstPartial(): boolean {
    if (this.partialAckSeen) return false;
    this.partialAckSeen = true;
    return true;
  }

  /**
   * RFC 6675 §5 steps 4.1-4.2 (SACK-based recovery, loss detected by RACK,
   * RFC 8985 §5): RecoveryPoint = HighData, ssthresh = cwnd = FlightSize/2
   * (at least 2 SMSS, RFC 5681 eq. 4). RACK names the lost segments
   * themselves, so unlike RFC 6582's duplicate-ACK rule no "recover" guard
   * is needed; the caller does not call this during RTO recovery.
   */
  enterRecovery(flight: number, sndMax: number): boolean {
    if (this.inRecovery) return false;
    this.ssthresh = Math.max(idiv(flight, 2), 2 * this.mss);
    this.cwnd = this.ssthresh;
    this.recover = sndMax;
    this.inRecovery = true;
    this.bytesAcked = 0;
    return true;
  }

  /** RFC 6675 §5: a cumulative ACK at or beyond RecoveryPoint ends recovery (cwnd stays ssthresh). */
  exitRecovery(): void {
    this.inRecovery = false;
    this.cwnd = Math.min(this.cwnd, this.ssthresh);
  }

  /**
   * RFC 8985 §7.4: a tail loss probe repaired a loss — one congestion
   * response, without entering recovery (Linux: CWR, ssthresh = cwnd/2).
   */
  onProbeRepairedLoss(): void {
    this.ssthresh = Math.max(idiv(this.cwnd, 2), 2 * this.mss);
    this.cwnd = Math.min(this.cwnd, this.ssthresh);
    this.bytesAcked = 0;
  }

  /** The retransmission timer expired. `lwSegments`: segments allowed out now (see LOSS_WINDOW_SEGMENTS). */
  onRto(flight: number, sndMax: number, lwSegments = 1): void {
    // RFC 5681 §3.1 eq. 4: ssthresh = max(FlightSize/2, 2*SMSS) — on the
    // first timeout only; later back-to-back timeouts keep it (§3.1 note:
    // ssthresh is not halved again for a retransmission that is lost).
    if (!this.inTimeoutLoss) this.ssthresh = Math.max(idiv(flight, 2), 2 * this.mss);
    // RFC 5681 §3.1: after a timeout cwnd = LW (1 SMSS; see LOSS_WINDOW_SEGMENTS).
    this.cwnd = lwSegments * this.mss;
    this.inRecovery = false;
    this.inTimeoutLoss = true;
    this.bytesAcked = 0;
    // RFC 6582 §3.2 step 4: after a timeout, record the highest sequence
    // number transmitted in "recover".
    this.recover = sndMax;
  }

  /** Set from an RTO until new data is acknowledged. */
  inTimeoutLoss = false;

  /** New data was acknowledged: a timeout episode (if any) is over. */
  onProgress(): void {
    this.inTimeoutLoss = false;
  }

  /**
   * RFC 5681 §4.1: after an idle period longer than RTO, restart from
   * RW = min(IW, cwnd) instead of bursting a stale window.
   */
  onIdleRestart(): void {
    this.cwnd = Math.min(this.cwnd, initialWindow(this.mss));
  }
}
