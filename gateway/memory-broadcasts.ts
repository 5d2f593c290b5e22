/**
 * The broadcasts of a MemoryStore: each broadcast's latest revision, and which revision
 * each terminal was sent and read. [MQTT-5.7] [LINK-5.8] What a command changes is
 * broadcastUpdate() and withdrawal() of store-rules.ts, shared with SqliteStore. The
 * methods that change something run inside the MemoryStore's commit.
 */

import { broadcastUpdate, withdrawal } from './store-rules.js'
import type { BroadcastChange, BroadcastDelivery, HouseholdBroadcast, StoredBroadcast } from './store.js'

/** Sorted by name, as SQLite's ORDER BY sorts ASCII text. */
export const byName = <T>(entries: [string, T][]): [string, T][] => entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))

export class MemoryBroadcasts {
  readonly #broadcasts = new Map<number, StoredBroadcast>()
  /** What the center household did with each, by broadcast. */
  readonly #household = new Map<number, HouseholdBroadcast>()
  /** By broadcast, then terminal. */
  readonly #deliveries = new Map<number, Map<string, BroadcastDelivery>>()

  put(b: Pick<StoredBroadcast, 'id' | 'text' | 'urgency' | 'expires' | 'receivedAt'>): { change: BroadcastChange; broadcast: StoredBroadcast } {
    const update = broadcastUpdate(this.get(b.id), b)
    if (update.change !== 'unchanged') this.#broadcasts.set(b.id, { ...update.broadcast })
    return update
  }

  withdraw(id: number): StoredBroadcast | undefined {
    const old = this.get(id)
    if (!old) return undefined
    const next = withdrawal(old)
    this.#broadcasts.set(id, { ...next })
    return next
  }

  get(id: number): StoredBroadcast | undefined {
    const b = this.#broadcasts.get(id)
    return b && { ...b }
  }

  /** Not expired at `now`, by id. */
  list(now: number): StoredBroadcast[] {
    return [...this.#broadcasts.values()]
      .filter((b) => b.expires === null || b.expires > now)
      .sort((a, b) => a.id - b.id)
      .map((b) => ({ ...b }))
  }

  delivery(broadcast: number, terminal: string): BroadcastDelivery | undefined {
    const d = this.#deliveries.get(broadcast)?.get(terminal)
    return d && { ...d }
  }

  deliveries(broadcast: number): BroadcastDelivery[] {
    return byName([...(this.#deliveries.get(broadcast) ?? [])]).map(([, d]) => ({ ...d }))
  }

  /** Revision `revision` was sent to the terminal; a read it made of an earlier one is kept. */
  sent(broadcast: number, terminal: string, revision: number, now: number): void {
    let copies = this.#deliveries.get(broadcast)
    if (!copies) {
      copies = new Map()
      this.#deliveries.set(broadcast, copies)
    }
    const d = copies.get(terminal)
    copies.set(terminal, { broadcast, terminal, revision, sentAt: now, readRevision: d?.readRevision ?? null, readAt: d?.readAt ?? null })
  }

  read(broadcast: number, terminal: string, revision: number, now: number): void {
    const d = this.#deliveries.get(broadcast)?.get(terminal)
    if (!d) return
    d.readRevision = revision
    d.readAt = now
  }

  /** Forgets the broadcasts expired at `now`, and their deliveries. */
  dropExpired(now: number): void {
    for (const b of this.#broadcasts.values()) if (b.expires !== null && b.expires <= now) this.#broadcasts.delete(b.id)
    for (const id of this.#deliveries.keys()) if (!this.#broadcasts.has(id)) this.#deliveries.delete(id)
    for (const id of this.#household.keys()) if (!this.#broadcasts.has(id)) this.#household.delete(id)
  }

  household(broadcast: number): HouseholdBroadcast | undefined {
    const h = this.#household.get(broadcast)
    return h && { ...h }
  }

  setHousehold(h: HouseholdBroadcast): void {
    this.#household.set(h.broadcast, { ...h })
  }
}
