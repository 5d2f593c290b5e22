import { describe, expect, it } from 'vitest'
import type { ShownStage } from '../protocol/lifecycle.js'
import { checkDelivery, DeliveryLedger, describeBroken, terminalOf, type Arrival, type PressedTerminal, type Rule } from './delivery.js'

/** A terminal that pressed `pressed`, shows `stage` for each (or what `shown` says) and holds `pending` in memory. */
function terminal(id: string, pressed: number[], o: { stage?: ShownStage; shown?: Record<number, ShownStage>; pending?: number[] } = {}): PressedTerminal {
  const stages = new Map<number, ShownStage>(pressed.map((n) => [n, o.shown?.[n] ?? o.stage ?? 'received']))
  return { id, pressed, device: { stages, pending: (o.pending ?? []).map((number) => ({ number, kind: 'emergency' })) } }
}

const rules = (broken: { id: string; rule: Rule }[]) => broken.map((b) => `${b.rule} ${b.id}`)

describe('the delivery promise', () => {
  const cases: { name: string; terminals: PressedTerminal[]; arrivals: Arrival[]; lossyBroker?: boolean; stage?: ShownStage; broken: string[] }[] = [
    { name: 'held: each once, in order, received', terminals: [terminal('A', [1, 2, 3])], arrivals: ['A:1', 'A:2', 'A:3'], broken: [] },
    { name: 'held: two terminals interleaved, each in its order', terminals: [terminal('A', [1, 2]), terminal('B', [1, 2])], arrivals: ['B:1', 'A:1', 'B:2', 'A:2'], broken: [] },
    { name: 'held: a later stage counts as received', terminals: [terminal('A', [1], { stage: 'resolved' })], arrivals: ['A:1'], broken: [] },
    { name: 'held: nothing pressed, nothing arrived', terminals: [terminal('A', [])], arrivals: [], broken: [] },
    { name: 'held: arrivals of terminals not in the check are not its business', terminals: [terminal('A', [1])], arrivals: ['Z:9', 'A:1'], broken: [] },
    { name: 'arrived: one never reached the platform', terminals: [terminal('A', [1, 2], { shown: { 2: 'sent' } })], arrivals: ['A:1'], broken: ['arrived A:2', 'shown A:2'] },
    { name: 'once: a second first copy', terminals: [terminal('A', [1])], arrivals: ['A:1', 'A:1'], broken: ['once A:1'] },
    { name: 'order: a later alarm first', terminals: [terminal('A', [1, 2, 3])], arrivals: ['A:2', 'A:1', 'A:3'], broken: ['order A:1'] },
    { name: 'order: each overtaken alarm said once', terminals: [terminal('A', [1, 2, 3, 4])], arrivals: ['A:3', 'A:4', 'A:1', 'A:2'], broken: ['order A:1', 'order A:2'] },
    { name: 'order: overtaken and never arrived', terminals: [terminal('A', [1, 2], { shown: { 1: 'sent' } })], arrivals: ['A:2'], broken: ['order A:1', 'arrived A:1', 'shown A:1'] },
    {
      name: 'lossy broker: an alarm whose first copy was lost may be overtaken',
      terminals: [terminal('A', [1, 2, 3])],
      arrivals: ['A:2', { id: 'A:1', attempt: 2 }, 'A:3'],
      lossyBroker: true,
      broken: [],
    },
    { name: 'lossy broker: one that lost nothing may not', terminals: [terminal('A', [1, 2, 3])], arrivals: ['A:2', { id: 'A:1', attempt: 1 }, 'A:3'], lossyBroker: true, broken: ['order A:1'] },
    { name: 'lossy broker: the attempt does not excuse a broker that lost nothing', terminals: [terminal('A', [1, 2])], arrivals: ['A:2', { id: 'A:1', attempt: 3 }], broken: ['order A:1'] },
    { name: 'lossy broker: once still holds', terminals: [terminal('A', [1, 2])], arrivals: ['A:2', { id: 'A:1', attempt: 2 }, 'A:2'], lossyBroker: true, broken: ['once A:2'] },
    { name: 'pressed: an alarm nobody pressed', terminals: [terminal('A', [1])], arrivals: ['A:1', 'A:7'], broken: ['pressed A:7'] },
    { name: 'pressed: a new epoch of the terminal is still the terminal', terminals: [terminal('A', [1])], arrivals: ['A:1', 'A@gw.1:1'], broken: ['pressed A@gw.1:1'] },
    { name: 'shown: unconfirmed is not received', terminals: [terminal('A', [1], { stage: 'unconfirmed' })], arrivals: ['A:1'], broken: ['shown A:1'] },
    { name: 'shown: sent is short of received', terminals: [terminal('A', [1], { stage: 'sent' })], arrivals: ['A:1'], broken: ['shown A:1'] },
    { name: 'shown: another target stage', terminals: [terminal('A', [1], { stage: 'delivered' })], arrivals: ['A:1'], stage: 'delivered', broken: [] },
    { name: 'memory: an event left unacknowledged', terminals: [terminal('A', [1], { pending: [2] })], arrivals: ['A:1'], broken: ['memory A:2'] },
  ]

  it.each(cases)('$name', ({ terminals, arrivals, lossyBroker, stage, broken }) => {
    expect(rules(checkDelivery(terminals, arrivals, { ...(lossyBroker ? { lossyBroker } : {}), ...(stage ? { stage } : {}) }))).toEqual(broken)
  })

  it('says at the arrival what it broke; the verdict has it too, with what only the end can tell', () => {
    const ledger = new DeliveryLedger()
    ledger.addTerminal('A')
    ledger.press('A', 1)
    ledger.press('A', 2)
    expect(ledger.arrive('A:2').map((b) => b.what)).toEqual(['overtaken by A:2, pressed after it on the same terminal'])
    expect(ledger.arrive('A:1')).toEqual([])
    expect(ledger.arrive('A:1').map((b) => b.rule)).toEqual(['once'])
    ledger.press('A', 3)
    const t = terminal('A', [1, 2, 3], { shown: { 3: 'stored' } })
    expect(ledger.outstanding([t])).toEqual({ arrive: ['A:3'], show: ['A:3=stored'], memory: [] })
    expect(rules(ledger.verdict([t]))).toEqual(['order A:1', 'once A:1', 'arrived A:3', 'shown A:3'])
    expect(describeBroken(ledger.verdict([t]).slice(-1))).toBe('A:3: the terminal ends showing stored, not received or later')
  })

  it('a terminal added again (a power cycle) keeps its record', () => {
    const ledger = new DeliveryLedger()
    const pressed = ledger.addTerminal('A')
    ledger.press('A', 1)
    expect(ledger.addTerminal('A')).toBe(pressed)
    expect(pressed).toEqual([1])
    expect(() => ledger.press('A', 1)).toThrow(/pressed twice/)
  })

  it.each([
    ['SL-T-F1:12', 'SL-T-F1'],
    ['SL-T-WIPE@gw-e2e.1:1', 'SL-T-WIPE'],
    ['SL-T-F1@gw-e2e.a2:3', 'SL-T-F1@gw-e2e.a2'],
    ['SL-T-F1@gw.a7.a2@r4:3', 'SL-T-F1@gw.a7.a2'],
    ['SL-T-F1@gw.a7.1:3', 'SL-T-F1'],
    ['nonsense', ''],
  ])('the terminal of %s is %s', (id, t) => {
    expect(terminalOf(id)).toBe(t)
  })
})
