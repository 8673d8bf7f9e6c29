// src/stack/idiv.ts — integer division for the per-segment path.
//
// Read this first: for `Math.floor(a / b)` V8's optimizing compiler looks at
// what the division has produced so far. If every quotient it saw was a
// whole small integer (a bulk transfer: windows and budgets that are
// multiples of the divisor), it compiles an int32 division that
// deoptimizes ("lost precision") the first time one has a remainder, such
// as when a third connection makes the fair share 64 MiB / 3. The
// deoptimized function, and every function it was inlined into, then runs
// unoptimized until V8 compiles it again: a latency stall on the path of
// every segment. Subtracting the remainder first makes every division
// exact, so the speculation always holds. Same result as Math.floor for
// non-negative integers below 2^53 and a positive divisor.

/** ⌊a / b⌋ for integers a ≥ 0 and b > 0. */
export function idiv(a: number, b: number): number {
  return (a - (a % b)) / b;
}

/** ⌈a / b⌉ for integers a ≥ 0 and b > 0. */
export function idivCeil(a: number, b: number): number {
  const r = a % b;
  return (a - r) / b + (r > 0 ? 1 : 0);
}
