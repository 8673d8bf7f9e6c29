// native/loop.ts — owns: the one change tsnet makes to Node.js's own event
// loop: turning libuv's idle-time metrics off.
//
// Read this first: Node.js configures its loop with UV_METRICS_IDLE_TIME
// (for performance.eventLoopUtilization()). With it on, libuv polls twice
// every time the loop would block: epoll_pwait with a zero timeout first,
// to tell idle time from busy time, and, when that finds nothing, again
// with the real timeout. A request/response through tsnet blocks twice per
// round trip, so that is two extra system calls per round trip (measured:
// 3.8 epoll_pwait per round trip with it on, 2 with it off). tsnet never
// asks for the loop's utilization, so it turns the metric off.
//
// libuv has no call to undo uv_loop_configure, so this clears the flag
// where libuv keeps it: the first word of the loop's internal fields
// (uv_loop_t.internal_fields, a public field of libuv 1.x's stable ABI; the
// flag is the option's own value, 1). Only when that word holds exactly the
// flag is it cleared: any other value means a libuv laid out differently,
// and the loop is left as it is (the cost is the extra polls, nothing
// more). The unit test checks the effect through
// performance.eventLoopUtilization(), which stops counting idle time.

import { koffi } from './libc.js';

/** uv_loop_t: data, active_handles (padded), handle_queue (2 pointers), active_reqs, then internal_fields. */
const INTERNAL_FIELDS_OFFSET = 40;
/** UV_METRICS_IDLE_TIME, as uv_loop_configure records it in the internal flags. */
const METRICS_IDLE_TIME = 1;

export type IdleMetricsResult = 'off' | 'already off' | 'unknown layout' | 'unavailable';

/**
 * Turns off the idle-time metrics of the main thread's event loop (the
 * loop Node.js runs on, uv_default_loop()). Returns what it found.
 */
export function disableLoopIdleMetrics(): IdleMetricsResult {
  const [major, minor] = process.versions.uv!.split('.').map(Number);
  if (major !== 1 || minor! < 39) return 'unavailable';
  let loop: unknown;
  try {
    // The node executable exports libuv's functions (for native addons).
    loop = (koffi.load(null).func('void *uv_default_loop(void)') as () => unknown)();
  } catch {
    return 'unavailable';
  }
  if (!loop) return 'unavailable';
  const fields = koffi.decode(loop, INTERNAL_FIELDS_OFFSET, 'void *') as unknown;
  if (!fields) return 'unknown layout';
  const flags = koffi.decode(fields, 0, 'uint32_t') as number;
  if (flags === 0) return 'already off';
  if (flags !== METRICS_IDLE_TIME) return 'unknown layout';
  koffi.encode(fields, 0, 'uint32_t', 0);
  return 'off';
}
