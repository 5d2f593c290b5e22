/**
 * Tear-down for the outage and backlog benchmarks: every process, port and directory a
 * step starts is released when the step ends, also when it fails, in the reverse order
 * of starting (a terminal before its gateway, a gateway before its link, a link before
 * its broker).
 */

export type Defer = (cleanup: () => unknown) => void

/** Runs `body`; whatever it `defer`s runs afterwards, last first, each even if another fails. */
export async function withCleanups<T>(body: (defer: Defer) => Promise<T>): Promise<T> {
  const cleanups: (() => unknown)[] = []
  try {
    return await body((cleanup) => cleanups.unshift(cleanup))
  } finally {
    for (const cleanup of cleanups) {
      try {
        await cleanup()
      } catch {
        // Best effort: the step's result (or its error) is what matters.
      }
    }
  }
}
