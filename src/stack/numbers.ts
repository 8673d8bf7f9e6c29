// src/stack/numbers.ts — owns: how numbers on the per-segment path are
// written so that V8's optimized code for it stays valid.
//
// Read this first: V8's optimizing compiler specializes code to what it has
// seen, and undoes the specialization (a "deopt": the function, and every
// function it was inlined into, runs unoptimized until compiled again) the
// first time something else shows up. On the per-segment path each deopt
// is a latency stall, and the first ones come exactly when a quiet
// connection starts after a busy one. Two kinds are ours to avoid:
// - Division. For `Math.floor(a / b)` V8 looks at the quotients so far; if
//   every one was a whole small integer (a bulk transfer: windows and
//   budgets that are multiples of the divisor) it compiles an int32
//   division that deoptimizes ("lost precision") on the first remainder,
//   such as when a third connection makes the fair share 64 MiB / 3.
//   idiv() subtracts the remainder first: the division is always exact.
//   A quotient that is only compared is written as a product instead
//   (`x * 0.5`, not `x / 2`), which V8 never speculates on.
// - Field representations. An object's map records whether a number field
//   holds small integers or doubles. A field created as 0 (a small integer)
//   and later given a fraction (a time from performance.now(), an RTT
//   average) moves to "double": V8 deprecates the map and every optimized
//   function that relied on it deoptimizes ("wrong map"). Such fields start
//   as DOUBLE_ZERO instead. Likewise `2 ** n` yields a double even when
//   whole; window scaling uses `1 << n` (n ≤ 14).
// - Numbers that only grow. A small integer ends at 2^31 - 1: a byte
//   counter passes it after 2 GiB (seconds into a bulk transfer), and the
//   change to a double deoptimizes ("not a Smi") and deprecates the map
//   like a fraction does. Byte and frame counters start as DOUBLE_ZERO
//   (and are reported through reported(), so that an untouched one reads
//   0, not -0); stream positions are kept relative to what is held (the
//   send buffer renumbers as it releases blocks), never absolute.

/** ⌊a / b⌋ for integers a ≥ 0 and b > 0 (exact below 2^53). */
export function idiv(a: number, b: number): number {
  return (a - (a % b)) / b;
}

/** ⌈a / b⌉ for integers a ≥ 0 and b > 0 (exact below 2^53). */
export function idivCeil(a: number, b: number): number {
  const r = a % b;
  return (a - r) / b + (r > 0 ? 1 : 0);
}

/**
 * Zero, stored the way fractional numbers are (minus zero is not a small
 * integer): the initial value of fields that will hold times or averages.
 * Equal to 0 in every comparison and sum.
 */
export const DOUBLE_ZERO = -0;

/** A counter as reported: DOUBLE_ZERO reads as 0 (-0 + 0 is +0). */
export function reported(x: number): number {
  return x + 0;
}
