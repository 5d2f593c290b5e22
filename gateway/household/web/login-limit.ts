/**
 * Wrong PINs are rate-limited per client address and overall. A 6-digit PIN has a million
 * values; with these numbers an address gets 5 tries, then waits 30 s, 60 s, 120 s ... up
 * to 15 min after each further wrong one (about 100 tries a day), and all addresses
 * together get 20 wrong tries before everyone waits the same way (up to 5 min), so a
 * phone that changes its address gains nothing. The price: someone on the LAN guessing
 * can keep the member out of the page for minutes; the command line on the box
 * (`steppelink status`) and the alarm path are never affected.
 *
 * Counts are in memory and forgotten 24 h after the last wrong PIN, or at a right one.
 */

export interface LoginLimitOptions {
  now: () => number
  /** Wrong PINs from one address before it must wait. Default 5. */
  perAddress?: number
  /** Wrong PINs from all addresses (since the last right one) before everyone must wait. Default 20. */
  overall?: number
}

const BASE_MS = 30_000
const ADDRESS_CAP_MS = 15 * 60_000
const OVERALL_CAP_MS = 5 * 60_000
const FORGET_MS = 24 * 3600_000
const MAX_ADDRESSES = 1024

interface Count {
  failures: number
  lastFailure: number
  lockedUntil: number
}

export type LoginCheck = { allowed: true } | { allowed: false; retryAfterMs: number }

export class LoginLimit {
  readonly #byAddress = new Map<string, Count>()
  readonly #overall: Count = { failures: 0, lastFailure: 0, lockedUntil: 0 }
  readonly #now: () => number
  readonly #perAddress: number
  readonly #overallFree: number

  constructor(o: LoginLimitOptions) {
    this.#now = o.now
    this.#perAddress = o.perAddress ?? 5
    this.#overallFree = o.overall ?? 20
  }

  /** Whether `address` may try a PIN now. */
  check(address: string): LoginCheck {
    const now = this.#now()
    const c = this.#byAddress.get(address)
    const until = Math.max(c?.lockedUntil ?? 0, this.#overall.lockedUntil)
    return until > now ? { allowed: false, retryAfterMs: until - now } : { allowed: true }
  }

  failed(address: string): void {
    const now = this.#now()
    let c = this.#byAddress.get(address)
    if (c && now - c.lastFailure > FORGET_MS) c = undefined
    if (!c) {
      if (this.#byAddress.size >= MAX_ADDRESSES) this.#byAddress.delete(this.#byAddress.keys().next().value!)
      c = { failures: 0, lastFailure: now, lockedUntil: 0 }
      this.#byAddress.set(address, c)
    }
    bump(c, now, this.#perAddress, ADDRESS_CAP_MS)
    if (now - this.#overall.lastFailure > FORGET_MS) this.#overall.failures = 0
    bump(this.#overall, now, this.#overallFree, OVERALL_CAP_MS)
  }

  succeeded(address: string): void {
    this.#byAddress.delete(address)
    this.#overall.failures = 0
    this.#overall.lockedUntil = 0
  }
}

function bump(c: Count, now: number, free: number, capMs: number): void {
  c.failures++
  c.lastFailure = now
  if (c.failures >= free) c.lockedUntil = now + Math.min(capMs, BASE_MS * 2 ** Math.min(20, c.failures - free))
}
