/**
 * How many error reports the gateway may publish ([MQTT-5.2]): a token bucket.
 *
 * Why: every rejected command earns a Reply on the uplink, and the uplink of a centre
 * household is a GPRS link of some 20 kbit/s that also carries the alarms. A platform bug
 * or a hostile publisher on `all` can send thousands of bad commands in a minute; answering
 * each would put megabytes of error reports in front of the next alarm (measured before
 * this limit: 1,000 bad commands on GPRS delayed an alarm from 2.8 s to 40 s). A person
 * debugging needs the first reports and the count of the rest, not every copy: so a burst
 * goes out at once, then a trickle, and each report that does go out carries how many were
 * held back since the one before ([MQTT-3.8] `suppressed`).
 */

export interface ReplyBudgetOptions {
  /** Reports that may go out at once, after a quiet spell. */
  burst: number
  /** Reports per minute after the burst is spent. */
  perMinute: number
}

export const DEFAULT_REPLY_BUDGET: ReplyBudgetOptions = { burst: 20, perMinute: 10 }

export type ReplyDecision =
  /** Publish it, telling how many were held back since the last one that went out. */
  | { send: true; suppressed: number }
  /** Hold it back; `first` is true for the first one held back since the last sent. */
  | { send: false; first: boolean }

export class ReplyBudget {
  #tokens: number
  #at: number | null = null
  #suppressed = 0

  constructor(private readonly opts: ReplyBudgetOptions = DEFAULT_REPLY_BUDGET) {
    if (!(opts.burst >= 1) || !(opts.perMinute > 0)) throw new RangeError(`ReplyBudget: burst must be ≥ 1 and perMinute > 0, got ${JSON.stringify(opts)}`)
    this.#tokens = opts.burst
  }

  /** One report wants to go out at `nowMs`. */
  take(nowMs: number): ReplyDecision {
    if (this.#at !== null && nowMs > this.#at) {
      this.#tokens = Math.min(this.opts.burst, this.#tokens + ((nowMs - this.#at) * this.opts.perMinute) / 60_000)
    }
    this.#at = nowMs
    if (this.#tokens >= 1) {
      this.#tokens -= 1
      const suppressed = this.#suppressed
      this.#suppressed = 0
      return { send: true, suppressed }
    }
    this.#suppressed += 1
    return { send: false, first: this.#suppressed === 1 }
  }

  /** Reports held back since the last one that went out. */
  get suppressed(): number {
    return this.#suppressed
  }
}
