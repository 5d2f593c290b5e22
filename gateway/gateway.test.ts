/**
 * The gateway's promise end to end, on the rig of gateway.suite.ts (a simulated line, a
 * fake broker, a fake clock): an alarm from the press to resolved, with the stage shown on
 * the terminal at each step, republished until its receipt, and "call 110 by phone" when
 * none comes; an event is committed to disk before the terminal is told it is stored
 * (power cuts, issue 10 item 3); and a failing disk or an internal error that must not stop
 * a session or a command (issue 11 review). Store and forward is in
 * gateway-publishing.test.ts, the platform's commands in gateway-commands.test.ts.
 */

import { beforeAll, describe, expect, it } from 'vitest'
import { GatewayLink } from '../protocol/link.js'
import { decodePayload, type UplinkEvent } from '../protocol/mqtt.js'
import { OWN, replies, rig, send, warmUpBatches } from './gateway.suite.js'
import { SqliteStore } from './sqlite-store.js'
import type { Store } from './store.js'

beforeAll(warmUpBatches)

describe('gateway: an alarm from press to resolved', () => {
  it('stores, publishes, and shows each stage on the terminal as the platform answers', async () => {
    const r = rig()
    await r.run(2_000)
    r.press('emergency')
    await r.run(3_000, () => r.uplink('/alert').length > 0)
    const [alert] = r.uplink('/alert')
    expect(alert).toMatchObject({ v: 1, id: 'SL-T-5:1', class: 'alarm', kind: 'emergency', code: 101, restore: false, gateway: 'gw-1', terminal: 'SL-T-5', address: 5, number: 1, attempt: 1 })
    expect(alert!.time.estimated).toBe(true) // no platform time yet
    await r.run(2_000)
    expect(r.stageNames(1)).toEqual(['stored', 'sent'])
    r.command({ id: 'c1', type: 'receipt', ids: ['SL-T-5:1'] })
    r.command({ id: 'c2', type: 'acknowledged', alert: 'SL-T-5:1', by: 'Officer Bao' })
    await r.run(2_000)
    r.command({ id: 'c3', type: 'dispatched', alert: 'SL-T-5:1', unit: 'patrol car 3', eta: 40 })
    await r.run(2_000)
    r.command({ id: 'c4', type: 'resolved', alert: 'SL-T-5:1', text: 'closed' })
    await r.run(2_000)
    expect(r.stageNames(1)).toEqual(['stored', 'sent', 'received', 'acknowledged', 'dispatched', 'resolved'])
    expect(r.stages().find((i) => i.stage === 'dispatched')).toMatchObject({ text: 'patrol car 3', eta: 40 })
    expect(r.stages().find((i) => i.stage === 'acknowledged')).toMatchObject({ text: 'Officer Bao' })
    expect(r.store.get('SL-T-5:1')).toMatchObject({ stage: 'resolved', done: true })
  })

  it('publishes an alarm again under the same id until the receipt, with backoff', async () => {
    const r = rig()
    r.press('fire')
    await r.run(80_000)
    const alerts = r.published.filter((p) => p.topic.endsWith('/alert'))
    const attempts = alerts.map((p) => (decodePayload(p.payload) as UplinkEvent).attempt)
    expect(new Set(alerts.map((p) => (decodePayload(p.payload) as UplinkEvent).id))).toEqual(new Set(['SL-T-5:1']))
    expect(attempts).toEqual([1, 2, 3, 4, 5])
    const gaps = alerts.slice(1).map((p, i) => p.at - alerts[i]!.at)
    // 5, 10, 20 s (random 0.5: no jitter), each to within the 50 ms steps of the run loop
    expect(gaps.slice(0, 3).map((g) => Math.round(g / 1000))).toEqual([5, 10, 20])
    r.command({ id: 'r', type: 'receipt', ids: ['SL-T-5:1'] })
    const before = alerts.length
    await r.run(120_000)
    expect(r.published.filter((p) => p.topic.endsWith('/alert')).length).toBe(before)
  })

  it('tells the terminal "call 110 by phone" when no receipt comes in time, keeps trying, and moves on at the receipt', async () => {
    const r = rig()
    r.state.online = false
    r.press()
    await r.run(59_000)
    expect(r.stageNames(1)).toEqual(['stored'])
    await r.run(3_000)
    expect(r.stageNames(1)).toEqual(['stored', 'unconfirmed'])
    expect(r.logs.some((l) => l.level === 'warn' && /NOT CONFIRMED/.test(l.msg))).toBe(true)
    r.state.online = true
    r.gateway.online()
    await r.run(2_000)
    expect(r.uplink('/alert')).toHaveLength(1)
    r.command({ id: 'r', type: 'receipt', ids: ['SL-T-5:1'] })
    await r.run(2_000)
    expect(r.stageNames(1)).toEqual(['stored', 'unconfirmed', 'received'])
  })

  it('a replayed event (the terminal lost our ACK, or restarted) is stored once and its stage shown again', async () => {
    const r = rig()
    r.press('panic', 1)
    await r.run(5_000)
    r.press('panic', 1)
    await r.run(5_000)
    expect(r.store.backlog().alarm.count).toBe(1)
    expect(new Set(r.uplink('/alert').map((a) => a.id))).toEqual(new Set(['SL-T-5:1']))
    expect(r.logs.some((l) => /already stored/.test(l.msg))).toBe(true)
    expect(r.stageNames(1).filter((s) => s === 'stored').length).toBeGreaterThanOrEqual(1)
  })
})

describe('issue 10: power cuts (item 3)', () => {
  it('every event the terminal is told is stored was committed with synchronous=FULL, for each class', async () => {
    const atAck: { lastEvent: string | null; durable: number }[] = []
    let store: Store | undefined
    class Watched extends GatewayLink {
      override accept(ref: number): void {
        const w = store!.writes()
        atAck.push({ lastEvent: w.lastEvent, durable: w.durable })
        super.accept(ref)
      }
    }
    store = new SqliteStore({ path: ':memory:', freeSpace: () => 1e12 })
    const r = rig({ store, link: (o) => new Watched(o) })
    await r.run(2_000)
    let before = store.writes().durable
    for (const kind of ['emergency', 'callback', 'mains-lost', 'test'] as const) {
      r.press(kind)
      await r.run(3_000, () => atAck.length > 0)
      const ack = atAck.shift()!
      expect(ack.lastEvent, kind).toBe('durable')
      expect(ack.durable, kind).toBeGreaterThan(before)
      await r.run(2_000)
      before = store.writes().durable
    }
  })
})

describe('a failing disk and internal errors (issue 11 review)', () => {
  it('a terminal whose known-terminals list cannot be saved still gets its CONFIG and its stages', async () => {
    const store = new SqliteStore({ path: ':memory:', freeSpace: () => 1e12 })
    const setMeta = store.setMeta.bind(store)
    store.setMeta = (key, value) => {
      if (key === 'terminals') throw Object.assign(new Error('SQLITE_IOERR: disk I/O error'), { code: 'SQLITE_IOERR' })
      setMeta(key, value)
    }
    const r = rig({ store })
    await r.run(3_000)
    expect(r.tLog.some((e) => e.kind === 'message' && e.message.type === 'CONFIG')).toBe(true)
    expect(r.logs.some((l) => l.level === 'error' && /could not save the known terminals/.test(l.msg))).toBe(true)
  })

  it('a command that failed inside the gateway (CMD_FAILED) is applied when the platform sends it again under the same id', async () => {
    const store = new SqliteStore({ path: ':memory:', freeSpace: () => 1e12 })
    const r = rig({ store })
    await r.run(2_000)
    r.press()
    await r.run(5_000, () => r.uplink('/alert').length > 0)
    const advance = store.advance.bind(store)
    let fail = true
    store.advance = (...a: Parameters<typeof advance>) => {
      if (fail) {
        fail = false
        throw new Error('SQLITE_BUSY')
      }
      return advance(...a)
    }
    send(r, OWN, { id: 'k', type: 'acknowledged', alert: 'SL-T-5:1', by: 'Bao' })
    send(r, OWN, { id: 'k', type: 'acknowledged', alert: 'SL-T-5:1', by: 'Bao' })
    await r.run(2_000)
    expect(replies(r)).toEqual(['CMD_FAILED'])
    expect(r.stageNames(1)).toContain('acknowledged')
  })
})
