import { describe, it, expect } from 'vitest';
import { EthernetFrame, EthernetRepr, EtherType } from '../../../src/wire/ethernet.js';
import { MAC_BROADCAST, macFromString } from '../../../src/wire/address.js';
import { ARP_REQUEST, ARP_REQUEST_VLAN, ICMP_ECHO_REQUEST, expectWireError, hex, slice } from './fixtures.js';

describe('Ethernet II', () => {
  it('parses the header of a real broadcast ARP request', () => {
    const f = EthernetFrame.newChecked(ARP_REQUEST);
    expect(f.dst).toBe(MAC_BROADCAST);
    expect(f.src).toBe(macFromString('52:54:00:12:34:56'));
    expect(f.ethertype).toBe(EtherType.ARP);
    expect(f.payloadOffset).toBe(14);
    expect(f.tagged).toBe(false);
    expect(f.vlanId).toBe(-1);
    expect(f.payload.length).toBe(28);
  });

  it('round-trips the 14-byte header byte for byte', () => {
    for (const frame of [ARP_REQUEST, ICMP_ECHO_REQUEST]) {
      const repr = EthernetRepr.parse(EthernetFrame.newChecked(frame));
      expect(repr.bufferLen()).toBe(14);
      const out = Buffer.alloc(14);
      repr.emit(out);
      expect(out).toEqual(frame.subarray(0, 14));
    }
  });

  it('skips an 802.1Q tag: inner EtherType, payload at 18', () => {
    const f = EthernetFrame.newChecked(ARP_REQUEST_VLAN);
    expect(f.ethertype).toBe(EtherType.ARP);
    expect(f.payloadOffset).toBe(18);
    expect(f.tagged).toBe(true);
    expect(f.vlanId).toBe(100);
    expect(f.payload).toEqual(ARP_REQUEST.subarray(14));
    // The Repr describes the untagged header tsnet would send back.
    const out = Buffer.alloc(14);
    EthernetRepr.parse(f).emit(out);
    expect(out).toEqual(ARP_REQUEST.subarray(0, 14));
  });

  it('skips an 802.1ad S-tag followed by a C-tag (QinQ)', () => {
    const qinq = Buffer.concat([
      ARP_REQUEST.subarray(0, 12),
      hex(`
        88 a8 00 0a   # S-tag, VID 10
        81 00 00 64   # C-tag, VID 100
        08 00         # IPv4
      `),
    ]);
    const f = EthernetFrame.newChecked(qinq);
    expect(f.payloadOffset).toBe(22);
    expect(f.ethertype).toBe(EtherType.IPv4);
    expect(f.vlanId).toBe(100);
  });

  it('writes fields through setters', () => {
    const b = slice(ARP_REQUEST, 0);
    const f = new EthernetFrame(b);
    f.dst = 0x52550a000202;
    f.src = 0x020000000001;
    f.ethertype = EtherType.IPv6;
    expect(b.subarray(0, 14)).toEqual(hex('52 55 0a 00 02 02  02 00 00 00 00 01  86 dd'));
  });

  it('rejects a frame shorter than 14 bytes (eth-truncated)', () => {
    expectWireError(() => EthernetFrame.newChecked(Buffer.alloc(13)), 'eth-truncated');
  });

  it('rejects a tagged frame cut inside the tag (eth-truncated)', () => {
    expectWireError(() => EthernetFrame.newChecked(ARP_REQUEST_VLAN.subarray(0, 17)), 'eth-truncated');
  });

  it('refuses to emit into a buffer that is too small', () => {
    const r = new EthernetRepr({ src: 1, dst: 2, ethertype: EtherType.IPv4 });
    expectWireError(() => r.emit(Buffer.alloc(10)), 'buffer-too-small');
  });

  it('never throws from accessors on an unchecked short buffer', () => {
    const f = new EthernetFrame(Buffer.alloc(3));
    expect(() => [f.dst, f.src, f.ethertype, f.payload, f.vlanId]).not.toThrow();
  });
});
