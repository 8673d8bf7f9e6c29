// The frame port: the one interface between the TAP device and the stack,
// and the middleware that can sit between them (pcap capture, fault
// injection). "down" is toward the guest (TAP), "up" is toward the stack.
//
//   stack ⇄ PcapPort ⇄ FaultPort ⇄ TapPort ⇄ kernel (guest)
//
// A Port sends frames down with send() and hands frames coming up to the
// receiver set with setReceiver(). flush() is called at the end of each I/O
// batch so buffering middleware can release what it holds.
//
// Offloads (a TAP opened with a virtio-net header, see tap-port.ts) travel
// beside the frame as one number each way, never inside it:
//   - up: `csumTrusted` — the guest's kernel left the TCP/UDP checksum to the
//     device (CHECKSUM_PARTIAL: the field holds only the pseudo-header sum)
//     or checked it; the stack must not verify it. A frame may also be a
//     TCP super-segment larger than the MTU (TSO): one segment to the stack.
//   - down: `gso` — undefined: a complete frame, checksums filled. A number:
//     the frame's TCP/UDP checksum field holds only the pseudo-header sum
//     (the kernel completes it); above 0, the frame is a TCP super-segment
//     the kernel cuts into segments of `gso` payload bytes.
// Only a port that says `offload` is true is ever given a `gso` number.

export type FrameHandler = (frame: Buffer, csumTrusted?: boolean) => void;

export interface Port {
  /** Sends a frame toward the guest. The callee must not keep `frame` after returning. */
  send(frame: Buffer, gso?: number): void;
  /**
   * Sends a frame given in two pieces, `head` then `payload` (a TCP
   * segment's payload left where it lies, in the connection's send buffer),
   * as send() would send their concatenation. Optional: a port without it
   * (the middleware) is given whole frames; the stack asks only a port that
   * has it.
   */
  sendParts?(head: Buffer, payload: Buffer, gso?: number): void;
  /** Sets who receives frames coming from the guest. */
  setReceiver(handler: FrameHandler): void;
  /** End of an I/O batch. */
  flush(): void;
}

/** Base for middleware: passes everything through unchanged. */
export class PassThroughPort implements Port {
  protected up: FrameHandler = () => {};
  constructor(protected readonly lower: Port) {
    lower.setReceiver((f, trusted) => this.fromBelow(f, trusted));
  }
  send(frame: Buffer, gso?: number): void {
    this.lower.send(frame, gso);
  }
  setReceiver(handler: FrameHandler): void {
    this.up = handler;
  }
  flush(): void {
    this.lower.flush();
  }
  protected fromBelow(frame: Buffer, csumTrusted?: boolean): void {
    this.up(frame, csumTrusted);
  }
}
