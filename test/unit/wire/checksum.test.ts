import { describe, it, expect } from 'vitest';
import {
  checksum,
  fold,
  onesSum,
  pseudoV4,
  pseudoV6,
  udpChecksumField,
  updateChecksum16,
  updateChecksum32,
} from '../../../src/wire/checksum.js';
import { ipv4FromString, ipv6FromString } from '../../../src/wire/address.js';
import { prng, randomBytes, hex, TCP_SYN, DNS_QUERY, slice } from './fixtures.js';

/** Reference: 16-bit words, byte by byte, folded at the end (RFC 1071 §4.1 in JS). */
function refSum(b: Uint8Array, start: number, end: number, initial = 0): number {
  let s = initial;
  for (let i = start; i < end; i += 2) s += (b[i] << 8) + (i + 1 < end ? b[i + 1] : 0);
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 65536);
  return s;
}

describe('Internet checksum (RFC 1071)', () => {
  it('matches the RFC 1071 §3 worked example (sum ddf2, checksum 220d)', () => {
    const b = hex('00 01 f2 03 f4 f5 f6 f7');
    expect(onesSum(b, 0, b.length)).toBe(0xddf2);
    expect(checksum(b, 0, b.length)).toBe(0x220d);
  });

  it('pads an odd trailing byte with a zero on the right', () => {
    expect(onesSum(hex('01'), 0, 1)).toBe(0x0100);
    // 0xabcd + 0xef00 = 0x19acd → folded 0x9ace
    expect(onesSum(hex('ab cd ef'), 0, 3)).toBe(0x9ace);
    expect(checksum(hex('ab cd ef'), 0, 3)).toBe(~0x9ace & 0xffff);
  });

  it('folds carries back in (end-around carry)', () => {
    expect(onesSum(hex('ff ff 00 01'), 0, 4)).toBe(0x0001);
    expect(fold(0x1fffe)).toBe(0xffff);
    expect(fold(0xffff_ffff)).toBe(0xffff);
    expect(fold(2 ** 48 + 5)).toBe(6); // 2^16 ≡ 1 (mod 0xffff)
    expect(fold(2 ** 40 + 5)).toBe(0x100 + 5);
    const ones = Buffer.alloc(1000, 0xff);
    expect(onesSum(ones, 0, ones.length)).toBe(0xffff);
    expect(onesSum(ones, 0, 999)).toBe(0xff00); // odd tail 0xff00
  });

  it('gives 0xffff for all-zero data and 0 for all-ones data', () => {
    const z = Buffer.alloc(300);
    expect(onesSum(z, 0, z.length)).toBe(0);
    expect(checksum(z, 0, z.length)).toBe(0xffff);
    const o = Buffer.alloc(300, 0xff);
    expect(checksum(o, 0, o.length)).toBe(0);
    expect(checksum(Buffer.alloc(0), 0, 0)).toBe(0xffff);
  });

  it('agrees with a byte-by-byte reference on random ranges, lengths and alignments', () => {
    const rand = prng(1071);
    const big = randomBytes(rand, 9000);
    for (let k = 0; k < 400; k++) {
      const start = (rand() * 200) | 0;
      const len = k % 3 === 0 ? (rand() * 8000) | 0 : (rand() * 300) | 0;
      const init = (rand() * 0x20000) | 0;
      expect(onesSum(big, start, start + len, init)).toBe(refSum(big, start, start + len, init));
    }
    // A view at an odd byteOffset into a larger ArrayBuffer.
    const view = big.subarray(3, 5003);
    expect(onesSum(view, 0, view.length)).toBe(refSum(big, 3, 5003));
  });

  it('stays exact past the 4 MiB folding chunk', () => {
    const b = Buffer.alloc((5 << 20) + 3, 0xff);
    expect(onesSum(b, 0, b.length)).toBe(refSum(b, 0, b.length));
    const r = randomBytes(prng(5), (9 << 20) + 1);
    expect(onesSum(r, 1, r.length)).toBe(refSum(r, 1, r.length));
  });

  it('chains: summing in two parts with `initial` equals one pass', () => {
    const b = randomBytes(prng(2), 1500);
    expect(onesSum(b, 600, 1500, onesSum(b, 0, 600))).toBe(onesSum(b, 0, 1500));
  });

  it('computes the IPv4 pseudo-header sum that validates a real TCP SYN', () => {
    const seg = slice(TCP_SYN, 34);
    const ps = pseudoV4(ipv4FromString('10.0.2.100'), ipv4FromString('10.0.2.2'), 6, seg.length);
    expect(onesSum(seg, 0, seg.length, ps)).toBe(0xffff);
    const dgram = slice(DNS_QUERY, 34);
    const pu = pseudoV4(0x0a000264, 0x0a000202, 17, dgram.length);
    expect(checksum(Buffer.concat([dgram.subarray(0, 6), Buffer.alloc(2), dgram.subarray(8)]), 0, dgram.length, pu)).toBe(0x5460);
  });

  it('computes the IPv6 pseudo-header sum (addresses, 32-bit length, next header)', () => {
    const src = ipv6FromString('fd00::100');
    const dst = ipv6FromString('fd00::2');
    // fd00 + 0100 + fd00 + 0002 + len + nh
    expect(pseudoV6(src, dst, 58, 64)).toBe(fold(0xfd00 + 0x0100 + 0xfd00 + 0x0002 + 64 + 58));
    expect(pseudoV6(src, dst, 17, 0x12345)).toBe(fold(0xfd00 + 0x0100 + 0xfd00 + 0x0002 + 0x1 + 0x2345 + 17));
    // Offsets let the addresses be read in place from a packet.
    const pkt = Buffer.concat([Buffer.alloc(8), src, dst]);
    expect(pseudoV6(pkt, pkt, 58, 64, 8, 24)).toBe(pseudoV6(src, dst, 58, 64));
  });

  it('RFC 1624 incremental update equals a full recompute on random data', () => {
    const rand = prng(1624);
    for (let k = 0; k < 500; k++) {
      const len = 2 * (2 + ((rand() * 40) | 0));
      const b = randomBytes(rand, len);
      const before = checksum(b, 0, len);
      const at = 2 * ((rand() * (len / 2)) | 0);
      const oldW = (b[at] << 8) | b[at + 1];
      const newW = (rand() * 0x10000) | 0;
      b[at] = newW >>> 8;
      b[at + 1] = newW;
      expect(updateChecksum16(before, oldW, newW)).toBe(checksum(b, 0, len));
    }
  });

  it('RFC 1624 32-bit variant equals a full recompute after an address rewrite', () => {
    const rand = prng(32);
    for (let k = 0; k < 500; k++) {
      const b = randomBytes(rand, 20);
      const before = checksum(b, 0, 20);
      const oldV = b.readUInt32BE(12);
      const newV = (rand() * 2 ** 32) >>> 0;
      b.writeUInt32BE(newV, 12);
      expect(updateChecksum32(before, oldV, newV)).toBe(checksum(b, 0, 20));
    }
  });

  it('incremental update of an echo request type gives the real reply checksum', () => {
    // 08 00 → 00 00 in the first word: 0x7198 becomes 0x7998 (captured reply).
    expect(updateChecksum16(0x7198, 0x0800, 0x0000)).toBe(0x7998);
  });

  it('incremental update yields an equivalent value at the -0/+0 boundary', () => {
    // Zeroing the only non-zero word: full recompute gives 0xffff, RFC 1624
    // eqn. 3 gives 0; both are "zero" in one's complement.
    const r = updateChecksum16(~0x1234 & 0xffff, 0x1234, 0);
    expect(r === 0 || r === 0xffff).toBe(true);
  });

  it('transmits a computed UDP checksum of 0 as 0xffff (RFC 768)', () => {
    expect(udpChecksumField(0)).toBe(0xffff);
    expect(udpChecksumField(0x1234)).toBe(0x1234);
  });
});
