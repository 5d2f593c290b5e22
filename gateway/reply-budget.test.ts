import { describe, expect, it } from 'vitest'
import { ReplyBudget } from './reply-budget.js'

describe('ReplyBudget (error reports, [MQTT-5.2])', () => {
  it('lets a burst through at once, then holds back and counts', () => {
    const b = new ReplyBudget({ burst: 3, perMinute: 6 })
    expect([0, 0, 0].map((t) => b.take(t))).toEqual([
      { send: true, suppressed: 0 },
      { send: true, suppressed: 0 },
      { send: true, suppressed: 0 },
    ])
    expect(b.take(0)).toEqual({ send: false, first: true })
    expect(b.take(1000)).toEqual({ send: false, first: false })
    expect(b.suppressed).toBe(2)
  })

  it('refills at perMinute, and the next report carries the count held back', () => {
    const b = new ReplyBudget({ burst: 2, perMinute: 6 })
    b.take(0)
    b.take(0)
    for (let t = 1; t <= 5; t++) expect(b.take(t * 1000).send).toBe(false)
    // 6 per minute: one token every 10 s.
    expect(b.take(9_999).send).toBe(false)
    expect(b.take(10_000)).toEqual({ send: true, suppressed: 6 })
    expect(b.suppressed).toBe(0)
    expect(b.take(10_001)).toEqual({ send: false, first: true })
  })

  it('never holds more than the burst, however long the quiet', () => {
    const b = new ReplyBudget({ burst: 2, perMinute: 60 })
    b.take(0)
    const sent = [1, 2, 3, 4].map(() => b.take(3_600_000).send)
    expect(sent).toEqual([true, true, false, false])
  })

  it('over an hour of flood, sends burst + perMinute × minutes and counts every other one', () => {
    const b = new ReplyBudget({ burst: 20, perMinute: 10 })
    let sent = 0
    let carried = 0
    const offered = 36_000
    for (let i = 0; i < offered; i++) {
      const d = b.take(i * 100)
      if (d.send) {
        sent++
        carried += d.suppressed
      }
    }
    expect(sent).toBe(20 + 600 - 1)
    expect(sent + carried + b.suppressed).toBe(offered)
  })

  it('refuses a budget that would never send', () => {
    expect(() => new ReplyBudget({ burst: 0, perMinute: 10 })).toThrow(RangeError)
    expect(() => new ReplyBudget({ burst: 5, perMinute: 0 })).toThrow(RangeError)
  })
})
