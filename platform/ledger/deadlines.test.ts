import { describe, expect, it } from 'vitest'
import { alarm, callback, H, MIN, newLedger, relay, S, T0 } from './ledger.suite.js'
import { LEDGER_DEFAULTS, withSettings } from './settings.js'

describe('ledger: deadlines per kind, configurable', () => {
  it('defaults: acknowledge an alarm within 90 s, handle a request within 24 h; per kind over per class', async () => {
    const { ledger } = newLedger({ settings: { deadlines: { kinds: { fire: { acknowledgeS: 60, handleS: 2 * 3600 }, relay: { handleS: 4 * 3600 } } } } })
    expect((await ledger.record(alarm(1), T0)).case).toMatchObject({ acknowledgeDueAt: T0 + 90 * S, handleDueAt: null })
    expect((await ledger.record(alarm(2, { kind: 'fire', code: 110 }), T0)).case).toMatchObject({ acknowledgeDueAt: T0 + 60 * S, handleDueAt: T0 + 2 * H })
    expect((await ledger.record(callback(1), T0)).case).toMatchObject({ acknowledgeDueAt: null, handleDueAt: T0 + 24 * H })
    expect((await ledger.record(relay('gw-0017/relay/1'), T0)).case).toMatchObject({ acknowledgeDueAt: null, handleDueAt: T0 + 4 * H })
  })

  it('settings are checked (the first bad field named), kept in the file, changed with an audit row; cases keep the deadlines they were given', async () => {
    expect(() => withSettings(LEDGER_DEFAULTS, { levels: [] })).toThrow(expect.objectContaining({ code: 'LEDGER_BAD_SETTINGS', message: expect.stringContaining('levels') }))
    // A misspelt field is refused, not ignored: the alarm would stay on the default.
    expect(() => withSettings(LEDGER_DEFAULTS, { deadlines: { alarm: { acknowledgS: 60 } as never } })).toThrow(
      expect.objectContaining({ code: 'LEDGER_BAD_SETTINGS', message: 'deadlines/alarm: must not have additional properties (acknowledgS)' }),
    )
    expect(() => withSettings(LEDGER_DEFAULTS, { deadlines: { request: { handleS: 0 } } })).toThrow(/deadlines\/request\/handleS/)
    expect(() => withSettings(LEDGER_DEFAULTS, { levels: [LEDGER_DEFAULTS.levels[0]!, LEDGER_DEFAULTS.levels[0]!] })).toThrow("levels: the name 'village' is given twice")
    expect(() => withSettings(LEDGER_DEFAULTS, { nearShare: 2 })).toThrow(/nearShare/)
    expect(() => newLedger({ settings: { autoEscalate: 'yes' as never } })).toThrow(expect.objectContaining({ code: 'LEDGER_BAD_SETTINGS' }))

    const { ledger } = newLedger()
    await ledger.record(alarm(1), T0)
    const s = await ledger.updateSettings({ deadlines: { alarm: { acknowledgeS: 45 } } }, 'Supervisor Ganbold', T0 + MIN)
    expect(s.deadlines.alarm).toEqual({ acknowledgeS: 45, handleS: null })
    expect(await ledger.settings()).toEqual(s)
    expect((await ledger.get('T4-00123:1')).acknowledgeDueAt).toBe(T0 + 90 * S)
    expect((await ledger.record(alarm(2), T0 + 2 * MIN)).case.acknowledgeDueAt).toBe(T0 + 2 * MIN + 45 * S)
    await expect(ledger.updateSettings({ levels: [] }, 'Supervisor Ganbold', T0)).rejects.toMatchObject({ code: 'LEDGER_BAD_SETTINGS' })
    const rows = (await ledger.audit()).filter((a) => a.action === 'settings')
    expect(rows.map((r) => r.actor)).toEqual(['ledger', 'Supervisor Ganbold'])
    expect(rows[1]?.details).toMatchObject({ before: { deadlines: { alarm: { acknowledgeS: 90 } } }, after: { deadlines: { alarm: { acknowledgeS: 45 } } } })
  })
})

describe('ledger: the timer (overdue, nextDeadline) and escalation', () => {
  it('nobody acknowledges: at 90 s the deadline is overdue, escalateTo says the village; the escalation tells the button and sets the new expectation', async () => {
    const { ledger } = newLedger({
      settings: { levels: [...LEDGER_DEFAULTS.levels.map((l) => (l.name === 'village' ? { ...l, contacts: [{ name: 'Village head Batbayar', phone: '13800000017' }] } : l))] },
    })
    await ledger.record(alarm(1), T0)
    expect(await ledger.nextDeadline(T0)).toEqual({ at: T0 + 90 * S, id: 'T4-00123:1', deadline: 'acknowledge' })
    expect(await ledger.overdue(T0 + 89 * S)).toEqual([])
    const [late] = await ledger.overdue(T0 + 90 * S)
    expect(late).toEqual({ id: 'T4-00123:1', class: 'alarm', kind: 'emergency', area: null, deadline: 'acknowledge', dueAt: T0 + 90 * S, lateMs: 0, escalateTo: 'village', alerted: false })
    // No polling: at the deadline itself, the next one to wake for is after it.
    expect(await ledger.nextDeadline(T0 + 90 * S)).toBeNull()

    await ledger.noteAlerted('T4-00123:1', { deadline: 'acknowledge', dueAt: T0 + 90 * S, by: 'deadline timer', at: T0 + 90 * S })
    await ledger.noteAlerted('T4-00123:1', { deadline: 'acknowledge', dueAt: T0 + 90 * S, by: 'deadline timer', at: T0 + 91 * S })
    expect((await ledger.overdue(T0 + 91 * S))[0]?.alerted).toBe(true)

    const notice = await ledger.escalate('T4-00123:1', { by: 'deadline timer', at: T0 + 91 * S, reason: 'not acknowledged within 90 s', to: 'village', auto: true })
    expect(notice).toMatchObject({
      text: 'escalated to the village',
      dueAt: T0 + 91 * S + 4 * H,
      etaMin: 240,
      level: { index: 0, name: 'village', deadlineS: 4 * 3600, contacts: [{ name: 'Village head Batbayar', phone: '13800000017' }] },
    })
    expect(Buffer.byteLength(notice.text)).toBeLessThanOrEqual(120)
    expect(notice.case.level).toMatchObject({ name: 'village', auto: true, reason: 'not acknowledged within 90 s' })
    // The escalation is the new expectation: the missed acknowledgement does not escalate again.
    expect(await ledger.overdue(T0 + 2 * MIN)).toEqual([])
    expect(await ledger.nextDeadline(T0 + 2 * MIN)).toEqual({ at: T0 + 91 * S + 4 * H, id: 'T4-00123:1', deadline: 'escalation' })
    const atLevel = await ledger.overdue(T0 + 91 * S + 4 * H)
    expect(atLevel).toMatchObject([{ deadline: 'escalation', level: 'village', escalateTo: 'township', alerted: false }])
    expect((await ledger.audit({ caseId: 'T4-00123:1' })).map((a) => a.action)).toEqual(['record', 'deadline-alert', 'escalate'])
  })

  it('escalation goes up only: next, or a named level above; the top and unknown names refused; a resolved case is not escalated', async () => {
    const { ledger } = newLedger()
    await ledger.record(callback(1), T0)
    const id = 'T4-00456:1'
    expect((await ledger.escalate(id, { by: 'Saruul', at: T0 + H, reason: 'the village cannot reach the household' })).text).toBe('escalated to the village')
    expect((await ledger.escalate(id, { by: 'Saruul', at: T0 + 2 * H, reason: 'needs the county', to: 'county' })).level).toMatchObject({ index: 2, name: 'county' })
    await expect(ledger.escalate(id, { by: 'Saruul', at: T0 + 3 * H, reason: 'x', to: 'township' })).rejects.toMatchObject({
      code: 'LEDGER_BAD_LEVEL',
      message: 'request T4-00456:1 is already at the county: escalation goes up only (village -> township -> county)',
    })
    await expect(ledger.escalate(id, { by: 'Saruul', at: T0 + 3 * H, reason: 'x' })).rejects.toMatchObject({ code: 'LEDGER_BAD_LEVEL', message: expect.stringContaining('the top level') })
    await expect(ledger.escalate(id, { by: 'Saruul', at: T0 + 3 * H, reason: 'x', to: 'league' })).rejects.toMatchObject({
      code: 'LEDGER_BAD_LEVEL',
      message: "no escalation level 'league': the levels are village, township, county",
    })
    await expect(ledger.escalate(id, { by: 'Saruul', at: T0 + 3 * H, reason: '' })).rejects.toMatchObject({ code: 'LEDGER_BAD_INPUT' })
    const c = await ledger.get(id)
    expect(c.escalations.map((e) => [e.name, e.auto])).toEqual([
      ['village', false],
      ['county', false],
    ])
    // At the top level a passed deadline is still overdue, with nowhere to escalate.
    expect(await ledger.overdue(T0 + 2 * H + 24 * H)).toMatchObject([{ deadline: 'escalation', level: 'county', escalateTo: null }])
    await ledger.resolve(id, { by: 'Saruul', at: T0 + 4 * H, disposition: 'the county vet came' })
    await expect(ledger.escalate('T4-00456:1', { by: 'Saruul', at: T0 + 5 * H, reason: 'x' })).rejects.toMatchObject({ code: 'LEDGER_STAGE_PASSED' })
  })

  it('autoEscalate off: overdue still lists the miss, with nothing to escalate to', async () => {
    const { ledger } = newLedger({ settings: { autoEscalate: false } })
    await ledger.record(callback(1), T0)
    expect(await ledger.overdue(T0 + 25 * H)).toMatchObject([{ deadline: 'handle', dueAt: T0 + 24 * H, lateMs: H, escalateTo: null }])
  })

  it('a follow-up after closing: due date, overdue when missed, outcome recorded later', async () => {
    const { ledger } = newLedger()
    await ledger.record(callback(1), T0)
    const id = 'T4-00456:1'
    await expect(ledger.scheduleFollowUp(id, { by: 'Saruul', at: T0 + H, dueAt: T0 + 48 * H })).rejects.toMatchObject({
      code: 'LEDGER_NO_FOLLOW_UP',
      message: expect.stringContaining('after it is resolved'),
    })
    await ledger.resolve(id, { by: 'Saruul', at: T0 + 2 * H, disposition: 'called back: the well pump is repaired' })
    await expect(ledger.scheduleFollowUp(id, { by: 'Saruul', at: T0 + 2 * H, dueAt: T0 + H })).rejects.toMatchObject({ code: 'LEDGER_BAD_INPUT' })
    await ledger.scheduleFollowUp(id, { by: 'Saruul', at: T0 + 2 * H, dueAt: T0 + 50 * H, note: 'ask whether the pump still works' })
    expect(await ledger.nextDeadline(T0 + 3 * H)).toEqual({ at: T0 + 50 * H, id, deadline: 'follow-up' })
    expect(await ledger.overdue(T0 + 51 * H)).toMatchObject([{ id, deadline: 'follow-up', lateMs: H, escalateTo: null }])
    const done = await ledger.recordFollowUp(id, { by: 'Bolormaa', at: T0 + 52 * H, outcome: 'pump works; the family thanks the centre' })
    expect(done.followUps).toEqual([
      {
        n: 1,
        dueAt: T0 + 50 * H,
        setAt: T0 + 2 * H,
        setBy: 'Saruul',
        note: 'ask whether the pump still works',
        outcome: 'pump works; the family thanks the centre',
        doneAt: T0 + 52 * H,
        doneBy: 'Bolormaa',
      },
    ])
    expect(await ledger.overdue(T0 + 60 * H)).toEqual([])
    expect(await ledger.nextDeadline(T0 + 60 * H)).toBeNull()
    await expect(ledger.recordFollowUp(id, { by: 'Bolormaa', at: T0 + 53 * H, outcome: 'again' })).rejects.toMatchObject({ code: 'LEDGER_NO_FOLLOW_UP' })
  })
})

describe("ledger: the desk's queue", () => {
  it('open cases: alarms before requests, then oldest first, each with its deadline state at now (ok, near, passed)', async () => {
    const { ledger } = newLedger()
    await ledger.record(callback(1), T0)
    await ledger.record(alarm(2), T0 + 10 * S)
    await ledger.record(alarm(1), T0 + 20 * S)
    await ledger.record(callback(2), T0 + 30 * S)
    await ledger.record(alarm(3), T0 + 40 * S)
    await ledger.resolve('T4-00123:3', { by: 'Saruul', at: T0 + 50 * S, disposition: 'false alarm' })
    await ledger.acknowledge('T4-00123:1', { by: 'Saruul', at: T0 + 60 * S })
    const now = T0 + 85 * S
    const q = await ledger.queue(now)
    expect(q.map((e) => e.case.id)).toEqual(['T4-00123:2', 'T4-00123:1', 'T4-00456:1', 'T4-00456:2'])
    expect(q.map((e) => e.ageMs)).toEqual([75 * S, 65 * S, 85 * S, 55 * S])
    // alarm 2: 75 s of 90 gone, 15 s left (under a quarter): near. alarm 1: acknowledged, no deadline left.
    expect(q.map((e) => [e.deadline?.kind ?? null, e.deadline?.state ?? null])).toEqual([
      ['acknowledge', 'near'],
      [null, null],
      ['handle', 'ok'],
      ['handle', 'ok'],
    ])
    expect((await ledger.queue(T0 + 100 * S))[0]?.deadline).toEqual({ kind: 'acknowledge', dueAt: T0 + 100 * S, since: T0 + 10 * S, state: 'passed' })
    expect((await ledger.queue(T0 + 70 * S))[0]?.deadline?.state).toBe('ok')
  })
})
