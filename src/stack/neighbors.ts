// The neighbor table: which MAC each guest-side IPv4 address was last seen
// with. It is the only link-layer state in the stack: flows (TCP, UDP, echo)
// keep none, and every frame the stack originates toward a guest address
// takes its destination MAC from here (StackContext.sendToGuest), or waits
// for an ARP answer when the address is unknown.
//
// Learned from ARP (either direction), from DHCP (the address handed out),
// and from the source of every IPv4 frame inside the virtual network (as a
// router that trusts its one link would; it saves an ARP round trip for each
// new guest address). A forged source can only steer traffic for that
// address back to the same TAP: the guest side of a TAP is one machine, so
// this misleads no one but the guest itself, and the table is bounded
// (the stalest entry makes room). Replies to a frame just received (RST for
// a stray segment, ICMP errors) go to that frame's source MAC directly.
// The first address learned is "the guest" for logs.

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
