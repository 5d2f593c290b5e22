/**
 * The platform side of the scale benchmark: the operator console (platform/),
 * one persistent session on the six uplink filters, receipting every alarm and sending
 * `time` after every birth, as the 110 centre would. It runs in the benchmark process;
 * this wrapper only counts what reached it, and when the last new one arrived (the
 * console's own `receivedAt`, stamped as the message comes off the socket).
 */

import { startConsole, type ConsoleEvent, type OperatorConsole } from '../../platform/index.js'
import { waitUntil } from '../../device-sim/wait.js'

/** Distinct keys seen since the last reset, and when the last new one arrived. */
export class Tally {
  readonly #seen = new Set<string>()
  lastAt = 0

  add(key: string, at: number): void {
    if (this.#seen.has(key)) return
    this.#seen.add(key)
    this.lastAt = at
  }

  get size(): number {
    return this.#seen.size
  }

  reset(): void {
    this.#seen.clear()
    this.lastAt = 0
  }
}

export class Platform {
  readonly births = new Tally()
  readonly deaths = new Tally()
  /** Alert ids (first copies). */
  readonly alerts = new Tally()
  /** Batch ids, counted at their first item. */
  readonly batches = new Tally()
  receipts = 0
  /** Statuses that came alone (gateway statuses and terminal statuses on `event`), not in a batch. */
  statuses = 0
  errors: string[] = []
  readonly #console: OperatorConsole

  private constructor(c: OperatorConsole) {
    this.#console = c
  }

  static async start(broker: string, prefix: string): Promise<Platform> {
    let platform: Platform | null = null
    const early: ConsoleEvent[] = []
    const c = await startConsole({
      broker,
      prefix,
      id: 'bench-scale',
      // Receipts (and `time` after births) only: no operator in this benchmark.
      ack: 'none',
      onEvent: (e) => (platform === null ? early.push(e) : platform.#on(e)),
    })
    platform = new Platform(c)
    for (const e of early) platform.#on(e)
    return platform
  }

  /** Forget what was seen: the next phase counts from here. */
  reset(): void {
    for (const t of [this.births, this.deaths, this.alerts, this.batches]) t.reset()
    this.receipts = 0
    this.statuses = 0
  }

  /** Waits until `done()`; rejects after timeoutMs with what was seen. */
  until(done: () => boolean, timeoutMs: number, what: string): Promise<void> {
    return waitUntil(done, { timeoutMs, intervalMs: 20, what: () => `${what} (${this.describe()})` })
  }

  describe(): string {
    return `births ${this.births.size}, deaths ${this.deaths.size}, alerts ${this.alerts.size}, batches ${this.batches.size}, receipts ${this.receipts}, errors ${this.errors.length}`
  }

  close(): Promise<void> {
    return this.#console.close()
  }

  #on(e: ConsoleEvent): void {
    switch (e.type) {
      case 'state':
        return (e.kind === 'birth' ? this.births : this.deaths).add(e.gateway ?? '', e.receivedAt)
      case 'alert':
        return this.alerts.add(e.id, e.receivedAt)
      case 'status':
      case 'event':
        if (e.batch !== null) this.batches.add(e.batch, e.receivedAt)
        else if (e.type === 'status') this.statuses++
        return
      case 'command-sent':
        if (e.kind === 'receipt') this.receipts++
        return
      case 'error':
        if (this.errors.length < 20) this.errors.push(`${e.code}: ${e.message}`)
        return
      default:
        return
    }
  }
}
