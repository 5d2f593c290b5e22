/**
 * The ledger's SQLite file: created whole, marked as a ledger (application_id, user_version
 * as gateway/sqlite-db.ts does for the gateway's store), refused when it is empty, another
 * program's or newer, and brought up to this layout when older.
 *
 * Unlike the gateway's store, the file is NOT locked for one process: the web desk and the
 * terminal console over SSH run on the same ledger. WAL lets them read while one writes;
 * every write is BEGIN IMMEDIATE (the write lock is taken before anything is read, so two
 * desks serialise instead of failing half-way), waits up to `busyMs` for the other, and is
 * committed with synchronous=FULL: a case the gateway was told is received survives a power
 * cut [MQTT-4.1]. (WAL needs the processes on one machine: not a network file system.)
 */

import Database from 'better-sqlite3'
import { existsSync, mkdirSync, statSync } from 'node:fs'
import { dirname } from 'node:path'
import { createWhole } from '../../io/sqlite-file.js'
import { LedgerError } from './errors.js'

/** "STLD": marks a SQLite file as a Steppelink ledger (the gateway's store is "STLK"). */
export const LEDGER_APPLICATION_ID = 0x53544c44
/** The layout of this version. */
export const LEDGER_SCHEMA_VERSION = 1

export const LEDGER_SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cases (
  id TEXT PRIMARY KEY,
  class TEXT NOT NULL CHECK (class IN ('alarm', 'request')),
  kind TEXT NOT NULL,
  unknown_kind INTEGER NOT NULL,
  gateway TEXT NOT NULL,
  area TEXT,
  terminal TEXT,
  address INTEGER,
  number INTEGER,
  code INTEGER,
  time_at INTEGER NOT NULL,
  time_estimated INTEGER NOT NULL,
  text TEXT,
  relay TEXT,
  cancels TEXT,
  received_at INTEGER NOT NULL,
  last_received_at INTEGER NOT NULL,
  copies INTEGER NOT NULL,
  attempt INTEGER NOT NULL,
  gateway_stage TEXT,
  stage TEXT NOT NULL CHECK (stage IN ('received', 'acknowledged', 'dispatched', 'resolved')),
  owner TEXT,
  owner_since INTEGER,
  acknowledged_by TEXT,
  unit TEXT,
  eta_min INTEGER,
  disposition TEXT,
  resolved_at INTEGER,
  acknowledge_due_at INTEGER,
  handle_due_at INTEGER,
  conflict TEXT
);
CREATE INDEX IF NOT EXISTS cases_open ON cases(stage, class, received_at);
CREATE INDEX IF NOT EXISTS cases_received ON cases(received_at);
CREATE INDEX IF NOT EXISTS cases_terminal ON cases(terminal, received_at);
CREATE INDEX IF NOT EXISTS cases_gateway ON cases(gateway, received_at);
CREATE INDEX IF NOT EXISTS cases_cancels ON cases(cancels) WHERE cancels IS NOT NULL;
CREATE TABLE IF NOT EXISTS versions (
  case_id TEXT NOT NULL REFERENCES cases(id),
  n INTEGER NOT NULL,
  gateway TEXT NOT NULL,
  body TEXT NOT NULL,
  first_at INTEGER NOT NULL,
  last_at INTEGER NOT NULL,
  copies INTEGER NOT NULL,
  PRIMARY KEY (case_id, n)
);
CREATE TABLE IF NOT EXISTS stages (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  case_id TEXT NOT NULL REFERENCES cases(id),
  stage TEXT NOT NULL,
  at INTEGER NOT NULL,
  by TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS stages_case ON stages(case_id, seq);
CREATE TABLE IF NOT EXISTS escalations (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  case_id TEXT NOT NULL REFERENCES cases(id),
  level INTEGER NOT NULL,
  name TEXT NOT NULL,
  at INTEGER NOT NULL,
  by TEXT NOT NULL,
  reason TEXT NOT NULL,
  due_at INTEGER NOT NULL,
  auto INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS escalations_case ON escalations(case_id, seq);
CREATE TABLE IF NOT EXISTS comments (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  case_id TEXT NOT NULL REFERENCES cases(id),
  at INTEGER NOT NULL,
  by TEXT NOT NULL,
  text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS comments_case ON comments(case_id, seq);
CREATE TABLE IF NOT EXISTS follow_ups (
  case_id TEXT NOT NULL REFERENCES cases(id),
  n INTEGER NOT NULL,
  due_at INTEGER NOT NULL,
  set_at INTEGER NOT NULL,
  set_by TEXT NOT NULL,
  note TEXT,
  outcome TEXT,
  done_at INTEGER,
  done_by TEXT,
  PRIMARY KEY (case_id, n)
);
CREATE INDEX IF NOT EXISTS follow_ups_open ON follow_ups(due_at) WHERE outcome IS NULL;
CREATE TABLE IF NOT EXISTS deadline_alerts (
  case_id TEXT NOT NULL REFERENCES cases(id),
  deadline TEXT NOT NULL,
  due_at INTEGER NOT NULL,
  at INTEGER NOT NULL,
  by TEXT NOT NULL,
  PRIMARY KEY (case_id, deadline, due_at)
);
CREATE TABLE IF NOT EXISTS audit (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  at INTEGER NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  case_id TEXT,
  details TEXT NOT NULL,
  prev TEXT NOT NULL,
  hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_case ON audit(case_id, seq) WHERE case_id IS NOT NULL;
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit BEGIN
  SELECT RAISE(ABORT, 'the audit trail is append-only');
END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit BEGIN
  SELECT RAISE(ABORT, 'the audit trail is append-only');
END;
`

/**
 * The steps from each older layout, by the version they start from: MIGRATIONS[1] takes a
 * layout-1 file to 2, and so on. None yet: layout 1 is the first.
 */
const MIGRATIONS: Readonly<Record<number, string>> = {}

/** Opens (or creates) the ledger at `path`; throws LedgerError. */
export function openLedgerFile(path: string, busyMs: number): Database.Database {
  mkdirSync(dirname(path), { recursive: true })
  if (!existsSync(path)) createWhole(path, layOut)
  else if (statSync(path).size === 0) throw empty(path, 'is 0 bytes')
  let db: Database.Database
  try {
    db = new Database(path, { timeout: busyMs })
    db.pragma('journal_mode = WAL')
    db.pragma('synchronous = FULL')
    db.pragma('foreign_keys = ON')
  } catch (err) {
    throw openError(path, err)
  }
  try {
    migrate(db, path)
  } catch (err) {
    db.close()
    throw err instanceof LedgerError ? err : openError(path, err)
  }
  return db
}

function migrate(db: Database.Database, path: string): void {
  const appId = db.pragma('application_id', { simple: true }) as number
  const version = db.pragma('user_version', { simple: true }) as number
  const tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'").all() as { name: string }[]).map((t) => t.name)
  if (appId === 0 && tables.length === 0) throw empty(path, 'holds no tables')
  if (appId !== LEDGER_APPLICATION_ID) {
    throw new LedgerError(
      'LEDGER_FOREIGN',
      `${path} is not a Steppelink ledger (SQLite application id ${appId}, tables ${tables.join(', ') || 'none'}): it is another program's file (a gateway's store?). Give the ledger its own file.`,
    )
  }
  if (version > LEDGER_SCHEMA_VERSION) {
    throw new LedgerError(
      'LEDGER_NEWER',
      `${path} was written by a newer Steppelink (ledger layout ${version}; this one knows ${LEDGER_SCHEMA_VERSION}): run the newer version, or restore the older ledger it replaced.`,
    )
  }
  if (version === LEDGER_SCHEMA_VERSION) return
  db.transaction(() => {
    for (let v = version; v < LEDGER_SCHEMA_VERSION; v++) {
      const step = MIGRATIONS[v]
      if (step !== undefined) db.exec(step)
    }
    layOut(db)
  }).immediate()
}

function layOut(db: Database.Database): void {
  db.exec(LEDGER_SCHEMA)
  db.pragma(`application_id = ${LEDGER_APPLICATION_ID}`)
  db.pragma(`user_version = ${LEDGER_SCHEMA_VERSION}`)
}

function empty(path: string, why: string): LedgerError {
  return new LedgerError(
    'LEDGER_EMPTY',
    `${path} is empty (it ${why}): the ledger was lost (a disk fault, or a copy that failed), and with it the cases it held. Restore it from a backup; ` +
      `to start a fresh ledger, move the empty file aside (mv ${path} ${path}.lost) and start again: the gateways republish the alarms with no receipt, which come in as new.`,
  )
}

function openError(path: string, err: unknown): LedgerError {
  const code = (err as { code?: string }).code
  if (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT') {
    return new LedgerError('LEDGER_FOREIGN', `${path} is not a SQLite ledger (${(err as Error).message}): a damaged file, or another program's. Restore the ledger from a backup.`, { cause: err })
  }
  return new LedgerError('LEDGER_OPEN_FAILED', `cannot open the ledger ${path}: ${(err as Error).message}. Check that its directory exists, is writable by this user, and is not full.`, {
    cause: err,
  })
}
