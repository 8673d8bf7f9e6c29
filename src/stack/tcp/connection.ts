// src/stack/tcp/connection.ts — one TCP connection, as a pure object.
//
// Read this first:
// - tsnet is the guest's TCP peer. "local" is tsnet's side, "remote" the
//   guest. The object never touches sockets, timers or clocks: segments come
//   in through process(now, seg), everything that must go out is produced by
//   dispatch(now, emit), and pollAt() says when dispatch() next has work.
//   The owner calls dispatch() at the end of every I/O batch and at pollAt().
// - App side: onData/consumed() is the receive path (consumed() reopens the
//   window), send()/onSendSpace the transmit path, close() a half-close
//   (FIN after queued data), abort() a reset. onClosed fires exactly once,
//   always from dispatch(), after any final segment (RST) has been emitted;
//   onReset precedes it for abnormal ends.
// - Sequence space: SND.UNA ≤ SND.NXT ≤ sndMax. sndMax is the highest
//   sequence number ever sent; SND.NXT is where new transmission resumes and
//   is pulled back to SND.UNA on a retransmission timeout (go-back-N), so
//   "has this been sent before" is seqLt(seq, sndMax). The send buffer holds
//   the bytes [SND.UNA, SND.UNA + length); our FIN, once the app closed, sits
//   at finSeq = the end of that data.
// - Receive space: RCV.NXT, and rcvAdvRight, the right window edge we last
//   advertised (never moved left, RFC 9293 §3.8.6.2.1). In-order data goes to
//   the app directly; out-of-order data waits in the Assembler.
// - Segment arrival follows RFC 9293 §3.10.7 in order: sequence check, RST,
//   SYN, ACK, (URG ignored), data, FIN — see processSynchronized().
// - Loss recovery (sender): every segment sent is a record in the
//   Scoreboard (scoreboard.ts) with its transmit time and sacked / lost /
//   retransmitted flags; retransmissions are always of records marked lost,
//   in sequence order, while RFC 6675's pipe < cwnd. Losses are marked by
//   - RACK (RFC 8985 §6, rack.ts) when the peer does SACK: by time, from
//     SACKs and cumulative ACKs, including lost retransmissions;
//   - NewReno (RFC 5681/6582) duplicate ACKs and partial ACKs without SACK;
//   - the RTO (RFC 6298): everything not SACKed. SND.NXT never rewinds.
//   A Tail Loss Probe (RFC 8985 §7) replaces most RTOs for SACK peers: when
//   ACKs stop, new data or the last segment goes out after ~2 RTTs so the
//   peer's SACKs let RACK find the losses. See processAck() and output().

import { TcpFlags, TcpRepr } from '../../wire/tcp.js';
import { Assembler } from './assembler.js';
import { LOSS_WINDOW_SEGMENTS, NewReno } from './congestion.js';
import { Rack } from './rack.js';
import { RttEstimator, MAX_RTO_MS } from './rtt.js';
import { Scoreboard, type SegRecord } from './scoreboard.js';
import { SendBuffer } from './send-buffer.js';
import { inWindow, seqAdd, seqDiff, seqGe, seqGt, seqLe, seqLt, seqMax } from './seq.js';
import type { MemoryBudget } from '../budget.js';
import { TcpState, acceptsData, canSendData, isSynchronized, transition, type TcpEvent } from './state.js';

export { TcpState } from './state.js';

export interface TcpConnectionConfig {
  /** MSS we advertise and the max payload we send (the caller passes MTU-40, clamped by the peer's MSS option). */
  mss: number;
  /** Max bytes received-but-not-consumed by the app: the receive window ceiling. */
  rcvBufSize: number;
  /**
   * A ceiling on the receive window shared with other connections (the
   * owner's budget for what the TAP queue can hold), consulted whenever a
   * window is computed. The right edge is still never retracted.
   */
  windowLimit?: (held: number) => number;
  /** Max bytes accepted from the app and not yet acked by the peer. */
  sndBufSize: number;
  /** Where send-buffer blocks are taken from (the stack's memory budget). */
  budget?: MemoryBudget;
  /**
   * Segments in flight at most, whatever their size (default unbounded):
   * cwnd and windows count bytes, so a peer with a tiny MSS or an app that
   * writes tiny chunks could otherwise put more frames in flight than the
   * TAP queue holds.
   */
  maxSegmentsInFlight?: number;
  /**
   * A ceiling on the send buffer given the memory it holds (the flow's fair
   * share of the budget), consulted on every send.
   */
  sndLimit?: (held: number) => number;
  /** Initial send sequence number (the caller generates it randomly). */
  iss: number;
  /** Default 4000 (2×MSL, MSL = 2 s). */
  timeWaitMs?: number;
  /** Default 60000 (Linux tcp_fin_timeout). */
  finWait2TimeoutMs?: number;
  /** Default 7200000; probes every 75 s, 9 probes, then abort. */
  keepaliveIdleMs?: number;
  /** Default 10. */
  delayedAckMs?: number;
  /** Default 5 (RTO-driven). */
  maxSynAckRetries?: number;
  /** Data retransmissions before giving up with a reset (default 15, like tcp_retries2). */
  maxRetries?: number;
}

/** A segment for the guest; `repr.payload === payload`, ports filled. */
export interface TcpSegmentOut {
  repr: TcpRepr;
  payload: Buffer;
}

export type TcpResetReason = 'peer-reset' | 'timeout' | 'refused';

export interface TcpAppEvents {
  /**
   * In-order bytes from the peer. The buffer may be a view of the frame just
   * read, valid during this call only: copy what is kept. Call consumed(n)
   * once passed on.
   */
  onData(data: Buffer): void;
  /** The peer's FIN reached in order (after all data). */
  onEof(): void;
  /** Handshake complete (active open, or after accept()). */
  onEstablished(): void;
  /** The send buffer had been full (send() returned less than offered) and now has room. */
  onSendSpace(): void;
  /** The connection died abnormally; onClosed follows. */
  onReset(reason: TcpResetReason): void;
  /** Reached CLOSED; the owner removes the connection from its table. */
  onClosed(): void;
}

export interface TcpConnectionStats {
  /** Payload bytes delivered to the app in order. */
  bytesIn: number;
  /** Payload bytes sent for the first time (retransmissions excluded). */
  bytesOut: number;
  /** Segments (data, SYN or FIN) sent again. */
  retransmits: number;
  segmentsIn: number;
  segmentsOut: number;
  dupAcks: number;
  fastRetransmits: number;
  rtoFired: number;
  /** Data segments received ahead of RCV.NXT. */
  outOfOrder: number;
}

/**
 * RFC 9293 §3.7.1: without an MSS option the peer can take 536 bytes
 * (576-byte IPv4 datagrams minus 40 bytes of headers).
 */
export const DEFAULT_PEER_MSS = 536;
/** Smallest payload size we agree to send in (Linux tcp_min_snd_mss is 48). */
const MIN_SND_MSS = 48;
/** RFC 7323 §2.3: shift counts above 14 are treated as 14. */
const MAX_WSCALE = 14;
/** RFC 7323 §3.2: the Timestamps option takes 10 bytes, 12 with the NOPs before it. */
const TS_OPT_LEN = 12;
/**
 * TIME-WAIT lasts 2*MSL (RFC 9293 §3.4.2). RFC 9293 assumes MSL = 2 min on
 * the Internet; tsnet's guest sits on a virtual point-to-point link with no
 * router and no queue that could hold a segment for seconds, so no segment
 * outlives MSL = 2 s: 2*MSL = 4 s.
 */
const DEFAULT_TIME_WAIT_MS = 4000;
/** Linux tcp_fin_timeout (60 s). */
const DEFAULT_FIN_WAIT2_TIMEOUT_MS = 60_000;
/** RFC 1122 §4.2.3.6: keepalive idle time MUST default to no less than two hours. */
const DEFAULT_KEEPALIVE_IDLE_MS = 7_200_000;
/** Linux tcp_keepalive_intvl (75 s) and tcp_keepalive_probes (9). */
const KEEPALIVE_INTERVAL_MS = 75_000;
const KEEPALIVE_PROBES = 9;
/** RFC 5681 §4.2 / RFC 1122 §4.2.3.2: an ACK delay MUST be under 0.5 s; we use 10 ms by default. */
const DEFAULT_DELAYED_ACK_MS = 10;
const DEFAULT_MAX_SYNACK_RETRIES = 5;
/** Linux tcp_retries2. */
const DEFAULT_MAX_RETRIES = 15;
/** RFC 5961 §7: challenge ACKs are rate limited; at most this many per second per connection. */
const CHALLENGE_ACK_LIMIT = 10;
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
/** Pending control segments (RSTs) are capped; more are simply not sent. */
const MAX_CTL_QUEUE = 4;

const EMPTY = Buffer.alloc(0);
const { FIN, SYN, RST, PSH, ACK } = TcpFlags;

/**
 * RFC 9293 §3.10.7.1 (reset generation): the RST answering `seg` when no
 * connection exists for it — <SEQ=SEG.ACK><CTL=RST> if it carried an ACK,
 * else <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>. Undefined for a RST (never
 * answer a reset). Ports are swapped; the caller wraps it in IP.
 */
export function rstForUnknown(seg: TcpRepr): TcpRepr | undefined {
  if (seg.flags & RST) return undefined;
  if (seg.flags & ACK) {
    return new TcpRepr({ srcPort: seg.dstPort, dstPort: seg.srcPort, seq: seg.ack, ack: 0, flags: RST, window: 0 });
  }
  return new TcpRepr({
    srcPort: seg.dstPort,
    dstPort: seg.srcPort,
    seq: 0,
    ack: seqAdd(seg.seq, seg.seqLen()),
    flags: RST | ACK,
    window: 0,
  });
}

/** RFC 7323 §2.3: our shift is the smallest s with rcvBufSize >> s ≤ 65535, at most 14. */
export function windowShiftFor(rcvBufSize: number): number {
  let s = 0;
  while (s < MAX_WSCALE && Math.floor(rcvBufSize / 2 ** s) > 0xffff) s++;
  return s;
}

export class TcpConnection {
  state: TcpState;
  /** One past the highest sequence number sent so far (SND.MAX). */
  get sentUpTo(): number {
    return this.sndMax;
  }
  readonly stats: TcpConnectionStats = {
    bytesIn: 0,
    bytesOut: 0,
    retransmits: 0,
    segmentsIn: 0,
    segmentsOut: 0,
    dupAcks: 0,
    fastRetransmits: 0,
    rtoFired: 0,
    outOfOrder: 0,
  };
  /** Loss-recovery counters beyond TcpConnectionStats (diagnostics, tests). */
  readonly lossStats = {
    /** Tail loss probes sent (RFC 8985 §7.3). */
    tlpProbes: 0,
    /** Probes that repaired a loss (RFC 8985 §7.4). */
    tlpRepairs: 0,
    /** Segments (re)declared lost by RACK. */
    rackLost: 0,
    /** D-SACK blocks received (RFC 2883). */
    dsacks: 0,
  };

  private readonly mss: number;
  private readonly rcvBufSize: number;
  private readonly windowLimit: ((held: number) => number) | undefined;
  private readonly maxSegmentsInFlight: number;
  private readonly timeWaitMs: number;
  private readonly finWait2TimeoutMs: number;
  private readonly keepaliveIdleMs: number;
  private readonly delayedAckMs: number;
  private readonly maxSynAckRetries: number;
  private readonly maxRetries: number;

  // --- send sequence space (RFC 9293 §3.3.1) ---
  private readonly iss: number;
  private sndUna: number;
  private sndNxt: number;
  private sndMax: number;
  /**
   * End of the last zero-window probe byte (RFC 9293 §3.8.6.1). The probe
   * byte is not counted in sndMax — our ACKs carry SEQ = sndMax and must stay
   * acceptable to a receiver whose window is zero — but an ACK covering it
   * is valid.
   */
  private probeEnd: number;
  /** Peer's window in bytes (already scaled). */
  private sndWnd = 0;
  private sndWl1 = 0;
  private sndWl2 = 0;
  /** RFC 5961 §5.2: MAX.SND.WND, the largest window the peer has offered. */
  private maxSndWnd = 0;
  /** Shift applied to the peer's window field (its window scale). */
  private sndShift = 0;
  /** Max payload per segment toward the peer, before options. */
  private sndMss: number;

  // --- receive sequence space ---
  private irs = 0;
  private rcvNxt = 0;
  private rcvAdvRight = 0;
  /** Shift applied to the window field we send (our window scale). */
  private rcvShift: number;
  /** Bytes given to onData and not yet consumed(). */
  private unconsumed = 0;
  /** Largest segment payload seen from the peer (for "full-sized" ACK counting). */
  private rcvMss: number;
  /** Sequence number of the peer's FIN, once seen (possibly out of order). */
  private rcvFinSeq: number | undefined;
  private eofDelivered = false;

  // --- options ---
  private sackOk = false;
  private tsOk = false;
  private tsRecent = 0;
  private lastAckSent = 0;
  private readonly tsOffset: number;
  /** The peer's SYN (passive open), kept until the SYN-ACK is built. */
  private peerWsOffered = false;

  // --- buffers ---
  private readonly sendBuf: SendBuffer;
  private readonly asm = new Assembler();
  private finQueued = false;
  private finSeq = 0;
  /** close() arrived before the handshake finished. */
  private closeDeferred = false;
  private sendBlocked = false;

  // --- RTT, congestion, loss recovery ---
  private readonly rtt = new RttEstimator();
  private readonly cc: NewReno;
  private dupAcks = 0;
  private rttTiming = false;
  private rttSeq = 0;
  private rttTime = 0;
  /** Our TSval when we last retransmitted anything (undefined: never). */
  private lastRtxTs: number | undefined;
  /** Every segment in [SND.UNA, SND.MAX) with its send time and fate. */
  private readonly sb = new Scoreboard();
  private readonly rack: Rack;
  /**
   * Retransmissions that may go out regardless of pipe and cwnd: the first
   * one of a recovery (RFC 6675 §5 step 4.3), NewReno's (RFC 6582 §3.2
   * steps 2 and 5) and the RTO's (RFC 6298 §5.4).
   */
  private forcedRtx = 0;
  /** RFC 8985 "RTO recovery": from a timeout until SND.UNA passes cc.recover. */
  private rtoRecovery = false;
  /** RACK reordering timer (RFC 8985 §6.3). */
  private reoAt = Infinity;
  /** TLP: the PTO timer (RFC 8985 §7.2), a probe due in output(), and the episode (§7.4). */
  private tlpAt = Infinity;
  private tlpDue = false;
  private tlpRearm = false;
  private tlpEndSeq: number | undefined;
  private tlpIsRetrans = false;
  /** Receiver side: a duplicate to report in the next ACK as a D-SACK (RFC 2883). */
  private dsackOut: [number, number] | undefined;

  // --- timers (absolute ms, Infinity = off) ---
  private rtoAt = Infinity;
  private persistAt = Infinity;
  private persistBackoff = 0;
  private delayedAckAt = Infinity;
  /** TIME-WAIT or FIN-WAIT-2 expiry. */
  private closeTimerAt = Infinity;
  private lastRecvAt: number;
  private lastDataSentAt = -Infinity;
  private synRetries = 0;
  private retries = 0;
  private probesOut = 0;
  private keepaliveProbes = 0;
  private challengeWindowStart = -Infinity;
  private challengeCount = 0;

  // --- output state ---
  private ackNow = false;
  private ackPendingBytes = 0;
  private ctlQueue: TcpRepr[] = [];
  private closedNotified = false;
  private emitFn: ((seg: TcpSegmentOut, now: number) => void) | undefined;
  /** The time of the dispatch in progress (emission happens only inside dispatch). */
  private emitNow = 0;

  private constructor(
    readonly localPort: number,
    readonly remotePort: number,
    cfg: TcpConnectionConfig,
    private readonly events: TcpAppEvents,
    now: number,
    state: TcpState,
  ) {
    this.state = state;
    this.mss = cfg.mss;
    this.rcvBufSize = cfg.rcvBufSize;
    this.windowLimit = cfg.windowLimit;
    this.maxSegmentsInFlight = cfg.maxSegmentsInFlight ?? Infinity;
    this.timeWaitMs = cfg.timeWaitMs ?? DEFAULT_TIME_WAIT_MS;
    this.finWait2TimeoutMs = cfg.finWait2TimeoutMs ?? DEFAULT_FIN_WAIT2_TIMEOUT_MS;
    this.keepaliveIdleMs = cfg.keepaliveIdleMs ?? DEFAULT_KEEPALIVE_IDLE_MS;
    this.delayedAckMs = cfg.delayedAckMs ?? DEFAULT_DELAYED_ACK_MS;
    this.maxSynAckRetries = cfg.maxSynAckRetries ?? DEFAULT_MAX_SYNACK_RETRIES;
    this.maxRetries = cfg.maxRetries ?? DEFAULT_MAX_RETRIES;
    this.iss = cfg.iss >>> 0;
    this.sndUna = this.iss;
    this.sndNxt = this.iss;
    this.sndMax = this.iss;
    this.probeEnd = this.iss;
    this.rack = new Rack(this.iss);
    // The floor guards against a peer's tiny MSS option, never against our own MTU.
    this.sndMss = Math.max(Math.min(MIN_SND_MSS, cfg.mss), Math.min(cfg.mss, DEFAULT_PEER_MSS));
    this.rcvShift = windowShiftFor(cfg.rcvBufSize);
    this.rcvMss = Math.min(DEFAULT_PEER_MSS, cfg.mss);
    // Per-connection timestamp offset (like Linux's randomised ts_off): our
    // TSval never starts at 0, so a TSecr of 0 can mean "no echo".
    this.tsOffset = (this.iss ^ 0x5bd1e995) >>> 0;
    this.sendBuf = new SendBuffer(cfg.sndBufSize, cfg.budget, cfg.sndLimit);
    this.cc = new NewReno(this.sndMss, this.iss);
    this.lastRecvAt = now;
  }

  // ======================================================================
  // Opening
  // ======================================================================

  /**
   * Passive open from the guest's SYN. Records the SYN's options and waits in
   * LISTEN: nothing is sent until accept() (tsnet first connects the host
   * socket). Retransmitted SYNs meanwhile are absorbed.
   */
  static fromSyn(now: number, syn: TcpRepr, cfg: TcpConnectionConfig, events: TcpAppEvents): TcpConnection {
    const c = new TcpConnection(syn.dstPort, syn.srcPort, cfg, events, now, TcpState.Listen);
    c.irs = syn.seq >>> 0;
    c.rcvNxt = seqAdd(c.irs, 1);
    c.rcvAdvRight = c.rcvNxt;
    c.lastAckSent = c.rcvNxt;
    c.takeSynOptions(syn);
    // RFC 9293 §3.10.7.2: SND.WND from the SYN (never scaled, RFC 7323 §2.2).
    c.sndWnd = syn.window;
    c.maxSndWnd = syn.window;
    c.sndWl1 = c.irs;
    return c;
  }

  /** Active open toward the guest (port forwarding): SYN-SENT, the SYN goes out on the next dispatch(). */
  static connect(
    now: number,
    localPort: number,
    remotePort: number,
    cfg: TcpConnectionConfig,
    events: TcpAppEvents,
  ): TcpConnection {
    const c = new TcpConnection(localPort, remotePort, cfg, events, now, TcpState.Closed);
    c.move('connect', now);
    return c;
  }

  /** Host connect succeeded: answer the held SYN with SYN-ACK (SYN-RECEIVED). */
  accept(now: number): void {
    if (this.state !== TcpState.Listen) return;
    this.move('accept', now);
    // sndNxt === iss: dispatch() sends the SYN-ACK.
  }

  /** Host refused: RST|ACK to the SYN (ack = SYN.seq + 1), then CLOSED. */
  refuse(_now: number): void {
    if (this.state !== TcpState.Listen) return;
    // RFC 9293 §3.10.7.1 (reset generation, segment without ACK):
    // <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>.
    this.queueCtl(this.bareSeg(RST | ACK, 0, this.rcvNxt));
    this.move('reset', _now);
  }

  private takeSynOptions(syn: TcpRepr): void {
    // RFC 9293 §3.7.1: the peer's MSS bounds what we send; 536 if absent.
    const peerMss = syn.mss ?? DEFAULT_PEER_MSS;
    this.sndMss = Math.max(Math.min(MIN_SND_MSS, this.mss), Math.min(this.mss, peerMss));
    // RFC 7323 §2.2: window scaling only if both SYNs carry the option; the
    // peer's shift applies to the windows it sends us (capped at 14, §2.3).
    this.peerWsOffered = syn.windowScale !== undefined;
    if (this.peerWsOffered) {
      this.sndShift = Math.min(MAX_WSCALE, syn.windowScale!);
    } else {
      this.sndShift = 0;
      this.rcvShift = 0;
    }
    // RFC 2018 §2: SACK is used only if the peer's SYN said SACK-permitted.
    this.sackOk = syn.sackPermitted;
    // RFC 7323 §3.2: timestamps only if the SYN carried them; TS.Recent is
    // the SYN's TSval.
    this.tsOk = syn.tsVal !== undefined;
    if (this.tsOk) this.tsRecent = syn.tsVal!;
    this.cc.setMss(this.maxPayload());
  }

  // ======================================================================
  // App interface
  // ======================================================================

  /** Queues app data; returns the bytes accepted (≤ sendSpace()). */
  send(data: Buffer): number {
    if (this.finQueued || this.closeDeferred || !this.mayQueue()) return 0;
    const n = this.sendBuf.push(data);
    // Full (or held back by the memory budget): onSendSpace once there is room.
    if (n < data.length || this.sendBuf.space === 0) this.sendBlocked = true;
    return n;
  }

  sendSpace(): number {
    if (this.finQueued || this.closeDeferred || !this.mayQueue()) return 0;
    return this.sendBuf.space;
  }

  private mayQueue(): boolean {
    const s = this.state;
    return (
      s === TcpState.Listen ||
      s === TcpState.SynSent ||
      s === TcpState.SynReceived ||
      s === TcpState.Established ||
      s === TcpState.CloseWait
    );
  }

  /** The app has passed n bytes of onData on: reopen the window. */
  consumed(n: number, recheck = false): void {
    if (n <= 0 && !recheck) return;
    this.unconsumed = Math.max(0, this.unconsumed - n);
    if (!isSynchronized(this.state) || !acceptsData(this.state)) return;
    // RFC 9293 §3.8.6.2.2 (receiver SWS avoidance): announce a larger window
    // only once it has grown by a worthwhile amount — here 2*MSS, or half the
    // buffer when the buffer is small.
    const adv = Math.max(0, seqDiff(this.rcvAdvRight, this.rcvNxt));
    // What the window field can express at most (65535 << our shift).
    const avail = Math.min(this.rcvAvail(), 0xffff * 2 ** this.rcvShift);
    if (avail - adv >= Math.min(2 * this.mss, this.rcvBufSize / 2)) this.ackNow = true;
  }

  /**
   * Memory pressure eased elsewhere: an app held back by the budget may
   * send again, and a window the budget kept small may open (an ACK
   * announces it).
   */
  wake(): void {
    if (this.closedNotified) return;
    if (this.sendBlocked && this.sendBuf.space > 0) {
      this.sendBlocked = false;
      if (!this.finQueued) this.events.onSendSpace();
    }
    this.consumed(0, true);
  }

  /** Gives every buffered block back to the budget (the flow is gone without a final dispatch). */
  releaseBuffers(): void {
    this.sendBuf.dispose();
  }

  /** The app finished sending: FIN after the queued data. */
  close(now: number): void {
    const s = this.state;
    if (this.finQueued || this.closeDeferred) return;
    if (s === TcpState.Listen || s === TcpState.SynSent || s === TcpState.SynReceived) {
      // RFC 9293 §3.10.4 (CLOSE in SYN-RECEIVED): queued until ESTABLISHED.
      // We defer in SYN-SENT too, so data queued by a port-forward client
      // that closes early still reaches the guest.
      this.closeDeferred = true;
      return;
    }
    if (s === TcpState.Established || s === TcpState.CloseWait) this.startClose(now);
  }

  private startClose(now: number): void {
    this.finQueued = true;
    this.finSeq = seqAdd(this.sndUna, this.sendBuf.length);
    this.move('close', now);
  }

  /** Reset the connection: RST (if synchronized), CLOSED; onClosed, no onReset. */
  abort(now: number): void {
    const s = this.state;
    if (s === TcpState.Closed) return;
    if (s === TcpState.Listen) {
      // Nothing answered yet: reject the held SYN as refuse() does.
      this.queueCtl(this.bareSeg(RST | ACK, 0, this.rcvNxt));
    } else if (s !== TcpState.SynSent) {
      // RFC 9293 §3.10.5 ABORT: <SEQ=SND.NXT><CTL=RST>. Our SND.NXT in the
      // RFC's sense is sndMax (we may have rewound for go-back-N). We add the
      // ACK like Linux does.
      this.queueCtl(this.bareSeg(RST | ACK, this.acceptableSeq(), this.rcvNxt));
    }
    this.move('reset', now);
  }

  // ======================================================================
  // Timers and output
  // ======================================================================

  /** Earliest time dispatch() has something to do (0 = now, Infinity = nothing). */
  pollAt(): number {
    if (this.closedNotified) return Infinity;
    if (this.ctlQueue.length > 0 || this.isClosed()) return 0;
    if (this.state === TcpState.Listen) return Infinity;
    if (this.ackNow || this.tlpDue || this.retransmitReady()) return 0;
    if ((this.state === TcpState.SynSent || this.state === TcpState.SynReceived) && this.sndNxt === this.iss) return 0;
    if (this.nextSendLen() >= 0) return 0;
    // A zero window blocks pending data and the persist timer is not armed
    // yet (send() has no clock): dispatch() arms it.
    if (this.persistAt === Infinity && this.persistNeeded()) return 0;
    return Math.min(
      this.rtoAt,
      this.tlpAt,
      this.reoAt,
      this.persistAt,
      this.delayedAckAt,
      this.closeTimerAt,
      this.keepaliveAt(),
    );
  }

  /** Emits everything due at `now`. */
  dispatch(now: number, emit: (seg: TcpSegmentOut, now: number) => void): void {
    if (this.closedNotified) return;
    this.emitFn = emit;
    this.emitNow = now;
    try {
      this.flushCtl();
      if (!this.isClosed() && this.state !== TcpState.Listen) {
        this.runTimers(now);
        this.flushCtl();
        if (!this.isClosed()) this.output(now);
        if (!this.isClosed()) this.updateTlp(now);
      }
      if (this.isClosed()) this.notifyClosed();
    } finally {
      this.emitFn = undefined;
    }
  }

  private keepaliveAt(): number {
    const s = this.state;
    if (s !== TcpState.Established && s !== TcpState.CloseWait) return Infinity;
    // Only an idle connection is probed: outstanding or unsent data is watched by
    // the retransmission and persist timers instead.
    if (this.sndMax !== this.sndUna || this.sendBuf.length > 0) return Infinity;
    return this.lastRecvAt + this.keepaliveIdleMs + this.keepaliveProbes * KEEPALIVE_INTERVAL_MS;
  }

  private runTimers(now: number): void {
    if (this.closeTimerAt <= now) {
      this.closeTimerAt = Infinity;
      if (this.state === TcpState.TimeWait) {
        // RFC 9293 §3.10.8: TIME-WAIT timeout → CLOSED.
        this.move('timeout', now);
        return;
      }
      if (this.state === TcpState.FinWait2) {
        // The peer stayed silent for finWait2TimeoutMs after acknowledging
        // our FIN: give up and tell it so.
        this.queueCtl(this.bareSeg(RST | ACK, this.acceptableSeq(), this.rcvNxt));
        this.events.onReset('timeout');
        if (!this.isClosed()) this.move('timeout', now);
        return;
      }
    }
    if (this.reoAt <= now) {
      // RFC 8985 §6.3: the reordering window of the oldest undecided segment passed.
      this.reoAt = Infinity;
      if (this.sackOk) this.rackDetect(now);
    }
    if (this.rtoAt <= now) {
      this.rtoAt = Infinity;
      this.tlpAt = Infinity;
      this.onRetransmitTimeout(now);
      if (this.isClosed()) return;
    } else if (this.tlpAt <= now) {
      // RFC 8985 §7.3: the PTO expired; output() sends the probe.
      this.tlpAt = Infinity;
      this.tlpDue = true;
    }
    if (this.keepaliveAt() <= now) {
      if (this.keepaliveProbes >= KEEPALIVE_PROBES) {
        // RFC 1122 §4.2.3.6 / Linux: the peer answered none of the probes.
        this.giveUp('timeout', now);
        return;
      }
      this.keepaliveProbes++;
      // RFC 1122 §4.2.3.6: a keep-alive is an ACK with SEG.SEQ = SND.NXT-1,
      // which the peer must answer with an ACK.
      this.emitSegment(now, ACK, seqAdd(this.sndUna, -1), EMPTY);
    }
    if (this.delayedAckAt <= now) {
      this.delayedAckAt = Infinity;
      this.ackNow = true;
    }
  }

  private onRetransmitTimeout(now: number): void {
    this.stats.rtoFired++;
    if (this.state === TcpState.SynSent || this.state === TcpState.SynReceived) {
      // RFC 6298 §5.5-5.6 for the SYN / SYN-ACK: back off and resend.
      if (++this.synRetries > this.maxSynAckRetries) {
        this.giveUp('timeout', now);
        return;
      }
      this.rtt.backoff();
      this.rttTiming = false;
      this.sndNxt = this.iss;
      return;
    }
    if (this.sndMax === this.sndUna) return;
    if (++this.retries > this.maxRetries) {
      this.giveUp('timeout', now);
      return;
    }
    // RFC 5681 §3.1: ssthresh, and cwnd = LW (congestion.ts explains why
    // LW is 2 segments when two or more are outstanding).
    const lw = this.sb.outBytes > this.cc.mss ? LOSS_WINDOW_SEGMENTS : 1;
    this.cc.onRto(seqDiff(this.sndMax, this.sndUna), this.sndMax, lw);
    // RFC 6298 §5.5: back off the timer.
    this.rtt.backoff();
    // RFC 6298 §3 (Karn): no RTT sample from what we are about to resend.
    this.rttTiming = false;
    // RFC 6675 §5.1 / RFC 8985 §6.3: everything not SACKed is lost. SACK
    // information is kept (RFC 6675 §5.1 recommends using it: reneging is
    // rare, and is detected in sackAck() if it happens).
    this.sb.markAllLost();
    this.rtoRecovery = true;
    this.dupAcks = 0;
    // RFC 6298 §5.4: retransmit the earliest unacknowledged segment; the
    // rest follows in sequence order as cwnd allows (RFC 5681 §3.1 note).
    this.forcedRtx = 1;
    this.tlpDue = false;
    this.tlpEndSeq = undefined;
    this.reoAt = Infinity;
    // RFC 6298 §5.6: the timer restarts when the retransmission goes out.
  }

  private output(now: number): void {
    const s = this.state;
    // SYN (SYN-SENT) or SYN-ACK (SYN-RECEIVED), first time or after an RTO.
    if ((s === TcpState.SynSent || s === TcpState.SynReceived) && this.sndNxt === this.iss) {
      this.sendSyn(now);
      return;
    }
    if (canSendData(s)) {
      if (this.tlpDue) this.sendLossProbe(now);
      this.sendRetransmissions(now);
      this.sendProbe(now);
      this.sendNewData(now);
      this.updatePersist(now);
    }
    // RFC 9293 §3.10.7.4: <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>.
    if (this.ackNow) this.emitSegment(now, ACK, this.acceptableSeq(), EMPTY);
  }

  /**
   * The sequence number for a segment without data (ACK, RST): the RFC's
   * SND.NXT is our sndMax (sndNxt may have been rewound for go-back-N, and a
   * receiver drops an ACK whose sequence number lies below its RCV.NXT as a
   * duplicate) — but never past the right edge of the window the peer
   * offered. A receiver that dropped data we sent beyond its RCV.NXT (Linux
   * under receive-memory pressure shrinks its window and prunes queued
   * data) treats a sequence number beyond RCV.NXT+RCV.WND as unacceptable
   * and discards the whole segment, ACK field included: every ACK we sent
   * was ignored and both sides stalled (measured: 30 forwarded echo
   * connections). Linux's tcp_acceptable_seq() makes the same choice.
   */
  private acceptableSeq(): number {
    const edge = seqAdd(this.sndUna, this.sndWnd);
    return seqGt(this.sndMax, edge) ? edge : this.sndMax;
  }

  private sendSyn(now: number): void {
    const synAck = this.state === TcpState.SynReceived;
    const retransmit = this.synRetries > 0 || seqGt(this.sndMax, this.iss);
    const flags = synAck ? SYN | ACK : SYN;
    const repr = new TcpRepr({
      srcPort: this.localPort,
      dstPort: this.remotePort,
      seq: this.iss,
      ack: synAck ? this.rcvNxt : 0,
      flags,
      // RFC 7323 §2.2: the window in a SYN or SYN-ACK is never scaled.
      window: Math.min(this.rcvBufSize, 0xffff),
      mss: this.mss,
    });
    if (!synAck || this.peerWsOffered) repr.windowScale = this.rcvShift;
    // RFC 2018 §2: SACK-permitted in our SYN; in a SYN-ACK only if the peer offered it.
    repr.sackPermitted = synAck ? this.sackOk : true;
    if (!synAck || this.tsOk) {
      repr.tsVal = this.tsNow(now);
      // RFC 7323 §3.2: TSecr is 0 in a SYN (ACK bit off).
      repr.tsEcr = synAck ? this.tsRecent : 0;
    }
    if (synAck) this.rcvAdvRight = seqAdd(this.rcvNxt, repr.window);
    this.send1(repr, EMPTY);
    if (synAck) this.ackSent();
    if (retransmit) this.noteRetransmit(now);
    else {
      this.rttTiming = true;
      this.rttSeq = this.iss;
      this.rttTime = now;
    }
    this.sndNxt = seqAdd(this.iss, 1);
    this.sndMax = this.sndNxt;
    // RFC 6298 §5.1: start the timer if it is not running.
    if (this.rtoAt === Infinity) this.rtoAt = now + this.rtt.rto();
  }

  /** First sequence number after the queued data (= finSeq once closed). */
  private dataEndSeq(): number {
    return seqAdd(this.sndUna, this.sendBuf.length);
  }

  /** Option bytes on a data segment we send now (timestamps, SACK blocks). */
  private dataOptionsLen(): number {
    let n = this.tsOk ? TS_OPT_LEN : 0;
    if (this.sackOk && (!this.asm.isEmpty || this.dsackOut !== undefined)) {
      const blocks = Math.min(this.asm.pieceCount + (this.dsackOut ? 1 : 0), this.tsOk ? 3 : 4);
      n += 4 + 8 * blocks;
    }
    return n;
  }

  /** Max payload per segment with the options every data segment carries. */
  private maxPayload(): number {
    return Math.max(1, this.sndMss - (this.tsOk ? TS_OPT_LEN : 0));
  }

  /**
   * Length of the next new-data segment from SND.NXT if it may go out now:
   * ≥ 1 for data, 0 for a bare FIN, −1 when nothing may be sent. The rules
   * here decide both dispatch() and pollAt(), so they always agree.
   * `ignoreCwnd`: a loss probe (RFC 8985 §7.3 sends new data if the peer's
   * window allows, whatever cwnd says).
   */
  private nextSendLen(ignoreCwnd = false): number {
    if (!canSendData(this.state)) return -1;
    const off = seqDiff(this.sndNxt, this.sndUna);
    const avail = this.sendBuf.length - off;
    if (avail <= 0) {
      // Everything queued is out: only a FIN may remain. RFC 9293 §3.10.4: it
      // goes once all preceding data has been sent (it needs no window).
      return this.finQueued && this.sndNxt === this.finSeq ? 0 : -1;
    }
    if (this.sb.count >= this.maxSegmentsInFlight) return -1;
    const maxSeg = Math.max(1, this.sndMss - this.dataOptionsLen());
    // Respect both the peer's window (RFC 9293 §3.8.6: sequence space beyond
    // SND.UNA) and cwnd (RFC 5681 §3.1), the latter against RFC 6675's pipe:
    // SACKed and lost segments are not in the network.
    const wndLimit = this.sndWnd - off;
    const cwndLimit = ignoreCwnd ? Infinity : this.cc.cwnd - this.sb.pipe;
    const usable = Math.min(wndLimit, cwndLimit);
    const len = Math.min(avail, maxSeg, usable);
    if (len <= 0) return -1;
    // RFC 9293 §3.8.6.2.1 (sender SWS avoidance): send a short segment only
    // if it carries all queued data, or at least half the peer's largest
    // window, or nothing is in flight (no ACK would come to open the window).
    // Data-limited short segments go out at once (like TCP_NODELAY: dispatch
    // runs once per I/O batch, which already coalesces small writes).
    if (len < maxSeg && len < avail && off > 0 && len < this.maxSndWnd / 2) return -1;
    return len;
  }

  private sendNewData(now: number): void {
    for (;;) {
      const len = this.nextSendLen();
      if (len < 0) return;
      if (this.sendNewSegment(now, len) || len === 0) return;
    }
  }

  /** Sends `n` new bytes from SND.NXT (with the FIN if they end at it); returns whether the FIN went. */
  private sendNewSegment(now: number, n: number): boolean {
    const seq = this.sndNxt;
    const idle = this.sndMax === this.sndUna && now - this.lastDataSentAt > this.rtt.rto();
    if (idle && n > 0 && this.lastDataSentAt !== -Infinity) this.cc.onIdleRestart();
    const fin = this.finQueued && seqAdd(seq, n) === this.finSeq;
    this.emitData(now, seq, n, fin);
    this.stats.bytesOut += n;
    // RFC 6298 §3 (Karn) / classic RTT timing: time one fresh segment per
    // round trip when timestamps are not available.
    if (!this.rttTiming && !this.tsOk && n > 0) {
      this.rttTiming = true;
      this.rttSeq = seq;
      this.rttTime = now;
    }
    this.sndNxt = seqAdd(seq, n + (fin ? 1 : 0));
    if (seqGt(this.sndNxt, this.sndMax)) this.sndMax = this.sndNxt;
    this.sb.add(seq, this.sndNxt, fin, now);
    // RFC 6298 §5.1: start the timer when data goes out and it is not running.
    if (this.rtoAt === Infinity) this.rtoAt = now + this.rtt.rto();
    // RFC 8985 §7.2: (re)arm the PTO after sending new data.
    this.tlpRearm = true;
    return fin;
  }

  /** A lost segment may be retransmitted now (same test as sendRetransmissions()). */
  private retransmitReady(): boolean {
    if (!canSendData(this.state)) return false;
    const r = this.sb.nextLost();
    return r !== undefined && (this.forcedRtx > 0 || this.cc.cwnd - this.sb.pipe >= Math.min(seqDiff(r.end, r.start), this.cc.mss));
  }

  /**
   * RFC 6675 §5 step (C) with NextSeg() rule 1: while cwnd − pipe ≥ 1 SMSS
   * (or a retransmission is owed regardless, see forcedRtx), resend the
   * lowest lost segment not yet resent. Each ACK in recovery can thus
   * release as many segments as it took out of the pipe — retransmissions
   * first, then new data (rule 2) in sendNewData().
   */
  private sendRetransmissions(now: number): void {
    // cwnd and pipe count bytes: after an RTO a flight of tiny segments (an
    // app that wrote byte by byte) would all fit in one MSS of cwnd and go
    // out at once, more frames than the TAP queue holds. So at most
    // maxSegmentsInFlight retransmissions per pass; ACKs release the rest.
    let frames = 0;
    for (let r = this.sb.nextLost(); r !== undefined; r = this.sb.nextLost()) {
      if (frames >= this.maxSegmentsInFlight) return;
      if (this.forcedRtx > 0) this.forcedRtx--;
      else if (this.cc.cwnd - this.sb.pipe < Math.min(seqDiff(r.end, r.start), this.cc.mss)) return;
      this.retransmitRecord(now, r);
      frames++;
    }
    this.forcedRtx = 0;
  }

  /** Sends record `r` again (cut to what fits with today's options; the rest stays lost). */
  private retransmitRecord(now: number, r: SegRecord): void {
    const maxSeg = Math.max(1, this.sndMss - this.dataOptionsLen());
    let len = seqDiff(r.end, r.start) - (r.fin ? 1 : 0);
    if (len > maxSeg) {
      this.sb.split(r, maxSeg);
      len = maxSeg;
    }
    this.emitData(now, r.start, len, r.fin);
    this.noteRetransmit(now);
    this.sb.retransmitted(r, now);
    if (this.rtoAt === Infinity) this.rtoAt = now + this.rtt.rto();
  }

  /**
   * RFC 8985 §7.3: the PTO expired. Send one new segment if the peer's
   * window allows (ignoring cwnd), else resend the highest segment sent, so
   * that whatever ACK it draws shows RACK what is missing.
   */
  private sendLossProbe(now: number): void {
    this.tlpDue = false;
    if (this.tlpEndSeq === undefined && this.sndMax !== this.sndUna) {
      const len = this.nextSendLen(true);
      if (len >= 0) {
        this.sendNewSegment(now, len);
        this.tlpIsRetrans = false;
        this.tlpEndSeq = this.sndMax;
        this.lossStats.tlpProbes++;
      } else {
        const r = this.sb.last();
        if (r !== undefined && !r.sacked && !r.lost) {
          this.retransmitRecord(now, r);
          this.tlpIsRetrans = true;
          this.tlpEndSeq = this.sndMax;
          this.lossStats.tlpProbes++;
        }
      }
    }
    // RFC 8985 §7.3: after a probe (sent or not) re-arm the RTO, not the PTO.
    this.tlpRearm = false;
    if (this.sndMax !== this.sndUna) this.rtoAt = now + this.rtt.rto();
  }

  /**
   * RFC 8985 §7.2: arm the PTO after new data went out or new data was
   * acknowledged — for SACK peers, outside recovery, with nothing SACKed
   * (RACK's reordering timer covers that case) and no probe outstanding.
   */
  private updateTlp(now: number): void {
    if (
      !this.sackOk ||
      this.cc.inRecovery ||
      this.rtoRecovery ||
      this.sndMax === this.sndUna ||
      this.sb.sackedBytes > 0 ||
      this.tlpEndSeq !== undefined ||
      !canSendData(this.state)
    ) {
      this.tlpAt = Infinity;
      this.tlpRearm = false;
      return;
    }
    if (!this.tlpRearm) return;
    this.tlpRearm = false;
    let pto: number;
    const srtt = this.rack.hasSrtt ? this.rack.srtt : this.rtt.hasSample ? this.rtt.srtt : undefined;
    if (srtt === undefined) pto = TLP_INITIAL_PTO_MS;
    else {
      pto = 2 * srtt;
      // FlightSize of one segment: the guest may be delaying its ACK.
      if (this.sb.first() === this.sb.last()) pto += TLP_WC_DEL_ACK_MS;
      pto = Math.max(pto, MIN_PTO_MS);
    }
    // RFC 8985 §7.2: never later than the RTO.
    this.tlpAt = Math.min(now + pto, this.rtoAt);
  }

  /** RFC 9293 §3.8.6.1: the persist timer is armed while the peer's zero window blocks pending data. */
  private updatePersist(now: number): void {
    if (!this.persistNeeded()) {
      this.persistAt = Infinity;
      this.persistBackoff = 0;
      return;
    }
    if (this.persistAt === Infinity) this.persistAt = now + this.persistInterval();
  }

  private persistNeeded(): boolean {
    return (
      canSendData(this.state) &&
      this.sndNxt === this.sndUna &&
      this.sendBuf.length > 0 &&
      this.sndWnd === 0 &&
      this.rtoAt === Infinity
    );
  }

  private persistInterval(): number {
    return Math.min(MAX_RTO_MS, this.rtt.rto() * 2 ** this.persistBackoff);
  }

  /** RFC 9293 §3.8.6.1: probe a zero window with one byte of new data, backing off exponentially. */
  private sendProbe(now: number): void {
    if (this.persistAt > now) return;
    if (this.sndWnd !== 0 || this.sndNxt !== this.sndUna || this.sendBuf.length === 0) {
      this.persistAt = Infinity;
      this.persistBackoff = 0;
      return;
    }
    if (++this.probesOut > this.maxRetries) {
      this.giveUp('timeout', now);
      return;
    }
    this.emitData(now, this.sndNxt, 1, false);
    // ACKs up to the probe byte are valid from now on, but SND.NXT (and
    // sndMax) stay: the byte goes again with the data that follows once the
    // window opens.
    this.probeEnd = seqAdd(this.sndNxt, 1);
    this.noteRetransmit(now);
    this.persistBackoff++;
    this.persistAt = now + this.persistInterval();
  }

  /** Something was sent again: count it, and stop RTT timing (Karn). */
  private noteRetransmit(now: number): void {
    this.stats.retransmits++;
    this.rttTiming = false;
    this.lastRtxTs = this.tsNow(now);
  }

  private emitData(now: number, seq: number, len: number, fin: boolean): void {
    const off = seqDiff(seq, this.sndUna);
    const payload = len > 0 ? this.sendBuf.slice(off, len) : EMPTY;
    let flags = ACK;
    if (fin) flags |= FIN;
    // RFC 9293 §3.9.1 (SEND): PSH marks the end of what the app handed over.
    if (len > 0 && off + len === this.sendBuf.length) flags |= PSH;
    if (len > 0) this.lastDataSentAt = now;
    this.emitSegment(now, flags, seq, payload);
  }

  /** Builds and emits a segment carrying ACK (and data/FIN as given). */
  private emitSegment(now: number, flags: number, seq: number, payload: Buffer): void {
    const repr = new TcpRepr({
      srcPort: this.localPort,
      dstPort: this.remotePort,
      seq,
      ack: this.rcvNxt,
      flags,
      window: this.windowField(),
      payload,
    });
    if (this.tsOk) {
      // RFC 7323 §3.2: TSopt in every non-RST segment once negotiated, echoing TS.Recent.
      repr.tsVal = this.tsNow(now);
      repr.tsEcr = this.tsRecent;
    }
    if (this.sackOk && (!this.asm.isEmpty || this.dsackOut !== undefined)) {
      // RFC 2018 §4: report the out-of-order data we hold (3 blocks fit next
      // to timestamps); RFC 2883 §4: a D-SACK block goes first, once.
      const max = this.tsOk ? 3 : 4;
      const d = this.dsackOut;
      this.dsackOut = undefined;
      const blocks = this.asm.isEmpty ? [] : this.asm.sackBlocks(this.rcvNxt, d ? max - 1 : max);
      repr.sackBlocks = d ? [d, ...blocks] : blocks;
    }
    this.send1(repr, payload);
    this.ackSent();
  }

  /** A segment carrying our current ACK went out: nothing is owed any more. */
  private ackSent(): void {
    this.ackNow = false;
    this.delayedAckAt = Infinity;
    this.ackPendingBytes = 0;
    this.lastAckSent = this.rcvNxt;
  }

  private send1(repr: TcpRepr, payload: Buffer): void {
    repr.payload = payload;
    this.stats.segmentsOut++;
    this.emitFn!({ repr, payload }, this.emitNow);
  }

  private bareSeg(flags: number, seq: number, ack: number): TcpRepr {
    return new TcpRepr({ srcPort: this.localPort, dstPort: this.remotePort, seq, ack, flags, window: 0 });
  }

  private queueCtl(r: TcpRepr): void {
    if (this.ctlQueue.length < MAX_CTL_QUEUE) this.ctlQueue.push(r);
  }

  private flushCtl(): void {
    const q = this.ctlQueue;
    if (q.length === 0) return;
    this.ctlQueue = [];
    for (const r of q) this.send1(r, EMPTY);
  }

  private notifyClosed(): void {
    if (this.closedNotified) return;
    this.closedNotified = true;
    this.sendBuf.dispose();
    this.rtoAt = this.persistAt = this.delayedAckAt = this.closeTimerAt = Infinity;
    this.ackNow = false;
    this.forcedRtx = 0;
    this.tlpDue = false;
    this.tlpAt = this.reoAt = Infinity;
    this.events.onClosed();
  }

  private tsNow(now: number): number {
    return (Math.floor(now) + this.tsOffset) >>> 0;
  }

  /** Receive buffer space not taken by data the app still holds (within the shared limit). */
  private rcvAvail(): number {
    const limit = this.windowLimit ? Math.min(this.rcvBufSize, this.windowLimit(this.unconsumed)) : this.rcvBufSize;
    return Math.max(0, limit - this.unconsumed);
  }

  /**
   * The (scaled) window field for the next segment; records the right edge
   * it advertises.
   */
  private windowField(): number {
    const cur = Math.max(0, seqDiff(this.rcvAdvRight, this.rcvNxt));
    const avail = this.rcvAvail();
    let wnd = cur;
    // RFC 9293 §3.8.6.2.2 (receiver SWS avoidance): move the right edge only
    // when the window can grow by min(buffer/2, MSS).
    if (avail - cur >= Math.min(this.rcvBufSize / 2, this.mss)) wnd = avail;
    const shift = this.rcvShift;
    let field = Math.floor(wnd / 2 ** shift);
    // RFC 9293 §3.8.6.2.1 / RFC 7323 §2.4: never retract the right edge —
    // round up when scaling would cut into the window already offered.
    if (field * 2 ** shift < cur) field = Math.ceil(cur / 2 ** shift);
    if (field > 0xffff) field = 0xffff;
    this.rcvAdvRight = seqAdd(this.rcvNxt, field * 2 ** shift);
    return field;
  }

  // ======================================================================
  // Segment arrival (RFC 9293 §3.10.7)
  // ======================================================================

  /** A segment from the guest. seg.payload is only valid during the call. */
  process(now: number, seg: TcpRepr): void {
    const s = this.state;
    if (s === TcpState.Closed) return;
    this.stats.segmentsIn++;
    this.lastRecvAt = now;
    this.keepaliveProbes = 0;
    if (s === TcpState.Listen) this.processListen(now, seg);
    else if (s === TcpState.SynSent) this.processSynSent(now, seg);
    else this.processSynchronized(now, seg);
    if (!this.isClosed() && this.state !== TcpState.Listen) {
      this.updatePersist(now);
      this.updateTlp(now);
    }
  }

  /** Waiting for accept(): absorb retransmitted SYNs; honour the guest's RST. */
  private processListen(now: number, seg: TcpRepr): void {
    if (seg.flags & RST) {
      // The guest aborted its connect (its RST carries SEQ = its SND.NXT).
      if (seg.seq === this.rcvNxt) {
        this.events.onReset('peer-reset');
        if (!this.isClosed()) this.move('reset', now);
      }
      return;
    }
    // A retransmitted SYN (same ISS) is absorbed; anything else waits too.
  }

  /** RFC 9293 §3.10.7.3: SYN-SENT. */
  private processSynSent(now: number, seg: TcpRepr): void {
    const f = seg.flags;
    // First, the ACK bit: it must acknowledge our SYN (ISS < SEG.ACK ≤ SND.NXT).
    if (f & ACK) {
      if (seqLe(seg.ack, this.iss) || seqGt(seg.ack, this.sndMax)) {
        // Unacceptable: <SEQ=SEG.ACK><CTL=RST> unless it is itself a RST.
        if (!(f & RST)) this.queueCtl(this.bareSeg(RST, seg.ack, 0));
        return;
      }
    }
    // Second, RST: with an acceptable ACK the guest refused us (RFC 5961 §3
    // keeps this check for SYN-SENT); without an ACK it is dropped.
    if (f & RST) {
      if (f & ACK) {
        this.events.onReset('refused');
        if (!this.isClosed()) this.move('reset', now);
      }
      return;
    }
    // Fourth, SYN.
    if (!(f & SYN)) return;
    this.irs = seg.seq >>> 0;
    this.rcvNxt = seqAdd(this.irs, 1);
    this.rcvAdvRight = this.rcvNxt;
    this.lastAckSent = this.rcvNxt;
    this.takeSynOptions(seg);
    this.sndWnd = seg.window;
    this.maxSndWnd = Math.max(this.maxSndWnd, seg.window);
    this.sndWl1 = seg.seq;
    this.sndWl2 = seg.ack;
    if (f & ACK) {
      // Our SYN is acknowledged: ESTABLISHED, ACK the peer's SYN.
      this.synAcked(now, seg);
      this.move('rcv-syn-ack', now);
      this.ackNow = true;
      this.events.onEstablished();
      if (this.state === TcpState.Established && this.closeDeferred) {
        this.closeDeferred = false;
        this.startClose(now);
      }
      // Data carried by a SYN-ACK is not taken; it will be retransmitted.
    } else {
      // Simultaneous open: SYN-RECEIVED, answer with SYN,ACK (same ISS).
      this.move('rcv-syn', now);
      this.sndNxt = this.iss;
      this.rtoAt = Infinity;
    }
  }

  /** Our SYN (at ISS) was acknowledged. */
  private synAcked(now: number, seg: TcpRepr): void {
    this.sndUna = seqAdd(this.iss, 1);
    if (seqLt(this.sndNxt, this.sndUna)) this.sndNxt = this.sndUna;
    this.rttSample(now, seg, this.sndUna);
    this.rtoAt = Infinity;
    this.synRetries = 0;
    this.retries = 0;
  }

  private rttSample(now: number, seg: TcpRepr, ack: number): void {
    // RFC 7323 §4.1: with timestamps every ACK of new data yields a sample
    // from TSecr, unambiguous even for retransmissions (Karn's rule is moot).
    if (this.tsOk && seg.tsEcr !== undefined && seg.tsEcr !== 0) {
      // An echo older than our last retransmission is suspect: when the
      // peer's ACK of the original was lost, our retransmission reaches it
      // as a duplicate, which (RFC 7323 §4.3) does not refresh TS.Recent, so
      // its ACK echoes the original's TSval and would measure the whole
      // timeout as RTT. Such samples are skipped (Karn's rule applied to
      // timestamps), as are echoes from the future.
      if (this.lastRtxTs !== undefined && seqLt(seg.tsEcr, this.lastRtxTs)) return;
      const r = seqDiff(this.tsNow(now), seg.tsEcr);
      if (r >= 0 && r < MAX_RTO_MS) {
        this.rtt.sample(r);
        this.rttTiming = false;
        return;
      }
    }
    // RFC 6298 §3 (Karn): the timed segment was never retransmitted
    // (retransmissions cancel timing), so its ACK is an unambiguous sample.
    if (this.rttTiming && seqGt(ack, this.rttSeq)) {
      this.rttTiming = false;
      this.rtt.sample(now - this.rttTime);
    }
  }

  /** RFC 5961 §7: a rate-limited challenge ACK. */
  private challengeAck(now: number): void {
    if (now - this.challengeWindowStart >= 1000) {
      this.challengeWindowStart = now;
      this.challengeCount = 0;
    }
    if (this.challengeCount < CHALLENGE_ACK_LIMIT) {
      this.challengeCount++;
      this.ackNow = true;
    }
  }

  /** RFC 9293 §3.10.7.4: SYN-RECEIVED and every synchronized state. */
  private processSynchronized(now: number, seg: TcpRepr): void {
    const f = seg.flags;
    const seq = seg.seq >>> 0;
    const payloadLen = seg.payload.length;
    const segLen = seg.seqLen();

    // SYN-RECEIVED: the guest retransmitted its SYN, so our SYN-ACK was lost —
    // resend it at once rather than wait for our timer.
    if (this.state === TcpState.SynReceived && f & SYN && !(f & ACK) && seq === this.irs) {
      this.sndNxt = this.iss;
      return;
    }

    // --- first: sequence number check (RFC 9293 §3.10.7.4, table of four cases) ---
    const wnd = Math.max(0, seqDiff(this.rcvAdvRight, this.rcvNxt));
    let acceptable: boolean;
    if (segLen === 0) {
      // RFC 9293 says RCV.NXT ≤ SEG.SEQ < RCV.NXT+RCV.WND; like Linux
      // (tcp_sequence) we also take SEG.SEQ = RCV.NXT+RCV.WND: it is what a
      // peer that filled our window sends in a pure ACK while some of that
      // data is still missing here, and dropping it would lose its ACK.
      acceptable = wnd === 0 ? seq === this.rcvNxt : inWindow(seq, this.rcvNxt, wnd + 1);
    } else if (wnd === 0) {
      // RFC 9293 §3.10.7.4: with a zero window no segment is acceptable, but
      // "special allowance should be made to accept valid ACKs, URGs, and
      // RSTs": a segment exactly at RCV.NXT is let through for its control
      // information, and its data is trimmed away below.
      acceptable = seq === this.rcvNxt;
    } else {
      acceptable = inWindow(seq, this.rcvNxt, wnd) || inWindow(seqAdd(seq, segLen - 1), this.rcvNxt, wnd);
    }
    if (!acceptable) {
      // "If an incoming segment is not acceptable, an acknowledgment should be
      // sent in reply (unless the RST bit is set)", and the segment dropped.
      if (!(f & RST)) {
        this.ackNow = true;
        // RFC 2883: report a duplicate of data we already have as a D-SACK.
        if (this.sackOk && payloadLen > 0 && seqLe(seqAdd(seq, payloadLen), this.rcvNxt)) {
          this.dsackOut = [seq, seqAdd(seq, payloadLen)];
        }
        // RFC 9293 §3.10.7.4 (TIME-WAIT): a retransmitted FIN restarts 2*MSL.
        if (this.state === TcpState.TimeWait && f & FIN) this.closeTimerAt = now + this.timeWaitMs;
      }
      return;
    }

    // --- second: RST (RFC 5961 §3.2) ---
    if (f & RST) {
      if (seq === this.rcvNxt) {
        // Exactly at RCV.NXT: the reset is genuine.
        if (this.state !== TcpState.TimeWait) this.events.onReset('peer-reset');
        if (!this.isClosed()) this.move('reset', now);
      } else {
        // In the window but not exact: could be blind injection — challenge
        // ACK; a genuine sender answers it with an exact RST.
        this.challengeAck(now);
      }
      return;
    }

    // --- third: security/compartment: not applicable ---

    // --- fourth: SYN (RFC 5961 §4, RFC 9293 §3.10.7.4) ---
    if (f & SYN) {
      // A SYN in a synchronized state (in window or not — out-of-window
      // ones were answered above) gets a challenge ACK and is dropped.
      this.challengeAck(now);
      return;
    }

    // --- fifth: ACK ---
    // "If the ACK bit is off, drop the segment."
    if (!(f & ACK)) return;

    // RFC 7323 §4.3: TS.Recent follows the peer's clock, from segments that
    // cover the left edge of our window (SEG.SEQ ≤ Last.ACK.sent).
    if (this.tsOk && seg.tsVal !== undefined && seqLe(seq, this.lastAckSent) && seqGe(seg.tsVal, this.tsRecent)) {
      this.tsRecent = seg.tsVal;
    }

    if (this.state === TcpState.SynReceived) {
      // RFC 9293 §3.10.7.4: SND.UNA < SEG.ACK ≤ SND.NXT moves us to
      // ESTABLISHED; otherwise <SEQ=SEG.ACK><CTL=RST>.
      if (!(seqLt(this.sndUna, seg.ack) && seqLe(seg.ack, this.sndMax))) {
        this.queueCtl(this.bareSeg(RST, seg.ack, 0));
        return;
      }
      this.synAcked(now, seg);
      // "SND.WND <- SEG.WND, SND.WL1 <- SEG.SEQ, SND.WL2 <- SEG.ACK" (now scaled).
      this.sndWnd = seg.window * 2 ** this.sndShift;
      this.maxSndWnd = Math.max(this.maxSndWnd, this.sndWnd);
      this.sndWl1 = seq;
      this.sndWl2 = seg.ack;
      this.move('rcv-ack-of-syn', now);
      this.events.onEstablished();
      if (this.isClosed()) return;
      if (this.closeDeferred) {
        this.closeDeferred = false;
        this.startClose(now);
      }
    }

    if (!this.processAck(now, seg)) return;
    if (this.isClosed()) return;

    if (this.state === TcpState.FinWait2 && this.closeTimerAt !== Infinity) {
      // FIN-WAIT-2 times out on silence, not on age: a half-closed guest that
      // is still sending keeps the connection.
      this.closeTimerAt = now + this.finWait2TimeoutMs;
    }

    // --- sixth: URG — ignored (RFC 6093: urgent data is deprecated) ---

    // --- seventh: segment text ---
    if (payloadLen > 0 && acceptsData(this.state)) {
      this.processData(now, seq, seg.payload);
      if (this.isClosed()) return;
    } else if (payloadLen > 0) {
      // Data after the peer's FIN: nothing to do but acknowledge.
      this.ackNow = true;
    }

    // --- eighth: FIN ---
    if (f & FIN && acceptsData(this.state)) {
      const finAt = seqAdd(seq, payloadLen);
      // A FIN needs no buffer space: accept it up to the window's right edge.
      if (seqLe(finAt, this.rcvAdvRight) && seqGe(finAt, this.rcvNxt)) this.rcvFinSeq = finAt;
      this.ackNow = true;
    }
    if (this.rcvFinSeq !== undefined && this.rcvFinSeq === this.rcvNxt && acceptsData(this.state)) {
      this.processFin(now);
    }
  }

  /**
   * RFC 9293 §3.10.7.4 (fifth, ACK) for ESTABLISHED and the closing states.
   * Returns false when the segment must be dropped.
   */
  private processAck(now: number, seg: TcpRepr): boolean {
    const ack = seg.ack >>> 0;
    // RFC 9293: "If the ACK acks something not yet sent (SEG.ACK > SND.NXT)
    // then send an ACK, drop the segment, and return."
    if (seqGt(ack, this.sndMax)) {
      if (!(this.sndMax === this.sndUna && ack === this.probeEnd && seqGt(this.probeEnd, this.sndMax))) {
        this.ackNow = true;
        return false;
      }
      // The peer took our zero-window probe byte.
      this.sndMax = ack;
    }
    // RFC 5961 §5.2: acceptable ACKs lie in [SND.UNA - MAX.SND.WND, SND.NXT];
    // older ones are answered with an ACK and the segment is dropped.
    if (seqLt(ack, seqAdd(this.sndUna, -this.maxSndWnd))) {
      this.challengeAck(now);
      return false;
    }
    const acked = seqDiff(ack, this.sndUna);
    const segWnd = seg.window * 2 ** this.sndShift;
    this.rack.advanced = false;

    if (acked > 0) {
      this.newAck(now, seg, ack, acked);
    } else if (acked === 0 && seqGt(this.sndMax, this.sndUna) && seg.payload.length === 0 && !(seg.flags & (SYN | FIN))) {
      if (segWnd === this.sndWnd && segWnd !== 0) {
        // RFC 5681 §2 (DUPLICATE ACKNOWLEDGMENT): outstanding data, no data,
        // no SYN/FIN, ACK = SND.UNA, same window. (Answers to zero-window
        // probes repeat the ACK but are no loss signal.)
        this.stats.dupAcks++;
        if (!this.sackOk) this.dupAck(ack);
      }
    }
    if (this.sackOk) this.sackAck(now, seg, ack, acked);

    // RFC 9293 §3.10.7.4: window update if SND.WL1 < SEG.SEQ, or
    // SND.WL1 = SEG.SEQ and SND.WL2 ≤ SEG.ACK — and, as Linux's
    // tcp_may_update_window does, whenever the ACK moves SND.UNA: the window
    // is counted from SND.UNA, so keeping the old SND.WND while SND.UNA
    // advances would invent a right edge the peer never offered (a segment
    // that arrives late, older SEQ, with a newer ACK and a smaller window).
    const seq = seg.seq >>> 0;
    if (acked > 0 || seqLt(this.sndWl1, seq) || (this.sndWl1 === seq && seqLe(this.sndWl2, ack))) {
      this.sndWnd = segWnd;
      this.sndWl1 = seq;
      this.sndWl2 = ack;
      if (segWnd > this.maxSndWnd) this.maxSndWnd = segWnd;
    }

    // Our FIN acknowledged?
    if (this.finQueued && seqGt(this.sndUna, this.finSeq)) {
      const s = this.state;
      if (s === TcpState.FinWait1 || s === TcpState.Closing || s === TcpState.LastAck) {
        this.move('rcv-ack-of-fin', now);
      }
    }

    if (acked > 0 && this.sendBlocked) {
      const space = this.sendBuf.space;
      if (space >= (space + this.sendBuf.length) / 4 || this.sendBuf.length === 0) {
        this.sendBlocked = false;
        if (!this.finQueued) this.events.onSendSpace();
      }
    }
    return true;
  }

  /** Our TSecr echoed back, as a time on our clock (ms, floored), or undefined. */
  private echoMs(seg: TcpRepr): number | undefined {
    if (!this.tsOk || seg.tsEcr === undefined || seg.tsEcr === 0) return undefined;
    return (seg.tsEcr - this.tsOffset) >>> 0;
  }

  private newAck(now: number, seg: TcpRepr, ack: number, acked: number): void {
    this.rttSample(now, seg, ack);
    // Bytes of data acknowledged: the FIN takes one sequence number but no buffer.
    let dataAcked = acked;
    if (this.finQueued && seqGt(ack, this.finSeq)) dataAcked -= 1;
    this.sendBuf.ack(Math.min(dataAcked, this.sendBuf.length));
    const echo = this.echoMs(seg);
    this.sb.ackTo(ack, (r) => this.rack.onDelivered(r, now, echo));
    this.sndUna = ack;
    if (seqLt(this.sndNxt, ack)) this.sndNxt = ack;
    this.retries = 0;
    this.probesOut = 0;
    this.cc.onProgress();
    // RFC 8985 §7.2: (re)arm the PTO on an ACK of new data.
    this.tlpRearm = true;
    const flight = seqDiff(this.sndMax, this.sndUna);
    let restartTimer = true;
    if (this.rtoRecovery && seqGe(ack, this.cc.recover)) this.rtoRecovery = false;
    if (this.sackOk) {
      // RFC 6675 §5: cwnd does not grow during fast recovery; RTO recovery
      // and normal operation follow RFC 5681 (slow start / CA).
      if (!this.cc.inRecovery) this.cc.onAck(acked);
      this.dupAcks = 0;
    } else if (this.cc.inRecovery) {
      if (this.cc.onAckInRecovery(ack, acked, flight) === 'partial') {
        // RFC 6582 §3.2 step 5: retransmit the first unacknowledged segment.
        const head = this.sb.first();
        if (head !== undefined) {
          this.sb.markLost(head);
          this.forcedRtx = 1;
        }
        // RFC 6582 §3.2 step 5 ("Impatient"): reset the timer for the first partial ACK only.
        restartTimer = this.cc.takeFirstPartial();
      } else {
        this.dupAcks = 0;
        this.forcedRtx = 0;
      }
    } else {
      this.cc.onAck(acked);
      this.dupAcks = 0;
    }
    // RFC 6298 §5.2: all outstanding data acknowledged → stop the timer;
    // §5.3: new data acknowledged → restart it.
    if (this.sndUna === this.sndMax) {
      this.rtoAt = Infinity;
      this.tlpAt = Infinity;
      this.reoAt = Infinity;
    } else if (restartTimer || this.rtoAt === Infinity) this.rtoAt = now + this.rtt.rto();
  }

  /** RFC 5681 §3.2 / RFC 6582 (peers without SACK): a duplicate ACK. */
  private dupAck(ack: number): void {
    this.dupAcks++;
    if (this.cc.inRecovery) {
      // RFC 5681 §3.2 step 4: inflate cwnd by one segment per duplicate.
      this.cc.onDupAckInRecovery();
      return;
    }
    // RFC 5681 §3.2 step 2: the third duplicate ACK triggers fast retransmit.
    if (this.dupAcks === 3 && this.cc.onThirdDupAck(ack, seqDiff(this.sndMax, this.sndUna), this.sndMax)) {
      this.stats.fastRetransmits++;
      const head = this.sb.first();
      if (head !== undefined) this.sb.markLost(head);
      this.forcedRtx = 1;
      this.rttTiming = false;
    }
  }

  /**
   * Loss detection for SACK peers, after the cumulative ACK was taken:
   * SACK blocks into the scoreboard (RFC 2018, D-SACK per RFC 2883), end of
   * recovery, RACK's reordering window and loss marking (RFC 8985 §6.2),
   * the TLP episode (§7.4), and the start of fast recovery (RFC 6675 §5).
   */
  private sackAck(now: number, seg: TcpRepr, ack: number, acked: number): void {
    let dsack = false;
    const blocks = seg.sackBlocks;
    if (blocks !== undefined && blocks.length > 0) {
      const echo = this.echoMs(seg);
      for (let i = 0; i < blocks.length; i++) {
        const l = blocks[i][0] >>> 0;
        const r = blocks[i][1] >>> 0;
        if (!seqLt(l, r)) continue;
        // RFC 2883 §4: the first block reports a duplicate when it lies below
        // the cumulative ACK or inside the second block.
        if (i === 0 && (seqLe(r, ack) || (blocks.length > 1 && seqGe(l, blocks[1][0] >>> 0) && seqLe(r, blocks[1][1] >>> 0)))) {
          dsack = true;
          this.lossStats.dsacks++;
          continue;
        }
        // Ignore nonsense and anything beyond what we sent.
        if (seqLe(r, this.sndUna) || seqGt(r, this.sndMax)) continue;
        this.sb.sack(seqMax(l, this.sndUna), r, (rec) => this.rack.onDelivered(rec, now, echo));
      }
    }
    // RFC 2018 §8: the peer may drop data it SACKed; a cumulative ACK that
    // stops exactly at a SACKed segment says it did. Resend all of it.
    const head = this.sb.first();
    if (head !== undefined && head.sacked && head.start === this.sndUna) this.sb.renege();

    let exited = false;
    if (this.cc.inRecovery && seqGe(this.sndUna, this.cc.recover)) {
      // RFC 6675 §5: a cumulative ACK covering RecoveryPoint ends recovery.
      this.cc.exitRecovery();
      exited = true;
    }
    if (this.rtoRecovery && seqGe(this.sndUna, this.cc.recover)) {
      this.rtoRecovery = false;
      exited = true;
    }
    this.rack.updateReoWnd(dsack, this.sndUna, this.sndMax, exited);
    this.tlpAck(ack, acked, dsack, seg);
    this.rackDetect(now);
  }

  /** RFC 8985 §6.2 step 5, and the start of recovery when it finds losses. */
  private rackDetect(now: number): void {
    const recovering = this.cc.inRecovery || this.rtoRecovery;
    const reoWnd = this.rack.reoWnd(recovering, this.sb.sackedSegs, this.rtt.srtt);
    let marked = 0;
    const wait = this.rack.detectLoss(this.sb, now, reoWnd, () => marked++);
    // RFC 8985 §6.3: the reordering timer fires when the oldest undecided
    // segment's window passes.
    this.reoAt = wait > 0 ? now + wait : Infinity;
    if (marked === 0) return;
    this.lossStats.rackLost += marked;
    if (!recovering && this.cc.enterRecovery(seqDiff(this.sndMax, this.sndUna), this.sndMax)) {
      // RFC 6675 §5 step 4.3: the first loss goes out at once.
      this.stats.fastRetransmits++;
      this.forcedRtx = 1;
      this.rttTiming = false;
      this.tlpAt = Infinity;
    }
  }

  /**
   * RFC 8985 §7.4 (TLP_process_ack): once the probe is acknowledged, decide
   * whether it repaired a loss (then reduce cwnd once) or both the original
   * and the probe arrived (D-SACK, or a pure duplicate ACK: no loss).
   */
  private tlpAck(ack: number, acked: number, dsack: boolean, seg: TcpRepr): void {
    const end = this.tlpEndSeq;
    if (end === undefined || seqLt(ack, end)) return;
    if (!this.tlpIsRetrans || dsack) {
      this.tlpEndSeq = undefined;
    } else if (seqGt(ack, end)) {
      // The ACK moved past the probe without a D-SACK: the probe filled a hole.
      this.tlpEndSeq = undefined;
      this.lossStats.tlpRepairs++;
      this.cc.onProbeRepairedLoss();
    } else if (acked === 0 && seg.payload.length === 0 && (seg.sackBlocks === undefined || seg.sackBlocks.length === 0)) {
      this.tlpEndSeq = undefined;
    }
  }

  /** RFC 9293 §3.10.7.4 (seventh): segment text in ESTABLISHED / FIN-WAIT-1 / FIN-WAIT-2. */
  private processData(now: number, seq: number, payload: Buffer): void {
    const wnd = Math.max(0, seqDiff(this.rcvAdvRight, this.rcvNxt));
    const off = seqDiff(seq, this.rcvNxt);
    if (payload.length > this.rcvMss) this.rcvMss = Math.min(payload.length, this.mss);
    if (off > 0) {
      // Ahead of RCV.NXT: hold it (bounded by the window) and send a
      // duplicate ACK at once, with SACK blocks (RFC 5681 §4.2, RFC 2018 §4).
      this.stats.outOfOrder++;
      this.asm.insert(this.rcvNxt, seq, payload, wnd);
      this.ackNow = true;
      return;
    }
    // Trim what we already have (a retransmission overlapping RCV.NXT) and
    // what lies beyond the window ("segments ... trimmed to the window").
    const start = -off;
    const end = Math.min(payload.length, start + wnd);
    if (start > 0 || end < payload.length) this.ackNow = true;
    // RFC 2883: the part we already had goes back as a D-SACK.
    if (start > 0 && this.sackOk) this.dsackOut = [seq, seqAdd(seq, Math.min(start, payload.length))];
    if (end <= start) return;
    const hadHoles = !this.asm.isEmpty;
    // No copy here: the app gets a view valid during onData only (TcpHost
    // copies it into its write arena). A copy per segment was one fresh
    // ArrayBuffer per 64 KiB, and V8 answers that external memory with a
    // major GC every few milliseconds at a few Gbit/s.
    this.deliver(payload.subarray(start, end));
    if (this.isClosed()) return;
    if (hadHoles) {
      for (let b = this.asm.pop(this.rcvNxt); b !== undefined; b = this.asm.pop(this.rcvNxt)) {
        this.deliver(b);
        if (this.isClosed()) return;
      }
      // RFC 5681 §4.2: ACK at once when a segment fills (part of) a gap.
      this.ackNow = true;
    }
    // RFC 5681 §4.2 / RFC 1122 §4.2.3.2: ACK at least every second
    // full-sized segment; otherwise delay (dispatch at the end of the I/O
    // batch coalesces the rest).
    this.ackPendingBytes += end - start;
    if (this.ackPendingBytes >= 2 * this.rcvMss) this.ackNow = true;
    else if (this.delayedAckAt === Infinity) this.delayedAckAt = now + this.delayedAckMs;
  }

  private deliver(data: Buffer): void {
    this.rcvNxt = seqAdd(this.rcvNxt, data.length);
    this.unconsumed += data.length;
    this.stats.bytesIn += data.length;
    this.events.onData(data);
  }

  /** RFC 9293 §3.10.7.4 (eighth): the peer's FIN, now in order. */
  private processFin(now: number): void {
    this.rcvNxt = seqAdd(this.rcvNxt, 1);
    this.rcvFinSeq = undefined;
    this.ackNow = true;
    this.asm.clear();
    this.move('rcv-fin', now);
    if (!this.eofDelivered) {
      this.eofDelivered = true;
      this.events.onEof();
    }
  }

  // ======================================================================
  // State changes
  // ======================================================================

  /** Applies the transition table; side effects of entering a state live here. */
  private move(event: TcpEvent, now: number): void {
    const next = transition(this.state, event);
    if (next === undefined) return;
    this.state = next;
    switch (next) {
      case TcpState.TimeWait:
        // RFC 9293 §3.10.7.4: (re)start the 2*MSL timer; nothing else is timed.
        this.closeTimerAt = now + this.timeWaitMs;
        this.rtoAt = Infinity;
        this.persistAt = Infinity;
        break;
      case TcpState.FinWait2:
        this.closeTimerAt = now + this.finWait2TimeoutMs;
        break;
      case TcpState.Closed:
        this.rtoAt = this.persistAt = this.delayedAckAt = this.closeTimerAt = Infinity;
        this.ackNow = false;
        this.forcedRtx = 0;
        this.tlpDue = false;
        this.tlpAt = this.reoAt = Infinity;
        this.asm.clear();
        break;
      default:
    }
  }

  /** A method, not a field test, so TypeScript does not narrow `state` across app callbacks. */
  private isClosed(): boolean {
    return this.state === TcpState.Closed;
  }

  private giveUp(reason: TcpResetReason, now: number): void {
    if (isSynchronized(this.state) || this.state === TcpState.SynReceived) {
      this.queueCtl(this.bareSeg(RST | ACK, this.acceptableSeq(), this.rcvNxt));
    }
    this.events.onReset(reason);
    if (!this.isClosed()) this.move('reset', now);
  }
}
