/**
 * The gateway's store on SQLite (better-sqlite3): one file in WAL mode on the SD card,
 * under an exclusive lock, every event committed with synchronous=FULL before its ACK.
 * It keeps the Store contract of store.ts, which says what each call promises.
 *
 * Split along the store's sections, each with its own statements on the one handle:
 * - sqlite-db.ts: the file (created whole, locked, refused when it cannot be trusted,
 *   migrated), settings and counters, and the one write path, write();
 * - sqlite-events.ts: events, the lifecycle, what is due, the bounds;
 * - sqlite-numbering.ts: each terminal's epoch, boot counter and replay window;
 * - sqlite-broadcasts.ts: broadcasts, their revisions and deliveries;
 * - here: what spans sections (an event and its replay window in one commit, the bounds
 *   with the broadcasts' expiry), the status folds, and the Store's face.
 */

import { statfsSync } from 'node:fs'
import { dirname } from 'node:path'
import type { Stage } from '../protocol/messages.js'
import type { PriorityClass } from '../protocol/mqtt.js'
import { DEFAULT_LIMITS, type Limits } from './limits.js'
import { SqliteBroadcasts } from './sqlite-broadcasts.js'
import { SqliteDb } from './sqlite-db.js'
import { SqliteEvents } from './sqlite-events.js'
import { SqliteNumbering } from './sqlite-numbering.js'
import { StatusFolds, fromTerminal, recognition, refusableBelowReserve, resetReason } from './store-rules.js'
import type {
  AddResult,
  BroadcastChange,
  BroadcastDelivery,
  CoalescedStatus,
  FreeSpace,
  Heartbeat,
  HouseholdBroadcast,
  NewEvent,
  Recognition,
  Reset,
  ResetReason,
  StageEntry,
  Store,
  StoreOptions,
  StoredBroadcast,
  StoredEvent,
  TerminalNumbering,
  WriteStats,
} from './store.js'
import type { StoredCommandWindow } from './command-window.js'
import { commandWindowKey, parseStoredJson } from './store.js'

export { APPLICATION_ID, SCHEMA_VERSION, StoreError, type StoreErrorCode } from './sqlite-db.js'

export interface SqliteStoreOptions extends StoreOptions {
  /** Database file, or ':memory:' for tests. */
  path: string
}

export class SqliteStore implements Store {
  readonly limits: Limits
  readonly path: string
  readonly #db: SqliteDb
  readonly #events: SqliteEvents
  readonly #numbering: SqliteNumbering
  readonly #broadcasts: SqliteBroadcasts
  readonly #freeSpace: FreeSpace
  readonly #folds = new StatusFolds()
  readonly #statements: ReturnType<typeof prepareStatuses>
  /** Numbers reserved on disk by next(), per key: the next to hand out and the last reserved. */
  readonly #reserved = new Map<string, { next: number; last: number }>()

  /** Opens (or creates) the store; throws StoreError when the file cannot be trusted or locked. */
  constructor(options: SqliteStoreOptions) {
    this.path = options.path
    this.#db = new SqliteDb(options.path)
    this.limits = { ...DEFAULT_LIMITS, ...options.limits }
    const dir = options.path === ':memory:' ? '.' : dirname(options.path)
    this.#freeSpace =
      options.freeSpace ??
      (() => {
        const s = statfsSync(dir)
        return Number(s.bavail) * Number(s.bsize)
      })
    this.#events = new SqliteEvents(this.#db)
    this.#numbering = new SqliteNumbering(this.#db)
    this.#broadcasts = new SqliteBroadcasts(this.#db)
    this.#statements = prepareStatuses(this.#db)
    this.#folds.load(this.#statements.dirty.all().map((r) => JSON.parse(r.body) as CoalescedStatus))
  }

  writes(): Readonly<WriteStats> {
    return this.#db.writes()
  }

  // ------------------------------------------------------------------ events

  addEvent(e: NewEvent): AddResult {
    const existing = this.#events.find(e)
    if (existing) return { kind: 'duplicate', event: existing }
    if (refusableBelowReserve(e) && this.belowReserve()) {
      this.count(`dropped.${e.cls}.disk`)
      return { kind: 'refused', reason: 'disk-reserve' }
    }
    this.#db.write(true, () => {
      this.#events.insert(e)
      if (fromTerminal(e)) this.#numbering.take(e.terminal, e.number, e.epoch ?? '')
    })
    this.#db.eventCommitted()
    return { kind: 'added', event: this.#events.get(e.id)! }
  }

  get(id: string): StoredEvent | undefined {
    return this.#events.get(id)
  }

  latestOpenAlarm(terminal: string, epoch: string, number: number): StoredEvent | undefined {
    return this.#events.latestOpenAlarm(terminal, epoch, number)
  }

  dueAlarms(now: number, limit = 100): StoredEvent[] {
    return this.#events.dueAlarms(now, limit)
  }

  alarmsDueNow(): void {
    this.#events.alarmsDueNow()
  }

  dueBacklog(now: number, limit: number, maxBytes = Infinity): StoredEvent[] {
    return this.#events.dueBacklog(now, limit, maxBytes)
  }

  nextDue(): number | null {
    return this.#events.nextDue()
  }

  published(ids: readonly string[], now: number, alarmRetryAt: (attempts: number) => number): void {
    this.#events.published(ids, now, alarmRetryAt)
  }

  retryAt(id: string, at: number): void {
    this.#events.retryAt(id, at)
  }

  advance(id: string, stage: Stage, now: number, detail: { text?: string; etaAt?: number } = {}): StoredEvent | undefined {
    return this.#events.advance(id, stage, now, detail)
  }

  stages(id: string): StageEntry[] {
    return this.#events.stages(id)
  }

  byKey(key: string): StoredEvent | undefined {
    return this.#events.byKey(key)
  }

  openAlerts(): StoredEvent[] {
    return this.#events.openAlerts()
  }

  cases(since: number): StoredEvent[] {
    return this.#events.cases(since)
  }

  recentAlerts(terminal: string, epoch: string, since: number): StoredEvent[] {
    return this.#events.recentAlerts(terminal, epoch, since)
  }

  awaitingReceipt(storedBefore: number): StoredEvent[] {
    return this.#events.awaitingReceipt(storedBefore)
  }

  unreceiptedAlarms(): number {
    return this.#events.unreceiptedAlarms()
  }

  enforceBounds(now: number): Record<string, number> {
    const dropped: Record<string, number> = {}
    const note = (name: string, n: number) => {
      if (n <= 0) return
      dropped[name] = (dropped[name] ?? 0) + n
      this.#db.addCount(name, n)
    }
    this.#db.write(true, () => {
      this.#events.bound(now, this.limits, note)
      this.#broadcasts.dropExpired(now)
    })
    return dropped
  }

  backlog(): Record<PriorityClass, { count: number; bytes: number }> {
    return this.#events.backlog()
  }

  // ------------------------------------------------------------------ terminals' numbering

  numbering(terminal: string): TerminalNumbering | undefined {
    return this.#numbering.numbering(terminal)
  }

  hello(terminal: string, boot: number, lastEvent: number, tag: (n: number) => string): Reset | null {
    const reason = resetReason(this.numbering(terminal), boot, lastEvent)
    if (reason !== null) return this.resetNumbering(terminal, reason, boot, tag)
    this.#numbering.rememberBoot(terminal, boot)
    return null
  }

  resetNumbering(terminal: string, reason: ResetReason, boot: number | null, tag: (n: number) => string): Reset {
    return this.#numbering.resetNumbering(terminal, reason, boot, tag)
  }

  recognise(terminal: string, number: number, fingerprint: string): Recognition {
    const stored = this.#events.byNumber(terminal, this.#numbering.epoch(terminal), number)
    return recognition(stored, fingerprint, () => this.#numbering.taken(terminal, number))
  }

  // ------------------------------------------------------------------ status folds

  putStatus(terminal: string, address: number, hb: Heartbeat, now: number): boolean {
    if (this.belowReserve()) {
      this.#countBestEffort('dropped.status.disk')
      return false
    }
    this.#folds.fold(terminal, address, hb, now)
    return true
  }

  flushStatuses(now: number, olderThanMs: number): number {
    return this.#folds.flush(now, olderThanMs, (due) =>
      this.#db.write(false, () => {
        for (const s of due) this.#statements.put.run(s.terminal, JSON.stringify(s), s.version)
      }),
    )
  }

  dirtyStatuses(): CoalescedStatus[] {
    return this.#folds.dirty().map((s) => ({ ...s, latest: { ...s.latest } }))
  }

  statusPublished(terminal: string, version: number): void {
    const saved = this.#folds.published(terminal, version)
    if (saved !== null) this.#db.write(false, () => this.#statements.published.run(terminal, saved))
  }

  // ------------------------------------------------------------------ broadcasts

  putBroadcast(b: Pick<StoredBroadcast, 'id' | 'text' | 'urgency' | 'expires' | 'receivedAt'>): { change: BroadcastChange; broadcast: StoredBroadcast } {
    return this.#broadcasts.putBroadcast(b)
  }

  withdrawBroadcast(id: number): StoredBroadcast | undefined {
    return this.#broadcasts.withdrawBroadcast(id)
  }

  broadcast(id: number): StoredBroadcast | undefined {
    return this.#broadcasts.broadcast(id)
  }

  broadcasts(now: number): StoredBroadcast[] {
    return this.#broadcasts.broadcasts(now)
  }

  activeBroadcasts(now: number): StoredBroadcast[] {
    return this.broadcasts(now).filter((b) => !b.withdrawn)
  }

  delivery(broadcast: number, terminal: string): BroadcastDelivery | undefined {
    return this.#broadcasts.delivery(broadcast, terminal)
  }

  deliveries(broadcast: number): BroadcastDelivery[] {
    return this.#broadcasts.deliveries(broadcast)
  }

  broadcastSent(broadcast: number, terminal: string, revision: number, now: number): void {
    this.#broadcasts.broadcastSent(broadcast, terminal, revision, now)
  }

  broadcastRead(broadcast: number, terminal: string, revision: number, now: number): boolean {
    return this.#broadcasts.broadcastRead(broadcast, terminal, revision, now)
  }

  householdBroadcast(broadcast: number): HouseholdBroadcast | undefined {
    return this.#broadcasts.householdBroadcast(broadcast)
  }

  setHouseholdBroadcast(h: HouseholdBroadcast): void {
    this.#broadcasts.setHouseholdBroadcast(h)
  }

  // ------------------------------------------------------------------ settings, counters

  meta(key: string): string | undefined {
    return this.#db.meta(key)
  }

  setMeta(key: string, value: string): void {
    this.#db.write(true, () => this.#db.putMeta(key, value))
  }

  commandWindow(audience: string): unknown {
    return parseStoredJson(this.meta(commandWindowKey(audience)))
  }

  setCommandWindow(audience: string, window: StoredCommandWindow): void {
    this.setMeta(commandWindowKey(audience), JSON.stringify({ floor: window.floor, taken: window.taken }))
  }

  bump(key: string): number {
    return this.#db.write(true, () => {
      const next = Number(this.meta(key) ?? '0') + 1
      this.#db.putMeta(key, String(next))
      return next
    })
  }

  next(key: string, block = 1000): number {
    let r = this.#reserved.get(key)
    if (r === undefined || r.next > r.last) {
      const last = this.#db.write(true, () => {
        const end = Number(this.meta(key) ?? '0') + block
        this.#db.putMeta(key, String(end))
        return end
      })
      r = { next: last - block + 1, last }
      this.#reserved.set(key, r)
    }
    return r.next++
  }

  count(name: string, by = 1): void {
    this.#db.write(true, () => this.#db.addCount(name, by))
  }

  /** Counts if the disk lets it (a heartbeat is not worth a NAK when not even a counter fits). */
  #countBestEffort(name: string): void {
    try {
      this.count(name)
    } catch {
      // Nothing can be written (the disk is full): the caller's log line says what happened.
    }
  }

  /** The last write's failure (when, and SQLite's word), or null if the last write succeeded: the service watchdog's question. */
  lastWriteError(): { at: number; message: string } | null {
    return this.#db.lastWriteError()
  }

  /**
   * A tiny lazy write (the time, in meta) so that the watchdog learns whether the store
   * still takes writes when nothing else has written for a while. Never throws; a failure
   * is what lastWriteError() says next.
   */
  probe(now: number): void {
    try {
      this.#db.write(false, () => this.#db.putMeta('probe-at', String(now)))
    } catch {
      // Recorded by the write path.
    }
  }

  belowReserve(): boolean {
    return this.#freeSpace() < this.limits.reserveMB * 1024 * 1024
  }

  counters(): Record<string, number> {
    return this.#db.counters()
  }

  close(): void {
    if (!this.#db.open) return
    this.flushStatuses(Infinity, 0)
    this.#db.close()
  }
}

/** The statuses table: folds saved because they waited long, or at close; deleted once published. */
function prepareStatuses(db: SqliteDb) {
  return {
    put: db.db.prepare<[string, string, number]>(
      'INSERT INTO statuses (terminal, body, version, dirty) VALUES (?, ?, ?, 1) ON CONFLICT(terminal) DO UPDATE SET body = excluded.body, version = excluded.version, dirty = 1',
    ),
    dirty: db.db.prepare<[], { body: string; version: number }>('SELECT body, version FROM statuses WHERE dirty = 1 ORDER BY terminal'),
    published: db.db.prepare<[string, number]>('DELETE FROM statuses WHERE terminal = ? AND version = ?'),
  }
}
