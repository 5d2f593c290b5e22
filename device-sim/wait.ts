/**
 * Waiting on real processes and devices, whose timing is not ours: as long as the I/O
 * takes, no fixed sleep. Shared by the end-to-end tests and the benchmarks.
 */

export interface WaitOptions {
  /** Give up after this long, ms. Default 5,000. */
  timeoutMs?: number
  /** Check this often, ms. Default 5. */
  intervalMs?: number
  /** What is awaited, for the timeout message (a function: said as it stands at the timeout). */
  what?: string | (() => string)
}

/**
 * Resolves as soon as `condition()` is true; rejects after `timeoutMs`. For waiting on real
 * processes and devices, whose timing is not ours: the test takes as long as the I/O does,
 * no fixed sleep. Uses real timers: do not call it under vi.useFakeTimers().
 */
export async function waitUntil(condition: () => boolean, opts: WaitOptions = {}): Promise<void> {
  if (await holdsWithin(condition, opts)) return
  const what = typeof opts.what === 'function' ? opts.what() : opts.what
  throw new Error(`timed out after ${opts.timeoutMs ?? 5000} ms waiting for ${what ?? 'a condition'}`)
}

/**
 * Resolves true as soon as `condition()` is true, false once `timeoutMs` have passed: for
 * a caller that goes on either way and says itself what did not happen (the demo, the
 * delivery check of the loop harness, the soak's drain).
 */
export async function holdsWithin(condition: () => boolean, opts: Omit<WaitOptions, 'what'> = {}): Promise<boolean> {
  const deadline = Date.now() + (opts.timeoutMs ?? 5000)
  const intervalMs = opts.intervalMs ?? 5
  for (;;) {
    if (condition()) return true
    if (Date.now() >= deadline) return false
    await new Promise<void>((resolve) => setTimeout(resolve, intervalMs))
  }
}

/**
 * Resolves with the first truthy value `probe()` gives; rejects after `timeoutMs` naming
 * `what`. For tests that wait on real I/O and want what they waited for.
 */
export async function waitFor<T>(what: string, probe: () => T | undefined | null | false, timeoutMs = 5000): Promise<T> {
  let found: T | undefined
  await waitUntil(
    () => {
      const value = probe()
      if (value === undefined || value === null || value === false) return false
      found = value
      return true
    },
    { timeoutMs, what },
  )
  return found as T
}
