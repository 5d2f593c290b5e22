/**
 * The gateway's idea of the time. The board may have no real-time clock: after a power
 * cut its clock can start anywhere. The platform's `time` command gives the offset between
 * the platform's clock and ours; events are reported with the corrected time, and with
 * `estimated: true` whenever no offset from this boot applies. [MQTT-3.5]
 */

import type { Store } from './store.js'

export interface Corrected {
  at: number
  estimated: boolean
}

export class GatewayClock {
  #offset: number | null = null

  constructor(
    private readonly store: Store,
    /** This gateway boot: an offset measured in another boot does not apply. */
    readonly boot: number,
    readonly local: () => number = Date.now,
  ) {
    const savedBoot = Number(store.meta('clock.boot'))
    const saved = store.meta('clock.offset')
    if (saved !== undefined && savedBoot === boot) this.#offset = Number(saved)
  }

  /** Platform time minus gateway time, ms, or null while not synchronised in this boot. */
  get offset(): number | null {
    return this.#offset
  }

  get synchronised(): boolean {
    return this.#offset !== null
  }

  /** The platform said it is `platformMs` now. Latency on the link is ignored (seconds at worst). */
  setPlatformTime(platformMs: number): number {
    const offset = platformMs - this.local()
    this.#offset = offset
    this.store.setMeta('clock.offset', String(offset))
    this.store.setMeta('clock.boot', String(this.boot))
    return offset
  }

  /** The corrected time now. */
  now(): Corrected {
    return this.correct(this.local(), this.boot, this.#offset)
  }

  /**
   * The corrected time of a moment `localMs` on the gateway clock of boot `boot`, given
   * the offset known when it was recorded (or null).
   */
  correct(localMs: number, boot: number, offsetThen: number | null): Corrected {
    if (offsetThen !== null) return { at: localMs + offsetThen, estimated: false }
    // Recorded before synchronisation, but in this boot: the clock has run on continuously.
    if (boot === this.boot && this.#offset !== null) return { at: localMs + this.#offset, estimated: false }
    return { at: localMs, estimated: true }
  }
}
