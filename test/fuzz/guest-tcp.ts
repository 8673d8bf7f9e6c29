// The guest's TCP, played by the fuzzer: a small model of a guest kernel
// that opens connections through the stack, answers the SYNs of forwarded
// connections, sends its stream, acknowledges (with SACK and timestamps when
// negotiated), shrinks and reopens its window, retransmits, reorders,
// half-closes and resets — driven by the seeded PRNG and by what the stack
// sends back (observe()). It exists so fuzzing reaches the connection state
// machines instead of being turned away at the door.
//
// While doing so it checks the stack from the guest's side:
//   - every data byte the stack sends matches the host's stream at its offset
//     (the StreamOracle), and the FIN sits right after the host's last byte;
//   - the stack never sends data beyond the right window edge the guest
//     advertised (a one-byte window probe aside);
//   - the stack never acknowledges sequence space the guest never sent, and
//     its SYN-ACK acknowledges exactly the guest's SYN.
//
// Guest source ports 20000–59999 are reserved for the model; the other
// generators stay below, so frames on these 4-tuples come from here alone
// (anything else that lands on one taints it, see streams.ts).

import { ArpOperation, ArpPacket, ArpRepr } from '../../src/wire/arp.js';
import { EtherType, EthernetFrame } from '../../src/wire/ethernet.js';
import { Icmpv4Packet, Icmpv4Repr, Icmpv4Type } from '../../src/wire/icmpv4.js';
import { IpProtocol, Ipv4Packet } from '../../src/wire/ipv4.js';
import { TcpFlags, TcpPacket, TcpRepr, type TcpFields } from '../../src/wire/tcp.js';
import { AddressPlan, GUEST2_MAC, GUEST_MAC } from './addresses.js';
import { arp, eth, fixChecksums, ipv4, tcp } from './build.js';
import type { Rng } from './rng.js';
import { tupleKey, type StreamOracle } from './streams.js';

export const MODEL_PORT_LO = 20000;
export const MODEL_PORT_HI = 59999;

const MAX_CONVS = 48;
const MAX_OOO = 8;

const seqLt = (a: number, b: number): boolean => ((a - b) | 0) < 0;
const seqGt = (a: number, b: number): boolean => ((a - b) | 0) > 0;
const seqAdd = (a: number, n: number): number => (a + n) >>> 0;
const seqSub = (a: number, b: number): number => (a - b) >>> 0;

type ConvState = 'syn-sent' | 'syn-rcvd' | 'open' | 'closed';

interface Conv {
  id: number;
  key: string;
  role: 'client' | 'server';
  state: ConvState;
  guestMac: number;
  guestIp: number;
  guestPort: number;
  peerIp: number;
  peerPort: number;
  dstMac: number;
  // sending
  iss: number;
  /** Data bytes sent (stream offset of the next new byte). */
  sentOff: number;
  /** Data bytes the guest app has to send in all. */
  appBytes: number;
  /** Highest sequence number sent + 1 (data and FIN included). */
  sndMax: number;
  sndUna: number;
  peerWnd: number;
  finSent: boolean;
  finAcked: boolean;
  /** A segment sent out of order, to be sent later. */
  held: { off: number; len: number } | undefined;
  lastSendAt: number;
  // options
  synOpts: { mss?: number; ws?: number; sack: boolean; ts: boolean };
  peerMss: number;
  wsOk: boolean;
  peerShift: number;
  myShift: number;
  tsOk: boolean;
  tsRecent: number;
  tsBase: number;
  sackOk: boolean;
  // receiving
  irs: number;
  rcvNxt: number;
  /** Highest right edge advertised (rcvNxt + window). */
  edge: number;
  /** Largest window field in our SYNs. */
  synWindow: number;
  synTries: number;
  ooo: Array<[number, number]>;
  paused: boolean;
  peerFin: boolean;
  needAck: boolean;
  needSynAck: boolean;
  /** Segment received from the stack since the last ACK sent (for stats/ack pacing). */
}

export interface GuestTcpStats {
  opened: number;
  inboundAnswered: number;
  established: number;
  closedClean: number;
  resetByStack: number;
  resetByGuest: number;
  bytesToHost: number;
  bytesToGuest: number;
  rstForUnknown: number;
  arpAnswered: number;
  unreachable: number;
}

export interface ModelFrame {
  kind: string;
  frame: Buffer;
}

export class GuestTcp {
  private readonly convs = new Map<string, Conv>();
  private readonly urgent = new Set<Conv>();
  /** Frames owed to the stack that belong to no connection (RSTs for strays, ARP replies). */
  private readonly owed: ModelFrame[] = [];
  private nextPort = MODEL_PORT_LO;
  private readonly tupleUsedAt = new Map<string, number>();
  private nextId = 1;
  private now = 0;
  readonly stats: GuestTcpStats = {
    opened: 0,
    inboundAnswered: 0,
    established: 0,
    closedClean: 0,
    resetByStack: 0,
    resetByGuest: 0,
    bytesToHost: 0,
    bytesToGuest: 0,
    rstForUnknown: 0,
    arpAnswered: 0,
    unreachable: 0,
  };

  constructor(
    private readonly r: Rng,
    private readonly plan: AddressPlan,
    private readonly oracle: StreamOracle,
  ) {}

  get active(): number {
    return this.convs.size;
  }

  /** Does a frame on this guest port belong to the model? */
  static isModelPort(port: number): boolean {
    return port >= MODEL_PORT_LO && port <= MODEL_PORT_HI;
  }

  /**
   * Some other generator sent a TCP segment on this 4-tuple: stop checking
   * it, and do not check a connection the model opens on it within the hour
   * either (the stack may hold a flow that segment opened).
   */
  taint(guestIp: number, guestPort: number, peerIp: number, peerPort: number): void {
    const key = tupleKey(guestIp, guestPort, peerIp, peerPort);
    this.oracle.taint(key);
    this.tupleUsedAt.set(key, this.now);
  }

  /** The guest "rebooted": forget every connection (the stack's flows will time out). */
  reboot(): void {
    for (const c of this.convs.values()) this.oracle.forget(c.key);
    this.convs.clear();
    this.urgent.clear();
  }

  // ------------------------------------------------------------------ output

  /** The next frame the guest sends (a reply owed, or a new action). */
  next(now: number): ModelFrame {
    this.now = now;
    const owed = this.owed.shift();
    if (owed) return owed;
    if (this.urgent.size > 0 && this.r.chance(0.85)) {
      const c = this.urgent.values().next().value as Conv;
      this.urgent.delete(c);
      const f = this.respond(c);
      if (f) return f;
    }
    const open = this.convs.size;
    const action = this.r.weighted<string>([
      [open < MAX_CONVS ? 12 : 0, 'open'],
      [open > 0 ? 40 : 0, 'data'],
      [open > 0 ? 10 : 0, 'ack'],
      [open > 0 ? 6 : 0, 'retransmit'],
      [open > 0 ? 4 : 0, 'window'],
      [open > 0 ? 5 : 0, 'fin'],
      [open > 0 ? 1.5 : 0, 'rst'],
      [open > 0 ? 3 : 0, 'odd'],
      [open > 0 ? 0.5 : 0, 'abandon'],
      [0.02, 'reboot'],
      [open === 0 ? 1 : 0, 'open'],
    ]);
    if (action === 'reboot') {
      this.reboot();
      return this.open();
    }
    if (action === 'open') return this.open();
    const c = this.pickConv();
    switch (action) {
      case 'data':
        return this.sendData(c) ?? this.ackFrame(c, 'tcp-conv-ack');
      case 'ack':
        return this.ackFrame(c, 'tcp-conv-ack');
      case 'retransmit':
        return this.retransmit(c);
      case 'window':
        c.paused = !c.paused;
        return this.ackFrame(c, c.paused ? 'tcp-conv-zero-window' : 'tcp-conv-window-update');
      case 'fin':
        return this.sendFin(c) ?? this.ackFrame(c, 'tcp-conv-ack');
      case 'rst':
        return this.sendRst(c);
      case 'odd':
        return this.odd(c);
      default: {
        // abandon: the guest forgets the connection without a word.
        this.drop(c);
        return this.open();
      }
    }
  }

  private pickConv(): Conv {
    const n = this.r.int(this.convs.size);
    let i = 0;
    for (const c of this.convs.values()) if (i++ === n) return c;
    throw new Error('unreachable');
  }

  private drop(c: Conv): void {
    this.convs.delete(c.key);
    this.urgent.delete(c);
  }

  private open(): ModelFrame {
    const r = this.r;
    if (this.convs.size >= MAX_CONVS) this.drop(this.convs.values().next().value as Conv);
    const second = r.chance(0.1);
    const guestIp = second ? this.plan.guest2 : this.plan.guest;
    const guestMac = second ? GUEST2_MAC : GUEST_MAC;
    const dst = r.weighted<[number, number]>([
      [45, [this.plan.gateway, r.pick([80, 8080, 18099, 22, 443, 1024 + r.int(60000)])]],
      [35, [this.plan.of('outside', r), r.pick([80, 443, 25, 8443])]],
      [12, [this.plan.dns, 53]],
      [2, [this.plan.dns, 80]],
      [2, [this.plan.of('net-other', r), 80]],
      [2, [this.plan.of(r.pick(['loopback', 'multicast', 'limited-broadcast', 'this-network', 'net-broadcast'] as const), r), 80]],
      [2, [this.plan.gateway, 0]],
    ]);
    const port = this.nextPort;
    this.nextPort = port >= MODEL_PORT_HI ? MODEL_PORT_LO : port + 1;
    const key = tupleKey(guestIp, port, dst[0], dst[1]);
    const synOpts = {
      mss: r.weighted<number | undefined>([
        [60, 1460],
        [10, 536],
        [4, 0],
        [3, 1],
        [4, 65535],
        [4, 48],
        [5, 88],
        [10, undefined],
      ]),
      ws: r.weighted<number | undefined>([
        [45, 7],
        [10, 0],
        [10, 14],
        [5, r.range(15, 255)],
        [30, undefined],
      ]),
      sack: r.chance(0.6),
      ts: r.chance(0.5),
    };
    const iss = r.chance(0.1) ? r.pick([0, 0xffffffff, 0xfffffff0, 0x7fffffff]) : r.u32();
    const c: Conv = {
      id: this.nextId++,
      key,
      role: 'client',
      state: 'syn-sent',
      guestMac,
      guestIp,
      guestPort: port,
      peerIp: dst[0],
      peerPort: dst[1],
      dstMac: this.plan.dstMacFor(dst[0]),
      iss,
      sentOff: 0,
      appBytes: r.weighted<number>([
        [30, 0],
        [30, r.int(200)],
        [25, r.int(20000)],
        [12, r.int(200_000)],
        [3, 1_000_000],
      ]),
      sndMax: seqAdd(iss, 1),
      sndUna: iss,
      peerWnd: 0,
      finSent: false,
      finAcked: false,
      held: undefined,
      lastSendAt: this.now,
      synOpts,
      peerMss: 536,
      wsOk: false,
      peerShift: 0,
      myShift: synOpts.ws !== undefined ? Math.min(14, synOpts.ws) : 0,
      tsOk: false,
      tsRecent: 0,
      tsBase: r.u32(),
      sackOk: false,
      irs: 0,
      rcvNxt: 0,
      edge: 0,
      synWindow: 0,
      synTries: 0,
      ooo: [],
      paused: false,
      peerFin: false,
      needAck: false,
      needSynAck: false,
    };
    this.convs.set(key, c);
    this.oracle.track(key);
    // A 4-tuple used within the hour may still have a flow in the stack
    // (TIME-WAIT, retransmissions toward a vanished guest): fuzz, don't check.
    const last = this.tupleUsedAt.get(key);
    if (last !== undefined && this.now - last < 3_600_000) this.oracle.taint(key);
    this.tupleUsedAt.set(key, this.now);
    if (this.tupleUsedAt.size > 200_000) this.tupleUsedAt.clear();
    this.stats.opened++;
    return this.synFrame(c, 'tcp-conv-syn');
  }

  private synFrame(c: Conv, kind: string): ModelFrame {
    const o = c.synOpts;
    const window = this.r.chance(0.9) ? 64240 : this.r.interesting16();
    if (window > c.synWindow) c.synWindow = window;
    c.lastSendAt = this.now;
    return this.frame(c, kind, {
      srcPort: c.guestPort,
      dstPort: c.peerPort,
      seq: c.iss,
      ack: 0,
      flags: TcpFlags.SYN | (this.r.chance(0.05) ? TcpFlags.ECE | TcpFlags.CWR : 0),
      window,
      mss: o.mss,
      windowScale: o.ws,
      sackPermitted: o.sack,
      tsVal: o.ts ? this.tsVal(c) : undefined,
      tsEcr: o.ts ? 0 : undefined,
    });
  }

  private tsVal(c: Conv): number {
    return (c.tsBase + Math.floor(this.now)) >>> 0;
  }

  /** The window field to advertise now (0 while the app is "paused"). */
  private windowField(c: Conv): number {
    if (c.paused) return 0;
    const bytes = this.r.chance(0.9) ? 256 * 1024 : this.r.pick([536, 4096, 65535, 8 * 1024 * 1024]);
    return Math.min(0xffff, Math.ceil(bytes / 2 ** (c.wsOk ? c.myShift : 0)));
  }

  /** A segment of this connection (window recorded for the right-edge check). */
  private seg(c: Conv, kind: string, flags: number, seq: number, payload?: Buffer, extra: Partial<TcpFields> = {}, counts = true): ModelFrame {
    const window = this.windowField(c);
    const synchronized = c.state !== 'syn-sent';
    const f: TcpFields = {
      srcPort: c.guestPort,
      dstPort: c.peerPort,
      seq,
      ack: synchronized ? c.rcvNxt : 0,
      flags: flags | (synchronized && !(flags & TcpFlags.RST) ? TcpFlags.ACK : 0),
      window,
      payload,
      tsVal: c.tsOk ? this.tsVal(c) : undefined,
      tsEcr: c.tsOk ? c.tsRecent : undefined,
      sackBlocks: c.sackOk && c.ooo.length > 0 ? c.ooo.slice(0, 4).map(([a, b]) => [a, b] as [number, number]) : undefined,
      ...extra,
    };
    if (synchronized && f.flags & TcpFlags.ACK) {
      const right = seqAdd(f.ack, f.window * 2 ** (c.wsOk ? c.myShift : 0));
      if (seqGt(right, c.edge)) c.edge = right;
      c.needAck = false;
    }
    return this.frame(c, kind, f, counts);
  }

  /** Builds the frame; `counts`: the segment is part of the guest's real sequence space (for the ack check). */
  private frame(c: Conv, kind: string, f: TcpFields, counts = true): ModelFrame {
    const end = seqAdd(f.seq, (f.payload?.length ?? 0) + (f.flags & TcpFlags.SYN ? 1 : 0) + (f.flags & TcpFlags.FIN ? 1 : 0));
    if (counts && seqGt(end, c.sndMax)) c.sndMax = end;
    const seg = tcp(c.guestIp, c.peerIp, f);
    const ip = ipv4({ src: c.guestIp, dst: c.peerIp, protocol: IpProtocol.TCP, ident: this.r.u16() }, seg);
    return { kind, frame: eth(c.guestMac, c.dstMac, EtherType.IPv4, ip) };
  }

  /** SYN-SENT: retransmit the SYN on a backoff, give up after a few (then do something else). */
  private synRetry(c: Conv): ModelFrame {
    if (c.synTries >= 6) {
      this.drop(c);
      return this.open();
    }
    if (this.now - c.lastSendAt < 200 * 2 ** c.synTries) return this.open();
    c.synTries++;
    return this.synFrame(c, 'tcp-conv-syn-retransmit');
  }

  private ackFrame(c: Conv, kind: string): ModelFrame {
    if (c.state === 'syn-sent') return this.synRetry(c);
    if (c.state === 'syn-rcvd' && c.role === 'server') return this.synAckFrame(c);
    const seq = seqAdd(c.iss, 1 + c.sentOff + (c.finSent ? 1 : 0));
    return this.seg(c, kind, 0, seq);
  }

  private synAckFrame(c: Conv): ModelFrame {
    const o = c.synOpts;
    const window = 64240;
    c.edge = seqAdd(c.rcvNxt, window);
    c.lastSendAt = this.now;
    return this.frame(c, 'tcp-conv-synack', {
      srcPort: c.guestPort,
      dstPort: c.peerPort,
      seq: c.iss,
      ack: c.rcvNxt,
      flags: TcpFlags.SYN | TcpFlags.ACK,
      window,
      mss: o.mss,
      windowScale: c.wsOk ? o.ws : undefined,
      sackPermitted: c.sackOk,
      tsVal: c.tsOk ? this.tsVal(c) : undefined,
      tsEcr: c.tsOk ? c.tsRecent : undefined,
    });
  }

  /** What a connection owes the stack right now (ACK, SYN-ACK), if anything. */
  private respond(c: Conv): ModelFrame | undefined {
    if (!this.convs.has(c.key)) return undefined;
    if (c.needSynAck) {
      c.needSynAck = false;
      return this.synAckFrame(c);
    }
    if (c.needAck && c.state !== 'closed') {
      // Piggyback data on the ACK sometimes, as a real guest does.
      if (this.r.chance(0.3)) {
        const d = this.sendData(c);
        if (d) return d;
      }
      return this.ackFrame(c, 'tcp-conv-ack');
    }
    if (c.state === 'closed' && c.needAck) {
      c.needAck = false;
      const f = this.seg(c, 'tcp-conv-final-ack', 0, seqAdd(c.iss, 1 + c.sentOff + (c.finSent ? 1 : 0)));
      this.drop(c);
      return f;
    }
    return undefined;
  }

  private mss(c: Conv): number {
    return Math.max(1, Math.min(c.peerMss, 1460));
  }

  private sendData(c: Conv): ModelFrame | undefined {
    if (c.state !== 'open' || c.finSent) return undefined;
    if (c.held && this.r.chance(0.5)) {
      const h = c.held;
      c.held = undefined;
      return this.dataFrame(c, h.off, h.len, 'tcp-conv-data-reordered');
    }
    const left = c.appBytes - c.sentOff;
    if (left <= 0) return undefined;
    const inFlight = c.sentOff - seqSub(c.sndUna, seqAdd(c.iss, 1));
    let room = c.peerWnd - inFlight;
    // A guest that ignores the window now and then (the stack must trim).
    if (this.r.chance(0.03)) room = Math.max(room, this.mss(c) * 2);
    if (room <= 0) {
      // Zero window: a one-byte probe now and then.
      if (this.r.chance(0.2)) return this.dataFrame(c, c.sentOff, 1, 'tcp-conv-window-probe');
      return undefined;
    }
    const len = Math.min(left, room, this.r.chance(0.7) ? this.mss(c) : 1 + this.r.int(this.mss(c)));
    const off = c.sentOff;
    c.sentOff += len;
    if (c.held === undefined && this.r.chance(0.05) && c.sentOff < c.appBytes) {
      // Send this one later: the next segment overtakes it.
      c.held = { off, len };
      const len2 = Math.min(c.appBytes - c.sentOff, this.mss(c));
      const off2 = c.sentOff;
      c.sentOff += len2;
      return this.dataFrame(c, off2, len2, 'tcp-conv-data-ahead');
    }
    return this.dataFrame(c, off, len, 'tcp-conv-data');
  }

  private dataFrame(c: Conv, off: number, len: number, kind: string): ModelFrame {
    c.lastSendAt = this.now;
    const payload = this.oracle.pattern(c.key, 'to-host').bytes(off, len);
    this.stats.bytesToHost += len;
    return this.seg(c, kind, this.r.chance(0.5) ? TcpFlags.PSH : 0, seqAdd(c.iss, 1 + off), payload);
  }

  private retransmit(c: Conv): ModelFrame {
    if (c.state === 'syn-sent') return this.synRetry(c);
    if (c.state === 'syn-rcvd' && c.role === 'server') return this.synAckFrame(c);
    const una = seqSub(c.sndUna, seqAdd(c.iss, 1));
    if (c.finSent && c.sentOff <= una) return this.seg(c, 'tcp-conv-fin-retransmit', TcpFlags.FIN, seqAdd(c.iss, 1 + c.sentOff));
    if (c.sentOff === 0) return this.ackFrame(c, 'tcp-conv-dup-ack');
    // Anywhere in what was sent: from SND.UNA, overlapping, or long acknowledged.
    const from = this.r.chance(0.6) ? Math.min(una, c.sentOff - 1) : this.r.int(c.sentOff);
    const len = Math.max(1, Math.min(c.sentOff - from, 1 + this.r.int(this.mss(c))));
    return this.dataFrame(c, from, len, 'tcp-conv-retransmit');
  }

  private sendFin(c: Conv): ModelFrame | undefined {
    if (c.state !== 'open' || c.finSent) return undefined;
    if (c.sentOff < c.appBytes && this.r.chance(0.8)) return undefined;
    if (c.held) {
      const h = c.held;
      c.held = undefined;
      return this.dataFrame(c, h.off, h.len, 'tcp-conv-data-reordered');
    }
    c.finSent = true;
    c.appBytes = c.sentOff;
    this.oracle.expectEof(c.key, c.sentOff);
    const data = this.r.chance(0.2) && c.sentOff > 0;
    if (data) {
      // FIN riding on the last bytes again (a retransmission with FIN).
      const off = Math.max(0, c.sentOff - 1 - this.r.int(Math.min(c.sentOff, 100)));
      const payload = this.oracle.pattern(c.key, 'to-host').bytes(off, c.sentOff - off);
      return this.seg(c, 'tcp-conv-fin', TcpFlags.FIN | TcpFlags.PSH, seqAdd(c.iss, 1 + off), payload);
    }
    return this.seg(c, 'tcp-conv-fin', TcpFlags.FIN, seqAdd(c.iss, 1 + c.sentOff));
  }

  private sendRst(c: Conv): ModelFrame {
    this.stats.resetByGuest++;
    const seq = seqAdd(c.iss, 1 + c.sentOff + (c.finSent ? 1 : 0));
    const f = c.state === 'syn-sent'
      ? this.frame(c, 'tcp-conv-rst', { srcPort: c.guestPort, dstPort: c.peerPort, seq, ack: 0, flags: TcpFlags.RST, window: 0 })
      : this.seg(c, 'tcp-conv-rst', TcpFlags.RST | (this.r.chance(0.5) ? TcpFlags.ACK : 0), seq);
    this.drop(c);
    this.oracle.forget(c.key);
    return f;
  }

  /**
   * Odd segments inside a live connection: SYN again, RST or data outside
   * the window, ACKs of unsent data, URG, no flags at all. Those that carry
   * bytes not from the stream taint the connection.
   */
  private odd(c: Conv): ModelFrame {
    const r = this.r;
    // Only once synchronized: a second SYN with another ISS during the
    // handshake is a new connection attempt, which the stack may rightly take.
    if (c.state !== 'open') return this.ackFrame(c, 'tcp-conv-ack');
    const nxt = seqAdd(c.iss, 1 + c.sentOff + (c.finSent ? 1 : 0));
    const what = r.int(9);
    switch (what) {
      case 0:
        return this.seg(c, 'tcp-conv-odd-syn', TcpFlags.SYN, r.chance(0.5) ? c.iss : nxt, undefined, {}, false);
      case 1:
        return this.seg(c, 'tcp-conv-odd-rst-outside', TcpFlags.RST, seqAdd(nxt, 0x10000000 + r.int(0x1000000)), undefined, {}, false);
      case 2:
        return this.seg(c, 'tcp-conv-odd-rst-inside', TcpFlags.RST, seqAdd(nxt, 1 + r.int(1000)), undefined, {}, false);
      case 3:
        return this.seg(c, 'tcp-conv-odd-future-ack', 0, nxt, undefined, { ack: seqAdd(c.rcvNxt, 1 + r.int(100000)) }, false);
      case 4:
        return this.seg(c, 'tcp-conv-odd-old-ack', 0, nxt, undefined, { ack: seqSub(c.rcvNxt, 1 + r.int(1 << 30)) }, false);
      case 5: {
        // Data far beyond the window (the stack must drop it): stream bytes, so no taint.
        const off = c.sentOff + 0x100000 + r.int(1 << 20);
        return this.seg(c, 'tcp-conv-odd-beyond-window', 0, seqAdd(c.iss, 1 + off), this.oracle.pattern(c.key, 'to-host').bytes(off, 1 + r.int(100)), {}, false);
      }
      case 6:
        return this.seg(c, 'tcp-conv-odd-urg', TcpFlags.URG | TcpFlags.PSH, nxt, undefined, { urgent: r.interesting16() }, false);
      case 7: {
        const f = this.seg(c, 'tcp-conv-odd-noflags', 0, nxt, undefined, {}, false);
        // Clear every flag, ACK included (IPv4 header without options: TCP at 34).
        f.frame[34 + 13] = 0;
        fixChecksums(f.frame);
        return f;
      }
      default: {
        // Garbage bytes in the window: the stack may deliver them, so stop checking.
        this.oracle.taint(c.key);
        return this.seg(c, 'tcp-conv-odd-garbage', TcpFlags.PSH, nxt, r.bytes(1 + r.int(300)));
      }
    }
  }

  // ------------------------------------------------------------------ input

  /** A frame the stack transmitted (valid until return: copy what is kept). */
  observe(frame: Buffer): void {
    let e: EthernetFrame;
    try {
      e = EthernetFrame.newChecked(frame);
      if (e.ethertype === EtherType.ARP) {
        this.observeArp(e);
        return;
      }
      if (e.ethertype !== EtherType.IPv4) return;
      const ip = Ipv4Packet.newChecked(e.payload);
      if (ip.protocol === IpProtocol.ICMP) {
        this.observeIcmp(Icmpv4Repr.parse(Icmpv4Packet.newChecked(ip.payload)));
        return;
      }
      if (ip.protocol !== IpProtocol.TCP || ip.isFragment) return;
      const seg = TcpRepr.parse(TcpPacket.newChecked(ip.payload));
      // This model keeps sequence numbers unsigned; TcpRepr holds them signed (same bits).
      seg.seq >>>= 0;
      seg.ack >>>= 0;
      if (seg.tsVal !== undefined) seg.tsVal >>>= 0;
      if (seg.tsEcr !== undefined) seg.tsEcr >>>= 0;
      if (seg.sackBlocks) seg.sackBlocks = seg.sackBlocks.map(([l, r]) => [l >>> 0, r >>> 0]);
      this.observeTcp(ip.dst, ip.src, seg);
    } catch {
      // Malformed output is the invariant checker's business.
    }
  }

  /** Destination unreachable about a SYN of ours: connect() fails, as in a guest kernel. */
  private observeIcmp(m: Icmpv4Repr): void {
    if (m.type !== Icmpv4Type.DstUnreachable) return;
    const d = m.data;
    const hl = (d[0]! & 0xf) * 4;
    if (d.length < hl + 4 || d[9] !== IpProtocol.TCP) return;
    const c = this.convs.get(tupleKey(d.readUInt32BE(12), d.readUInt16BE(hl), d.readUInt32BE(16), d.readUInt16BE(hl + 2)));
    if (c && c.state === 'syn-sent') {
      this.stats.unreachable++;
      this.drop(c);
    }
  }

  private observeArp(e: EthernetFrame): void {
    const a = ArpRepr.parse(ArpPacket.newChecked(e.payload));
    if (a.operation !== ArpOperation.Request) return;
    const mac = a.targetIp === this.plan.guest ? GUEST_MAC : a.targetIp === this.plan.guest2 ? GUEST2_MAC : undefined;
    if (mac === undefined || this.r.chance(0.1)) return;
    this.stats.arpAnswered++;
    this.owed.push({
      kind: 'arp-answer',
      frame: eth(mac, a.senderMac, EtherType.ARP, arp({ operation: ArpOperation.Reply, senderMac: mac, senderIp: a.targetIp, targetMac: a.senderMac, targetIp: a.senderIp })),
    });
  }

  private observeTcp(guestIp: number, peerIp: number, s: TcpRepr): void {
    const key = tupleKey(guestIp, s.dstPort, peerIp, s.srcPort);
    const c = this.convs.get(key);
    if (!c) {
      this.stray(guestIp, peerIp, s, key);
      return;
    }
    const checked = this.oracle.checked(key);
    if (s.flags & TcpFlags.RST) {
      this.stats.resetByStack++;
      this.drop(c);
      return;
    }
    if (c.state === 'syn-sent') {
      if ((s.flags & (TcpFlags.SYN | TcpFlags.ACK)) !== (TcpFlags.SYN | TcpFlags.ACK)) return;
      if (s.ack !== seqAdd(c.iss, 1)) {
        if (checked) this.oracle.report('tcp-synack-bad-ack', `${key}: SYN-ACK acks ${s.ack}, the guest's SYN was ${c.iss}`);
        return;
      }
      this.takePeerSyn(c, s);
      c.sndUna = s.ack;
      c.edge = seqAdd(c.rcvNxt, c.synWindow); // our SYN's window, never scaled
      c.state = 'open';
      this.stats.established++;
      c.needAck = true;
      this.urgent.add(c);
      return;
    }
    if (c.role === 'server' && c.state === 'syn-rcvd') {
      if (s.flags & TcpFlags.SYN) {
        // The stack retransmitted its SYN: answer again.
        c.needSynAck = true;
        this.urgent.add(c);
        return;
      }
      if (!(s.flags & TcpFlags.ACK) || s.ack !== seqAdd(c.iss, 1)) return;
      c.state = 'open';
      this.stats.established++;
    }
    if (s.flags & TcpFlags.SYN) {
      // A SYN-ACK again (our ACK was lost or is late): ACK it again.
      c.needAck = true;
      this.urgent.add(c);
      return;
    }
    if (s.flags & TcpFlags.ACK) {
      if (checked && seqGt(s.ack, c.sndMax)) {
        this.oracle.report('tcp-acked-unsent', `${key}: the stack acks ${s.ack}, the guest sent up to ${c.sndMax}`);
      }
      if (seqGt(s.ack, c.sndUna) && !seqGt(s.ack, c.sndMax)) c.sndUna = s.ack;
      c.peerWnd = s.window * 2 ** (c.wsOk ? c.peerShift : 0);
      if (c.finSent && s.ack === c.sndMax) c.finAcked = true;
    }
    if (c.tsOk && s.tsVal !== undefined) c.tsRecent = s.tsVal;
    const len = s.payload.length;
    if (len > 0) {
      const off = seqSub(s.seq, seqAdd(c.irs, 1));
      this.oracle.verify(key, 'to-guest', off, s.payload, 'segment to the guest');
      if (checked && seqGt(seqAdd(s.seq, len), seqAdd(c.edge, 1))) {
        this.oracle.report('tcp-sent-beyond-window', `${key}: segment ${s.seq}+${len} ends past the right edge ${c.edge} the guest advertised`);
      }
      this.accept(c, s.seq, len);
    }
    if (s.flags & TcpFlags.FIN) {
      const finSeq = seqAdd(s.seq, len);
      if (finSeq === c.rcvNxt && !c.peerFin) {
        c.peerFin = true;
        c.rcvNxt = seqAdd(c.rcvNxt, 1);
        this.oracle.verifyFin(key, seqSub(finSeq, seqAdd(c.irs, 1)));
      }
      c.needAck = true;
    }
    if (len > 0) c.needAck = true;
    if (c.peerFin && c.finAcked && c.state !== 'closed') {
      // Both directions closed: the last ACK, then the connection is done.
      this.stats.closedClean++;
      c.state = 'closed';
      c.needAck = true;
      this.oracle.forget(key);
    }
    if (c.needAck) this.urgent.add(c);
  }

  /** In-sequence bytes advance RCV.NXT; later ones are remembered for SACK. */
  private accept(c: Conv, seq: number, len: number): void {
    const end = seqAdd(seq, len);
    if (c.paused && this.r.chance(0.5)) return; // a paused app's buffer is full: drop it
    if (!seqGt(seq, c.rcvNxt)) {
      if (seqGt(end, c.rcvNxt)) {
        this.stats.bytesToGuest += seqSub(end, c.rcvNxt);
        c.rcvNxt = end;
        // Out-of-order blocks now contiguous.
        let moved = true;
        while (moved) {
          moved = false;
          for (let i = 0; i < c.ooo.length; i++) {
            const [a, b] = c.ooo[i]!;
            if (!seqGt(a, c.rcvNxt)) {
              if (seqGt(b, c.rcvNxt)) c.rcvNxt = b;
              c.ooo.splice(i, 1);
              moved = true;
              break;
            }
          }
        }
      }
      return;
    }
    // Ahead of RCV.NXT: a hole (a "lost" segment). Keep as a SACK block.
    for (const blk of c.ooo) {
      if (!seqGt(seq, blk[1]) && !seqLt(end, blk[0])) {
        if (seqLt(seq, blk[0])) blk[0] = seq;
        if (seqGt(end, blk[1])) blk[1] = end;
        return;
      }
    }
    c.ooo.unshift([seq, end]);
    if (c.ooo.length > MAX_OOO) c.ooo.pop();
  }

  private takePeerSyn(c: Conv, s: TcpRepr): void {
    c.irs = s.seq;
    c.rcvNxt = seqAdd(s.seq, 1);
    c.peerMss = s.mss ?? 536;
    c.wsOk = c.synOpts.ws !== undefined && s.windowScale !== undefined;
    c.peerShift = c.wsOk ? Math.min(14, s.windowScale!) : 0;
    c.myShift = c.wsOk ? Math.min(14, c.synOpts.ws!) : 0;
    c.tsOk = c.synOpts.ts && s.tsVal !== undefined;
    if (c.tsOk) c.tsRecent = s.tsVal!;
    c.sackOk = c.synOpts.sack && s.sackPermitted;
    c.peerWnd = s.window;
  }

  /** A segment for a 4-tuple the model does not run: a forwarded connection's SYN, or a stray. */
  private stray(guestIp: number, peerIp: number, s: TcpRepr, key: string): void {
    if (s.flags & TcpFlags.RST) return;
    const isGuest = guestIp === this.plan.guest || guestIp === this.plan.guest2;
    if (isGuest && (s.flags & (TcpFlags.SYN | TcpFlags.ACK)) === TcpFlags.SYN && this.convs.size < MAX_CONVS && this.r.chance(0.8)) {
      // A forwarded connection: listen and answer.
      const r = this.r;
      const synOpts = { mss: r.chance(0.8) ? 1460 : r.pick([0, 1, 536, 65535]), ws: r.chance(0.7) ? 7 : undefined, sack: r.chance(0.7), ts: r.chance(0.5) };
      const iss = r.u32();
      const c: Conv = {
        id: this.nextId++,
        key,
        role: 'server',
        state: 'syn-rcvd',
        guestMac: guestIp === this.plan.guest ? GUEST_MAC : GUEST2_MAC,
        guestIp,
        guestPort: s.dstPort,
        peerIp,
        peerPort: s.srcPort,
        dstMac: this.plan.dstMacFor(peerIp),
        iss,
        sentOff: 0,
        appBytes: r.weighted<number>([
          [40, 0],
          [30, r.int(2000)],
          [30, r.int(100_000)],
        ]),
        sndMax: seqAdd(iss, 1),
        sndUna: iss,
        peerWnd: 0,
        finSent: false,
        finAcked: false,
        held: undefined,
        lastSendAt: this.now,
        synOpts,
        peerMss: 536,
        wsOk: false,
        peerShift: 0,
        myShift: 0,
        tsOk: false,
        tsRecent: 0,
        tsBase: r.u32(),
        sackOk: false,
        irs: 0,
        rcvNxt: 0,
        edge: 0,
      synWindow: 0,
      synTries: 0,
        ooo: [],
        paused: false,
        peerFin: false,
        needAck: false,
        needSynAck: true,
        };
      this.takePeerSyn(c, s);
      c.sndUna = seqAdd(iss, 1);
      this.convs.set(key, c);
      this.oracle.track(key);
      this.stats.inboundAnswered++;
      this.urgent.add(c);
      return;
    }
    // Like a guest kernel with nothing on that port: RST (sometimes).
    if (!isGuest || !this.r.chance(0.3)) return;
    this.stats.rstForUnknown++;
    const rst: TcpFields =
      s.flags & TcpFlags.ACK
        ? { srcPort: s.dstPort, dstPort: s.srcPort, seq: s.ack, ack: 0, flags: TcpFlags.RST, window: 0 }
        : { srcPort: s.dstPort, dstPort: s.srcPort, seq: 0, ack: seqAdd(s.seq, s.seqLen()), flags: TcpFlags.RST | TcpFlags.ACK, window: 0 };
    const mac = guestIp === this.plan.guest ? GUEST_MAC : GUEST2_MAC;
    this.owed.push({
      kind: 'tcp-rst-for-stray',
      frame: eth(mac, this.plan.dstMacFor(peerIp), EtherType.IPv4, ipv4({ src: guestIp, dst: peerIp, protocol: IpProtocol.TCP }, tcp(guestIp, peerIp, rst))),
    });
  }
}
