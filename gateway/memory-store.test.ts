/**
 * MemoryStore against SqliteStore, call by call: store.suite.ts checks each point of the
 * contract by example; this checks that the two implementations give the same answer to
 * any sequence of calls (property), with small bounds and few terminals and numbers, so
 * that duplicates, replays, resets, drops and revisions happen often. The scale benchmark
 * runs the real gateway on MemoryStore, and its figures stand for the real store's.
 */

import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { PROGRESS } from '../protocol/lifecycle.js'
import type { Stage } from '../protocol/messages.js'
import { CLASSES } from '../protocol/mqtt.js'
import { MemoryStore } from './memory-store.js'
import { SqliteStore } from './sqlite-store.js'
import { terminalEventId, type AddResult, type Store, type StoreOptions } from './store.js'

const TERMINALS = ['T1', 'T2'] as const
const STAGES: Stage[] = [...PROGRESS, 'unconfirmed']
const HOUR = 3_600_000

type Call =
  | { op: 'add'; cls: (typeof CLASSES)[number]; terminal: (typeof TERMINALS)[number] | null; number: number; kind: string; fingerprint: number; pad: number }
  | { op: 'published'; picks: number[]; retry: number }
  | { op: 'advance'; pick: number; stage: Stage; text: string | null; eta: number | null }
  | { op: 'retryAt'; pick: number; at: number }
  | { op: 'alarmsDueNow' | 'enforceBounds' }
  | { op: 'time'; by: number }
  | { op: 'disk'; low: boolean }
  | { op: 'putStatus'; terminal: string; battery: number | null; mains: boolean }
  | { op: 'flushStatuses'; olderThanMs: number }
  | { op: 'statusPublished'; pick: number; stale: boolean }
  | { op: 'hello'; terminal: string; boot: number; lastEvent: number }
  | { op: 'resetNumbering'; terminal: string; boot: number | null }
  | { op: 'recognise'; terminal: string; number: number; kind: string; fingerprint: number }
  | { op: 'putBroadcast'; id: number; text: string; expiresIn: number | null }
  | { op: 'withdrawBroadcast'; id: number }
  | { op: 'broadcastSent' | 'broadcastRead'; id: number; terminal: string; revision: number }
  | { op: 'meta'; key: string; bump: boolean }
  | { op: 'next'; key: string; block: number }
  | { op: 'count'; name: string; by: number }

const terminal = fc.constantFrom(...TERMINALS)
const call: fc.Arbitrary<Call> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      op: fc.constant('add' as const),
      cls: fc.constantFrom(...CLASSES),
      terminal: fc.option(terminal, { freq: 4 }),
      number: fc.integer({ min: 1, max: 6 }),
      kind: fc.constantFrom('emergency', 'cancel', 'mains-lost'),
      fingerprint: fc.integer({ min: 0, max: 1 }),
      pad: fc.integer({ min: 0, max: 300 }),
    }),
  },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('published' as const), picks: fc.array(fc.nat(), { maxLength: 4 }), retry: fc.integer({ min: 1, max: 20_000 }) }) },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant('advance' as const),
      pick: fc.nat(),
      stage: fc.constantFrom(...STAGES),
      text: fc.option(fc.constantFrom('Officer Bao', 'unit 3')),
      eta: fc.option(fc.integer({ min: 0, max: HOUR })),
    }),
  },
  fc.record({ op: fc.constant('retryAt' as const), pick: fc.nat(), at: fc.integer({ min: 0, max: 100_000 }) }),
  fc.record({ op: fc.constantFrom('alarmsDueNow' as const, 'enforceBounds' as const) }),
  { weight: 2, arbitrary: fc.record({ op: fc.constant('time' as const), by: fc.oneof(fc.integer({ min: 0, max: 60_000 }), fc.constantFrom(HOUR, 24 * HOUR, 2 * 24 * HOUR)) }) },
  fc.record({ op: fc.constant('disk' as const), low: fc.boolean() }),
  { weight: 2, arbitrary: fc.record({ op: fc.constant('putStatus' as const), terminal, battery: fc.option(fc.integer({ min: 0, max: 100 })), mains: fc.boolean() }) },
  fc.record({ op: fc.constant('flushStatuses' as const), olderThanMs: fc.constantFrom(0, 60_000) }),
  fc.record({ op: fc.constant('statusPublished' as const), pick: fc.nat(), stale: fc.boolean() }),
  fc.record({ op: fc.constant('hello' as const), terminal, boot: fc.integer({ min: 1, max: 4 }), lastEvent: fc.integer({ min: 0, max: 6 }) }),
  fc.record({ op: fc.constant('resetNumbering' as const), terminal, boot: fc.option(fc.integer({ min: 1, max: 4 })) }),
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('recognise' as const),
      terminal,
      number: fc.integer({ min: 1, max: 6 }),
      kind: fc.constantFrom('emergency', 'mains-lost'),
      fingerprint: fc.integer({ min: 0, max: 1 }),
    }),
  },
  fc.record({ op: fc.constant('putBroadcast' as const), id: fc.integer({ min: 1, max: 3 }), text: fc.constantFrom('storm', 'all clear'), expiresIn: fc.option(fc.integer({ min: 1, max: 2 * HOUR })) }),
  fc.record({ op: fc.constant('withdrawBroadcast' as const), id: fc.integer({ min: 1, max: 4 }) }),
  fc.record({ op: fc.constantFrom('broadcastSent' as const, 'broadcastRead' as const), id: fc.integer({ min: 1, max: 3 }), terminal, revision: fc.integer({ min: 0, max: 3 }) }),
  fc.record({ op: fc.constant('meta' as const), key: fc.constantFrom('a', 'b'), bump: fc.boolean() }),
  fc.record({ op: fc.constant('next' as const), key: fc.constantFrom('batch', 'x'), block: fc.integer({ min: 1, max: 3 }) }),
  fc.record({ op: fc.constant('count' as const), name: fc.constantFrom('x', 'dropped.trouble.age'), by: fc.integer({ min: 1, max: 3 }) }),
)

/** Applies one call to a store; returns what it answered. `ids` are the ids added so far, for picks. */
function apply(s: Store, c: Call, now: number, ids: string[]): unknown {
  const pick = (i: number) => ids[i % Math.max(1, ids.length)] ?? 'none:1'
  const tag = (n: number) => `gw.${n}`
  switch (c.op) {
    case 'add': {
      const epoch = c.terminal === null ? '' : (s.numbering(c.terminal)?.epoch ?? '')
      const id = c.terminal === null ? `gw:g${c.number}` : terminalEventId(c.terminal, epoch, c.number)
      const body = { kind: c.kind, pad: 'x'.repeat(c.pad) }
      const fp = `${c.kind}||1|${c.fingerprint}|`
      return s.addEvent({
        id,
        terminal: c.terminal,
        address: c.terminal === null ? null : 1,
        number: c.terminal === null ? null : c.number,
        cls: c.cls,
        body,
        receivedAt: now,
        boot: 1,
        offset: null,
        ...(c.terminal === null ? {} : { epoch, fingerprint: fp }),
      })
    }
    case 'published':
      return s.published(c.picks.map(pick), now, (attempts) => now + attempts * c.retry)
    case 'advance':
      return s.advance(pick(c.pick), c.stage, now, { ...(c.text !== null ? { text: c.text } : {}), ...(c.eta !== null ? { etaAt: now + c.eta } : {}) })
    case 'retryAt':
      return s.retryAt(pick(c.pick), c.at)
    case 'alarmsDueNow':
      return s.alarmsDueNow()
    case 'enforceBounds':
      return s.enforceBounds(now)
    case 'time':
    case 'disk':
      return null
    case 'putStatus':
      return s.putStatus(c.terminal, 1, { uptime: now / 1000, mains: c.mains, ...(c.battery !== null ? { battery: c.battery } : {}) }, now)
    case 'flushStatuses':
      return s.flushStatuses(now, c.olderThanMs)
    case 'statusPublished': {
      const dirty = s.dirtyStatuses()
      const d = dirty[c.pick % Math.max(1, dirty.length)]
      return d && s.statusPublished(d.terminal, d.version - (c.stale ? 1 : 0))
    }
    case 'hello':
      return s.hello(c.terminal, c.boot, c.lastEvent, tag)
    case 'resetNumbering':
      return s.resetNumbering(c.terminal, 'event-differs', c.boot, tag)
    case 'recognise':
      return s.recognise(c.terminal, c.number, `${c.kind}||1|${c.fingerprint}|`)
    case 'putBroadcast':
      return s.putBroadcast({ id: c.id, text: c.text, urgency: 'urgent', expires: c.expiresIn === null ? null : now + c.expiresIn, receivedAt: now })
    case 'withdrawBroadcast':
      return s.withdrawBroadcast(c.id)
    case 'broadcastSent':
      return s.broadcastSent(c.id, c.terminal, c.revision, now)
    case 'broadcastRead':
      return s.broadcastRead(c.id, c.terminal, c.revision, now)
    case 'meta':
      return c.bump ? s.bump(c.key) : s.setMeta(c.key, String(now))
    case 'next':
      return s.next(c.key, c.block)
    case 'count':
      return s.count(c.name, c.by)
  }
}

/** Everything the store can be asked at `now`. */
function snapshot(s: Store, now: number, ids: string[]): unknown {
  return {
    events: ids.map((id) => s.get(id) ?? null),
    dueAlarms: s.dueAlarms(now),
    dueAlarms2: s.dueAlarms(now, 2),
    dueBacklog: s.dueBacklog(now, 5, 600),
    nextDue: s.nextDue(),
    openAlerts: s.openAlerts(),
    recent: TERMINALS.map((t) => s.recentAlerts(t, s.numbering(t)?.epoch ?? '', now - HOUR)),
    awaiting: s.awaitingReceipt(now - 60_000),
    unreceipted: s.unreceiptedAlarms(),
    latestOpen: TERMINALS.map((t) => s.latestOpenAlarm(t, s.numbering(t)?.epoch ?? '', 5)),
    backlog: s.backlog(),
    numbering: TERMINALS.map((t) => s.numbering(t) ?? null),
    recognised: TERMINALS.flatMap((t) => [1, 3, 6].map((n) => s.recognise(t, n, 'emergency||1|0|'))),
    statuses: s.dirtyStatuses(),
    broadcasts: s.broadcasts(now),
    active: s.activeBroadcasts(now),
    deliveries: [1, 2, 3].map((b) => s.deliveries(b)),
    counters: s.counters(),
    meta: ['a', 'b', 'terminal-resets'].map((k) => s.meta(k) ?? null),
    belowReserve: s.belowReserve(),
    writes: s.writes(),
  }
}

describe('MemoryStore answers every call as SqliteStore does (property)', () => {
  it('over random sequences of calls, with small bounds', () => {
    fc.assert(
      fc.property(fc.array(call, { maxLength: 60 }), (calls) => {
        let free = 1e12
        const options: StoreOptions = {
          freeSpace: () => free,
          limits: { maxTroubleEvents: 3, maxRequestEvents: 3, maxTroubleAgeDays: 1, maxRequestAgeDays: 2, maxStoreMB: 0.001, reserveMB: 16 },
        }
        const sqlite = new SqliteStore({ path: ':memory:', ...options })
        const memory = new MemoryStore(options)
        try {
          let now = 1_000
          const ids: string[] = []
          for (const c of calls) {
            if (c.op === 'time') now += c.by
            if (c.op === 'disk') free = c.low ? 1024 : 1e12
            const a = apply(sqlite, c, now, ids)
            const b = apply(memory, c, now, ids)
            expect(b, JSON.stringify(c)).toEqual(a)
            const added = c.op === 'add' ? (a as AddResult) : null
            if (added !== null && added.kind !== 'refused' && !ids.includes(added.event.id)) ids.push(added.event.id)
            expect(snapshot(memory, now, ids), JSON.stringify(c)).toEqual(snapshot(sqlite, now, ids))
          }
          sqlite.close()
          memory.close()
          expect(memory.writes()).toEqual(sqlite.writes())
        } finally {
          sqlite.close()
        }
      }),
      { seed: 20261203, numRuns: 300 },
    )
  })
})
