// src/stack/tcp/seq.ts — 32-bit sequence-number arithmetic.
//
// Read this first: TCP sequence numbers live on a circle of 2^32 points
// (RFC 9293 §3.4: "all arithmetic dealing with sequence numbers must be
// performed modulo 2^32"). Two numbers are ordered by the sign of their
// difference taken as a signed 32-bit integer, which is right as long as
// they are less than 2^31 apart — always true for numbers inside one
// connection's windows (RFC 7323 §2.3 caps windows at 2^30 for this reason).
// Every comparison of sequence numbers in src/stack/tcp goes through this
// file; a raw `<` on sequence numbers is a bug.
//
// Values are kept as signed 32-bit integers (-2^31 .. 2^31-1, the `| 0`
// of the wire's unsigned field), as TcpRepr parses them: V8 holds those as
// small integers, where unsigned values of 2^31 and up would be heap
// numbers (an allocation each, and optimized code that deoptimizes when a
// connection's numbers cross 2^31). Only the bits matter: every operation
// here gives the same result for either reading.

/** a < b on the sequence circle. */
export function seqLt(a: number, b: number): boolean {
  return ((a - b) | 0) < 0;
}

/** a ≤ b on the sequence circle. */
export function seqLe(a: number, b: number): boolean {
  return ((a - b) | 0) <= 0;
}

/** a > b on the sequence circle. */
export function seqGt(a: number, b: number): boolean {
  return ((a - b) | 0) > 0;
}

/** a ≥ b on the sequence circle. */
export function seqGe(a: number, b: number): boolean {
  return ((a - b) | 0) >= 0;
}

/** a + n, wrapped to a signed 32-bit value (n may be negative). */
export function seqAdd(a: number, n: number): number {
  return (a + n) | 0;
}

/** a − b as a signed 32-bit difference: how far a is ahead of b. */
export function seqDiff(a: number, b: number): number {
  return (a - b) | 0;
}

/** The later of a and b. */
export function seqMax(a: number, b: number): number {
  return seqGe(a, b) ? a : b;
}

/** The earlier of a and b. */
export function seqMin(a: number, b: number): number {
  return seqLe(a, b) ? a : b;
}

/** start ≤ x < start + len (false when len ≤ 0). */
export function inWindow(x: number, start: number, len: number): boolean {
  const d = (x - start) | 0;
  return d >= 0 && d < len;
}
