import { describe, expect, it } from 'vitest'
import { PROGRESS, PROGRESS_RANK, endsRepublication, isForward, reached } from './lifecycle.js'
import { STAGES, type Stage } from './messages.js'

const ALL = Object.keys(STAGES) as Stage[]

describe('the alert lifecycle [LINK-5.7] [MQTT-4.7]', () => {
  it('has every stage of the wire: the six of progress in their wire order, and unconfirmed beside them', () => {
    expect([...PROGRESS, 'unconfirmed']).toEqual(ALL)
    expect(PROGRESS.map((s) => STAGES[s])).toEqual([1, 2, 3, 4, 5, 6])
  })

  it('invariant 1: forward only, any stage may be skipped', () => {
    for (const from of PROGRESS) for (const to of PROGRESS) expect(isForward(from, to), `${from} -> ${to}`).toBe(PROGRESS.indexOf(to) > PROGRESS.indexOf(from))
  })

  it('invariant 2: unconfirmed only from stored or sent, left only for received or later', () => {
    expect(ALL.filter((from) => isForward(from, 'unconfirmed'))).toEqual(['stored', 'sent'])
    expect(ALL.filter((to) => isForward('unconfirmed', to))).toEqual(['received', 'acknowledged', 'dispatched', 'resolved'])
  })

  it('invariant 3: received and later end republication; stored, sent and unconfirmed do not', () => {
    expect(ALL.filter(endsRepublication)).toEqual(['received', 'acknowledged', 'dispatched', 'resolved'])
  })

  it('what a terminal shows: delivered is the moment of stored, unconfirmed reaches nothing', () => {
    expect(reached('delivered', 'stored')).toBe(true)
    expect(reached('saved', 'stored')).toBe(false)
    expect(reached('unconfirmed', 'stored')).toBe(false)
    expect(reached('resolved', 'received')).toBe(true)
    expect(reached(undefined, 'saved')).toBe(false)
    expect(Object.keys(PROGRESS_RANK).sort()).toEqual([...ALL, 'saved', 'delivered'].sort())
  })
})
