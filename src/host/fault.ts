// Fault injection at the TAP boundary (--fault SPEC): drops, duplicates,
// reorders and corrupts frames in both directions with a seeded PRNG, so a
// lossy link is reproducible. SPEC is a comma list such as
// "drop=0.05,duplicate=0.01,reorder=0.01,corrupt=0.001,seed=7".
//
// Reordering holds one frame per direction and releases it after the next
// frame in that direction, or at the second flush() if none came (so a held
// frame is late, never lost). Corruption flips one byte after the Ethernet
// header, where the IP/TCP/UDP checksums must catch it.

import { PassThroughPort, type Port } from './port.js';

export interface FaultSpec {
  drop: number;
  duplicate: number;
  reorder: number;
  corrupt: number;
  seed: number;
}

export class FaultSpecError extends Error {}

const KEYS = ['drop', 'duplicate', 'reorder', 'corrupt', 'seed'] as const;

export function parseFaultSpec(text: string): FaultSpec {
  const spec: FaultSpec = { drop: 0, duplicate: 0, reorder: 0, corrupt: 0, seed: 1 };
  for (const part of text.split(',')) {
    const item = part.trim();
    if (item === '') continue;
    const eq = item.indexOf('=');
    if (eq < 0) throw new FaultSpecError(`--fault: "${item}" is not KEY=VALUE (keys: ${KEYS.join(', ')})`);
    const key = item.slice(0, eq).trim();
    const raw = item.slice(eq + 1).trim();
    const value = Number(raw);
    if (!(KEYS as readonly string[]).includes(key)) {
      throw new FaultSpecError(`--fault: unknown key "${key}" (keys: ${KEYS.join(', ')})`);
    }
    if (raw === '' || !Number.isFinite(value)) throw new FaultSpecError(`--fault: ${key}=${raw} is not a number`);
    if (key === 'seed') {
      if (!Number.isInteger(value) || value < 0) throw new FaultSpecError(`--fault: seed must be a non-negative integer`);
    } else if (value < 0 || value > 1) {
      throw new FaultSpecError(`--fault: ${key}=${raw} must be a probability between 0 and 1`);
    }
    spec[key as keyof FaultSpec] = value;
  }
  return spec;
}

/** mulberry32: small, fast, seedable; quality is ample for fault injection. */
export function makePrng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface FaultCounters {
  dropped: number;
  duplicated: number;
  reordered: number;
  corrupted: number;
}

class Lane {
  held: Buffer | null = null;
  heldFlushes = 0;
}

export class FaultPort extends PassThroughPort {
  readonly counters: FaultCounters = { dropped: 0, duplicated: 0, reordered: 0, corrupted: 0 };
  private readonly rand: () => number;
  private readonly downLane = new Lane();
  private readonly upLane = new Lane();

  constructor(lower: Port, readonly spec: FaultSpec) {
    super(lower);
    this.rand = makePrng(spec.seed);
  }

  override send(frame: Buffer): void {
    this.apply(frame, this.downLane, (f) => this.lower.send(f));
  }

  protected override fromBelow(frame: Buffer): void {
    this.apply(frame, this.upLane, (f) => this.up(f));
  }

  override flush(): void {
    this.releaseStale(this.downLane, (f) => this.lower.send(f));
    this.releaseStale(this.upLane, (f) => this.up(f));
    super.flush();
  }

  private releaseStale(lane: Lane, out: (f: Buffer) => void): void {
    if (lane.held && ++lane.heldFlushes >= 2) {
      const f = lane.held;
      lane.held = null;
      out(f);
    }
  }

  private apply(frame: Buffer, lane: Lane, out: (f: Buffer) => void): void {
    const s = this.spec;
    if (s.drop > 0 && this.rand() < s.drop) {
      this.counters.dropped++;
      return;
    }
    let f = frame;
    if (s.corrupt > 0 && f.length > 14 && this.rand() < s.corrupt) {
      f = Buffer.from(f);
      const i = 14 + Math.floor(this.rand() * (f.length - 14));
      f[i] = f[i]! ^ (1 + Math.floor(this.rand() * 255));
      this.counters.corrupted++;
    }
    if (s.reorder > 0 && lane.held === null && this.rand() < s.reorder) {
      lane.held = Buffer.from(f);
      lane.heldFlushes = 0;
      this.counters.reordered++;
      return;
    }
    out(f);
    if (lane.held) {
      const h = lane.held;
      lane.held = null;
      out(h);
    }
    if (s.duplicate > 0 && this.rand() < s.duplicate) {
      this.counters.duplicated++;
      out(f);
    }
  }
}
