/**
 * The store's behaviour, as one suite that every way of opening a store must pass (after
 * MQTT.js's abstract_store): an in-memory database for speed, and a file in WAL mode,
 * closed and opened again, for durability.
 */

import { describe, expect, it } from 'vitest'
import type { PriorityClass } from '../protocol/mqtt.js'
import type { NewEvent, Store, StoreOptions } from './store.js'

export interface StoreHarness {
  open(options?: Partial<StoreOptions>): Store
  /** Closes and opens the same store again, or null when it cannot (memory). */
  reopen: ((store: Store, options?: Partial<StoreOptions>) => Store) | null
}

let n = 0
export function event(cls: PriorityClass, terminal: string | null = 'T1', extra: Partial<NewEvent> = {}): NewEvent {
  n++
  return {
    id: terminal ? `${terminal}:${n}` : `gw:g${n}`,
    terminal,
    address: terminal ? 1 : null,
    number: terminal ? n : null,
    cls,
    body: { kind: cls === 'alarm' ? 'emergency' : 'mains-lost', n },
    receivedAt: 1_000 + n,
    boot: 1,
    offset: null,
    ...extra,
  }
}

const ids = (events: { id: string }[]) => events.map((e) => e.id)
const retryIn10 = (now: number) => () => now + 10_000

export function storeSuite(name: string, harness: StoreHarness): void {
  describe(`store: ${name}`, () => {
    it('stores an event once: a repeat by id or by (terminal, number) is a duplicate', () => {
      const s = harness.open()
      const e = event('alarm')
      expect(s.addEvent(e).kind).toBe('added')
      expect(s.addEvent(e).kind).toBe('duplicate')
      expect(s.addEvent({ ...e, id: 'other-id' }).kind).toBe('duplicate')
      expect(s.dueAlarms(Infinity)).toHaveLength(1)
      s.close()
    })

    it('hands out alarms on their own, and the backlog by class then arrival', () => {
      const s = harness.open()
      const t1 = s.addEvent(event('trouble'))
      const st = s.addEvent(event('status'))
      const a1 = s.addEvent(event('alarm'))
      const r1 = s.addEvent(event('request'))
      const t2 = s.addEvent(event('trouble'))
      const a2 = s.addEvent(event('alarm'))
      const all = [t1, st, a1, r1, t2, a2].map((r) => (r.kind === 'refused' ? null : r.event.id))
      const [t1id, stid, a1id, r1id, t2id, a2id] = all
      expect(ids(s.dueAlarms(0))).toEqual([a1id, a2id])
      expect(ids(s.dueBacklog(0, 100))).toEqual([r1id, t1id, t2id, stid])
      expect(ids(s.dueBacklog(0, 2))).toEqual([r1id, t1id])
      s.close()
    })

    it('caps a backlog batch by bytes, but always hands out at least one', () => {
      const s = harness.open()
      for (let i = 0; i < 5; i++) s.addEvent(event('trouble'))
      const one = s.dueBacklog(0, 100)[0]!.bytes
      expect(s.dueBacklog(0, 100, one * 2)).toHaveLength(2)
      expect(s.dueBacklog(0, 100, 1)).toHaveLength(1)
      s.close()
    })

    it('a published lower-class event is done and gone', () => {
      const s = harness.open()
      const r = s.addEvent(event('trouble'))
      if (r.kind === 'refused') throw new Error('refused')
      s.published([r.event.id], 5_000, retryIn10(5_000))
      expect(s.get(r.event.id)).toBeUndefined()
      expect(s.dueBacklog(Infinity, 10)).toEqual([])
      s.close()
    })

    it('a published alarm is sent, counts an attempt, and is due again only when its receipt is late', () => {
      const s = harness.open()
      const r = s.addEvent(event('alarm'))
      if (r.kind === 'refused') throw new Error('refused')
      s.published([r.event.id], 5_000, (attempts) => 5_000 + attempts * 1_000)
      const e = s.get(r.event.id)!
      expect(e).toMatchObject({ stage: 'sent', attempts: 1, nextAt: 6_000, done: false })
      expect(s.dueAlarms(5_999)).toEqual([])
      expect(ids(s.dueAlarms(6_000))).toEqual([r.event.id])
      s.published([r.event.id], 6_000, (attempts) => 6_000 + attempts * 1_000)
      expect(s.get(r.event.id)).toMatchObject({ stage: 'sent', attempts: 2, nextAt: 8_000 })
      s.close()
    })

    it('an alarm due again brings the earlier alarms of its terminal still without receipt, in order [MQTT-3.3]', () => {
      const s = harness.open()
      const a = s.addEvent(event('alarm', 'T1'))
      const other = s.addEvent(event('alarm', 'T2'))
      if (a.kind === 'refused' || other.kind === 'refused') throw new Error('refused')
      // Both published; their copies may have been lost (a broker restart): due again at 10 s.
      s.published([a.event.id, other.event.id], 0, () => 10_000)
      const b = s.addEvent(event('alarm', 'T1'))
      if (b.kind === 'refused') throw new Error('refused')
      // The new alarm is due at once; the earlier one of its terminal goes ahead of it,
      // the other terminal's waits for its own time.
      expect(ids(s.dueAlarms(1_000))).toEqual([a.event.id, b.event.id])
      expect(ids(s.dueAlarms(10_000))).toEqual([a.event.id, other.event.id, b.event.id])
      s.advance(a.event.id, 'received', 1_000)
      expect(ids(s.dueAlarms(1_000))).toEqual([b.event.id])
      s.close()
    })

    it('a receipt ends republication; stages only move forward', () => {
      const s = harness.open()
      const r = s.addEvent(event('alarm'))
      if (r.kind === 'refused') throw new Error('refused')
      const id = r.event.id
      expect(s.advance(id, 'received', 2_000)).toMatchObject({ stage: 'received', done: true })
      expect(s.dueAlarms(Infinity)).toEqual([])
      expect(s.advance(id, 'sent', 3_000)).toBeUndefined()
      expect(s.advance(id, 'received', 3_000)).toBeUndefined()
      expect(s.advance(id, 'dispatched', 4_000)).toMatchObject({ stage: 'dispatched', stageAt: 4_000 })
      expect(s.advance(id, 'acknowledged', 5_000)).toBeUndefined()
      expect(s.advance('nobody:1', 'received', 5_000)).toBeUndefined()
      s.close()
    })

    it('an alarm without receipt in time becomes unconfirmed, and a late receipt moves it on', () => {
      const s = harness.open()
      const r = s.addEvent(event('alarm', 'T1', { receivedAt: 10_000 }))
      if (r.kind === 'refused') throw new Error('refused')
      const id = r.event.id
      expect(ids(s.awaitingReceipt(9_999))).toEqual([])
      expect(ids(s.awaitingReceipt(10_000))).toEqual([id])
      expect(s.advance(id, 'unconfirmed', 70_000)).toMatchObject({ stage: 'unconfirmed', done: false })
      expect(s.awaitingReceipt(Infinity)).toEqual([])
      expect(ids(s.dueAlarms(Infinity))).toEqual([id]) // still republished
      expect(s.advance(id, 'unconfirmed', 80_000)).toBeUndefined()
      expect(s.advance(id, 'received', 90_000)).toMatchObject({ stage: 'received', done: true })
      s.close()
    })

    it('an operator acknowledgement before the receipt also ends republication', () => {
      const s = harness.open()
      const r = s.addEvent(event('alarm'))
      if (r.kind === 'refused') throw new Error('refused')
      s.advance(r.event.id, 'acknowledged', 2_000)
      expect(s.dueAlarms(Infinity)).toEqual([])
    })

    it('lists open alerts, oldest first, and a terminal\'s recent ones', () => {
      const s = harness.open()
      const a = s.addEvent(event('alarm', 'T7'))
      const b = s.addEvent(event('alarm', 'T7'))
      const c = s.addEvent(event('alarm', 'T8'))
      if (a.kind === 'refused' || b.kind === 'refused' || c.kind === 'refused') throw new Error('refused')
      s.advance(a.event.id, 'resolved', 50_000)
      expect(ids(s.openAlerts())).toEqual([b.event.id, c.event.id])
      expect(ids(s.recentAlerts('T7', 40_000))).toEqual([a.event.id, b.event.id])
      expect(ids(s.recentAlerts('T7', 60_000))).toEqual([b.event.id])
      s.close()
    })

    it('folds heartbeats into one status per terminal', () => {
      const s = harness.open()
      s.putStatus('T1', 1, { uptime: 10, mains: true, battery: 90 }, 0)
      s.putStatus('T1', 1, { uptime: 70, mains: false, battery: 80 }, 60_000)
      s.putStatus('T1', 1, { uptime: 130, mains: false, battery: 85 }, 120_000)
      s.putStatus('T1', 1, { uptime: 190, mains: true, battery: 86 }, 180_000)
      s.putStatus('T2', 2, { uptime: 5, mains: true }, 1_000)
      const [t1, t2] = s.dirtyStatuses()
      expect(t1).toMatchObject({ terminal: 'T1', heartbeats: 4, lowestBattery: 80, minutesWithoutMains: 2, since: 0, last: 180_000, latest: { uptime: 190, battery: 86 } })
      expect(t2).toMatchObject({ terminal: 'T2', heartbeats: 1, minutesWithoutMains: 0 })
      expect(t2!.lowestBattery).toBeUndefined()
      s.close()
    })

    it('a published status starts afresh, unless a heartbeat came in the meantime', () => {
      const s = harness.open()
      s.putStatus('T1', 1, { uptime: 10, mains: true }, 0)
      const v1 = s.dirtyStatuses()[0]!.version
      s.putStatus('T1', 1, { uptime: 20, mains: true }, 10_000)
      s.statusPublished('T1', v1)
      expect(s.dirtyStatuses()).toHaveLength(1)
      s.statusPublished('T1', s.dirtyStatuses()[0]!.version)
      expect(s.dirtyStatuses()).toEqual([])
      s.close()
    })

    it('bounds lower classes by count and age, counts each drop, and never touches alarms', () => {
      const s = harness.open({ limits: { maxTroubleEvents: 3, maxRequestEvents: 100, maxTroubleAgeDays: 1, maxRequestAgeDays: 1 } })
      const alarm = s.addEvent(event('alarm', 'T1', { receivedAt: 0 }))
      const old = s.addEvent(event('request', 'T1', { receivedAt: 0 }))
      for (let i = 0; i < 5; i++) s.addEvent(event('trouble', 'T1', { receivedAt: 86_400_000 + i }))
      const dropped = s.enforceBounds(86_400_000 + 10)
      expect(dropped).toEqual({ 'dropped.request.age': 1, 'dropped.trouble.count': 2 })
      expect(s.counters()).toMatchObject({ 'dropped.request.age': 1, 'dropped.trouble.count': 2 })
      expect(s.backlog().trouble.count).toBe(3)
      if (alarm.kind === 'refused' || old.kind === 'refused') throw new Error('refused')
      expect(s.get(alarm.event.id)).toBeDefined()
      expect(s.get(old.event.id)).toBeUndefined()
      expect(s.enforceBounds(10 * 86_400_000)).toMatchObject({ 'dropped.trouble.age': 3 })
      expect(s.get(alarm.event.id)).toBeDefined()
      s.close()
    })

    it('bounds the lower classes by size, dropping the lowest class first', () => {
      const s = harness.open({ limits: { maxStoreMB: 0.001 } }) // about 1 KB
      const pad = { pad: 'x'.repeat(100) }
      for (let i = 0; i < 20; i++) s.addEvent(event('status', 'T1', { body: pad }))
      for (let i = 0; i < 5; i++) s.addEvent(event('request', 'T1', { body: pad }))
      s.addEvent(event('alarm'))
      const dropped = s.enforceBounds(2_000)
      expect(Object.keys(dropped)).toEqual(['dropped.status.size'])
      expect(s.backlog().request.count).toBe(5)
      expect(s.backlog().alarm.count).toBe(1)
      s.close()
    })

    it('refuses lower classes when the disk is within the reserve, but still takes alarms', () => {
      const s = harness.open({ freeSpace: () => 1024 * 1024, limits: { reserveMB: 16 } })
      expect(s.addEvent(event('trouble'))).toEqual({ kind: 'refused', reason: 'disk-reserve' })
      expect(s.addEvent(event('alarm')).kind).toBe('added')
      expect(s.counters()).toMatchObject({ 'dropped.trouble.disk': 1 })
      s.close()
    })

    it('keeps counters and settings; bump() counts boots', () => {
      const s = harness.open()
      expect(s.bump('boot')).toBe(1)
      expect(s.bump('boot')).toBe(2)
      s.setMeta('offset', '123')
      expect(s.meta('offset')).toBe('123')
      expect(s.meta('nothing')).toBeUndefined()
      s.count('x', 2)
      s.count('x')
      expect(s.counters().x).toBe(3)
      s.close()
    })

    it('keeps broadcasts until they expire, each id once', () => {
      const s = harness.open()
      s.addBroadcast({ id: 1, text: 'a', urgency: 'info', expires: 5_000, receivedAt: 0 })
      s.addBroadcast({ id: 1, text: 'changed', urgency: 'info', expires: 5_000, receivedAt: 0 })
      s.addBroadcast({ id: 2, text: 'b', urgency: 'urgent', expires: null, receivedAt: 0 })
      expect(s.activeBroadcasts(4_999).map((b) => b.text)).toEqual(['a', 'b'])
      expect(s.activeBroadcasts(5_000).map((b) => b.text)).toEqual(['b'])
      s.close()
    })

    const reopen = harness.reopen
    if (reopen) it('keeps everything across a close and reopen (a reboot)', () => {
      let s = harness.open()
      const a = s.addEvent(event('alarm', 'T1'))
      if (a.kind === 'refused') throw new Error('refused')
      s.advance(a.event.id, 'acknowledged', 5_000)
      s.addEvent(event('trouble'))
      s.putStatus('T1', 1, { uptime: 1, mains: true }, 0)
      s.bump('boot')
      s = reopen(s)
      expect(s.openAlerts()).toMatchObject([{ id: a.event.id, stage: 'acknowledged' }])
      expect(s.addEvent({ ...event('alarm'), id: a.event.id }).kind).toBe('duplicate')
      expect(s.backlog().trouble.count).toBe(1)
      expect(s.dirtyStatuses()).toHaveLength(1)
      expect(s.bump('boot')).toBe(2)
      s.close()
    })
  })
}
