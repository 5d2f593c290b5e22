/**
 * The store-and-forward policy: what to publish next, in what order and shape, and what
 * a PUBACK or a silence means. No I/O of its own: it reads and updates the store, and is
 * told the time.
 *
 * Policy [MQTT-4.x]
 * 1. Alarms go first, each at once, one per message on the `alert` topic, whatever the
 *    backlog: they are handed out by nextAlarms() on their own lane, never queued behind
 *    a batch.
 * 2. An alarm is published again under the same id, with backoff (5, 10, 20, 40, then
 *    every 60 s, with ±20 % jitter), until the platform's receipt names it. [MQTT-4.1]
 * 3. If no receipt comes within the receipt timeout (default 60 s from storing), the
 *    alert becomes `unconfirmed` and the terminal says "call 110 by phone"; republication
 *    goes on.
 * 4. The backlog (requests, trouble, status) follows in class order, oldest first within a
 *    class: one item goes as a single message on `event`; more go as a zstd-compressed
 *    batch of at most 500 items or 64 KiB, on `batch`. A lower-class item is done at PUBACK.
 * 5. Terminal status is coalesced in the store, and published at most once per status
 *    interval (or when the platform asks).
 */

import { BATCH_MAX_BYTES, BATCH_MAX_ITEMS, MQTT_CONTRACT_VERSION, encodePayload, type Batch, type TerminalStatus, type UplinkEvent } from '../protocol/mqtt.js'
import type { GatewayClock } from './clock.js'
import type { CoalescedStatus, StoredEvent, Store } from './store.js'

export const ALARM_RETRY_MS = [5_000, 10_000, 20_000, 40_000, 60_000] as const
export const ALARM_RETRY_JITTER = 0.2

export type Publication =
  | { kind: 'alert'; ids: [string]; payload: UplinkEvent }
  | { kind: 'event'; ids: string[]; statuses: CoalescedStatus[]; payload: UplinkEvent | TerminalStatus }
  | { kind: 'batch'; ids: string[]; statuses: CoalescedStatus[]; payload: Batch }

export interface OutboxOptions {
  gateway: string
  /** Receipt timeout: an alarm without a receipt this long after storing is unconfirmed, ms. */
  receiptTimeoutMs: number
  /** Terminal status goes out at most this often, ms. */
  statusIntervalMs: number
  random?: () => number
}

/** Delay before publishing an alarm again after its `attempt`-th publication. */
export function alarmRetryDelayMs(attempt: number, random: () => number): number {
  const base = ALARM_RETRY_MS[Math.min(attempt, ALARM_RETRY_MS.length) - 1]!
  return Math.round(base * (1 + ALARM_RETRY_JITTER * (2 * random() - 1)))
}

export class Outbox {
  readonly #random: () => number
  #lastStatusAt = -Infinity
  #statusRequested = false

  constructor(
    private readonly store: Store,
    private readonly clock: GatewayClock,
    private readonly options: OutboxOptions,
  ) {
    this.#random = options.random ?? Math.random
  }

  /** The uplink form of a stored event at its `attempt`-th publication. */
  uplinkEvent(e: StoredEvent, attempt: number): UplinkEvent {
    const time = this.clock.correct(e.receivedAt, e.boot, e.offset)
    return {
      ...(e.body as Omit<UplinkEvent, 'time' | 'received' | 'attempt'>),
      time,
      received: time.at,
      attempt,
      ...(e.cls === 'alarm' ? { stage: e.stage } : {}),
    }
  }

  /**
   * Alarms due now, each its own publication, excluding those already in flight. Each
   * alarm goes on its own schedule: a new alarm does not bring the earlier ones of its
   * terminal with it (that cost N² publications for N quick presses). Their order at the
   * platform holds without it: first publications go in the order stored, and after a
   * reconnection every waiting alarm goes again, in that order (newConnection()); only a
   * broker that loses what it had accepted ([MQTT-2.6] forbids it) can let a later alarm
   * arrive first, and the platform orders by number. [MQTT-4.4]
   */
  nextAlarms(now: number, inFlight: ReadonlySet<string>): Publication[] {
    return this.store
      .dueAlarms(now)
      .filter((e) => !inFlight.has(e.id))
      .map((e) => ({ kind: 'alert', ids: [e.id], payload: this.uplinkEvent(e, e.attempts + 1) }))
  }

  /** A new connection: every alarm without a receipt is due at once, in the order stored. [MQTT-2.5] */
  newConnection(): void {
    this.store.alarmsDueNow()
  }

  /** Asks for the terminal statuses to go out at the next opportunity. */
  requestStatus(): void {
    this.#statusRequested = true
  }

  /** The next backlog publication: one event, or a batch; null when nothing is due. */
  nextBacklog(now: number): Publication | null {
    const events = this.store.dueBacklog(now, BATCH_MAX_ITEMS, BATCH_MAX_BYTES)
    const statusDue = this.#statusRequested || now - this.#lastStatusAt >= this.options.statusIntervalMs
    // The batch cap counts the items as published (JSON size, an upper bound of CBOR's).
    const items: (UplinkEvent | TerminalStatus)[] = []
    let bytes = 0
    for (const e of events) {
      const item = this.uplinkEvent(e, e.attempts + 1)
      const size = encodePayload(item, 'json').length
      if (items.length > 0 && bytes + size > BATCH_MAX_BYTES) break
      items.push(item)
      bytes += size
    }
    events.length = items.length
    // Statuses fill what room the events leave, by items and by bytes.
    const statuses: CoalescedStatus[] = []
    for (const s of statusDue ? this.store.dirtyStatuses() : []) {
      const item = this.terminalStatus(s)
      const size = encodePayload(item, 'json').length
      if (items.length >= BATCH_MAX_ITEMS || (items.length > 0 && bytes + size > BATCH_MAX_BYTES)) break
      items.push(item)
      statuses.push(s)
      bytes += size
    }
    if (items.length === 0) return null
    const ids = events.map((e) => e.id)
    if (items.length === 1) return { kind: 'event', ids, statuses, payload: items[0]! }
    const batchId = `${this.options.gateway}:b${this.store.next('batch')}`
    return { kind: 'batch', ids, statuses, payload: { v: MQTT_CONTRACT_VERSION, id: batchId, gateway: this.options.gateway, items } }
  }

  /** The broker has it (PUBACK). */
  published(p: Publication, now: number): void {
    this.store.published(p.ids, now, (attempt) => now + alarmRetryDelayMs(attempt, this.#random))
    if (p.kind !== 'alert' && p.statuses.length > 0) {
      for (const s of p.statuses) this.store.statusPublished(s.terminal, s.version)
      this.#lastStatusAt = now
      this.#statusRequested = false
    }
  }

  /**
   * Alarms whose receipt is overdue become unconfirmed: returns them so the gateway can
   * tell their terminals. [MQTT-4.1]
   */
  overdue(now: number): StoredEvent[] {
    const changed: StoredEvent[] = []
    for (const e of this.store.awaitingReceipt(now - this.options.receiptTimeoutMs)) {
      const u = this.store.advance(e.id, 'unconfirmed', now)
      if (u) changed.push(u)
    }
    return changed
  }

  /**
   * When something next falls due (gateway clock), or null: a receipt deadline always; a
   * republication or status only while `online`. Only times after `now` count: what is
   * due already is the pump's business, and a deadline in the past would make the caller
   * spin.
   */
  nextDeadline(now: number, online: boolean): number | null {
    const candidates: number[] = []
    const waiting = this.store.awaitingReceipt(Infinity)[0]
    if (waiting) candidates.push(waiting.receivedAt + this.options.receiptTimeoutMs)
    if (online) {
      const due = this.store.nextDue()
      if (due !== null) candidates.push(due)
      if (this.store.dirtyStatuses().length > 0) candidates.push(this.#lastStatusAt + this.options.statusIntervalMs)
    }
    const future = candidates.filter((t) => t > now)
    return future.length === 0 ? null : Math.min(...future)
  }

  terminalStatus(s: CoalescedStatus): TerminalStatus {
    const time = this.clock.correct(s.last, this.clock.boot, null)
    return {
      v: MQTT_CONTRACT_VERSION,
      id: `${this.options.gateway}:s:${s.terminal}:${s.version}:${s.since}`,
      class: 'status',
      kind: 'status',
      gateway: this.options.gateway,
      terminal: s.terminal,
      address: s.address,
      time,
      latest: s.latest,
      since: this.clock.correct(s.since, this.clock.boot, null).at,
      heartbeats: s.heartbeats,
      ...(s.lowestBattery !== undefined ? { lowestBattery: s.lowestBattery } : {}),
      minutesWithoutMains: Math.round(s.minutesWithoutMains),
    }
  }
}
