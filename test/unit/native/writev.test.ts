// native/tun.ts writeFrame2: one frame written from two places (headers,
// then a payload where it lies) arrives as one datagram, byte for byte.

import { describe, expect, it } from 'vitest';
import { closeFd, datagramPair, readFrame, writeFrame2 } from '../../../native/index.js';

describe('writeFrame2', () => {
  it('writes a[0, aLen) then b as one frame, from views at any offset', () => {
    const [x, y] = datagramPair();
    try {
      const block = Buffer.allocUnsafeSlow(256 * 1024);
      for (let i = 0; i < block.length; i++) block[i] = (i * 7) & 0xff;
      const head = Buffer.allocUnsafeSlow(128).fill(0x11);
      const out = Buffer.alloc(70_000);
      for (const [off, len] of [[0, 1500], [1000, 65000], [200_000, 4096]] as const) {
        const payload = block.subarray(off, off + len);
        expect(writeFrame2(x, head.subarray(10), 66, payload)).toBe(66 + len);
        const n = readFrame(y, out);
        expect(n).toBe(66 + len);
        expect(out.subarray(0, 66).equals(head.subarray(10, 76))).toBe(true);
        expect(out.subarray(66, n).equals(payload)).toBe(true);
      }
      // A small on-heap typed array works too (reading .buffer moves it off the heap).
      const small = new Uint8Array([1, 2, 3]);
      expect(writeFrame2(x, head, 2, small)).toBe(5);
      expect([...out.subarray(0, readFrame(y, out))]).toEqual([0x11, 0x11, 1, 2, 3]);
    } finally {
      closeFd(x);
      closeFd(y);
    }
  });
});
