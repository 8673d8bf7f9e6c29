import { describe, it, expect } from 'vitest';
import { IpProtocol, Ipv4Packet, Ipv4Repr } from '../../../src/wire/ipv4.js';
import { ipv4FromString } from '../../../src/wire/address.js';
import {
  DNS_QUERY,
  ICMP_ECHO_REQUEST,
  ICMP_PORT_UNREACHABLE,
  TCP_SYN,
  expectWireError,
  hex,
  slice,
} from './fixtures.js';

const ip = (frame: Buffer): Buffer => slice(frame, 14);

describe('IPv4 (RFC 791)', () => {
  it('parses the header of a real ping', () => {
    const p = Ipv4Packet.newChecked(ip(ICMP_ECHO_REQUEST));
    expect(p.version).toBe(4);
    expect(p.ihl).toBe(5);
    expect(p.headerLen).toBe(20);
    expect(p.dscp).toBe(0);
    expect(p.ecn).toBe(0);
    expect(p.totalLen).toBe(84);
    expect(p.ident).toBe(0x2f53);
    expect(p.dontFrag).toBe(true);
    expect(p.moreFrags).toBe(false);
    expect(p.fragOffset).toBe(0);
    expect(p.isFragment).toBe(false);
    expect(p.ttl).toBe(64);
    expect(p.protocol).toBe(IpProtocol.ICMP);
    expect(p.checksum).toBe(0xf2f0);
    expect(p.src).toBe(ipv4FromString('10.0.2.100'));
    expect(p.dst).toBe(ipv4FromString('10.0.2.2'));
    expect(p.options.length).toBe(0);
    expect(p.payload.length).toBe(64);
    expect(p.verifyChecksum()).toBe(true);
  });

  it('reads DSCP/ECN and a clear DF from the kernel ICMP error', () => {
    const p = Ipv4Packet.newChecked(ip(ICMP_PORT_UNREACHABLE));
    expect(p.dscp).toBe(48);
    expect(p.ecn).toBe(0);
    expect(p.dontFrag).toBe(false);
  });

  it('round-trips real headers byte for byte', () => {
    for (const frame of [ICMP_ECHO_REQUEST, ICMP_PORT_UNREACHABLE, DNS_QUERY, TCP_SYN]) {
      const p = Ipv4Packet.newChecked(ip(frame));
      const r = Ipv4Repr.parse(p);
      expect(r.bufferLen()).toBe(p.totalLen);
      const out = Buffer.alloc(r.headerLen());
      r.emit(out);
      expect(out).toEqual(frame.subarray(14, 34));
    }
  });

  it('emits the captured ping header from plain fields', () => {
    const r = new Ipv4Repr({
      src: ipv4FromString('10.0.2.100'),
      dst: ipv4FromString('10.0.2.2'),
      protocol: IpProtocol.ICMP,
      payloadLen: 64,
      ttl: 64,
      ident: 0x2f53,
    });
    const out = Buffer.alloc(20);
    r.emit(out);
    expect(out).toEqual(ICMP_ECHO_REQUEST.subarray(14, 34));
  });

  it('bounds the payload by Total Length, not by an Ethernet-padded buffer', () => {
    const padded = Buffer.concat([ip(DNS_QUERY), Buffer.alloc(9)]);
    const p = Ipv4Packet.newChecked(padded);
    expect(p.payload.length).toBe(57 - 20);
    expect(Ipv4Repr.parse(p).payloadLen).toBe(37);
  });

  it('fills the header checksum to the value the kernel sent', () => {
    const b = ip(ICMP_ECHO_REQUEST);
    const p = new Ipv4Packet(b);
    p.checksum = 0x1234;
    expect(p.verifyChecksum()).toBe(false);
    p.fillChecksum();
    expect(p.checksum).toBe(0xf2f0);
  });

  it('recognises fragments (MF set or offset non-zero)', () => {
    const p = new Ipv4Packet(ip(ICMP_ECHO_REQUEST));
    p.moreFrags = true;
    expect(p.isFragment).toBe(true);
    p.moreFrags = false;
    p.fragOffset = 1480;
    expect(p.isFragment).toBe(true);
    expect(p.fragOffset).toBe(1480);
    expect(p.dontFrag).toBe(true);
    p.fillChecksum();
    const r = Ipv4Repr.parse(Ipv4Packet.newChecked(p.buffer));
    expect(r.fragOffset).toBe(1480);
    const out = Buffer.alloc(20);
    r.emit(out);
    expect(out).toEqual(p.buffer.subarray(0, 20));
  });

  it('exposes and round-trips options', () => {
    const b = hex(`
      46 00 00 1c     # version 4, IHL 6 (24 bytes), total length 28
      00 01 00 00     # ident 1, no flags
      01 11 00 00     # TTL 1, protocol UDP, checksum (filled below)
      0a 00 02 64     # src
      e0 00 00 fb     # dst 224.0.0.251
      94 04 00 00     # option: Router Alert (RFC 2113)
      00 00 00 00     # 4 payload bytes
    `);
    new Ipv4Packet(b).fillChecksum();
    const p = Ipv4Packet.newChecked(b);
    expect(p.options).toEqual(hex('94 04 00 00'));
    expect(p.payload.length).toBe(4);
    const r = Ipv4Repr.parse(p);
    expect(r.headerLen()).toBe(24);
    const out = Buffer.alloc(24);
    r.emit(out);
    expect(out).toEqual(b.subarray(0, 24));
  });

  it('rejects a buffer shorter than 20 bytes (ipv4-truncated)', () => {
    expectWireError(() => Ipv4Packet.newChecked(ip(ICMP_ECHO_REQUEST).subarray(0, 19)), 'ipv4-truncated');
  });

  it('rejects version 6 in an IPv4 slot (ipv4-bad-version)', () => {
    const b = ip(ICMP_ECHO_REQUEST);
    b[0] = 0x65;
    expectWireError(() => Ipv4Packet.newChecked(b), 'ipv4-bad-version');
  });

  it('rejects IHL < 5 (ipv4-bad-header-len)', () => {
    const b = ip(ICMP_ECHO_REQUEST);
    b[0] = 0x44;
    expectWireError(() => Ipv4Packet.newChecked(b), 'ipv4-bad-header-len');
  });

  it('rejects an IHL reaching past the buffer (ipv4-bad-header-len)', () => {
    const b = ip(ICMP_ECHO_REQUEST).subarray(0, 24);
    b[0] = 0x4f; // 60-byte header in a 24-byte buffer
    expectWireError(() => Ipv4Packet.newChecked(b), 'ipv4-bad-header-len');
  });

  it('rejects Total Length below the header length (ipv4-bad-total-len)', () => {
    const b = ip(ICMP_ECHO_REQUEST);
    b.writeUInt16BE(19, 2);
    expectWireError(() => Ipv4Packet.newChecked(b), 'ipv4-bad-total-len');
  });

  it('rejects Total Length beyond the buffer (ipv4-bad-total-len)', () => {
    const b = ip(ICMP_ECHO_REQUEST);
    b.writeUInt16BE(85, 2);
    expectWireError(() => Ipv4Packet.newChecked(b), 'ipv4-bad-total-len');
    expectWireError(() => Ipv4Packet.newChecked(ip(ICMP_ECHO_REQUEST).subarray(0, 83)), 'ipv4-bad-total-len');
  });

  it('rejects a corrupted header checksum (ipv4-bad-checksum) unless told to ignore it', () => {
    const b = ip(ICMP_ECHO_REQUEST);
    b[8] = 63; // TTL changed without updating the checksum
    const p = Ipv4Packet.newChecked(b);
    expectWireError(() => Ipv4Repr.parse(p), 'ipv4-bad-checksum');
    expect(Ipv4Repr.parse(p, { ignoreChecksum: true }).ttl).toBe(63);
  });

  it('refuses to emit into a buffer smaller than the header', () => {
    const r = new Ipv4Repr({ src: 1, dst: 2, protocol: 17, payloadLen: 0 });
    expectWireError(() => r.emit(Buffer.alloc(19)), 'buffer-too-small');
  });
});
