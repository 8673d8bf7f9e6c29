import { describe, it, expect } from 'vitest';
import { UdpPacket, UdpRepr } from '../../../src/wire/udp.js';
import { ChecksumMode, fold, onesSum, pseudoV4, pseudoV6 } from '../../../src/wire/checksum.js';
import { IpProtocol } from '../../../src/wire/ipv4.js';
import { ipv6FromString } from '../../../src/wire/address.js';
import { completeChecksum } from '../../../src/wire/virtio-net.js';
import { DNS_QUERY, DNS_QUERY_PARTIAL, expectWireError, slice } from './fixtures.js';

const GUEST = 0x0a000264;
const GW = 0x0a000202;
const udp = (frame: Buffer): Buffer => slice(frame, 34);
const pseudo = (len: number): number => pseudoV4(GUEST, GW, IpProtocol.UDP, len);

describe('UDP (RFC 768)', () => {
  it('parses a real DNS query', () => {
    const p = UdpPacket.newChecked(udp(DNS_QUERY));
    expect(p.srcPort).toBe(45319);
    expect(p.dstPort).toBe(53);
    expect(p.length).toBe(37);
    expect(p.checksum).toBe(0x5460);
    expect(p.payload.length).toBe(29);
    expect(p.payload.subarray(0, 2)).toEqual(Buffer.from([0x12, 0x34]));
    expect(p.verifyChecksumV4(GUEST, GW)).toBe(true);
    const r = UdpRepr.parse(p, { pseudoSum: pseudo(37) });
    expect(r.srcPort).toBe(45319);
    expect(r.payload).toEqual(p.payload);
  });

  it('round-trips the DNS query byte for byte', () => {
    const r = UdpRepr.parse(UdpPacket.newChecked(udp(DNS_QUERY)));
    const out = Buffer.alloc(r.bufferLen());
    r.emit(out, pseudo(r.bufferLen()));
    expect(out).toEqual(DNS_QUERY.subarray(34));
  });

  it('emits the captured partial checksum in Partial mode, which completeChecksum finishes', () => {
    const r = UdpRepr.parse(UdpPacket.newChecked(udp(DNS_QUERY)));
    const out = Buffer.alloc(r.bufferLen());
    r.emit(out, pseudo(r.bufferLen()), ChecksumMode.Partial);
    expect(out).toEqual(DNS_QUERY_PARTIAL.subarray(34));
    expect(completeChecksum(out, 0, 6)).toBe(true);
    expect(out).toEqual(DNS_QUERY.subarray(34));
  });

  it('treats a zero checksum as "none" over IPv4', () => {
    const b = udp(DNS_QUERY);
    b.writeUInt16BE(0, 6);
    const p = UdpPacket.newChecked(b);
    expect(p.verifyChecksumV4(GUEST, GW)).toBe(true);
    expect(UdpRepr.parse(p, { pseudoSum: pseudo(37) }).dstPort).toBe(53);
    const out = Buffer.alloc(37);
    UdpRepr.parse(p).emit(out, 0, ChecksumMode.None);
    expect(out).toEqual(b);
  });

  it('rejects a zero checksum over IPv6 (udp-missing-checksum, RFC 8200 §8.1)', () => {
    const b = udp(DNS_QUERY);
    b.writeUInt16BE(0, 6);
    const src = ipv6FromString('fd00::100');
    const dst = ipv6FromString('fd00::2');
    const p = UdpPacket.newChecked(b);
    expect(p.verifyChecksumV6(src, dst)).toBe(false);
    expectWireError(
      () => UdpRepr.parse(p, { pseudoSum: pseudoV6(src, dst, IpProtocol.UDP, 37), ipv6: true }),
      'udp-missing-checksum',
    );
  });

  it('checksums over the IPv6 pseudo-header', () => {
    const src = ipv6FromString('fd00::100');
    const dst = ipv6FromString('fd00::3');
    const r = new UdpRepr({ srcPort: 5353, dstPort: 53, payload: Buffer.from('hello') });
    const out = Buffer.alloc(r.bufferLen());
    r.emit(out, pseudoV6(src, dst, IpProtocol.UDP, r.bufferLen()));
    const p = UdpPacket.newChecked(out);
    expect(p.verifyChecksumV6(src, dst)).toBe(true);
    expect(UdpRepr.parse(p, { pseudoSum: pseudoV6(src, dst, IpProtocol.UDP, 13), ipv6: true }).payload.toString()).toBe('hello');
  });

  it('transmits a computed checksum of 0 as 0xffff', () => {
    // Pick the 2-byte payload that makes the one's-complement sum 0xffff.
    const r = new UdpRepr({ srcPort: 1000, dstPort: 2000, payload: Buffer.alloc(2) });
    const out = Buffer.alloc(10);
    r.emit(out, pseudo(10), ChecksumMode.None);
    const s = onesSum(out, 0, 10, pseudo(10));
    r.payload = Buffer.from([(~s >>> 8) & 0xff, ~s & 0xff]);
    r.emit(out, pseudo(10));
    expect(fold(onesSum(out, 0, 10, pseudo(10)))).toBe(0xffff);
    expect(out.readUInt16BE(6)).toBe(0xffff);
    expect(UdpPacket.newChecked(out).verifyChecksumV4(GUEST, GW)).toBe(true);
  });

  it('bounds the payload by the length field when the IP payload is longer', () => {
    const b = Buffer.concat([udp(DNS_QUERY), Buffer.alloc(3)]);
    expect(UdpPacket.newChecked(b).payload.length).toBe(29);
  });

  it('rejects a buffer shorter than 8 bytes (udp-truncated)', () => {
    expectWireError(() => UdpPacket.newChecked(udp(DNS_QUERY).subarray(0, 7)), 'udp-truncated');
  });

  it('rejects a length field below 8 (udp-bad-length)', () => {
    const b = udp(DNS_QUERY);
    b.writeUInt16BE(7, 4);
    expectWireError(() => UdpPacket.newChecked(b), 'udp-bad-length');
  });

  it('rejects a length field beyond the buffer (udp-bad-length)', () => {
    const b = udp(DNS_QUERY);
    b.writeUInt16BE(38, 4);
    expectWireError(() => UdpPacket.newChecked(b), 'udp-bad-length');
  });

  it('rejects a corrupted checksum (udp-bad-checksum)', () => {
    const b = udp(DNS_QUERY);
    b[20] ^= 0x20;
    expectWireError(() => UdpRepr.parse(UdpPacket.newChecked(b), { pseudoSum: pseudo(37) }), 'udp-bad-checksum');
  });
});
