/**
 * A SQLite file made whole: the gateway's store (gateway/sqlite-db.ts) and the 110 centre's
 * ledger (platform/ledger/db.ts) are both created this way.
 */

import Database from 'better-sqlite3'
import { closeSync, fsyncSync, openSync, renameSync, rmSync } from 'node:fs'
import { dirname } from 'node:path'

/**
 * Creates the database at `path` whole: laid out by `layOut` under a temporary name, synced,
 * then renamed into place and the directory synced, so that `path` is either absent or a
 * complete file, never an empty one after a power cut in the middle of the first start.
 */
export function createWhole(path: string, layOut: (db: Database.Database) => void): void {
  const tmp = `${path}.new`
  for (const suffix of ['', '-wal', '-shm', '-journal']) rmSync(tmp + suffix, { force: true })
  const db = new Database(tmp)
  try {
    db.pragma('journal_mode = DELETE')
    db.pragma('synchronous = FULL')
    db.transaction(() => layOut(db))()
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
