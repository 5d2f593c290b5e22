import { describe, expect, it } from 'vitest'
import { BATCH_MAX_BYTES, BATCH_MAX_ITEMS } from '../protocol/mqtt.js'
import { GatewayClock } from './clock.js'
import { ALARM_RETRY_MS, Outbox, alarmRetryDelayMs } from './outbox.js'
import { SqliteStore } from './sqlite-store.js'
import { event } from './store.suite.js'

function setup() {
  const store = new SqliteStore({ path: ':memory:', freeSpace: () => 1e12 })
  const clock = new GatewayClock(store, 1, () => 0)
  const outbox = new Outbox(store, clock, { gateway: 'gw', receiptTimeoutMs: 60_000, statusIntervalMs: 300_000, random: () => 0.5 })
  return { store, clock, outbox }
}

describe('outbox policy [MQTT-4.1] [MQTT-4.2]', () => {
  it('republishes an alarm after 5, 10, 20, 40 s, then every 60 s, with ±20 % jitter', () => {
    expect([1, 2, 3, 4, 5, 6, 50].map((a) => alarmRetryDelayMs(a, () => 0.5))).toEqual([5_000, 10_000, 20_000, 40_000, 60_000, 60_000, 60_000])
    expect(alarmRetryDelayMs(1, () => 0)).toBe(4_000)
    expect(alarmRetryDelayMs(5, () => 0.999999)).toBe(72_000)
    expect(ALARM_RETRY_MS).toHaveLength(5)
  })

  it('hands out each due alarm on its own, skipping those in flight', () => {
    const { store, outbox } = setup()
    store.addEvent(event('alarm', 'T1'))
    store.addEvent(event('alarm', 'T1'))
    store.addEvent(event('trouble', 'T1'))
    const pubs = outbox.nextAlarms(0, new Set())
    expect(pubs.map((p) => p.kind)).toEqual(['alert', 'alert'])
    expect(outbox.nextAlarms(0, new Set([pubs[0]!.ids[0]]))).toHaveLength(1)
    expect(pubs[0]!.payload).toMatchObject({ attempt: 1, stage: 'stored', time: { estimated: true } })
  })

  it('sends one lower-class item as a single event, more as a batch in class order', () => {
    const { store, outbox } = setup()
    const trouble = event('trouble', 'T1')
    store.addEvent(trouble)
    expect(outbox.nextBacklog(0)?.kind).toBe('event')
    const request = event('request', 'T1')
    store.addEvent(request)
    const p = outbox.nextBacklog(0)!
    expect(p.kind).toBe('batch')
    if (p.kind !== 'batch') return
    expect(p.ids).toEqual([request.id, trouble.id])
    expect(p.payload.id).toMatch(/^gw:b\d+$/)
  })

  it('caps a batch at BATCH_MAX_ITEMS and BATCH_MAX_BYTES, statuses included', () => {
    const { store, outbox } = setup()
    for (let i = 0; i < BATCH_MAX_ITEMS + 20; i++) store.addEvent(event('trouble', 'T1'))
    const p = outbox.nextBacklog(0)!
    expect(p.ids).toHaveLength(BATCH_MAX_ITEMS)
    outbox.published(p, 1)
    expect(store.backlog().trouble.count).toBe(20)

    const big = setup()
    for (let i = 0; i < 200; i++) big.store.addEvent(event('request', 'T1', { body: { pad: 'x'.repeat(1_000) } }))
    for (let t = 0; t < 300; t++) big.store.putStatus(`T${t}`, 1, { uptime: 1, mains: true, battery: 50 }, 0)
    const q = big.outbox.nextBacklog(0)!
    if (q.kind !== 'batch') throw new Error('expected a batch')
    expect(Buffer.byteLength(JSON.stringify(q.payload.items))).toBeLessThanOrEqual(BATCH_MAX_BYTES + 1_000)
    expect(q.ids.length).toBeLessThan(200)
    expect(q.statuses).toHaveLength(0)
  })

  it('publishes terminal status at most once per status interval, or when asked', () => {
    const { store, outbox } = setup()
    store.putStatus('T1', 1, { uptime: 1, mains: true }, 0)
    const first = outbox.nextBacklog(0)!
    outbox.published(first, 0)
    store.putStatus('T1', 1, { uptime: 2, mains: true }, 10_000)
    expect(outbox.nextBacklog(10_000)).toBeNull()
    expect(outbox.nextBacklog(300_000)?.kind).toBe('event')
    outbox.requestStatus()
    expect(outbox.nextBacklog(10_001)?.kind).toBe('event')
  })

  it('marks alarms without receipt unconfirmed after the receipt timeout, once', () => {
    const { store, outbox } = setup()
    store.addEvent(event('alarm', 'T1', { receivedAt: 1_000 }))
    expect(outbox.overdue(60_999)).toEqual([])
    expect(outbox.overdue(61_000).map((e) => e.stage)).toEqual(['unconfirmed'])
    expect(outbox.overdue(120_000)).toEqual([])
  })

  it('never asks to be woken in the past', () => {
    const { store, outbox } = setup()
    store.addEvent(event('alarm', 'T1', { receivedAt: 0 }))
    expect(outbox.nextDeadline(100, false)).toBe(60_000)
    expect(outbox.nextDeadline(100, true)).toBe(60_000) // due now: the pump's business, not a deadline
    expect(outbox.nextDeadline(70_000, false)).toBeNull()
  })
})
