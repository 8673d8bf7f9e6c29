import { describe, it, expect } from 'vitest';
import { TcpFlags, TcpPacket, TcpRepr } from '../../../src/wire/tcp.js';
import { ChecksumMode, pseudoV4, pseudoV6 } from '../../../src/wire/checksum.js';
import { IpProtocol } from '../../../src/wire/ipv4.js';
import { ipv6FromString } from '../../../src/wire/address.js';
import { TCP_RST_ACK, TCP_SACK_SEGMENT, TCP_SYN, TCP_SYN_PARTIAL, expectWireError, hex, slice } from './fixtures.js';

const GUEST = 0x0a000264;
const GW = 0x0a000202;
const up = (len: number): number => pseudoV4(GUEST, GW, IpProtocol.TCP, len);
const down = (len: number): number => pseudoV4(GW, GUEST, IpProtocol.TCP, len);
const seg = (frame: Buffer): Buffer => slice(frame, 34);

/** TCP_SACK_SEGMENT with its checksum filled for guest → gateway. */
function sackSegment(): Buffer {
  const b = Buffer.from(TCP_SACK_SEGMENT);
  new TcpPacket(b).fillChecksum(up(b.length));
  return b;
}

const SYN_FIELDS = {
  srcPort: 58946,
  dstPort: 8080,
  seq: 0xbf1c02ed,
  ack: 0,
  flags: TcpFlags.SYN,
  window: 64240,
  mss: 1460,
  sackPermitted: true,
  tsVal: 0x48c19d93,
  tsEcr: 0,
  windowScale: 10,
};

describe('TCP (RFC 9293) header and options', () => {
  it('parses every option of a real Linux SYN', () => {
    const p = TcpPacket.newChecked(seg(TCP_SYN));
    expect(p.headerLen).toBe(40);
    expect(p.syn).toBe(true);
    expect(p.hasAck).toBe(false);
    expect(p.verifyChecksumV4(GUEST, GW)).toBe(true);
    const r = TcpRepr.parse(p, { pseudoSum: up(40) });
    expect(r).toMatchObject({ ...SYN_FIELDS, seq: SYN_FIELDS.seq | 0, urgent: 0 });
    expect(r.sackBlocks).toBeUndefined();
    expect(r.payload.length).toBe(0);
    expect(r.seqLen()).toBe(1);
  });

  it('round-trips the SYN, the RST/ACK and a SACK segment byte for byte', () => {
    const cases: [Buffer, (n: number) => number][] = [
      [seg(TCP_SYN), up],
      [seg(TCP_RST_ACK), down],
      [sackSegment(), up],
    ];
    for (const [b, ps] of cases) {
      const r = TcpRepr.parse(TcpPacket.newChecked(b), { pseudoSum: ps(b.length) });
      expect(r.bufferLen()).toBe(b.length);
      const out = Buffer.alloc(r.bufferLen());
      r.emit(out, ps(out.length));
      expect(out).toEqual(b);
    }
  });

  it('emits the Linux SYN layout from plain fields', () => {
    const r = new TcpRepr(SYN_FIELDS);
    const out = Buffer.alloc(r.bufferLen());
    r.emit(new TcpPacket(out), up(out.length));
    expect(out).toEqual(TCP_SYN.subarray(34));
  });

  it('writes the captured partial checksum in Partial mode', () => {
    const r = new TcpRepr(SYN_FIELDS);
    const out = Buffer.alloc(r.bufferLen());
    r.emit(out, up(out.length), ChecksumMode.Partial);
    expect(out).toEqual(TCP_SYN_PARTIAL.subarray(34));
  });

  it('parses the RST/ACK with no options', () => {
    const r = TcpRepr.parse(TcpPacket.newChecked(seg(TCP_RST_ACK)), { pseudoSum: down(20) });
    expect(r.flags).toBe(TcpFlags.RST | TcpFlags.ACK);
    expect(r.ack).toBe(0xbf1c02ee | 0);
    expect(r.window).toBe(0);
    expect(r.mss).toBeUndefined();
    expect(r.tsVal).toBeUndefined();
    expect(r.sackPermitted).toBe(false);
  });

  it('parses timestamps and SACK blocks, and exposes the payload as a view', () => {
    const b = sackSegment();
    const r = TcpRepr.parse(TcpPacket.newChecked(b), { pseudoSum: up(b.length) });
    expect(r.flags).toBe(TcpFlags.PSH | TcpFlags.ACK);
    expect(r.tsVal).toBe(7);
    expect(r.tsEcr).toBe(9);
    expect(r.sackBlocks).toEqual([
      [0x2000, 0x3000],
      [0x4000, 0x4800],
    ]);
    expect(r.payload.toString()).toBe('data');
    expect(r.payload.buffer).toBe(b.buffer);
    expect(r.seqLen()).toBe(4);
  });

  it('holds seq/ack/timestamps with the top bit set as signed 32-bit integers and writes the same bits', () => {
    const r = new TcpRepr({ srcPort: 1, dstPort: 2, seq: 0xffffffff, ack: 0x80000000, flags: TcpFlags.ACK, window: 1, tsVal: 0xfffffffe, tsEcr: 0x90000000 });
    expect([r.seq, r.ack, r.tsVal, r.tsEcr]).toEqual([-1, -0x80000000, -2, 0x90000000 | 0]);
    const out = Buffer.alloc(r.bufferLen());
    r.emit(out, up(out.length));
    const p = TcpPacket.newChecked(out);
    expect([p.seq, p.ack]).toEqual([0xffffffff, 0x80000000]); // the view reads the wire unsigned
    const back = TcpRepr.parse(p, { pseudoSum: up(out.length) });
    expect([back.seq, back.ack, back.tsVal, back.tsEcr]).toEqual([-1, -0x80000000, -2, 0x90000000 | 0]);
    // Small integers to V8 (no heap number per field); the same bits as the unsigned reading.
    expect([back.seq >>> 0, back.ack >>> 0]).toEqual([0xffffffff, 0x80000000]);
  });

  it('keeps ECN and AE bits in the flags', () => {
    const r = new TcpRepr({
      srcPort: 1, dstPort: 2, seq: 0, ack: 0, window: 0,
      flags: TcpFlags.SYN | TcpFlags.ECE | TcpFlags.CWR | TcpFlags.AE,
    });
    const out = Buffer.alloc(r.bufferLen());
    r.emit(out, 0);
    expect(out[12]).toBe(0x51);
    expect(out[13]).toBe(0xc2);
    expect(TcpRepr.parse(TcpPacket.newChecked(out)).flags).toBe(r.flags);
  });

  it('checksums over the IPv6 pseudo-header', () => {
    const src = ipv6FromString('fd00::100');
    const dst = ipv6FromString('fd00::2');
    const r = new TcpRepr({ ...SYN_FIELDS, payload: Buffer.from('x') });
    const out = Buffer.alloc(r.bufferLen());
    r.emit(out, pseudoV6(src, dst, IpProtocol.TCP, out.length));
    expect(new TcpPacket(out).verifyChecksumV6(src, dst)).toBe(true);
  });

  it('drops SACK blocks that do not fit next to timestamps (40-byte budget)', () => {
    const r = new TcpRepr({
      srcPort: 1, dstPort: 2, seq: 0, ack: 0, flags: TcpFlags.ACK, window: 0, tsVal: 1, tsEcr: 2,
      sackBlocks: [[1, 2], [3, 4], [5, 6], [7, 8]],
    });
    expect(r.sackBlocksEmitted()).toBe(3);
    expect(r.headerLen()).toBe(20 + 12 + 4 + 24);
    const out = Buffer.alloc(r.bufferLen());
    r.emit(out, 0);
    expect(TcpRepr.parse(TcpPacket.newChecked(out)).sackBlocks).toEqual([[1, 2], [3, 4], [5, 6]]);
    // Without timestamps all four fit.
    r.tsVal = undefined;
    expect(r.sackBlocksEmitted()).toBe(4);
  });

  /** A 20-byte header followed by the given option bytes (data offset set to fit). */
  function withOptions(opts: Buffer): Buffer {
    const b = Buffer.concat([seg(TCP_RST_ACK), opts]);
    b[12] = ((20 + opts.length) / 4) << 4;
    return b;
  }

  it('skips unknown options by length and stops at End of Option List', () => {
    const r = TcpRepr.parse(TcpPacket.newChecked(withOptions(hex(`
      1e 04 ab cd     # unknown kind 30, length 4
      02 04 05 78     # MSS 1400
      00 ff ff ff     # EOL, then padding that must be ignored
    `))));
    expect(r.mss).toBe(1400);
  });

  it('rejects a buffer shorter than 20 bytes (tcp-truncated)', () => {
    expectWireError(() => TcpPacket.newChecked(seg(TCP_SYN).subarray(0, 19)), 'tcp-truncated');
  });

  it('rejects a data offset below 5 (tcp-bad-data-offset)', () => {
    const b = seg(TCP_SYN);
    b[12] = 0x40;
    expectWireError(() => TcpPacket.newChecked(b), 'tcp-bad-data-offset');
  });

  it('rejects a data offset beyond the segment (tcp-bad-data-offset)', () => {
    const b = seg(TCP_SYN);
    b[12] = 0xf0; // 60 bytes in a 40-byte segment
    expectWireError(() => TcpPacket.newChecked(b), 'tcp-bad-data-offset');
  });

  it('rejects malformed option lengths (tcp-bad-option-len)', () => {
    const bad = [
      '1e 00 00 00', // length 0
      '1e 01 00 00', // length 1
      '01 01 01 1e', // kind in the last byte, no length byte
      '1e 08 00 00', // overruns the header
      '02 05 05 b4 00 00 00 00', // MSS with length 5
      '03 02 01 01', // window scale with length 2
      '04 03 00 01', // SACK-permitted with length 3
      '05 0b 00 00 00 00 00 00 00 00 00 00', // SACK length 11
      '05 02 00 00', // SACK with no block
      '08 08 00 00 00 00 00 00', // timestamps with length 8
    ];
    for (const h of bad) {
      expectWireError(() => TcpRepr.parse(TcpPacket.newChecked(withOptions(hex(h)))), 'tcp-bad-option-len');
    }
  });

  it('rejects a corrupted checksum (tcp-bad-checksum)', () => {
    const b = seg(TCP_SYN);
    b[5] ^= 1;
    expectWireError(() => TcpRepr.parse(TcpPacket.newChecked(b), { pseudoSum: up(40) }), 'tcp-bad-checksum');
  });
});

describe('TcpRepr.emitHeader (a payload sent from where it lies)', () => {
  it('writes what emit() writes before the payload, checksum over the payload included', () => {
    for (const len of [0, 1, 2047, 4096, 65001]) {
      const payload = Buffer.from(Array.from({ length: len }, (_, i) => (i * 29 + 3) & 0xff));
      const repr = new TcpRepr({ srcPort: 443, dstPort: 40000, seq: -5, ack: 123456, flags: TcpFlags.ACK | TcpFlags.PSH, window: 501, urgent: 0, payload });
      repr.tsVal = 77;
      repr.tsEcr = 66;
      repr.sackBlocks = [[10, 20]];
      for (const mode of [ChecksumMode.Full, ChecksumMode.Partial]) {
        const pseudo = pseudoV4(0x0a000202, 0x0a00020f, IpProtocol.TCP, repr.bufferLen());
        const whole = Buffer.alloc(repr.bufferLen());
        repr.emit(whole, pseudo, mode);
        const head = Buffer.alloc(repr.headerLen());
        repr.emitHeader(head, pseudo, mode);
        expect(Buffer.concat([head, payload]).equals(whole)).toBe(true);
      }
    }
  });
});
