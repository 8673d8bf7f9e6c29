// ICMP echo to addresses outside the virtual network, pure. Each guest
// (address, echo identifier) is one flow, which the shell backs with one
// unprivileged ping socket; the kernel gives that socket its own identifier,
// so replies come back through deliver() and are rewritten to the guest's
// identifier here. Flows expire when idle, like UDP flows.

import { ipv4ToString } from '../wire/address.js';
import type { EthernetFrame } from '../wire/ethernet.js';
import { Icmpv4Repr, Icmpv4Type } from '../wire/icmpv4.js';
import { IpProtocol, Ipv4Repr, type Ipv4Packet } from '../wire/ipv4.js';
import type { StackContext } from './context.js';
import { icmpUnreachableFrame, ipv4Frame } from './emit.js';
import { IdleTable } from './idle-table.js';
import { routeFor } from './nat.js';

export const MAX_ECHO_FLOWS = 1024;

export interface EchoFlow {
  readonly id: number;
  readonly guestIp: number;
  readonly ident: number;
  guestMac: number;
  lastActive: number;
}

export interface EchoHooks {
  /** Send an echo request with seq/data to addr from the flow's ping socket. */
  send(flow: EchoFlow, addr: number, seq: number, data: Buffer): void;
  close(flow: EchoFlow): void;
}

export class EchoTable {
  private readonly flows: IdleTable<EchoFlow>;
  private nextId = 1;

  constructor(
    private readonly ctx: StackContext,
    private readonly hooks: EchoHooks,
    idleMs: number,
  ) {
    this.flows = new IdleTable(idleMs, MAX_ECHO_FLOWS);
  }

  get size(): number {
    return this.flows.size;
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
      this.ctx.transmit(icmpUnreachableFrame(this.ctx.config.gatewayMac, eth.src, this.ctx.config.gateway, ip.src, 1, ip.buffer.subarray(0, ip.totalLen)));
      return;
    }
    const key = ip.src * 65536 + icmp.ident;
    let flow = this.flows.lookup(key);
    if (!flow) {
      if (this.flows.full) this.remove(this.flows.oldest()!);
      if (!this.ctx.admitFlow(now)) {
        this.ctx.drop('flow-table-full', `icmp ${ipv4ToString(ip.dst)}`);
        this.ctx.transmit(icmpUnreachableFrame(this.ctx.config.gatewayMac, eth.src, this.ctx.config.gateway, ip.src, 1, ip.buffer.subarray(0, ip.totalLen)));
        return;
      }
      flow = { id: this.nextId++, guestIp: ip.src, ident: icmp.ident, guestMac: eth.src, lastActive: now };
      this.flows.insert(key, flow);
      this.ctx.counters.count('icmp-echo-flow-opened');
    }
    flow.guestMac = eth.src;
    this.flows.touch(flow, now);
    this.hooks.send(flow, route.addr, icmp.seq, icmp.data);
  }

  /** An echo reply from `src` for the flow: rewritten to the guest's identifier. */
  deliver(now: number, flowId: number, src: number, seq: number, data: Buffer): void {
    const flow = this.flows.get(flowId);
    if (!flow) {
      this.ctx.drop('icmp-reply-no-flow');
      return;
    }
    this.flows.touch(flow, now);
    const reply = new Icmpv4Repr({ type: Icmpv4Type.EchoReply, ident: flow.ident, seq, data });
    const ipr = new Ipv4Repr({ src, dst: flow.guestIp, protocol: IpProtocol.ICMP, payloadLen: reply.bufferLen(), dontFrag: false });
    const { frame, payload } = ipv4Frame(this.ctx.config.gatewayMac, flow.guestMac, ipr);
    reply.emit(payload);
    this.ctx.counters.count('icmp-echo-reply-forwarded');
    this.ctx.transmit(frame);
  }

  /** Evicts the least recently active flow to make room; false when there is none. */
  evictOldest(): boolean {
    const f = this.flows.oldest();
    if (!f) return false;
    this.remove(f);
    return true;
  }

  /** Counts an echo the shell dropped. */
  drop(reason: string, detail?: string): void {
    this.ctx.drop(reason, detail);
  }

  /** The shell cannot serve this flow any more: forget it (its socket is closed). */
  fail(flowId: number): void {
    const f = this.flows.get(flowId);
    if (f) this.remove(f);
  }

  private remove(flow: EchoFlow): void {
    this.flows.remove(flow);
    this.hooks.close(flow);
  }

  expire(now: number): void {
    for (const f of this.flows.expired(now)) this.remove(f);
  }

  pollAt(): number {
    return this.flows.pollAt();
  }

  closeAll(): void {
    for (const f of [...this.flows.values()]) this.remove(f);
  }
}
