// ICMPv4 addressed to the stack's own addresses (gateway, DNS): echo
// requests are answered (RFC 792, RFC 1122 §3.2.2.6); other ICMP to us is
// counted and dropped. ICMP to outside addresses (ping sockets) and ICMP
// errors about terminated flows come with TCP/UDP termination.

import type { EthernetFrame } from '../wire/ethernet.js';
import { Icmpv4Packet, Icmpv4Repr, Icmpv4Type } from '../wire/icmpv4.js';
import { IpProtocol, Ipv4Repr, type Ipv4Packet } from '../wire/ipv4.js';
import type { StackContext } from './context.js';
import { ipv4Frame } from './emit.js';

export function processIcmpv4(ctx: StackContext, _now: number, eth: EthernetFrame, ip: Ipv4Packet): void {
  const icmp = Icmpv4Repr.parse(Icmpv4Packet.newChecked(ip.payload));
  if (icmp.type !== Icmpv4Type.EchoRequest) {
    ctx.drop('icmp-type-unhandled', String(icmp.type));
    return;
  }
  const srcMac = ctx.ownMac(ip.dst);
  if (srcMac === undefined) {
    ctx.drop('icmp-not-for-us');
    return;
  }
  // RFC 1122 §3.2.2.6: the reply carries the request's identifier, sequence
  // number and data unchanged; source and destination are swapped.
  const reply = new Icmpv4Repr({ type: Icmpv4Type.EchoReply, ident: icmp.ident, seq: icmp.seq, data: icmp.data });
  const ipr = new Ipv4Repr({
    src: ip.dst,
    dst: ip.src,
    protocol: IpProtocol.ICMP,
    payloadLen: reply.bufferLen(),
    ttl: 64,
    dontFrag: false,
  });
  const { frame, payload } = ipv4Frame(srcMac, eth.src, ipr);
  reply.emit(payload);
  ctx.counters.count('icmp-echo-reply-sent');
  ctx.transmit(frame);
}
