// The TCP flow table, pure: every guest TCP connection (and, for port
// forwarding, every connection tsnet opens toward the guest) is a TcpFlow
// around one TcpConnection (src/stack/tcp/connection.ts). This layer owns
// the IP side — lookup by 4-tuple, NAT routing of new SYNs, resets for
// segments that match nothing (RFC 9293 §3.10.7.1), ICMP errors for failed
// connects, and framing emitted segments into Ethernet/IPv4 — and relays the
// byte stream to the shell through TcpHooks. A connection's events reach the
// hooks when this table calls deliverEvents(), right after process() (the
// segment's payload is still valid) and after every dispatch().
//
// Output is batched: anything that may produce segments marks the flow
// dirty; flush(now) dispatches dirty flows once, at the end of an I/O batch
// or host event, so ACKs coalesce and data goes out in full segments.
//
// Budgets (README "Limits and hardening"): a new flow needs room in the
// stack's one flow table (flow-table.ts, kind 'tcp'; at the cap idle UDP is evicted
// first, else the SYN gets RST, "flow-table-full"), and at most
// maxHalfOpen flows may be opening at once (host connect in progress or
// handshake unfinished). At that cap the oldest half-open flow whose
// SYN-ACK the guest has left unanswered for HALF_OPEN_OLD_MS (3 s: sent,
// retransmitted, and a backed-off RTO unanswered) is reset to make room
// ("tcp-half-open-evicted", as Linux drops old SYN-queue entries under a
// flood), so spoofed SYNs cannot lock the guest's real connects out; when
// every half-open flow is young or still connecting the new SYN is dropped
// ("tcp-half-open-full") and the guest's SYN retransmission tries again. Windows and send buffers are each flow's fair share of the
// memory budget. A flow whose processing throws is reset alone: the error
// is re-thrown for the stack to count, every other flow goes on.

import { ipv4ToString, ipv6Equal, ipv6ToString } from '../wire/address.js';
import { ChecksumMode, pseudoV4, pseudoV6 } from '../wire/checksum.js';
import type { EthernetFrame } from '../wire/ethernet.js';
import { IpProtocol, Ipv4Repr, type Ipv4Packet } from '../wire/ipv4.js';
import { Ipv6Repr, type Ipv6Packet } from '../wire/ipv6.js';
import { TcpFlags, TcpPacket, TcpRepr } from '../wire/tcp.js';
import { WireError } from '../wire/errors.js';
import type { MemoryBudget } from './budget.js';
import type { StackContext } from './context.js';
import type { Flow } from './flow-table.js';
import { icmpUnreachableFrame, icmpv6UnreachableFrame, ipv4Frame, ipv6Frame } from './emit.js';
import { isIpv6 } from './addresses.js';
import { macFor6 } from './config.js';
import { routeFor, routeFor6, type NatOptions, type Route } from './nat.js';
import { TcpConnection, rstForUnknown, type TcpAppEvents, type TcpConnectionConfig, type TcpConnectionStats, type TcpResetReason, type TcpSegmentOut } from './tcp/connection.js';
import { DOUBLE_ZERO, idiv, reported } from './numbers.js';

export type TcpRoute = Extract<Route, { kind: 'host' } | { kind: 'host6' } | { kind: 'dns' }>;

/** How a segment no flow matched arrived: its addresses (IPv4 numbers, or the IPv6 bytes), its datagram, where the policy sends it. */
interface Arrival {
  guest: number;
  peer: number;
  v6?: { src: Buffer; dst: Buffer };
  /** The IP datagram, header first (quoted by ICMP errors). */
  datagram: Buffer;
  route: () => Route;
}

/** A TCP flow; its peer side is the address:port the guest talks to (virtual: 10.0.2.2 stays 10.0.2.2). */
export interface TcpFlow extends Flow {
  readonly kind: 'tcp';
  readonly conn: TcpConnection;
  readonly route: TcpRoute | undefined;
  /** 'outbound': the guest connected out; 'inbound': tsnet connected into the guest (port forward). */
  readonly direction: 'outbound' | 'inbound';
  /** The SYN that opened an outbound flow, kept until the host connect resolves (for ICMP errors). */
  synDatagram: Buffer | undefined;
  /** Counted against maxHalfOpen until the handshake completes. */
  halfOpen: boolean;
  /** When the host connect succeeded and the SYN-ACK went out (outbound flows). */
  acceptedAt: number;
  /** Waiting in the table's dirty list for the next flush. */
  dirty: boolean;
}

/** What the shell does for TCP. Calls come synchronously from inside the stack. */
export interface TcpHooks {
  /** A guest SYN for route: connect a host socket, then call accepted/refused/unreachable. */
  open(flow: TcpFlow, route: TcpRoute): void;
  /**
   * In-order bytes from the guest, valid during this call only (a view of the
   * frame just read: copy what is kept). Call consumed(flow.id, n) once they
   * are handed to the host socket.
   */
  data(flow: TcpFlow, data: Buffer): void;
  /** The guest sent FIN after all its data: end() the host socket. */
  eof(flow: TcpFlow): void;
  /** The handshake with the guest completed (either direction: the guest's ACK of our SYN-ACK, or its SYN-ACK to a forward). */
  established(flow: TcpFlow): void;
  /** The send buffer toward the guest has room again: resume the host socket. */
  sendSpace(flow: TcpFlow): void;
  /** The connection died (guest RST, retransmission timeout): reset the host socket. */
  reset(flow: TcpFlow, reason: string): void;
  /** The flow is gone from the table. */
  closed(flow: TcpFlow): void;
}

export interface TcpTableOptions {
  nat?: NatOptions;
  /** Random initial sequence numbers (RFC 6528); the shell passes crypto randomness. */
  iss: () => number;
  /** Overrides for the connection configuration (tests). */
  conn?: Partial<TcpConnectionConfig>;
  /** Flows opening at once (host connect or handshake in progress). */
  maxHalfOpen?: number;
  /** The link segments and checksums for us (StackContext.offload). */
  offload?: boolean;
}

export const DEFAULT_MAX_HALF_OPEN = 1024;
/**
 * A half-open flow may be evicted once its SYN-ACK has gone unanswered this
 * long: sent, retransmitted after the initial RTO (1 s), and unanswered for
 * the whole backed-off RTO after that (2 s), when Linux would time the
 * entry out under a flood. Younger ones are kept, as Linux keeps its SYN
 * queue's: a real guest whose handshake ACK was lost (its own TAP queue
 * overflowing with a flood, say) thinks it is connected and sends nothing
 * more; only the retransmitted SYN-ACK brings its ACK back, and that ACK
 * may itself wait behind the flood. Measured: at 1 s, the hostile suite's
 * 20000-SYN flood with two CPU hogs running reset the paced download in 4
 * of 22 runs (evicted 1.18 s after its SYN-ACK); at 3 s, none in 12.
 */
const HALF_OPEN_OLD_MS = 3000;

/**
 * A connection's send buffer and receive window, at most. In a bulk transfer
 * to the guest the send buffer stays full (3.7 of 4 MiB in flight), so this
 * is also tsnet's memory per busy connection. Tried 2 MiB: peak RSS of one
 * bulk transfer 64.7 -> 62.9 MiB, but host->container at MTU 65520 lost
 * ~6% (iperf3 4 s, 5 interleaved runs each: median 6.66 -> 6.23 Gbit/s,
 * 1.21 -> 1.28 CPU s/GB), so 4 MiB it stays. Again once host reads landed
 * in place and payloads left from the send buffer (a 2 MiB send buffer,
 * the window unchanged; 3 interleaved runs): 65.4 -> 63.4 MiB, 18.4 ->
 * 16.7 Gbit/s, 0.41 -> 0.46 s/GB.
 */
const MAX_BUFFER = 4 * 1024 * 1024;
/** SYN retransmissions toward the guest before a forwarded client is reset (≈7 s). */
const INBOUND_SYN_RETRIES = 2;
/**
 * SYN-ACK retransmissions to a guest that does not complete its own
 * handshake (≈7 s). A virtual link loses nothing but overflow, and a guest
 * that lost our SYN-ACK re-sends its SYN (which re-sends the SYN-ACK, or
 * opens a new flow): so a short wait costs real guests nothing, while
 * spoofed SYNs give their slot back quickly.
 */
const OUTBOUND_SYNACK_RETRIES = 2;
/**
 * rootlesskit PR #615: the TAP queue holds txqueuelen (1000) frames; a window
 * of more segments than that invites drops. Keep windows and send buffers to
 * at most this many full segments.
 */
const MAX_SEGMENTS_IN_FLIGHT = 512;
/**
 * The same queue is shared by every connection: the sum of the windows we
 * advertise is kept to about this many segments, split evenly (at least 2
 * segments each). Measured: 200 connections each offered a 746 KB window
 * overflowed the TAP queue, and the guest's retransmissions backed off to
 * 120 s RTOs.
 */
const TOTAL_SEGMENTS_IN_FLIGHT = 768;

/**
 * The largest TCP segment (options and payload) built when the link cuts
 * segments for us (TSO): the IPv4 total length is 16 bits.
 */
export const TSO_SEGMENT_MAX = 65535 - 40;

/**
 * What a connection over a link with this MTU is configured with. With
 * `offload` the TAP queue holds super-segments (the guest's kernel sends
 * them with TSO, and takes ours whole), so buffers are counted in those.
 */
export function connectionConfig(mtu: number, iss: number, over: Partial<TcpConnectionConfig> = {}, offload = false): TcpConnectionConfig {
  const mss = mtu - 40;
  const unit = offload ? Math.max(mss, TSO_SEGMENT_MAX) : mss;
  const buf = Math.min(MAX_BUFFER, MAX_SEGMENTS_IN_FLIGHT * unit);
  // iss as the connection keeps it (signed 32-bit, src/stack/tcp/seq.ts).
  return { mss, rcvBufSize: buf, sndBufSize: buf, iss: iss | 0, maxSegmentsInFlight: MAX_SEGMENTS_IN_FLIGHT, segmentMax: offload ? unit : undefined, ...over };
}

/** Each connection's share of the TAP queue (see TOTAL_SEGMENTS_IN_FLIGHT), `unit` the largest frame it holds. */
function windowShare(unit: number, connections: number): number {
  return Math.max(2 * unit, idiv(TOTAL_SEGMENTS_IN_FLIGHT * unit, Math.max(1, connections)));
}

/** What FlowEvents reports to: the table, one object for every flow. */
interface FlowOwner {
  readonly hooks: TcpHooks;
  settled(flow: TcpFlow): void;
  removed(flow: TcpFlow): void;
}

/**
 * A connection's events for its flow (set right after the connection is
 * made, before any event can come): one small object per flow whose
 * methods every flow shares, not a closure per event per flow.
 */
class FlowEvents implements TcpAppEvents {
  flow!: TcpFlow;
  constructor(private readonly owner: FlowOwner) {}
  onData(data: Buffer): void {
    this.owner.hooks.data(this.flow, data);
  }
  onEof(): void {
    this.owner.hooks.eof(this.flow);
  }
  onEstablished(): void {
    this.owner.settled(this.flow);
    this.owner.hooks.established(this.flow);
  }
  onSendSpace(): void {
    this.owner.hooks.sendSpace(this.flow);
  }
  onReset(reason: TcpResetReason): void {
    this.owner.hooks.reset(this.flow, reason);
  }
  onClosed(): void {
    this.owner.removed(this.flow);
  }
}

export class TcpTable {
  /**
   * Flows with pending work, each at most once (its `dirty` flag), in
   * dirty[0, dirtyLen): an array that keeps its slots rather than a Set,
   * which would rehash as flows come and go twice per round trip.
   */
  private readonly dirty: Array<TcpFlow | undefined> = [];
  private dirtyLen = 0;
  /** A flush() is running: a nested call leaves the work to it (see flush()). */
  private flushing = false;
  /** The flow whose dispatch is running: what emit() frames segments for. */
  private emitting: TcpFlow | undefined;
  /** The one emit callback every dispatch gets (no closure per flow: one call target for V8). */
  private readonly emit = (seg: TcpSegmentOut, now: number): void => this.emitSegment(this.emitting!, seg, now);
  /** Where segments are built: transmit() copies frames out synchronously (see ipv4Frame). */
  private readonly scratch = Buffer.allocUnsafeSlow(65536 + 128);
  /** At or before the earliest deadline of any flow (see flush()). */
  private nextAt = Infinity;
  /** Counters of flows that are gone; stats() adds the live ones. */
  private readonly closedTotals: TcpConnectionStats = emptyStats();

  /** The flow the last IPv6 segment belonged to (input6's shortcut). */
  private last6: TcpFlow | undefined;

  /** Flows counted as half-open, oldest first. */
  private readonly halfOpenFlows = new Set<TcpFlow>();

  private get halfOpen(): number {
    return this.halfOpenFlows.size;
  }

  /** Shared receive-window ceiling handed to every connection: its share of the TAP queue and of the memory budget. */
  private readonly windowLimit = (held: number): number =>
    Math.min(windowShare(this.opts.offload ? TSO_SEGMENT_MAX : this.ctx.config.mtu - 40, this.size), this.ctx.budget.share(this.size, held));
  /** Send-buffer ceiling: the flow's share of the memory budget. */
  private readonly sndLimit = (held: number): number => this.ctx.budget.share(this.size, held);

  /** What every flow's events report to (FlowEvents). */
  private readonly owner: FlowOwner;
  /** Connection configs by MTU and SYN-ACK retries (see config()). */
  private readonly configs = new Map<number, TcpConnectionConfig>();

  constructor(
    private readonly ctx: StackContext,
    private readonly hooks: TcpHooks,
    private readonly opts: TcpTableOptions,
  ) {
    this.owner = { hooks, settled: (flow) => this.settled(flow), removed: (flow) => this.removeFlow(flow) };
    // TCP flows are never expired or evicted by the table.
    ctx.flows.register('tcp', { expire: () => {} });
  }

  get size(): number {
    return this.ctx.flows.count('tcp');
  }

  /** Live TCP flows (removing the current one while iterating is safe). */
  private live(): IterableIterator<TcpFlow> {
    return this.ctx.flows.each('tcp') as IterableIterator<TcpFlow>;
  }

  private has(flow: TcpFlow): boolean {
    return this.ctx.flows.has(flow);
  }

  /** The stack's memory budget, which the shell's buffers count against too. */
  get budget(): MemoryBudget {
    return this.ctx.budget;
  }

  get(id: number): TcpFlow | undefined {
    const f = this.ctx.flows.get(id);
    return f?.kind === 'tcp' ? (f as TcpFlow) : undefined;
  }

  all(): IterableIterator<TcpFlow> {
    return this.live();
  }

  /** Totals over every connection, open and closed: bytes, segments, retransmissions. */
  stats(): TcpConnectionStats {
    const t = { ...this.closedTotals };
    for (const f of this.live()) addStats(t, f.conn.stats);
    t.bytesIn = reported(t.bytesIn);
    t.bytesOut = reported(t.bytesOut);
    return t;
  }

  private lookup(guestIp: number, guestPort: number, peerIp: number, peerPort: number): TcpFlow | undefined {
    return this.ctx.flows.lookup('tcp', guestIp, guestPort, peerIp, peerPort) as TcpFlow | undefined;
  }

  private removeFlow(flow: TcpFlow): void {
    if (this.ctx.flows.remove(flow)) {
      flow.dirty = false;
      this.settled(flow);
      flow.conn.releaseBuffers();
      this.ctx.counters.count('tcp-flow-closed');
      const s = flow.conn.stats;
      addStats(this.closedTotals, s);
      this.ctx.event?.('tcp flow closed', {
        flow: flow.id,
        guest: `${ipv4ToString(flow.guestIp)}:${flow.guestPort}`,
        peer: `${ipv4ToString(flow.peerIp)}:${flow.peerPort}`,
        bytesIn: reported(s.bytesIn),
        bytesOut: reported(s.bytesOut),
        retransmits: s.retransmits,
      });
      this.hooks.closed(flow);
    }
  }

  /**
   * A connection's config: built once per MTU and SYN-ACK retry count (three
   * objects and spreads per connection before); only the ISS differs, set
   * here just before the connection copies what it keeps (it keeps no
   * reference to the config).
   */
  private config(mtu: number, maxSynAckRetries: number): TcpConnectionConfig {
    const key = mtu * 16 + maxSynAckRetries;
    let c = this.configs.get(key);
    if (c === undefined) this.configs.set(key, (c = connectionConfig(mtu, 0, { maxSynAckRetries, ...this.shared() }, this.opts.offload)));
    c.iss = this.opts.iss() | 0;
    return c;
  }

  /** The flow's handshake is over (or it is gone): it no longer counts as half-open. */
  private settled(flow: TcpFlow): void {
    if (!flow.halfOpen) return;
    flow.halfOpen = false;
    this.halfOpenFlows.delete(flow);
  }

  /**
   * Room for one more half-open flow: true when under the cap, or after
   * resetting the oldest half-open flow whose SYN-ACK already went out
   * unanswered (the host connect resolved); false when all are connecting.
   */
  private admitHalfOpen(now: number): boolean {
    if (this.halfOpen < (this.opts.maxHalfOpen ?? DEFAULT_MAX_HALF_OPEN)) return true;
    for (const flow of this.halfOpenFlows) {
      if (flow.direction !== 'outbound' || flow.synDatagram !== undefined) continue;
      if (now - flow.acceptedAt < HALF_OPEN_OLD_MS) continue; // young: its guest may be about to answer
      this.ctx.drop('tcp-half-open-evicted', `${ipv4ToString(flow.guestIp)}:${flow.guestPort}`);
      this.hooks.reset(flow, 'half-open evicted');
      this.abort(now, flow.id);
      return true;
    }
    return false;
  }

  /**
   * Runs work for one flow; if it throws (a bug), that flow alone is reset —
   * RST to the guest, host socket reset — and the error goes on to the
   * stack's guard to be counted.
   */
  private isolate(now: number, flow: TcpFlow, work: () => void): void {
    try {
      work();
    } catch (e) {
      if (e instanceof WireError) throw e;
      this.fail(now, flow);
      throw e;
    }
  }

  /** Resets a flow whose state can no longer be trusted. */
  private fail(now: number, flow: TcpFlow): void {
    if (!this.has(flow)) return;
    try {
      this.hooks.reset(flow, 'internal-error'); // the host socket goes too
    } finally {
      try {
        this.abort(now, flow.id);
      } catch {
        // Its connection is broken beyond a clean abort: forget it anyway.
        this.removeFlow(flow);
      }
    }
  }

  /** Flows opening (host connect or handshake in progress), for stats. */
  get opening(): number {
    return this.halfOpen;
  }

  /** A segment from the guest over IPv4 (past Ethernet/IPv4 checks). */
  input(now: number, eth: EthernetFrame, ip: Ipv4Packet, tcp: TcpPacket): void {
    // A trusted checksum (offload) is partial or checked by the guest's kernel.
    if (!this.ctx.rxCsumTrusted && !tcp.verifyChecksumV4(ip.src, ip.dst)) throw new WireError('tcp-bad-checksum');
    const seg = TcpRepr.parse(tcp);
    const flow = this.lookup(ip.src, seg.srcPort, ip.dst, seg.dstPort);
    if (flow) {
      this.process(now, flow, seg);
      return;
    }
    this.stray(now, eth.src, seg, {
      guest: ip.src,
      peer: ip.dst,
      datagram: ip.buffer.subarray(0, ip.totalLen),
      route: () => routeFor(this.ctx.config, ip.dst, seg.dstPort, 'tcp', this.opts.nat),
    });
  }

  /**
   * A segment from the guest over IPv6: the TCP header at `offset` of the
   * packet (past the extension headers). Flows hold IPv6 addresses as
   * handles (addresses.ts); a segment whose addresses no flow holds is a
   * new SYN or a stray.
   */
  input6(now: number, eth: EthernetFrame, ip: Ipv6Packet, offset: number): void {
    const src = ip.src;
    const dst = ip.dst;
    const bytes = ip.buffer.subarray(offset, ip.end);
    const tcp = TcpPacket.newChecked(bytes);
    if (!this.ctx.rxCsumTrusted && !tcp.verifyChecksum(pseudoV6(src, dst, IpProtocol.TCP, bytes.length))) throw new WireError('tcp-bad-checksum');
    const seg = TcpRepr.parse(tcp);
    const handles = this.ctx.flows.v6;
    // The flow of the last IPv6 segment first: a bulk transfer's segments
    // all belong to one, and comparing 32 bytes costs less than two key
    // strings and lookups per segment.
    let flow = this.last6;
    if (
      !flow ||
      flow.guestPort !== seg.srcPort ||
      flow.peerPort !== seg.dstPort ||
      !this.has(flow) ||
      !ipv6Equal(src, handles.addr(flow.guestIp)) ||
      !ipv6Equal(dst, handles.addr(flow.peerIp))
    ) {
      const g = handles.find(src);
      const p = g === undefined ? undefined : handles.find(dst);
      flow = p === undefined ? undefined : this.lookup(g!, seg.srcPort, p, seg.dstPort);
      this.last6 = flow;
    }
    if (flow) {
      this.process(now, flow, seg);
      return;
    }
    this.stray(now, eth.src, seg, {
      guest: -1,
      peer: -1,
      v6: { src: Buffer.from(src), dst: Buffer.from(dst) },
      datagram: ip.buffer.subarray(0, ip.end),
      route: () => routeFor6(this.ctx.config, dst, seg.dstPort, 'tcp', this.opts.nat),
    });
  }

  /** A segment for an existing flow. */
  private process(now: number, flow: TcpFlow, seg: TcpRepr): void {
    // isolate() without a closure: this is the per-segment path.
    try {
      flow.conn.process(now, seg);
      flow.conn.deliverEvents(); // while seg's payload (a view of the frame) is valid
    } catch (e) {
      if (!(e instanceof WireError)) this.fail(now, flow);
      throw e;
    }
    if (this.has(flow)) this.markDirty(flow);
  }

  /** A segment no flow matches: a new connection if it is a SYN the policy lets through, else a reset or a drop. */
  private stray(now: number, guestMac: number, seg: TcpRepr, l3: Arrival): void {
    const flags = seg.flags;
    const where = () => `${l3.v6 ? ipv6ToString(l3.v6.dst) : ipv4ToString(l3.peer)}:${seg.dstPort}`;
    if (flags & TcpFlags.RST) {
      this.ctx.drop('tcp-rst-no-flow');
      return;
    }
    if ((flags & (TcpFlags.SYN | TcpFlags.ACK)) !== TcpFlags.SYN) {
      // RFC 9293 §3.10.7.1 (CLOSED): anything but a RST gets a RST.
      this.ctx.drop('tcp-no-flow');
      this.sendReset(guestMac, l3, seg);
      return;
    }
    const route = l3.route();
    if (route.kind === 'drop') {
      this.ctx.drop(route.reason, where());
      return;
    }
    if (route.kind === 'unreachable') {
      this.ctx.drop(route.reason ?? `tcp-unreachable-${route.code}`, where());
      if (route.code === 3) this.sendReset(guestMac, l3, seg);
      else this.sendIcmp(now, route.code, l3.datagram, l3.v6 !== undefined, guestMac);
      return;
    }
    if (!this.admitHalfOpen(now)) {
      // As Linux does with a full SYN queue: drop the SYN. A real guest
      // re-sends it after its RTO (1 s), when an old entry can make room; a
      // RST would fail its connect at once.
      this.ctx.drop('tcp-half-open-full', where());
      return;
    }
    if (!this.ctx.flows.admit()) {
      this.ctx.drop('flow-table-full', `tcp ${where()}`);
      this.sendReset(guestMac, l3, seg);
      return;
    }
    // IPv6 addresses become handles now, right before the flow holds them.
    const guest = l3.v6 ? this.ctx.flows.v6.intern(l3.v6.src) : l3.guest;
    const peer = l3.v6 ? this.ctx.flows.v6.intern(l3.v6.dst) : l3.peer;
    const events = new FlowEvents(this.owner);
    const conn = TcpConnection.fromSyn(now, seg, this.config(this.mtuFor(l3.v6 !== undefined), OUTBOUND_SYNACK_RETRIES), events);
    const flow2: TcpFlow = (events.flow = {
      id: this.ctx.flows.newId(),
      kind: 'tcp',
      lastActive: now,
      guestIp: guest,
      guestPort: seg.srcPort,
      peerIp: peer,
      peerPort: seg.dstPort,
      conn,
      route,
      direction: 'outbound',
      // The start of the SYN's datagram, for an ICMP error quoting it.
      synDatagram: Buffer.from(l3.datagram.subarray(0, Math.min(l3.datagram.length, (l3.v6 ? 40 : 28) + 40))),
      halfOpen: true,
      acceptedAt: Infinity,
      dirty: false,
    });
    this.halfOpenFlows.add(flow2);
    this.ctx.flows.insert(flow2);
    this.ctx.counters.count('tcp-flow-opened');
    this.ctx.event?.('tcp flow opened', {
      flow: flow2.id,
      guest: `${this.text(guest)}:${seg.srcPort}`,
      peer: where(),
      route: route.kind === 'dns' ? 'dns' : route.kind === 'host6' ? route.addr : ipv4ToString(route.addr),
    });
    this.hooks.open(flow2, route);
  }

  /** The MSS a connection offers: the MTU less the IP (20 or 40) and TCP headers. */
  private mtuFor(v6: boolean): number {
    return this.ctx.config.mtu - (v6 ? 20 : 0);
  }

  /** A flow's address as it is: the IPv4 number, or the 16 bytes behind an IPv6 handle. */
  address(a: number): number | Buffer {
    return isIpv6(a) ? this.ctx.flows.v6.addr(a) : a;
  }

  /** An address as text for logs (IPv4, or an IPv6 handle). */
  private text(a: number): string {
    return isIpv6(a) ? ipv6ToString(this.ctx.flows.v6.addr(a)) : ipv4ToString(a);
  }

  /**
   * Port forwarding: opens a connection from peerIp:peerPort (the client as
   * the guest will see it) to guestIp:guestPort. Returns undefined when that
   * 4-tuple is taken (the caller picks another peer port), null when a
   * budget refuses a new flow (the caller resets the client).
   */
  connectInbound(now: number, peerIp: number, peerPort: number, guestIp: number, guestPort: number): TcpFlow | undefined | null {
    if (this.lookup(guestIp, guestPort, peerIp, peerPort)) return undefined;
    return this.openInbound(now, peerIp, peerPort, guestIp, guestPort);
  }

  /**
   * connectInbound over IPv6 (16-byte addresses): the client as the guest
   * will see it (peer) and the guest's address. The addresses become
   * handles only once the flow is admitted.
   */
  connectInbound6(now: number, peer: Uint8Array, peerPort: number, guest: Uint8Array, guestPort: number): TcpFlow | undefined | null {
    const handles = this.ctx.flows.v6;
    const g = handles.find(guest);
    const p = g === undefined ? undefined : handles.find(peer);
    if (p !== undefined && this.lookup(g!, guestPort, p, peerPort)) return undefined;
    return this.openInbound(now, peer, peerPort, guest, guestPort);
  }

  private openInbound(now: number, peerAddr: number | Uint8Array, peerPort: number, guestAddr: number | Uint8Array, guestPort: number): TcpFlow | undefined | null {
    const v6 = typeof guestAddr !== 'number';
    if (!this.admitHalfOpen(now)) {
      this.ctx.drop('tcp-half-open-full', 'inbound');
      return null;
    }
    if (!this.ctx.flows.admit()) {
      this.ctx.drop('flow-table-full', 'tcp inbound');
      return null;
    }
    const guestIp = typeof guestAddr === 'number' ? guestAddr : this.ctx.flows.v6.intern(guestAddr);
    const peerIp = typeof peerAddr === 'number' ? peerAddr : this.ctx.flows.v6.intern(peerAddr);
    const events = new FlowEvents(this.owner);
    // A guest that never answers must not leave the client hanging: give up
    // after SYN retransmissions at 1, 2 and 4 s (RFC 6298 backoff).
    const conn = TcpConnection.connect(now, peerPort, guestPort, this.config(this.mtuFor(v6), INBOUND_SYN_RETRIES), events);
    const flow: TcpFlow = (events.flow = {
      id: this.ctx.flows.newId(),
      kind: 'tcp',
      lastActive: now,
      guestIp,
      guestPort,
      peerIp,
      peerPort,
      conn,
      route: undefined,
      direction: 'inbound',
      synDatagram: undefined,
      halfOpen: true,
      acceptedAt: Infinity,
      dirty: false,
    });
    this.halfOpenFlows.add(flow);
    this.ctx.flows.insert(flow);
    this.ctx.counters.count('tcp-flow-opened');
    this.ctx.event?.('tcp flow opened', {
      flow: flow.id,
      guest: `${this.text(guestIp)}:${guestPort}`,
      peer: `${this.text(peerIp)}:${peerPort}`,
      direction: 'inbound',
    });
    this.markDirty(flow);
    return flow;
  }

  /** What every connection shares: the window and send-buffer ceilings and the memory budget. */
  private shared(): Partial<TcpConnectionConfig> {
    return { windowLimit: this.windowLimit, sndLimit: this.sndLimit, budget: this.ctx.budget, ...this.opts.conn };
  }

  // --- calls from the shell ---------------------------------------------

  /** The host socket connected: answer the guest's SYN. */
  accepted(now: number, id: number): void {
    const flow = this.get(id);
    if (!flow) return;
    flow.synDatagram = undefined;
    flow.acceptedAt = now;
    flow.conn.accept(now);
    this.markDirty(flow);
  }

  /** The host refused the connection: RST to the guest. */
  refused(now: number, id: number): void {
    const flow = this.get(id);
    if (!flow) return;
    flow.conn.refuse(now);
    this.markDirty(flow);
    this.flush(now);
  }

  /** The host could not reach the destination: ICMP unreachable (0 net, 1 host) to the guest, forget the flow. */
  unreachable(now: number, id: number, code: 0 | 1): void {
    const flow = this.get(id);
    if (!flow) return;
    if (flow.synDatagram) this.sendIcmp(now, code, flow.synDatagram, isIpv6(flow.guestIp));
    flow.conn.abort(now);
    this.removeFlow(flow);
  }

  /** Bytes send() would take now for flow id (0 when gone or full). */
  sendSpace(id: number): number {
    return this.get(id)?.conn.sendSpace() ?? 0;
  }

  /** Data from the host socket; returns how much was taken (the rest must wait for sendSpace). */
  send(id: number, data: Buffer): number {
    const flow = this.get(id);
    if (!flow) return data.length; // gone: swallow
    const n = flow.conn.send(data);
    this.markDirty(flow);
    return n;
  }

  /**
   * Flow id's send-buffer room, lent for a host read to land in place (no
   * copy; TcpConnection.lendSendRoom); undefined when gone or full.
   */
  lendSendRoom(id: number, max: number): Buffer | undefined {
    return this.get(id)?.conn.lendSendRoom(max);
  }

  /** A host read put n bytes into the lent room; returns how many were taken (all when the flow is gone: swallowed, as send() does). */
  commitSendRoom(id: number, n: number): number {
    const flow = this.get(id);
    if (!flow) return n;
    const k = flow.conn.commitSendRoom(n);
    this.markDirty(flow);
    return k;
  }

  /** The host socket will read no more into the lent room. */
  unlendSendRoom(id: number): void {
    this.get(id)?.conn.unlendSendRoom();
  }

  consumed(id: number, n: number): void {
    const flow = this.get(id);
    if (!flow) return;
    flow.conn.consumed(n);
    this.markDirty(flow);
  }

  /** The host socket ended its side: FIN to the guest after queued data. */
  close(now: number, id: number): void {
    const flow = this.get(id);
    if (!flow) return;
    flow.conn.close(now);
    this.markDirty(flow);
  }

  /** The host socket failed or was reset: RST to the guest, forget the flow. */
  abort(now: number, id: number): void {
    const flow = this.get(id);
    if (!flow) return;
    flow.conn.abort(now);
    this.dispatchOne(now, flow);
    flow.conn.deliverEvents(); // onClosed: removeFlow
    this.removeFlow(flow);
  }

  private markDirty(flow: TcpFlow): void {
    if (flow.dirty) return;
    flow.dirty = true;
    this.dirty[this.dirtyLen++] = flow;
  }

  /** flow.conn.dispatch with emit() framing for that flow. */
  private dispatchOne(now: number, flow: TcpFlow): void {
    const outer = this.emitting;
    this.emitting = flow;
    try {
      flow.conn.dispatch(now, this.emit);
    } finally {
      this.emitting = outer;
    }
  }

  // --- output -------------------------------------------------------------

  private emitSegment(flow: TcpFlow, seg: TcpSegmentOut, now: number): void {
    const cfg = this.ctx.config;
    const repr = seg.repr;
    const tcpLen = repr.bufferLen();
    // Offload: the checksum is left to the kernel (no pass over the
    // payload here), and a segment longer than the guest's MSS goes whole,
    // for the kernel to cut at seg.gsoSize.
    const offload = this.ctx.offload;
    const mode = offload ? ChecksumMode.Partial : ChecksumMode.Full;
    const gso = offload ? seg.gsoSize : undefined;
    // A large payload stays where it lies, in the send buffer: the headers
    // are built here and the link writes both pieces (Port.sendParts).
    const data = repr.payload;
    const parts = data.length >= PARTS_MIN && this.ctx.partsOk;
    if (isIpv6(flow.guestIp)) {
      const handles = this.ctx.flows.v6;
      const src = handles.addr(flow.peerIp);
      const dst = handles.addr(flow.guestIp);
      const { frame, payload } = ipv6Frame(macFor6(cfg.ipv6!, src), 0, new Ipv6Repr({ src, dst, nextHeader: IpProtocol.TCP, payloadLen: tcpLen }), this.scratch);
      const out = fillSegment(repr, frame, payload, pseudoV6(src, dst, IpProtocol.TCP, tcpLen), mode, parts);
      this.ctx.sendToGuest6(now, dst, out, gso, parts ? data : undefined);
      return;
    }
    const ipr = new Ipv4Repr({ src: flow.peerIp, dst: flow.guestIp, protocol: IpProtocol.TCP, payloadLen: tcpLen, ttl: 64 });
    const { frame, payload } = ipv4Frame(this.ctx.ownMac(flow.peerIp) ?? cfg.gatewayMac, 0, ipr, this.scratch);
    const out = fillSegment(repr, frame, payload, pseudoV4(flow.peerIp, flow.guestIp, IpProtocol.TCP, tcpLen), mode, parts);
    // The guest's MAC from the neighbor table; an inbound flow may start
    // before the guest has said anything, and then ARP asks first.
    this.ctx.sendToGuest(now, flow.guestIp, out, gso, parts ? data : undefined);
  }

  /**
   * Dispatches every flow with pending work. Every event that can move a
   * flow's deadline marks it dirty, so folding the dispatched flows'
   * deadlines into nextAt keeps it at or before the true earliest deadline
   * without scanning all flows after each batch (a timer that fires early
   * just finds nothing due; poll() then recomputes nextAt exactly).
   */
  flush(now: number): void {
    // Memory pressure eased: flows the budget held back may send and open
    // their windows again (their own ACKs would never wake them).
    if (this.ctx.budget.relieved()) {
      for (const flow of this.live()) {
        this.isolate(now, flow, () => flow.conn.wake());
        this.markDirty(flow);
      }
    }
    const dirty = this.dirty;
    // Flows marked during the loop are appended and dispatched by it, so a
    // flush called from inside one (a hook's callback) has nothing to add;
    // running its own loop would reset dirtyLen under this one.
    if (this.dirtyLen === 0 || this.flushing) return;
    this.flushing = true;
    let failure: unknown;
    let i = 0;
    try {
      for (; i < this.dirtyLen; i++) {
        const flow = dirty[i]!;
        dirty[i] = undefined;
        if (!flow.dirty) continue; // removed since it was marked
        flow.dirty = false;
        try {
          this.dispatchOne(now, flow);
          flow.conn.deliverEvents();
        } catch (e) {
          this.fail(now, flow); // that flow is reset; the others are still dispatched
          failure ??= e;
          continue;
        }
        if (this.has(flow)) {
          const at = flow.conn.pollAt();
          if (at < this.nextAt) this.nextAt = at;
        }
      }
    } finally {
      // Normally nothing is left; if the loop itself threw, what it had not
      // reached stays marked and listed for the next flush.
      let k = 0;
      for (let j = i + 1; j < this.dirtyLen; j++) {
        dirty[k++] = dirty[j];
        dirty[j] = undefined;
      }
      this.dirtyLen = k;
      this.flushing = false;
    }
    if (failure !== undefined) throw failure;
  }

  /** Timers: dispatch flows whose deadline passed, then recompute nextAt over all flows. */
  poll(now: number): void {
    for (const flow of this.live()) {
      if (flow.conn.pollAt() <= now) this.markDirty(flow);
    }
    this.flush(now);
    let t = Infinity;
    for (const flow of this.live()) {
      const p = flow.conn.pollAt();
      if (p < t) t = p;
    }
    this.nextAt = t;
  }

  /** When poll() next has work: never later than the earliest flow deadline (possibly earlier). */
  pollAt(): number {
    return this.nextAt;
  }

  /** Resets every connection (shutdown). */
  abortAll(now: number): void {
    for (const flow of [...this.live()]) this.abort(now, flow.id);
  }

  // --- replies that belong to no connection ---------------------------------

  /** RFC 9293 §3.10.7.1: the reset answering `seg`, from the address it went to, back to the guest. */
  private sendReset(guestMac: number, l3: Arrival, seg: TcpRepr): void {
    const rst = rstForUnknown(seg);
    if (!rst) return; // never answer a reset
    const len = rst.bufferLen();
    const cfg = this.ctx.config;
    if (l3.v6) {
      const { frame, payload } = ipv6Frame(macFor6(cfg.ipv6!, l3.v6.dst), guestMac, new Ipv6Repr({ src: l3.v6.dst, dst: l3.v6.src, nextHeader: IpProtocol.TCP, payloadLen: len }));
      rst.emit(payload, pseudoV6(l3.v6.dst, l3.v6.src, IpProtocol.TCP, len));
      this.ctx.counters.count('tcp-rst-sent');
      this.ctx.transmit(frame);
      return;
    }
    const from = l3.peer;
    const to = l3.guest;
    const { frame, payload } = ipv4Frame(
      this.ctx.ownMac(from) ?? cfg.gatewayMac,
      guestMac,
      new Ipv4Repr({ src: from, dst: to, protocol: IpProtocol.TCP, payloadLen: len }),
    );
    rst.emit(payload, pseudoV4(from, to, IpProtocol.TCP, len));
    this.ctx.counters.count('tcp-rst-sent');
    this.ctx.transmit(frame);
  }

  /**
   * Destination unreachable (IPv4 codes: 0 net, 1 host) for the guest's
   * datagram, from the gateway as from a router: ICMP, or ICMPv6 (no route,
   * address unreachable) when the datagram is IPv6. To `guestMac` when
   * answering the frame just received, else through the neighbor tables.
   */
  private sendIcmp(now: number, code: number, datagram: Buffer, v6: boolean, guestMac?: number): void {
    const cfg = this.ctx.config;
    this.ctx.counters.count('icmp-unreachable-sent');
    if (v6) {
      const guest = Buffer.from(datagram.subarray(8, 24));
      const frame = icmpv6UnreachableFrame(cfg.ipv6!, guestMac ?? 0, guest, code === 0 ? 0 : 3, datagram, cfg.mtu);
      if (guestMac !== undefined) this.ctx.transmit(frame);
      else this.ctx.sendToGuest6(now, guest, frame);
      return;
    }
    const guest = datagram.readUInt32BE(12);
    const frame = icmpUnreachableFrame(cfg.gatewayMac, guestMac ?? 0, cfg.gateway, guest, code, datagram, cfg.mtu);
    if (guestMac !== undefined) this.ctx.transmit(frame);
    else this.ctx.sendToGuest(now, guest, frame);
  }
}

/**
 * Payloads from this size on go to the link beside their headers rather
 * than copied behind them (when it takes frames in two pieces): below it a
 * copy costs less than the scatter write.
 */
const PARTS_MIN = 2048;

/**
 * Writes TCP segment `repr` into `region` (the IP payload of `frame`) and
 * returns what to send: the whole frame, or with `parts` the headers alone
 * (the payload goes beside them).
 */
function fillSegment(repr: TcpRepr, frame: Buffer, region: Buffer, pseudo: number, mode: ChecksumMode, parts: boolean): Buffer {
  if (!parts) {
    repr.emit(region, pseudo, mode);
    return frame;
  }
  repr.emitHeader(region, pseudo, mode);
  return frame.subarray(0, frame.length - repr.payload.length);
}

function emptyStats(): TcpConnectionStats {
  return { bytesIn: DOUBLE_ZERO, bytesOut: DOUBLE_ZERO, retransmits: 0, segmentsIn: 0, segmentsOut: 0, dupAcks: 0, fastRetransmits: 0, rtoFired: 0, outOfOrder: 0 };
}

function addStats(into: TcpConnectionStats, s: TcpConnectionStats): void {
  for (const k of Object.keys(into) as Array<keyof TcpConnectionStats>) into[k] += s[k];
}
