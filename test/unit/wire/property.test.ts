// Property: whatever bytes arrive, newChecked + parse either succeed or throw
// a WireError — never a RangeError, TypeError or anything else — and a
// successful parse can always be emitted again.

import { describe, it, expect } from 'vitest';
import { WireError } from '../../../src/wire/errors.js';
import { EthernetFrame, EthernetRepr, EtherType } from '../../../src/wire/ethernet.js';
import { ArpPacket, ArpRepr } from '../../../src/wire/arp.js';
import { IpProtocol, Ipv4Packet, Ipv4Repr } from '../../../src/wire/ipv4.js';
import { Ipv6Packet, Ipv6Repr, walkIpv6Ext } from '../../../src/wire/ipv6.js';
import { Icmpv4Packet, Icmpv4Repr } from '../../../src/wire/icmpv4.js';
import { Icmpv6Packet, Icmpv6Repr } from '../../../src/wire/icmpv6.js';
import { UdpPacket, UdpRepr } from '../../../src/wire/udp.js';
import { TcpPacket, TcpRepr } from '../../../src/wire/tcp.js';
import { VirtioNetHdr, VirtioNetRepr } from '../../../src/wire/virtio-net.js';
import { pseudoV4, pseudoV6 } from '../../../src/wire/checksum.js';
import * as F from './fixtures.js';

interface Emittable {
  bufferLen(): number;
}

/** Emits a parsed Repr into a fresh buffer of its own bufferLen(). */
function reemit(emit: (b: Buffer) => void, r: Emittable): void {
  emit(Buffer.alloc(r.bufferLen()));
}

const SRC6 = Buffer.from('fd000000000000000000000000000100', 'hex');
const DST6 = Buffer.from('fd000000000000000000000000000002', 'hex');
const noCsum = { ignoreChecksum: true };

/** Every decoder on its own, fed the same bytes. */
const decoders: ((b: Buffer) => void)[] = [
  (b) => {
    const r = EthernetRepr.parse(EthernetFrame.newChecked(b));
    reemit((o) => r.emit(o), r);
  },
  (b) => {
    const r = ArpRepr.parse(ArpPacket.newChecked(b));
    reemit((o) => r.emit(o), r);
  },
  (b) => {
    const p = Ipv4Packet.newChecked(b);
    Ipv4Repr.parse(p);
    const r = Ipv4Repr.parse(p, noCsum);
    r.emit(Buffer.alloc(r.headerLen()));
  },
  (b) => {
    const p = Ipv6Packet.newChecked(b);
    const r = Ipv6Repr.parse(p);
    r.emit(Buffer.alloc(40));
    walkIpv6Ext(p);
  },
  (b) => {
    const p = Icmpv4Packet.newChecked(b);
    const r = Icmpv4Repr.parse(p, noCsum);
    reemit((o) => r.emit(o), r);
    Icmpv4Repr.parse(p);
  },
  (b) => {
    const p = Icmpv6Packet.newChecked(b);
    const r = Icmpv6Repr.parse(p, SRC6, DST6, noCsum);
    reemit((o) => r.emit(o, SRC6, DST6), r);
    Icmpv6Repr.parse(p, SRC6, DST6);
  },
  (b) => {
    const p = UdpPacket.newChecked(b);
    const r = UdpRepr.parse(p);
    reemit((o) => r.emit(o, 0), r);
    UdpRepr.parse(p, { pseudoSum: pseudoV4(1, 2, 17, p.length), ipv6: (b[0] & 1) === 1 });
  },
  (b) => {
    const p = TcpPacket.newChecked(b);
    const r = TcpRepr.parse(p);
    reemit((o) => r.emit(o, 0), r);
    TcpRepr.parse(p, { pseudoSum: 0x1234 });
  },
  (b) => {
    const r = VirtioNetRepr.parse(VirtioNetHdr.newChecked(b, (b[0] & 1) === 1));
    reemit((o) => r.emit(o), r);
  },
];

/** The chain the stack runs: Ethernet → ARP/IPv4/IPv6 → transport, checksums ignored to go deep. */
function decodeFrame(frame: Buffer): void {
  const eth = EthernetFrame.newChecked(frame);
  const l3 = eth.payload;
  switch (eth.ethertype) {
    case EtherType.ARP:
      ArpRepr.parse(ArpPacket.newChecked(l3));
      return;
    case EtherType.IPv4: {
      const ip = Ipv4Packet.newChecked(l3);
      const ipr = Ipv4Repr.parse(ip, noCsum);
      if (ip.isFragment) return;
      const l4 = ip.payload;
      const ps = pseudoV4(ipr.src, ipr.dst, ipr.protocol, l4.length);
      if (ipr.protocol === IpProtocol.ICMP) Icmpv4Repr.parse(Icmpv4Packet.newChecked(l4), noCsum);
      if (ipr.protocol === IpProtocol.UDP) {
        const u = UdpPacket.newChecked(l4);
        UdpRepr.parse(u, { pseudoSum: pseudoV4(ipr.src, ipr.dst, ipr.protocol, u.length) });
      }
      if (ipr.protocol === IpProtocol.TCP) TcpRepr.parse(TcpPacket.newChecked(l4), { pseudoSum: ps });
      return;
    }
    case EtherType.IPv6: {
      const ip = Ipv6Packet.newChecked(l3);
      const x = walkIpv6Ext(ip);
      if (x.hasFragment) return;
      const l4 = ip.buffer.subarray(x.offset, ip.end);
      if (x.protocol === IpProtocol.ICMPv6) Icmpv6Repr.parse(Icmpv6Packet.newChecked(l4), ip.src, ip.dst, noCsum);
      if (x.protocol === IpProtocol.UDP) UdpRepr.parse(UdpPacket.newChecked(l4), { pseudoSum: pseudoV6(ip.src, ip.dst, 17, l4.length), ipv6: true });
      if (x.protocol === IpProtocol.TCP) TcpRepr.parse(TcpPacket.newChecked(l4));
      return;
    }
  }
}

const FRAMES = [
  F.ARP_REQUEST, F.ARP_REPLY, F.ARP_REQUEST_VLAN, F.ICMP_ECHO_REQUEST, F.ICMP_PORT_UNREACHABLE,
  F.DNS_QUERY, F.TCP_SYN, F.TCP_RST_ACK, F.NDP_NS, F.NDP_NA, F.NDP_RS, F.NDP_RA,
  F.ICMPV6_ECHO_REQUEST, F.MLD_REPORT_HBH, F.IPV6_HBH_FRAG_UDP.subarray(0, 120),
];

/** Runs `fn`, recording a failure if it threw anything but a WireError. */
function onlyWireErrors(fn: () => void, failures: string[], what: string): void {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof WireError)) failures.push(`${what}: ${String(e)}`);
  }
}

describe('property: malformed input only ever raises WireError', () => {
  it('random bytes of random length through every newChecked + parse', () => {
    const rand = F.prng(0xc0ffee);
    const failures: string[] = [];
    for (let i = 0; i < 3000; i++) {
      const len = rand() < 0.8 ? (rand() * 96) | 0 : (rand() * 1600) | 0;
      const b = F.randomBytes(rand, len);
      // Make the version nibble plausible half the time so IP parsing goes deeper.
      if (len > 0 && rand() < 0.5) b[0] = rand() < 0.5 ? 0x45 : 0x60;
      for (const [k, d] of decoders.entries()) onlyWireErrors(() => d(b), failures, `decoder ${k} len ${len}`);
      if (failures.length > 0) break;
    }
    expect(failures).toEqual([]);
  });

  it('mutated and truncated real frames through the whole decode chain', () => {
    const rand = F.prng(4861);
    const failures: string[] = [];
    for (let i = 0; i < 3000; i++) {
      const base = FRAMES[(rand() * FRAMES.length) | 0];
      const b = Buffer.from(base.subarray(0, rand() < 0.3 ? (rand() * base.length) | 0 : base.length));
      const flips = 1 + ((rand() * 4) | 0);
      for (let f = 0; f < flips && b.length > 0; f++) b[(rand() * b.length) | 0] = (rand() * 256) | 0;
      onlyWireErrors(() => decodeFrame(b), failures, `frame ${i}`);
      // And every decoder on the L3 and L4 slices.
      for (const start of [14, 34, 54]) {
        if (b.length < start) continue;
        const sub = b.subarray(start);
        for (const [k, d] of decoders.entries()) onlyWireErrors(() => d(sub), failures, `decoder ${k} @${start}`);
      }
      if (failures.length > 0) break;
    }
    expect(failures).toEqual([]);
  });

  it('unchecked views never throw from accessors, even on empty buffers', () => {
    const empty = Buffer.alloc(0);
    const views = [
      new EthernetFrame(empty), new ArpPacket(empty), new Ipv4Packet(empty), new Ipv6Packet(empty),
      new Icmpv4Packet(empty), new Icmpv6Packet(empty), new UdpPacket(empty), new TcpPacket(empty),
      new VirtioNetHdr(empty),
    ];
    for (const view of views) {
      const v = view as unknown as Record<string, unknown>;
      const proto = Object.getPrototypeOf(v) as object;
      for (const [name, desc] of Object.entries(Object.getOwnPropertyDescriptors(proto))) {
        if (desc.get) expect(() => v[name], name).not.toThrow();
        if (desc.set) expect(() => (v[name] = 1), name).not.toThrow();
      }
    }
  });
});
