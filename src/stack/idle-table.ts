// A bounded table of flows that expire when idle (UDP flows, ICMP echo
// flows). Entries are kept in least-recently-active order (a Map re-inserted
// on activity), so expiry and eviction look only at the head: O(1) per
// operation, no timer per flow.

export interface IdleEntry {
  readonly id: number;
  lastActive: number;
}

export class IdleTable<F extends IdleEntry, K extends number | string = number> {
  private readonly byKey = new Map<K, F>();
  private readonly byId = new Map<number, F>();
  private readonly keyOf = new Map<number, K>();

  constructor(
    readonly idleMs: number,
    readonly maxEntries: number,
  ) {}

  get size(): number {
    return this.byKey.size;
  }

  lookup(key: K): F | undefined {
    return this.byKey.get(key);
  }

  get(id: number): F | undefined {
    return this.byId.get(id);
  }

  values(): IterableIterator<F> {
    return this.byKey.values();
  }

  /** True when adding one more entry requires evicting the oldest first. */
  get full(): boolean {
    return this.byKey.size >= this.maxEntries;
  }

  /** The least recently active entry. */
  oldest(): F | undefined {
    const first = this.byKey.values().next();
    return first.done ? undefined : first.value;
  }

  insert(key: K, f: F): void {
    this.byKey.set(key, f);
    this.byId.set(f.id, f);
    this.keyOf.set(f.id, key);
  }

  /** Marks f active at now and moves it to the recent end. */
  touch(f: F, now: number): void {
    const key = this.keyOf.get(f.id);
    if (key === undefined) return;
    f.lastActive = now;
    this.byKey.delete(key);
    this.byKey.set(key, f);
  }

  remove(f: F): void {
    const key = this.keyOf.get(f.id);
    if (key === undefined) return;
    this.byKey.delete(key);
    this.byId.delete(f.id);
    this.keyOf.delete(f.id);
  }

  /** Entries idle for idleMs at now, oldest first (not removed). */
  *expired(now: number): Generator<F> {
    for (const f of [...this.byKey.values()]) {
      if (now - f.lastActive < this.idleMs) return;
      yield f;
    }
  }

  /** When the oldest entry expires (Infinity when empty). */
  pollAt(): number {
    const o = this.oldest();
    return o ? o.lastActive + this.idleMs : Infinity;
  }
}
