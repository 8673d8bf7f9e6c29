// Stack counters: frames and bytes each way, and drops by reason. Reasons are
// short kebab codes (the wire layer's WireError reasons plus the stack's own,
// e.g. "eth-not-for-us", "ipv4-fragment", "tcp-unhandled"), so `get_stats`
// and the debug log can say exactly why a frame was dropped.

import { DOUBLE_ZERO, reported } from './numbers.js';

export class Counters {
  // Doubles from the start: they pass 2^31 (src/stack/numbers.ts).
  rxFrames = DOUBLE_ZERO;
  rxBytes = DOUBLE_ZERO;
  txFrames = DOUBLE_ZERO;
  txBytes = DOUBLE_ZERO;
  /** ARP replies and ICMP echo replies sent, etc. Keyed by a short name. */
  readonly events = new Map<string, number>();
  readonly drops = new Map<string, number>();

  drop(reason: string): void {
    this.drops.set(reason, (this.drops.get(reason) ?? 0) + 1);
  }

  count(event: string): void {
    this.events.set(event, (this.events.get(event) ?? 0) + 1);
  }

  totalDrops(): number {
    let n = 0;
    for (const v of this.drops.values()) n += v;
    return n;
  }

  snapshot(): {
    rxFrames: number;
    rxBytes: number;
    txFrames: number;
    txBytes: number;
    events: Record<string, number>;
    drops: Record<string, number>;
  } {
    return {
      rxFrames: reported(this.rxFrames),
      rxBytes: reported(this.rxBytes),
      txFrames: reported(this.txFrames),
      txBytes: reported(this.txBytes),
      events: Object.fromEntries(this.events),
      drops: Object.fromEntries(this.drops),
    };
  }
}
