import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { COMMAND_WINDOW, CommandWindow } from './command-window.js'
import { ReplayWindow } from './replay-window.js'

/**
 * The reference model of [MQTT-5.12] step 5: every number ever taken, in a plain list. The
 * kept ones are the highest COMMAND_WINDOW of them; a number is new if it was never taken
 * and fewer than COMMAND_WINDOW are kept or it is above the lowest kept; `floor` is a
 * migrated old window's high (everything up to it counts as taken).
 */
class Model {
  readonly ever: number[] = []
  constructor(readonly floor = 0) {}
  kept(): number[] {
    return [...this.ever].sort((a, b) => a - b).slice(-COMMAND_WINDOW)
  }
  isNew(n: number): boolean {
    if (n <= this.floor || this.ever.includes(n)) return false
    const kept = this.kept()
    return kept.length < COMMAND_WINDOW || n > kept[0]!
  }
  take(n: number): void {
    if (this.isNew(n)) this.ever.push(n)
  }
}

const MS = 1_767_252_645_000

describe('command window: the last 1,024 sequence numbers taken [MQTT-5.12]', () => {
  it('takes a command held back far behind newer ones (more than 1,024 ms of a platform clock)', () => {
    const w = CommandWindow.empty()
    w.add(MS + 60_000)
    expect(w.has(MS)).toBe(false)
    w.add(MS)
    expect(w.has(MS)).toBe(true)
    expect(w.has(MS + 60_000)).toBe(true)
  })

  it('refuses a captured command after 1,024 and after 2,000 newer ones, and anything below the lowest kept', () => {
    const w = CommandWindow.empty()
    w.add(MS)
    for (let i = 1; i <= COMMAND_WINDOW; i++) w.add(MS + i * 1_000)
    expect(w.size).toBe(COMMAND_WINDOW)
    expect(w.has(MS)).toBe(true)
    expect(w.has(MS + 500)).toBe(true)
    expect(w.has(MS + 1_500)).toBe(false)
    for (let i = COMMAND_WINDOW + 1; i <= 2_000; i++) w.add(MS + i * 1_000)
    expect(w.has(MS)).toBe(true)
    expect(w.has(MS + 900_000)).toBe(true)
    expect(w.lowestNew).toBe(MS + (2_000 - COMMAND_WINDOW + 1) * 1_000 + 1)
  })

  it('survives its stored form; the old form is a floor at its high; a damaged one starts empty', () => {
    const w = CommandWindow.empty()
    for (const n of [MS + 9, MS, MS + 3, MS + 10_000]) w.add(n)
    const back = CommandWindow.parse(JSON.parse(JSON.stringify(w)))
    for (const n of [MS, MS + 3, MS + 9, MS + 10_000, MS + 1, MS + 9_999, MS + 10_001]) expect(back.has(n)).toBe(w.has(n))
    const old = ReplayWindow.empty()
    old.add(MS)
    const migrated = CommandWindow.parse(old.toJSON())
    expect([migrated.has(MS), migrated.has(MS - 5_000), migrated.has(MS + 1)]).toEqual([true, true, false])
    for (const bad of [
      null,
      undefined,
      'x',
      7,
      [],
      { floor: -1, taken: '' },
      { floor: 0, taken: '5,0' },
      { floor: 9, taken: '5' },
      { floor: 0, taken: 'a,b' },
      { floor: 0, taken: '1,-1' },
      { high: 1.5, bits: '' },
    ]) {
      expect(CommandWindow.parse(bad).size, JSON.stringify(bad)).toBe(0)
      expect(CommandWindow.parse(bad).high, JSON.stringify(bad)).toBe(0)
    }
    expect(CommandWindow.parse({ floor: 0, taken: Array.from({ length: COMMAND_WINDOW + 1 }, () => '1').join(',') }).size).toBe(0)
  })

  it('agrees with the reference model, and never takes a number twice (property)', () => {
    let overflowed = 0
    // A platform's seqs: mostly growing by small steps, some held back by up to 1,500 places
    // (late, or replays), so that the window fills, overflows and sees late commands; the
    // array is long (fast-check keeps arrays short unless told); a migrated floor sometimes.
    const step = fc.record({ up: fc.integer({ min: 1, max: 3 }), back: fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: 0, max: 1_500 })) })
    fc.assert(
      fc.property(fc.array(step, { minLength: 0, maxLength: 1_800, size: 'max' }), fc.constantFrom(0, 0, 700), (steps, floor) => {
        let high = 0
        const numbers = steps.map(({ up, back }) => {
          high += up
          return Math.max(1, high - back)
        })
        const w = floor === 0 ? CommandWindow.empty() : CommandWindow.parse({ high: floor, bits: '' })
        const m = new Model(floor)
        const taken = new Set<number>()
        for (const n of numbers) {
          const isNew = !w.has(n)
          expect(isNew).toBe(m.isNew(n))
          if (isNew) {
            expect(taken.has(n)).toBe(false)
            taken.add(n)
          }
          w.add(n)
          m.take(n)
        }
        expect(w.size).toBe(m.kept().length)
        // The stored form gives the same window back.
        const back = CommandWindow.parse(JSON.parse(JSON.stringify(w)))
        for (let n = 0; n <= 5_500; n += 7) expect(back.has(n)).toBe(w.has(n))
        overflowed += w.size === COMMAND_WINDOW ? 1 : 0
      }),
      // A fixed seed: the coverage check below (enough runs that fill the window) must not
      // depend on the draw of the day (it failed once in CI with 5 of 40).
      { numRuns: 40, seed: 20261203 },
    )
    expect(overflowed).toBeGreaterThan(5)
  })
})
