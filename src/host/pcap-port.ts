// Middleware that records every frame crossing it, both directions, into a
// pcap file (--pcap FILE). Placed next to the stack, it shows exactly what the
// stack received and sent.

import { PassThroughPort, type Port } from './port.js';
import { PcapWriter } from './pcap.js';

export class PcapPort extends PassThroughPort {
  constructor(lower: Port, readonly writer: PcapWriter) {
    super(lower);
  }
  override send(frame: Buffer): void {
    this.writer.write(frame);
    super.send(frame);
  }
  protected override fromBelow(frame: Buffer): void {
    this.writer.write(frame);
    super.fromBelow(frame);
  }
  override flush(): void {
    super.flush();
    this.writer.flush();
  }
}
