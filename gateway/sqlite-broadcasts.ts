/**
 * The broadcasts of a SqliteStore: each broadcast's latest revision, and which revision
 * each terminal was sent and read. [MQTT-5.7] [LINK-5.8] What a command changes is
 * broadcastUpdate() and withdrawal() of store-rules.ts, shared with MemoryStore.
 */

import type Database from 'better-sqlite3'
import type { SqliteDb } from './sqlite-db.js'
import { broadcastUpdate, withdrawal } from './store-rules.js'
import type { BroadcastChange, BroadcastDelivery, HouseholdBroadcast, StoredBroadcast } from './store.js'

interface BroadcastRow {
  id: number
  text: string
  urgency: 'info' | 'warning' | 'urgent'
  expires: number | null
  received_at: number
  revision: number
  withdrawn: number
}

interface DeliveryRow {
  broadcast: number
  terminal: string
  revision: number
  sent_at: number
  read_revision: number | null
  read_at: number | null
}

function fromRow(r: BroadcastRow): StoredBroadcast {
  return { id: r.id, text: r.text, urgency: r.urgency, expires: r.expires, receivedAt: r.received_at, revision: r.revision, withdrawn: r.withdrawn === 1 }
}

function deliveryFromRow(r: DeliveryRow): BroadcastDelivery {
  return { broadcast: r.broadcast, terminal: r.terminal, revision: r.revision, sentAt: r.sent_at, readRevision: r.read_revision, readAt: r.read_at }
}

function prepare(db: Database.Database) {
  return {
    getBroadcast: db.prepare<[number], BroadcastRow>('SELECT * FROM broadcasts WHERE id = ?'),
    putBroadcast: db.prepare(
      `INSERT INTO broadcasts (id, text, urgency, expires, received_at, revision, withdrawn) VALUES (@id, @text, @urgency, @expires, @receivedAt, @revision, @withdrawn)
       ON CONFLICT(id) DO UPDATE SET text = excluded.text, urgency = excluded.urgency, expires = excluded.expires, received_at = excluded.received_at,
         revision = excluded.revision, withdrawn = excluded.withdrawn`,
    ),
    broadcasts: db.prepare<[], BroadcastRow>('SELECT * FROM broadcasts ORDER BY id'),
    dropExpiredBroadcasts: db.prepare<[number]>('DELETE FROM broadcasts WHERE expires IS NOT NULL AND expires <= ?'),
    dropOrphanDeliveries: db.prepare('DELETE FROM broadcast_deliveries WHERE broadcast NOT IN (SELECT id FROM broadcasts)'),
    getDelivery: db.prepare<[number, string], DeliveryRow>('SELECT * FROM broadcast_deliveries WHERE broadcast = ? AND terminal = ?'),
    deliveries: db.prepare<[number], DeliveryRow>('SELECT * FROM broadcast_deliveries WHERE broadcast = ? ORDER BY terminal'),
    putDelivery: db.prepare<[number, string, number, number]>(
      `INSERT INTO broadcast_deliveries (broadcast, terminal, revision, sent_at) VALUES (?, ?, ?, ?)
       ON CONFLICT(broadcast, terminal) DO UPDATE SET revision = excluded.revision, sent_at = excluded.sent_at`,
    ),
    household: db.prepare<[number], { broadcast: number; revision: number; read_at: number | null; passed_on: number | null; passed_at: number | null }>(
      'SELECT * FROM household_broadcasts WHERE broadcast = ?',
    ),
    putHousehold: db.prepare<[number, number, number | null, number | null, number | null]>(
      `INSERT INTO household_broadcasts (broadcast, revision, read_at, passed_on, passed_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT(broadcast) DO UPDATE SET revision = excluded.revision, read_at = excluded.read_at, passed_on = excluded.passed_on, passed_at = excluded.passed_at`,
    ),
    dropOrphanHousehold: db.prepare('DELETE FROM household_broadcasts WHERE broadcast NOT IN (SELECT id FROM broadcasts)'),
    readDelivery: db.prepare<[number, number, number, string]>('UPDATE broadcast_deliveries SET read_revision = ?, read_at = ? WHERE broadcast = ? AND terminal = ?'),
  }
}

export class SqliteBroadcasts {
  readonly #db: SqliteDb
  readonly #stmt: ReturnType<typeof prepare>

  constructor(db: SqliteDb) {
    this.#db = db
    this.#stmt = prepare(db.db)
  }

  putBroadcast(b: Pick<StoredBroadcast, 'id' | 'text' | 'urgency' | 'expires' | 'receivedAt'>): { change: BroadcastChange; broadcast: StoredBroadcast } {
    return this.#db.write(true, () => {
      const update = broadcastUpdate(this.broadcast(b.id), b)
      if (update.change !== 'unchanged') this.#put(update.broadcast)
      return update
    })
  }

  withdrawBroadcast(id: number): StoredBroadcast | undefined {
    return this.#db.write(true, () => {
      const old = this.broadcast(id)
      if (!old) return undefined
      const next = withdrawal(old)
      if (next !== old) this.#put(next)
      return next
    })
  }

  broadcast(id: number): StoredBroadcast | undefined {
    const r = this.#stmt.getBroadcast.get(id)
    return r && fromRow(r)
  }

  broadcasts(now: number): StoredBroadcast[] {
    return this.#stmt.broadcasts
      .all()
      .map(fromRow)
      .filter((b) => b.expires === null || b.expires > now)
  }

  delivery(broadcast: number, terminal: string): BroadcastDelivery | undefined {
    const r = this.#stmt.getDelivery.get(broadcast, terminal)
    return r && deliveryFromRow(r)
  }

  deliveries(broadcast: number): BroadcastDelivery[] {
    return this.#stmt.deliveries.all(broadcast).map(deliveryFromRow)
  }

  broadcastSent(broadcast: number, terminal: string, revision: number, now: number): void {
    this.#db.write(true, () => this.#stmt.putDelivery.run(broadcast, terminal, revision, now))
  }

  broadcastRead(broadcast: number, terminal: string, revision: number, now: number): boolean {
    const d = this.delivery(broadcast, terminal)
    if (!d || (d.readRevision !== null && d.readRevision >= revision)) return false
    this.#db.write(true, () => this.#stmt.readDelivery.run(revision, now, broadcast, terminal))
    return true
  }

  /** Within a write(): forgets the broadcasts expired at `now`, and their deliveries. */
  dropExpired(now: number): void {
    this.#stmt.dropExpiredBroadcasts.run(now)
    this.#stmt.dropOrphanDeliveries.run()
    this.#stmt.dropOrphanHousehold.run()
  }

  householdBroadcast(broadcast: number): HouseholdBroadcast | undefined {
    const r = this.#stmt.household.get(broadcast)
    return r && { broadcast: r.broadcast, revision: r.revision, readAt: r.read_at, passedOn: r.passed_on, passedAt: r.passed_at }
  }

  setHouseholdBroadcast(h: HouseholdBroadcast): void {
    this.#db.write(true, () => this.#stmt.putHousehold.run(h.broadcast, h.revision, h.readAt, h.passedOn, h.passedAt))
  }

  #put(b: StoredBroadcast): void {
    this.#stmt.putBroadcast.run({ id: b.id, text: b.text, urgency: b.urgency, expires: b.expires, receivedAt: b.receivedAt, revision: b.revision, withdrawn: b.withdrawn ? 1 : 0 })
  }
}
