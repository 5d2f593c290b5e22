import Database from 'better-sqlite3'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { CONFLICT_WARNING, MAX_VERSIONS } from '../cases.js'
import { LEDGER_APPLICATION_ID, LEDGER_SCHEMA_VERSION } from './db.js'
import { alarm, callback, ledgerAt, MIN, newLedger, relay, S, T0, tempDir } from './ledger.suite.js'
import { SqliteLedger } from './sqlite-ledger.js'

describe('ledger: cases recorded durably', () => {
  it('a first copy is new: stored at `received` with its deadlines, who sent it, and its audit row', async () => {
    const { ledger } = newLedger()
    const r = await ledger.record(alarm(43), T0 + 2 * S)
    expect(r.outcome).toBe('new')
    expect(r.differs).toBeNull()
    expect(r.case).toMatchObject({
      id: 'T4-00123:43',
      class: 'alarm',
      kind: 'emergency',
      code: 101,
      gateway: 'gw-0017',
      terminal: 'T4-00123',
      address: 3,
      number: 43,
      time: { at: T0, estimated: false },
      receivedAt: T0 + 2 * S,
      copies: 1,
      stage: 'received',
      history: [{ stage: 'received', at: T0 + 2 * S, by: 'gateway:gw-0017' }],
      owner: null,
      acknowledgeDueAt: T0 + 92 * S,
      handleDueAt: null,
      conflict: null,
    })
    const audit = await ledger.audit({ caseId: 'T4-00123:43' })
    expect(audit.map((a) => [a.action, a.actor])).toEqual([['record', 'gateway:gw-0017']])
  })

  it('a republication (attempt, stage, the time re-corrected) is counted, never new; a request gets its 24 h', async () => {
    const { ledger } = newLedger()
    await ledger.record(callback(7), T0)
    const again = await ledger.record(callback(7, { attempt: 3, stage: 'unconfirmed', time: { at: T0 + 20 * S, estimated: false } }), T0 + MIN)
    expect(again.outcome).toBe('republication')
    expect(again.case).toMatchObject({ class: 'request', copies: 2, attempt: 3, gatewayStage: 'unconfirmed', lastReceivedAt: T0 + MIN, handleDueAt: T0 + 24 * 60 * MIN, acknowledgeDueAt: null })
    // A republication is no action: only the record is in the trail.
    expect((await ledger.audit()).filter((a) => a.caseId === 'T4-00456:7').map((a) => a.action)).toEqual(['record'])
  })

  it('a restart (the file closed and opened again) loses nothing, and the alarm is never new again', async () => {
    const { ledger, path } = newLedger()
    await ledger.record(alarm(1), T0)
    await ledger.record(relay('gw-0017/relay/9'), T0 + S, { area: 'abag-03' })
    await ledger.take('T4-00123:1', 'Saruul', T0 + 10 * S)
    await ledger.acknowledge('T4-00123:1', { by: 'Saruul', at: T0 + 20 * S })
    await ledger.comment('T4-00123:1', { by: 'Saruul', at: T0 + 30 * S, text: 'called the household: a fall from a horse' })
    const before = await ledger.get('T4-00123:1')
    await ledger.close()

    const reopened = ledgerAt(path)
    expect(await reopened.get('T4-00123:1')).toEqual(before)
    expect(await reopened.get('gw-0017/relay/9')).toMatchObject({ area: 'abag-03', relay: { what: 'livestock', for: 'Bayar', household: 'Dorj', member: 'Tsetseg' } })
    const copy = await reopened.record(alarm(1, { attempt: 2 }), T0 + MIN)
    expect(copy.outcome).toBe('republication')
    expect(copy.case.stage).toBe('acknowledged')
    expect((await reopened.queue(T0 + MIN)).map((q) => q.case.id)).toEqual(['T4-00123:1', 'gw-0017/relay/9'])
    expect(await reopened.verifyAudit()).toMatchObject({ ok: true, rows: 6 })
  })

  it('[CONSOLE-10] another item under a known id: every version kept (up to MAX_VERSIONS), the case reopened with its deadlines again', async () => {
    const { ledger } = newLedger()
    await ledger.record(alarm(5), T0)
    await ledger.resolve('T4-00123:5', { by: 'Saruul', at: T0 + 5 * MIN, disposition: 'help arrived' })
    const forged = await ledger.record(alarm(5, { kind: 'fire', code: 110 }), T0 + 10 * MIN)
    expect(forged.outcome).toBe('conflict')
    expect(forged.differs).toEqual(['kind', 'code'])
    expect(forged.case.stage).toBe('received')
    expect(forged.case.resolvedAt).toBeNull()
    expect(forged.case.acknowledgeDueAt).toBe(T0 + 10 * MIN + 90 * S)
    expect(forged.case.history.map((h) => [h.stage, h.by])).toEqual([
      ['received', 'gateway:gw-0017'],
      ['resolved', 'Saruul'],
      ['received', 'ledger'],
    ])
    expect(forged.case.conflict).toMatchObject({ warning: CONFLICT_WARNING, differs: ['kind', 'code'], since: T0 + 10 * MIN })
    expect(forged.case.conflict?.versions.map((v) => v.event.kind)).toEqual(['emergency', 'fire'])
    // A copy of the second version is a republication of it; one from another gateway is another conflict.
    expect((await ledger.record(alarm(5, { kind: 'fire', code: 110, attempt: 2 }), T0 + 11 * MIN)).outcome).toBe('republication')
    const other = await ledger.record(alarm(5), T0 + 12 * MIN, { gateway: 'gw-9999' })
    expect(other.differs).toEqual(['gateway (topic)'])
    expect(other.case.conflict?.differs).toEqual(['kind', 'code', 'gateway (topic)'])
    for (let i = 0; i < 2 * MAX_VERSIONS; i++) await ledger.record(alarm(5, { text: `forgery ${i}` }), T0 + 13 * MIN + i)
    const flooded = await ledger.get('T4-00123:5')
    expect(flooded.conflict?.versions).toHaveLength(MAX_VERSIONS)
    expect(flooded.copies).toBe(4 + 2 * MAX_VERSIONS)
    expect((await ledger.audit({ caseId: 'T4-00123:5' })).filter((a) => a.action === 'conflict')).toHaveLength(2 + 2 * MAX_VERSIONS)
  })

  it('estimated first, corrected later: a republication while open (as platform/cases.ts), a conflict once resolved', async () => {
    const { ledger } = newLedger()
    const booted = { time: { at: 5_000, estimated: true }, received: 5_000 }
    await ledger.record(alarm(8, booted), T0)
    expect((await ledger.record(alarm(8, { attempt: 2 }), T0 + S)).outcome).toBe('republication')
    await ledger.record(alarm(9, booted), T0)
    await ledger.resolve('T4-00123:9', { by: 'Saruul', at: T0 + 2 * S, disposition: 'false alarm' })
    expect((await ledger.record(alarm(9, { attempt: 2 }), T0 + 3 * S)).outcome).toBe('conflict')
  })

  it('an alert topic makes an alarm whatever its class; the area from the lookup; a cancel names its alarm both ways', async () => {
    const { ledger } = newLedger({ gatewayArea: (g) => (g === 'gw-0017' ? 'abag-03' : undefined) })
    const r = await ledger.record(callback(1, { kind: 'panic', class: 'request' }), T0, { class: 'alarm' })
    expect(r.case).toMatchObject({ class: 'alarm', area: null })
    const c = await ledger.record(alarm(2), T0 + S)
    expect(c.case.area).toBe('abag-03')
    const cancel = await ledger.record(alarm(3, { kind: 'cancel', code: 406, cancels: 'T4-00123:2' }), T0 + 2 * S, { unknownKind: false })
    expect(cancel.case.cancels).toBe('T4-00123:2')
    expect((await ledger.get('T4-00123:2')).cancelledBy).toBe('T4-00123:3')
    // A cancel that came first (the alarm later): found when the alarm comes.
    await ledger.record(alarm(11, { kind: 'cancel', code: 406, cancels: 'T4-00123:10' }), T0 + 3 * S)
    expect((await ledger.record(alarm(10), T0 + 4 * S)).case.cancelledBy).toBe('T4-00123:11')
  })

  it('refuses what is not a case, with a clear error, and records nothing', async () => {
    const { ledger } = newLedger()
    await expect(ledger.record(alarm(1, { class: 'trouble', kind: 'mains-lost' }), T0)).rejects.toMatchObject({ code: 'LEDGER_NOT_A_CASE', message: expect.stringContaining('class trouble') })
    await expect(ledger.record(alarm(1, { id: '' }), T0)).rejects.toMatchObject({ code: 'LEDGER_BAD_INPUT' })
    await expect(ledger.record(alarm(1), Number.NaN)).rejects.toMatchObject({ code: 'LEDGER_BAD_INPUT', message: expect.stringContaining('UNIX milliseconds') })
    await expect(ledger.record(alarm(1, { kind: undefined as never }), T0)).rejects.toMatchObject({ code: 'LEDGER_BAD_INPUT', message: 'T4-00123:1 has no kind' })
    await expect(ledger.record(null as never, T0)).rejects.toMatchObject({ code: 'LEDGER_BAD_INPUT' })
    await expect(ledger.get('T4-00123:1')).rejects.toMatchObject({ code: 'LEDGER_UNKNOWN_CASE', message: "no alarm or request 'T4-00123:1' is in the ledger" })
    expect(await ledger.find({})).toEqual([])
  })

  it("a household's history: cases by terminal, gateway, area and time, newest first", async () => {
    const { ledger } = newLedger()
    for (let n = 1; n <= 3; n++) await ledger.record(alarm(n), T0 + n * MIN, { area: 'abag-03' })
    await ledger.record(callback(1), T0 + 10 * MIN, { area: 'abag-07' })
    expect((await ledger.find({ terminal: 'T4-00123' })).map((c) => c.number)).toEqual([3, 2, 1])
    expect((await ledger.find({ area: 'abag-07' })).map((c) => c.id)).toEqual(['T4-00456:1'])
    expect((await ledger.find({ from: T0 + 2 * MIN, to: T0 + 10 * MIN })).map((c) => c.number)).toEqual([3, 2])
    expect((await ledger.find({ gateway: 'gw-0017', limit: 1 })).map((c) => c.number)).toEqual([3])
    await expect(ledger.find({ limit: 0 })).rejects.toMatchObject({ code: 'LEDGER_BAD_INPUT' })
  })
})

describe('ledger: the file', () => {
  it('is marked as a ledger (its own application_id and layout), WAL, synchronous=FULL', async () => {
    const { ledger, path } = newLedger()
    await ledger.close()
    const db = new Database(path, { readonly: true })
    expect(db.pragma('application_id', { simple: true })).toBe(LEDGER_APPLICATION_ID)
    expect(db.pragma('user_version', { simple: true })).toBe(LEDGER_SCHEMA_VERSION)
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal')
    db.close()
  })

  it("refuses a foreign file (a gateway's store), a newer layout, an empty file; says what to do", () => {
    const dir = tempDir()
    const gateway = join(dir, 'gateway.db')
    const g = new Database(gateway)
    g.pragma(`application_id = ${0x53544c4b}`)
    g.exec('CREATE TABLE events (id TEXT)')
    g.close()
    expect(() => SqliteLedger.open(gateway)).toThrow(expect.objectContaining({ code: 'LEDGER_FOREIGN', message: expect.stringContaining('not a Steppelink ledger') }))

    const newer = join(dir, 'newer.db')
    SqliteLedger.open(newer).close()
    const n = new Database(newer)
    n.pragma(`user_version = ${LEDGER_SCHEMA_VERSION + 1}`)
    n.close()
    expect(() => SqliteLedger.open(newer)).toThrow(expect.objectContaining({ code: 'LEDGER_NEWER', message: expect.stringContaining('newer Steppelink') }))

    const empty = join(dir, 'empty.db')
    writeFileSync(empty, '')
    expect(() => SqliteLedger.open(empty)).toThrow(expect.objectContaining({ code: 'LEDGER_EMPTY', message: expect.stringContaining('mv ') }))

    const text = join(dir, 'notes.db')
    writeFileSync(text, 'not a database at all, but some notes that are long enough to have a header'.repeat(20))
    expect(() => SqliteLedger.open(text)).toThrow(expect.objectContaining({ code: 'LEDGER_FOREIGN' }))
  })

  it('a closed ledger says so', async () => {
    const { ledger } = newLedger()
    await ledger.close()
    await expect(ledger.record(alarm(1), T0)).rejects.toMatchObject({ code: 'LEDGER_CLOSED' })
    await expect(ledger.queue(T0)).rejects.toMatchObject({ code: 'LEDGER_CLOSED' })
  })
})
