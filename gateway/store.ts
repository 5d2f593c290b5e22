/**
 * The gateway's durable store: every event from the terminals, the alert lifecycle,
 * coalesced status, broadcasts, counters and small settings, in one SQLite file (WAL).
 *
 * Theory of operation
 * - An event is committed before the terminal hears "got it": the gateway calls
 *   addEvent() and only then accepts the frame on the serial link. Alarms are written with
 *   synchronous=FULL (on disk through a power cut); lower classes with NORMAL (safe from a
 *   crash or SIGKILL, and far fewer fsyncs on an SD card that wears out).
 * - Events are unique by id (`terminal:number`): a retransmission, or a replay after a
 *   terminal's power cut, finds the row already there and is not queued twice.
 * - Priority classes, highest first: alarm (rank 0), request, trouble, status (rank 3).
 *   `seq` (arrival order) keeps per-terminal order within a class.
 * - An alarm stays until it is resolved: it is never expired or evicted. Lower classes are
 *   bounded by count, age and total size; every drop is counted under a name such as
 *   `dropped.trouble.age`, and the counters go out in the next status.
 * - Periodic status is one row per terminal, folded in place (latest values, lowest
 *   battery, minutes without mains), not one row per heartbeat.
 *
 * Invariants
 * 1. `done = 1` means nothing more is to be published for the row: a lower class row is
 *    deleted at that moment; an alarm row stays for its lifecycle (stage).
 * 2. `stage` only moves forward (stored < sent < received < acknowledged < dispatched <
 *    resolved), except `unconfirmed`, which an alarm enters from stored/sent when no
 *    receipt came in time, and leaves for any later stage.
 */

import Database from 'better-sqlite3'
import { mkdirSync, statfsSync } from 'node:fs'
import { dirname } from 'node:path'
import type { Stage } from '../protocol/messages.js'
import { CLASSES, type PriorityClass } from '../protocol/mqtt.js'
import { DEFAULT_LIMITS, type Limits } from './limits.js'

export { DEFAULT_LIMITS, type Limits } from './limits.js'

export const STAGE_ORDER: readonly Stage[] = ['stored', 'sent', 'received', 'acknowledged', 'dispatched', 'resolved']

/** What the gateway knows of an event when it stores it. */
export interface NewEvent {
  id: string
  terminal: string | null
  address: number | null
  number: number | null
  cls: PriorityClass
  /** The uplink body without `attempt` and `time` (those are made at each publication). */
  body: Record<string, unknown>
  /** Gateway clock (ms) when stored, with the platform offset known then (null: none). */
  receivedAt: number
  boot: number
  offset: number | null
}

export interface StoredEvent extends NewEvent {
  seq: number
  bytes: number
  stage: Stage
  attempts: number
  nextAt: number
  done: boolean
  /** Gateway clock (ms) of the last stage change. */
  stageAt: number
}

export interface Heartbeat {
  uptime: number
  mains: boolean
  battery?: number
  millivolts?: number
  signal?: number
  pending?: number
  temperature?: number
}

export interface CoalescedStatus {
  terminal: string
  address: number
  latest: Heartbeat
  /** Gateway clock (ms) of the first and the last heartbeat folded in. */
  since: number
  last: number
  heartbeats: number
  lowestBattery?: number
  minutesWithoutMains: number
  /** Bumped at every fold; statusPublished() only clears the row if nothing new came since. */
  version: number
}

export interface StoredBroadcast {
  id: number
  text: string
  urgency: 'info' | 'warning' | 'urgent'
  expires: number | null
  receivedAt: number
}

export type AddResult =
  | { kind: 'added'; event: StoredEvent }
  | { kind: 'duplicate'; event: StoredEvent }
  /** A lower-class event refused because the disk is nearly full; counted. Never an alarm. */
  | { kind: 'refused'; reason: 'disk-reserve' }

const RANK: Record<PriorityClass, number> = { alarm: 0, request: 1, trouble: 2, status: 3 }
const DAY_MS = 86_400_000
/** Resolved alarms are kept this long for the terminal's display after a reboot, then purged. */
export const RESOLVED_KEEP_MS = DAY_MS

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  terminal TEXT,
  address INTEGER,
  number INTEGER,
  rank INTEGER NOT NULL,
  body TEXT NOT NULL,
  bytes INTEGER NOT NULL,
  received_at INTEGER NOT NULL,
  boot INTEGER NOT NULL,
  offset INTEGER,
  stage TEXT NOT NULL,
  stage_at INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_at INTEGER NOT NULL DEFAULT 0,
  done INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS events_terminal_number ON events(terminal, number) WHERE terminal IS NOT NULL AND number IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_due ON events(done, rank, next_at, seq);
CREATE TABLE IF NOT EXISTS statuses (
  terminal TEXT PRIMARY KEY,
  body TEXT NOT NULL,
  version INTEGER NOT NULL,
  dirty INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS broadcasts (
  id INTEGER PRIMARY KEY,
  text TEXT NOT NULL,
  urgency TEXT NOT NULL,
  expires INTEGER,
  received_at INTEGER NOT NULL
);
`

interface EventRow {
  seq: number
  id: string
  terminal: string | null
  address: number | null
  number: number | null
  rank: number
  body: string
  bytes: number
  received_at: number
  boot: number
  offset: number | null
  stage: Stage
  stage_at: number
  attempts: number
  next_at: number
  done: number
}

function fromRow(r: EventRow): StoredEvent {
  return {
    seq: r.seq,
    id: r.id,
    terminal: r.terminal,
    address: r.address,
    number: r.number,
    cls: CLASSES[r.rank]!,
    body: JSON.parse(r.body) as Record<string, unknown>,
    bytes: r.bytes,
    receivedAt: r.received_at,
    boot: r.boot,
    offset: r.offset,
    stage: r.stage,
    stageAt: r.stage_at,
    attempts: r.attempts,
    nextAt: r.next_at,
    done: r.done === 1,
  }
}

/** Free bytes on the file system holding `path`. */
export type FreeSpace = () => number

export interface StoreOptions {
  /** Database file, or ':memory:' for tests. */
  path: string
  limits?: Partial<Limits>
  /** Free bytes where the database lives; default statfs of its directory. */
  freeSpace?: FreeSpace
}

/** The store, on SQLite through better-sqlite3. All calls are synchronous and short. */
export class Store {
  readonly #db: Database.Database
  readonly limits: Limits
  readonly #freeSpace: FreeSpace
  readonly #stmt: ReturnType<Store['prepareAll']>
  readonly path: string
  /**
   * Status folds not yet published, by terminal. A heartbeat is folded here, in memory: a
   * row written per heartbeat was 9 in 10 of the bytes the gateway wrote to its SD card.
   * A fold reaches the disk only once it has waited long (the uplink is down: it must
   * survive a reboot), by flushStatuses(), and at close.
   */
  readonly #statuses = new Map<string, { status: CoalescedStatus; diskVersion: number | null; unsavedSince: number | null }>()
  /** Numbers reserved on disk by next(), per key: the next to hand out and the last reserved. */
  readonly #reserved = new Map<string, { next: number; last: number }>()

  constructor(options: StoreOptions) {
    this.path = options.path
    if (options.path !== ':memory:') mkdirSync(dirname(options.path), { recursive: true })
    this.#db = new Database(options.path)
    this.#db.pragma('journal_mode = WAL')
    this.#db.pragma('synchronous = FULL')
    // A checkpoint every ~1000 pages keeps the WAL small on a small SD card.
    this.#db.pragma('wal_autocheckpoint = 1000')
    this.#db.exec(SCHEMA)
    this.limits = { ...DEFAULT_LIMITS, ...options.limits }
    const dir = options.path === ':memory:' ? '.' : dirname(options.path)
    this.#freeSpace =
      options.freeSpace ??
      (() => {
        const s = statfsSync(dir)
        return Number(s.bavail) * Number(s.bsize)
      })
    this.#stmt = this.prepareAll()
    for (const r of this.#stmt.dirtyStatuses.all()) {
      const status = JSON.parse(r.body) as CoalescedStatus
      this.#statuses.set(status.terminal, { status, diskVersion: status.version, unsavedSince: null })
    }
  }

  private prepareAll() {
    const db = this.#db
    return {
      getMeta: db.prepare<[string], { value: string }>('SELECT value FROM meta WHERE key = ?'),
      setMeta: db.prepare<[string, string]>('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value'),
      count: db.prepare<[string, number]>('INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = value + excluded.value'),
      counters: db.prepare<[], { name: string; value: number }>('SELECT name, value FROM counters ORDER BY name'),
      byId: db.prepare<[string], EventRow>('SELECT * FROM events WHERE id = ?'),
      byTerminalNumber: db.prepare<[string, number], EventRow>('SELECT * FROM events WHERE terminal = ? AND number = ?'),
      insert: db.prepare(
        `INSERT INTO events (id, terminal, address, number, rank, body, bytes, received_at, boot, offset, stage, stage_at, next_at)
         VALUES (@id, @terminal, @address, @number, @rank, @body, @bytes, @received_at, @boot, @offset, 'stored', @received_at, 0)`,
      ),
      // An alarm is due at its own time, or as soon as a later alarm of its terminal is due:
      // a terminal's alarms then go out together, in order, and a later one (a cancel) can
      // never reach the platform ahead of an earlier one whose copy was lost. [MQTT-3.3]
      dueAlarms: db.prepare<[number, number, number], EventRow>(
        `SELECT * FROM events e WHERE done = 0 AND rank = 0 AND (next_at <= ? OR EXISTS (
           SELECT 1 FROM events l WHERE l.done = 0 AND l.rank = 0 AND l.terminal = e.terminal AND l.seq > e.seq AND l.next_at <= ?))
         ORDER BY seq LIMIT ?`,
      ),
      dueBacklog: db.prepare<[number, number], EventRow>('SELECT * FROM events WHERE done = 0 AND rank > 0 AND next_at <= ? ORDER BY rank, seq LIMIT ?'),
      nextDue: db.prepare<[], { next: number | null }>('SELECT MIN(next_at) AS next FROM events WHERE done = 0'),
      deleteId: db.prepare<[string]>('DELETE FROM events WHERE id = ?'),
      sentAlarm: db.prepare<[number, number, string]>(
        `UPDATE events SET attempts = attempts + 1, next_at = ?, stage = CASE WHEN stage = 'stored' THEN 'sent' ELSE stage END,
           stage_at = CASE WHEN stage = 'stored' THEN ? ELSE stage_at END WHERE id = ? AND rank = 0 AND done = 0`,
      ),
      retryAt: db.prepare<[number, string]>('UPDATE events SET next_at = ? WHERE id = ?'),
      setStage: db.prepare<[Stage, number, number, string]>('UPDATE events SET stage = ?, stage_at = ?, done = MAX(done, ?) WHERE id = ?'),
      openAlerts: db.prepare<[], EventRow>("SELECT * FROM events WHERE rank = 0 AND stage != 'resolved' ORDER BY seq"),
      recentAlerts: db.prepare<[string, number], EventRow>('SELECT * FROM events WHERE rank = 0 AND terminal = ? AND (stage != \'resolved\' OR stage_at >= ?) ORDER BY seq'),
      awaitingReceipt: db.prepare<[number], EventRow>("SELECT * FROM events WHERE rank = 0 AND stage IN ('stored', 'sent') AND received_at <= ? ORDER BY seq"),
      purgeResolved: db.prepare<[number]>("DELETE FROM events WHERE rank = 0 AND stage = 'resolved' AND done = 1 AND stage_at < ?"),
      classCount: db.prepare<[number], { n: number; bytes: number | null }>('SELECT COUNT(*) AS n, SUM(bytes) AS bytes FROM events WHERE rank = ? AND done = 0'),
      lowerBytes: db.prepare<[], { bytes: number | null }>('SELECT SUM(bytes) AS bytes FROM events WHERE rank > 0 AND done = 0'),
      dropOldest: db.prepare<[number, number]>('DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE rank = ? AND done = 0 ORDER BY seq LIMIT ?)'),
      dropOlderThan: db.prepare<[number, number]>('DELETE FROM events WHERE rank = ? AND done = 0 AND received_at < ?'),
      oldestLower: db.prepare<[], { rank: number }>('SELECT rank FROM events WHERE rank > 0 AND done = 0 ORDER BY rank DESC, seq LIMIT 1'),
      putStatus: db.prepare<[string, string, number]>(
        'INSERT INTO statuses (terminal, body, version, dirty) VALUES (?, ?, ?, 1) ON CONFLICT(terminal) DO UPDATE SET body = excluded.body, version = excluded.version, dirty = 1',
      ),
      dirtyStatuses: db.prepare<[], { body: string; version: number }>('SELECT body, version FROM statuses WHERE dirty = 1 ORDER BY terminal'),
      statusPublished: db.prepare<[string, number]>('DELETE FROM statuses WHERE terminal = ? AND version = ?'),
      addBroadcast: db.prepare('INSERT OR IGNORE INTO broadcasts (id, text, urgency, expires, received_at) VALUES (@id, @text, @urgency, @expires, @receivedAt)'),
      activeBroadcasts: db.prepare<[number], StoredBroadcast>(
        'SELECT id, text, urgency, expires, received_at AS receivedAt FROM broadcasts WHERE expires IS NULL OR expires > ? ORDER BY id',
      ),
      dropExpiredBroadcasts: db.prepare<[number]>('DELETE FROM broadcasts WHERE expires IS NOT NULL AND expires <= ?'),
    }
  }

  // ------------------------------------------------------------------ settings, counters

  meta(key: string): string | undefined {
    return this.#stmt.getMeta.get(key)?.value
  }

  setMeta(key: string, value: string): void {
    this.#stmt.setMeta.run(key, value)
  }

  /** Increments an integer setting durably and returns the new value (boot and session counters). */
  bump(key: string): number {
    return this.#db.transaction(() => {
      const next = Number(this.meta(key) ?? '0') + 1
      this.setMeta(key, String(next))
      return next
    })()
  }

  /**
   * A number unique for ever under `key` (batch ids), like bump() but with one durable
   * write per `block` numbers: a restart skips what was left of the block.
   */
  next(key: string, block = 1000): number {
    let r = this.#reserved.get(key)
    if (r === undefined || r.next > r.last) {
      const last = this.#db.transaction(() => {
        const end = Number(this.meta(key) ?? '0') + block
        this.setMeta(key, String(end))
        return end
      })()
      r = { next: last - block + 1, last }
      this.#reserved.set(key, r)
    }
    return r.next++
  }

  count(name: string, by = 1): void {
    this.#stmt.count.run(name, by)
  }

  /** Counts if the disk lets it (a heartbeat is not worth a NAK when not even a counter fits). */
  #countBestEffort(name: string): void {
    try {
      this.count(name)
    } catch {
      // Nothing can be written (the disk is full): the caller's log line says what happened.
    }
  }

  /** Free space is below the reserve kept for alarms: lower classes are refused. */
  #belowReserve(): boolean {
    return this.#freeSpace() < this.limits.reserveMB * 1024 * 1024
  }

  counters(): Record<string, number> {
    return Object.fromEntries(this.#stmt.counters.all().map((r) => [r.name, r.value]))
  }

  // ------------------------------------------------------------------ events

  /**
   * Stores an event durably, once. A known id (or terminal and number) is a duplicate:
   * the stored row is returned and nothing changes. A lower-class event is refused when
   * the disk is within the reserve kept for alarms; an alarm is always attempted.
   */
  addEvent(e: NewEvent): AddResult {
    const existing = this.#stmt.byId.get(e.id) ?? (e.terminal !== null && e.number !== null ? this.#stmt.byTerminalNumber.get(e.terminal, e.number) : undefined)
    if (existing) return { kind: 'duplicate', event: fromRow(existing) }
    if (e.cls !== 'alarm' && this.#belowReserve()) {
      this.count(`dropped.${e.cls}.disk`)
      return { kind: 'refused', reason: 'disk-reserve' }
    }
    const body = JSON.stringify(e.body)
    // Lower classes need not survive a power cut the instant they arrive: NORMAL in WAL
    // mode is still safe from a crash, and saves an fsync per heartbeat on the SD card.
    if (e.cls !== 'alarm') this.#db.pragma('synchronous = NORMAL')
    try {
      this.#stmt.insert.run({
        id: e.id,
        terminal: e.terminal,
        address: e.address,
        number: e.number,
        rank: RANK[e.cls],
        body,
        bytes: Buffer.byteLength(body),
        received_at: e.receivedAt,
        boot: e.boot,
        offset: e.offset,
      })
    } finally {
      if (e.cls !== 'alarm') this.#db.pragma('synchronous = FULL')
    }
    return { kind: 'added', event: fromRow(this.#stmt.byId.get(e.id)!) }
  }

  get(id: string): StoredEvent | undefined {
    const r = this.#stmt.byId.get(id)
    return r && fromRow(r)
  }

  /**
   * Alarms due for (re)publication at `now`, oldest first, each with the earlier alarms of
   * its terminal that still wait for their receipt (so that they reach the platform in
   * order even when a copy was lost).
   */
  dueAlarms(now: number, limit = 100): StoredEvent[] {
    return this.#stmt.dueAlarms.all(now, now, limit).map(fromRow)
  }

  /** Lower-class events due at `now`: by class, then arrival; at most `limit` or `maxBytes` of bodies. */
  dueBacklog(now: number, limit: number, maxBytes = Infinity): StoredEvent[] {
    const out: StoredEvent[] = []
    let bytes = 0
    for (const r of this.#stmt.dueBacklog.all(now, limit)) {
      if (out.length > 0 && bytes + r.bytes > maxBytes) break
      bytes += r.bytes
      out.push(fromRow(r))
    }
    return out
  }

  /** The earliest next_at of anything not done, or null. */
  nextDue(): number | null {
    return this.#stmt.nextDue.get()?.next ?? null
  }

  /**
   * The broker has these (PUBACK). Lower classes are done and deleted. Alarms count an
   * attempt, move from stored to sent, and wait for the platform's receipt until
   * `retryAt`, when they are published again.
   */
  published(ids: readonly string[], now: number, alarmRetryAt: (attempts: number) => number): void {
    this.#db.transaction(() => {
      for (const id of ids) {
        const r = this.#stmt.byId.get(id)
        if (!r || r.done) continue
        if (r.rank > 0) this.#stmt.deleteId.run(id)
        else this.#stmt.sentAlarm.run(alarmRetryAt(r.attempts + 1), now, id)
      }
    })()
  }

  /** Makes an event due again at `at` (a publication failed). */
  retryAt(id: string, at: number): void {
    this.#stmt.retryAt.run(at, id)
  }

  /**
   * Moves an alert to `stage` if that is forward ([invariant 2]); a receipt or any later
   * stage also ends republication. Returns the updated event, or undefined if nothing
   * changed (unknown id, or not forward).
   */
  advance(id: string, stage: Stage, now: number): StoredEvent | undefined {
    const r = this.#stmt.byId.get(id)
    if (!r) return undefined
    if (!isForward(r.stage, stage)) {
      // A receipt for an alarm already past it still ends republication.
      if (stage !== 'unconfirmed' && r.done === 0 && STAGE_ORDER.indexOf(stage) >= STAGE_ORDER.indexOf('received')) this.#stmt.setStage.run(r.stage, r.stage_at, 1, id)
      return undefined
    }
    const done = stage !== 'unconfirmed' && STAGE_ORDER.indexOf(stage) >= STAGE_ORDER.indexOf('received') ? 1 : 0
    this.#stmt.setStage.run(stage, now, done, id)
    return fromRow(this.#stmt.byId.get(id)!)
  }

  /** Alarms not yet resolved, oldest first: shown again on the terminals after a reboot. */
  openAlerts(): StoredEvent[] {
    return this.#stmt.openAlerts.all().map(fromRow)
  }

  /** A terminal's alarms that are open or were resolved since `since` (for its display). */
  recentAlerts(terminal: string, since: number): StoredEvent[] {
    return this.#stmt.recentAlerts.all(terminal, since).map(fromRow)
  }

  /** Alarms still without a receipt that were stored at or before `storedBefore`. */
  awaitingReceipt(storedBefore: number): StoredEvent[] {
    return this.#stmt.awaitingReceipt.all(storedBefore).map(fromRow)
  }

  // ------------------------------------------------------------------ status coalescing

  /**
   * Folds a heartbeat into the terminal's status row. [MQTT-3.4] Below the disk reserve it
   * is refused and counted (`dropped.status.disk`), like every lower class: returns false.
   */
  putStatus(terminal: string, address: number, hb: Heartbeat, now: number): boolean {
    if (this.#belowReserve()) {
      this.#countBestEffort('dropped.status.disk')
      return false
    }
    const held = this.#statuses.get(terminal)
    const prev = held?.status
    const minutesWithoutMains =
      (prev?.minutesWithoutMains ?? 0) + (prev && !prev.latest.mains ? Math.max(0, now - prev.last) / 60_000 : 0)
    const lowest = [prev?.lowestBattery, hb.battery].filter((b): b is number => b !== undefined)
    const next: CoalescedStatus = {
      terminal,
      address,
      latest: hb,
      since: prev?.since ?? now,
      last: now,
      heartbeats: (prev?.heartbeats ?? 0) + 1,
      ...(lowest.length > 0 ? { lowestBattery: Math.min(...lowest) } : {}),
      minutesWithoutMains,
      version: (prev?.version ?? 0) + 1,
    }
    this.#statuses.set(terminal, { status: next, diskVersion: held?.diskVersion ?? null, unsavedSince: held?.unsavedSince ?? now })
    return true
  }

  /**
   * Writes the folds that have waited `olderThanMs` or more since their first unsaved
   * heartbeat, in one transaction (all of them with `olderThanMs` 0). Returns how many.
   */
  flushStatuses(now: number, olderThanMs: number): number {
    const due = [...this.#statuses.values()].filter((e) => e.unsavedSince !== null && now - e.unsavedSince >= olderThanMs)
    if (due.length === 0) return 0
    this.#db.pragma('synchronous = NORMAL')
    try {
      this.#db.transaction(() => {
        for (const e of due) this.#stmt.putStatus.run(e.status.terminal, JSON.stringify(e.status), e.status.version)
      })()
    } finally {
      this.#db.pragma('synchronous = FULL')
    }
    for (const e of due) {
      e.diskVersion = e.status.version
      e.unsavedSince = null
    }
    return due.length
  }

  /** Status folds since they were last published. */
  dirtyStatuses(): CoalescedStatus[] {
    return [...this.#statuses.values()].map((e) => e.status).sort((a, b) => (a.terminal < b.terminal ? -1 : a.terminal > b.terminal ? 1 : 0))
  }

  /** A status was published: the fold starts afresh, unless a newer heartbeat came meanwhile. */
  statusPublished(terminal: string, version: number): void {
    const held = this.#statuses.get(terminal)
    if (held === undefined || held.status.version !== version) return
    this.#statuses.delete(terminal)
    if (held.diskVersion !== null) this.#stmt.statusPublished.run(terminal, held.diskVersion)
  }

  // ------------------------------------------------------------------ bounds

  /**
   * Applies the limits to the lower classes: by age, then by count per class, then by
   * total size (dropping the lowest class first, oldest first). Alarms are never touched.
   * Returns what was dropped, by counter name; the counters are kept too.
   */
  enforceBounds(now: number): Record<string, number> {
    const dropped: Record<string, number> = {}
    const note = (name: string, n: number) => {
      if (n <= 0) return
      dropped[name] = (dropped[name] ?? 0) + n
      this.count(name, n)
    }
    const L = this.limits
    this.#db.transaction(() => {
      note('dropped.request.age', this.#stmt.dropOlderThan.run(RANK.request, now - L.maxRequestAgeDays * DAY_MS).changes)
      note('dropped.trouble.age', this.#stmt.dropOlderThan.run(RANK.trouble, now - L.maxTroubleAgeDays * DAY_MS).changes)
      for (const [cls, max] of [['request', L.maxRequestEvents], ['trouble', L.maxTroubleEvents]] as const) {
        const over = this.#stmt.classCount.get(RANK[cls])!.n - max
        if (over > 0) note(`dropped.${cls}.count`, this.#stmt.dropOldest.run(RANK[cls], over).changes)
      }
      const maxBytes = L.maxStoreMB * 1024 * 1024
      while ((this.#stmt.lowerBytes.get()!.bytes ?? 0) > maxBytes) {
        const victim = this.#stmt.oldestLower.get()
        if (!victim) break
        note(`dropped.${CLASSES[victim.rank]}.size`, this.#stmt.dropOldest.run(victim.rank, 100).changes)
      }
      this.#stmt.purgeResolved.run(now - RESOLVED_KEEP_MS)
      this.#stmt.dropExpiredBroadcasts.run(now)
    })()
    return dropped
  }

  /** Events waiting to be published, by class, with their body bytes. */
  backlog(): Record<PriorityClass, { count: number; bytes: number }> {
    return Object.fromEntries(
      CLASSES.map((c) => {
        const r = this.#stmt.classCount.get(RANK[c])!
        return [c, { count: r.n, bytes: r.bytes ?? 0 }]
      }),
    ) as Record<PriorityClass, { count: number; bytes: number }>
  }

  // ------------------------------------------------------------------ broadcasts

  addBroadcast(b: StoredBroadcast): void {
    this.#stmt.addBroadcast.run(b)
  }

  activeBroadcasts(now: number): StoredBroadcast[] {
    return this.#stmt.activeBroadcasts.all(now)
  }

  close(): void {
    if (!this.#db.open) return
    this.flushStatuses(Infinity, 0)
    this.#db.close()
  }
}

export function isForward(from: Stage, to: Stage): boolean {
  if (to === 'unconfirmed') return from === 'stored' || from === 'sent'
  if (from === 'unconfirmed') return STAGE_ORDER.indexOf(to) >= STAGE_ORDER.indexOf('received')
  return STAGE_ORDER.indexOf(to) > STAGE_ORDER.indexOf(from)
}
