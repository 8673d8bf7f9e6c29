// src/wire/gso.ts: the virtio header for frames the stack sends with
// offload, and cutting a guest's UDP super-datagram (USO) into datagrams.

import { describe, expect, it } from 'vitest';
import { splitUdpGso, txOffloadHeader, UDP_MAX_SEGMENTS } from '../../../src/wire/gso.js';
import { VirtioGsoType, VirtioNetFlags, VirtioNetHdr, VirtioNetRepr } from '../../../src/wire/virtio-net.js';
import { EtherType } from '../../../src/wire/ethernet.js';
import { IpProtocol, Ipv4Packet } from '../../../src/wire/ipv4.js';
import { Ipv6Packet, Ipv6Repr } from '../../../src/wire/ipv6.js';
import { UdpPacket } from '../../../src/wire/udp.js';
import { TcpFlags } from '../../../src/wire/tcp.js';
import { WireError } from '../../../src/wire/errors.js';
import { ipv6FromString } from '../../../src/wire/address.js';
import { eth, ipv4, tcp, udp } from '../../fuzz/build.js';

const A = 0x0a000264; // 10.0.2.100
const B = 0x0a000202; // 10.0.2.2

function header(frame: Buffer, gso: number | undefined): VirtioNetRepr {
  const out = Buffer.alloc(10, 0xee);
  txOffloadHeader(frame, gso, out);
  return VirtioNetRepr.parse(new VirtioNetHdr(out));
}

function v6Frame(proto: number, l4: Buffer): Buffer {
  const ip = new Ipv6Repr({ src: ipv6FromString('fd00::2'), dst: ipv6FromString('fd00::100'), nextHeader: proto, payloadLen: l4.length });
  const b = Buffer.alloc(ip.bufferLen());
  ip.emit(b);
  l4.copy(b, 40);
  return eth(1, 2, EtherType.IPv6, b);
}

describe('txOffloadHeader', () => {
  const seg = tcp(B, A, { srcPort: 80, dstPort: 40000, seq: 1, ack: 1, flags: TcpFlags.ACK, window: 100, tsVal: 1, tsEcr: 1, payload: Buffer.alloc(5000) });
  const v4 = eth(1, 2, EtherType.IPv4, ipv4({ src: B, dst: A, protocol: IpProtocol.TCP }, seg));

  it('a complete frame gets an all-zero header', () => {
    expect(header(v4, undefined)).toMatchObject({ flags: 0, gsoType: 0, hdrLen: 0, gsoSize: 0, csumStart: 0, csumOffset: 0 });
  });

  it('gso 0: NEEDS_CSUM at the TCP checksum, no segmentation', () => {
    expect(header(v4, 0)).toMatchObject({ flags: VirtioNetFlags.NEEDS_CSUM, gsoType: VirtioGsoType.NONE, csumStart: 34, csumOffset: 16, gsoSize: 0 });
  });

  it('a TCPv4 super-segment: GSO TCPV4, the header length with options, the MSS', () => {
    expect(header(v4, 1448)).toMatchObject({ flags: VirtioNetFlags.NEEDS_CSUM, gsoType: VirtioGsoType.TCPV4, csumStart: 34, csumOffset: 16, hdrLen: 34 + 32, gsoSize: 1448 });
  });

  it('a TCPv6 super-segment: GSO TCPV6, the checksum 40 bytes in', () => {
    const f = v6Frame(IpProtocol.TCP, tcp(0, 0, { srcPort: 80, dstPort: 1, seq: 1, ack: 1, flags: TcpFlags.ACK, window: 1, payload: Buffer.alloc(3000) }));
    expect(header(f, 1428)).toMatchObject({ gsoType: VirtioGsoType.TCPV6, csumStart: 54, csumOffset: 16, gsoSize: 1428 });
  });

  it('UDP: NEEDS_CSUM at offset 6; GSO on UDP or on what is neither TCP nor UDP is refused', () => {
    const u = eth(1, 2, EtherType.IPv4, ipv4({ src: B, dst: A, protocol: IpProtocol.UDP }, udp(B, A, 53, 40000, Buffer.from('x'))));
    expect(header(u, 0)).toMatchObject({ flags: VirtioNetFlags.NEEDS_CSUM, csumStart: 34, csumOffset: 6 });
    expect(() => header(u, 1000)).toThrow(WireError);
    const icmp = eth(1, 2, EtherType.IPv4, ipv4({ src: B, dst: A, protocol: IpProtocol.ICMP }, Buffer.alloc(8)));
    expect(() => header(icmp, 0)).toThrow(WireError);
    expect(() => header(eth(1, 2, EtherType.ARP, Buffer.alloc(28)), 0)).toThrow(WireError);
  });
});

describe('splitUdpGso', () => {
  function superDatagram(n: number): Buffer {
    const payload = Buffer.from(Array.from({ length: n }, (_, i) => i % 251));
    const f = eth(1, 2, EtherType.IPv4, ipv4({ src: A, dst: B, protocol: IpProtocol.UDP, ident: 0xfffe }, udp(A, B, 40000, 53, payload)));
    return f;
  }

  it('cuts 4500 bytes at 1000 into 1000×4 + 500, lengths, IDs and header checksums rewritten, bytes in order', () => {
    const f = superDatagram(4500);
    const got: Array<{ len: number; id: number; bytes: Buffer }> = [];
    const n = splitUdpGso(f, 1000, Buffer.alloc(65600), (d) => {
      const ip = Ipv4Packet.newChecked(d.subarray(14));
      expect(ip.verifyChecksum()).toBe(true);
      expect(ip.totalLen).toBe(d.length - 14);
      const u = UdpPacket.newChecked(ip.payload);
      got.push({ len: u.length, id: ip.ident, bytes: Buffer.from(u.payload) });
    });
    expect(n).toBe(5);
    expect(got.map((g) => g.len)).toEqual([1008, 1008, 1008, 1008, 508]);
    expect(got.map((g) => g.id)).toEqual([0xfffe, 0xffff, 0, 1, 2]);
    expect(Buffer.concat(got.map((g) => g.bytes))).toEqual(Buffer.from(Array.from({ length: 4500 }, (_, i) => i % 251)));
  });

  it('IPv6: the payload length follows each datagram', () => {
    const l4 = udp(0, 0, 40000, 53, Buffer.alloc(2500, 1));
    const f = v6Frame(IpProtocol.UDP, l4);
    const lens: number[] = [];
    splitUdpGso(f, 1200, Buffer.alloc(65600), (d) => {
      const ip = Ipv6Packet.newChecked(d.subarray(14));
      lens.push(ip.payloadLen);
      expect(UdpPacket.newChecked(ip.payload).length).toBe(ip.payloadLen);
    });
    expect(lens).toEqual([1208, 1208, 108]);
  });

  it('hostile headers are refused: gso_size 0, more than 128 pieces, not UDP, a length past the frame', () => {
    const f = superDatagram(4500);
    const scratch = Buffer.alloc(65600);
    const none = () => {};
    expect(() => splitUdpGso(f, 0, scratch, none)).toThrow(WireError);
    expect(() => splitUdpGso(superDatagram(UDP_MAX_SEGMENTS + 1), 1, scratch, none)).toThrow(/virtio-gso-too-many/);
    expect(splitUdpGso(superDatagram(UDP_MAX_SEGMENTS), 1, scratch, none)).toBe(UDP_MAX_SEGMENTS);
    const t = eth(1, 2, EtherType.IPv4, ipv4({ src: A, dst: B, protocol: IpProtocol.TCP }, tcp(A, B, { srcPort: 1, dstPort: 2, seq: 0, ack: 0, flags: 0, window: 0 })));
    expect(() => splitUdpGso(t, 100, scratch, none)).toThrow(WireError);
    const long = Buffer.from(f);
    long.writeUInt16BE(9000, 16); // IPv4 total length beyond the frame
    expect(() => splitUdpGso(long, 1000, scratch, none)).toThrow(WireError);
  });
});
