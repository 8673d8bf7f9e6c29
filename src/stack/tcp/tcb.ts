// src/stack/tcp/tcb.ts — the transmission control block: every variable of
// one TCP connection (RFC 9293 §3.3.1), and the few primitives all parts of
// the engine share.
//
// Read this first:
// - tsnet is the guest's TCP peer. "local" is tsnet's side, "remote" the
//   guest. Nothing here touches sockets, timers or clocks: time is passed in.
// - The engine is this block plus the files that act on it, as Linux splits
//   struct tcp_sock from tcp_input.c / tcp_output.c / tcp_timer.c:
//   handshake.ts (opening), receiver.ts (the peer's data and FIN, our
//   window, what our ACKs report), sender.ts (our data, retransmissions,
//   probes), recovery.ts (the peer's ACKs: RTT, congestion, loss detection),
//   timers.ts (deadlines and what happens when one passes). connection.ts is
//   the facade the flow table uses, and walks an arriving segment through
//   RFC 9293 §3.10.7's steps.
// - Sequence space: SND.UNA ≤ SND.NXT ≤ sndMax. sndMax is the highest
//   sequence number ever sent; SND.NXT is where new transmission resumes.
//   The send buffer holds [SND.UNA, SND.UNA + length); our FIN, once the app
//   closed, sits at finSeq = the end of that data.
// - Receive space: RCV.NXT, and rcvAdvRight, the right window edge we last
//   advertised (never moved left, RFC 9293 §3.8.6.2.1).
// - Every state change goes through move() (the table in state.ts), every
//   abnormal end through reset(), every segment out through send1().

import { TcpFlags, TcpRepr } from '../../wire/tcp.js';
import type { MemoryBudget } from '../budget.js';
import { Assembler } from './assembler.js';
import { NewReno } from './congestion.js';
import { TcpEventQueue, type TcpResetReason } from './events.js';
import { Rack } from './rack.js';
import { RttEstimator } from './rtt.js';
import { Scoreboard } from './scoreboard.js';
import { SendBuffer } from './send-buffer.js';
import { seqAdd, seqGt } from './seq.js';
import { TcpState, isSynchronized, transition, type TcpEvent } from './state.js';
import { DOUBLE_ZERO } from '../numbers.js';

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
  /**
   * The largest segment (options and payload) to build when the link cuts
   * segments at the peer's MSS for us (TSO); default: no larger than the MSS.
   */
  segmentMax?: number;
}

/** A segment for the guest; `repr.payload === payload`, ports filled. */
export interface TcpSegmentOut {
  repr: TcpRepr;
  payload: Buffer;
  /**
   * 0, or the payload bytes per wire segment when this one carries more than
   * the peer's MSS allows (it was built for the link to cut: segmentMax).
   */
  gsoSize: number;
}

export type TcpEmit = (seg: TcpSegmentOut, now: number) => void;

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
export const MIN_SND_MSS = 48;
/** RFC 7323 §2.3: shift counts above 14 are treated as 14. */
export const MAX_WSCALE = 14;
/** RFC 7323 §3.2: the Timestamps option takes 10 bytes, 12 with the NOPs before it. */
export const TS_OPT_LEN = 12;
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
/** RFC 5681 §4.2 / RFC 1122 §4.2.3.2: an ACK delay MUST be under 0.5 s; we use 10 ms by default. */
const DEFAULT_DELAYED_ACK_MS = 10;
const DEFAULT_MAX_SYNACK_RETRIES = 5;
/** Linux tcp_retries2. */
const DEFAULT_MAX_RETRIES = 15;
/** Pending control segments (RSTs) are capped; more are simply not sent. */
const MAX_CTL_QUEUE = 4;

export const EMPTY = Buffer.alloc(0);
const { RST, ACK } = TcpFlags;

/** RFC 7323 §2.3: our shift is the smallest s with rcvBufSize >> s ≤ 65535, at most 14. */
export function windowShiftFor(rcvBufSize: number): number {
  let s = 0;
  // floor(floor(x / 2) / 2) = floor(x / 4): halving step by step is floor(x / 2^s).
  for (let v = Math.floor(rcvBufSize); s < MAX_WSCALE && v > 0xffff; s++) v = Math.floor(v / 2);
  return s;
}

/** A connection's deadlines (absolute ms, Infinity = off). Keep-alive is computed (timers.ts). */
export class TcpTimers {
  /** Retransmission timeout (RFC 6298). */
  rto = Infinity;
  /** Tail loss probe timeout (RFC 8985 §7.2). */
  tlp = Infinity;
  /** RACK reordering timer (RFC 8985 §6.3). */
  reo = Infinity;
  /** Zero-window probe (RFC 9293 §3.8.6.1). */
  persist = Infinity;
  /** Delayed ACK (RFC 5681 §4.2). */
  delAck = Infinity;
  /** TIME-WAIT or FIN-WAIT-2 expiry. */
  close = Infinity;

  stopAll(): void {
    this.rto = this.tlp = this.reo = this.persist = this.delAck = this.close = Infinity;
  }

  earliest(): number {
    return Math.min(this.rto, this.tlp, this.reo, this.persist, this.delAck, this.close);
  }
}

export class Tcb {
  state: TcpState;
  readonly stats: TcpConnectionStats = {
    // Doubles from the start: they pass 2^31 (src/stack/numbers.ts).
    bytesIn: DOUBLE_ZERO,
    bytesOut: DOUBLE_ZERO,
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
  /** What the application has yet to hear (events.ts). */
  readonly events = new TcpEventQueue();

  // --- configuration ---
  readonly mss: number;
  readonly rcvBufSize: number;
  readonly windowLimit: ((held: number) => number) | undefined;
  readonly maxSegmentsInFlight: number;
  /** TcpConnectionConfig.segmentMax (never below mss). */
  readonly segmentMax: number;
  readonly timeWaitMs: number;
  readonly finWait2TimeoutMs: number;
  readonly keepaliveIdleMs: number;
  readonly delayedAckMs: number;
  readonly maxSynAckRetries: number;
  readonly maxRetries: number;

  // --- send sequence space (RFC 9293 §3.3.1) ---
  readonly iss: number;
  sndUna: number;
  sndNxt: number;
  sndMax: number;
  /**
   * End of the last zero-window probe byte (RFC 9293 §3.8.6.1). The probe
   * byte is not counted in sndMax — our ACKs carry SEQ = sndMax and must stay
   * acceptable to a receiver whose window is zero — but an ACK covering it
   * is valid.
   */
  probeEnd: number;
  /** Peer's window in bytes (already scaled). */
  sndWnd = 0;
  sndWl1 = 0;
  sndWl2 = 0;
  /** RFC 5961 §5.2: MAX.SND.WND, the largest window the peer has offered. */
  maxSndWnd = 0;
  /** Shift applied to the peer's window field (its window scale). */
  sndShift = 0;
  /** Max payload per segment toward the peer, before options. */
  sndMss: number;

  // --- receive sequence space ---
  irs = 0;
  rcvNxt = 0;
  rcvAdvRight = 0;
  /** Shift applied to the window field we send (our window scale). */
  rcvShift: number;
  /** Bytes given to the app and not yet consumed(). */
  unconsumed = 0;
  /** Largest segment payload seen from the peer (for "full-sized" ACK counting). */
  rcvMss: number;
  /** Sequence number of the peer's FIN, once seen (possibly out of order). */
  rcvFinSeq: number | undefined;
  eofDelivered = false;

  // --- options ---
  sackOk = false;
  tsOk = false;
  tsRecent = 0;
  lastAckSent = 0;
  readonly tsOffset: number;
  /** The peer's SYN offered window scaling (our SYN-ACK answers in kind). */
  peerWsOffered = false;

  // --- buffers ---
  readonly sendBuf: SendBuffer;
  readonly asm = new Assembler();
  finQueued = false;
  finSeq = 0;
  /** close() arrived before the handshake finished. */
  closeDeferred = false;
  sendBlocked = false;

  // --- RTT, congestion, loss recovery ---
  readonly rtt = new RttEstimator();
  readonly cc: NewReno;
  dupAcks = 0;
  rttTiming = false;
  rttSeq = 0;
  rttTime = DOUBLE_ZERO;
  /** Our TSval when we last retransmitted anything (undefined: never). */
  lastRtxTs: number | undefined;
  /** Every segment in [SND.UNA, SND.MAX) with its send time and fate. */
  readonly sb = new Scoreboard();
  readonly rack: Rack;
  /**
   * Retransmissions that may go out regardless of pipe and cwnd: the first
   * one of a recovery (RFC 6675 §5 step 4.3), NewReno's (RFC 6582 §3.2
   * steps 2 and 5) and the RTO's (RFC 6298 §5.4).
   */
  forcedRtx = 0;
  /** RFC 8985 "RTO recovery": from a timeout until SND.UNA passes cc.recover. */
  rtoRecovery = false;
  /** TLP: a probe due in output(), the PTO to be re-armed, and the episode (RFC 8985 §7.4). */
  tlpDue = false;
  tlpRearm = false;
  tlpEndSeq: number | undefined;
  tlpIsRetrans = false;
  /** Receiver side: a duplicate to report in the next ACK as a D-SACK (RFC 2883). */
  dsackOut: [number, number] | undefined;

  // --- timers ---
  readonly timers = new TcpTimers();
  persistBackoff = 0;
  lastRecvAt: number;
  lastDataSentAt = -Infinity;
  synRetries = 0;
  retries = 0;
  probesOut = 0;
  keepaliveProbes = 0;
  challengeWindowStart = -Infinity;
  challengeCount = 0;

  // --- output state ---
  ackNow = false;
  ackPendingBytes = 0;
  /**
   * The peer's last data segment was shorter than its MSS: it sent what it
   * had, not what the window allowed (receiver.ts consumed()).
   */
  rcvLastShort = false;
  ctlQueue: TcpRepr[] = [];
  closedNotified = false;
  emitFn: TcpEmit | undefined;
  /** The time of the dispatch in progress (emission happens only inside dispatch). */
  emitNow = DOUBLE_ZERO;

  constructor(
    readonly localPort: number,
    readonly remotePort: number,
    cfg: TcpConnectionConfig,
    now: number,
    state: TcpState,
  ) {
    this.state = state;
    this.mss = cfg.mss;
    this.rcvBufSize = cfg.rcvBufSize;
    this.windowLimit = cfg.windowLimit;
    this.maxSegmentsInFlight = cfg.maxSegmentsInFlight ?? Infinity;
    this.segmentMax = Math.max(cfg.mss, cfg.segmentMax ?? 0);
    this.timeWaitMs = cfg.timeWaitMs ?? DEFAULT_TIME_WAIT_MS;
    this.finWait2TimeoutMs = cfg.finWait2TimeoutMs ?? DEFAULT_FIN_WAIT2_TIMEOUT_MS;
    this.keepaliveIdleMs = cfg.keepaliveIdleMs ?? DEFAULT_KEEPALIVE_IDLE_MS;
    this.delayedAckMs = cfg.delayedAckMs ?? DEFAULT_DELAYED_ACK_MS;
    this.maxSynAckRetries = cfg.maxSynAckRetries ?? DEFAULT_MAX_SYNACK_RETRIES;
    this.maxRetries = cfg.maxRetries ?? DEFAULT_MAX_RETRIES;
    this.iss = cfg.iss | 0;
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
    this.tsOffset = this.iss ^ 0x5bd1e995;
    this.sendBuf = new SendBuffer(cfg.sndBufSize, cfg.budget, cfg.sndLimit);
    this.cc = new NewReno(this.sndMss, this.iss);
    this.lastRecvAt = now;
  }

  /** A method, not a field test, so TypeScript does not narrow `state` across calls that change it. */
  isClosed(): boolean {
    return this.state === TcpState.Closed;
  }

  /** Applies the transition table; side effects of entering a state live here. */
  move(event: TcpEvent, now: number): void {
    const next = transition(this.state, event);
    if (next === undefined) return;
    this.state = next;
    switch (next) {
      case TcpState.TimeWait:
        // RFC 9293 §3.10.7.4: (re)start the 2*MSL timer; nothing else is timed.
        this.timers.close = now + this.timeWaitMs;
        this.timers.rto = Infinity;
        this.timers.persist = Infinity;
        break;
      case TcpState.FinWait2:
        this.timers.close = now + this.finWait2TimeoutMs;
        break;
      case TcpState.Closed:
        this.quiesce();
        this.asm.clear();
        break;
      default:
    }
  }

  /** Nothing more is owed or timed (CLOSED, or the end was announced). */
  quiesce(): void {
    this.timers.stopAll();
    this.ackNow = false;
    this.forcedRtx = 0;
    this.tlpDue = false;
  }

  /**
   * Every abnormal end: answer with the reset the state calls for (when
   * `answer`), tell the application why (when `reason`), go to CLOSED.
   * - LISTEN (the guest's SYN is held, nothing was answered):
   *   <SEQ=0><ACK=SEG.SEQ+1><CTL=RST,ACK>, RFC 9293 §3.10.7.1;
   * - SYN-SENT: nothing (the peer has not synchronized with us);
   * - otherwise <SEQ=SND.NXT><CTL=RST> (RFC 9293 §3.10.5 ABORT), with the
   *   ACK added as Linux does; SND.NXT in the RFC's sense is acceptableSeq().
   */
  reset(now: number, reason: TcpResetReason | undefined, answer: boolean): void {
    const s = this.state;
    if (s === TcpState.Closed) return;
    if (answer && s === TcpState.Listen) this.queueCtl(this.bareSeg(RST | ACK, 0, this.rcvNxt));
    else if (answer && (isSynchronized(s) || s === TcpState.SynReceived)) {
      this.queueCtl(this.bareSeg(RST | ACK, this.acceptableSeq(), this.rcvNxt));
    }
    if (reason !== undefined) this.events.reset(reason);
    this.move('reset', now);
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
  acceptableSeq(): number {
    const edge = seqAdd(this.sndUna, this.sndWnd);
    return seqGt(this.sndMax, edge) ? edge : this.sndMax;
  }

  tsNow(now: number): number {
    return (Math.floor(now) + this.tsOffset) | 0;
  }

  /**
   * Max payload of a segment carrying `optLen` bytes of options: the peer's
   * MSS less the options, or with segmentation offload as much as a
   * super-segment holds (mssPayload() is then what each wire segment gets).
   */
  segPayload(optLen: number): number {
    const per = this.mssPayload(optLen);
    if (this.segmentMax <= this.mss) return per;
    // Whole wire segments only (as Linux sizes TSO frames): a super-segment
    // with a few bytes past a multiple of the MSS would leave a runt segment
    // for the kernel to send — at MTU 65520 one in every frame.
    const max = Math.max(1, this.segmentMax - optLen);
    return Math.max(per, max - (max % per));
  }

  /** Max payload per wire segment with `optLen` bytes of options. */
  mssPayload(optLen: number): number {
    return Math.max(1, this.sndMss - optLen);
  }

  /** Max payload per segment with the options every data segment carries. */
  maxPayload(): number {
    return Math.max(1, this.sndMss - (this.tsOk ? TS_OPT_LEN : 0));
  }

  bareSeg(flags: number, seq: number, ack: number): TcpRepr {
    return new TcpRepr({ srcPort: this.localPort, dstPort: this.remotePort, seq, ack, flags, window: 0, urgent: 0, payload: EMPTY });
  }

  /** A control segment (RST) for the next dispatch. */
  queueCtl(r: TcpRepr): void {
    if (this.ctlQueue.length < MAX_CTL_QUEUE) this.ctlQueue.push(r);
  }

  flushCtl(): void {
    const q = this.ctlQueue;
    if (q.length === 0) return;
    this.ctlQueue = [];
    for (const r of q) this.send1(r, EMPTY);
  }

  /** The one way out: hands a segment to the dispatch in progress. */
  send1(repr: TcpRepr, payload: Buffer): void {
    repr.payload = payload;
    this.stats.segmentsOut++;
    let gsoSize = 0;
    if (payload.length > 0 && this.segmentMax > this.mss) {
      const per = this.mssPayload(repr.bufferLen() - 20 - payload.length);
      if (payload.length > per) gsoSize = per;
    }
    this.emitFn!({ repr, payload, gsoSize }, this.emitNow);
  }
}
