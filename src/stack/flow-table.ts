// The one flow table, pure: every flow of every kind — TCP (outbound,
// connecting and forwarded), outbound UDP, forwarded UDP conversations and
// ICMP echo — lives here under one key shape and one cap, as in passt's flow
// table. A flow is described by its guest side as the guest sees it: the
// guest's address and port (for echo, its identifier) and the peer's
// address and port (what the guest talks to; 0:0 for endpoint-independent
// flows — outbound UDP and echo use one host socket for every destination).
// The host side (sockets) lives in the shell, keyed by flow id.
//
// Each kind's protocol code (tcp-flows.ts, udp.ts, icmp-echo.ts) owns what
// its flows do and registers a FlowOwner; this table owns identity, lookup,
// the cap (admit), and idle expiry. Flows of every kind but TCP expire when
// idle (idleMs) and are kept in least-recently-active order, so expiry and
// eviction look only at the head. At the cap admit() evicts what a peer
// would give up first: the least recently active UDP flow (outbound or
// forwarded), then ICMP echo; TCP flows are never evicted.

import { Ipv6Handles } from './addresses.js';

export type FlowKind = 'tcp' | 'udp' | 'udp-in' | 'echo';

export const FLOW_KINDS: readonly FlowKind[] = ['tcp', 'udp', 'udp-in', 'echo'];

export interface Flow {
  readonly id: number;
  readonly kind: FlowKind;
  /** IPv4 address, or IPv6 handle (addresses.ts). */
  readonly guestIp: number;
  /** The guest's port (echo: its identifier). */
  readonly guestPort: number;
  /** The peer as the guest sees it; 0 for endpoint-independent flows. */
  readonly peerIp: number;
  readonly peerPort: number;
  lastActive: number;
}

export interface FlowOwner {
  /** Ends a flow the table expires (idle) or evicts (to make room): the owner removes it and releases its host side. */
  expire(flow: Flow, reason: 'idle' | 'evicted'): void;
}

const IDLE_KINDS: ReadonlySet<FlowKind> = new Set(['udp', 'udp-in', 'echo']);

export class FlowTable {
  /** kind → guestIp*65536+guestPort → peerIp*65536+peerPort → flow */
  private readonly index = new Map<FlowKind, Map<number, Map<number, Flow>>>();
  private readonly byId = new Map<number, Flow>();
  /** Idle-expiring flows, least recently active first (re-inserted on touch). */
  private readonly idle = new Map<number, Flow>();
  private readonly owners = new Map<FlowKind, FlowOwner>();
  /** The flows of each kind, for per-kind iteration and counts. */
  private readonly byKind = new Map<FlowKind, Set<Flow>>();
  private lastId = 0;
  /** Flows evicted to make room (stats). */
  evictions = 0;
  /** IPv6 addresses of flows, as handles (addresses.ts): a flow's addresses live while it does. */
  readonly v6 = new Ipv6Handles();

  constructor(
    readonly maxFlows: number,
    readonly idleMs: number,
  ) {
    for (const k of FLOW_KINDS) {
      this.index.set(k, new Map());
      this.byKind.set(k, new Set());
    }
  }

  /** The protocol code behind a kind of flow (for expiry and eviction). */
  register(kind: FlowKind, owner: FlowOwner): void {
    this.owners.set(kind, owner);
  }

  /** A fresh id, unique across kinds and never reused. */
  newId(): number {
    return ++this.lastId;
  }

  get size(): number {
    return this.byId.size;
  }

  count(kind: FlowKind): number {
    return this.byKind.get(kind)!.size;
  }

  get(id: number): Flow | undefined {
    return this.byId.get(id);
  }

  /** Is this exact flow object still in the table? */
  has(flow: Flow): boolean {
    return this.byId.get(flow.id) === flow;
  }

  lookup(kind: FlowKind, guestIp: number, guestPort: number, peerIp = 0, peerPort = 0): Flow | undefined {
    return this.index.get(kind)!.get(guestIp * 65536 + guestPort)?.get(peerIp * 65536 + peerPort);
  }

  /** Flows of one kind (a snapshot: safe to remove while iterating). */
  all(kind: FlowKind): Flow[] {
    return [...this.byKind.get(kind)!];
  }

  /** Flows of one kind, live (removing the current one while iterating is safe). */
  each(kind: FlowKind): IterableIterator<Flow> {
    return this.byKind.get(kind)!.values();
  }

  /**
   * Room for one more flow: true when under the cap, or when the least
   * recently active UDP flow (else echo flow) was evicted to make it.
   */
  admit(): boolean {
    if (this.byId.size < this.maxFlows) return true;
    let victim: Flow | undefined;
    for (const f of this.idle.values()) {
      if (f.kind !== 'echo') {
        victim = f;
        break;
      }
      victim ??= f;
    }
    if (!victim) return false;
    this.evictions++;
    this.owners.get(victim.kind)?.expire(victim, 'evicted');
    if (this.has(victim)) this.remove(victim); // an owner that did not remove it
    return true;
  }

  /** Adds a flow (call admit() first; the cap is not checked here). Throws if its key is taken. */
  insert(flow: Flow): void {
    const guests = this.index.get(flow.kind)!;
    const gk = flow.guestIp * 65536 + flow.guestPort;
    let peers = guests.get(gk);
    if (!peers) guests.set(gk, (peers = new Map()));
    const pk = flow.peerIp * 65536 + flow.peerPort;
    if (peers.has(pk)) throw new Error(`flow table: ${flow.kind} key taken`);
    peers.set(pk, flow);
    this.byId.set(flow.id, flow);
    this.byKind.get(flow.kind)!.add(flow);
    if (IDLE_KINDS.has(flow.kind)) this.idle.set(flow.id, flow);
    this.v6.retain(flow.guestIp);
    this.v6.retain(flow.peerIp);
  }

  /** Removes a flow; false if it was not in the table. */
  remove(flow: Flow): boolean {
    if (!this.has(flow)) return false;
    const guests = this.index.get(flow.kind)!;
    const gk = flow.guestIp * 65536 + flow.guestPort;
    const peers = guests.get(gk);
    if (peers) {
      peers.delete(flow.peerIp * 65536 + flow.peerPort);
      if (peers.size === 0) guests.delete(gk);
    }
    this.byId.delete(flow.id);
    this.idle.delete(flow.id);
    this.byKind.get(flow.kind)!.delete(flow);
    this.v6.release(flow.guestIp);
    this.v6.release(flow.peerIp);
    return true;
  }

  /** Marks activity at now (idle kinds move to the recent end). */
  touch(flow: Flow, now: number): void {
    flow.lastActive = now;
    if (this.idle.delete(flow.id)) this.idle.set(flow.id, flow);
  }

  /** Ends flows idle for idleMs at now (through their owners). */
  expire(now: number): void {
    for (const f of this.idle.values()) {
      if (now - f.lastActive < this.idleMs) return;
      this.owners.get(f.kind)?.expire(f, 'idle');
      if (this.has(f)) this.remove(f);
    }
  }

  /** When expire() next has work (Infinity when no flow can expire). */
  pollAt(): number {
    const first = this.idle.values().next();
    return first.done ? Infinity : first.value.lastActive + this.idleMs;
  }
}
