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
// (fast retransmit / NewReno fast recovery), RFC 6928 (initial window),
// RFC 3465 (byte counting).

import { seqGe, seqGt } from './seq.js';

/** Upper bound on cwnd: far beyond any window, and keeps arithmetic small. */
const MAX_CWND = 1 << 30;

/** RFC 6928 §2: IW = min(10*MSS, max(2*MSS, 14600)) — 10 segments at a 1460-byte MSS. */
export function initialWindow(mss: number): number {
  return Math.min(10 * mss, Math.max(2 * mss, 14600));
}

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
    this.ssthresh = Math.max(Math.floor(flight / 2), 2 * this.mss);
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

  /** The retransmission timer expired. */
  onRto(flight: number, sndMax: number): void {
    // RFC 5681 §3.1 eq. 4: ssthresh = max(FlightSize/2, 2*SMSS) — on the
    // first timeout only; later back-to-back timeouts keep it (§3.1 note:
    // ssthresh is not halved again for a retransmission that is lost).
    if (!this.inTimeoutLoss) this.ssthresh = Math.max(Math.floor(flight / 2), 2 * this.mss);
    // RFC 5681 §3.1: after a timeout cwnd = LW = 1 SMSS.
    this.cwnd = this.mss;
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
