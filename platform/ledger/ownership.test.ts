import Database from 'better-sqlite3'
import { describe, expect, it } from 'vitest'
import { alarm, callback, ledgerAt, MIN, newLedger, S, T0 } from './ledger.suite.js'

describe('ledger: one owner per case', () => {
  it('two operators on two desks (one file) take one case at once: exactly one wins, the other is told who has it', async () => {
    const { ledger: desk, path } = newLedger()
    const sshConsole = ledgerAt(path)
    await desk.record(alarm(1), T0)
    // Both see it free (a stale read): the refusal comes from the UPDATE ... WHERE owner IS NULL, not from the read.
    expect((await desk.queue(T0 + S))[0]?.case.owner).toBeNull()
    expect((await sshConsole.queue(T0 + S))[0]?.case.owner).toBeNull()
    const results = await Promise.allSettled([desk.take('T4-00123:1', 'Saruul', T0 + 2 * S), sshConsole.take('T4-00123:1', 'Bolormaa', T0 + 2 * S)])
    const won = results.filter((r) => r.status === 'fulfilled')
    const lost = results.filter((r) => r.status === 'rejected')
    expect(won).toHaveLength(1)
    expect(lost).toHaveLength(1)
    const winner = (won[0] as PromiseFulfilledResult<{ owner: { name: string } | null }>).value.owner!.name
    expect(['Saruul', 'Bolormaa']).toContain(winner)
    expect((lost[0] as PromiseRejectedResult).reason).toMatchObject({ code: 'LEDGER_TAKEN', owner: winner, message: expect.stringContaining(`is taken by ${winner}`) })
    // Both desks see the one owner, and the trail has one take.
    expect((await sshConsole.get('T4-00123:1')).owner).toEqual({ name: winner, since: T0 + 2 * S })
    expect((await desk.audit({ caseId: 'T4-00123:1' })).filter((a) => a.action === 'take')).toHaveLength(1)
  })

  it('a hundred takes from two desks over twenty cases: each case has exactly one owner and one take in the trail', async () => {
    const { ledger: a, path } = newLedger()
    const b = ledgerAt(path)
    for (let n = 1; n <= 20; n++) await a.record(alarm(n), T0 + n)
    const tries = []
    for (let i = 0; i < 100; i++) {
      const id = `T4-00123:${(i % 20) + 1}`
      tries.push((i % 2 === 0 ? a : b).take(id, `operator ${i % 5}`, T0 + MIN + i))
    }
    const settled = await Promise.allSettled(tries)
    for (const r of settled) if (r.status === 'rejected') expect(r.reason.code).toBe('LEDGER_TAKEN')
    const takes = (await a.audit()).filter((x) => x.action === 'take')
    expect(takes).toHaveLength(20)
    expect(new Set(takes.map((t) => t.caseId)).size).toBe(20)
  })

  it("taking one's own case again changes nothing; only the owner releases; a supervisor hands over", async () => {
    const { ledger } = newLedger()
    await ledger.record(alarm(1), T0)
    await ledger.take('T4-00123:1', 'Saruul', T0 + S)
    expect((await ledger.take('T4-00123:1', 'Saruul', T0 + 2 * S)).owner).toEqual({ name: 'Saruul', since: T0 + S })
    await expect(ledger.release('T4-00123:1', 'Bolormaa', T0 + 3 * S)).rejects.toMatchObject({ code: 'LEDGER_NOT_OWNER', owner: 'Saruul' })
    expect((await ledger.release('T4-00123:1', 'Saruul', T0 + 4 * S)).owner).toBeNull()
    await expect(ledger.release('T4-00123:1', 'Saruul', T0 + 5 * S)).rejects.toMatchObject({ code: 'LEDGER_NOT_OWNER', message: 'case T4-00123:1 is not taken by anyone' })
    await ledger.take('T4-00123:1', 'Bolormaa', T0 + 6 * S)
    const handed = await ledger.handOver('T4-00123:1', { to: 'Saruul', by: 'Supervisor Ganbold', at: T0 + 7 * S, reason: 'Bolormaa is off shift' })
    expect(handed.owner).toEqual({ name: 'Saruul', since: T0 + 7 * S })
    const trail = await ledger.audit({ caseId: 'T4-00123:1' })
    expect(trail.map((a) => [a.action, a.actor])).toEqual([
      ['record', 'gateway:gw-0017'],
      ['take', 'Saruul'],
      ['release', 'Saruul'],
      ['take', 'Bolormaa'],
      ['hand-over', 'Supervisor Ganbold'],
    ])
    expect(trail[4]?.details).toEqual({ from: 'Bolormaa', to: 'Saruul', reason: 'Bolormaa is off shift' })
  })

  it("first responder: answering a case nobody owns takes it; another operator's case is refused", async () => {
    const { ledger } = newLedger()
    await ledger.record(alarm(1), T0)
    const acked = await ledger.acknowledge('T4-00123:1', { by: 'Saruul', at: T0 + 30 * S })
    expect(acked).toMatchObject({ owner: { name: 'Saruul', since: T0 + 30 * S }, acknowledgedBy: 'Saruul', stage: 'acknowledged' })
    await expect(ledger.dispatch('T4-00123:1', { by: 'Bolormaa', at: T0 + MIN, unit: 'patrol car 110-3', etaMin: 40 })).rejects.toMatchObject({ code: 'LEDGER_TAKEN', owner: 'Saruul' })
    expect((await ledger.audit({ caseId: 'T4-00123:1' })).map((a) => a.action)).toEqual(['record', 'take', 'acknowledge'])
  })
})

describe('ledger: stages forward only', () => {
  it('received -> acknowledged -> dispatched (unit, ETA) -> resolved (disposition), each with who and when', async () => {
    const { ledger } = newLedger()
    await ledger.record(alarm(1), T0)
    await ledger.acknowledge('T4-00123:1', { by: 'Saruul', at: T0 + 40 * S, text: 'help is coming' })
    await ledger.dispatch('T4-00123:1', { by: 'Saruul', at: T0 + 3 * MIN, unit: 'patrol car 110-3', etaMin: 40 })
    const done = await ledger.resolve('T4-00123:1', { by: 'Saruul', at: T0 + 50 * MIN, disposition: 'rider taken to the township clinic' })
    expect(done).toMatchObject({ stage: 'resolved', unit: 'patrol car 110-3', etaMin: 40, disposition: 'rider taken to the township clinic', resolvedAt: T0 + 50 * MIN })
    expect(done.history).toEqual([
      { stage: 'received', at: T0, by: 'gateway:gw-0017' },
      { stage: 'acknowledged', at: T0 + 40 * S, by: 'Saruul' },
      { stage: 'dispatched', at: T0 + 3 * MIN, by: 'Saruul' },
      { stage: 'resolved', at: T0 + 50 * MIN, by: 'Saruul' },
    ])
    expect((await ledger.audit({ caseId: 'T4-00123:1' })).find((a) => a.action === 'acknowledge')?.details).toEqual({ text: 'help is coming' })
  })

  it('a stage may be skipped (dispatch straight after the receipt), never taken backwards or twice', async () => {
    const { ledger } = newLedger()
    await ledger.record(alarm(1), T0)
    await ledger.dispatch('T4-00123:1', { by: 'Saruul', at: T0 + MIN, unit: 'patrol car 110-3', etaMin: 30 })
    await expect(ledger.acknowledge('T4-00123:1', { by: 'Saruul', at: T0 + 2 * MIN })).rejects.toMatchObject({
      code: 'LEDGER_STAGE_PASSED',
      message: 'alarm T4-00123:1 is already dispatched: stages move forward only, so it cannot be acknowledged now',
    })
    await expect(ledger.dispatch('T4-00123:1', { by: 'Saruul', at: T0 + 2 * MIN, unit: 'x', etaMin: 1 })).rejects.toMatchObject({ code: 'LEDGER_STAGE_PASSED' })
    await ledger.resolve('T4-00123:1', { by: 'Saruul', at: T0 + 3 * MIN, disposition: 'false alarm' })
    await expect(ledger.resolve('T4-00123:1', { by: 'Saruul', at: T0 + 4 * MIN, disposition: 'again' })).rejects.toMatchObject({ code: 'LEDGER_STAGE_PASSED' })
    expect((await ledger.get('T4-00123:1')).history.map((h) => h.stage)).toEqual(['received', 'dispatched', 'resolved'])
  })

  it('bad input is refused clearly and changes nothing', async () => {
    const { ledger } = newLedger()
    await ledger.record(callback(1), T0)
    const id = 'T4-00456:1'
    const refusals: [Promise<unknown>, string][] = [
      [ledger.take(id, '', T0), 'operator: an operator name is required (1-100 characters), got ""'],
      [ledger.take(id, '   ', T0), 'an operator name is required'],
      [ledger.take(id, 'x'.repeat(101), T0), 'operator: an operator name is at most 100 characters, got 101'],
      [ledger.take(id, 'Sar\u001b[2Juul', T0), 'cannot hold control characters'],
      [ledger.take(id, 42 as never, T0), 'an operator name is required'],
      [ledger.take(id, 'Saruul', -1), 'at must be UNIX milliseconds'],
      [ledger.take('', 'Saruul', T0), 'a case id is an alert id of 1-160 characters'],
      [ledger.dispatch(id, { by: 'Saruul', at: T0, unit: '', etaMin: 10 }), 'unit must be 1-100 characters, got 0'],
      [ledger.dispatch(id, { by: 'Saruul', at: T0, unit: 'car', etaMin: 1.5 }), 'etaMin must be whole minutes from 0 to 65535'],
      [ledger.resolve(id, { by: 'Saruul', at: T0, disposition: ' ' }), 'disposition must be 1-200 characters'],
      [ledger.acknowledge(id, { by: 'Saruul', at: T0, text: 'y'.repeat(201) }), 'text must be 0-200 characters, got 201'],
      [ledger.comment(id, { by: 'Saruul', at: T0, text: '' }), 'text must be 1-2000 characters'],
    ]
    for (const [p, message] of refusals) await expect(p).rejects.toMatchObject({ code: 'LEDGER_BAD_INPUT', message: expect.stringContaining(message) })
    await expect(ledger.take('T4-99999:1', 'Saruul', T0)).rejects.toMatchObject({ code: 'LEDGER_UNKNOWN_CASE' })
    await expect(ledger.acknowledge('T4-99999:1', { by: 'Saruul', at: T0 })).rejects.toMatchObject({ code: 'LEDGER_UNKNOWN_CASE' })
    expect(await ledger.get(id)).toMatchObject({ owner: null, stage: 'received', comments: [] })
    expect((await ledger.audit()).map((a) => a.action)).toEqual(['settings', 'record'])
  })

  it('a desk holding the write lock too long: the other is refused after busyMs, with nothing changed', async () => {
    const { ledger, path } = newLedger()
    await ledger.record(alarm(1), T0)
    const other = ledgerAt(path, { busyMs: 50 })
    const holder = new Database(path)
    holder.exec('BEGIN IMMEDIATE')
    try {
      await expect(other.take('T4-00123:1', 'Saruul', T0 + S)).rejects.toMatchObject({ code: 'LEDGER_WRITE_FAILED', message: expect.stringContaining('nothing was changed') })
    } finally {
      holder.exec('ROLLBACK')
      holder.close()
    }
    expect((await other.take('T4-00123:1', 'Saruul', T0 + 2 * S)).owner?.name).toBe('Saruul')
  })
})
