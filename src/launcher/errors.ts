// PrereqError: a missing prerequisite or unusable target. The CLI prints its
// message as one line (cause and fix) and exits 1, never with a stack trace.

export class PrereqError extends Error {
  override name = 'PrereqError';
}

/** A system error's description without Node's decoration ("ENOENT: no such file or directory, open 'x'" → "no such file or directory"). */
function describe(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  const text = /^[A-Z]+: ([^,]+)/.exec(err?.message ?? '')?.[1] ?? err?.message ?? String(e);
  return err?.code ? `${text} (${err.code})` : text;
}

/**
 * A file a flag names could not be used: `<flag>: cannot <doing> "<file>":
 * <why> (<code>)`, and the fix when there is one. The CLI adds "tsnet: ".
 */
export function fileError(flag: string, file: string, doing: string, e: unknown, fix?: string): PrereqError {
  return new PrereqError(`${flag}: cannot ${doing} ${JSON.stringify(file)}: ${describe(e)}${fix ? ` (${fix})` : ''}`);
}
