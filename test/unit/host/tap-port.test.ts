// src/host/tap-port.ts's read loop against an AF_UNIX datagram socketpair
// standing in for the TAP (one frame per read(2), as a TAP gives): a burst
// queued while tsnet was busy is read whole and flushed once, in order.

import { describe, expect, it } from 'vitest';
import { closeFd, datagramPair, writeFrame } from '../../../native/index.js';
import { TapPort } from '../../../src/host/tap-port.js';
import { waitFor } from '../../support/proc.js';

describe('TapPort (stream engine)', () => {
  it('reads a queued burst as one batch: every frame, in order, then one flush', async () => {
    const [tapEnd, guestEnd] = datagramPair();
    const port = new TapPort(tapEnd, 'test0');
    try {
      const got: number[] = [];
      const seenAtFlush: number[] = [];
      port.setReceiver((frame) => got.push(frame[0]!));
      port.onBatchEnd = () => seenAtFlush.push(got.length);
      for (let i = 0; i < 20; i++) expect(writeFrame(guestEnd, Buffer.alloc(60 + i, i))).toBe(60 + i);
      port.start();
      expect(port.engine).toBe('stream');
      await waitFor(() => got.length === 20, 2000, '20 frames');
      expect(got).toEqual(Array.from({ length: 20 }, (_, i) => i));
      // libuv alone would take one frame per loop turn and end a batch after each.
      expect(seenAtFlush).toEqual([20]);
      expect(port.stats.rxFrames).toBe(20);

      // A later frame is a batch of its own.
      writeFrame(guestEnd, Buffer.alloc(60, 99));
      await waitFor(() => got.length === 21, 2000, 'the 21st frame');
      expect(seenAtFlush).toEqual([20, 21]);
    } finally {
      await port.close();
      closeFd(guestEnd);
    }
  });
});
