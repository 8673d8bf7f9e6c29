// Read this first: the Stack is tsnet's protocol core. It is pure — no
// sockets, no timers, no clock reads. The shell calls receive(now, frame) for
// every frame the guest sends; the stack answers through hooks.transmit
// (frames toward the guest) and reports drops and events through hooks.
// `now` is monotonic milliseconds, supplied by the caller (real time when
// attached, capture time in replay, a counter in tests).
//
// Dispatch: Ethernet → ARP (arp.ts) | IPv4 → ICMP (icmp.ts) | everything not
// handled yet is dropped and counted by reason. Nothing thrown by a
// malformed frame escapes receive(): WireErrors become drop reasons, and any
// other exception is counted as "internal-error" and reported.

import { isMacMulticast } from '../wire/address.js';
import { EtherType, EthernetFrame } from '../wire/ethernet.js';
import { WireError } from '../wire/errors.js';
import { IpProtocol, Ipv4Packet } from '../wire/ipv4.js';
import { ipv4ToString, macToString } from '../wire/address.js';
import { processArp } from './arp.js';
import type { StackConfig } from './config.js';
import type { StackContext } from './context.js';
import { Counters } from './counters.js';
import { processIcmpv4 } from './icmp.js';
import { NeighborTable } from './neighbors.js';


export interface StackHooks {
  /** A frame for the guest. The stack does not touch `frame` after the call. */
  transmit(frame: Buffer): void;
  /** A frame was dropped; reason is a short kebab code. */
  onDrop?(reason: string, detail?: string): void;
  /** Something worth a log line happened (guest learned, ...). */
  onEvent?(event: string, detail: Record<string, unknown>): void;
  /** A bug: an exception other than a WireError while handling a frame. */
  onError?(err: unknown): void;
}

export class Stack implements StackContext {
  readonly counters = new Counters();
  readonly neighbors = new NeighborTable();

  constructor(
    readonly config: StackConfig,
    private readonly hooks: StackHooks,
  ) {}

  /** Handles one frame from the guest. Never throws. */
  receive(now: number, frame: Buffer): void {
    this.counters.rxFrames++;
    this.counters.rxBytes += frame.length;
    try {
      this.processEthernet(now, frame);
    } catch (e) {
      if (e instanceof WireError) {
        this.drop(e.reason, e.message);
      } else {
        this.drop('internal-error', e instanceof Error ? e.message : String(e));
        this.hooks.onError?.(e);
      }
    }
  }

  transmit(frame: Buffer): void {
    this.counters.txFrames++;
    this.counters.txBytes += frame.length;
    this.hooks.transmit(frame);
  }

  drop(reason: string, detail?: string): void {
    this.counters.drop(reason);
    this.hooks.onDrop?.(reason, detail);
  }

  inNetwork(ip: number): boolean {
    return ((ip & this.config.netmask) >>> 0) === this.config.network;
  }

  isOwnAddress(ip: number): boolean {
    return ip === this.config.gateway || ip === this.config.dns;
  }

  ownMac(ip: number): number | undefined {
    if (ip === this.config.gateway) return this.config.gatewayMac;
    if (ip === this.config.dns) return this.config.dnsMac;
    return undefined;
  }

  /** The guest's MAC for ip, if it has spoken. */
  guestMac(ip: number): number | undefined {
    return this.neighbors.lookup(ip);
  }

  private learn(ip: number, mac: number, now: number): void {
    if (this.neighbors.learn(ip, mac, now)) {
      this.hooks.onEvent?.('guest address learned', { ip: ipv4ToString(ip), mac: macToString(mac) });
    }
  }

  private processEthernet(now: number, frame: Buffer): void {
    const eth = EthernetFrame.newChecked(frame);
    const dst = eth.dst;
    // Unicast frames must be addressed to one of our virtual MACs; broadcast
    // and multicast (ARP who-has, IPv6 NDP) are looked at.
    if (dst !== this.config.gatewayMac && dst !== this.config.dnsMac && !isMacMulticast(dst)) {
      this.drop('eth-not-for-us', macToString(dst));
      return;
    }
    switch (eth.ethertype) {
      case EtherType.ARP:
        processArp(this, now, eth.payload);
        return;
      case EtherType.IPv4:
        this.processIpv4(now, eth);
        return;
      case EtherType.IPv6:
        this.drop('ipv6-unhandled');
        return;
      default:
        this.drop('eth-unknown-ethertype', `0x${eth.ethertype.toString(16).padStart(4, '0')}`);
    }
  }

  private processIpv4(now: number, eth: EthernetFrame): void {
    const ip = Ipv4Packet.newChecked(eth.payload);
    // RFC 1122 §3.2.1.2: a datagram with a bad header checksum is silently discarded.
    if (!ip.verifyChecksum()) throw new WireError('ipv4-bad-checksum');
    const src = ip.src;
    if (src !== 0 && this.inNetwork(src) && !this.isOwnAddress(src)) this.learn(src, eth.src, now);
    if (ip.isFragment) {
      // Reassembly arrives with TCP/UDP termination; until then fragments are dropped.
      this.drop('ipv4-fragment');
      return;
    }
    const dst = ip.dst;
    switch (ip.protocol) {
      case IpProtocol.ICMP:
        if (this.isOwnAddress(dst)) {
          processIcmpv4(this, now, eth, ip);
        } else {
          this.drop('icmp-to-external-unhandled', ipv4ToString(dst));
        }
        return;
      case IpProtocol.TCP:
        this.drop('tcp-unhandled', ipv4ToString(dst));
        return;
      case IpProtocol.UDP:
        this.drop('udp-unhandled', ipv4ToString(dst));
        return;
      default:
        this.drop('ipv4-unknown-protocol', String(ip.protocol));
    }
  }
}
