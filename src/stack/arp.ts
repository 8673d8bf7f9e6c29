// ARP (RFC 826) for the virtual network: answers who-has for the stack's own
// addresses (gateway, DNS) with their virtual MACs, ignores requests for any
// other address, and learns the guest's MAC/IP from what it says.

import { ArpOperation, ArpPacket, ArpRepr } from '../wire/arp.js';
import { EtherType, EthernetRepr, ETH_HEADER_LEN } from '../wire/ethernet.js';
import { MAC_BROADCAST } from '../wire/address.js';
import type { StackContext } from './context.js';

/** Handles one ARP packet (the Ethernet payload). */
export function processArp(ctx: StackContext, now: number, payload: Buffer): void {
  const repr = ArpRepr.parse(ArpPacket.newChecked(payload));
  // RFC 5227 §2.1.1: a probe has sender IP 0.0.0.0 and must not update caches.
  if (repr.senderIp !== 0 && ctx.inNetwork(repr.senderIp) && !ctx.isOwnAddress(repr.senderIp)) {
    ctx.learnNeighbor(repr.senderIp, repr.senderMac, now);
  }
  if (repr.operation !== ArpOperation.Request) {
    ctx.counters.count('arp-reply-received');
    return;
  }
  const mac = ctx.ownMac(repr.targetIp);
  if (mac === undefined) {
    // Not ours (another guest address, DAD for the guest's own address):
    // stay silent, as a host on a real LAN would.
    ctx.drop('arp-not-for-us');
    return;
  }
  // RFC 826 "Packet Reception": swap sender and target, fill in our hardware
  // address, and send the reply to the requester.
  const frame = Buffer.alloc(ETH_HEADER_LEN + 28);
  new EthernetRepr({ src: mac, dst: repr.senderMac, ethertype: EtherType.ARP }).emit(frame);
  new ArpRepr({
    operation: ArpOperation.Reply,
    senderMac: mac,
    senderIp: repr.targetIp,
    targetMac: repr.senderMac,
    targetIp: repr.senderIp,
  }).emit(frame.subarray(ETH_HEADER_LEN));
  ctx.counters.count('arp-reply-sent');
  ctx.transmit(frame);
}

/** RFC 826: a who-has request for ip, from the gateway, broadcast. */
export function arpRequestFrame(gatewayMac: number, gateway: number, ip: number): Buffer {
  const frame = Buffer.alloc(ETH_HEADER_LEN + 28);
  new EthernetRepr({ src: gatewayMac, dst: MAC_BROADCAST, ethertype: EtherType.ARP }).emit(frame);
  new ArpRepr({ operation: ArpOperation.Request, senderMac: gatewayMac, senderIp: gateway, targetMac: 0, targetIp: ip }).emit(
    frame.subarray(ETH_HEADER_LEN),
  );
  return frame;
}
