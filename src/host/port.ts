// The frame port: the one interface between the TAP device and the stack,
// and the middleware that can sit between them (pcap capture, fault
// injection). "down" is toward the guest (TAP), "up" is toward the stack.
//
//   stack ⇄ PcapPort ⇄ FaultPort ⇄ TapPort ⇄ kernel (guest)
//
// A Port sends frames down with send() and hands frames coming up to the
// receiver set with setReceiver(). flush() is called at the end of each I/O
// batch so buffering middleware can release what it holds.

export type FrameHandler = (frame: Buffer) => void;

export interface Port {
  /** Sends a frame toward the guest. The callee must not keep `frame` after returning. */
  send(frame: Buffer): void;
  /** Sets who receives frames coming from the guest. */
  setReceiver(handler: FrameHandler): void;
  /** End of an I/O batch. */
  flush(): void;
}

/** Base for middleware: passes everything through unchanged. */
export class PassThroughPort implements Port {
  protected up: FrameHandler = () => {};
  constructor(protected readonly lower: Port) {
    lower.setReceiver((f) => this.fromBelow(f));
  }
  send(frame: Buffer): void {
    this.lower.send(frame);
  }
  setReceiver(handler: FrameHandler): void {
    this.up = handler;
  }
  flush(): void {
    this.lower.flush();
  }
  protected fromBelow(frame: Buffer): void {
    this.up(frame);
  }
}
