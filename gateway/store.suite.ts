/**
 * The Store contract (store.ts), as one suite that every implementation and every way of
 * opening one must pass (after MQTT.js's abstract_store): MemoryStore, and SqliteStore on
 * a file in WAL mode, closed and opened again for durability (store.test.ts).
 */

import { describe, expect, it } from 'vitest'
import type { PriorityClass } from '../protocol/mqtt.js'
import { CommandWindow } from './command-window.js'
import { ReplayWindow } from './replay-window.js'
import { commandWindowKey, type NewEvent, type Store, type StoreOptions } from './store.js'

export interface StoreHarness<S extends Store = Store> {
  open(options?: StoreOptions): S
  /** Closes and opens the same store again, or null when it cannot (memory). */
  reopen: ((store: S, options?: StoreOptions) => S) | null
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

export function storeSuite<S extends Store>(name: string, harness: StoreHarness<S>): void {
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

    it('a published trouble or status event is done and gone', () => {
      const s = harness.open()
      const r = s.addEvent(event('trouble'))
      if (r.kind === 'refused') throw new Error('refused')
      s.published([r.event.id], 5_000, retryIn10(5_000))
      expect(s.get(r.event.id)).toBeUndefined()
      expect(s.dueBacklog(Infinity, 10)).toEqual([])
      s.close()
    })

    it('a published request is done with publishing and stays a case, sent, until the platform resolves it', () => {
      const s = harness.open()
      const r = s.addEvent(event('request'))
      if (r.kind === 'refused') throw new Error('refused')
      s.published([r.event.id], 5_000, retryIn10(5_000))
      expect(s.get(r.event.id)).toMatchObject({ stage: 'sent', done: true, attempts: 1 })
      expect(s.dueBacklog(Infinity, 10)).toEqual([])
      expect(s.backlog().request.count).toBe(0)
      expect(ids(s.openAlerts())).toEqual([r.event.id])
      expect(s.advance(r.event.id, 'received', 6_000)).toMatchObject({ stage: 'received' })
      expect(s.advance(r.event.id, 'acknowledged', 7_000, { text: 'we call you back at 15:00' })).toMatchObject({ stage: 'acknowledged', stageText: 'we call you back at 15:00' })
      expect(s.advance(r.event.id, 'resolved', 8_000)).toMatchObject({ stage: 'resolved', stageText: null })
      expect(s.openAlerts()).toEqual([])
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

    it('each alarm is due at its own time: a new alarm does not bring the earlier ones of its terminal (N presses, not N² publications) [MQTT-4.4]', () => {
      const s = harness.open()
      const a = s.addEvent(event('alarm', 'T1'))
      const other = s.addEvent(event('alarm', 'T2'))
      if (a.kind === 'refused' || other.kind === 'refused') throw new Error('refused')
      s.published([a.event.id, other.event.id], 0, () => 10_000)
      const b = s.addEvent(event('alarm', 'T1'))
      if (b.kind === 'refused') throw new Error('refused')
      expect(ids(s.dueAlarms(1_000))).toEqual([b.event.id])
      expect(ids(s.dueAlarms(10_000))).toEqual([a.event.id, other.event.id, b.event.id])
      s.close()
    })

    it('after a (re)connection every alarm without a receipt is due at once, unconfirmed ones too [MQTT-2.5]', () => {
      const s = harness.open()
      const a = s.addEvent(event('alarm', 'T1', { receivedAt: 0 }))
      const b = s.addEvent(event('alarm', 'T1', { receivedAt: 0 }))
      const done = s.addEvent(event('alarm', 'T1', { receivedAt: 0 }))
      if (a.kind === 'refused' || b.kind === 'refused' || done.kind === 'refused') throw new Error('refused')
      s.published([a.event.id, b.event.id, done.event.id], 0, () => 72_000)
      s.advance(b.event.id, 'unconfirmed', 60_000)
      s.advance(done.event.id, 'received', 1_000)
      expect(s.unreceiptedAlarms()).toBe(2)
      expect(s.dueAlarms(61_000)).toEqual([])
      s.alarmsDueNow()
      expect(ids(s.dueAlarms(61_000))).toEqual([a.event.id, b.event.id])
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

    it("lists open alerts, oldest first, and a terminal's recent ones", () => {
      const s = harness.open()
      const a = s.addEvent(event('alarm', 'T7'))
      const b = s.addEvent(event('alarm', 'T7'))
      const c = s.addEvent(event('alarm', 'T8'))
      if (a.kind === 'refused' || b.kind === 'refused' || c.kind === 'refused') throw new Error('refused')
      s.advance(a.event.id, 'resolved', 50_000)
      expect(ids(s.openAlerts())).toEqual([b.event.id, c.event.id])
      expect(ids(s.recentAlerts('T7', '', 40_000))).toEqual([a.event.id, b.event.id])
      expect(ids(s.recentAlerts('T7', '', 60_000))).toEqual([b.event.id])
      expect(s.recentAlerts('T7', 'gw.1', 0)).toEqual([])
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

    it("within the disk reserve: refuses what the gateway makes itself, never a terminal's event (it was or will be told stored) [LINK-4.3]", () => {
      const s = harness.open({ freeSpace: () => 1024 * 1024, limits: { reserveMB: 16 } })
      expect(s.addEvent(event('trouble', null))).toEqual({ kind: 'refused', reason: 'disk-reserve' })
      expect(s.addEvent(event('request', 'T1')).kind).toBe('added')
      expect(s.addEvent(event('trouble', 'T1')).kind).toBe('added')
      expect(s.addEvent(event('alarm')).kind).toBe('added')
      expect(s.counters()).toMatchObject({ 'dropped.trouble.disk': 1 })
      s.close()
    })

    it('commits every event with synchronous=FULL, whatever its class; only status folds and deletions are lazy [LINK-4.3]', () => {
      const s = harness.open()
      for (const cls of ['alarm', 'request', 'trouble', 'status'] as const) {
        const before = s.writes()
        expect(s.addEvent(event(cls)).kind).toBe('added')
        const after = s.writes()
        expect(after.lastEvent, cls).toBe('durable')
        expect(after.durable - before.durable, cls).toBe(1)
        expect(after.lazy, cls).toBe(before.lazy)
      }
      s.putStatus('T1', 1, { uptime: 1, mains: true }, 0)
      s.flushStatuses(10, 0)
      expect(s.writes().lazy).toBe(1)
      s.close()
    })

    it("recognises a terminal's replayed number for ever, after its row is gone, whatever its class [LINK-5.5]", () => {
      const s = harness.open()
      const e = event('trouble', 'T9', { fingerprint: 'mains-lost||1|50|' })
      expect(s.recognise('T9', e.number!, 'mains-lost||1|50|')).toEqual({ kind: 'new' })
      const r = s.addEvent(e)
      if (r.kind === 'refused') throw new Error('refused')
      expect(s.recognise('T9', e.number!, 'mains-lost||1|50|')).toMatchObject({ kind: 'replay', event: { id: e.id } })
      s.published([e.id], 1_000, retryIn10(1_000))
      expect(s.get(e.id)).toBeUndefined()
      expect(s.recognise('T9', e.number!, 'mains-lost||1|50|')).toEqual({ kind: 'replay', event: undefined })
      // A resolved alarm, purged a day later: still recognised.
      const a = event('alarm', 'T9', { fingerprint: 'emergency||1|60|' })
      s.addEvent(a)
      s.advance(a.id, 'resolved', 2_000)
      s.enforceBounds(2_000 + 2 * 86_400_000)
      expect(s.get(a.id)).toBeUndefined()
      expect(s.recognise('T9', a.number!, 'emergency||1|60|').kind).toBe('replay')
      s.close()
    })

    it('an event under a number taken for another event differs; a HELLO going backwards starts a new epoch [LINK-5.5]', () => {
      const s = harness.open()
      const tag = (n: number) => `gw-1.${n}`
      expect(s.hello('T3', 5, 0, tag)).toBeNull()
      const a = s.addEvent(event('alarm', 'T3', { id: 'T3:1', number: 1, fingerprint: 'emergency||5|10|' }))
      if (a.kind === 'refused') throw new Error('refused')
      expect(s.recognise('T3', 1, 'emergency||5|11|')).toMatchObject({ kind: 'differs', event: { id: 'T3:1' } })
      expect(s.hello('T3', 6, 1, tag)).toBeNull() // a restart with its memory: nothing backwards
      expect(s.numbering('T3')).toMatchObject({ epoch: '', boot: 6, high: 1 })
      const reset = s.hello('T3', 1, 0, tag) // wiped: boot 1, nothing assigned
      expect(reset).toEqual({ reason: 'boot-backwards', epoch: 'gw-1.1', previousEpoch: '', previousBoot: 6, previousNumber: 1 })
      expect(s.numbering('T3')).toMatchObject({ epoch: 'gw-1.1', boot: 1, high: 0 })
      // Number 1 of the new epoch is new, and its id cannot collide with the old one.
      expect(s.recognise('T3', 1, 'emergency||1|3|')).toEqual({ kind: 'new' })
      expect(s.addEvent(event('alarm', 'T3', { id: 'T3@gw-1.1:1', number: 1, epoch: 'gw-1.1', fingerprint: 'emergency||1|3|' })).kind).toBe('added')
      expect(s.get('T3:1')).toMatchObject({ epoch: '' })
      expect(s.hello('T3', 1, 0, tag)).toMatchObject({ reason: 'last-event-backwards', epoch: 'gw-1.2' })
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

    it('keeps the replay window of signed commands per audience, across a reopen [MQTT-5.12]', () => {
      let s = harness.open()
      expect(s.commandWindow('all')).toBeUndefined()
      const w = CommandWindow.empty()
      w.add(1_767_252_645_000)
      w.add(1_767_252_644_990)
      s.setCommandWindow('all', w.toJSON())
      s.setCommandWindow('gw/gw-1', CommandWindow.empty().toJSON())
      // A store written before the window counted commands: its old form, and a damaged row.
      s.setMeta(commandWindowKey('area/old'), JSON.stringify(ReplayWindow.empty().toJSON()).replace('"high":0', '"high":1767252600000'))
      s.setMeta(commandWindowKey('area/broken'), '{"floor":')
      if (harness.reopen) s = harness.reopen(s)
      const back = CommandWindow.parse(s.commandWindow('all'))
      expect(back.high).toBe(1_767_252_645_000)
      expect(back.has(1_767_252_644_990)).toBe(true)
      expect(back.has(1_767_252_644_991)).toBe(false)
      expect(CommandWindow.parse(s.commandWindow('gw/gw-1')).high).toBe(0)
      expect(s.commandWindow('area/x')).toBeUndefined()
      const old = CommandWindow.parse(s.commandWindow('area/old'))
      expect([old.has(1_767_252_600_000), old.has(1_767_252_599_000), old.has(1_767_252_600_001)]).toEqual([true, true, false])
      expect(s.commandWindow('area/broken')).toBeUndefined()
      s.close()
    })

    it('keeps broadcasts until they expire; the same id with another text replaces it as a new revision [MQTT-5.7]', () => {
      const s = harness.open()
      expect(s.putBroadcast({ id: 1, text: 'a', urgency: 'info', expires: 5_000, receivedAt: 0 }).change).toBe('added')
      expect(s.putBroadcast({ id: 1, text: 'a', urgency: 'info', expires: 5_000, receivedAt: 1 }).change).toBe('unchanged')
      expect(s.putBroadcast({ id: 1, text: 'changed', urgency: 'info', expires: 5_000, receivedAt: 2 })).toMatchObject({ change: 'replaced', broadcast: { revision: 1, text: 'changed' } })
      s.putBroadcast({ id: 2, text: 'b', urgency: 'urgent', expires: null, receivedAt: 0 })
      expect(s.activeBroadcasts(4_999).map((b) => b.text)).toEqual(['changed', 'b'])
      expect(s.activeBroadcasts(5_000).map((b) => b.text)).toEqual(['b'])
      expect(s.withdrawBroadcast(2)).toMatchObject({ revision: 1, withdrawn: true })
      expect(s.activeBroadcasts(0).map((b) => b.id)).toEqual([1])
      expect(s.broadcasts(0).map((b) => b.id)).toEqual([1, 2])
      expect(s.withdrawBroadcast(3)).toBeUndefined()
      s.close()
    })

    it('records which terminal was sent which revision of a broadcast, and reads once per revision', () => {
      const s = harness.open()
      s.putBroadcast({ id: 7, text: 'storm', urgency: 'urgent', expires: null, receivedAt: 0 })
      expect(s.broadcastRead(7, 'T1', 0, 10)).toBe(false) // never sent to T1
      s.broadcastSent(7, 'T1', 0, 5)
      expect(s.broadcastRead(7, 'T1', 0, 10)).toBe(true)
      expect(s.broadcastRead(7, 'T1', 0, 11)).toBe(false)
      s.putBroadcast({ id: 7, text: 'all clear', urgency: 'info', expires: null, receivedAt: 20 })
      s.broadcastSent(7, 'T1', 1, 21)
      expect(s.delivery(7, 'T1')).toMatchObject({ revision: 1, readRevision: 0 })
      expect(s.broadcastRead(7, 'T1', 1, 30)).toBe(true)
      expect(s.deliveries(7)).toMatchObject([{ terminal: 'T1', revision: 1, readRevision: 1, readAt: 30 }])
      s.close()
    })

    it('keeps the stage history of an alert, from stored, with each text and eta, and forgets it with the event (issue 13)', () => {
      const s = harness.open()
      const a = s.addEvent(event('alarm', null, { receivedAt: 1_000 }))
      const t = s.addEvent(event('trouble'))
      if (a.kind === 'refused' || t.kind === 'refused') throw new Error('refused')
      const id = a.event.id
      expect(s.stages(id)).toEqual([{ stage: 'stored', at: 1_000, text: null, etaAt: null }])
      s.published([id], 2_000, retryIn10(2_000))
      s.published([id], 3_000, retryIn10(3_000)) // a republication: no new stage
      s.advance(id, 'received', 4_000)
      s.advance(id, 'received', 4_500) // not forward: nothing
      s.advance(id, 'acknowledged', 5_000, { text: 'Officer Bao' })
      s.advance(id, 'dispatched', 6_000, { text: 'Car 3', etaAt: 906_000 })
      const writes = s.writes().durable
      s.advance(id, 'resolved', 7_000, { text: 'safe' })
      expect(s.writes().durable).toBe(writes + 1) // in the commit of the stage itself
      expect(s.stages(id)).toEqual([
        { stage: 'stored', at: 1_000, text: null, etaAt: null },
        { stage: 'sent', at: 2_000, text: null, etaAt: null },
        { stage: 'received', at: 4_000, text: null, etaAt: null },
        { stage: 'acknowledged', at: 5_000, text: 'Officer Bao', etaAt: null },
        { stage: 'dispatched', at: 6_000, text: 'Car 3', etaAt: 906_000 },
        { stage: 'resolved', at: 7_000, text: 'safe', etaAt: null },
      ])
      expect(s.stages(t.event.id)).toEqual([]) // trouble has no stages
      expect(ids(s.cases(7_000))).toEqual([id])
      expect(ids(s.cases(7_001))).toEqual([])
      expect(s.stages('nope')).toEqual([])
      s.enforceBounds(7_000 + 86_400_001)
      expect(s.get(id)).toBeUndefined()
      expect(s.stages(id)).toEqual([])
      s.close()
    })

    it("a request's history has its `sent` at PUBACK; unconfirmed and a late receipt are in an alarm's", () => {
      const s = harness.open()
      const r = s.addEvent(event('request', null, { receivedAt: 10 }))
      const a = s.addEvent(event('alarm', null, { receivedAt: 20 }))
      if (r.kind === 'refused' || a.kind === 'refused') throw new Error('refused')
      s.published([r.event.id], 30, retryIn10(30))
      expect(s.stages(r.event.id).map((x) => x.stage)).toEqual(['stored', 'sent'])
      s.advance(a.event.id, 'unconfirmed', 60_020)
      s.advance(a.event.id, 'received', 70_000)
      expect(s.stages(a.event.id).map((x) => [x.stage, x.at])).toEqual([
        ['stored', 20],
        ['unconfirmed', 60_020],
        ['received', 70_000],
      ])
      s.close()
    })

    it('stores an idempotency key with its event, in the same durable commit; the same key again is a duplicate (issue 13)', () => {
      const s = harness.open()
      const before = s.writes().durable
      const first = s.addEvent(event('alarm', null, { key: 'k-1' }))
      expect(first.kind).toBe('added')
      expect(s.writes()).toMatchObject({ durable: before + 1, lastEvent: 'durable' })
      if (first.kind === 'refused') throw new Error('refused')
      expect(s.byKey('k-1')?.id).toBe(first.event.id)
      expect(s.byKey('k-2')).toBeUndefined()
      const again = s.addEvent(event('alarm', null, { key: 'k-1' }))
      expect(again).toMatchObject({ kind: 'duplicate', event: { id: first.event.id } })
      expect(s.dueAlarms(Infinity)).toHaveLength(1)
      expect(s.addEvent(event('request', null, { key: 'k-2' })).kind).toBe('added')
      s.close()
    })

    it('keeps what the center household did with a broadcast, and forgets it with the broadcast (issue 13)', () => {
      const s = harness.open()
      s.putBroadcast({ id: 4, text: 'storm', urgency: 'urgent', expires: 5_000, receivedAt: 0 })
      expect(s.householdBroadcast(4)).toBeUndefined()
      const before = s.writes().durable
      s.setHouseholdBroadcast({ broadcast: 4, revision: 0, readAt: 10, passedOn: null, passedAt: null })
      s.setHouseholdBroadcast({ broadcast: 4, revision: 0, readAt: 10, passedOn: 7, passedAt: 20 })
      expect(s.writes().durable).toBe(before + 2)
      expect(s.householdBroadcast(4)).toEqual({ broadcast: 4, revision: 0, readAt: 10, passedOn: 7, passedAt: 20 })
      s.enforceBounds(5_000)
      expect(s.householdBroadcast(4)).toBeUndefined()
      s.close()
    })

    const reopen = harness.reopen
    if (reopen)
      it('keeps everything across a close and reopen (a reboot)', () => {
        let s = harness.open()
        const a = s.addEvent(event('alarm', 'T1'))
        if (a.kind === 'refused') throw new Error('refused')
        s.advance(a.event.id, 'acknowledged', 5_000, { text: 'Officer Bao' })
        s.addEvent(event('trouble'))
        const relay = s.addEvent(event('request', null, { key: 'relay-key' }))
        s.setHouseholdBroadcast({ broadcast: 3, revision: 1, readAt: 2, passedOn: 4, passedAt: 3 })
        s.putStatus('T1', 1, { uptime: 1, mains: true }, 0)
        s.bump('boot')
        s.putBroadcast({ id: 3, text: 'storm', urgency: 'urgent', expires: null, receivedAt: 0 })
        s.putBroadcast({ id: 3, text: 'all clear', urgency: 'info', expires: null, receivedAt: 1 })
        s.hello('T1', 1, 0, () => 'x')
        s = reopen(s)
        expect(s.openAlerts()).toMatchObject([
          { id: a.event.id, stage: 'acknowledged', stageText: 'Officer Bao' },
          { id: relay.kind === 'added' ? relay.event.id : '', stage: 'stored' },
        ])
        expect(s.stages(a.event.id).map((x) => [x.stage, x.text])).toEqual([
          ['stored', null],
          ['acknowledged', 'Officer Bao'],
        ])
        expect(s.byKey('relay-key')?.id).toBe(relay.kind === 'added' ? relay.event.id : '')
        expect(s.householdBroadcast(3)).toEqual({ broadcast: 3, revision: 1, readAt: 2, passedOn: 4, passedAt: 3 })
        expect(s.activeBroadcasts(0)).toMatchObject([{ id: 3, text: 'all clear', revision: 1 }])
        expect(s.recognise('T1', a.event.number!, 'x').kind).not.toBe('new')
        expect(s.addEvent({ ...event('alarm'), id: a.event.id }).kind).toBe('duplicate')
        expect(s.backlog().trouble.count).toBe(1)
        expect(s.dirtyStatuses()).toHaveLength(1)
        expect(s.bump('boot')).toBe(2)
        s.close()
      })
  })
}
