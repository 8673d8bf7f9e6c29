// What every frame the stack transmits must be, checked with the project's
// own wire parsers (src/wire): an untagged Ethernet frame from one of
// tsnet's virtual MACs, carrying ARP (Ethernet/IPv4, request or reply) or an
// IPv4 datagram that is not a fragment, has a correct header checksum, no
// bytes after Total Length, and a TCP, UDP or ICMP payload that parses and
// whose checksum is right (UDP's present). And no larger than the MTU —
// unless the guest's own frame that caused it was larger.
//
// The stack-state invariants (exceptions, the internal-error counter,
// onError, flow bounds, pollAt) live in the harness, which owns the stack.

import { ArpPacket, ArpRepr } from '../../src/wire/arp.js';
import { EtherType, EthernetFrame, ETH_HEADER_LEN } from '../../src/wire/ethernet.js';
import { WireError } from '../../src/wire/errors.js';
import { Icmpv4Packet, Icmpv4Repr } from '../../src/wire/icmpv4.js';
import { IpProtocol, Ipv4Packet } from '../../src/wire/ipv4.js';
import { TcpPacket, TcpRepr } from '../../src/wire/tcp.js';
import { UdpPacket, UdpRepr } from '../../src/wire/udp.js';
import { Icmpv6Packet, Icmpv6Repr } from '../../src/wire/icmpv6.js';
import { IPV6_HEADER_LEN, Ipv6Packet } from '../../src/wire/ipv6.js';
import { pseudoV6 } from '../../src/wire/checksum.js';
import { macToString } from '../../src/wire/address.js';
import type { StackConfig } from '../../src/stack/config.js';

export interface OutputViolation {
  invariant: string;
  detail: string;
}

export class OutputChecker {
  /** Frames checked, by what they carried. */
  readonly counts = new Map<string, number>();

  constructor(private readonly cfg: StackConfig) {}

  private count(what: string): void {
    this.counts.set(what, (this.counts.get(what) ?? 0) + 1);
  }

  /** Checks one transmitted frame; undefined when it is sound. */
  check(frame: Buffer, maxLen: number): OutputViolation | undefined {
    try {
      return this.checkOrThrow(frame, maxLen);
    } catch (e) {
      if (e instanceof WireError) return { invariant: `tx-${e.reason}`, detail: `the stack sent a frame its own parsers reject: ${e.message}` };
      throw e;
    }
  }

  private checkOrThrow(frame: Buffer, maxLen: number): OutputViolation | undefined {
    const cfg = this.cfg;
    const eth = EthernetFrame.newChecked(frame);
    if (eth.src !== cfg.gatewayMac && eth.src !== cfg.dnsMac && eth.src !== cfg.ipv6?.mac && eth.src !== cfg.ipv6?.dnsMac) {
      return { invariant: 'tx-foreign-src-mac', detail: `source MAC ${macToString(eth.src)} is not one of tsnet's virtual MACs` };
    }
    if (eth.tagged) return { invariant: 'tx-tagged', detail: 'tsnet never originates VLAN-tagged frames' };
    if (frame.length > maxLen) {
      return { invariant: 'tx-exceeds-mtu', detail: `${frame.length}-byte frame, the MTU allows ${ETH_HEADER_LEN + cfg.mtu}` };
    }
    if (eth.ethertype === EtherType.ARP) {
      ArpRepr.parse(ArpPacket.newChecked(eth.payload));
      this.count('arp');
      return undefined;
    }
    if (eth.ethertype === EtherType.IPv6) return this.checkIpv6(eth.payload);
    if (eth.ethertype !== EtherType.IPv4) {
      return { invariant: 'tx-unknown-ethertype', detail: `ethertype 0x${eth.ethertype.toString(16)}` };
    }
    const ip = Ipv4Packet.newChecked(eth.payload);
    if (!ip.verifyChecksum()) return { invariant: 'tx-ipv4-bad-checksum', detail: 'IPv4 header checksum wrong' };
    if (ip.isFragment) return { invariant: 'tx-fragment', detail: 'tsnet does not fragment' };
    if (ip.totalLen !== eth.payload.length) {
      return { invariant: 'tx-ipv4-length', detail: `total length ${ip.totalLen}, ${eth.payload.length} bytes after the Ethernet header` };
    }
    switch (ip.protocol) {
      case IpProtocol.TCP: {
        const t = TcpPacket.newChecked(ip.payload);
        if (!t.verifyChecksumV4(ip.src, ip.dst)) return { invariant: 'tx-tcp-bad-checksum', detail: 'TCP checksum wrong' };
        TcpRepr.parse(t);
        this.count('tcp');
        return undefined;
      }
      case IpProtocol.UDP: {
        const u = UdpPacket.newChecked(ip.payload);
        if (u.length !== ip.payload.length) return { invariant: 'tx-udp-length', detail: `UDP length ${u.length}, IP payload ${ip.payload.length}` };
        if (u.checksum === 0 || !u.verifyChecksumV4(ip.src, ip.dst)) return { invariant: 'tx-udp-bad-checksum', detail: `UDP checksum 0x${u.checksum.toString(16)} wrong or absent` };
        UdpRepr.parse(u);
        this.count('udp');
        return undefined;
      }
      case IpProtocol.ICMP:
        Icmpv4Repr.parse(Icmpv4Packet.newChecked(ip.payload));
        this.count('icmp');
        return undefined;
      default:
        return { invariant: 'tx-unknown-protocol', detail: `IP protocol ${ip.protocol}` };
    }
  }

  /** IPv6 from tsnet: only when enabled, fixed header only, exact length, valid checksums; NDP with hop limit 255. */
  private checkIpv6(l3: Buffer): OutputViolation | undefined {
    if (!this.cfg.ipv6) return { invariant: 'tx-ipv6-disabled', detail: 'an IPv6 frame from a stack without IPv6' };
    const ip = Ipv6Packet.newChecked(l3);
    if (IPV6_HEADER_LEN + ip.payloadLen !== l3.length) return { invariant: 'tx-ipv6-length', detail: `payload length ${ip.payloadLen}, ${l3.length - IPV6_HEADER_LEN} bytes after the header` };
    const src = ip.src;
    const dst = ip.dst;
    switch (ip.nextHeader) {
      case IpProtocol.TCP: {
        const t = TcpPacket.newChecked(ip.payload);
        if (!t.verifyChecksum(pseudoV6(src, dst, IpProtocol.TCP, ip.payloadLen))) return { invariant: 'tx-tcp-bad-checksum', detail: 'TCP (IPv6) checksum wrong' };
        TcpRepr.parse(t);
        this.count('tcp6');
        return undefined;
      }
      case IpProtocol.UDP: {
        const u = UdpPacket.newChecked(ip.payload);
        if (u.length !== ip.payloadLen) return { invariant: 'tx-udp-length', detail: `UDP length ${u.length}, IPv6 payload ${ip.payloadLen}` };
        // RFC 8200 §8.1: the checksum is mandatory over IPv6.
        if (!u.verifyChecksumV6(src, dst)) return { invariant: 'tx-udp-bad-checksum', detail: `UDP (IPv6) checksum 0x${u.checksum.toString(16)} wrong or absent` };
        UdpRepr.parse(u);
        this.count('udp6');
        return undefined;
      }
      case IpProtocol.ICMPv6: {
        const p = Icmpv6Packet.newChecked(ip.payload);
        if (!p.verifyChecksum(src, dst)) return { invariant: 'tx-icmpv6-bad-checksum', detail: `ICMPv6 type ${p.type} checksum wrong` };
        const m = Icmpv6Repr.parse(p, src, dst);
        // RFC 4861: every NDP message is sent with hop limit 255.
        if (m.isNdp && ip.hopLimit !== 255) return { invariant: 'tx-ndp-hop-limit', detail: `NDP type ${m.type} with hop limit ${ip.hopLimit}` };
        // RFC 4443 §2.4 (c): errors fit the minimum MTU.
        if (m.type < 128 && l3.length > 1280) return { invariant: 'tx-icmpv6-error-too-big', detail: `${l3.length} bytes` };
        this.count('icmpv6');
        return undefined;
      }
      default:
        return { invariant: 'tx-unknown-protocol', detail: `IPv6 next header ${ip.nextHeader}` };
    }
  }
}
