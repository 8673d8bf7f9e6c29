// src/host/tap-port.ts's read loop against an AF_UNIX datagram socketpair
// standing in for the TAP (one frame per read(2), as a TAP gives): a burst
// queued while tsnet was busy is read whole and flushed once, in order; a
// device that goes away is reported once; closing the port closes the fd.

import { describe, expect, it } from 'vitest';
import { closeFd, datagramPair, isFdOpen, pipe, writeFrame } from '../../../native/index.js';
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

  it('stops draining when frames come one per wake-up, and drains a burst again', async () => {
    const [tapEnd, guestEnd] = datagramPair();
    const port = new TapPort(tapEnd, 'test2');
    try {
      const got: number[] = [];
      const seenAtFlush: number[] = [];
      port.setReceiver((frame) => got.push(frame[0]!));
      port.onBatchEnd = () => seenAtFlush.push(got.length);
      port.start();
      // Request/response: one frame, then nothing until it was handled.
      for (let i = 0; i < 40; i++) {
        writeFrame(guestEnd, Buffer.alloc(60, i));
        await waitFor(() => got.length === i + 1, 2000, `frame ${i}`);
      }
      // Draining after each would have read(2) for nothing 40 times: 6
      // before the average falls under half a frame, then one probe every
      // 8th wake-up.
      expect(port.stats.rxEmptyDrains).toBeLessThanOrEqual(6 + 5);
      expect(port.stats.rxEmptyDrains).toBeGreaterThanOrEqual(6);
      // A burst while skipping: every frame arrives, in order; within a
      // probe's interval the port drains whole bursts again.
      const burst = async (first: number) => {
        for (let i = 0; i < 30; i++) writeFrame(guestEnd, Buffer.alloc(60, first + i));
        await waitFor(() => got.length === first + 30, 2000, 'the burst');
      };
      await burst(40);
      await burst(70);
      expect(got).toEqual(Array.from({ length: 100 }, (_, i) => i));
      expect(seenAtFlush.at(-1)).toBe(100);
      expect(seenAtFlush.at(-2)).toBe(70);
    } finally {
      await port.close();
      closeFd(guestEnd);
    }
  });

  it('stops draining too when only now and then two frames come together (connections opening and closing)', async () => {
    const [tapEnd, guestEnd] = datagramPair();
    const port = new TapPort(tapEnd, 'test3');
    try {
      let got = 0;
      port.setReceiver(() => got++);
      port.start();
      // Per connection: SYN; ACK and data together; FIN; the last ACK.
      for (let conn = 0; conn < 20; conn++) {
        for (const n of [1, 2, 1, 1]) {
          for (let i = 0; i < n; i++) writeFrame(guestEnd, Buffer.alloc(60, conn));
          const want = got + n;
          await waitFor(() => got === want, 2000, 'the frames');
        }
      }
      expect(got).toBe(100);
      // Draining every wake-up: 60 empty reads of 80 wake-ups.
      expect(port.stats.rxEmptyDrains).toBeLessThan(20);
    } finally {
      await port.close();
      closeFd(guestEnd);
    }
  });

  it('reports a device that goes away once, and closes its fd on close()', async () => {
    // A pipe stands in here: when its write end closes, read(2) returns 0,
    // as a TAP's does once nothing holds the device any more.
    const [readEnd, writeEnd] = pipe(true);
    const port = new TapPort(readEnd, 'test1');
    const failures: string[] = [];
    port.onFailure = (err) => failures.push(err.message);
    port.setReceiver(() => {});
    port.start();
    try {
      writeFrame(writeEnd, Buffer.alloc(60, 1));
      await waitFor(() => port.stats.rxFrames === 1, 2000, 'the frame');
      closeFd(writeEnd);
      await waitFor(() => failures.length > 0, 2000, 'the failure');
      await new Promise((r) => setTimeout(r, 50));
      expect(failures).toEqual(['TAP device test1 hung up']);
    } finally {
      await port.close();
    }
    expect(isFdOpen(readEnd)).toBe(false);
  });
});
