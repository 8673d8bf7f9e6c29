// The host side of a fuzz run: deterministic stand-ins for the shell's TCP,
// UDP and ping sockets (TcpHooks, UdpHooks, EchoHooks), driven by the run's
// seeded PRNG and a virtual-time event queue. Like the real shell
// (src/host/tcp-host.ts, udp-host.ts, ping-host.ts, forward.ts) it accepts
// some connects, refuses some, finds some destinations unreachable, sends
// host data and replies into the stack's tables later in virtual time,
// consumes guest data slowly or at once, half-closes and aborts flows, opens
// forwarded connections and datagrams toward the guest, and keeps calling
// with ids of flows that are already gone (late socket callbacks). It calls
// back synchronously from inside a hook only where the real shell does:
// refused() from open() (DNS without nameservers), send() from sendSpace(),
// consumed() from data() once the host side has ended.
//
// TCP streams carry StreamOracle bytes, and what reaches a host socket is
// checked against what the guest sent (data, end-of-stream position).

import type { Stack } from '../../src/stack/stack.js';
import type { TcpFlow, TcpHooks, TcpRoute, TcpTable } from '../../src/stack/tcp-flows.js';
import type { UdpFlow, UdpHooks, UdpTable } from '../../src/stack/udp.js';
import type { EchoFlow, EchoHooks, EchoTable } from '../../src/stack/icmp-echo.js';
import { ipv4FromString } from '../../src/wire/address.js';
import type { AddressPlan } from './addresses.js';
import type { Rng } from './rng.js';
import { tupleKey, type StreamOracle } from './streams.js';

// ------------------------------------------------------------ virtual time

interface Pending {
  at: number;
  seq: number;
  name: string;
  fn: () => void;
}

/** Host events in virtual time: a binary heap ordered by (time, insertion). */
export class Scheduler {
  private readonly heap: Pending[] = [];
  private seq = 0;

  get size(): number {
    return this.heap.length;
  }

  schedule(at: number, name: string, fn: () => void): void {
    const h = this.heap;
    h.push({ at, seq: this.seq++, name, fn });
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  nextAt(): number {
    return this.heap[0]?.at ?? Infinity;
  }

  /** Removes and returns the earliest event due at `now`. */
  popDue(now: number): Pending | undefined {
    const h = this.heap;
    if (h.length === 0 || h[0]!.at > now) return undefined;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && less(h[l]!, h[m]!)) m = l;
        if (r < h.length && less(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}

function less(a: Pending, b: Pending): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

// ------------------------------------------------------------ host state

interface HostTcp {
  id: number;
  key: string;
  inbound: boolean;
  connected: boolean;
  gone: boolean;
  /** Bytes the host peer will send in all, then (maybe) close. */
  sendTotal: number;
  chunk: number;
  closeWhenDone: boolean;
  closeSent: boolean;
  /** Bytes accepted by table.send(). */
  sentOff: number;
  /** table.send() took less than offered: waiting for sendSpace. */
  blocked: boolean;
  /** Bytes received from the guest (data hook). */
  rxOff: number;
  eof: boolean;
  consume: 'now' | 'soon' | 'slow' | 'stall';
  /** A "request/response" peer sends more each time the guest sends. */
  respond: boolean;
}

export interface FakeHostStats {
  tcpOpen: number;
  tcpAccepted: number;
  tcpRefused: number;
  tcpUnreachable: number;
  tcpTimedOut: number;
  tcpAborted: number;
  tcpClosed: number;
  tcpInbound: number;
  tcpInboundRefused: number;
  tcpBytesFromGuest: number;
  tcpBytesToGuest: number;
  tcpEof: number;
  tcpReset: number;
  udpSent: number;
  udpDns: number;
  udpReplies: number;
  udpUnreachable: number;
  udpForwardIn: number;
  udpForwardReplies: number;
  echoSent: number;
  echoReplies: number;
  staleCalls: number;
}

/** What a host event reports when a call into the stack's tables throws (that is a bug). */
export type HostErrorSink = (event: string, err: unknown) => void;

export class FakeHost {
  /** Virtual time, kept current by the harness. */
  now = 0;
  private tcpT: TcpTable | undefined;
  private udpT: UdpTable | undefined;
  private echoT: EchoTable | undefined;
  private readonly tcp = new Map<number, HostTcp>();
  private readonly deadTcp: number[] = [];
  private readonly deadUdp: number[] = [];
  private readonly deadEcho: number[] = [];
  readonly stats: FakeHostStats = {
    tcpOpen: 0,
    tcpAccepted: 0,
    tcpRefused: 0,
    tcpUnreachable: 0,
    tcpTimedOut: 0,
    tcpAborted: 0,
    tcpClosed: 0,
    tcpInbound: 0,
    tcpInboundRefused: 0,
    tcpBytesFromGuest: 0,
    tcpBytesToGuest: 0,
    tcpEof: 0,
    tcpReset: 0,
    udpSent: 0,
    udpDns: 0,
    udpReplies: 0,
    udpUnreachable: 0,
    udpForwardIn: 0,
    udpForwardReplies: 0,
    echoSent: 0,
    echoReplies: 0,
    staleCalls: 0,
  };

  constructor(
    private readonly r: Rng,
    private readonly plan: AddressPlan,
    private readonly oracle: StreamOracle,
    readonly sched: Scheduler,
  ) {}

  // The hooks the Stack is built with (UdpHooks and EchoHooks both have send/close).
  readonly tcpHooks: TcpHooks = {
    open: (flow, route) => this.open(flow, route),
    data: (flow, data) => this.data(flow, data),
    eof: (flow) => this.eof(flow),
    established: (flow) => this.established(flow),
    sendSpace: (flow) => this.sendSpace(flow),
    reset: (flow) => this.reset(flow),
    closed: (flow) => this.closed(flow),
  };
  readonly udpHooks: UdpHooks = {
    send: (flow, addr, port, payload) => this.udpSend(flow, addr, port, payload),
    send6: (flow, addr, port, payload) => this.udpSend(flow, addr, port, payload),
    sendDns: (flow, payload) => this.udpSendDns(flow, payload),
    close: (flow) => this.udpClose(flow),
    forwardReply: () => void this.stats.udpForwardReplies++,
    forwardClosed: () => {},
  };
  readonly echoHooks: EchoHooks = {
    send: (flow, addr, seq, data) => this.echoSend(flow, addr, seq, data),
    send6: (flow, addr, seq, data) => this.echoSend(flow, addr, seq, data),
    close: (flow) => this.echoClose(flow),
  };

  bind(stack: Stack): void {
    this.tcpT = stack.tcp;
    this.udpT = stack.udp;
    this.echoT = stack.echo;
  }

  private later(delay: number, name: string, fn: () => void): void {
    this.sched.schedule(this.now + delay, name, fn);
  }

  /** A connect/reply delay: mostly quick, sometimes slow, rarely very slow. */
  private delay(): number {
    return this.r.weighted<number>([
      [60, this.r.float() * 2],
      [30, this.r.float() * 50],
      [8, this.r.float() * 1500],
      [2, 1500 + this.r.float() * 20_000],
    ]);
  }

  /**
   * Things the host does on its own, called by the harness between frames:
   * forwarded TCP connections and UDP datagrams toward the guest, calls
   * with ids of flows that are gone.
   */
  spontaneous(): void {
    const r = this.r;
    const x = r.float();
    if (x < 0.25) this.forwardTcp();
    else if (x < 0.5) this.forwardUdp();
    else this.staleCall();
  }

  // ------------------------------------------------------------------ TCP

  private open(flow: TcpFlow, route: TcpRoute): void {
    const r = this.r;
    this.stats.tcpOpen++;
    const h = this.track(flow, false);
    // The real shell refuses at once when DNS over TCP has no nameserver.
    if (route.kind === 'dns' && r.chance(0.2)) {
      this.stats.tcpRefused++;
      this.tcpT!.refused(this.now, flow.id);
      return;
    }
    const outcome = r.weighted<'accept' | 'refuse' | 'net' | 'host' | 'timeout'>([
      [70, 'accept'],
      [12, 'refuse'],
      [4, 'net'],
      [8, 'host'],
      [6, 'timeout'],
    ]);
    const id = flow.id;
    const t = this.tcpT!;
    switch (outcome) {
      case 'accept':
        this.later(this.delay(), 'tcp-accepted', () => {
          if (h.gone) return;
          this.stats.tcpAccepted++;
          h.connected = true;
          t.accepted(this.now, id);
          this.startSending(h);
        });
        return;
      case 'refuse':
        this.later(this.delay(), 'tcp-refused', () => {
          this.stats.tcpRefused++;
          h.gone = true;
          t.refused(this.now, id);
        });
        return;
      case 'net':
      case 'host':
        this.later(this.delay(), 'tcp-unreachable', () => {
          this.stats.tcpUnreachable++;
          h.gone = true;
          t.unreachable(this.now, id, outcome === 'net' ? 0 : 1);
        });
        return;
      default:
        // connect() hangs until the shell's connect timeout (30 s).
        this.later(30_000, 'tcp-connect-timeout', () => {
          this.stats.tcpTimedOut++;
          h.gone = true;
          t.unreachable(this.now, id, 1);
        });
    }
  }

  private track(flow: TcpFlow, inbound: boolean): HostTcp {
    const r = this.r;
    const h: HostTcp = {
      id: flow.id,
      key: tupleKey(flow.guestIp, flow.guestPort, flow.peerIp, flow.peerPort),
      inbound,
      connected: inbound,
      gone: false,
      sendTotal: r.weighted<number>([
        [35, 0],
        [25, r.int(300)],
        [28, r.int(30_000)],
        [10, r.int(200_000)],
        [2, 1_000_000],
      ]),
      chunk: r.pick([1, 100, 1460, 4096, 16384, 65536, 262144]),
      closeWhenDone: r.chance(0.6),
      closeSent: false,
      sentOff: 0,
      blocked: false,
      rxOff: 0,
      eof: false,
      consume: r.weighted<HostTcp['consume']>([
        [40, 'now'],
        [40, 'soon'],
        [15, 'slow'],
        [5, 'stall'],
      ]),
      respond: r.chance(0.3),
    };
    this.tcp.set(flow.id, h);
    this.oracle.hostOpened(h.key);
    return h;
  }

  /** The host peer starts talking: chunks over virtual time, then maybe a close, maybe an abort. */
  private startSending(h: HostTcp): void {
    this.later(this.delay(), 'tcp-host-send', () => this.sendMore(h));
    if (this.r.chance(0.04)) {
      this.later(this.delay() * 10, 'tcp-host-abort', () => {
        if (h.gone) return;
        this.stats.tcpAborted++;
        h.gone = true;
        this.tcpT!.abort(this.now, h.id);
      });
    }
  }

  private sendMore(h: HostTcp): void {
    if (h.gone || h.blocked || h.closeSent) return;
    const t = this.tcpT!;
    const want = Math.min(h.chunk, h.sendTotal - h.sentOff);
    if (want > 0) {
      const data = this.oracle.pattern(h.key, 'to-guest').bytes(h.sentOff, want);
      const n = t.send(h.id, data);
      if (n < 0 || n > want) throw new Error(`table.send returned ${n} for ${want} bytes`);
      h.sentOff += n;
      this.stats.tcpBytesToGuest += n;
      if (n < want) {
        h.blocked = true; // sendSpace() resumes
        return;
      }
    }
    if (h.sentOff < h.sendTotal) {
      this.later(this.r.chance(0.8) ? 0 : this.delay(), 'tcp-host-send', () => this.sendMore(h));
      return;
    }
    if (h.closeWhenDone) this.closeHost(h);
  }

  private closeHost(h: HostTcp): void {
    if (h.closeSent || h.gone) return;
    h.closeSent = true;
    this.stats.tcpClosed++;
    this.oracle.hostClosed(h.key, h.sentOff);
    this.tcpT!.close(this.now, h.id);
  }

  private data(flow: TcpFlow, data: Buffer): void {
    const h = this.tcp.get(flow.id);
    const len = data.length;
    if (h) {
      this.oracle.verify(h.key, 'to-host', h.rxOff, data, 'data to the host');
      h.rxOff += len;
    }
    this.stats.tcpBytesFromGuest += len;
    const t = this.tcpT!;
    const id = flow.id;
    // The real shell consumes at once when its socket is gone or ended.
    if (!h || h.gone || h.consume === 'now') {
      t.consumed(id, len);
      return;
    }
    const when = h.consume === 'soon' ? this.r.float() * 3 : h.consume === 'slow' ? 50 + this.r.float() * 2000 : 5000 + this.r.float() * 60_000;
    this.later(when, 'tcp-consumed', () => t.consumed(id, len));
    if (h.respond && h.connected && !h.closeSent && !h.blocked) {
      h.sendTotal = Math.max(h.sendTotal, h.sentOff + 1 + this.r.int(3000));
      this.later(this.delay(), 'tcp-host-send', () => this.sendMore(h));
    }
  }

  private eof(flow: TcpFlow): void {
    const h = this.tcp.get(flow.id);
    this.stats.tcpEof++;
    if (!h) return;
    this.oracle.verifyEof(h.key, h.rxOff);
    h.eof = true;
    // Many servers answer a half-close by finishing and closing too.
    if (h.connected && this.r.chance(0.7)) {
      h.closeWhenDone = true;
      this.later(this.delay(), 'tcp-host-send', () => this.sendMore(h));
    }
  }

  private established(flow: TcpFlow): void {
    const h = this.tcp.get(flow.id);
    if (h) h.connected = true;
  }

  private sendSpace(flow: TcpFlow): void {
    const h = this.tcp.get(flow.id);
    if (!h || !h.blocked) return;
    h.blocked = false;
    // tcp-host.ts sends what it holds synchronously from inside sendSpace().
    if (this.r.chance(0.5)) this.sendMore(h);
    else this.later(0, 'tcp-host-send', () => this.sendMore(h));
  }

  private reset(flow: TcpFlow): void {
    this.stats.tcpReset++;
    const h = this.tcp.get(flow.id);
    if (h) h.gone = true;
  }

  private closed(flow: TcpFlow): void {
    const h = this.tcp.get(flow.id);
    if (h) h.gone = true;
    this.tcp.delete(flow.id);
    this.deadTcp.push(flow.id);
    if (this.deadTcp.length > 64) this.deadTcp.shift();
  }

  /** Port forwarding: a host client connects; the stack opens toward the guest. */
  private forwardTcp(): void {
    const t = this.tcpT;
    if (!t) return;
    const r = this.r;
    const peer = r.chance(0.7) ? this.plan.gateway : this.plan.of(r.pick(['outside', 'net-other', 'dns'] as const), r);
    const guest = r.chance(0.85) ? this.plan.guest : r.chance(0.5) ? this.plan.guest2 : this.plan.of('net-other', r);
    const flow = t.connectInbound(this.now, peer, 30000 + r.int(30000), guest, r.pick([22, 80, 8080, 5432, r.range(1, 65535)]));
    if (!flow) {
      this.stats.tcpInboundRefused++;
      return;
    }
    this.stats.tcpInbound++;
    const h = this.track(flow, true);
    // The client may talk before the guest has answered the SYN.
    this.startSending(h);
  }

  // ------------------------------------------------------------------ UDP

  private udpSend(flow: UdpFlow, addr: number | string, port: number, payload: Buffer): void {
    this.stats.udpSent++;
    this.udpAnswer(flow.id, addr, port, payload.length, false);
  }

  private udpSendDns(flow: UdpFlow, payload: Buffer): void {
    this.stats.udpDns++;
    this.udpAnswer(flow.id, 0, 53, payload.length, true);
  }

  private udpAnswer(id: number, addr: number | string, port: number, len: number, dns: boolean): void {
    const r = this.r;
    const u = this.udpT!;
    const x = r.float();
    if (x < 0.55) {
      const replies = r.weighted<number>([
        [80, 1],
        [15, 2],
        [5, 5],
      ]);
      for (let i = 0; i < replies; i++) {
        this.later(this.delay(), 'udp-reply', () => {
          this.stats.udpReplies++;
          const size = r.weighted<number>([
            [50, len],
            [30, r.int(512)],
            [10, r.int(1473)],
            [5, 1472 + r.int(3)],
            [5, r.int(65508)],
          ]);
          // Replies from the address sent to, loopback, elsewhere — of either family.
          const from = dns ? 0 : r.weighted<number | string>([
            [70, addr],
            [10, typeof addr === 'string' ? '::1' : ipv4FromString('127.0.0.1')],
            [5, ipv4FromString('127.1.2.3')],
            [10, this.plan.of('outside', r)],
            [5, r.u32()],
            [5, '2001:db8::7'],
          ]);
          u.deliver(this.now, id, from, dns ? 53 : r.chance(0.9) ? port : r.u16(), r.bytes(size), dns);
        });
      }
    } else if (x < 0.7) {
      this.later(this.delay(), 'udp-unreachable', () => {
        this.stats.udpUnreachable++;
        u.unreachable(this.now, id, addr, port, r.pick([3, 3, 3, 0, 1, 4, 10, 13]), dns);
      });
    } else if (x < 0.72) {
      // The host socket could not be created (EMFILE).
      this.later(this.delay(), 'udp-fail', () => u.fail(this.now, id, addr, port, dns));
    }
  }

  private udpClose(flow: UdpFlow): void {
    this.deadUdp.push(flow.id);
    if (this.deadUdp.length > 64) this.deadUdp.shift();
  }

  /** Port forwarding: a datagram from a host client toward the guest. */
  private forwardUdp(): void {
    const u = this.udpT;
    if (!u) return;
    const r = this.r;
    const peer = r.chance(0.7) ? this.plan.gateway : this.plan.of('outside', r);
    const guest = r.chance(0.9) ? this.plan.guest : this.plan.of(r.pick(['guest', 'net-other'] as const), r);
    const payload = r.bytes(r.weighted<number>([
      [80, r.int(600)],
      [15, r.int(1500)],
      [5, r.int(65000)],
    ]));
    this.stats.udpForwardIn++;
    forwardIn(u, this.now, 1 + r.int(3), `client-${r.int(8)}`, peer, 30000 + r.int(16), guest, r.pick([53, 5353, 9999, 0]), payload);
  }

  // ------------------------------------------------------------------ echo

  private echoSend(flow: EchoFlow, addr: number | string, seq: number, data: Buffer): void {
    this.stats.echoSent++;
    const r = this.r;
    if (r.chance(0.3)) return; // no answer
    const copy = Buffer.from(data);
    const id = flow.id;
    this.later(this.delay(), 'echo-reply', () => {
      this.stats.echoReplies++;
      const from: number | string = r.chance(0.95) ? addr : r.chance(0.2) ? '2001:db8::9' : this.plan.of(r.pick(['outside', 'loopback', 'random'] as const), r);
      // A remote host may answer with more data than it was sent.
      const data = r.chance(0.97) ? copy : r.bytes(r.pick([r.int(1500), 1473 + r.int(100), r.int(65000)]));
      this.echoT!.deliver(this.now, id, from, r.chance(0.95) ? seq : r.u16(), data);
    });
  }

  private echoClose(flow: EchoFlow): void {
    this.deadEcho.push(flow.id);
    if (this.deadEcho.length > 64) this.deadEcho.shift();
  }

  // ------------------------------------------------------------------ stale ids

  /** Late callbacks of sockets whose flow is gone (and ids never issued). */
  private staleCall(): void {
    const r = this.r;
    this.stats.staleCalls++;
    // Ids of flows that are gone (ids are never reused), or never issued.
    const pick = (xs: number[]) => (xs.length > 0 && r.chance(0.8) ? r.pick(xs) : r.pick([0, -1, 2 ** 31, 0.5]));
    const now = this.now;
    switch (r.int(9)) {
      case 0:
        this.tcpT?.consumed(pick(this.deadTcp), 1 + r.int(1000));
        return;
      case 1:
        this.tcpT?.send(pick(this.deadTcp), r.bytes(1 + r.int(100)));
        return;
      case 2:
        this.tcpT?.accepted(now, pick(this.deadTcp));
        return;
      case 3:
        this.tcpT?.refused(now, pick(this.deadTcp));
        return;
      case 4:
        this.tcpT?.unreachable(now, pick(this.deadTcp), r.chance(0.5) ? 0 : 1);
        return;
      case 5:
        this.tcpT?.abort(now, pick(this.deadTcp));
        return;
      case 6:
        this.udpT?.deliver(now, pick(this.deadUdp), r.u32(), r.u16(), r.bytes(r.int(100)), r.chance(0.3));
        return;
      case 7:
        this.echoT?.deliver(now, pick(this.deadEcho), r.u32(), r.u16(), r.bytes(r.int(100)));
        return;
      default:
        this.tcpT?.close(now, pick(this.deadTcp));
    }
  }
}

/**
 * UdpTable.forwardIn across the API change that added the client argument
 * (src/stack is being rewritten): calls whichever signature the table has.
 */
function forwardIn(u: UdpTable, now: number, forwardId: number, client: string, peerIp: number, peerPort: number, guestIp: number, guestPort: number, payload: Buffer): unknown {
  const f = u.forwardIn as unknown as (...args: unknown[]) => unknown;
  return f.length >= 8
    ? f.call(u, now, forwardId, client, peerIp, peerPort, guestIp, guestPort, payload)
    : f.call(u, now, forwardId, peerIp, peerPort, guestIp, guestPort, payload);
}
