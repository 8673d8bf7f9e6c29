// Known violations: bugs the fuzzer found in src/stack or src/host that are
// not fixed yet (those files are being rewritten by someone else). Each has
// a failing regression test in test/fuzz/regressions.test.ts (it.fails);
// while listed here, a run counts its occurrences instead of failing, so
// `npm test` and `npm run fuzz` keep hunting for new bugs. When a fix
// lands, its regression test starts passing — it.fails then fails — and
// the entry here must go. `npm run fuzz -- --strict` ignores this list.

export interface ViolationInfo {
  invariant: string;
  detail: string;
  /** Generator of the input frame being handled. */
  kind: string;
  phase: string;
  /** The transmitted frame, for tx-* invariants. */
  tx?: Buffer;
}

export interface KnownIssue {
  /** Also the name of the regression test. */
  id: string;
  /** Where the fault is. */
  where: string;
  match(v: ViolationInfo): boolean;
}

export const KNOWN_ISSUES: readonly KnownIssue[] = [];

export function knownIssue(v: ViolationInfo): KnownIssue | undefined {
  return KNOWN_ISSUES.find((k) => k.match(v));
}
