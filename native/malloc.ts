// native/malloc.ts — owns: glibc malloc's tuning for tsnet's one long-lived
// process (mallopt through koffi).
//
// Read this first: a Node.js process has a dozen threads (V8's compiler and
// GC workers, libuv's pool) and glibc gives each thread that allocates its
// own arena, up to 8 per CPU; and after a large block is freed glibc raises
// its mmap threshold (up to 32 MiB), so later large blocks come from the
// heap and may stay resident once freed. Both show in a bulk transfer as
// memory that is not used again: glibc's arenas held 6.5 MiB at the end of
// one (attach -c, MTU 65520, iperf3 -R 4 s). With one arena and a fixed
// 128 KiB threshold the peak RSS went 70.4-72.1 -> 68.1-70.4 MiB (3 runs
// each way, same throughput). glibc fixes the arena limit the first time a
// second thread needs an arena, so this runs first (src/cli/early.ts); the
// threads Node.js starts before any JavaScript runs (V8's workers) already
// have theirs, which is why the launchers ask for one worker only
// (--v8-pool-size=1, src/cli/slirp4netns.sh).

import { libc } from './libc.js';

const M_MMAP_THRESHOLD = -3;
const M_ARENA_MAX = -8;

/** Arenas for the whole process: the main one only (tsnet's work is on one thread). */
export const ARENA_MAX = 1;
/** Blocks from this size up are mmapped and returned to the kernel when freed (glibc's initial value, kept fixed). */
export const MMAP_THRESHOLD = 128 * 1024;

/** Applies both settings; false when this libc has no mallopt (musl), where there is nothing to tune. */
export function tuneMalloc(): boolean {
  let mallopt: (param: number, value: number) => number;
  try {
    mallopt = libc.func('int mallopt(int param, int value)') as (param: number, value: number) => number;
  } catch {
    return false;
  }
  return mallopt(M_ARENA_MAX, ARENA_MAX) === 1 && mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) === 1;
}
