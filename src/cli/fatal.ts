// The last stop for errors: expected ones (prerequisites, configuration,
// native errors with an errno, bad environment variables) become one line
// "tsnet: ..." and the command's failure code (1; `tsnet run` 125); anything
// else is a bug and keeps its stack trace.

import { PcapFormatError, PrereqError } from '../app/specs.js';
import { ConfigError } from '../stack/config.js';
import { NativeError } from '../../native/libc.js';
import { EnvError } from './env.js';

export { RUN_FAILED } from '../app/exit-codes.js';

export function isExpected(e: unknown): e is Error {
  return (
    e instanceof PrereqError ||
    e instanceof ConfigError ||
    e instanceof NativeError ||
    e instanceof PcapFormatError ||
    e instanceof EnvError ||
    (e instanceof Error && typeof (e as NodeJS.ErrnoException).code === 'string' && (e as NodeJS.ErrnoException).syscall !== undefined)
  );
}

export function reportFatal(e: unknown, code = 1): void {
  if (isExpected(e)) {
    process.stderr.write(`tsnet: ${e.message}\n`);
  } else {
    process.stderr.write(`tsnet: internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  }
  process.exitCode = code;
}
