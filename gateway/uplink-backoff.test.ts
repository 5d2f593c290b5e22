/**
 * The uplink's retry delay (uplink-backoff.ts): full jitter under a doubling ceiling,
 * capped, and never longer than the uplink has been down [UPLINK-6]. Pure arithmetic, no
 * broker; the retry loop that asks it is tested against brokers in uplink-failures.test.ts.
 */

import { describe, expect, it } from 'vitest'
import { backoffDelay } from './uplink.js'

describe('backoffDelay [UPLINK-6]', () => {
  it('is random() times the doubling ceiling, capped at maxMs', () => {
    const half = () => 0.5
    expect([0, 1, 2, 3, 8, 9, 10].map((n) => backoffDelay(n, 1000, 300_000, half))).toEqual([500, 1000, 2000, 4000, 128_000, 150_000, 150_000])
    expect(backoffDelay(0, 1000, 300_000, () => 0)).toBe(0)
    expect(backoffDelay(3, 1000, 300_000, () => 0.999_999)).toBe(7999)
    // After days offline the exponent does not overflow into Infinity or NaN.
    expect(backoffDelay(10_000, 1000, 300_000, () => 0.999_999)).toBe(299_999)
  })

  it('never waits longer than the uplink has been down, nor less than initialMs allows', () => {
    const half = () => 0.5
    // 8 failures would allow 256 s; down for 12 s, the ceiling is 12 s.
    expect(backoffDelay(8, 1000, 300_000, half, 12_000)).toBe(6_000)
    // Down for 200 ms: the ceiling is still initialMs.
    expect(backoffDelay(8, 1000, 300_000, half, 200)).toBe(500)
    // Down for an hour: the usual bounds.
    expect(backoffDelay(3, 1000, 300_000, half, 3_600_000)).toBe(4_000)
    expect(backoffDelay(12, 1000, 300_000, half, 3_600_000)).toBe(150_000)
  })
})
