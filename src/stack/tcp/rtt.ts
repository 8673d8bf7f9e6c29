// src/stack/tcp/rtt.ts — the retransmission timeout (RFC 6298).
//
// Read this first: one RttEstimator per connection. Feed it round-trip
// samples (ms) with sample(); read the timeout with rto(). backoff() doubles
// the timeout after a retransmission timer expiry; the next valid sample
// recomputes it from SRTT/RTTVAR (RFC 6298 §5.7 allows keeping the backed-off
// value until then, which is what we do).
//
// Karn's rule (RFC 6298 §3) is the caller's job: it must not take samples
// from segments that were retransmitted, unless the sample comes from a
// timestamp echo (RFC 7323 §4), which names the transmission unambiguously.

import { DOUBLE_ZERO } from '../numbers.js';

/** RFC 6298 §2: alpha = 1/8, beta = 1/4. */
const ALPHA = 1 / 8;
const BETA = 1 / 4;
/** RFC 6298 §2: K = 4. */
const K = 4;
/** RFC 6298 §2: G, the clock granularity; `now` is in ms, so 1 ms. */
export const CLOCK_GRANULARITY_MS = 1;
/** RFC 6298 §2.1: until a sample is taken, RTO = 1 s. */
export const INITIAL_RTO_MS = 1000;
/**
 * RFC 6298 §2.4 asks for a 1 s floor. Like Linux (TCP_RTO_MIN) we use 200 ms:
 * tsnet's peer is a guest on a virtual point-to-point link with sub-ms RTTs,
 * where a 1 s floor would stall every loss that fast retransmit cannot fix
 * (a lost tail segment, a lost retransmission) for a full second. The RFC
 * itself allows a lower floor as long as spurious timeouts stay rare, and on
 * a link with no queueing delay worth the name they are.
 */
export const MIN_RTO_MS = 200;
/** RFC 6298 §2.5: a maximum may be placed on RTO provided it is at least 60 s. */
export const MAX_RTO_MS = 60_000;

export class RttEstimator {
  /** Smoothed round-trip time (ms); meaningless until hasSample. */
  srtt = DOUBLE_ZERO;
  /** Round-trip time variation (ms). */
  rttvar = DOUBLE_ZERO;
  hasSample = false;
  private rtoMs = INITIAL_RTO_MS;

  /** The current retransmission timeout in ms (backoff included). */
  rto(): number {
    return this.rtoMs;
  }

  /** Takes one round-trip measurement (ms, ≥ 0). */
  sample(r: number): void {
    if (!(r >= 0)) return;
    if (!this.hasSample) {
      // RFC 6298 §2.2: first measurement R: SRTT = R, RTTVAR = R/2.
      this.srtt = r;
      this.rttvar = r * 0.5;
      this.hasSample = true;
    } else {
      // RFC 6298 §2.3: RTTVAR first (it uses the old SRTT), then SRTT.
      this.rttvar = (1 - BETA) * this.rttvar + BETA * Math.abs(this.srtt - r);
      this.srtt = (1 - ALPHA) * this.srtt + ALPHA * r;
    }
    // RFC 6298 §2.2/2.3: RTO = SRTT + max(G, K*RTTVAR), then §2.4/2.5 clamps.
    this.rtoMs = clamp(this.srtt + Math.max(CLOCK_GRANULARITY_MS, K * this.rttvar));
  }

  /** RFC 6298 §5.5: the timer expired — RTO = RTO * 2, capped by §2.5. */
  backoff(): void {
    this.rtoMs = Math.min(MAX_RTO_MS, this.rtoMs * 2);
  }
}

function clamp(rto: number): number {
  return Math.min(MAX_RTO_MS, Math.max(MIN_RTO_MS, rto));
}
