// src/stack/tcp/events.ts — what a connection tells its application, queued.
//
// Read this first: the engine never calls the application while it is
// working on a segment or a timer. Everything the application must hear —
// data in order, the peer's FIN, the handshake's end, room in the send
// buffer, a reset, the end — is recorded here, and the owner hands the queue
// to the application with TcpConnection.deliverEvents() once process() or
// dispatch() has returned. So the application may call the connection back
// (consume, send, close, abort) from any event without finding it half way
// through a state change.
// - Delivery order is fixed: established, data (in order), eof, send space,
//   reset, closed. One engine call can produce several of them (the ACK that
//   completes a handshake may carry data and a FIN), never in another order.
// - Data is held as the buffers the engine delivered: in-order payload is a
//   view of the frame just processed, so the owner delivers before that frame
//   is reused (TcpTable does it right after process()).
// - An app that aborts the connection from an event hears nothing more
//   but onClosed (silence()).

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

const ESTABLISHED = 1;
const EOF = 2;
const SEND_SPACE = 4;
const RESET = 8;
const CLOSED = 16;

export class TcpEventQueue {
  private bits = 0;
  private reason: TcpResetReason = 'peer-reset';
  /**
   * Chunks received, in data[0, dataLen). The arrays keep their storage:
   * emptying one with `length = 0` would drop it, and the next segment
   * would allocate anew.
   */
  private data: Array<Buffer | undefined> = [];
  private dataLen = 0;
  /** The array data is swapped with during delivery (no allocation per segment). */
  private spare: Array<Buffer | undefined> = [];
  /** Set by silence(): only onClosed is still delivered. */
  private silenced = false;

  get pending(): boolean {
    return this.bits !== 0 || this.dataLen > 0;
  }

  established(): void {
    this.bits |= ESTABLISHED;
  }
  received(data: Buffer): void {
    this.data[this.dataLen++] = data;
  }
  eof(): void {
    this.bits |= EOF;
  }
  sendSpace(): void {
    this.bits |= SEND_SPACE;
  }
  reset(reason: TcpResetReason): void {
    this.bits |= RESET;
    this.reason = reason;
  }
  closed(): void {
    this.bits |= CLOSED;
  }

  /**
   * The app aborted the connection: it hears nothing more but onClosed —
   * not the rest of a delivery in progress (the data and FIN that followed
   * the chunk it aborted on), not anything queued later.
   */
  silence(): void {
    this.silenced = true;
    this.bits &= CLOSED;
    this.data.fill(undefined, 0, this.dataLen);
    this.dataLen = 0;
  }

  /**
   * Hands everything queued to `app`, in the fixed order. Events the app's
   * own calls queue meanwhile are delivered by the same call, after these.
   */
  deliver(app: TcpAppEvents): void {
    while (this.pending) {
      const bits = this.bits;
      const data = this.data;
      const n = this.dataLen;
      this.bits = 0;
      this.data = this.spare;
      this.dataLen = 0;
      try {
        if (bits & ESTABLISHED && !this.silenced) app.onEstablished();
        for (let i = 0; i < n && !this.silenced; i++) app.onData(data[i]!);
      } finally {
        // The views of frames go now (a loop: Array.prototype.fill is a C++
        // builtin, ~0.4% of a round trip's CPU for one or two slots).
        for (let i = 0; i < n; i++) data[i] = undefined;
        this.spare = data;
      }
      if (bits & EOF && !this.silenced) app.onEof();
      // Room to send is news only to a connection that is still open.
      if (bits & SEND_SPACE && !(bits & (RESET | CLOSED)) && !this.silenced) app.onSendSpace();
      if (bits & RESET && !this.silenced) app.onReset(this.reason);
      if (bits & CLOSED) app.onClosed();
    }
  }
}
