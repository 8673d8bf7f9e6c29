// src/stack/tcp/state.ts — the RFC 9293 connection states and the one table
// of transitions between them.
//
// Read this first: TcpConnection never assigns a state directly; it asks
// `transition(state, event)` and gets the next state, or undefined when the
// event does not move this state (the caller then stays put). The arms below
// follow the state diagram of RFC 9293 §3.3.2 (Figure 5) and the event
// processing of §3.10, with two tsnet specifics:
// - a passive connection is born in LISTEN holding the guest's SYN, and
//   leaves it on accept() (host socket connected) or refuse();
// - close() before the handshake completes is deferred by the connection
//   until ESTABLISHED, so `close` only has arms from synchronized states.

export const TcpState = {
  Closed: 'CLOSED',
  Listen: 'LISTEN',
  SynSent: 'SYN-SENT',
  SynReceived: 'SYN-RECEIVED',
  Established: 'ESTABLISHED',
  FinWait1: 'FIN-WAIT-1',
  FinWait2: 'FIN-WAIT-2',
  CloseWait: 'CLOSE-WAIT',
  Closing: 'CLOSING',
  LastAck: 'LAST-ACK',
  TimeWait: 'TIME-WAIT',
} as const;
export type TcpState = (typeof TcpState)[keyof typeof TcpState];

export type TcpEvent =
  /** tsnet answered a pending SYN (host socket connected): SYN-ACK goes out. */
  | 'accept'
  /** Active open: SYN goes out. */
  | 'connect'
  /** A SYN-ACK acknowledging our SYN arrived. */
  | 'rcv-syn-ack'
  /** A SYN without ACK arrived while we were in SYN-SENT (simultaneous open). */
  | 'rcv-syn'
  /** The ACK of our SYN (or SYN-ACK) arrived. */
  | 'rcv-ack-of-syn'
  /** The app closed its sending side. */
  | 'close'
  /** The peer's FIN arrived in order. */
  | 'rcv-fin'
  /** The peer acknowledged our FIN. */
  | 'rcv-ack-of-fin'
  /** A timer ended the state (TIME-WAIT 2*MSL, FIN-WAIT-2 timeout). */
  | 'timeout'
  /** Abnormal end: RST received or sent, refused, retries exhausted. */
  | 'reset';

type Table = { readonly [E in TcpEvent]: Partial<Readonly<Record<TcpState, TcpState>>> };

const S = TcpState;

export const TRANSITIONS: Table = {
  accept: {
    // tsnet-specific: the guest's SYN was held in LISTEN while the host socket
    // connected; now we send SYN,ACK (RFC 9293 §3.10.7.2, LISTEN + SYN).
    [S.Listen]: S.SynReceived,
  },
  connect: {
    // RFC 9293 §3.10.1 OPEN (active): send SYN, enter SYN-SENT.
    [S.Closed]: S.SynSent,
  },
  'rcv-syn-ack': {
    // RFC 9293 §3.10.7.3: SYN-SENT, our SYN acknowledged and the peer's SYN
    // received: ESTABLISHED, send ACK.
    [S.SynSent]: S.Established,
  },
  'rcv-syn': {
    // RFC 9293 §3.10.7.3: SYN-SENT, a SYN without ACK — simultaneous open:
    // SYN-RECEIVED, send SYN,ACK.
    [S.SynSent]: S.SynReceived,
  },
  'rcv-ack-of-syn': {
    // RFC 9293 §3.10.7.4 (fifth, ACK): SYN-RECEIVED and SND.UNA < SEG.ACK =<
    // SND.NXT: ESTABLISHED.
    [S.SynReceived]: S.Established,
  },
  close: {
    // RFC 9293 §3.10.4 CLOSE: ESTABLISHED — FIN after queued data, FIN-WAIT-1.
    [S.Established]: S.FinWait1,
    // RFC 9293 §3.10.4 CLOSE: CLOSE-WAIT — FIN after queued data, LAST-ACK
    // (the peer closed first; this is our half).
    [S.CloseWait]: S.LastAck,
  },
  'rcv-fin': {
    // RFC 9293 §3.10.7.4 (eighth, FIN): SYN-RECEIVED/ESTABLISHED → CLOSE-WAIT.
    [S.SynReceived]: S.CloseWait,
    [S.Established]: S.CloseWait,
    // RFC 9293 §3.10.7.4: FIN-WAIT-1 and our FIN not yet acknowledged →
    // CLOSING (simultaneous close). (If it was acknowledged, the ACK arm
    // already moved us to FIN-WAIT-2.)
    [S.FinWait1]: S.Closing,
    // RFC 9293 §3.10.7.4: FIN-WAIT-2 → TIME-WAIT, start the 2*MSL timer.
    [S.FinWait2]: S.TimeWait,
    // RFC 9293 §3.10.7.4: TIME-WAIT — a retransmitted FIN: stay, restart 2*MSL.
    [S.TimeWait]: S.TimeWait,
  },
  'rcv-ack-of-fin': {
    // RFC 9293 §3.10.7.4 (fifth): FIN-WAIT-1, our FIN acknowledged → FIN-WAIT-2.
    [S.FinWait1]: S.FinWait2,
    // RFC 9293 §3.10.7.4: CLOSING, our FIN acknowledged → TIME-WAIT.
    [S.Closing]: S.TimeWait,
    // RFC 9293 §3.10.7.4: LAST-ACK, our FIN acknowledged → CLOSED.
    [S.LastAck]: S.Closed,
  },
  timeout: {
    // RFC 9293 §3.10.8: the TIME-WAIT timer (2*MSL) expired → CLOSED.
    [S.TimeWait]: S.Closed,
    // Not in the RFC (a FIN-WAIT-2 connection may wait forever); like Linux's
    // tcp_fin_timeout we give up on a peer that never closes.
    [S.FinWait2]: S.Closed,
  },
  reset: {
    // RFC 9293 §3.10.7: an acceptable RST, an abort, a refusal or exhausted
    // retransmissions end the connection from any state → CLOSED.
    [S.Listen]: S.Closed,
    [S.SynSent]: S.Closed,
    [S.SynReceived]: S.Closed,
    [S.Established]: S.Closed,
    [S.FinWait1]: S.Closed,
    [S.FinWait2]: S.Closed,
    [S.CloseWait]: S.Closed,
    [S.Closing]: S.Closed,
    [S.LastAck]: S.Closed,
    [S.TimeWait]: S.Closed,
  },
};

/** The state after `event` in `state`, or undefined when the table has no arm for it. */
export function transition(state: TcpState, event: TcpEvent): TcpState | undefined {
  return TRANSITIONS[event][state];
}

/** RFC 9293 §3.3.2: states in which both sequence spaces are synchronized. */
export function isSynchronized(state: TcpState): boolean {
  return state !== S.Closed && state !== S.Listen && state !== S.SynSent && state !== S.SynReceived;
}

/** States in which data from the peer is still accepted (its FIN has not arrived). */
export function acceptsData(state: TcpState): boolean {
  return state === S.Established || state === S.FinWait1 || state === S.FinWait2 || state === S.SynReceived;
}

/** States in which we may still send data (our FIN not sent, or queued behind data). */
export function canSendData(state: TcpState): boolean {
  return (
    state === S.Established ||
    state === S.CloseWait ||
    state === S.FinWait1 ||
    state === S.Closing ||
    state === S.LastAck
  );
}
