import { describe, expect, it } from 'vitest';
import { idiv, idivCeil } from '../../../src/stack/idiv.js';

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
