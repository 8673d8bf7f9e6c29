// UDP NAT, pure. Each guest source endpoint (address:port) is one flow; the
// shell backs it with one host socket (endpoint-independent mapping, as
// slirp4netns does) and sends every datagram of the flow from it. Replies
// come back through deliver(); a flow idle for idleMs is closed. Datagrams to
// the DNS address go to the shell's DNS forwarder instead of a host address.
//
// Flows live in the stack's one flow table (flow-table.ts): outbound flows
// as kind 'udp' keyed by the guest endpoint alone (peer 0:0), forwarded
// conversations as 'udp-in' by all four. A new flow needs room there; when
// there is none the guest gets ICMP host unreachable ("flow-table-full").
// The table expires idle flows and evicts UDP first when it is full.
//
// IPv6 (input6): the same flows, the guest's address held as a handle
// (addresses.ts); routeFor6 decides where a datagram goes, send6 carries it
// to a host IPv6 address, DNS to fd00::3 goes to the same forwarder, and
// replies and errors come back through the same deliver()/unreachable(),
// which build IPv6 frames for IPv6 flows (::1 appears as fd00::2).

import { ipv4ToString, ipv6ToString } from '../wire/address.js';
import type { EthernetFrame } from '../wire/ethernet.js';
import { IpProtocol, Ipv4Repr, type Ipv4Packet } from '../wire/ipv4.js';
import { UdpPacket, UdpRepr, UDP_HEADER_LEN } from '../wire/udp.js';
import { WireError } from '../wire/errors.js';
import { pseudoV4 } from '../wire/checksum.js';
import type { Ipv6Packet } from '../wire/ipv6.js';
import type { MemoryBudget } from './budget.js';
import { DOUBLE_ZERO } from './numbers.js';
import type { StackContext } from './context.js';
import { icmpUnreachableFrame, icmpv6UnreachableFrame, ipv4Frame, udp6Frame, udpFrame } from './emit.js';
import { isIpv6 } from './addresses.js';
import { macFor6 } from './config.js';
import type { Flow, FlowOwner } from './flow-table.js';
import { guestVisibleSource, guestVisibleSource6, routeFor, routeFor6, type NatOptions } from './nat.js';

/** ICMP (RFC 792) unreachable codes to ICMPv6's (RFC 4443 §3.1): net → no route, host → address, port → port. */
const ICMPV6_CODE: Record<number, number> = { 0: 0, 1: 3, 3: 4 };

export const DEFAULT_UDP_IDLE_MS = 60_000;

export interface UdpFlow extends Flow {
  readonly kind: 'udp';
  lastActive: number;
  datagramsOut: number;
  datagramsIn: number;
  bytesOut: number;
  bytesIn: number;
}

/**
 * A port-forwarded UDP conversation: a host client (as the guest sees it:
 * peerIp:peerPort) talking to guestIp:guestPort through forward `forwardId`.
 */
export interface InboundUdpFlow extends Flow {
  readonly kind: 'udp-in';
  readonly forwardId: number;
  /** The real host client behind peerIp:peerPort (opaque to the stack): one conversation per client. */
  readonly client: string;
}

/** What the shell does for UDP. */
export interface UdpHooks {
  /** The guest answered a forwarded client: send payload back to that client. */
  forwardReply?(flow: InboundUdpFlow, payload: Buffer): void;
  /** A forwarded conversation expired. */
  forwardClosed?(flow: InboundUdpFlow): void;
  /** The guest answered a forwarded conversation's datagram with port unreachable (nothing listens there). */
  forwardRefused?(flow: InboundUdpFlow): void;
  /** Send payload from the flow's host socket to addr:port (addr as a number). */
  send(flow: UdpFlow, addr: number, port: number, payload: Buffer): void;
  /** The same for an IPv6 flow, to an IPv6 host address (text). */
  send6(flow: UdpFlow, addr: string, port: number, payload: Buffer): void;
  /** Forward a DNS query (to the nameservers, in order). */
  sendDns(flow: UdpFlow, payload: Buffer): void;
  /** The flow expired, was evicted or failed: close its host socket. */
  close(flow: UdpFlow, reason: UdpCloseReason): void;
}

export type UdpCloseReason = 'idle' | 'evicted' | 'shutdown' | 'failed';

export class UdpTable implements FlowOwner {
  constructor(
    private readonly ctx: StackContext,
    private readonly hooks: UdpHooks,
    private readonly nat: NatOptions = {},
  ) {
    ctx.flows.register('udp', this);
    ctx.flows.register('udp-in', this);
  }

  get size(): number {
    return this.ctx.flows.count('udp') + this.ctx.flows.count('udp-in');
  }

  /** The flow table expires or evicts one of ours. */
  expire(flow: Flow, reason: 'idle' | 'evicted'): void {
    if (flow.kind === 'udp-in') this.removeInbound(flow as InboundUdpFlow);
    else this.remove(flow as UdpFlow, reason);
  }

  /**
   * A datagram from a forwarded client to guestIp:guestPort, appearing to
   * come from peerIp:peerPort. Returns the conversation, or undefined when
   * that source is already used by another forward's conversation (the
   * caller picks another peer port), null when the flow table has no room
   * (the datagram is dropped, counted).
   */
  forwardIn(now: number, forwardId: number, client: string, peerIp: number, peerPort: number, guestIp: number, guestPort: number, payload: Buffer): InboundUdpFlow | undefined | null {
    const existing = this.ctx.flows.lookup('udp-in', guestIp, guestPort, peerIp, peerPort) as InboundUdpFlow | undefined;
    const flow = this.conversation(now, forwardId, client, existing, () => [guestIp, peerIp], guestPort, peerPort);
    if (!flow || this.tooBig(payload, 20)) return flow;
    const cfg = this.ctx.config;
    this.ctx.sendToGuest(now, guestIp, udpFrame(this.ctx.ownMac(peerIp) ?? cfg.gatewayMac, 0, peerIp, guestIp, peerPort, guestPort, payload));
    return flow;
  }

  /**
   * forwardIn over IPv6 (16-byte addresses): a forwarded client's datagram
   * to an IPv6 guest address. The addresses become handles once admitted.
   */
  forwardIn6(now: number, forwardId: number, client: string, peer: Uint8Array, peerPort: number, guest: Uint8Array, guestPort: number, payload: Buffer): InboundUdpFlow | undefined | null {
    const v6 = this.ctx.flows.v6;
    const g = v6.find(guest);
    const p = g === undefined ? undefined : v6.find(peer);
    const existing = p === undefined ? undefined : (this.ctx.flows.lookup('udp-in', g!, guestPort, p, peerPort) as InboundUdpFlow | undefined);
    const flow = this.conversation(now, forwardId, client, existing, () => [v6.intern(guest), v6.intern(peer)], guestPort, peerPort);
    if (!flow || this.tooBig(payload, 40)) return flow;
    this.ctx.sendToGuest6(now, guest, udp6Frame(macFor6(this.ctx.config.ipv6!, peer), peer, guest, peerPort, guestPort, payload));
    return flow;
  }

  /**
   * The conversation a forwarded datagram belongs to: `existing`, or a new
   * one (`addresses` gives its guest and peer address when it is made).
   * Undefined when that source belongs to another forward or client, null
   * when the flow table has no room.
   */
  private conversation(
    now: number,
    forwardId: number,
    client: string,
    existing: InboundUdpFlow | undefined,
    addresses: () => [number, number],
    guestPort: number,
    peerPort: number,
  ): InboundUdpFlow | undefined | null {
    const flows = this.ctx.flows;
    let flow = existing;
    if (flow && (flow.forwardId !== forwardId || flow.client !== client)) return undefined;
    if (!flow) {
      if (!flows.admit()) {
        this.ctx.drop('flow-table-full', 'udp forward');
        return null;
      }
      const [guestIp, peerIp] = addresses();
      flow = { id: flows.newId(), kind: 'udp-in', forwardId, guestIp, guestPort, peerIp, peerPort, client, lastActive: now };
      flows.insert(flow);
      this.ctx.counters.count('udp-forward-flow-opened');
    }
    flows.touch(flow, now);
    return flow;
  }

  /** A forwarded datagram that would need fragmenting toward the guest (IP header `ipHeader` bytes): dropped, counted. */
  private tooBig(payload: Buffer, ipHeader: number): boolean {
    if (payload.length + UDP_HEADER_LEN + ipHeader <= this.ctx.config.mtu) return false;
    this.ctx.drop('udp-forward-too-big', String(payload.length));
    return true;
  }

  /**
   * The guest reported a forwarded datagram undeliverable (ICMPv6 port
   * unreachable quoting it, from `guest` port `guestPort`, sent by
   * `peer`:`peerPort`): the shell may carry the conversation another way.
   */
  refusedByGuest6(guest: Uint8Array, guestPort: number, peer: Uint8Array, peerPort: number): void {
    const flows = this.ctx.flows;
    const g = flows.v6.find(guest);
    const p = g === undefined ? undefined : flows.v6.find(peer);
    const flow = p === undefined ? undefined : (flows.lookup('udp-in', g!, guestPort, p, peerPort) as InboundUdpFlow | undefined);
    if (!flow) return;
    this.ctx.counters.count('udp-forward-refused-by-guest');
    this.hooks.forwardRefused?.(flow);
  }

  /** Ends a forwarded conversation now (the shell carries it another way). */
  closeInbound(flowId: number): void {
    const f = this.ctx.flows.get(flowId);
    if (f?.kind === 'udp-in') this.removeInbound(f as InboundUdpFlow);
  }

  private removeInbound(flow: InboundUdpFlow): void {
    if (!this.ctx.flows.remove(flow)) return;
    this.hooks.forwardClosed?.(flow);
  }

  /** The stack's memory budget, which the shell's queues count against. */
  get budget(): MemoryBudget {
    return this.ctx.budget;
  }

  /** Counts a datagram the shell dropped (queue full, unexpected reply, ...). */
  drop(reason: string, detail?: string): void {
    this.ctx.drop(reason, detail);
  }

  get(id: number): UdpFlow | undefined {
    const f = this.ctx.flows.get(id);
    return f?.kind === 'udp' ? (f as UdpFlow) : undefined;
  }

  /** A datagram from the guest (already past Ethernet/IPv4 checks). */
  input(now: number, eth: EthernetFrame, ip: Ipv4Packet, udp: UdpPacket): void {
    const cfg = this.ctx.config;
    if (!this.ctx.rxCsumTrusted && !udp.verifyChecksumV4(ip.src, ip.dst)) throw new WireError('udp-bad-checksum');
    const repr = UdpRepr.parse(udp);
    // A reply to a port-forwarded client goes back through its forward.
    if (this.ctx.flows.count('udp-in') > 0) {
      const fwd = this.ctx.flows.lookup('udp-in', ip.src, repr.srcPort, ip.dst, repr.dstPort) as InboundUdpFlow | undefined;
      if (fwd) {
        this.ctx.flows.touch(fwd, now);
        this.hooks.forwardReply?.(fwd, repr.payload);
        return;
      }
    }
    const route = routeFor(cfg, ip.dst, repr.dstPort, 'udp', this.nat);
    switch (route.kind) {
      case 'drop':
        this.ctx.drop(route.reason, `${ipv4ToString(ip.dst)}:${repr.dstPort}`);
        return;
      case 'unreachable':
        this.ctx.drop(route.reason ?? `udp-unreachable-${route.code}`, `${ipv4ToString(ip.dst)}:${repr.dstPort}`);
        this.sendUnreachable(eth.src, ip, route.code);
        return;
    }
    const flow = this.touch(now, ip.src, repr.srcPort);
    if (!flow) {
      this.ctx.drop('flow-table-full', `udp ${ipv4ToString(ip.dst)}:${repr.dstPort}`);
      this.sendUnreachable(eth.src, ip, 1);
      return;
    }
    flow.datagramsOut++;
    flow.bytesOut += repr.payload.length;
    if (route.kind === 'dns') this.hooks.sendDns(flow, repr.payload);
    else this.hooks.send(flow, route.addr, repr.dstPort, repr.payload);
  }

  /**
   * A datagram from the guest over IPv6: the UDP header at `offset` of the
   * packet. A zero checksum is invalid over IPv6 (RFC 8200 §8.1).
   */
  input6(now: number, eth: EthernetFrame, ip: Ipv6Packet, offset: number): void {
    const src = ip.src;
    const dst = ip.dst;
    const bytes = ip.buffer.subarray(offset, ip.end);
    const udp = UdpPacket.newChecked(bytes);
    if (!this.ctx.rxCsumTrusted) {
      if (udp.checksum === 0) throw new WireError('udp-missing-checksum');
      if (!udp.verifyChecksumV6(src, dst)) throw new WireError('udp-bad-checksum');
    }
    const repr = UdpRepr.parse(udp);
    const where = () => `[${ipv6ToString(dst)}]:${repr.dstPort}`;
    // A reply to a port-forwarded client goes back through its forward.
    if (this.ctx.flows.count('udp-in') > 0) {
      const g = this.ctx.flows.v6.find(src);
      const p = g === undefined ? undefined : this.ctx.flows.v6.find(dst);
      const fwd = p === undefined ? undefined : (this.ctx.flows.lookup('udp-in', g!, repr.srcPort, p, repr.dstPort) as InboundUdpFlow | undefined);
      if (fwd) {
        this.ctx.flows.touch(fwd, now);
        this.hooks.forwardReply?.(fwd, repr.payload);
        return;
      }
    }
    const route = routeFor6(this.ctx.config, dst, repr.dstPort, 'udp', this.nat);
    switch (route.kind) {
      case 'drop':
        this.ctx.drop(route.reason, where());
        return;
      case 'unreachable':
        this.ctx.drop(route.reason ?? `udp-unreachable-${route.code}`, where());
        this.sendUnreachable6(eth.src, ip, route.code);
        return;
    }
    const known = this.ctx.flows.v6.find(src);
    const flow = this.touch(now, known ?? -1, repr.srcPort, src);
    if (!flow) {
      this.ctx.drop('flow-table-full', `udp ${where()}`);
      this.sendUnreachable6(eth.src, ip, 1);
      return;
    }
    flow.datagramsOut++;
    flow.bytesOut += repr.payload.length;
    if (route.kind === 'dns') this.hooks.sendDns(flow, repr.payload);
    else if (route.kind === 'host6') this.hooks.send6(flow, route.addr, repr.dstPort, repr.payload);
  }

  /** The flow for a guest endpoint, made if there is room (`addr6`: the guest's IPv6 address, when `ip` is not yet a handle). */
  private touch(now: number, ip: number, port: number, addr6?: Uint8Array): UdpFlow | undefined {
    const flows = this.ctx.flows;
    let flow = ip < 0 ? undefined : (flows.lookup('udp', ip, port) as UdpFlow | undefined);
    if (!flow) {
      if (!flows.admit()) return undefined;
      if (addr6) ip = flows.v6.intern(addr6);
      flow = { id: flows.newId(), kind: 'udp', guestIp: ip, guestPort: port, peerIp: 0, peerPort: 0, lastActive: now, datagramsOut: 0, datagramsIn: 0, bytesOut: DOUBLE_ZERO, bytesIn: DOUBLE_ZERO };
      flows.insert(flow);
      this.ctx.counters.count('udp-flow-opened');
      this.ctx.event?.('udp flow opened', { flow: flow.id, guest: `${addr6 ? ipv6ToString(addr6) : ipv4ToString(ip)}:${port}` });
    }
    flows.touch(flow, now);
    return flow;
  }

  /**
   * The host side cannot serve the flow (its socket could not be created or
   * bound, e.g. EMFILE): ICMP host unreachable for the datagram it was
   * handling, and the flow is closed.
   */
  fail(now: number, flowId: number, dst: number | string, dstPort: number, fromDns = false): void {
    const flow = this.get(flowId);
    if (!flow) return;
    this.ctx.drop('udp-host-socket-failed', `flow ${flowId}`);
    this.unreachable(now, flowId, dst, dstPort, 1, fromDns);
    this.remove(flow, 'failed');
  }

  private remove(flow: UdpFlow, reason: UdpCloseReason): void {
    if (!this.ctx.flows.remove(flow)) return;
    this.ctx.counters.count('udp-flow-closed');
    this.ctx.event?.('udp flow closed', { flow: flow.id, reason, out: flow.datagramsOut, in: flow.datagramsIn });
    this.hooks.close(flow, reason);
  }

  /**
   * A datagram for the guest from the flow's host socket. `src` is the host
   * address it came from (127.0.0.1 appears as the gateway), or, with fromDns,
   * the reply of a nameserver (appears as the DNS address, port 53).
   */
  deliver(now: number, flowId: number, src: number | string, srcPort: number, payload: Buffer, fromDns = false): void {
    const flow = this.get(flowId);
    if (!flow) {
      this.ctx.drop('udp-reply-no-flow');
      return;
    }
    const cfg = this.ctx.config;
    const v6 = isIpv6(flow.guestIp);
    // RFC 791: datagrams larger than the guest's MTU would need fragmenting;
    // tsnet does not fragment, so they are dropped (counted).
    if (payload.length + UDP_HEADER_LEN + (v6 ? 40 : 20) > cfg.mtu) {
      this.ctx.drop('udp-reply-too-big', String(payload.length));
      return;
    }
    if (v6) {
      if (typeof src !== 'string' && !fromDns) {
        this.ctx.drop('udp-reply-family-mismatch');
        return;
      }
      const plan = cfg.ipv6!;
      const from = fromDns ? plan.dns : guestVisibleSource6(cfg, src as string);
      this.ctx.flows.touch(flow, now);
      flow.datagramsIn++;
      flow.bytesIn += payload.length;
      const to = this.ctx.flows.v6.addr(flow.guestIp);
      this.ctx.sendToGuest6(now, to, udp6Frame(macFor6(plan, from), from, to, fromDns ? 53 : srcPort, flow.guestPort, payload));
      return;
    }
    if (typeof src === 'string') {
      this.ctx.drop('udp-reply-family-mismatch');
      return;
    }
    const from = fromDns ? cfg.dns : guestVisibleSource(cfg, src);
    const fromPort = fromDns ? 53 : srcPort;
    const srcMac = this.ctx.ownMac(from) ?? cfg.gatewayMac;
    this.ctx.flows.touch(flow, now); // replies count as activity too
    flow.datagramsIn++;
    flow.bytesIn += payload.length;
    this.ctx.sendToGuest(now, flow.guestIp, udpFrame(srcMac, 0, from, flow.guestIp, fromPort, flow.guestPort, payload));
  }

  /**
   * The host reported the destination unreachable (ECONNREFUSED → port
   * unreachable): tell the guest with ICMP, quoting a reconstruction of its
   * datagram's headers (all the guest's UDP needs to find its socket).
   */
  unreachable(now: number, flowId: number, dst: number | string, dstPort: number, code: number, fromDns = false): void {
    const flow = this.get(flowId);
    if (!flow) return;
    const cfg = this.ctx.config;
    if (isIpv6(flow.guestIp)) {
      const plan = cfg.ipv6!;
      const guest = this.ctx.flows.v6.addr(flow.guestIp);
      const vdst = fromDns ? plan.dns : typeof dst === 'string' ? guestVisibleSource6(cfg, dst) : plan.gateway;
      const original = udp6Frame(0, guest, vdst, flow.guestPort, fromDns ? 53 : dstPort, Buffer.alloc(0)).subarray(14);
      this.ctx.counters.count('icmp-unreachable-sent');
      this.ctx.sendToGuest6(now, guest, icmpv6UnreachableFrame(plan, 0, guest, ICMPV6_CODE[code] ?? 3, original, cfg.mtu, code === 3 ? vdst : undefined));
      return;
    }
    if (typeof dst === 'string') return;
    const vdst = fromDns ? cfg.dns : guestVisibleSource(cfg, dst);
    const vport = fromDns ? 53 : dstPort;
    const ipr = new Ipv4Repr({ src: flow.guestIp, dst: vdst, protocol: IpProtocol.UDP, payloadLen: UDP_HEADER_LEN, dontFrag: false });
    const { frame, payload } = ipv4Frame(0, 0, ipr);
    new UdpRepr({ srcPort: flow.guestPort, dstPort: vport, payload: Buffer.alloc(0) }).emit(payload, pseudoV4(flow.guestIp, vdst, IpProtocol.UDP, UDP_HEADER_LEN));
    const original = frame.subarray(14);
    const srcMac = this.ctx.ownMac(vdst) ?? cfg.gatewayMac;
    this.ctx.counters.count('icmp-unreachable-sent');
    this.ctx.sendToGuest(now, flow.guestIp, icmpUnreachableFrame(srcMac, 0, vdst, flow.guestIp, code, original, this.ctx.config.mtu));
  }

  private sendUnreachable(guestMac: number, ip: Ipv4Packet, code: number): void {
    const cfg = this.ctx.config;
    // Port unreachable comes from the destination itself; net/host
    // unreachable from the gateway, as from a router.
    const from = code === 3 ? ip.dst : cfg.gateway;
    const srcMac = this.ctx.ownMac(from) ?? cfg.gatewayMac;
    this.ctx.counters.count('icmp-unreachable-sent');
    this.ctx.transmit(icmpUnreachableFrame(srcMac, guestMac, from, ip.src, code, ip.buffer.subarray(0, ip.totalLen), this.ctx.config.mtu));
  }

  private sendUnreachable6(guestMac: number, ip: Ipv6Packet, code: number): void {
    const cfg = this.ctx.config;
    this.ctx.counters.count('icmp-unreachable-sent');
    // Port unreachable comes from the destination itself, the rest from the router.
    const from = code === 3 ? Buffer.from(ip.dst) : undefined;
    this.ctx.transmit(icmpv6UnreachableFrame(cfg.ipv6!, guestMac, Buffer.from(ip.src), ICMPV6_CODE[code] ?? 3, ip.buffer.subarray(0, ip.end), cfg.mtu, from));
  }

  closeAll(): void {
    for (const flow of this.ctx.flows.all('udp-in')) this.removeInbound(flow as InboundUdpFlow);
    for (const flow of this.ctx.flows.all('udp')) this.remove(flow as UdpFlow, 'shutdown');
  }
}
