// The fuzzer's random choices, on top of the PRNG the rest of the tests
// share (mulberry32, exported by the fault injector in src/host/fault.ts).
// Every decision of a fuzz run — frames, host behaviour, time steps — comes
// from Rng instances derived from the run's seed, so a seed is a complete
// description of a run.

import { makePrng } from '../../src/host/fault.js';

export class Rng {
  private readonly next: () => number;

  constructor(readonly seed: number) {
    this.next = makePrng(seed >>> 0);
  }

  /** A new independent stream for one consumer (so consumers do not shift each other's sequences). */
  fork(salt: number): Rng {
    return new Rng((Math.imul(this.seed ^ 0x9e3779b9, 0x85ebca6b) + Math.imul(salt, 0xc2b2ae35)) >>> 0);
  }

  /** Uniform in [0, 1). */
  float(): number {
    return this.next();
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** Integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  u8(): number {
    return this.int(256);
  }

  u16(): number {
    return this.int(65536);
  }

  u32(): number {
    return (this.int(65536) * 65536 + this.int(65536)) >>> 0;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  /** Picks by weight: entries are [weight, value]. */
  weighted<T>(entries: ReadonlyArray<readonly [number, T]>): T {
    let total = 0;
    for (const [w] of entries) total += w;
    let r = this.next() * total;
    for (const [w, v] of entries) {
      r -= w;
      if (r < 0) return v;
    }
    return entries[entries.length - 1]![1];
  }

  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }

  /** A length biased toward small values and boundaries: mostly < 64, sometimes up to max. */
  length(max: number): number {
    const r = this.next();
    if (r < 0.5) return Math.min(max, this.int(64));
    if (r < 0.8) return Math.min(max, this.int(600));
    if (r < 0.9) return max;
    return this.int(max + 1);
  }

  /** 16-bit values fuzzers like: 0, 1, boundaries, and random. */
  interesting16(): number {
    return this.pick([0, 1, 2, 7, 8, 0x7f, 0x80, 0xff, 0x100, 0x3fff, 0x7fff, 0x8000, 0xfffe, 0xffff, this.u16(), this.u16()]);
  }

  interesting32(): number {
    return this.pick([0, 1, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff, this.u32(), this.u32()]) >>> 0;
  }
}
