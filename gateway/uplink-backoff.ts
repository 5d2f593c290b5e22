/**
 * The uplink's retry delay. Why full jitter, and why bounded by the time offline: [UPLINK-6]
 * in the header of uplink.ts; the loop that asks it is Uplink's #retryDelay.
 */

/**
 * [UPLINK-6] Full jitter: a uniform delay in [0, min(maxMs, initialMs * 2^failures,
 * offlineMs)), where offlineMs (how long the uplink has been down) counts as at least
 * initialMs.
 */
export function backoffDelay(failures: number, initialMs: number, maxMs: number, random: () => number, offlineMs = Infinity): number {
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(failures, 40), Math.max(initialMs, offlineMs))
  return Math.floor(random() * ceiling)
}
