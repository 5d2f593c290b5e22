import Database from 'better-sqlite3'
import { describe, expect, it } from 'vitest'
import { canonical, GENESIS, rowHash } from './audit.js'
import { alarm, callback, H, MIN, newLedger, S, T0 } from './ledger.suite.js'
import type { SqliteLedger } from './sqlite-ledger.js'

/** A case through every action, and settings changed: a trail with each kind of row. */
async function busyDay(ledger: SqliteLedger): Promise<void> {
  await ledger.record(alarm(1), T0)
  await ledger.take('T4-00123:1', 'Saruul', T0 + 10 * S)
  await ledger.acknowledge('T4-00123:1', { by: 'Saruul', at: T0 + 20 * S })
  await ledger.dispatch('T4-00123:1', { by: 'Saruul', at: T0 + MIN, unit: 'patrol car 110-3', etaMin: 40 })
  await ledger.comment('T4-00123:1', { by: 'Saruul', at: T0 + 2 * MIN, text: 'road to the camp is snowed in; car goes round by the lake' })
  await ledger.resolve('T4-00123:1', { by: 'Saruul', at: T0 + H, disposition: 'help arrived' })
  await ledger.scheduleFollowUp('T4-00123:1', { by: 'Saruul', at: T0 + H, dueAt: T0 + 25 * H })
  await ledger.recordFollowUp('T4-00123:1', { by: 'Bolormaa', at: T0 + 26 * H, outcome: 'recovering at home' })
  await ledger.record(callback(1), T0 + 2 * H)
  await ledger.escalate('T4-00456:1', { by: 'Supervisor Ganbold', at: T0 + 3 * H, reason: 'the household asks for the township vet' })
  await ledger.updateSettings({ nearShare: 0.5 }, 'Supervisor Ganbold', T0 + 4 * H)
}

function rawDb(path: string): Database.Database {
  return new Database(path)
}

describe('ledger: the audit trail', () => {
  it('every action is a row: who, what, when, which case, details; chained by hashes from the genesis', async () => {
    const { ledger } = newLedger()
    await busyDay(ledger)
    const trail = await ledger.audit()
    expect(trail.map((a) => [a.seq, a.action, a.actor, a.caseId])).toEqual([
      [1, 'settings', 'ledger', null],
      [2, 'record', 'gateway:gw-0017', 'T4-00123:1'],
      [3, 'take', 'Saruul', 'T4-00123:1'],
      [4, 'acknowledge', 'Saruul', 'T4-00123:1'],
      [5, 'dispatch', 'Saruul', 'T4-00123:1'],
      [6, 'comment', 'Saruul', 'T4-00123:1'],
      [7, 'resolve', 'Saruul', 'T4-00123:1'],
      [8, 'follow-up', 'Saruul', 'T4-00123:1'],
      [9, 'follow-up-outcome', 'Bolormaa', 'T4-00123:1'],
      [10, 'record', 'gateway:gw-0020', 'T4-00456:1'],
      [11, 'escalate', 'Supervisor Ganbold', 'T4-00456:1'],
      [12, 'settings', 'Supervisor Ganbold', null],
    ])
    expect(trail[4]).toMatchObject({ at: T0 + MIN, details: { unit: 'patrol car 110-3', etaMin: 40 } })
    // The chain, recomputed here from the rows as read: each hash over the previous and the row.
    let prev = GENESIS
    for (const a of trail) {
      expect(a.prev).toBe(prev)
      expect(a.hash).toBe(rowHash(prev, { seq: a.seq, at: a.at, actor: a.actor, action: a.action, caseId: a.caseId, details: canonical(a.details) }))
      prev = a.hash
    }
    expect(await ledger.verifyAudit()).toEqual({ ok: true, rows: 12, head: prev })
    expect((await ledger.audit({ afterSeq: 10, limit: 1 })).map((a) => a.seq)).toEqual([11])
  })

  it('the ledger never updates or deletes a row: the file refuses it', async () => {
    const { ledger, path } = newLedger()
    await busyDay(ledger)
    const db = rawDb(path)
    try {
      expect(() => db.prepare("UPDATE audit SET actor = 'nobody' WHERE seq = 3").run()).toThrow('the audit trail is append-only')
      expect(() => db.prepare('DELETE FROM audit WHERE seq = 3').run()).toThrow('the audit trail is append-only')
    } finally {
      db.close()
    }
    expect(await ledger.verifyAudit()).toMatchObject({ ok: true, rows: 12 })
  })

  it('a row edited with raw SQL (the triggers dropped first) is found: verify names the first row that does not match', async () => {
    const { ledger, path } = newLedger()
    await busyDay(ledger)
    const db = rawDb(path)
    try {
      db.exec('DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete')
      // Someone makes the dispatch look faster than it was.
      db.prepare('UPDATE audit SET at = at - 30000 WHERE seq = 5').run()
    } finally {
      db.close()
    }
    expect(await ledger.verifyAudit()).toEqual({ ok: false, rows: 4, seq: 5, reason: 'row 5 does not match its hash: it was edited after it was written' })
  })

  it('an edit that recomputes its own hash still breaks the next row; a deleted row breaks the one after it', async () => {
    const { ledger, path } = newLedger()
    await busyDay(ledger)
    const db = rawDb(path)
    try {
      db.exec('DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete')
      const r = db.prepare('SELECT * FROM audit WHERE seq = 7').get() as { seq: number; at: number; actor: string; action: string; case_id: string; details: string; prev: string }
      const details = canonical({ disposition: 'help arrived in time' })
      db.prepare('UPDATE audit SET details = ?, hash = ? WHERE seq = 7').run(details, rowHash(r.prev, { seq: 7, at: r.at, actor: r.actor, action: r.action, caseId: r.case_id, details }))
      expect(await ledger.verifyAudit()).toMatchObject({ ok: false, seq: 8, reason: expect.stringContaining('does not follow the row before it') })
      db.prepare('DELETE FROM audit WHERE seq IN (7, 3)').run()
    } finally {
      db.close()
    }
    expect(await ledger.verifyAudit()).toMatchObject({ ok: false, rows: 2, seq: 4 })
  })

  it('a stored copy edited with raw SQL is found too: its hash is in the row that recorded it', async () => {
    const { ledger, path } = newLedger()
    await ledger.record(alarm(1), T0)
    await ledger.record(alarm(1, { kind: 'fire', code: 110 }), T0 + S)
    expect(await ledger.verifyAudit()).toMatchObject({ ok: true, rows: 3 })
    const db = rawDb(path)
    try {
      db.prepare("UPDATE versions SET body = json_set(body, '$.kind', 'test') WHERE case_id = 'T4-00123:1' AND n = 2").run()
    } finally {
      db.close()
    }
    expect(await ledger.verifyAudit()).toEqual({
      ok: false,
      rows: 3,
      seq: 3,
      reason: 'the copy of case T4-00123:1 that row 3 recorded (version 2) is missing or was edited after it was stored',
    })
  })

  it('canonical encoding: the same details hash the same whatever order their keys were built in', () => {
    expect(canonical({ b: 1, a: { d: [1, { z: null, y: 'x' }], c: undefined } })).toBe('{"a":{"d":[1,{"y":"x","z":null}]},"b":1}')
    const row = { seq: 1, at: T0, actor: 'a', action: 'comment', caseId: 'x', details: canonical({ text: 't', n: 1 }) }
    expect(rowHash(GENESIS, row)).toBe(rowHash(GENESIS, { ...row, details: canonical({ n: 1, text: 't' }) }))
    expect(rowHash(GENESIS, row)).not.toBe(rowHash(GENESIS, { ...row, seq: 2 }))
  })
})
