// PrereqError: a missing prerequisite or unusable target. The CLI prints its
// message as one line (cause and fix) and exits 1, never with a stack trace.

export class PrereqError extends Error {
  override name = 'PrereqError';
}
