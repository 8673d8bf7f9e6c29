// src/stack/tcp/receiver.ts — the receiving half: which segments are
// acceptable, the peer's data and FIN in order, the window we offer, and
// what every segment we send reports back (ACK, window, timestamps, SACK).
//
// Read this first:
// - In-order data is queued for the app as it arrives (a view of the frame,
//   no copy); out-of-order data waits in the Assembler, bounded by the window.
// - Window: what the app has not consumed yet is held against rcvBufSize (and
//   the owner's shared limit); the right edge we advertise never moves left
//   (RFC 9293 §3.8.6.2.1) and grows only by worthwhile amounts (receiver SWS
//   avoidance, §3.8.6.2.2).
// - ACK policy (RFC 5681 §4.2): at once for out-of-order data, gap fills,
//   trimmed or unacceptable segments and FINs; every second full-sized
//   segment; else after delayedAckMs (the timer in timers.ts).

import { TcpFlags, TcpRepr } from '../../wire/tcp.js';
import { inWindow, seqAdd, seqDiff, seqGe, seqLe } from './seq.js';
import { acceptsData, isSynchronized, TcpState } from './state.js';
import { TS_OPT_LEN, type Tcb } from './tcb.js';
import { idiv, idivCeil } from '../numbers.js';

const { FIN } = TcpFlags;

/** RFC 5961 §7: challenge ACKs are rate limited; at most this many per second per connection. */
const CHALLENGE_ACK_LIMIT = 10;

/**
 * RFC 9293 §3.10.7.4, first check: is the segment in our window? If not,
 * arranges the reply the RFC asks for (an ACK, unless it is a RST; a
 * D-SACK for a duplicate; TIME-WAIT restarted by a retransmitted FIN) and
 * returns false.
 */
export function acceptable(t: Tcb, now: number, seg: TcpRepr): boolean {
  const seq = seg.seq | 0;
  const segLen = seg.seqLen();
  const wnd = Math.max(0, seqDiff(t.rcvAdvRight, t.rcvNxt));
  let ok: boolean;
  if (segLen === 0) {
    // RFC 9293 says RCV.NXT ≤ SEG.SEQ < RCV.NXT+RCV.WND; like Linux
    // (tcp_sequence) we also take SEG.SEQ = RCV.NXT+RCV.WND: it is what a
    // peer that filled our window sends in a pure ACK while some of that
    // data is still missing here, and dropping it would lose its ACK.
    ok = wnd === 0 ? seq === t.rcvNxt : inWindow(seq, t.rcvNxt, wnd + 1);
  } else if (wnd === 0) {
    // RFC 9293 §3.10.7.4: with a zero window no segment is acceptable, but
    // "special allowance should be made to accept valid ACKs, URGs, and
    // RSTs": a segment exactly at RCV.NXT is let through for its control
    // information, and its data is trimmed away in processData().
    ok = seq === t.rcvNxt;
  } else {
    ok = inWindow(seq, t.rcvNxt, wnd) || inWindow(seqAdd(seq, segLen - 1), t.rcvNxt, wnd);
  }
  if (ok) return true;
  // "If an incoming segment is not acceptable, an acknowledgment should be
  // sent in reply (unless the RST bit is set)", and the segment dropped.
  if (!(seg.flags & TcpFlags.RST)) {
    t.ackNow = true;
    const payloadLen = seg.payload.length;
    // RFC 2883: report a duplicate of data we already have as a D-SACK.
    if (t.sackOk && payloadLen > 0 && seqLe(seqAdd(seq, payloadLen), t.rcvNxt)) {
      t.dsackOut = [seq, seqAdd(seq, payloadLen)];
    }
    // RFC 9293 §3.10.7.4 (TIME-WAIT): a retransmitted FIN restarts 2*MSL.
    if (t.state === TcpState.TimeWait && seg.flags & FIN) t.timers.close = now + t.timeWaitMs;
  }
  return false;
}

/** RFC 5961 §7: a rate-limited challenge ACK. */
export function challengeAck(t: Tcb, now: number): void {
  if (now - t.challengeWindowStart >= 1000) {
    t.challengeWindowStart = now;
    t.challengeCount = 0;
  }
  if (t.challengeCount < CHALLENGE_ACK_LIMIT) {
    t.challengeCount++;
    t.ackNow = true;
  }
}

/** RFC 7323 §4.3: TS.Recent follows the peer's clock, from segments covering the left edge of our window. */
export function updateTsRecent(t: Tcb, seg: TcpRepr): void {
  if (t.tsOk && seg.tsVal !== undefined && seqLe(seg.seq | 0, t.lastAckSent) && seqGe(seg.tsVal, t.tsRecent)) {
    t.tsRecent = seg.tsVal;
  }
}

/**
 * RFC 9293 §3.10.7.4, seventh and eighth: segment text and FIN (the
 * segment passed every earlier check).
 */
export function processText(t: Tcb, now: number, seg: TcpRepr): void {
  const seq = seg.seq | 0;
  const payloadLen = seg.payload.length;
  if (payloadLen > 0) {
    if (acceptsData(t.state)) processData(t, now, seq, seg.payload);
    // Data after the peer's FIN: nothing to do but acknowledge.
    else t.ackNow = true;
  }
  if (seg.flags & FIN && acceptsData(t.state)) {
    const finAt = seqAdd(seq, payloadLen);
    // A FIN needs no buffer space: accept it up to the window's right edge.
    if (seqLe(finAt, t.rcvAdvRight) && seqGe(finAt, t.rcvNxt)) t.rcvFinSeq = finAt;
    // Out of order (or outside the window): say at once what we have.
    if (t.rcvFinSeq !== t.rcvNxt) t.ackNow = true;
  }
  if (t.rcvFinSeq !== undefined && t.rcvFinSeq === t.rcvNxt && acceptsData(t.state)) processFin(t, now);
}

/** Segment text in ESTABLISHED / FIN-WAIT-1 / FIN-WAIT-2 (and SYN-RECEIVED on its way out). */
function processData(t: Tcb, now: number, seq: number, payload: Buffer): void {
  const wnd = Math.max(0, seqDiff(t.rcvAdvRight, t.rcvNxt));
  const off = seqDiff(seq, t.rcvNxt);
  if (payload.length > t.rcvMss) t.rcvMss = Math.min(payload.length, t.mss);
  if (off > 0) {
    // Ahead of RCV.NXT: hold it (bounded by the window) and send a
    // duplicate ACK at once, with SACK blocks (RFC 5681 §4.2, RFC 2018 §4).
    t.stats.outOfOrder++;
    t.asm.insert(t.rcvNxt, seq, payload, wnd);
    t.ackNow = true;
    return;
  }
  // Trim what we already have (a retransmission overlapping RCV.NXT) and
  // what lies beyond the window ("segments ... trimmed to the window").
  // 0 - off, not -off: for off 0 that is -0, a heap number, and the sums
  // below would turn ackPendingBytes into a double (src/stack/numbers.ts).
  const start = 0 - off;
  const end = Math.min(payload.length, start + wnd);
  if (start > 0 || end < payload.length) t.ackNow = true;
  // RFC 2883: the part we already had goes back as a D-SACK.
  if (start > 0 && t.sackOk) t.dsackOut = [seq, seqAdd(seq, Math.min(start, payload.length))];
  if (end <= start) return;
  const hadHoles = !t.asm.isEmpty;
  // No copy here: the app gets a view valid during onData only (TcpHost
  // copies it into its write arena). A copy per segment was one fresh
  // ArrayBuffer per 64 KiB, and V8 answers that external memory with a
  // major GC every few milliseconds at a few Gbit/s.
  deliver(t, payload.subarray(start, end));
  if (hadHoles) {
    for (let b = t.asm.pop(t.rcvNxt); b !== undefined; b = t.asm.pop(t.rcvNxt)) deliver(t, b);
    // RFC 5681 §4.2: ACK at once when a segment fills (part of) a gap.
    t.ackNow = true;
  }
  // RFC 5681 §4.2 / RFC 1122 §4.2.3.2: ACK at least every second
  // full-sized segment; otherwise delay (dispatch at the end of the I/O
  // batch coalesces the rest).
  t.ackPendingBytes += end - start;
  t.rcvLastShort = end - start < t.rcvMss;
  if (t.ackPendingBytes >= 2 * t.rcvMss) t.ackNow = true;
  else if (t.timers.delAck === Infinity) t.timers.delAck = now + t.delayedAckMs;
}

function deliver(t: Tcb, data: Buffer): void {
  t.rcvNxt = seqAdd(t.rcvNxt, data.length);
  t.unconsumed += data.length;
  t.stats.bytesIn += data.length;
  t.events.received(data);
}

/**
 * The peer's FIN, now in order. In ESTABLISHED (the peer closes first) its
 * ACK is delayed, as Linux does (tcp_fin: pingpong mode): the app usually
 * closes at once, and our FIN then carries the ACK — one frame instead of
 * two per connection. Otherwise (we closed first) it is acknowledged now.
 */
function processFin(t: Tcb, now: number): void {
  t.rcvNxt = seqAdd(t.rcvNxt, 1);
  t.rcvFinSeq = undefined;
  if (t.state === TcpState.Established && t.asm.isEmpty) {
    if (t.timers.delAck === Infinity) t.timers.delAck = now + t.delayedAckMs;
  } else {
    t.ackNow = true;
  }
  t.asm.clear();
  t.move('rcv-fin', now);
  if (!t.eofDelivered) {
    t.eofDelivered = true;
    t.events.eof();
  }
}

/**
 * The app passed n bytes on: they no longer hold the window. A window
 * update is owed when the window it can announce grew by a worthwhile
 * amount — 2*MSS, or half the buffer when the buffer is small (RFC 9293
 * §3.8.6.2.2) — and the peer may be short of room: with WINDOW_ROOM_MSS
 * full segments or more still open — or one, when its last segment was
 * short (it had no more to send) — it is not waiting for us, and the larger
 * window rides on our next segment (the ACK its next data draws, or our
 * reply). That spares a bare ACK per short connection: the first one
 * announcing the scaled window after the 64 KiB a SYN-ACK can say.
 */
export function consumed(t: Tcb, n: number, recheck: boolean): void {
  if (n <= 0 && !recheck) return;
  t.unconsumed = Math.max(0, t.unconsumed - n);
  if (!isSynchronized(t.state) || !acceptsData(t.state)) return;
  const adv = Math.max(0, seqDiff(t.rcvAdvRight, t.rcvNxt));
  // What the window field can express at most (65535 << our shift).
  const avail = Math.min(rcvAvail(t), 0xffff * (1 << t.rcvShift));
  if (avail - adv < Math.min(2 * t.mss, t.rcvBufSize * 0.5)) return; // not worth announcing (SWS avoidance)
  if (adv >= Math.min(WINDOW_ROOM_MSS * t.mss, t.rcvBufSize * 0.5)) return; // the peer has room
  // A peer whose last segment was short sent what it had, not what the
  // window allowed; while a full segment still fits it is not waiting for
  // us either. At MTU 65520 the SYN-ACK's 64 KiB is one segment: without
  // this, every request on a fresh connection drew a bare window update
  // ahead of the reply.
  if (t.rcvLastShort && adv >= t.rcvMss) return;
  t.ackNow = true;
}

/** Full segments of open window at which a peer is not waiting for a window update (see consumed()). */
const WINDOW_ROOM_MSS = 4;

/** Receive buffer space not taken by data the app still holds (within the shared limit). */
function rcvAvail(t: Tcb): number {
  const limit = t.windowLimit ? Math.min(t.rcvBufSize, t.windowLimit(t.unconsumed)) : t.rcvBufSize;
  return Math.max(0, limit - t.unconsumed);
}

/** The (scaled) window field for the next segment; records the right edge it advertises. */
function windowField(t: Tcb): number {
  const cur = Math.max(0, seqDiff(t.rcvAdvRight, t.rcvNxt));
  const avail = rcvAvail(t);
  let wnd = cur;
  // RFC 9293 §3.8.6.2.2 (receiver SWS avoidance): move the right edge only
  // when the window can grow by min(buffer/2, MSS).
  if (avail - cur >= Math.min(t.rcvBufSize * 0.5, t.mss)) wnd = avail;
  const shift = t.rcvShift;
  const unit = 1 << shift;
  let field = idiv(wnd, unit);
  // RFC 9293 §3.8.6.2.1 / RFC 7323 §2.4: never retract the right edge —
  // round up when scaling would cut into the window already offered.
  if (field * unit < cur) field = idivCeil(cur, unit);
  if (field > 0xffff) field = 0xffff;
  t.rcvAdvRight = seqAdd(t.rcvNxt, field * unit);
  return field;
}

/** SACK blocks are due in our segments: out-of-order data held, or a D-SACK owed. */
function sacking(t: Tcb): boolean {
  return t.sackOk && (!t.asm.isEmpty || t.dsackOut !== undefined);
}

/** Option bytes on a data segment we send now (timestamps, SACK blocks). */
export function dataOptionsLen(t: Tcb): number {
  let n = t.tsOk ? TS_OPT_LEN : 0;
  if (sacking(t)) {
    const blocks = Math.min(t.asm.pieceCount + (t.dsackOut ? 1 : 0), t.tsOk ? 3 : 4);
    n += 4 + 8 * blocks;
  }
  return n;
}

/** Builds and emits a segment carrying our ACK, window and options (and data/FIN as given). */
export function emitSegment(t: Tcb, now: number, flags: number, seq: number, payload: Buffer): void {
  const repr = new TcpRepr({
    srcPort: t.localPort,
    dstPort: t.remotePort,
    seq,
    ack: t.rcvNxt,
    flags,
    window: windowField(t),
    urgent: 0,
    payload,
  });
  if (t.tsOk) {
    // RFC 7323 §3.2: TSopt in every non-RST segment once negotiated, echoing TS.Recent.
    repr.tsVal = t.tsNow(now);
    repr.tsEcr = t.tsRecent;
  }
  if (sacking(t)) {
    // RFC 2018 §4: report the out-of-order data we hold (3 blocks fit next
    // to timestamps); RFC 2883 §4: a D-SACK block goes first, once.
    const max = t.tsOk ? 3 : 4;
    const d = t.dsackOut;
    t.dsackOut = undefined;
    const blocks = t.asm.isEmpty ? [] : t.asm.sackBlocks(t.rcvNxt, d ? max - 1 : max);
    repr.sackBlocks = d ? [d, ...blocks] : blocks;
  }
  t.send1(repr, payload);
  ackSent(t);
}

/** A segment carrying our current ACK went out: nothing is owed any more. */
export function ackSent(t: Tcb): void {
  t.ackNow = false;
  t.timers.delAck = Infinity;
  t.ackPendingBytes = 0;
  t.lastAckSent = t.rcvNxt;
}
