// The wire layer's contract, checked on every fuzz input directly — also
// for the parsers the stack never reaches (IPv6 and its extension headers,
// ICMPv6/NDP, TCP/UDP over IPv6, the virtio-net header):
//   - malformed input is rejected with a WireError, never a RangeError,
//     TypeError or anything else (src/wire/errors.ts: "the stack never has
//     to catch a RangeError");
//   - what a Repr parses, it emits back so that parsing again gives the same
//     Repr (parse → emit → parse is a fixed point), for ARP, IPv4, TCP, UDP,
//     ICMPv4, DHCP, IPv6 and ICMPv6.

import { ArpPacket, ArpRepr } from '../../src/wire/arp.js';
import { pseudoV4, pseudoV6 } from '../../src/wire/checksum.js';
import { DhcpPacket, DhcpRepr } from '../../src/wire/dhcp.js';
import { WireError } from '../../src/wire/errors.js';
import { EtherType, EthernetFrame } from '../../src/wire/ethernet.js';
import { Icmpv4Packet, Icmpv4Repr } from '../../src/wire/icmpv4.js';
import { Icmpv6Packet, Icmpv6Repr, ndpOptionsOffset } from '../../src/wire/icmpv6.js';
import { IpProtocol, Ipv4Packet, Ipv4Repr } from '../../src/wire/ipv4.js';
import { Ipv6Packet, Ipv6Repr, walkIpv6Ext } from '../../src/wire/ipv6.js';
import { TcpPacket, TcpRepr } from '../../src/wire/tcp.js';
import { UdpPacket, UdpRepr } from '../../src/wire/udp.js';
import { VirtioNetHdr, VirtioNetRepr, completeChecksum } from '../../src/wire/virtio-net.js';

export interface ContractBreach {
  invariant: 'wire-non-wire-error' | 'wire-round-trip';
  detail: string;
  stack: string | undefined;
}

class Breach extends Error {
  constructor(readonly b: ContractBreach) {
    super(b.detail);
  }
}

/** Runs f; a WireError means "rejected" (fine), anything else is a breach. */
function guarded<T>(what: string, f: () => T): T | undefined {
  try {
    return f();
  } catch (e) {
    if (e instanceof WireError) return undefined;
    if (e instanceof Breach) throw e;
    throw new Breach({ invariant: 'wire-non-wire-error', detail: `${what} threw ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`, stack: e instanceof Error ? e.stack : undefined });
  }
}

/** The first field where two parsed Reprs differ ("" when equal). Buffers compare by content. */
export function reprDiff(a: unknown, b: unknown, path = ''): string {
  if (a instanceof Uint8Array && b instanceof Uint8Array) return Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0 ? '' : path || '(bytes)';
  if (Array.isArray(a) && Array.isArray(b)) {
    if (a.length !== b.length) return `${path}.length`;
    for (let i = 0; i < a.length; i++) {
      const d = reprDiff(a[i], b[i], `${path}[${i}]`);
      if (d) return d;
    }
    return '';
  }
  if (a !== null && b !== null && typeof a === 'object' && typeof b === 'object') {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    for (const k of keys) {
      const d = reprDiff((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], `${path}.${k}`);
      if (d) return d;
    }
    return '';
  }
  return Object.is(a, b) ? '' : path || '(value)';
}

function roundTrip<R>(what: string, first: R, again: (r: R) => R, normalise: (r: R) => unknown = (r) => r): void {
  const second = guarded(`${what} re-parse`, () => again(first));
  if (second === undefined) {
    throw new Breach({ invariant: 'wire-round-trip', detail: `${what}: what emit() wrote does not parse again`, stack: undefined });
  }
  const d = reprDiff(normalise(first), normalise(second));
  if (d) throw new Breach({ invariant: 'wire-round-trip', detail: `${what}: parse → emit → parse changes ${d}`, stack: undefined });
}

function tcpCheck(seg: Buffer, pseudo: (len: number) => number): void {
  const t = guarded('TcpPacket.newChecked', () => TcpPacket.newChecked(seg));
  if (!t) return;
  const r = guarded('TcpRepr.parse', () => TcpRepr.parse(t));
  if (!r) return;
  roundTrip(
    'TCP',
    r,
    (x) => {
      const b = Buffer.alloc(x.bufferLen());
      x.emit(b, pseudo(b.length));
      return TcpRepr.parse(TcpPacket.newChecked(b), { pseudoSum: pseudo(b.length) });
    },
    // emit keeps as many SACK blocks as fit next to the other options.
    (x) => ({ ...x, sackBlocks: x.sackBlocks?.slice(0, x.sackBlocksEmitted()) }),
  );
}

function udpCheck(dgram: Buffer, pseudo: (len: number) => number): UdpRepr | undefined {
  const u = guarded('UdpPacket.newChecked', () => UdpPacket.newChecked(dgram));
  if (!u) return undefined;
  const r = guarded('UdpRepr.parse', () => UdpRepr.parse(u));
  if (!r) return undefined;
  roundTrip('UDP', r, (x) => {
    const b = Buffer.alloc(x.bufferLen());
    x.emit(b, pseudo(b.length));
    return UdpRepr.parse(UdpPacket.newChecked(b), { pseudoSum: pseudo(b.length) });
  });
  return r;
}

function dhcpCheck(payload: Buffer): void {
  const p = guarded('DhcpPacket.newChecked', () => DhcpPacket.newChecked(payload));
  if (!p) return;
  const r = guarded('DhcpRepr.parse', () => DhcpRepr.parse(p));
  if (!r) return;
  roundTrip('DHCP', r, (x) => {
    const b = Buffer.alloc(x.bufferLen());
    x.emit(b);
    return DhcpRepr.parse(DhcpPacket.newChecked(b));
  });
}

function ipv4Check(l3: Buffer): void {
  const p = guarded('Ipv4Packet.newChecked', () => Ipv4Packet.newChecked(l3));
  if (!p) return;
  const r = guarded('Ipv4Repr.parse', () => Ipv4Repr.parse(p, { ignoreChecksum: true }));
  if (!r) return;
  roundTrip('IPv4', r, (x) => {
    const b = Buffer.alloc(x.bufferLen());
    x.emit(b);
    return Ipv4Repr.parse(Ipv4Packet.newChecked(b));
  });
  const payload = p.payload;
  const src = p.src;
  const dst = p.dst;
  if (p.isFragment && p.fragOffset > 0) return;
  switch (p.protocol) {
    case IpProtocol.TCP:
      tcpCheck(payload, (len) => pseudoV4(src, dst, IpProtocol.TCP, len));
      return;
    case IpProtocol.UDP: {
      const u = udpCheck(payload, (len) => pseudoV4(src, dst, IpProtocol.UDP, len));
      if (u && (u.dstPort === 67 || u.dstPort === 68 || u.srcPort === 67 || u.srcPort === 68)) dhcpCheck(u.payload);
      return;
    }
    case IpProtocol.ICMP: {
      const i = guarded('Icmpv4Packet.newChecked', () => Icmpv4Packet.newChecked(payload));
      if (!i) return;
      const r4 = guarded('Icmpv4Repr.parse', () => Icmpv4Repr.parse(i, { ignoreChecksum: true }));
      if (!r4) return;
      roundTrip('ICMPv4', r4, (x) => {
        const b = Buffer.alloc(x.bufferLen());
        x.emit(b);
        return Icmpv4Repr.parse(Icmpv4Packet.newChecked(b));
      });
      return;
    }
  }
}

function ipv6Check(l3: Buffer): void {
  const p = guarded('Ipv6Packet.newChecked', () => Ipv6Packet.newChecked(l3));
  if (!p) return;
  const r = guarded('Ipv6Repr.parse', () => Ipv6Repr.parse(p));
  if (!r) return;
  roundTrip('IPv6', r, (x) => {
    const b = Buffer.alloc(x.bufferLen());
    x.emit(b);
    return Ipv6Repr.parse(Ipv6Packet.newChecked(b));
  });
  const ext = guarded('walkIpv6Ext', () => walkIpv6Ext(p));
  if (!ext || (ext.hasFragment && ext.fragOffset > 0)) return;
  const upper = l3.subarray(ext.offset, p.end);
  const src = Buffer.from(p.src);
  const dst = Buffer.from(p.dst);
  switch (ext.protocol) {
    case IpProtocol.TCP:
      tcpCheck(upper, (len) => pseudoV6(src, dst, IpProtocol.TCP, len));
      return;
    case IpProtocol.UDP:
      udpCheck(upper, (len) => pseudoV6(src, dst, IpProtocol.UDP, len));
      return;
    case IpProtocol.ICMPv6: {
      const i = guarded('Icmpv6Packet.newChecked', () => Icmpv6Packet.newChecked(upper));
      if (!i) return;
      const r6 = guarded('Icmpv6Repr.parse', () => Icmpv6Repr.parse(i, src, dst, { ignoreChecksum: true }));
      if (!r6) return;
      roundTrip(
        'ICMPv6',
        r6,
        (x) => {
          const b = Buffer.alloc(x.bufferLen());
          x.emit(b, src, dst);
          return Icmpv6Repr.parse(Icmpv6Packet.newChecked(b), src, dst);
        },
        // NDP: the reserved bits of the word after the checksum are sent as zero (RFC 4861).
        (x) => (ndpOptionsOffset(x.type) > 0 ? { ...x, rest: undefined } : x),
      );
    }
  }
}

function ethernetCheck(frame: Buffer): void {
  const e = guarded('EthernetFrame.newChecked', () => EthernetFrame.newChecked(frame));
  if (!e) return;
  const payload = e.payload;
  switch (e.ethertype) {
    case EtherType.ARP: {
      const a = guarded('ArpPacket.newChecked', () => ArpPacket.newChecked(payload));
      if (!a) return;
      const r = guarded('ArpRepr.parse', () => ArpRepr.parse(a));
      if (!r) return;
      roundTrip('ARP', r, (x) => {
        const b = Buffer.alloc(x.bufferLen());
        x.emit(b);
        return ArpRepr.parse(ArpPacket.newChecked(b));
      });
      return;
    }
    case EtherType.IPv4:
      ipv4Check(payload);
      return;
    case EtherType.IPv6:
      ipv6Check(payload);
  }
}

/** Checks every parser on `frame` (an Ethernet frame; its first bytes also read as a virtio-net header). */
export function checkWireContract(frame: Buffer): ContractBreach | undefined {
  try {
    ethernetCheck(frame);
    for (const mrg of [false, true]) {
      const h = guarded('VirtioNetHdr.newChecked', () => VirtioNetHdr.newChecked(frame, mrg));
      if (!h) continue;
      const r = guarded('VirtioNetRepr.parse', () => VirtioNetRepr.parse(h));
      if (r) {
        roundTrip('virtio-net', r, (x) => {
          const b = Buffer.alloc(x.bufferLen());
          x.emit(b);
          return VirtioNetRepr.parse(VirtioNetHdr.newChecked(b, mrg));
        });
        guarded('completeChecksum', () => completeChecksum(Buffer.from(h.frame), r.csumStart, r.csumOffset));
      }
    }
    return undefined;
  } catch (e) {
    if (e instanceof Breach) return e.b;
    throw e;
  }
}
