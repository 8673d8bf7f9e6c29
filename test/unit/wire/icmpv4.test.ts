import { describe, it, expect } from 'vitest';
import {
  Icmpv4DstUnreachable,
  Icmpv4Packet,
  Icmpv4Repr,
  Icmpv4Type,
} from '../../../src/wire/icmpv4.js';
import { Ipv4Packet } from '../../../src/wire/ipv4.js';
import { UdpPacket } from '../../../src/wire/udp.js';
import { ICMP_ECHO_REQUEST, ICMP_PORT_UNREACHABLE, expectWireError, hex, slice } from './fixtures.js';

const icmp = (frame: Buffer): Buffer => slice(frame, 34);

describe('ICMPv4 (RFC 792)', () => {
  it('parses a real echo request', () => {
    const p = Icmpv4Packet.newChecked(icmp(ICMP_ECHO_REQUEST));
    expect(p.verifyChecksum()).toBe(true);
    const r = Icmpv4Repr.parse(p);
    expect(r.type).toBe(Icmpv4Type.EchoRequest);
    expect(r.code).toBe(0);
    expect(r.isEcho).toBe(true);
    expect(r.ident).toBe(0x262f);
    expect(r.seq).toBe(1);
    expect(r.data.length).toBe(56);
    expect(r.data.subarray(16, 18)).toEqual(hex('10 11'));
  });

  it('round-trips echo request and port unreachable byte for byte', () => {
    for (const frame of [ICMP_ECHO_REQUEST, ICMP_PORT_UNREACHABLE]) {
      const r = Icmpv4Repr.parse(Icmpv4Packet.newChecked(icmp(frame)));
      const out = Buffer.alloc(r.bufferLen());
      r.emit(out);
      expect(out).toEqual(frame.subarray(34));
    }
  });

  it('answers an echo request with the checksum Linux put on its reply (0x7998)', () => {
    const req = Icmpv4Repr.parse(Icmpv4Packet.newChecked(icmp(ICMP_ECHO_REQUEST)));
    const reply = new Icmpv4Repr({ type: Icmpv4Type.EchoReply, ident: req.ident, seq: req.seq, data: req.data });
    const out = Buffer.alloc(reply.bufferLen());
    reply.emit(new Icmpv4Packet(out));
    expect(out.readUInt16BE(2)).toBe(0x7998);
    expect(new Icmpv4Packet(out).verifyChecksum()).toBe(true);
  });

  it('exposes the datagram embedded in a real port unreachable', () => {
    const r = Icmpv4Repr.parse(Icmpv4Packet.newChecked(icmp(ICMP_PORT_UNREACHABLE)));
    expect(r.type).toBe(Icmpv4Type.DstUnreachable);
    expect(r.code).toBe(Icmpv4DstUnreachable.PortUnreachable);
    const inner = Ipv4Packet.newChecked(r.data);
    expect(inner.protocol).toBe(17);
    expect(inner.dst).toBe(0x0a000202);
    const udp = new UdpPacket(inner.payload);
    expect(udp.srcPort).toBe(45319);
    expect(udp.dstPort).toBe(53);
  });

  it('carries the RFC 1191 next-hop MTU of "fragmentation needed"', () => {
    const r = new Icmpv4Repr({
      type: Icmpv4Type.DstUnreachable,
      code: Icmpv4DstUnreachable.FragNeeded,
      rest: 1400,
      data: icmp(ICMP_PORT_UNREACHABLE).subarray(8, 36),
    });
    const out = Buffer.alloc(r.bufferLen());
    r.emit(out);
    const p = Icmpv4Packet.newChecked(out);
    expect(p.nextHopMtu).toBe(1400);
    expect(Icmpv4Repr.parse(p).mtu).toBe(1400);
  });

  it('parses other types generically (timestamp request) and round-trips them', () => {
    const b = hex(`
      0d 00 00 00     # type 13 timestamp, code 0, checksum (filled below)
      12 34 00 07     # identifier, sequence
      00 00 00 01 00 00 00 00 00 00 00 00   # originate, receive, transmit
    `);
    new Icmpv4Packet(b).fillChecksum();
    const r = Icmpv4Repr.parse(Icmpv4Packet.newChecked(b));
    expect(r.type).toBe(Icmpv4Type.Timestamp);
    expect(r.rest).toBe(0x12340007);
    const out = Buffer.alloc(r.bufferLen());
    r.emit(out);
    expect(out).toEqual(b);
  });

  it('rejects a message shorter than 8 bytes (icmpv4-truncated)', () => {
    expectWireError(() => Icmpv4Packet.newChecked(icmp(ICMP_ECHO_REQUEST).subarray(0, 7)), 'icmpv4-truncated');
  });

  it('rejects a corrupted checksum (icmpv4-bad-checksum)', () => {
    const b = icmp(ICMP_ECHO_REQUEST);
    b[20] ^= 1;
    expectWireError(() => Icmpv4Repr.parse(Icmpv4Packet.newChecked(b)), 'icmpv4-bad-checksum');
    expect(Icmpv4Repr.parse(Icmpv4Packet.newChecked(b), { ignoreChecksum: true }).seq).toBe(1);
  });

  it('rejects an error message without a whole embedded IPv4 header (icmpv4-bad-embedded)', () => {
    const b = icmp(ICMP_PORT_UNREACHABLE).subarray(0, 8 + 12);
    new Icmpv4Packet(b).fillChecksum();
    expectWireError(() => Icmpv4Repr.parse(Icmpv4Packet.newChecked(b)), 'icmpv4-bad-embedded');
  });
});
