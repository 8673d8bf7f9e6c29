// One memory budget for everything tsnet buffers on a guest's behalf, pure.
// Whatever holds bytes for a flow — TCP send-buffer blocks (host→guest),
// copies of guest data on their way into host sockets (guest→host), data a
// host socket read that did not fit yet, UDP datagrams waiting for a socket,
// DNS queries in flight — takes them from here and gives them back when done.
//
// Two rules keep tsnet's memory bounded whatever the guest does:
//   - a hard ceiling: take() refuses what would pass `limit`, and callers
//     that cannot refuse (bytes already read) use force() and then stop
//     reading until the budget has room again;
//   - fair shares that shrink under pressure: one of n flows may hold or
//     advertise at most limit/n, and never more than is still free. So a
//     single bulk transfer gets the full per-flow ceiling, while 200 stalled
//     connections share the budget instead of each holding 4 MiB.
// Like Linux's tcp_mem (a global bound) plus per-socket autotuning (windows
// sized by what the socket can use), but with one bound for every protocol.

// What the default bounds (README "Limits and hardening"): tsnet's RSS ≤
// ~85 MiB of Node, code and fixed pools + at most 2 × the budget (reads in
// flight can pass it by one fair share per flow) ≈ 213 MiB, under 256 MiB
// whatever the guest does. A single transfer still gets 4 MiB windows.
import { idiv } from './numbers.js';

export const DEFAULT_MEMORY_BUDGET = 64 * 1024 * 1024;

export class MemoryBudget {
  private usedBytes = 0;
  private peakBytes = 0;
  /** Times take() refused (pressure events), for stats. */
  refusals = 0;
  /** Set when a taker was refused or starved; cleared by relieved(). */
  private starved = false;

  constructor(readonly limit: number = DEFAULT_MEMORY_BUDGET) {}

  get used(): number {
    return this.usedBytes;
  }

  get peak(): number {
    return this.peakBytes;
  }

  get free(): number {
    return Math.max(0, this.limit - this.usedBytes);
  }

  /** Takes n bytes if they fit under the limit; false (nothing taken) if not. */
  take(n: number): boolean {
    if (this.usedBytes + n > this.limit) {
      this.refusals++;
      this.starved = true;
      return false;
    }
    this.add(n);
    return true;
  }

  /** Takes n bytes even past the limit (bytes already in hand); the caller must then stop taking more. */
  force(n: number): void {
    if (this.usedBytes + n > this.limit) this.starved = true;
    this.add(n);
  }

  release(n: number): void {
    this.usedBytes = Math.max(0, this.usedBytes - n);
  }

  /**
   * What one of `flows` flows that already holds `held` bytes may hold in
   * all: its fair share of the limit, and never more than it holds plus what
   * is free.
   */
  share(flows: number, held: number): number {
    const fair = idiv(this.limit, Math.max(1, flows));
    const room = held + this.free;
    // Held back by real pressure (under a quarter free): remember to wake
    // flows when it eases. Not otherwise — waking every flow on every
    // flush cost bulk transfers ~20 % (measured).
    if (room < fair && this.free < this.limit / 4) this.starved = true;
    return Math.min(fair, room);
  }

  /**
   * True once after pressure eased (at least a quarter of the budget free
   * again since a taker was refused or starved): flows that were held back
   * should look again.
   */
  relieved(): boolean {
    if (!this.starved || this.free < this.limit / 4) return false;
    this.starved = false;
    return true;
  }

  private add(n: number): void {
    this.usedBytes += n;
    if (this.usedBytes > this.peakBytes) this.peakBytes = this.usedBytes;
  }
}
