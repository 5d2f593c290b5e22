/**
 * The clock a retry loop or a delayed action runs on: the serial line's reopening, the
 * uplink's reconnecting, the console's automatic answers. Injected, so that tests can hold
 * it, fire it and record what was asked of it (tests/helpers/manual-timers.ts).
 */
export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown
  clearTimeout(handle: unknown): void
}

/** The global setTimeout and clearTimeout. */
export const realTimers: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
}
