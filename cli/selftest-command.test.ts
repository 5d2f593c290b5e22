/**
 * `steppelink selftest` (issue 14): what the board installer asks of a release before it
 * switches to it, and of the previous one before it rolls back. Run as the installer runs
 * it, as a process (dist/, built by `npm test` first).
 */

import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import Database from 'better-sqlite3'
import { afterEach, describe, expect, it } from 'vitest'
import { SCHEMA_VERSION } from '../gateway/sqlite-db.js'
import { SqliteStore } from '../gateway/sqlite-store.js'

const MAIN = resolve(import.meta.dirname, '..', 'dist', 'cli', 'main.js')
const selftest = (...args: string[]) => spawnSync(process.execPath, [MAIN, 'selftest', ...args], { encoding: 'utf8', timeout: 60_000 })

const dirs: string[] = []
const dir = () => {
  const d = mkdtempSync(join(tmpdir(), 'steppelink-selftest-test-'))
  dirs.push(d)
  return d
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

describe('steppelink selftest', () => {
  it('finds every native module loading and working on this machine, and says so in JSON', () => {
    const r = selftest('--json')
    expect(r.status, r.stdout + r.stderr).toBe(0)
    const report = JSON.parse(r.stdout) as { ok: boolean; arch: string; checks: { id: string; ok: boolean; text: string }[] }
    expect(report.ok).toBe(true)
    expect(report.arch).toBe(process.arch)
    expect(report.checks.map((c) => c.id)).toEqual(['runtime', 'store', 'serial', 'zstd', 'cbor'])
    expect(report.checks.every((c) => c.ok)).toBe(true)
  })

  it('with --data: a store of this layout opens (0), one of a newer layout does not (3), a foreign file fails (1)', () => {
    const empty = dir()
    expect(selftest('--data', empty).stdout).toMatch(/no store at .* yet/)
    expect(selftest('--data', empty).status).toBe(0)

    const ours = dir()
    new SqliteStore({ path: join(ours, 'gateway.db'), freeSpace: () => 1e12 }).close()
    const same = selftest('--data', ours)
    expect(same.status, same.stdout).toBe(0)
    expect(same.stdout).toContain(`has layout ${SCHEMA_VERSION}: this version opens it`)

    const newer = dir()
    new SqliteStore({ path: join(newer, 'gateway.db'), freeSpace: () => 1e12 }).close()
    const db = new Database(join(newer, 'gateway.db'))
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`)
    db.close()
    const refused = selftest('--data', newer)
    expect(refused.status).toBe(3)
    expect(refused.stdout).toMatch(new RegExp(`layout ${SCHEMA_VERSION + 1}, written by a newer Steppelink`))

    const foreign = dir()
    writeFileSync(join(foreign, 'gateway.db'), 'a shopping list, not a database\n'.repeat(200))
    const bad = selftest('--data', foreign)
    expect(bad.status).toBe(1)
    expect(bad.stdout).toMatch(/cannot be read|not a Steppelink store/)
  })

  it('a wrong option is a usage error (2)', () => {
    const r = selftest('--bogus')
    expect(r.status).toBe(2)
    expect(r.stderr).toMatch(/Usage: steppelink selftest/)
  })
})
