/**
 * The SQLite file of a SqliteStore: opening it (created whole, locked for one gateway,
 * refused when it is empty, another program's or newer), its layout and the migration
 * from the first one, and the one way every part of the store writes to it: write(),
 * one transaction committed with synchronous=FULL or NORMAL, and counted.
 *
 * Why one handle and one write path: the store's parts (sqlite-events.ts,
 * sqlite-numbering.ts, sqlite-broadcasts.ts, sqlite-store.ts) each prepare their own
 * statements, but a change that spans them (an event and its terminal's replay window,
 * the bounds and the broadcasts' expiry) must be one transaction, and every commit must
 * be counted in writes() with the durability it asked for.
 */

import Database from 'better-sqlite3'
import { existsSync, mkdirSync, statSync } from 'node:fs'
import { dirname } from 'node:path'
import { createWhole } from '../io/sqlite-file.js'
import { ReplayWindow } from './replay-window.js'
import type { WriteStats } from './store.js'

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

/** "STLK": marks a SQLite file as a Steppelink store. */
export const APPLICATION_ID = 0x53544c4b
/** The layout of this version. 1 was the layout before versions were written down; 3 added the household's (issue 13). */
export const SCHEMA_VERSION = 3

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
  stage_eta_at INTEGER,
  idem_key TEXT
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
CREATE UNIQUE INDEX IF NOT EXISTS events_idem_key ON events(idem_key) WHERE idem_key IS NOT NULL;
CREATE TABLE IF NOT EXISTS event_stages (
  event TEXT NOT NULL,
  stage TEXT NOT NULL,
  at INTEGER NOT NULL,
  text TEXT,
  eta_at INTEGER
);
CREATE INDEX IF NOT EXISTS event_stages_event ON event_stages(event);
CREATE TRIGGER IF NOT EXISTS events_forget_stages AFTER DELETE ON events BEGIN
  DELETE FROM event_stages WHERE event = old.id;
END;
CREATE TABLE IF NOT EXISTS household_broadcasts (
  broadcast INTEGER PRIMARY KEY,
  revision INTEGER NOT NULL,
  read_at INTEGER,
  passed_on INTEGER,
  passed_at INTEGER
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

/**
 * From layout 2 (issue 13): a relay's idempotency key with its event, each alert's stage
 * history, and what the center household did with each broadcast. The new tables come
 * from SCHEMA; the history of the alerts already held starts from what their rows say
 * (stored, and the current stage).
 */
const MIGRATE_FROM_2 = `
ALTER TABLE events ADD COLUMN idem_key TEXT;
`
const BACKFILL_STAGES = `
INSERT INTO event_stages (event, stage, at) SELECT id, 'stored', received_at FROM events WHERE rank <= 1;
INSERT INTO event_stages (event, stage, at, text, eta_at) SELECT id, stage, stage_at, stage_text, stage_eta_at FROM events WHERE rank <= 1 AND stage != 'stored';
`

/** The opened file, its settings and counters, and the one write path. */
export class SqliteDb {
  readonly db: Database.Database
  readonly path: string
  readonly #writes: WriteStats = { durable: 0, lazy: 0, lastEvent: null }
  #durable = true
  /** The last write that failed, or null once one succeeds (the service watchdog asks: gateway/service-health.ts). */
  #lastWriteError: { at: number; message: string } | null = null
  readonly #stmt: ReturnType<typeof prepare>

  /** Opens (or creates) the store at `path` ('.../gateway.db', or ':memory:' for tests); throws StoreError. */
  constructor(path: string) {
    this.path = path
    if (path !== ':memory:') {
      mkdirSync(dirname(path), { recursive: true })
      if (!existsSync(path)) createWhole(path, layOut)
      else refuseEmpty(path)
    }
    try {
      this.db = new Database(path, { timeout: 0 })
      // Exclusive before the first access: the lock is taken at the first write below and
      // held until close, so a second gateway on the same directory cannot open it; and
      // WAL then keeps its index in memory, not in a -shm file on the SD card.
      this.db.pragma('locking_mode = EXCLUSIVE')
      this.db.pragma('journal_mode = WAL')
      this.db.pragma('synchronous = FULL')
      // A checkpoint every ~1000 pages keeps the WAL small on a small SD card.
      this.db.pragma('wal_autocheckpoint = 1000')
    } catch (err) {
      throw openError(path, err)
    }
    try {
      migrate(this.db, path)
    } catch (err) {
      this.db.close()
      throw err instanceof StoreError ? err : openError(path, err)
    }
    this.#stmt = prepare(this.db)
  }

  /**
   * Runs `fn` as one transaction, committed with synchronous=FULL (`durable`) or NORMAL.
   * Everything a terminal was told is stored goes through here as durable.
   */
  write<T>(durable: boolean, fn: () => T): T {
    let out: T
    try {
      if (durable !== this.#durable) {
        this.db.pragma(durable ? 'synchronous = FULL' : 'synchronous = NORMAL')
        this.#durable = durable
      }
      out = this.db.transaction(fn)()
    } catch (err) {
      // Only the medium's and SQLite's own failures say the store is unwell; a constraint
      // (a duplicate caught by the caller) is the data's, and the file is fine.
      if (!isConstraint(err)) this.#lastWriteError = { at: Date.now(), message: (err as Error)?.message ?? String(err) }
      throw err
    }
    this.#lastWriteError = null
    if (durable) this.#writes.durable++
    else this.#writes.lazy++
    return out
  }

  /** The last write's failure (when, and SQLite's word), or null if the last write succeeded. */
  lastWriteError(): { at: number; message: string } | null {
    return this.#lastWriteError
  }

  /** The durable commit just made held an event. */
  eventCommitted(): void {
    this.#writes.lastEvent = 'durable'
  }

  writes(): Readonly<WriteStats> {
    return { ...this.#writes }
  }

  meta(key: string): string | undefined {
    return this.#stmt.getMeta.get(key)?.value
  }

  /** Within a write(). */
  putMeta(key: string, value: string): void {
    this.#stmt.setMeta.run(key, value)
  }

  /** Within a write(). */
  addCount(name: string, by: number): void {
    this.#stmt.count.run(name, by)
  }

  counters(): Record<string, number> {
    return Object.fromEntries(this.#stmt.counters.all().map((r) => [r.name, r.value]))
  }

  get open(): boolean {
    return this.db.open
  }

  close(): void {
    this.db.close()
  }
}

function isConstraint(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code
  return typeof code === 'string' && code.startsWith('SQLITE_CONSTRAINT')
}

function prepare(db: Database.Database) {
  return {
    getMeta: db.prepare<[string], { value: string }>('SELECT value FROM meta WHERE key = ?'),
    setMeta: db.prepare<[string, string]>('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value'),
    count: db.prepare<[string, number]>('INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = value + excluded.value'),
    counters: db.prepare<[], { name: string; value: number }>('SELECT name, value FROM counters ORDER BY name'),
  }
}

/** Brings a store of an older layout up to this one, once; refuses a file that is not a store of ours. */
function migrate(db: Database.Database, path: string): void {
  const appId = db.pragma('application_id', { simple: true }) as number
  const version = db.pragma('user_version', { simple: true }) as number
  const tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]).map((t) => t.name)
  if (appId === 0 && tables.length === 0) {
    // A file is laid out whole by create(); a file without tables is a store lost.
    if (path !== ':memory:') refuseEmpty(path, 'holds no tables')
    db.transaction(() => layOut(db))()
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
    throw new StoreError(
      'STORE_NEWER',
      `${path} was written by a newer Steppelink (store layout ${from}; this one knows ${SCHEMA_VERSION}): run the newer version, or restore the older store it replaced.`,
    )
  }
  db.transaction(() => {
    if (from < 2) db.exec(MIGRATE_FROM_1)
    if (from < 3) db.exec(MIGRATE_FROM_2)
    layOut(db)
    if (from < 3) db.exec(BACKFILL_STAGES)
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

/** This version's tables, marked as ours and of this layout. */
function layOut(db: Database.Database): void {
  db.exec(SCHEMA)
  db.pragma(`application_id = ${APPLICATION_ID}`)
  db.pragma(`user_version = ${SCHEMA_VERSION}`)
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
    return new StoreError(
      'STORE_FOREIGN',
      `${path} is not a SQLite store (${(err as Error).message}): a damaged file, or another program's. Move it aside and start again; the terminals resend what was not acknowledged.`,
      { cause: err },
    )
  }
  return new StoreError('STORE_OPEN_FAILED', `cannot open the store ${path}: ${(err as Error).message}. Check that the data directory exists, is writable by this user, and is not full.`, {
    cause: err,
  })
}
