import { describe, expect, it } from 'vitest';
import { DOUBLE_ZERO, idiv, idivCeil, reported } from '../../../src/stack/numbers.js';
import { Counters } from '../../../src/stack/counters.js';

describe('idiv / idivCeil', () => {
  it('equal Math.floor / Math.ceil of the quotient for non-negative integers', () => {
    for (let a = 0; a < 300; a++) {
      for (let b = 1; b < 40; b++) {
        expect(idiv(a, b)).toBe(Math.floor(a / b));
        expect(idivCeil(a, b)).toBe(Math.ceil(a / b));
      }
    }
  });

  it('stay exact for budgets and windows past 2^31, up to 2^53', () => {
    const cases: Array<[number, number]> = [
      [64 * 1024 * 1024, 3],
      [2 ** 31 + 5, 256 * 1024],
      [8 * 2 ** 30, 7],
      [2 ** 53 - 1, 2 ** 14],
      [768 * 65495, 201],
    ];
    for (const [a, b] of cases) {
      expect(idiv(a, b)).toBe(Math.floor(a / b));
      expect(idivCeil(a, b)).toBe(Math.ceil(a / b));
    }
  });
});

describe('DOUBLE_ZERO', () => {
  it('is zero to every comparison, sum and printout', () => {
    expect(DOUBLE_ZERO === 0).toBe(true);
    expect(DOUBLE_ZERO + 1.5).toBe(1.5);
    expect(Math.max(DOUBLE_ZERO, 0) === 0).toBe(true);
    expect(String(DOUBLE_ZERO)).toBe('0');
    expect(JSON.stringify({ srtt: DOUBLE_ZERO })).toBe('{"srtt":0}');
  });
});

describe('counters past 2^31', () => {
  it('start as doubles yet report an untouched counter as 0, not -0', () => {
    expect(Object.is(reported(DOUBLE_ZERO), 0)).toBe(true);
    expect(reported(DOUBLE_ZERO + 2 ** 31 + 7)).toBe(2 ** 31 + 7);
    const c = new Counters();
    const s = c.snapshot();
    for (const k of ['rxFrames', 'rxBytes', 'txFrames', 'txBytes'] as const) expect(Object.is(s[k], 0)).toBe(true);
    c.rxBytes += 3 * 2 ** 30;
    expect(c.snapshot().rxBytes).toBe(3 * 2 ** 30);
  });
});
