/**
 * The figures against a scripted day of cases with known answers: 20 cases (12 alarms, 8
 * requests) in two areas and one without, with hand-chosen times, and two cases just
 * outside the day. Every expected figure below was worked out by hand from the script (the
 * sorted values are written out in the comments), not by the code under test.
 */

import { describe, expect, it } from 'vitest'
import { percentile } from './deadlines.js'
import type { Figures } from './ledger.js'
import { alarm, callback, H, ledgerAt, MIN, S, tempDir } from './ledger.suite.js'
import type { SqliteLedger } from './sqlite-ledger.js'

/** Midnight of the scripted day. */
const D = Date.UTC(2026, 0, 1)
const at = (hhmm: string) => {
  const [h, m] = hhmm.split(':').map(Number) as [number, number]
  return D + h * H + m * MIN
}

interface Scripted {
  id: string
  area: string | null
  received: string
  /** Seconds after it was received. */
  ack?: number
  dispatch?: number
  resolve?: number
  escalate?: number
}

const ALARMS: Scripted[] = [
  { id: 'A1', area: 'abag-03', received: '08:00', ack: 30, dispatch: 300, resolve: 3600 },
  { id: 'A2', area: 'abag-03', received: '08:10', ack: 45, dispatch: 480, resolve: 3000 },
  { id: 'A3', area: 'abag-03', received: '09:00', ack: 60, dispatch: 600, resolve: 4200 },
  { id: 'A4', area: 'abag-03', received: '10:00', ack: 20, resolve: 300 },
  { id: 'A5', area: 'abag-07', received: '11:00', ack: 120, dispatch: 720, resolve: 2400, escalate: 60 },
  { id: 'A6', area: 'abag-07', received: '12:00', ack: 90, dispatch: 900, resolve: 2700 },
  { id: 'A7', area: 'abag-07', received: '13:00', ack: 40, dispatch: 360 },
  { id: 'A8', area: 'abag-07', received: '14:00', ack: 300, dispatch: 1200, resolve: 3000 },
  // Dispatched at once, never acknowledged on its own: its acknowledgement time is the dispatch's.
  { id: 'A9', area: null, received: '15:00', dispatch: 50, resolve: 1800 },
  // Resolved after the day (00:30): acknowledged as of the day's end.
  { id: 'A10', area: 'abag-03', received: '20:00', ack: 35, resolve: 16_200 },
  // Nobody acknowledges: overdue at the end of the day (due 23:51:30).
  { id: 'A11', area: 'abag-03', received: '23:50' },
  { id: 'A12', area: 'abag-07', received: '05:00', ack: 25, dispatch: 420, resolve: 3000 },
]

const REQUESTS: Scripted[] = [
  { id: 'R1', area: 'abag-03', received: '08:30', ack: 600, resolve: 7200 },
  // Resolved without an acknowledgement first: its acknowledgement time is the resolve's.
  { id: 'R2', area: 'abag-03', received: '09:30', resolve: 3600 },
  { id: 'R3', area: 'abag-07', received: '10:30', ack: 300, resolve: 7200 },
  { id: 'R4', area: 'abag-07', received: '11:30' },
  // Escalated to the village at 13:45 (due 17:45), open at the end: overdue.
  { id: 'R5', area: 'abag-03', received: '13:30', ack: 1800, escalate: 900 },
  { id: 'R6', area: null, received: '16:00', ack: 900, resolve: 3600 },
  { id: 'R7', area: 'abag-07', received: '18:00', resolve: 10_800 },
  { id: 'R8', area: 'abag-03', received: '22:00', ack: 120 },
]

async function scriptedDay(ledger: SqliteLedger): Promise<void> {
  const by = 'Saruul'
  for (const [list, make] of [
    [ALARMS, alarm],
    [REQUESTS, callback],
  ] as const) {
    for (const c of list) {
      const r = at(c.received)
      const n = Number(c.id.slice(1))
      await ledger.record(make(n, { id: c.id }), r, { area: c.area })
      if (c.escalate !== undefined) await ledger.escalate(c.id, { by: 'Supervisor Ganbold', at: r + c.escalate * S, reason: 'scripted' })
      if (c.ack !== undefined) await ledger.acknowledge(c.id, { by, at: r + c.ack * S })
      if (c.dispatch !== undefined) await ledger.dispatch(c.id, { by, at: r + c.dispatch * S, unit: 'patrol car 110-3', etaMin: 30 })
      if (c.resolve !== undefined) await ledger.resolve(c.id, { by, at: r + c.resolve * S, disposition: 'scripted' })
    }
  }
  // R1's follow-up is due at 20:00 and not made: overdue at the day's end. A1's is made in time.
  await ledger.scheduleFollowUp('R1', { by, at: at('10:30'), dueAt: at('20:00') })
  await ledger.scheduleFollowUp('A1', { by, at: at('09:00'), dueAt: at('12:00') })
  await ledger.recordFollowUp('A1', { by, at: at('11:00'), outcome: 'fine' })
  // Outside the day: the evening before, and the first second of the next.
  await ledger.record(alarm(90, { id: 'X1' }), D - H, { area: 'abag-03' })
  await ledger.record(alarm(91, { id: 'X2' }), D + 24 * H, { area: 'abag-03' })
}

/** Seconds to the ms the figures are in. */
const p = (count: number, p50: number | null, p95: number | null) => ({ count, p50: p50 === null ? null : p50 * S, p95: p95 === null ? null : p95 * S })
const stages = (received: number, acknowledged: number, dispatched: number, resolved: number) => ({ received, acknowledged, dispatched, resolved })

describe('ledger: figures from the ledger, a scripted day with known answers', () => {
  it('the whole day: cases by class and state, closure rate, time to acknowledge and to dispatch (p50, p95), overdue, escalated', async () => {
    const ledger = ledgerAt(`${tempDir()}/ledger.db`, { at: D })
    await scriptedDay(ledger)
    const { total } = await ledger.figures({ from: D, to: D + 24 * H })
    expect(total).toEqual<Figures>({
      from: D,
      to: D + 24 * H,
      opened: 20,
      // Resolved by 24:00: A1-A6, A8, A9, A12 (9 alarms); R1, R2, R3, R6, R7 (5 requests). 14 of 20.
      closed: 14,
      closureRate: 14 / 20,
      byClass: {
        // A11 received; A10 acknowledged (resolved only after the day); A7 dispatched.
        alarm: stages(1, 1, 1, 9),
        // R4 received; R5, R8 acknowledged.
        request: stages(1, 2, 0, 5),
      },
      // 18 values, s: 20 25 30 35 40 45 50 60 [90] 120 120 300 300 600 900 1800 3600 [10800]
      // p50 = the ceil(0.5 x 18) = 9th; p95 = the ceil(0.95 x 18) = 18th.
      timeToAcknowledge: p(18, 90, 10_800),
      // 9 values, s: 50 300 360 420 [480] 600 720 900 [1200]: the 5th and the 9th.
      timeToDispatch: p(9, 480, 1200),
      // A11 (acknowledge due 23:51:30), R5 (the village's due 17:45), R1 (its follow-up due 20:00).
      overdue: 3,
      // A5, R5.
      escalated: 2,
    })
  })

  it('per area (an area for cases whose gateway had none too), and one area asked alone', async () => {
    const ledger = ledgerAt(`${tempDir()}/ledger.db`, { at: D })
    await scriptedDay(ledger)
    const day = { from: D, to: D + 24 * H }
    const { areas } = await ledger.figures(day)
    expect(areas.map((a) => a.area)).toEqual(['abag-03', 'abag-07', null])
    const [a03, a07, none] = areas.map((a) => a.figures) as [Figures, Figures, Figures]
    // abag-03: A1 A2 A3 A4 A10 A11 R1 R2 R5 R8; closed A1-A4, R1, R2.
    expect(a03).toMatchObject({ opened: 10, closed: 6, closureRate: 0.6, byClass: { alarm: stages(1, 1, 0, 4), request: stages(0, 2, 0, 2) } })
    // s: 20 30 35 45 [60] 120 600 1800 [3600]; dispatch 300 [480] [600].
    expect(a03).toMatchObject({ timeToAcknowledge: p(9, 60, 3600), timeToDispatch: p(3, 480, 600), overdue: 3, escalated: 1 })
    // abag-07: A5 A6 A7 A8 A12 R3 R4 R7; closed A5 A6 A8 A12 R3 R7.
    expect(a07).toMatchObject({ opened: 8, closed: 6, closureRate: 0.75, byClass: { alarm: stages(0, 0, 1, 4), request: stages(1, 0, 0, 2) } })
    // s: 25 40 90 [120] 300 300 [10800]; dispatch 360 420 [720] 900 [1200].
    expect(a07).toMatchObject({ timeToAcknowledge: p(7, 120, 10_800), timeToDispatch: p(5, 720, 1200), overdue: 0, escalated: 1 })
    // No area: A9, R6, both closed. s: [50] [900]; dispatch [50].
    expect(none).toMatchObject({ opened: 2, closed: 2, closureRate: 1, timeToAcknowledge: p(2, 50, 900), timeToDispatch: p(1, 50, 50), overdue: 0, escalated: 0 })

    const alone = await ledger.figures({ ...day, area: 'abag-07' })
    expect(alone.total).toEqual(a07)
    expect(alone.areas).toEqual([{ area: 'abag-07', figures: a07 }])
  })

  it('per period (6 h), each as it stood at the end of its period', async () => {
    const ledger = ledgerAt(`${tempDir()}/ledger.db`, { at: D })
    await scriptedDay(ledger)
    const { periods } = await ledger.figures({ from: D, to: D + 24 * H, periodMs: 6 * H })
    expect(periods.map((f) => [f.from, f.to])).toEqual([
      [D, D + 6 * H],
      [D + 6 * H, D + 12 * H],
      [D + 12 * H, D + 18 * H],
      [D + 18 * H, D + 24 * H],
    ])
    const [night, morning, afternoon, evening] = periods as [Figures, Figures, Figures, Figures]
    expect(night).toMatchObject({ opened: 1, closed: 1, closureRate: 1, timeToAcknowledge: p(1, 25, 25), timeToDispatch: p(1, 420, 420), overdue: 0, escalated: 0 })
    // 06-12: A1 A2 R1 A3 R2 A4 R3 A5 R4; at 12:00 R3 (resolved 12:30) is acknowledged, R4 received.
    // s: 20 30 45 [60] 120 300 600 [3600]; dispatch 300 [480] 600 [720].
    expect(morning).toMatchObject({
      opened: 9,
      closed: 7,
      closureRate: 7 / 9,
      byClass: { alarm: stages(0, 0, 0, 5), request: stages(1, 1, 0, 2) },
      timeToAcknowledge: p(8, 60, 3600),
      timeToDispatch: p(4, 480, 720),
      overdue: 0,
      escalated: 1,
    })
    // 12-18: A6 A7 R5 A8 A9 R6; A7 dispatched, R5 acknowledged and past the village's 17:45.
    // s: 40 50 [90] 300 900 [1800]; dispatch 50 [360] 900 [1200].
    expect(afternoon).toMatchObject({ opened: 6, closed: 4, timeToAcknowledge: p(6, 90, 1800), timeToDispatch: p(4, 360, 1200), overdue: 1, escalated: 1 })
    // 18-24: R7 A10 R8 A11; only R7 closed. s: 35 [120] [10800]; no dispatch.
    expect(evening).toMatchObject({ opened: 4, closed: 1, closureRate: 0.25, timeToAcknowledge: p(3, 120, 10_800), timeToDispatch: p(0, null, null), overdue: 1 })
    // The periods add up to the day, but for R3, closed after its period ended.
    expect(periods.reduce((n, f) => n + f.opened, 0)).toBe(20)
    expect(periods.reduce((n, f) => n + f.closed, 0)).toBe(13)
  })

  it('a period with nothing in it, and bad queries', async () => {
    const ledger = ledgerAt(`${tempDir()}/ledger.db`, { at: D })
    const { total, areas } = await ledger.figures({ from: D, to: D + H })
    expect(total).toMatchObject({ opened: 0, closed: 0, closureRate: null, timeToAcknowledge: p(0, null, null), overdue: 0 })
    expect(areas).toEqual([])
    await expect(ledger.figures({ from: D, to: D })).rejects.toMatchObject({ code: 'LEDGER_BAD_INPUT', message: expect.stringContaining('must be after') })
    await expect(ledger.figures({ from: D, to: D + H, periodMs: 0 })).rejects.toMatchObject({ code: 'LEDGER_BAD_INPUT' })
    await expect(ledger.figures({ from: D, to: D + 365 * 24 * H, periodMs: 1000 })).rejects.toMatchObject({ code: 'LEDGER_BAD_INPUT', message: expect.stringContaining('10 000 periods') })
  })

  it('nearest-rank percentiles: always one of the values', () => {
    expect(percentile([], 50)).toBeNull()
    expect(percentile([7], 95)).toBe(7)
    expect(percentile([1, 2, 3, 4], 50)).toBe(2)
    expect(percentile([1, 2, 3, 4], 95)).toBe(4)
    expect(
      percentile(
        [...Array(100).keys()].map((i) => i + 1),
        95,
      ),
    ).toBe(95)
  })
})
