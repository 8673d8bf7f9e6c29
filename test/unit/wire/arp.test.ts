import { describe, it, expect } from 'vitest';
import { ArpOperation, ArpPacket, ArpRepr } from '../../../src/wire/arp.js';
import { ipv4FromString, macFromString } from '../../../src/wire/address.js';
import { ARP_REPLY, ARP_REQUEST, expectWireError, slice } from './fixtures.js';

const GUEST_MAC = macFromString('52:54:00:12:34:56');
const GW_MAC = macFromString('52:55:0a:00:02:02');

describe('ARP (RFC 826)', () => {
  it('parses a real who-has request', () => {
    const p = ArpPacket.newChecked(ARP_REQUEST.subarray(14));
    expect(p.htype).toBe(1);
    expect(p.ptype).toBe(0x0800);
    const r = ArpRepr.parse(p);
    expect(r.operation).toBe(ArpOperation.Request);
    expect(r.senderMac).toBe(GUEST_MAC);
    expect(r.senderIp).toBe(ipv4FromString('10.0.2.100'));
    expect(r.targetMac).toBe(0);
    expect(r.targetIp).toBe(ipv4FromString('10.0.2.2'));
  });

  it('round-trips request and reply byte for byte', () => {
    for (const frame of [ARP_REQUEST, ARP_REPLY]) {
      const r = ArpRepr.parse(ArpPacket.newChecked(frame.subarray(14)));
      const out = Buffer.alloc(r.bufferLen());
      r.emit(out);
      expect(out).toEqual(frame.subarray(14));
    }
  });

  it('builds the gateway reply that matches the captured one', () => {
    const req = ArpRepr.parse(ArpPacket.newChecked(ARP_REQUEST.subarray(14)));
    const reply = new ArpRepr({
      operation: ArpOperation.Reply,
      senderMac: GW_MAC,
      senderIp: req.targetIp,
      targetMac: req.senderMac,
      targetIp: req.senderIp,
    });
    const out = Buffer.alloc(28);
    reply.emit(new ArpPacket(out));
    expect(out).toEqual(ARP_REPLY.subarray(14));
  });

  it('accepts Ethernet padding after the 28 bytes', () => {
    const padded = Buffer.concat([ARP_REQUEST.subarray(14), Buffer.alloc(18)]);
    expect(ArpRepr.parse(ArpPacket.newChecked(padded)).targetIp).toBe(0x0a000202);
  });

  it('rejects non-Ethernet/IPv4 ARP (arp-unsupported)', () => {
    const cases: [number, number][] = [
      [1, 6], // htype 6 (IEEE 802)
      [3, 0x86], // ptype 0x86dd
      [4, 8], // hlen 8
      [5, 16], // plen 16
    ];
    for (const [off, v] of cases) {
      const b = slice(ARP_REQUEST, 14);
      b[off] = v;
      expectWireError(() => ArpPacket.newChecked(b), 'arp-unsupported');
    }
  });

  it('rejects truncated packets (arp-truncated)', () => {
    expectWireError(() => ArpPacket.newChecked(ARP_REQUEST.subarray(14, 21)), 'arp-truncated');
    expectWireError(() => ArpPacket.newChecked(ARP_REQUEST.subarray(14, 41)), 'arp-truncated');
  });

  it('rejects operations other than request/reply (arp-bad-operation)', () => {
    const b = slice(ARP_REQUEST, 14);
    b[7] = 3; // RARP request
    expectWireError(() => ArpRepr.parse(ArpPacket.newChecked(b)), 'arp-bad-operation');
  });

  it('setters write in place', () => {
    const b = slice(ARP_REQUEST, 14);
    const p = new ArpPacket(b);
    p.operation = ArpOperation.Reply;
    p.targetMac = GW_MAC;
    p.senderIp = 0xc0a80001;
    expect(p.operation).toBe(2);
    expect(p.targetMac).toBe(GW_MAC);
    expect(p.senderIp).toBe(0xc0a80001);
  });
});
