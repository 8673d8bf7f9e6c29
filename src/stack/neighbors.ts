// The neighbor table: which MAC each guest-side IPv4 address was last seen
// with (learned from ARP and from the source of IPv4 frames). The guest is
// whatever address talks to us; the first one learned is "the guest" for
// logs and for frames the stack originates later.

export interface Neighbor {
  mac: number;
  updatedAt: number;
}

/** Bound on remembered neighbors; a guest network holds a handful. */
const MAX_NEIGHBORS = 256;

export class NeighborTable {
  private readonly table = new Map<number, Neighbor>();

  /** Returns true when this is a new address or its MAC changed. */
  learn(ip: number, mac: number, now: number): boolean {
    const old = this.table.get(ip);
    if (old && old.mac === mac) {
      old.updatedAt = now;
      return false;
    }
    if (!old && this.table.size >= MAX_NEIGHBORS) {
      // Evict the stalest entry.
      let oldestIp = -1;
      let oldestAt = Infinity;
      for (const [k, v] of this.table) {
        if (v.updatedAt < oldestAt) {
          oldestAt = v.updatedAt;
          oldestIp = k;
        }
      }
      this.table.delete(oldestIp);
    }
    this.table.set(ip, { mac, updatedAt: now });
    return true;
  }

  lookup(ip: number): number | undefined {
    return this.table.get(ip)?.mac;
  }

  get size(): number {
    return this.table.size;
  }

  entries(): IterableIterator<[number, Neighbor]> {
    return this.table.entries();
  }
}
