// The one guard around every entry into tsnet's code from the event loop:
// frames, host socket events and callbacks, timers, API requests, pcap
// writes. An exception that reaches it is a bug or an unexpected condition,
// never a reason to stop serving: it becomes a count under a short place
// name (`tcp-host`, `udp-host`, `timer`, ...), a rate-limited log line, and
// — through the caller's onFail — the end of the one flow it belongs to
// (RST or ICMP to the guest, the host socket destroyed). Other flows go on.
//
// What still escapes every guard (an exception thrown by Node itself from a
// place tsnet does not wrap) reaches the process-level handlers installed by
// installProcessGuard(): counted as `uncaught`, logged, and tsnet keeps
// serving — unless such escapes repeat faster than RUNAWAY_PER_WINDOW per
// RUNAWAY_WINDOW_MS, which means tsnet is broken in a loop: it then stops
// as on SIGTERM (exit status 70, EX_SOFTWARE).

import { performance } from 'node:perf_hooks';
import type { Logger } from './log.js';
import { monotonicClock, type Clock } from './clock.js';

/** A place logs its first error at once, then at most one line per this long. */
const LOG_INTERVAL_MS = 10_000;
export const RUNAWAY_WINDOW_MS = 1000;
export const RUNAWAY_PER_WINDOW = 100;
export const EXIT_SOFTWARE = 70;

interface LogState {
  at: number;
  suppressed: number;
}

export class Guard {
  /** Errors caught, by place. */
  readonly counts = new Map<string, number>();
  private readonly logged = new Map<string, LogState>();

  constructor(
    private readonly log: Logger,
    private readonly clock: Clock = monotonicClock,
  ) {}

  /**
   * Runs f. If it throws, the error is counted and logged under `where` and
   * onFail (itself guarded) releases what the failing work belonged to.
   */
  run(where: string, f: () => void, onFail?: (err: unknown) => void): void {
    try {
      f();
    } catch (e) {
      this.failed(where, e, onFail);
    }
  }

  /**
   * f under the guard, for event handlers and callbacks: run()'s semantics
   * without a closure per call (some of these run once per segment).
   */
  wrap<A extends unknown[]>(where: string, f: (...args: A) => void, onFail?: (err: unknown) => void): (...args: A) => void {
    return (...args: A) => {
      try {
        f(...args);
      } catch (e) {
        this.failed(where, e, onFail);
      }
    };
  }

  /** An error was caught: count and log it, then let onFail (itself guarded) release what it belonged to. */
  private failed(where: string, e: unknown, onFail?: (err: unknown) => void): void {
    this.report(where, e);
    if (!onFail) return;
    try {
      onFail(e);
    } catch (e2) {
      this.report(`${where}-cleanup`, e2);
    }
  }

  /** Counts err under where and logs it (the first at once, then one line per LOG_INTERVAL_MS with the number suppressed). */
  report(where: string, err: unknown): void {
    this.counts.set(where, (this.counts.get(where) ?? 0) + 1);
    const now = this.clock();
    const st = this.logged.get(where);
    if (st && now - st.at < LOG_INTERVAL_MS) {
      st.suppressed++;
      return;
    }
    const suppressed = st?.suppressed ?? 0;
    this.logged.set(where, { at: now, suppressed: 0 });
    this.log.error(
      { where, err: err instanceof Error ? { message: err.message, stack: err.stack } : String(err), ...(suppressed ? { suppressed } : {}) },
      'internal error (caught; only the flow it belonged to was closed)',
    );
  }

  snapshot(): Record<string, number> {
    return Object.fromEntries(this.counts);
  }
}

/**
 * The process-level policy for what escapes every guard: count and log it as
 * `uncaught` and keep serving; if escapes come in a burst (a loop of
 * failures), call onRunaway once so the caller stops cleanly. Returns the
 * remover.
 */
export function installProcessGuard(guard: Guard, onRunaway: (err: unknown) => void, clock: Clock = monotonicClock): () => void {
  let windowStart = -Infinity;
  let inWindow = 0;
  let ranAway = false;
  const handler = (err: unknown) => {
    guard.report('uncaught', err);
    const now = clock();
    if (now - windowStart > RUNAWAY_WINDOW_MS) {
      windowStart = now;
      inWindow = 0;
    }
    if (++inWindow > RUNAWAY_PER_WINDOW && !ranAway) {
      ranAway = true;
      onRunaway(err);
    }
  };
  process.on('uncaughtException', handler);
  process.on('unhandledRejection', handler);
  return () => {
    process.off('uncaughtException', handler);
    process.off('unhandledRejection', handler);
  };
}
