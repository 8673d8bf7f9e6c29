import { describe, it, expect } from 'vitest';
import { IpProtocol } from '../../../src/wire/ipv4.js';
import { Ipv6ExtInfo, Ipv6Packet, Ipv6Repr, walkIpv6Ext } from '../../../src/wire/ipv6.js';
import { UdpPacket } from '../../../src/wire/udp.js';
import { ipv6FromString, ipv6ToString } from '../../../src/wire/address.js';
import {
  ICMPV6_ECHO_REQUEST,
  IPV6_HBH_FRAG_UDP,
  MLD_REPORT_HBH,
  NDP_NS,
  expectWireError,
  hex,
  slice,
} from './fixtures.js';

const ip = (frame: Buffer): Buffer => slice(frame, 14);

/** An IPv6 header for fd00::100 → fd00::2 with the given next header and payload. */
function v6(nextHeader: number, payload: Buffer): Buffer {
  const b = Buffer.alloc(40 + payload.length);
  new Ipv6Repr({
    src: ipv6FromString('fd00::100'),
    dst: ipv6FromString('fd00::2'),
    nextHeader,
    payloadLen: payload.length,
  }).emit(b);
  payload.copy(b, 40);
  return b;
}

describe('IPv6 (RFC 8200)', () => {
  it('parses the fixed header of a real ping', () => {
    const p = Ipv6Packet.newChecked(ip(ICMPV6_ECHO_REQUEST));
    expect(p.version).toBe(6);
    expect(p.trafficClass).toBe(0);
    expect(p.flowLabel).toBe(0x38083);
    expect(p.payloadLen).toBe(64);
    expect(p.nextHeader).toBe(IpProtocol.ICMPv6);
    expect(p.hopLimit).toBe(64);
    expect(ipv6ToString(p.src)).toBe('fd00::100');
    expect(ipv6ToString(p.dst)).toBe('fd00::2');
    expect(p.payload.length).toBe(64);
  });

  it('round-trips real fixed headers byte for byte', () => {
    for (const frame of [ICMPV6_ECHO_REQUEST, NDP_NS, MLD_REPORT_HBH, IPV6_HBH_FRAG_UDP]) {
      const r = Ipv6Repr.parse(Ipv6Packet.newChecked(ip(frame)));
      const out = Buffer.alloc(40);
      r.emit(out);
      expect(out).toEqual(frame.subarray(14, 54));
      expect(r.bufferLen()).toBe(frame.length - 14);
    }
  });

  it('reads and writes a non-zero traffic class without disturbing the flow label', () => {
    const p = new Ipv6Packet(ip(ICMPV6_ECHO_REQUEST));
    p.trafficClass = 0xb8; // EF
    expect(p.trafficClass).toBe(0xb8);
    expect(p.flowLabel).toBe(0x38083);
    expect(p.version).toBe(6);
    p.flowLabel = 0xfffff;
    expect(p.trafficClass).toBe(0xb8);
  });

  it('walks straight to ICMPv6 when there are no extension headers', () => {
    const x = walkIpv6Ext(Ipv6Packet.newChecked(ip(NDP_NS)));
    expect(x.protocol).toBe(IpProtocol.ICMPv6);
    expect(x.offset).toBe(40);
    expect(x.hasFragment).toBe(false);
  });

  it('walks a real Hop-by-Hop (Router Alert) header to the MLD report', () => {
    const p = Ipv6Packet.newChecked(ip(MLD_REPORT_HBH));
    const x = walkIpv6Ext(p);
    expect(x.protocol).toBe(IpProtocol.ICMPv6);
    expect(x.offset).toBe(48);
    expect(x.upperLen(p)).toBe(48);
    expect(x.hasFragment).toBe(false);
  });

  it('walks a real Hop-by-Hop + Fragment chain to UDP and reports the fragment', () => {
    const p = Ipv6Packet.newChecked(ip(IPV6_HBH_FRAG_UDP));
    const out = new Ipv6ExtInfo();
    const x = walkIpv6Ext(p, out);
    expect(x).toBe(out); // reusable result, no allocation
    expect(x.protocol).toBe(IpProtocol.UDP);
    expect(x.offset).toBe(56);
    expect(x.hasFragment).toBe(true);
    expect(x.fragHeaderOffset).toBe(48);
    expect(x.fragOffset).toBe(0);
    expect(x.moreFrags).toBe(true);
    expect(x.fragIdent).toBe(0xd42fae7f);
    // The UDP length covers the reassembled datagram: a single fragment
    // cannot be parsed as UDP, which is why the stack must check hasFragment.
    expectWireError(() => UdpPacket.newChecked(p.buffer.subarray(x.offset, p.end)), 'udp-bad-length');
  });

  it('reports a non-zero fragment offset', () => {
    const b = v6(IpProtocol.IPv6Frag, hex(`
      11 00           # Frag: next header UDP, reserved
      05 c8           # offset 1480 / 8 = 185 << 3, M = 0
      00 00 00 2a     # identification 42
      00 00 00 00 00 00 00 00
    `));
    const x = walkIpv6Ext(Ipv6Packet.newChecked(b));
    expect(x.fragOffset).toBe(1480);
    expect(x.moreFrags).toBe(false);
    expect(x.fragIdent).toBe(42);
  });

  it('walks Destination Options, Routing and AH, and stops at No Next Header', () => {
    const b = v6(IpProtocol.IPv6Opts, hex(`
      2b 00 01 04 00 00 00 00          # DestOpts → Routing, 8 bytes (PadN)
      33 02 00 00 00 00 00 00          # Routing → AH, ext len 2 = 24 bytes,
      00 00 00 00 00 00 00 00          #   (routing header body)
      00 00 00 00 00 00 00 00
      3b 04 00 00 00 00 00 01          # AH → No Next Header, payload len 4 = 24 bytes
      00 00 00 01 00 00 00 00          #   (SPI, seq, ICV)
      00 00 00 00 00 00 00 00
    `));
    const x = walkIpv6Ext(Ipv6Packet.newChecked(b));
    expect(x.protocol).toBe(IpProtocol.IPv6NoNxt);
    expect(x.offset).toBe(40 + 8 + 24 + 24);
  });

  it('ignores link-layer padding past Payload Length', () => {
    const b = Buffer.concat([ip(NDP_NS), Buffer.alloc(6)]);
    const p = Ipv6Packet.newChecked(b);
    expect(p.payload.length).toBe(32);
    expect(p.end).toBe(72);
  });

  it('rejects a buffer shorter than 40 bytes (ipv6-truncated)', () => {
    expectWireError(() => Ipv6Packet.newChecked(ip(NDP_NS).subarray(0, 39)), 'ipv6-truncated');
  });

  it('rejects version 4 in an IPv6 slot (ipv6-bad-version)', () => {
    const b = ip(NDP_NS);
    b[0] = 0x45;
    expectWireError(() => Ipv6Packet.newChecked(b), 'ipv6-bad-version');
  });

  it('rejects Payload Length beyond the buffer (ipv6-bad-payload-len)', () => {
    expectWireError(() => Ipv6Packet.newChecked(ip(NDP_NS).subarray(0, 71)), 'ipv6-bad-payload-len');
  });

  it('rejects a Hop-by-Hop header longer than the payload (ipv6-ext-truncated)', () => {
    const b = ip(MLD_REPORT_HBH);
    b[41] = 7; // ext len 7 → 64 bytes, payload is 56
    expectWireError(() => walkIpv6Ext(Ipv6Packet.newChecked(b)), 'ipv6-ext-truncated');
  });

  it('rejects an extension header cut after its first byte (ipv6-ext-truncated)', () => {
    const b = v6(IpProtocol.HopByHop, hex('3a'));
    expectWireError(() => walkIpv6Ext(Ipv6Packet.newChecked(b)), 'ipv6-ext-truncated');
  });

  it('rejects a truncated Fragment header (ipv6-ext-truncated)', () => {
    const b = v6(IpProtocol.IPv6Frag, hex('11 00 00 01 d4 2f'));
    expectWireError(() => walkIpv6Ext(Ipv6Packet.newChecked(b)), 'ipv6-ext-truncated');
  });

  it('rejects a Hop-by-Hop header that is not first (ipv6-ext-bad-order)', () => {
    const b = v6(IpProtocol.IPv6Opts, hex('00 00 01 04 00 00 00 00  3a 00 01 04 00 00 00 00'));
    expectWireError(() => walkIpv6Ext(Ipv6Packet.newChecked(b)), 'ipv6-ext-bad-order');
  });
});
