// The host layer's one source of time. The stack takes time as an argument;
// every host file that needs "now" is handed a Clock instead of reading
// performance.now() itself, so tests and replay can run the same code in
// virtual time.

/** Milliseconds on a monotonic scale (performance.now() in production). */
export type Clock = () => number;

export const monotonicClock: Clock = () => performance.now();
