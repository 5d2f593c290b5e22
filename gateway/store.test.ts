import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { Store } from './store.js'
import { storeSuite } from './store.suite.js'

storeSuite('in memory', {
  open: (o) => new Store({ path: ':memory:', freeSpace: () => 1e12, ...o }),
  reopen: null,
})

const dirs: string[] = []
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })))

storeSuite('SQLite file in WAL mode', {
  open: (o) => {
    const dir = mkdtempSync(join(tmpdir(), 'steppelink-store-'))
    dirs.push(dir)
    return new Store({ path: join(dir, 'gateway.db'), freeSpace: () => 1e12, ...o })
  },
  reopen: (store, o) => {
    const path = store.path
    store.close()
    return new Store({ path, freeSpace: () => 1e12, ...o })
  },
})

describe('store: heartbeats and the SD card', () => {
  const open = () => {
    const dir = mkdtempSync(join(tmpdir(), 'steppelink-store-'))
    dirs.push(dir)
    return join(dir, 'gateway.db')
  }
  /** What another process would find on disk now (a crash leaves exactly this). */
  const onDisk = (path: string) => {
    const other = new Store({ path, freeSpace: () => 1e12 })
    try {
      return other.dirtyStatuses()
    } finally {
      other.close()
    }
  }

  it('folds heartbeats in memory: nothing is written per heartbeat, only when a fold has waited, and at close', () => {
    const path = open()
    const s = new Store({ path, freeSpace: () => 1e12 })
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
    const s = new Store({ path, freeSpace: () => 1e12 })
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
    let s = new Store({ path, freeSpace: () => 1e12 })
    const first = [s.next('batch', 10), s.next('batch', 10), s.next('batch', 10)]
    expect(first).toEqual([1, 2, 3])
    s.close()
    s = new Store({ path, freeSpace: () => 1e12 })
    expect(s.next('batch', 10)).toBe(11)
    s.close()
  })
})
