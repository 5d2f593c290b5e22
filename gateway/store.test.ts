import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll } from 'vitest'
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
