// ICMP echo to addresses outside the virtual network, pure. Each guest
// (address, echo identifier) is one flow, which the shell backs with one
// unprivileged ping socket; the kernel gives that socket its own identifier,
// so replies come back through deliver() and are rewritten to the guest's
// identifier here. Flows live in the stack's one flow table as kind 'echo'
// (guest port = the identifier, peer 0:0) and expire when idle, like UDP.
// ICMPv6 echo (request6) is the same, the guest's address held as a handle
// (addresses.ts) and an IPv6 ping socket behind it (send6).

import { ipv4ToString, ipv6ToString } from '../wire/address.js';
import type { EthernetFrame } from '../wire/ethernet.js';
import { Icmpv4Repr, Icmpv4Type } from '../wire/icmpv4.js';
import { IpProtocol, Ipv4Repr, type Ipv4Packet } from '../wire/ipv4.js';
import type { StackContext } from './context.js';
import { icmpUnreachableFrame, icmpv6Frame, icmpv6UnreachableFrame, ipv4Frame } from './emit.js';
import { isIpv6 } from './addresses.js';
import { Icmpv6Repr, Icmpv6Type } from '../wire/icmpv6.js';
import type { Ipv6Packet } from '../wire/ipv6.js';
import type { Flow, FlowOwner } from './flow-table.js';
import { guestVisibleSource6, routeFor, routeFor6 } from './nat.js';

export interface EchoFlow extends Flow {
  readonly kind: 'echo';
  /** The guest's echo identifier (also the flow's guest port). */
  readonly ident: number;
}

export interface EchoHooks {
  /** Send an echo request with seq/data to addr from the flow's ping socket. */
  send(flow: EchoFlow, addr: number, seq: number, data: Buffer): void;
  /** The same for an IPv6 flow, to an IPv6 host address (text), from an IPv6 ping socket. */
  send6(flow: EchoFlow, addr: string, seq: number, data: Buffer): void;
  close(flow: EchoFlow): void;
}

export class EchoTable implements FlowOwner {
  constructor(
    private readonly ctx: StackContext,
    private readonly hooks: EchoHooks,
  ) {
    ctx.flows.register('echo', this);
  }

  get size(): number {
    return this.ctx.flows.count('echo');
  }

  /** The flow table expires or evicts one of ours. */
  expire(flow: Flow): void {
    this.remove(flow as EchoFlow);
  }

  private get(id: number): EchoFlow | undefined {
    const f = this.ctx.flows.get(id);
    return f?.kind === 'echo' ? (f as EchoFlow) : undefined;
  }

  /** An echo request from the guest to a non-virtual address. */
  request(now: number, eth: EthernetFrame, ip: Ipv4Packet, icmp: Icmpv4Repr): void {
    const route = routeFor(this.ctx.config, ip.dst, 0, 'icmp');
    if (route.kind === 'drop') {
      this.ctx.drop(route.reason, ipv4ToString(ip.dst));
      return;
    }
    if (route.kind !== 'host') {
      this.ctx.drop('icmp-echo-unreachable', ipv4ToString(ip.dst));
      this.ctx.transmit(icmpUnreachableFrame(this.ctx.config.gatewayMac, eth.src, this.ctx.config.gateway, ip.src, 1, ip.buffer.subarray(0, ip.totalLen), this.ctx.config.mtu));
      return;
    }
    const flows = this.ctx.flows;
    let flow = flows.lookup('echo', ip.src, icmp.ident) as EchoFlow | undefined;
    if (!flow) {
      if (!flows.admit()) {
        this.ctx.drop('flow-table-full', `icmp ${ipv4ToString(ip.dst)}`);
        this.ctx.transmit(icmpUnreachableFrame(this.ctx.config.gatewayMac, eth.src, this.ctx.config.gateway, ip.src, 1, ip.buffer.subarray(0, ip.totalLen), this.ctx.config.mtu));
        return;
      }
      flow = { id: flows.newId(), kind: 'echo', guestIp: ip.src, guestPort: icmp.ident, peerIp: 0, peerPort: 0, ident: icmp.ident, lastActive: now };
      flows.insert(flow);
      this.ctx.counters.count('icmp-echo-flow-opened');
    }
    flows.touch(flow, now);
    this.hooks.send(flow, route.addr, icmp.seq, icmp.data);
  }

  /** An ICMPv6 echo request from the guest to an address that is not ours (ipv6.ts decided). */
  request6(now: number, eth: EthernetFrame, ip: Ipv6Packet, msg: Icmpv6Repr): void {
    const cfg = this.ctx.config;
    const src = ip.src;
    const dst = ip.dst;
    const route = routeFor6(cfg, dst, 0, 'icmp');
    if (route.kind === 'drop') {
      this.ctx.drop(route.reason, ipv6ToString(dst));
      return;
    }
    const unreachable = (code: number) =>
      this.ctx.transmit(icmpv6UnreachableFrame(cfg.ipv6!, eth.src, Buffer.from(src), code, ip.buffer.subarray(0, ip.end), cfg.mtu));
    if (route.kind !== 'host6') {
      this.ctx.drop('icmp-echo-unreachable', ipv6ToString(dst));
      unreachable(3);
      return;
    }
    const flows = this.ctx.flows;
    const known = flows.v6.find(src);
    let flow = known === undefined ? undefined : (flows.lookup('echo', known, msg.ident) as EchoFlow | undefined);
    if (!flow) {
      if (!flows.admit()) {
        this.ctx.drop('flow-table-full', `icmpv6 ${ipv6ToString(dst)}`);
        unreachable(3);
        return;
      }
      flow = { id: flows.newId(), kind: 'echo', guestIp: flows.v6.intern(src), guestPort: msg.ident, peerIp: 0, peerPort: 0, ident: msg.ident, lastActive: now };
      flows.insert(flow);
      this.ctx.counters.count('icmp-echo-flow-opened');
    }
    flows.touch(flow, now);
    this.hooks.send6(flow, route.addr, msg.seq, Buffer.from(msg.data));
  }

  /** An echo reply from `src` (IPv4 number, or IPv6 text for an IPv6 flow) for the flow: rewritten to the guest's identifier. */
  deliver(now: number, flowId: number, src: number | string, seq: number, data: Buffer): void {
    const flow = this.get(flowId);
    if (!flow) {
      this.ctx.drop('icmp-reply-no-flow');
      return;
    }
    this.ctx.flows.touch(flow, now);
    if (isIpv6(flow.guestIp)) {
      const cfg = this.ctx.config;
      if (typeof src !== 'string' || 40 + 8 + data.length > cfg.mtu) {
        this.ctx.drop(typeof src !== 'string' ? 'icmp-reply-family-mismatch' : 'icmp-reply-too-big', String(data.length));
        return;
      }
      const to = this.ctx.flows.v6.addr(flow.guestIp);
      const reply = new Icmpv6Repr({ type: Icmpv6Type.EchoReply, ident: flow.ident, seq, data });
      this.ctx.counters.count('icmp-echo-reply-forwarded');
      this.ctx.sendToGuest6(now, to, icmpv6Frame(cfg.ipv6!, 0, to, reply, guestVisibleSource6(cfg, src)));
      return;
    }
    if (typeof src === 'string') {
      this.ctx.drop('icmp-reply-family-mismatch');
      return;
    }
    // A remote may answer with more than it was sent, and the host reassembles
    // up to 64 KiB: what does not fit the guest's MTU is dropped (tsnet does
    // not fragment), as for UDP replies.
    if (20 + 8 + data.length > this.ctx.config.mtu) {
      this.ctx.drop('icmp-reply-too-big', String(data.length));
      return;
    }
    const reply = new Icmpv4Repr({ type: Icmpv4Type.EchoReply, ident: flow.ident, seq, data });
    const ipr = new Ipv4Repr({ src, dst: flow.guestIp, protocol: IpProtocol.ICMP, payloadLen: reply.bufferLen(), dontFrag: false });
    const { frame, payload } = ipv4Frame(this.ctx.config.gatewayMac, 0, ipr);
    reply.emit(payload);
    this.ctx.counters.count('icmp-echo-reply-forwarded');
    this.ctx.sendToGuest(now, flow.guestIp, frame);
  }

  /** Counts an echo the shell dropped. */
  drop(reason: string, detail?: string): void {
    this.ctx.drop(reason, detail);
  }

  /** The shell cannot serve this flow any more: forget it (its socket is closed). */
  fail(flowId: number): void {
    const f = this.get(flowId);
    if (f) this.remove(f);
  }

  private remove(flow: EchoFlow): void {
    if (!this.ctx.flows.remove(flow)) return;
    this.hooks.close(flow);
  }

  closeAll(): void {
    for (const f of this.ctx.flows.all('echo')) this.remove(f as EchoFlow);
  }
}
