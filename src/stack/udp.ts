// UDP NAT, pure. Each guest source endpoint (address:port) is one flow; the
// shell backs it with one host socket (endpoint-independent mapping, as
// slirp4netns does) and sends every datagram of the flow from it. Replies
// come back through deliver(); a flow idle for idleMs is closed. Datagrams to
// the DNS address go to the shell's DNS forwarder instead of a host address.
//
// Flows live in an IdleTable (least-recently-active order, expiry at the head).
// A new flow needs room in the stack's one flow table (ctx.admitFlow); when
// there is none the guest gets ICMP host unreachable ("flow-table-full").
// UDP flows are what the stack evicts first when the table is full.

import { ipv4ToString } from '../wire/address.js';
import type { EthernetFrame } from '../wire/ethernet.js';
import { IpProtocol, Ipv4Repr, type Ipv4Packet } from '../wire/ipv4.js';
import { UdpPacket, UdpRepr, UDP_HEADER_LEN } from '../wire/udp.js';
import { WireError } from '../wire/errors.js';
import { pseudoV4 } from '../wire/checksum.js';
import type { MemoryBudget } from './budget.js';
import type { StackContext } from './context.js';
import { icmpUnreachableFrame, ipv4Frame, udpFrame } from './emit.js';
import { IdleTable } from './idle-table.js';
import { guestVisibleSource, routeFor, type NatOptions } from './nat.js';

export const DEFAULT_UDP_IDLE_MS = 60_000;
/** Bound on concurrent UDP flows of one table (the stack's flow cap is normally lower). */
export const MAX_UDP_FLOWS = 1 << 20;

export interface UdpFlow {
  readonly id: number;
  readonly guestIp: number;
  readonly guestPort: number;
  guestMac: number;
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
export interface InboundUdpFlow {
  readonly id: number;
  readonly forwardId: number;
  readonly guestIp: number;
  readonly guestPort: number;
  readonly peerIp: number;
  readonly peerPort: number;
  /** The real host client behind peerIp:peerPort (opaque to the stack): one conversation per client. */
  readonly client: string;
  lastActive: number;
}

/** What the shell does for UDP. */
export interface UdpHooks {
  /** The guest answered a forwarded client: send payload back to that client. */
  forwardReply?(flow: InboundUdpFlow, payload: Buffer): void;
  /** A forwarded conversation expired. */
  forwardClosed?(flow: InboundUdpFlow): void;
  /** Send payload from the flow's host socket to addr:port (addr as a number). */
  send(flow: UdpFlow, addr: number, port: number, payload: Buffer): void;
  /** Forward a DNS query (to the nameservers, in order). */
  sendDns(flow: UdpFlow, payload: Buffer): void;
  /** The flow expired, was evicted or failed: close its host socket. */
  close(flow: UdpFlow, reason: UdpCloseReason): void;
}

export type UdpCloseReason = 'idle' | 'evicted' | 'shutdown' | 'failed';

function flowKey(ip: number, port: number): number {
  return ip * 65536 + port;
}

function inboundKey(guestIp: number, guestPort: number, peerIp: number, peerPort: number): string {
  return `${guestIp}:${guestPort}:${peerIp}:${peerPort}`;
}

export class UdpTable {
  private readonly flows: IdleTable<UdpFlow>;
  private readonly inbound: IdleTable<InboundUdpFlow, string>;
  private nextId = 1;

  constructor(
    private readonly ctx: StackContext,
    private readonly hooks: UdpHooks,
    idleMs = DEFAULT_UDP_IDLE_MS,
    private readonly nat: NatOptions = {},
  ) {
    this.flows = new IdleTable(idleMs, MAX_UDP_FLOWS);
    this.inbound = new IdleTable(idleMs, MAX_UDP_FLOWS);
  }

  get size(): number {
    return this.flows.size + this.inbound.size;
  }

  /**
   * A datagram from a forwarded client to guestIp:guestPort, appearing to
   * come from peerIp:peerPort. Returns the conversation, or undefined when
   * that source is already used by another forward's conversation (the
   * caller picks another peer port), null when the flow table has no room
   * (the datagram is dropped, counted).
   */
  forwardIn(now: number, forwardId: number, client: string, peerIp: number, peerPort: number, guestIp: number, guestPort: number, payload: Buffer): InboundUdpFlow | undefined | null {
    const key = inboundKey(guestIp, guestPort, peerIp, peerPort);
    let flow = this.inbound.lookup(key);
    if (flow && (flow.forwardId !== forwardId || flow.client !== client)) return undefined;
    if (!flow) {
      if (this.inbound.full) this.removeInbound(this.inbound.oldest()!);
      if (!this.ctx.admitFlow(now)) {
        this.ctx.drop('flow-table-full', 'udp forward');
        return null;
      }
      flow = { id: this.nextId++, forwardId, guestIp, guestPort, peerIp, peerPort, client, lastActive: now };
      this.inbound.insert(key, flow);
      this.ctx.counters.count('udp-forward-flow-opened');
    }
    this.inbound.touch(flow, now);
    const cfg = this.ctx.config;
    if (payload.length + UDP_HEADER_LEN + 20 > cfg.mtu) {
      this.ctx.drop('udp-forward-too-big', String(payload.length));
      return flow;
    }
    this.ctx.sendToGuest(guestIp, udpFrame(this.ctx.ownMac(peerIp) ?? cfg.gatewayMac, 0, peerIp, guestIp, peerPort, guestPort, payload));
    return flow;
  }

  private removeInbound(flow: InboundUdpFlow): void {
    this.inbound.remove(flow);
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
    return this.flows.get(id);
  }

  /** A datagram from the guest (already past Ethernet/IPv4 checks). */
  input(now: number, eth: EthernetFrame, ip: Ipv4Packet, udp: UdpPacket): void {
    const cfg = this.ctx.config;
    if (!udp.verifyChecksumV4(ip.src, ip.dst)) throw new WireError('udp-bad-checksum');
    const repr = UdpRepr.parse(udp);
    // A reply to a port-forwarded client goes back through its forward.
    if (this.inbound.size > 0) {
      const fwd = this.inbound.lookup(inboundKey(ip.src, repr.srcPort, ip.dst, repr.dstPort));
      if (fwd) {
        this.inbound.touch(fwd, now);
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
    const flow = this.touch(now, ip.src, repr.srcPort, eth.src);
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

  private touch(now: number, ip: number, port: number, mac: number): UdpFlow | undefined {
    const key = flowKey(ip, port);
    let flow = this.flows.lookup(key);
    if (!flow) {
      if (this.flows.full) this.remove(this.flows.oldest()!, 'evicted');
      if (!this.ctx.admitFlow(now)) return undefined;
      flow = { id: this.nextId++, guestIp: ip, guestPort: port, guestMac: mac, lastActive: now, datagramsOut: 0, datagramsIn: 0, bytesOut: 0, bytesIn: 0 };
      this.flows.insert(key, flow);
      this.ctx.counters.count('udp-flow-opened');
      this.ctx.event?.('udp flow opened', { flow: flow.id, guest: `${ipv4ToString(ip)}:${port}` });
    }
    flow.guestMac = mac;
    this.flows.touch(flow, now);
    return flow;
  }

  /** Evicts the least recently active flow (outbound or forwarded) to make room; false when there is none. */
  evictOldest(_now: number): boolean {
    const out = this.flows.oldest();
    const inb = this.inbound.oldest();
    if (!out && !inb) return false;
    if (out && (!inb || out.lastActive <= inb.lastActive)) this.remove(out, 'evicted');
    else this.removeInbound(inb!);
    return true;
  }

  /**
   * The host side cannot serve the flow (its socket could not be created or
   * bound, e.g. EMFILE): ICMP host unreachable for the datagram it was
   * handling, and the flow is closed.
   */
  fail(flowId: number, dst: number, dstPort: number, fromDns = false): void {
    const flow = this.flows.get(flowId);
    if (!flow) return;
    this.ctx.drop('udp-host-socket-failed', `flow ${flowId}`);
    this.unreachable(flowId, dst, dstPort, 1, fromDns);
    this.remove(flow, 'failed');
  }

  private remove(flow: UdpFlow, reason: UdpCloseReason): void {
    this.flows.remove(flow);
    this.ctx.counters.count('udp-flow-closed');
    this.ctx.event?.('udp flow closed', { flow: flow.id, reason, out: flow.datagramsOut, in: flow.datagramsIn });
    this.hooks.close(flow, reason);
  }

  /**
   * A datagram for the guest from the flow's host socket. `src` is the host
   * address it came from (127.0.0.1 appears as the gateway), or, with fromDns,
   * the reply of a nameserver (appears as the DNS address, port 53).
   */
  deliver(now: number, flowId: number, src: number, srcPort: number, payload: Buffer, fromDns = false): void {
    const flow = this.flows.get(flowId);
    if (!flow) {
      this.ctx.drop('udp-reply-no-flow');
      return;
    }
    const cfg = this.ctx.config;
    // RFC 791: datagrams larger than the guest's MTU would need fragmenting;
    // tsnet does not fragment, so they are dropped (counted).
    if (payload.length + UDP_HEADER_LEN + 20 > cfg.mtu) {
      this.ctx.drop('udp-reply-too-big', String(payload.length));
      return;
    }
    const from = fromDns ? cfg.dns : guestVisibleSource(cfg, src);
    const fromPort = fromDns ? 53 : srcPort;
    const srcMac = this.ctx.ownMac(from) ?? cfg.gatewayMac;
    this.flows.touch(flow, now); // replies count as activity too
    flow.datagramsIn++;
    flow.bytesIn += payload.length;
    this.ctx.transmit(udpFrame(srcMac, flow.guestMac, from, flow.guestIp, fromPort, flow.guestPort, payload));
  }

  /**
   * The host reported the destination unreachable (ECONNREFUSED → port
   * unreachable): tell the guest with ICMP, quoting a reconstruction of its
   * datagram's headers (all the guest's UDP needs to find its socket).
   */
  unreachable(flowId: number, dst: number, dstPort: number, code: number, fromDns = false): void {
    const flow = this.flows.get(flowId);
    if (!flow) return;
    const cfg = this.ctx.config;
    const vdst = fromDns ? cfg.dns : guestVisibleSource(cfg, dst);
    const vport = fromDns ? 53 : dstPort;
    const ipr = new Ipv4Repr({ src: flow.guestIp, dst: vdst, protocol: IpProtocol.UDP, payloadLen: UDP_HEADER_LEN, dontFrag: false });
    const { frame, payload } = ipv4Frame(0, 0, ipr);
    new UdpRepr({ srcPort: flow.guestPort, dstPort: vport, payload: Buffer.alloc(0) }).emit(payload, pseudoV4(flow.guestIp, vdst, IpProtocol.UDP, UDP_HEADER_LEN));
    const original = frame.subarray(14);
    const srcMac = this.ctx.ownMac(vdst) ?? cfg.gatewayMac;
    this.ctx.counters.count('icmp-unreachable-sent');
    this.ctx.transmit(icmpUnreachableFrame(srcMac, flow.guestMac, vdst, flow.guestIp, code, original));
  }

  private sendUnreachable(guestMac: number, ip: Ipv4Packet, code: number): void {
    const cfg = this.ctx.config;
    // Port unreachable comes from the destination itself; net/host
    // unreachable from the gateway, as from a router.
    const from = code === 3 ? ip.dst : cfg.gateway;
    const srcMac = this.ctx.ownMac(from) ?? cfg.gatewayMac;
    this.ctx.counters.count('icmp-unreachable-sent');
    this.ctx.transmit(icmpUnreachableFrame(srcMac, guestMac, from, ip.src, code, ip.buffer.subarray(0, ip.totalLen)));
  }

  /** Closes flows idle for idleMs. */
  expire(now: number): void {
    for (const flow of this.flows.expired(now)) this.remove(flow, 'idle');
    for (const flow of this.inbound.expired(now)) this.removeInbound(flow);
  }

  /** When expire() next has work (Infinity when there are no flows). */
  pollAt(): number {
    return Math.min(this.flows.pollAt(), this.inbound.pollAt());
  }

  closeAll(): void {
    for (const flow of [...this.inbound.values()]) this.removeInbound(flow);
    for (const flow of [...this.flows.values()]) this.remove(flow, 'shutdown');
  }
}
