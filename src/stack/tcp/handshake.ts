// src/stack/tcp/handshake.ts — opening a connection (RFC 9293 §3.5): the
// options both SYNs negotiate, our SYN or SYN-ACK, and the segments that
// arrive before the connection is synchronized.
//
// Read this first: a passive connection is born in LISTEN holding the
// guest's SYN (initPassive) and answers only once tsnet's host socket has
// connected (accept → SYN-RECEIVED, sendSyn emits the SYN-ACK). An active
// one (port forwarding) starts in SYN-SENT and sendSyn emits the SYN. Either
// way sendSyn runs whenever SND.NXT is back at ISS: first time, after an RTO,
// or when the guest's retransmitted SYN shows our SYN-ACK was lost.

import { TcpFlags, TcpRepr } from '../../wire/tcp.js';
import { rttSample } from './recovery.js';
import { seqAdd, seqGt, seqLe, seqLt } from './seq.js';
import { TcpState } from './state.js';
import { DEFAULT_PEER_MSS, EMPTY, MAX_WSCALE, MIN_SND_MSS, type Tcb } from './tcb.js';
import { ackSent } from './receiver.js';
import { noteRetransmit, startClose } from './sender.js';

const { SYN, RST, ACK } = TcpFlags;

/** Passive open: the guest's SYN, held in LISTEN until accept(). */
export function initPassive(t: Tcb, syn: TcpRepr): void {
  takeSyn(t, syn);
}

/**
 * The peer's SYN synchronizes the receive side: IRS and RCV.NXT, the
 * options, and (RFC 9293 §3.10.7.2-3) SND.WND from the SYN's window, never
 * scaled (RFC 7323 §2.2).
 */
function takeSyn(t: Tcb, syn: TcpRepr): void {
  t.irs = syn.seq | 0;
  t.rcvNxt = seqAdd(t.irs, 1);
  t.rcvAdvRight = t.rcvNxt;
  t.lastAckSent = t.rcvNxt;
  takeSynOptions(t, syn);
  t.sndWnd = syn.window;
  t.maxSndWnd = Math.max(t.maxSndWnd, syn.window);
  t.sndWl1 = t.irs;
}

function takeSynOptions(t: Tcb, syn: TcpRepr): void {
  // RFC 9293 §3.7.1: the peer's MSS bounds what we send; 536 if absent.
  const peerMss = syn.mss ?? DEFAULT_PEER_MSS;
  t.sndMss = Math.max(Math.min(MIN_SND_MSS, t.mss), Math.min(t.mss, peerMss));
  // RFC 7323 §2.2: window scaling only if both SYNs carry the option; the
  // peer's shift applies to the windows it sends us (capped at 14, §2.3).
  t.peerWsOffered = syn.windowScale !== undefined;
  if (t.peerWsOffered) {
    t.sndShift = Math.min(MAX_WSCALE, syn.windowScale!);
  } else {
    t.sndShift = 0;
    t.rcvShift = 0;
  }
  // RFC 2018 §2: SACK is used only if the peer's SYN said SACK-permitted.
  t.sackOk = syn.sackPermitted;
  // RFC 7323 §3.2: timestamps only if the SYN carried them; TS.Recent is
  // the SYN's TSval.
  t.tsOk = syn.tsVal !== undefined;
  if (t.tsOk) t.tsRecent = syn.tsVal!;
  t.cc.setMss(t.maxPayload());
}

/** SYN-SENT or SYN-RECEIVED with SND.NXT at ISS: our SYN (or SYN-ACK) is due. */
export function synDue(t: Tcb): boolean {
  return (t.state === TcpState.SynSent || t.state === TcpState.SynReceived) && t.sndNxt === t.iss;
}

/** Emits our SYN (SYN-SENT) or SYN-ACK (SYN-RECEIVED), first time or again. */
export function sendSyn(t: Tcb, now: number): void {
  const synAck = t.state === TcpState.SynReceived;
  const retransmit = t.synRetries > 0 || seqGt(t.sndMax, t.iss);
  const repr = new TcpRepr({
    srcPort: t.localPort,
    dstPort: t.remotePort,
    seq: t.iss,
    ack: synAck ? t.rcvNxt : 0,
    flags: synAck ? SYN | ACK : SYN,
    // RFC 7323 §2.2: the window in a SYN or SYN-ACK is never scaled.
    window: Math.min(t.rcvBufSize, 0xffff),
    urgent: 0,
    payload: EMPTY,
  });
  repr.mss = t.mss;
  if (!synAck || t.peerWsOffered) repr.windowScale = t.rcvShift;
  // RFC 2018 §2: SACK-permitted in our SYN; in a SYN-ACK only if the peer offered it.
  repr.sackPermitted = synAck ? t.sackOk : true;
  if (!synAck || t.tsOk) {
    repr.tsVal = t.tsNow(now);
    // RFC 7323 §3.2: TSecr is 0 in a SYN (ACK bit off).
    repr.tsEcr = synAck ? t.tsRecent : 0;
  }
  if (synAck) t.rcvAdvRight = seqAdd(t.rcvNxt, repr.window);
  t.send1(repr, EMPTY);
  if (synAck) ackSent(t);
  if (retransmit) noteRetransmit(t, now);
  else {
    t.rttTiming = true;
    t.rttSeq = t.iss;
    t.rttTime = now;
  }
  t.sndNxt = seqAdd(t.iss, 1);
  t.sndMax = t.sndNxt;
  // RFC 6298 §5.1: start the timer if it is not running.
  if (t.timers.rto === Infinity) t.timers.rto = now + t.rtt.rto();
}

/** Waiting for accept(): absorb retransmitted SYNs; honour the guest's RST. */
export function processListen(t: Tcb, now: number, seg: TcpRepr): void {
  // The guest aborted its connect (its RST carries SEQ = its SND.NXT).
  if (seg.flags & RST && seg.seq === t.rcvNxt) t.reset(now, 'peer-reset', false);
  // A retransmitted SYN (same ISS) is absorbed; anything else waits too.
}

/** RFC 9293 §3.10.7.3: SYN-SENT. */
export function processSynSent(t: Tcb, now: number, seg: TcpRepr): void {
  const f = seg.flags;
  // First, the ACK bit: it must acknowledge our SYN (ISS < SEG.ACK ≤ SND.NXT).
  if (f & ACK) {
    if (seqLe(seg.ack, t.iss) || seqGt(seg.ack, t.sndMax)) {
      // Unacceptable: <SEQ=SEG.ACK><CTL=RST> unless it is itself a RST.
      if (!(f & RST)) t.queueCtl(t.bareSeg(RST, seg.ack, 0));
      return;
    }
  }
  // Second, RST: with an acceptable ACK the guest refused us (RFC 5961 §3
  // keeps this check for SYN-SENT); without an ACK it is dropped.
  if (f & RST) {
    if (f & ACK) t.reset(now, 'refused', false);
    return;
  }
  // Fourth, SYN.
  if (!(f & SYN)) return;
  takeSyn(t, seg);
  t.sndWl2 = seg.ack;
  if (f & ACK) {
    // Our SYN is acknowledged: ESTABLISHED, ACK the peer's SYN.
    synAcked(t, now, seg);
    t.move('rcv-syn-ack', now);
    t.ackNow = true;
    established(t, now);
    // Data carried by a SYN-ACK is not taken; it will be retransmitted.
  } else {
    // Simultaneous open: SYN-RECEIVED, answer with SYN,ACK (same ISS).
    t.move('rcv-syn', now);
    t.sndNxt = t.iss;
    t.timers.rto = Infinity;
  }
}

/**
 * SYN-RECEIVED, RFC 9293 §3.10.7.4 (fifth, ACK): SND.UNA < SEG.ACK ≤
 * SND.NXT moves us to ESTABLISHED; any other ACK is answered
 * <SEQ=SEG.ACK><CTL=RST> and dropped (returns false).
 */
export function processAckOfSyn(t: Tcb, now: number, seg: TcpRepr): boolean {
  if (!(seqLt(t.sndUna, seg.ack) && seqLe(seg.ack, t.sndMax))) {
    t.queueCtl(t.bareSeg(RST, seg.ack, 0));
    return false;
  }
  synAcked(t, now, seg);
  // "SND.WND <- SEG.WND, SND.WL1 <- SEG.SEQ, SND.WL2 <- SEG.ACK" (now scaled).
  t.sndWnd = seg.window * (1 << t.sndShift);
  t.maxSndWnd = Math.max(t.maxSndWnd, t.sndWnd);
  t.sndWl1 = seg.seq | 0;
  t.sndWl2 = seg.ack;
  t.move('rcv-ack-of-syn', now);
  established(t, now);
  return true;
}

/** Our SYN (at ISS) was acknowledged. */
function synAcked(t: Tcb, now: number, seg: TcpRepr): void {
  t.sndUna = seqAdd(t.iss, 1);
  if (seqLt(t.sndNxt, t.sndUna)) t.sndNxt = t.sndUna;
  rttSample(t, now, seg, t.sndUna);
  t.timers.rto = Infinity;
  t.synRetries = 0;
  t.retries = 0;
}

/** ESTABLISHED reached: tell the app, and send the FIN a close() deferred. */
function established(t: Tcb, now: number): void {
  t.events.established();
  if (t.state === TcpState.Established && t.closeDeferred) {
    t.closeDeferred = false;
    startClose(t, now);
  }
}
