import Database from 'better-sqlite3'
import { copyFileSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { MemoryStore } from './memory-store.js'
import { APPLICATION_ID, SCHEMA_VERSION, SqliteStore, StoreError } from './sqlite-store.js'
import { storeSuite } from './store.suite.js'

// Every implementation of the Store contract. SQLite's ':memory:' mode is not a third:
// it runs the same statements as the file below (the gateway and outbox tests open it in
// every test), and only the file can be closed and opened again.
storeSuite('MemoryStore', {
  open: (o) => new MemoryStore({ freeSpace: () => 1e12, ...o }),
  reopen: null,
})

const dirs: string[] = []
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})

storeSuite('SqliteStore, a file in WAL mode', {
  open: (o) => {
    const dir = mkdtempSync(join(tmpdir(), 'steppelink-store-'))
    dirs.push(dir)
    return new SqliteStore({ path: join(dir, 'gateway.db'), freeSpace: () => 1e12, ...o })
  },
  reopen: (store, o) => {
    const path = store.path
    store.close()
    return new SqliteStore({ path, freeSpace: () => 1e12, ...o })
  },
})

describe('store: heartbeats and the SD card', () => {
  const open = () => {
    const dir = mkdtempSync(join(tmpdir(), 'steppelink-store-'))
    dirs.push(dir)
    return join(dir, 'gateway.db')
  }
  /**
   * What a crash would leave on disk now: the files copied as they are (the running store
   * holds its lock, so nothing else may open them), opened as the next start would.
   */
  const onDisk = (path: string) => {
    const copy = join(mkdtempSync(join(tmpdir(), 'steppelink-crash-')), 'gateway.db')
    dirs.push(dirname(copy))
    for (const suffix of ['', '-wal']) if (existsSync(path + suffix)) copyFileSync(path + suffix, copy + suffix)
    const other = new SqliteStore({ path: copy, freeSpace: () => 1e12 })
    try {
      return other.dirtyStatuses()
    } finally {
      other.close()
    }
  }

  it('folds heartbeats in memory: nothing is written per heartbeat, only when a fold has waited, and at close', () => {
    const path = open()
    const s = new SqliteStore({ path, freeSpace: () => 1e12 })
    for (let i = 0; i < 30; i++) s.putStatus('T1', 1, { uptime: i * 10, mains: true }, i * 10_000)
    expect(s.dirtyStatuses()[0]).toMatchObject({ heartbeats: 30 })
    // A crash now would lose the fold: the lowest class, at most one wait long.
    expect(onDisk(path)).toEqual([])
    // Waited 10 minutes (two status intervals) without being published: written once.
    expect(s.flushStatuses(290_000, 600_000)).toBe(0)
    expect(s.flushStatuses(600_000, 600_000)).toBe(1)
    expect(onDisk(path)).toMatchObject([{ terminal: 'T1', heartbeats: 30 }])
    expect(s.flushStatuses(600_001, 600_000)).toBe(0)
    // A later heartbeat waits in memory again until close.
    s.putStatus('T1', 1, { uptime: 400, mains: false }, 700_000)
    expect(onDisk(path)).toMatchObject([{ heartbeats: 30 }])
    s.close()
    expect(onDisk(path)).toMatchObject([{ terminal: 'T1', heartbeats: 31, latest: { mains: false } }])
  })

  it('a fold published after it was written removes its row; one published from memory never writes', () => {
    const path = open()
    const s = new SqliteStore({ path, freeSpace: () => 1e12 })
    s.putStatus('T1', 1, { uptime: 1, mains: true }, 0)
    s.putStatus('T2', 2, { uptime: 1, mains: true }, 0)
    s.flushStatuses(0, 0)
    s.putStatus('T1', 1, { uptime: 2, mains: true }, 10_000)
    for (const st of s.dirtyStatuses()) s.statusPublished(st.terminal, st.version)
    expect(s.dirtyStatuses()).toEqual([])
    expect(onDisk(path)).toEqual([])
    s.putStatus('T3', 3, { uptime: 1, mains: true }, 20_000)
    s.statusPublished('T3', s.dirtyStatuses()[0]!.version)
    s.close()
    expect(onDisk(path)).toEqual([])
  })

  it('batch numbers: one durable write per block, never reused after a restart', () => {
    const path = open()
    let s = new SqliteStore({ path, freeSpace: () => 1e12 })
    const first = [s.next('batch', 10), s.next('batch', 10), s.next('batch', 10)]
    expect(first).toEqual([1, 2, 3])
    s.close()
    s = new SqliteStore({ path, freeSpace: () => 1e12 })
    expect(s.next('batch', 10)).toBe(11)
    s.close()
  })
})

describe('store: opening it, and refusing what is not a store to trust [issue 10, item 24]', () => {
  const dir = () => {
    const d = mkdtempSync(join(tmpdir(), 'steppelink-store-'))
    dirs.push(d)
    return d
  }
  const refusal = (path: string): StoreError => {
    try {
      new SqliteStore({ path, freeSpace: () => 1e12 }).close()
    } catch (err) {
      expect(err).toBeInstanceOf(StoreError)
      return err as StoreError
    }
    throw new Error(`the store at ${path} opened`)
  }

  it('creates a store whole: no half-made file is left, and it is marked as ours', () => {
    const d = dir()
    const path = join(d, 'gateway.db')
    new SqliteStore({ path, freeSpace: () => 1e12 }).close()
    expect(readdirSync(d).filter((f) => f.includes('.new'))).toEqual([])
    const db = new Database(path, { readonly: true })
    try {
      expect(db.pragma('application_id', { simple: true })).toBe(APPLICATION_ID)
      expect(db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION)
    } finally {
      db.close()
    }
  })

  it('one gateway per store: a second open is refused while the first runs, with what to do', () => {
    const path = join(dir(), 'gateway.db')
    const first = new SqliteStore({ path, freeSpace: () => 1e12 })
    try {
      const err = refusal(path)
      expect(err.code).toBe('STORE_LOCKED')
      expect(err.message).toMatch(/only one gateway may run on a data directory/)
    } finally {
      first.close()
    }
    new SqliteStore({ path, freeSpace: () => 1e12 }).close() // free again once the first has stopped
  })

  it('refuses a zero-length store (a store lost), rather than start fresh and forget its open alarms', () => {
    const path = join(dir(), 'gateway.db')
    writeFileSync(path, '')
    const err = refusal(path)
    expect(err.code).toBe('STORE_EMPTY')
    expect(err.message).toMatch(/mv .*gateway\.db .*gateway\.db\.lost/)
  })

  it('refuses a SQLite file of another program, and a file that is not SQLite at all', () => {
    const d = dir()
    const foreign = join(d, 'gateway.db')
    const db = new Database(foreign)
    db.exec('CREATE TABLE recipes (name TEXT)')
    db.close()
    expect(refusal(foreign).code).toBe('STORE_FOREIGN')
    const garbage = join(dir(), 'gateway.db')
    writeFileSync(garbage, 'this is not a database, it is a shopping list\n'.repeat(200))
    expect(refusal(garbage).code).toBe('STORE_FOREIGN')
  })

  it('refuses a store written by a newer version (its layout is unknown here)', () => {
    const path = join(dir(), 'gateway.db')
    new SqliteStore({ path, freeSpace: () => 1e12 }).close()
    const db = new Database(path)
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`)
    db.close()
    expect(refusal(path).code).toBe('STORE_NEWER')
  })

  it('brings a store of the first layout (before versions) up to date, keeping its alarms and recognising their replays', () => {
    const path = join(dir(), 'gateway.db')
    const db = new Database(path)
    db.pragma('journal_mode = WAL')
    db.exec(`
      CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
      CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, terminal TEXT, address INTEGER, number INTEGER,
        rank INTEGER NOT NULL, body TEXT NOT NULL, bytes INTEGER NOT NULL, received_at INTEGER NOT NULL, boot INTEGER NOT NULL, offset INTEGER,
        stage TEXT NOT NULL, stage_at INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_at INTEGER NOT NULL DEFAULT 0, done INTEGER NOT NULL DEFAULT 0);
      CREATE UNIQUE INDEX events_terminal_number ON events(terminal, number) WHERE terminal IS NOT NULL AND number IS NOT NULL;
      CREATE INDEX events_due ON events(done, rank, next_at, seq);
      CREATE TABLE statuses (terminal TEXT PRIMARY KEY, body TEXT NOT NULL, version INTEGER NOT NULL, dirty INTEGER NOT NULL);
      CREATE TABLE broadcasts (id INTEGER PRIMARY KEY, text TEXT NOT NULL, urgency TEXT NOT NULL, expires INTEGER, received_at INTEGER NOT NULL);
      INSERT INTO meta VALUES ('gateway-boot', '7');
      INSERT INTO events (id, terminal, address, number, rank, body, bytes, received_at, boot, offset, stage, stage_at)
        VALUES ('T1:41', 'T1', 3, 41, 0, '{"kind":"emergency"}', 20, 1000, 7, NULL, 'acknowledged', 2000);
      INSERT INTO broadcasts VALUES (9, 'storm', 'urgent', NULL, 0);
    `)
    db.close()
    const s = new SqliteStore({ path, freeSpace: () => 1e12 })
    try {
      expect(s.meta('gateway-boot')).toBe('7')
      expect(s.openAlerts()).toMatchObject([{ id: 'T1:41', stage: 'acknowledged', epoch: '' }])
      expect(s.recognise('T1', 41, 'emergency||7|1|')).toMatchObject({ kind: 'replay' })
      expect(s.recognise('T1', 42, 'emergency||7|1|')).toEqual({ kind: 'new' })
      expect(s.activeBroadcasts(0)).toMatchObject([{ id: 9, text: 'storm', revision: 0, withdrawn: false }])
    } finally {
      s.close()
    }
    new SqliteStore({ path, freeSpace: () => 1e12 }).close() // and opens again as a store of this layout
  })

  it('brings a store of layout 2 up to date: the history of the alerts it holds starts from their rows (issue 13)', () => {
    const path = join(dir(), 'gateway.db')
    const s2 = new SqliteStore({ path, freeSpace: () => 1e12 })
    const a = s2.addEvent({ id: 'T1:1', terminal: 'T1', address: 1, number: 1, cls: 'alarm', body: { kind: 'emergency' }, receivedAt: 1_000, boot: 1, offset: null, epoch: '' })
    if (a.kind === 'refused') throw new Error('refused')
    s2.advance('T1:1', 'acknowledged', 2_000, { text: 'Bao' })
    s2.close()
    // Back to layout 2, as the version before issue 13 left it.
    const db = new Database(path)
    db.exec('DROP TRIGGER events_forget_stages; DROP TABLE event_stages; DROP TABLE household_broadcasts; DROP INDEX events_idem_key; ALTER TABLE events DROP COLUMN idem_key')
    db.pragma('user_version = 2')
    db.close()
    const s = new SqliteStore({ path, freeSpace: () => 1e12 })
    try {
      expect(s.stages('T1:1')).toEqual([
        { stage: 'stored', at: 1_000, text: null, etaAt: null },
        { stage: 'acknowledged', at: 2_000, text: 'Bao', etaAt: null },
      ])
      expect(s.addEvent({ id: 'gw:g1', terminal: null, address: null, number: null, cls: 'alarm', body: {}, receivedAt: 3_000, boot: 1, offset: null, key: 'k' }).kind).toBe('added')
      expect(s.byKey('k')?.id).toBe('gw:g1')
    } finally {
      s.close()
    }
  })
})
