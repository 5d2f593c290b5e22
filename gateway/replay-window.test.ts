import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { ReplayWindow, WINDOW } from './replay-window.js'

describe('replay window [LINK-5.5]', () => {
  it('takes numbers a little out of order, and recognises each again', () => {
    const w = ReplayWindow.empty()
    for (const n of [1, 2, 4, 3, 7, 5]) {
      expect(w.has(n)).toBe(false)
      w.add(n)
      expect(w.has(n)).toBe(true)
    }
    expect(w.has(6)).toBe(false)
    expect(w.high).toBe(7)
  })

  it('treats a number far below the highest as a replay (it cannot be new: a terminal sends in order, alarms first)', () => {
    const w = ReplayWindow.empty()
    w.add(5_000)
    expect(w.has(5_000 - WINDOW)).toBe(true)
    expect(w.has(5_000 - WINDOW + 1)).toBe(false)
  })

  it('survives its stored form; a damaged one starts empty', () => {
    const w = ReplayWindow.empty()
    for (const n of [3, 9, 10, 1_000, 1_500]) w.add(n)
    const back = ReplayWindow.parse(JSON.parse(JSON.stringify(w)) as { high: number; bits: string })
    for (const n of [3, 9, 10, 1_000, 1_500, 600, 1_499]) expect(back.has(n)).toBe(w.has(n))
    expect(ReplayWindow.parse({ high: 4, bits: 'AAA=' }).high).toBe(0)
    expect(ReplayWindow.parse(null).high).toBe(0)
  })

  it('agrees with a set of every number taken, within the window (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 5_000 }), { maxLength: 300 }), (numbers) => {
        const w = ReplayWindow.empty()
        const taken = new Set<number>()
        for (const n of numbers) {
          w.add(n)
          taken.add(n)
        }
        const high = Math.max(0, ...taken)
        for (let n = Math.max(1, high - WINDOW + 1); n <= high + 3; n++) expect(w.has(n)).toBe(taken.has(n))
      }),
      { numRuns: 300 },
    )
  })
})
