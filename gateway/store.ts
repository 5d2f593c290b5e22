/**
 * The gateway's durable store: every event from the terminals, the alert lifecycle,
 * what each terminal's event numbers are, coalesced status, broadcasts and who has read
 * them, counters and small settings, in one SQLite file (WAL).
 *
 * Theory of operation
 * - An event is committed before the terminal hears "got it": the gateway calls
 *   addEvent() and only then accepts the frame on the serial link. Every event is written
 *   with synchronous=FULL, so that what a terminal was told is stored survives a power cut,
 *   not only a crash: the terminal forgets an event at its ACK [LINK-4.3]. Only what no
 *   terminal was promised is written with NORMAL (safe from a crash, fewer fsyncs on an SD
 *   card): status folds, and the deletion of items the broker has.
 * - Events are unique by id. A terminal event's id is `<terminal>:<number>`, or
 *   `<terminal>@<epoch>:<number>` once the gateway has seen the terminal's numbers start
 *   again (a wiped memory, a new unit under the same printed id): each such reset opens a
 *   new epoch, so a new press can never be taken for an old one [MQTT-3.2].
 * - Per terminal, the store keeps the current epoch, the boot counter of its last HELLO,
 *   and a replay window (replay-window.ts) of the numbers taken in that epoch: a replay is
 *   recognised for ever, in bounded space, even after its row is gone [LINK-5.5].
 * - Priority classes, highest first: alarm (rank 0), request, trouble, status (rank 3).
 *   `seq` (arrival order) keeps per-terminal order within a class.
 * - Alarms and requests are cases: their rows stay for their lifecycle (stage) until
 *   resolved (and a day after, for the terminal's display). Trouble and status rows are
 *   deleted once the broker has them. Lower classes are bounded by count, age and total
 *   size; every drop is counted under a name such as `dropped.trouble.age`, and the
 *   counters go out in the next status.
 * - Periodic status is one row per terminal, folded in place (latest values, lowest
 *   battery, minutes without mains), not one row per heartbeat.
 * - One gateway per store: the file is opened with an exclusive lock, held until close.
 *   A store is created whole (under another name, then renamed), so a file that is empty
 *   or not ours is refused with a clear error rather than taken for a fresh start.
 *
 * Invariants
 * 1. `done = 1` means nothing more is to be published for the row: a trouble or status
 *    row is deleted at that moment; an alarm or request row stays for its lifecycle.
 * 2. `stage` moves only as protocol/lifecycle.ts allows (forward; `unconfirmed` from
 *    stored or sent, left for received or later).
 * 3. A terminal event's row carries the epoch it was taken in; its INDICATEs go to the
 *    terminal only while that epoch is the terminal's current one.
 */

import Database from 'better-sqlite3'
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, statSync, statfsSync } from 'node:fs'
import { dirname } from 'node:path'
import { endsRepublication, isForward } from '../protocol/lifecycle.js'
import type { Stage } from '../protocol/messages.js'
import { CLASSES, type PriorityClass } from '../protocol/mqtt.js'
import { DEFAULT_LIMITS, type Limits } from './limits.js'
import { ReplayWindow } from './replay-window.js'

export { DEFAULT_LIMITS, type Limits } from './limits.js'

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
  /** A terminal event: the numbering epoch it belongs to ('' for the first). */
  epoch?: string
  /** A terminal event: what it says (kind, user, boot, uptime, time), to tell a replay from a new event under an old number. */
  fingerprint?: string
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
  epoch: string
  /** The operator's text of the current stage (who acknowledged, the unit coming, how it ended), whole. */
  stageText: string | null
  /** When help is expected (gateway clock, ms), from a `dispatched` with an eta. */
  stageEtaAt: number | null
}

/** What the gateway remembers of a terminal's numbering. */
export interface TerminalNumbering {
  terminal: string
  /** '' until the first reset, then the tag of the current numbering (`<gateway>.<n>`). */
  epoch: string
  /** The boot counter of its latest HELLO, or null before the first. */
  boot: number | null
  /** The highest event number taken in the current epoch (0: none). */
  high: number
}

/** Why the gateway decided that a terminal's numbers started again. */
export type ResetReason = 'boot-backwards' | 'last-event-backwards' | 'event-differs'

export interface Reset {
  reason: ResetReason
  epoch: string
  previousEpoch: string
  previousBoot: number | null
  previousNumber: number
}

/** What an EVENT's (terminal, number) is to the store. */
export type Recognition =
  | { kind: 'new' }
  /** Taken before: a retransmission, or a replay after a power cut. The row, if it is still kept. */
  | { kind: 'replay'; event: StoredEvent | undefined }
  /** A number taken before, but the event says something else: the terminal's numbers started again. */
  | { kind: 'differs'; event: StoredEvent }

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
  /** 0 for the first text; +1 at each replacement, and at a withdrawal. */
  revision: number
  withdrawn: boolean
}

/** What a broadcast command did to the stored broadcast. */
export type BroadcastChange = 'added' | 'replaced' | 'unchanged'

/** One terminal's copy of a broadcast: the revision sent to it, and whether its user read it. */
export interface BroadcastDelivery {
  broadcast: number
  terminal: string
  revision: number
  sentAt: number
  readRevision: number | null
  readAt: number | null
}

export type AddResult =
  | { kind: 'added'; event: StoredEvent }
  | { kind: 'duplicate'; event: StoredEvent }
  /** An event the gateway made itself, refused because the disk is nearly full; counted. Never a terminal's. */
  | { kind: 'refused'; reason: 'disk-reserve' }

export type StoreErrorCode = 'STORE_EMPTY' | 'STORE_FOREIGN' | 'STORE_NEWER' | 'STORE_LOCKED' | 'STORE_OPEN_FAILED'

/** The store cannot be opened; `message` says what to do. */
export class StoreError extends Error {
  readonly code: StoreErrorCode
  constructor(code: StoreErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'StoreError'
    this.code = code
  }
}

const RANK: Record<PriorityClass, number> = { alarm: 0, request: 1, trouble: 2, status: 3 }
/** Rows of these ranks are cases, kept for their lifecycle after publication. */
const LAST_CASE_RANK = RANK.request
const DAY_MS = 86_400_000
/** Resolved cases are kept this long for the terminal's display after a reboot, then purged. */
export const RESOLVED_KEEP_MS = DAY_MS
/** "STLK": marks a SQLite file as a Steppelink store. */
export const APPLICATION_ID = 0x53544c4b
/** The layout of this version. 1 was the layout before versions were written down. */
export const SCHEMA_VERSION = 2

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
  done INTEGER NOT NULL DEFAULT 0,
  epoch TEXT NOT NULL DEFAULT '',
  fingerprint TEXT,
  stage_text TEXT,
  stage_eta_at INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS events_terminal_epoch_number ON events(terminal, epoch, number) WHERE terminal IS NOT NULL AND number IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_due ON events(done, rank, next_at, seq);
CREATE TABLE IF NOT EXISTS terminals (
  terminal TEXT PRIMARY KEY,
  epoch TEXT NOT NULL,
  boot INTEGER,
  window TEXT NOT NULL
);
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
  received_at INTEGER NOT NULL,
  revision INTEGER NOT NULL DEFAULT 0,
  withdrawn INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS broadcast_deliveries (
  broadcast INTEGER NOT NULL,
  terminal TEXT NOT NULL,
  revision INTEGER NOT NULL,
  sent_at INTEGER NOT NULL,
  read_revision INTEGER,
  read_at INTEGER,
  PRIMARY KEY (broadcast, terminal)
);
`

/**
 * From the layout before versions were written down (version 1, issue 3's store): terminal
 * numbering epochs, the operator's text with the stage, broadcast revisions and deliveries.
 * The new tables come from SCHEMA.
 */
const MIGRATE_FROM_1 = `
ALTER TABLE events ADD COLUMN epoch TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN fingerprint TEXT;
ALTER TABLE events ADD COLUMN stage_text TEXT;
ALTER TABLE events ADD COLUMN stage_eta_at INTEGER;
DROP INDEX IF EXISTS events_terminal_number;
ALTER TABLE broadcasts ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
ALTER TABLE broadcasts ADD COLUMN withdrawn INTEGER NOT NULL DEFAULT 0;
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
  epoch: string
  fingerprint: string | null
  stage_text: string | null
  stage_eta_at: number | null
}

interface TerminalRow {
  terminal: string
  epoch: string
  boot: number | null
  window: string
}

interface BroadcastRow {
  id: number
  text: string
  urgency: 'info' | 'warning' | 'urgent'
  expires: number | null
  received_at: number
  revision: number
  withdrawn: number
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
    epoch: r.epoch,
    ...(r.fingerprint !== null ? { fingerprint: r.fingerprint } : {}),
    stageText: r.stage_text,
    stageEtaAt: r.stage_eta_at,
  }
}

function broadcastFromRow(r: BroadcastRow): StoredBroadcast {
  return { id: r.id, text: r.text, urgency: r.urgency, expires: r.expires, receivedAt: r.received_at, revision: r.revision, withdrawn: r.withdrawn === 1 }
}

/** The id of a terminal event: `<terminal>:<number>`, or with the epoch after a reset. [MQTT-3.2] */
export function terminalEventId(terminal: string, epoch: string, number: number): string {
  return epoch === '' ? `${terminal}:${number}` : `${terminal}@${epoch}:${number}`
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

/** How the store's commits reached the disk since it was opened (the SD card's wear, and the tests' proof). */
export interface WriteStats {
  /** Commits with synchronous=FULL: on the medium before the call returned. */
  durable: number
  /** Commits with synchronous=NORMAL: safe from a crash, not from a power cut. */
  lazy: number
  /** How the last event was committed, or null before the first. */
  lastEvent: 'durable' | 'lazy' | null
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
  readonly #writes: WriteStats = { durable: 0, lazy: 0, lastEvent: null }
  #durable = true

  constructor(options: StoreOptions) {
    this.path = options.path
    if (options.path !== ':memory:') {
      mkdirSync(dirname(options.path), { recursive: true })
      if (!existsSync(options.path)) create(options.path)
      else refuseEmpty(options.path)
    }
    try {
      this.#db = new Database(options.path, { timeout: 0 })
      // Exclusive before the first access: the lock is taken at the first write below and
      // held until close, so a second gateway on the same directory cannot open it; and
      // WAL then keeps its index in memory, not in a -shm file on the SD card.
      this.#db.pragma('locking_mode = EXCLUSIVE')
      this.#db.pragma('journal_mode = WAL')
      this.#db.pragma('synchronous = FULL')
      // A checkpoint every ~1000 pages keeps the WAL small on a small SD card.
      this.#db.pragma('wal_autocheckpoint = 1000')
    } catch (err) {
      throw openError(options.path, err)
    }
    try {
      this.#migrate(options.path)
    } catch (err) {
      this.#db.close()
      throw err instanceof StoreError ? err : openError(options.path, err)
    }
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

  /** Brings a store of an older layout up to this one, once; refuses a file that is not a store of ours. */
  #migrate(path: string): void {
    const db = this.#db
    const appId = db.pragma('application_id', { simple: true }) as number
    const version = db.pragma('user_version', { simple: true }) as number
    const tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]).map((t) => t.name)
    if (appId === 0 && tables.length === 0) {
      // A file is laid out whole by create(); a file without tables is a store lost.
      if (path !== ':memory:') refuseEmpty(path, 'holds no tables')
      db.transaction(() => {
        db.exec(SCHEMA)
        db.pragma(`application_id = ${APPLICATION_ID}`)
        db.pragma(`user_version = ${SCHEMA_VERSION}`)
      })()
      return
    }
    const ours = appId === APPLICATION_ID || (appId === 0 && version === 0 && tables.includes('events') && tables.includes('meta'))
    if (!ours) {
      throw new StoreError(
        'STORE_FOREIGN',
        `${path} is not a Steppelink store (SQLite application id ${appId}, tables ${tables.join(', ') || 'none'}): --data points at another program's files. Give the gateway its own data directory.`,
      )
    }
    const from = appId === 0 ? 1 : version
    if (from > SCHEMA_VERSION) {
      throw new StoreError('STORE_NEWER', `${path} was written by a newer Steppelink (store layout ${from}; this one knows ${SCHEMA_VERSION}): run the newer version, or restore the older store it replaced.`)
    }
    db.transaction(() => {
      if (from < 2) db.exec(MIGRATE_FROM_1)
      db.exec(SCHEMA)
      db.pragma(`application_id = ${APPLICATION_ID}`)
      db.pragma(`user_version = ${SCHEMA_VERSION}`)
      if (from < 2) {
        // The replay windows start from the events still stored: a replay of one of them
        // is recognised; what was published and deleted before could not be, before either.
        const rows = db.prepare('SELECT terminal, number FROM events WHERE terminal IS NOT NULL AND number IS NOT NULL ORDER BY number').all() as { terminal: string; number: number }[]
        const windows = new Map<string, ReplayWindow>()
        for (const r of rows) {
          const w = windows.get(r.terminal) ?? ReplayWindow.empty()
          w.add(r.number)
          windows.set(r.terminal, w)
        }
        const put = db.prepare("INSERT OR IGNORE INTO terminals (terminal, epoch, boot, window) VALUES (?, '', NULL, ?)")
        for (const [t, w] of windows) put.run(t, JSON.stringify(w))
      }
    })()
  }

  private prepareAll() {
    const db = this.#db
    return {
      getMeta: db.prepare<[string], { value: string }>('SELECT value FROM meta WHERE key = ?'),
      setMeta: db.prepare<[string, string]>('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value'),
      count: db.prepare<[string, number]>('INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = value + excluded.value'),
      counters: db.prepare<[], { name: string; value: number }>('SELECT name, value FROM counters ORDER BY name'),
      byId: db.prepare<[string], EventRow>('SELECT * FROM events WHERE id = ?'),
      byTerminalNumber: db.prepare<[string, string, number], EventRow>('SELECT * FROM events WHERE terminal = ? AND epoch = ? AND number = ?'),
      insert: db.prepare(
        `INSERT INTO events (id, terminal, address, number, rank, body, bytes, received_at, boot, offset, stage, stage_at, next_at, epoch, fingerprint)
         VALUES (@id, @terminal, @address, @number, @rank, @body, @bytes, @received_at, @boot, @offset, 'stored', @received_at, 0, @epoch, @fingerprint)`,
      ),
      // Each alarm at its own time: a new alarm does not bring the others with it (that
      // cost N² publications for N quick presses). [MQTT-4.4]
      dueAlarms: db.prepare<[number, number], EventRow>('SELECT * FROM events WHERE done = 0 AND rank = 0 AND next_at <= ? ORDER BY seq LIMIT ?'),
      alarmsDueNow: db.prepare('UPDATE events SET next_at = 0 WHERE done = 0 AND rank = 0'),
      dueBacklog: db.prepare<[number, number], EventRow>('SELECT * FROM events WHERE done = 0 AND rank > 0 AND next_at <= ? ORDER BY rank, seq LIMIT ?'),
      nextDue: db.prepare<[], { next: number | null }>('SELECT MIN(next_at) AS next FROM events WHERE done = 0'),
      deleteId: db.prepare<[string]>('DELETE FROM events WHERE id = ?'),
      sentAlarm: db.prepare<[number, number, string]>(
        `UPDATE events SET attempts = attempts + 1, next_at = ?, stage = CASE WHEN stage = 'stored' THEN 'sent' ELSE stage END,
           stage_at = CASE WHEN stage = 'stored' THEN ? ELSE stage_at END WHERE id = ? AND rank = 0 AND done = 0`,
      ),
      sentCase: db.prepare<[number, string]>(
        `UPDATE events SET attempts = attempts + 1, done = 1, stage = CASE WHEN stage = 'stored' THEN 'sent' ELSE stage END,
           stage_at = CASE WHEN stage = 'stored' THEN ? ELSE stage_at END WHERE id = ? AND done = 0`,
      ),
      retryAt: db.prepare<[number, string]>('UPDATE events SET next_at = ? WHERE id = ?'),
      setStage: db.prepare<[Stage, number, number, string | null, number | null, string]>(
        'UPDATE events SET stage = ?, stage_at = ?, done = MAX(done, ?), stage_text = ?, stage_eta_at = ? WHERE id = ?',
      ),
      endPublication: db.prepare<[string]>('UPDATE events SET done = 1 WHERE id = ?'),
      openAlerts: db.prepare<[], EventRow>(`SELECT * FROM events WHERE rank <= ${LAST_CASE_RANK} AND stage != 'resolved' ORDER BY seq`),
      recentAlerts: db.prepare<[string, string, number], EventRow>(
        `SELECT * FROM events WHERE rank <= ${LAST_CASE_RANK} AND terminal = ? AND epoch = ? AND (stage != 'resolved' OR stage_at >= ?) ORDER BY seq`,
      ),
      awaitingReceipt: db.prepare<[number], EventRow>("SELECT * FROM events WHERE rank = 0 AND stage IN ('stored', 'sent') AND received_at <= ? ORDER BY seq"),
      unreceipted: db.prepare<[], { n: number }>('SELECT COUNT(*) AS n FROM events WHERE rank = 0 AND done = 0'),
      latestOpenAlarm: db.prepare<[string, string, number], EventRow>(
        `SELECT * FROM events WHERE rank = 0 AND terminal = ? AND epoch = ? AND number < ? AND stage != 'resolved'
           AND json_extract(body, '$.kind') != 'cancel' ORDER BY number DESC LIMIT 1`,
      ),
      purgeResolved: db.prepare<[number]>(`DELETE FROM events WHERE rank <= ${LAST_CASE_RANK} AND stage = 'resolved' AND done = 1 AND stage_at < ?`),
      purgeOldRequests: db.prepare<[number]>(`DELETE FROM events WHERE rank = ${RANK.request} AND done = 1 AND stage != 'resolved' AND stage_at < ?`),
      classCount: db.prepare<[number], { n: number; bytes: number | null }>('SELECT COUNT(*) AS n, SUM(bytes) AS bytes FROM events WHERE rank = ? AND done = 0'),
      lowerBytes: db.prepare<[], { bytes: number | null }>('SELECT SUM(bytes) AS bytes FROM events WHERE rank > 0 AND done = 0'),
      dropOldest: db.prepare<[number, number]>('DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE rank = ? AND done = 0 ORDER BY seq LIMIT ?)'),
      dropOlderThan: db.prepare<[number, number]>('DELETE FROM events WHERE rank = ? AND done = 0 AND received_at < ?'),
      oldestLower: db.prepare<[], { rank: number }>('SELECT rank FROM events WHERE rank > 0 AND done = 0 ORDER BY rank DESC, seq LIMIT 1'),
      getTerminal: db.prepare<[string], TerminalRow>('SELECT * FROM terminals WHERE terminal = ?'),
      putTerminal: db.prepare<[string, string, number | null, string]>(
        'INSERT INTO terminals (terminal, epoch, boot, window) VALUES (?, ?, ?, ?) ON CONFLICT(terminal) DO UPDATE SET epoch = excluded.epoch, boot = excluded.boot, window = excluded.window',
      ),
      putStatus: db.prepare<[string, string, number]>(
        'INSERT INTO statuses (terminal, body, version, dirty) VALUES (?, ?, ?, 1) ON CONFLICT(terminal) DO UPDATE SET body = excluded.body, version = excluded.version, dirty = 1',
      ),
      dirtyStatuses: db.prepare<[], { body: string; version: number }>('SELECT body, version FROM statuses WHERE dirty = 1 ORDER BY terminal'),
      statusPublished: db.prepare<[string, number]>('DELETE FROM statuses WHERE terminal = ? AND version = ?'),
      getBroadcast: db.prepare<[number], BroadcastRow>('SELECT * FROM broadcasts WHERE id = ?'),
      putBroadcast: db.prepare(
        `INSERT INTO broadcasts (id, text, urgency, expires, received_at, revision, withdrawn) VALUES (@id, @text, @urgency, @expires, @receivedAt, @revision, @withdrawn)
         ON CONFLICT(id) DO UPDATE SET text = excluded.text, urgency = excluded.urgency, expires = excluded.expires, received_at = excluded.received_at,
           revision = excluded.revision, withdrawn = excluded.withdrawn`,
      ),
      broadcasts: db.prepare<[], BroadcastRow>('SELECT * FROM broadcasts ORDER BY id'),
      dropExpiredBroadcasts: db.prepare<[number]>('DELETE FROM broadcasts WHERE expires IS NOT NULL AND expires <= ?'),
      dropOrphanDeliveries: db.prepare('DELETE FROM broadcast_deliveries WHERE broadcast NOT IN (SELECT id FROM broadcasts)'),
      getDelivery: db.prepare<[number, string], { broadcast: number; terminal: string; revision: number; sent_at: number; read_revision: number | null; read_at: number | null }>(
        'SELECT * FROM broadcast_deliveries WHERE broadcast = ? AND terminal = ?',
      ),
      deliveries: db.prepare<[number], { broadcast: number; terminal: string; revision: number; sent_at: number; read_revision: number | null; read_at: number | null }>(
        'SELECT * FROM broadcast_deliveries WHERE broadcast = ? ORDER BY terminal',
      ),
      putDelivery: db.prepare<[number, string, number, number]>(
        `INSERT INTO broadcast_deliveries (broadcast, terminal, revision, sent_at) VALUES (?, ?, ?, ?)
         ON CONFLICT(broadcast, terminal) DO UPDATE SET revision = excluded.revision, sent_at = excluded.sent_at`,
      ),
      readDelivery: db.prepare<[number, number, number, string]>('UPDATE broadcast_deliveries SET read_revision = ?, read_at = ? WHERE broadcast = ? AND terminal = ?'),
    }
  }

  /**
   * Runs `fn` as one transaction, committed with synchronous=FULL (`durable`) or NORMAL.
   * Everything a terminal was told is stored goes through here as durable.
   */
  #write<T>(durable: boolean, fn: () => T): T {
    if (durable !== this.#durable) {
      this.#db.pragma(durable ? 'synchronous = FULL' : 'synchronous = NORMAL')
      this.#durable = durable
    }
    const out = this.#db.transaction(fn)()
    if (durable) this.#writes.durable++
    else this.#writes.lazy++
    return out
  }

  /** How commits reached the disk since the store was opened. */
  writes(): Readonly<WriteStats> {
    return { ...this.#writes }
  }

  // ------------------------------------------------------------------ settings, counters

  meta(key: string): string | undefined {
    return this.#stmt.getMeta.get(key)?.value
  }

  setMeta(key: string, value: string): void {
    this.#write(true, () => this.#stmt.setMeta.run(key, value))
  }

  /** Increments an integer setting durably and returns the new value (boot and session counters). */
  bump(key: string): number {
    return this.#write(true, () => {
      const next = Number(this.meta(key) ?? '0') + 1
      this.#stmt.setMeta.run(key, String(next))
      return next
    })
  }

  /**
   * A number unique for ever under `key` (batch ids), like bump() but with one durable
   * write per `block` numbers: a restart skips what was left of the block.
   */
  next(key: string, block = 1000): number {
    let r = this.#reserved.get(key)
    if (r === undefined || r.next > r.last) {
      const last = this.#write(true, () => {
        const end = Number(this.meta(key) ?? '0') + block
        this.#stmt.setMeta.run(key, String(end))
        return end
      })
      r = { next: last - block + 1, last }
      this.#reserved.set(key, r)
    }
    return r.next++
  }

  count(name: string, by = 1): void {
    this.#write(true, () => this.#stmt.count.run(name, by))
  }

  /** Counts if the disk lets it (a heartbeat is not worth a NAK when not even a counter fits). */
  #countBestEffort(name: string): void {
    try {
      this.count(name)
    } catch {
      // Nothing can be written (the disk is full): the caller's log line says what happened.
    }
  }

  /** Free space is below the reserve kept for alarms: what the gateway makes itself is refused. */
  belowReserve(): boolean {
    return this.#freeSpace() < this.limits.reserveMB * 1024 * 1024
  }

  counters(): Record<string, number> {
    return Object.fromEntries(this.#stmt.counters.all().map((r) => [r.name, r.value]))
  }

  // ------------------------------------------------------------------ terminals' numbering

  /** What the store remembers of a terminal's numbering, or undefined for one never seen. */
  numbering(terminal: string): TerminalNumbering | undefined {
    const r = this.#stmt.getTerminal.get(terminal)
    if (!r) return undefined
    return { terminal, epoch: r.epoch, boot: r.boot, high: ReplayWindow.parse(JSON.parse(r.window) as never).high }
  }

  /**
   * A terminal said HELLO with `boot` and `lastEvent`. A boot counter that went backwards,
   * or a lastEvent below a number already taken, means its non-volatile memory was lost or
   * another unit took its id: its numbers start again, so a new epoch begins, named by
   * `tag(n)` for the store's n-th reset, and the reset is returned. [LINK-5.5]
   * Otherwise the boot counter is remembered (a write only when it changed) and null returned.
   */
  hello(terminal: string, boot: number, lastEvent: number, tag: (n: number) => string): Reset | null {
    const known = this.numbering(terminal)
    if (known === undefined || known.boot === null || (boot >= known.boot && lastEvent >= known.high)) {
      if (known?.boot !== boot) {
        const r = this.#stmt.getTerminal.get(terminal)
        this.#write(true, () => this.#stmt.putTerminal.run(terminal, r?.epoch ?? '', boot, r?.window ?? JSON.stringify(ReplayWindow.empty())))
      }
      return null
    }
    return this.resetNumbering(terminal, boot < known.boot ? 'boot-backwards' : 'last-event-backwards', boot, tag)
  }

  /** Starts a new epoch of a terminal's numbering (see hello()); durable. */
  resetNumbering(terminal: string, reason: ResetReason, boot: number | null, tag: (n: number) => string): Reset {
    return this.#write(true, () => {
      const known = this.numbering(terminal)
      const n = Number(this.meta('terminal-resets') ?? '0') + 1
      this.#stmt.setMeta.run('terminal-resets', String(n))
      const epoch = tag(n)
      this.#stmt.putTerminal.run(terminal, epoch, boot, JSON.stringify(ReplayWindow.empty()))
      return { reason, epoch, previousEpoch: known?.epoch ?? '', previousBoot: known?.boot ?? null, previousNumber: known?.high ?? 0 }
    })
  }

  /**
   * Whether event `number` of `terminal`, saying `fingerprint`, was taken before in the
   * terminal's current epoch. A number taken before whose stored event says something else
   * (another kind, boot or uptime) is `differs`: the numbers started again without a HELLO
   * that showed it.
   */
  recognise(terminal: string, number: number, fingerprint: string): Recognition {
    const r = this.#stmt.getTerminal.get(terminal)
    const epoch = r?.epoch ?? ''
    const row = this.#stmt.byTerminalNumber.get(terminal, epoch, number)
    if (row) {
      const event = fromRow(row)
      return row.fingerprint !== null && row.fingerprint !== fingerprint ? { kind: 'differs', event } : { kind: 'replay', event }
    }
    const window = ReplayWindow.parse(r ? (JSON.parse(r.window) as never) : null)
    return window.has(number) ? { kind: 'replay', event: undefined } : { kind: 'new' }
  }

  // ------------------------------------------------------------------ events

  /**
   * Stores an event durably, once: a known id is a duplicate, the stored row is returned
   * and nothing changes. A terminal event also enters its terminal's replay window, in the
   * same transaction. An event the gateway makes itself is refused when the disk is within
   * the reserve kept for alarms; a terminal's event never is (the terminal was or will be
   * told it is stored: it must be, or the write fails and the terminal keeps it).
   */
  addEvent(e: NewEvent): AddResult {
    const fromTerminal = e.terminal !== null && e.number !== null
    const existing = this.#stmt.byId.get(e.id) ?? (fromTerminal ? this.#stmt.byTerminalNumber.get(e.terminal!, e.epoch ?? '', e.number!) : undefined)
    if (existing) return { kind: 'duplicate', event: fromRow(existing) }
    if (!fromTerminal && e.cls !== 'alarm' && this.belowReserve()) {
      this.count(`dropped.${e.cls}.disk`)
      return { kind: 'refused', reason: 'disk-reserve' }
    }
    const body = JSON.stringify(e.body)
    this.#write(true, () => {
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
        epoch: e.epoch ?? '',
        fingerprint: e.fingerprint ?? null,
      })
      if (fromTerminal) {
        const r = this.#stmt.getTerminal.get(e.terminal!)
        const window = ReplayWindow.parse(r ? (JSON.parse(r.window) as never) : null)
        window.add(e.number!)
        this.#stmt.putTerminal.run(e.terminal!, r?.epoch ?? e.epoch ?? '', r?.boot ?? null, JSON.stringify(window))
      }
    })
    this.#writes.lastEvent = 'durable'
    return { kind: 'added', event: fromRow(this.#stmt.byId.get(e.id)!) }
  }

  get(id: string): StoredEvent | undefined {
    const r = this.#stmt.byId.get(id)
    return r && fromRow(r)
  }

  /** The terminal's latest alarm before `number`, in its epoch, that is not resolved and not itself a cancel: what a cancel cancels. [LINK-8.3] */
  latestOpenAlarm(terminal: string, epoch: string, number: number): StoredEvent | undefined {
    const r = this.#stmt.latestOpenAlarm.get(terminal, epoch, number)
    return r && fromRow(r)
  }

  /** Alarms due for (re)publication at `now`, oldest first. */
  dueAlarms(now: number, limit = 100): StoredEvent[] {
    return this.#stmt.dueAlarms.all(now, limit).map(fromRow)
  }

  /**
   * Every alarm still without a receipt becomes due now: after a (re)connection each goes
   * out at once, whatever its schedule, because a receipt may have been lost with the
   * connection. [MQTT-4.4]
   */
  alarmsDueNow(): void {
    this.#write(true, () => this.#stmt.alarmsDueNow.run())
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
   * The broker has these (PUBACK). Trouble and status are done and deleted (that may be
   * lost in a power cut: it is then published once more, which the platform's
   * deduplication absorbs). A request is done with publishing and stays as a case, `sent`.
   * Alarms count an attempt, move from stored to sent, and wait for the platform's
   * receipt until `retryAt`, when they are published again.
   */
  published(ids: readonly string[], now: number, alarmRetryAt: (attempts: number) => number): void {
    const rows = ids.map((id) => this.#stmt.byId.get(id)).filter((r): r is EventRow => r !== undefined && r.done === 0)
    if (rows.length === 0) return
    // Durable if a case changes stage (what its terminal is shown must survive); a
    // deletion alone need not be.
    const durable = rows.some((r) => r.rank <= LAST_CASE_RANK)
    this.#write(durable, () => {
      for (const r of rows) {
        if (r.rank === 0) this.#stmt.sentAlarm.run(alarmRetryAt(r.attempts + 1), now, r.id)
        else if (r.rank <= LAST_CASE_RANK) this.#stmt.sentCase.run(now, r.id)
        else this.#stmt.deleteId.run(r.id)
      }
    })
  }

  /** Makes an event due again at `at` (a publication failed). */
  retryAt(id: string, at: number): void {
    this.#write(true, () => this.#stmt.retryAt.run(at, id))
  }

  /**
   * Moves a case to `stage` if that is forward ([invariant 2]), with the operator's text and
   * when help is expected (gateway clock, ms); a receipt or any later stage also ends
   * republication. Returns the updated event, or undefined if nothing changed (unknown id,
   * or not forward).
   */
  advance(id: string, stage: Stage, now: number, detail: { text?: string; etaAt?: number } = {}): StoredEvent | undefined {
    const r = this.#stmt.byId.get(id)
    if (!r) return undefined
    const ends = endsRepublication(stage)
    if (!isForward(r.stage, stage)) {
      // A receipt for an alarm already past it still ends republication.
      if (ends && r.done === 0) this.#write(true, () => this.#stmt.endPublication.run(id))
      return undefined
    }
    this.#write(true, () => this.#stmt.setStage.run(stage, now, ends ? 1 : 0, detail.text ?? null, detail.etaAt ?? null, id))
    return fromRow(this.#stmt.byId.get(id)!)
  }

  /** Alarms and requests not yet resolved, oldest first. */
  openAlerts(): StoredEvent[] {
    return this.#stmt.openAlerts.all().map(fromRow)
  }

  /** A terminal's alarms and requests of its epoch that are open or were resolved since `since` (for its display). */
  recentAlerts(terminal: string, epoch: string, since: number): StoredEvent[] {
    return this.#stmt.recentAlerts.all(terminal, epoch, since).map(fromRow)
  }

  /** Alarms still without a receipt (stored or sent, not yet unconfirmed) that were stored at or before `storedBefore`. */
  awaitingReceipt(storedBefore: number): StoredEvent[] {
    return this.#stmt.awaitingReceipt.all(storedBefore).map(fromRow)
  }

  /** How many alarms still wait for the platform's receipt, unconfirmed ones included. */
  unreceiptedAlarms(): number {
    return this.#stmt.unreceipted.get()!.n
  }

  // ------------------------------------------------------------------ status coalescing

  /**
   * Folds a heartbeat into the terminal's status row. [MQTT-3.4] Below the disk reserve it
   * is refused and counted (`dropped.status.disk`), like every lower class: returns false.
   */
  putStatus(terminal: string, address: number, hb: Heartbeat, now: number): boolean {
    if (this.belowReserve()) {
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
    this.#write(false, () => {
      for (const e of due) this.#stmt.putStatus.run(e.status.terminal, JSON.stringify(e.status), e.status.version)
    })
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
    if (held.diskVersion !== null) this.#write(false, () => this.#stmt.statusPublished.run(terminal, held.diskVersion!))
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
      this.#stmt.count.run(name, n)
    }
    const L = this.limits
    this.#write(true, () => {
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
      // A request the platform has (sent) but never answered is not kept for ever: the
      // platform holds it; the gateway forgets the case after the request age limit.
      note('forgotten.request.age', this.#stmt.purgeOldRequests.run(now - L.maxRequestAgeDays * DAY_MS).changes)
      this.#stmt.dropExpiredBroadcasts.run(now)
      this.#stmt.dropOrphanDeliveries.run()
    })
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

  /**
   * Stores a broadcast from the platform. The same id with another text, urgency or
   * expiry replaces it, as a new revision (terminals show it again, read or not); the same
   * id with the same content is a repeat and changes nothing. [MQTT-5.7]
   */
  putBroadcast(b: Pick<StoredBroadcast, 'id' | 'text' | 'urgency' | 'expires' | 'receivedAt'>): { change: BroadcastChange; broadcast: StoredBroadcast } {
    return this.#write(true, () => {
      const old = this.#stmt.getBroadcast.get(b.id)
      if (old && old.withdrawn === 0 && old.text === b.text && old.urgency === b.urgency && old.expires === b.expires) {
        return { change: 'unchanged' as const, broadcast: broadcastFromRow(old) }
      }
      const next: StoredBroadcast = { ...b, revision: old ? old.revision + 1 : 0, withdrawn: false }
      this.#stmt.putBroadcast.run({ ...next, withdrawn: 0 })
      return { change: old ? ('replaced' as const) : ('added' as const), broadcast: next }
    })
  }

  /** Takes a broadcast back: a new revision marked withdrawn. Undefined for an id not held. */
  withdrawBroadcast(id: number): StoredBroadcast | undefined {
    return this.#write(true, () => {
      const old = this.#stmt.getBroadcast.get(id)
      if (!old) return undefined
      if (old.withdrawn === 1) return broadcastFromRow(old)
      const next = { ...broadcastFromRow(old), revision: old.revision + 1, withdrawn: true }
      this.#stmt.putBroadcast.run({ ...next, withdrawn: 1 })
      return next
    })
  }

  broadcast(id: number): StoredBroadcast | undefined {
    const r = this.#stmt.getBroadcast.get(id)
    return r && broadcastFromRow(r)
  }

  /** Broadcasts not expired at `now` (withdrawn ones included: terminals that hold them must be told). */
  broadcasts(now: number): StoredBroadcast[] {
    return this.#stmt.broadcasts.all().map(broadcastFromRow).filter((b) => b.expires === null || b.expires > now)
  }

  /** Broadcasts to show at `now`: not expired, not withdrawn. */
  activeBroadcasts(now: number): StoredBroadcast[] {
    return this.broadcasts(now).filter((b) => !b.withdrawn)
  }

  /** A terminal's copy of a broadcast, if one was sent to it. */
  delivery(broadcast: number, terminal: string): BroadcastDelivery | undefined {
    const r = this.#stmt.getDelivery.get(broadcast, terminal)
    return r && { broadcast: r.broadcast, terminal: r.terminal, revision: r.revision, sentAt: r.sent_at, readRevision: r.read_revision, readAt: r.read_at }
  }

  /** Every terminal's copy of a broadcast. */
  deliveries(broadcast: number): BroadcastDelivery[] {
    return this.#stmt.deliveries.all(broadcast).map((r) => ({ broadcast: r.broadcast, terminal: r.terminal, revision: r.revision, sentAt: r.sent_at, readRevision: r.read_revision, readAt: r.read_at }))
  }

  /** Revision `revision` of a broadcast was queued to a terminal. */
  broadcastSent(broadcast: number, terminal: string, revision: number, now: number): void {
    this.#write(true, () => this.#stmt.putDelivery.run(broadcast, terminal, revision, now))
  }

  /** The terminal's user read revision `revision`: true if that is news (the first read of that revision). */
  broadcastRead(broadcast: number, terminal: string, revision: number, now: number): boolean {
    const d = this.delivery(broadcast, terminal)
    if (!d || (d.readRevision !== null && d.readRevision >= revision)) return false
    this.#write(true, () => this.#stmt.readDelivery.run(revision, now, broadcast, terminal))
    return true
  }

  close(): void {
    if (!this.#db.open) return
    this.flushStatuses(Infinity, 0)
    this.#db.close()
  }
}

/**
 * Creates a store whole: laid out under a temporary name, synced, then renamed into place,
 * so that `path` is either absent or a complete store, never an empty file after a power
 * cut in the middle of the first start.
 */
function create(path: string): void {
  const tmp = `${path}.new`
  for (const suffix of ['', '-wal', '-shm', '-journal']) rmSync(tmp + suffix, { force: true })
  const db = new Database(tmp)
  try {
    db.pragma('journal_mode = DELETE')
    db.pragma('synchronous = FULL')
    db.transaction(() => {
      db.exec(SCHEMA)
      db.pragma(`application_id = ${APPLICATION_ID}`)
      db.pragma(`user_version = ${SCHEMA_VERSION}`)
    })()
  } finally {
    db.close()
  }
  renameSync(tmp, path)
  const dir = openSync(dirname(path), 'r')
  try {
    fsyncSync(dir)
  } finally {
    closeSync(dir)
  }
}

/** An existing store file of 0 bytes (or without tables) is a store lost, not a fresh start: say so. */
function refuseEmpty(path: string, why = statSync(path).size === 0 ? 'is 0 bytes' : null): void {
  if (why === null) return
  throw new StoreError(
    'STORE_EMPTY',
    `${path} is empty (it ${why}): the store was lost (an SD card fault, or a copy that failed), and with it the alerts it held. ` +
      `The terminals still hold every event the gateway had not acknowledged. To start a fresh store, move the empty file aside ` +
      `(mv ${path} ${path}.lost) and start the gateway again; tell the platform, which may see alerts it knows as new.`,
  )
}

function openError(path: string, err: unknown): StoreError {
  const code = (err as { code?: string }).code
  if (code === 'SQLITE_BUSY') {
    return new StoreError(
      'STORE_LOCKED',
      `${path} is in use by another process: only one gateway may run on a data directory (is another gateway, or a second service, running with the same --data?). Stop it, or give each gateway its own directory.`,
      { cause: err },
    )
  }
  if (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT') {
    return new StoreError('STORE_FOREIGN', `${path} is not a SQLite store (${(err as Error).message}): a damaged file, or another program's. Move it aside and start again; the terminals resend what was not acknowledged.`, { cause: err })
  }
  return new StoreError('STORE_OPEN_FAILED', `cannot open the store ${path}: ${(err as Error).message}. Check that the data directory exists, is writable by this user, and is not full.`, { cause: err })
}
