// The frame fuzzer, small: a few seeds of a few thousand frames each through
// a Stack with fake host sockets (test/fuzz/harness.ts), so `npm test`
// catches a stack that throws, transmits malformed frames, corrupts a TCP
// stream or leaks flows on hostile input. `npm run fuzz` runs the same
// harness for a million frames and more seeds.

import { beforeAll, describe, expect, it } from 'vitest';
import { formatFailure, fuzz } from './harness.js';
import { loadSeeds, type SeedFrame } from './seeds.js';

let corpus: SeedFrame[];

beforeAll(async () => {
  corpus = await loadSeeds();
});

describe('frame fuzzer', () => {
  it('reads every capture in pcaps/ as seed frames', () => {
    expect(new Set(corpus.map((s) => s.file)).size).toBeGreaterThanOrEqual(9);
    expect(corpus.length).toBeGreaterThanOrEqual(50);
  });

  it('4 seeds × 6000 frames: no invariant is violated', () => {
    for (const seed of [1, 2, 3, 4]) {
      const rep = fuzz({ seed, frames: 6000, corpus, keepGoing: true });
      expect(rep.failures.map(formatFailure), `seed ${seed}`).toEqual([]);
      expect(rep.frames).toBe(6000);
    }
  });

  it('reaches the deep paths, not just the door', () => {
    const rep = fuzz({ seed: 5, frames: 6000, corpus, keepGoing: true });
    expect(rep.failures.map(formatFailure)).toEqual([]);
    const ev = (k: string) => rep.events.get(k) ?? 0;
    expect(ev('tcp-flow-opened')).toBeGreaterThan(50);
    expect(ev('udp-flow-opened')).toBeGreaterThan(50);
    expect(ev('icmp-echo-flow-opened')).toBeGreaterThan(5);
    expect(ev('dhcp-offer-sent') + ev('dhcp-ack-sent') + ev('dhcp-nak-sent')).toBeGreaterThan(5);
    expect(rep.guest.established).toBeGreaterThan(20);
    expect(rep.guest.closedClean).toBeGreaterThan(5);
    expect(rep.host.tcpBytesFromGuest).toBeGreaterThan(10_000);
    expect(rep.streamBytesChecked).toBeGreaterThan(100_000);
    expect(rep.badChecksum).toBeGreaterThan(0);
    expect(rep.kinds.size).toBeGreaterThan(25);
  });

  it('is reproducible: a seed gives the same frames and the same run', () => {
    const a = fuzz({ seed: 9, frames: 3000, corpus, drain: false });
    const b = fuzz({ seed: 9, frames: 3000, corpus, drain: false });
    const c = fuzz({ seed: 10, frames: 3000, corpus, drain: false });
    expect(b.inputDigest).toBe(a.inputDigest);
    expect(b.txFrames).toBe(a.txFrames);
    expect([...b.drops]).toEqual([...a.drops]);
    expect(c.inputDigest).not.toBe(a.inputDigest);
  });
});
