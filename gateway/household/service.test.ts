/**
 * The household service (issue 13) through the gateway it lives in: the rig of
 * gateway.suite.ts (a terminal on a simulated line, a fake broker, a fake clock). What the
 * household page, the local API and `steppelink status | relay | inbox` rely on.
 */

import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Compile } from 'typebox/compile'
import { beforeAll, describe, expect, it } from 'vitest'
import { UplinkEvent } from '../../protocol/mqtt.js'
import { OWN, rig, send, warmUpBatches, type Rig } from '../gateway.suite.js'
import { MemoryStore } from '../memory-store.js'
import { SqliteStore } from '../sqlite-store.js'
import { checkRelay, type RelayInput, relayRefused } from './model.js'

beforeAll(warmUpBatches)

const checkUplink = Compile(UplinkEvent)
const MEDICAL: RelayInput = { what: 'medical', forName: '巴图家', forPhone: '13904790000', where: '3号井冬营地', text: '老人从马上摔下，腿可能骨折。', by: '其其格' }
const errors = (r: Rig) => r.logs.filter((l) => l.level === 'error')

/**
 * The uplink items once `count` of them are of `kinds`: a batch is compressed off the fake
 * clock (zstd), so on a busy machine it may take more steps than the fake seconds suggest.
 */
async function itemsOf(r: Rig, kinds: string[], count: number) {
  for (let i = 0; i < 50; i++) {
    const items = (await r.items()).filter((x) => kinds.includes(x.kind))
    if (items.length >= count) return items
    await r.run(500)
  }
  return (await r.items()).filter((x) => kinds.includes(x.kind))
}

/** A rig whose terminal has its session (answering). */
async function up(opts: Parameters<typeof rig>[0] = {}): Promise<Rig> {
  const r = rig({ ...opts, settings: { household: '巴特尔家', ...opts.settings } })
  await r.run(2_000)
  return r
}

describe('household: the snapshot', () => {
  it('says the uplink, the terminal with its latest heartbeat, the backlog, the disk, the clock and the verdict', async () => {
    const r = await up()
    r.send({ type: 'HEARTBEAT', uptime: 60, mains: false, battery: 41, signal: -81 })
    await r.run(1_000)
    const s = r.gateway.household.snapshot()
    expect(s).toMatchObject({
      gateway: 'gw-1',
      household: '巴特尔家',
      area: 'sumu-7',
      version: 'test',
      verdict: 'ok',
      uplink: { online: true, broker: '' },
      clock: { synchronised: false },
      terminals: [{ terminal: 'SL-T-5', address: 5, answering: true, lost: false, battery: 41, mains: false, signal: -81 }],
      backlog: { alarm: 0, request: 0, trouble: 0, status: 0 },
      disk: { freeBytes: null, reserveBytes: 16 * 1024 * 1024, low: false },
      alerts: [],
      inbox: [],
      commandsAuthenticated: false,
    })
    // Said, but they do not lower the level.
    expect(s.reasons).toEqual(['clock-estimated', 'commands-not-authenticated'])
    expect(s.terminals[0]!.lastHeard).toBeGreaterThan(0)
    // The uplink has carried something by now (the birth is main.ts's; the status is the core's).
    await r.gateway.publishStatus()
    expect(r.gateway.household.snapshot().uplink.lastContact).toBe(r.line.now)
  })

  it('is `delayed` with the uplink offline or the disk below the reserve, and `down` with no terminal answering', async () => {
    let free = 1e12
    const r = rig({ storeOptions: { freeSpace: () => free } })
    // Before the terminal's HELLO: nothing would hear a press.
    expect(r.gateway.household.snapshot()).toMatchObject({ verdict: 'down', reasons: expect.arrayContaining(['no-terminal']) })
    await r.run(2_000)
    expect(r.gateway.household.snapshot().verdict).toBe('ok')
    r.state.online = false
    r.gateway.uplinkChanged()
    expect(r.gateway.household.snapshot()).toMatchObject({ verdict: 'delayed', reasons: expect.arrayContaining(['uplink-offline']), uplink: { online: false } })
    r.state.online = true
    free = 1024
    expect(r.gateway.household.snapshot()).toMatchObject({ verdict: 'delayed', reasons: expect.arrayContaining(['disk-low']), disk: { low: true } })
  })

  it('takes the uplink and the free disk from main.ts when it gives them', async () => {
    const r = rig({ io: { uplinkState: () => ({ online: false, since: 5_000, broker: 'mqtts://110.example.cn:8883' }), diskFree: () => 8 * 1024 * 1024 } })
    await r.run(2_000)
    expect(r.gateway.household.snapshot()).toMatchObject({
      verdict: 'delayed',
      uplink: { online: false, since: 5_000, broker: 'mqtts://110.example.cn:8883' },
      disk: { freeBytes: 8 * 1024 * 1024, reserveBytes: 16 * 1024 * 1024 },
    })
  })

  it('lists open alerts and those resolved in the last day, newest first, each with its stage history', async () => {
    const r = await up()
    r.press('emergency')
    await r.run(2_000)
    r.press('callback')
    await r.run(2_000)
    send(r, OWN, { id: 'c1', type: 'receipt', ids: ['SL-T-5:1'] })
    send(r, OWN, { id: 'c2', type: 'resolved', alert: 'SL-T-5:1', text: 'false alarm' })
    await r.run(1_000)
    const alerts = r.gateway.household.snapshot().alerts
    expect(alerts.map((a) => [a.id, a.cls, a.kind, a.terminal, a.relay, a.stage])).toEqual([
      ['SL-T-5:2', 'request', 'callback', 'SL-T-5', null, 'sent'],
      ['SL-T-5:1', 'alarm', 'emergency', 'SL-T-5', null, 'resolved'],
    ])
    expect(alerts[1]!.stages.map((x) => [x.stage, x.text])).toEqual([
      ['stored', undefined],
      ['sent', undefined],
      ['received', undefined],
      ['resolved', 'false alarm'],
    ])
    // A day after it was resolved, it is gone (the store forgets it with its history).
    await r.run(86_400_000 + 120_000, undefined, 60_000)
    expect(r.gateway.household.snapshot().alerts.map((a) => a.id)).toEqual(['SL-T-5:2'])
  })
})

describe('household: relay', () => {
  it('stores an alarm relay with synchronous=FULL before it answers ok, then publishes it on `alert` with the relay map [MQTT-3.11]', async () => {
    const store = new SqliteStore({ path: ':memory:', freeSpace: () => 1e12 })
    const order: string[] = []
    const add = store.addEvent.bind(store)
    store.addEvent = (e) => {
      const before = store.writes().durable
      const out = add(e)
      order.push(`stored ${e.id} ${store.writes().lastEvent} +${store.writes().durable - before}`)
      return out
    }
    const r = await up({ store })
    const publish = r.published.push.bind(r.published)
    r.published.push = (...p) => {
      order.push(`published ${p[0]!.topic}`)
      return publish(...p)
    }
    const res = r.gateway.household.relay(MEDICAL, 'form-1')
    expect(res).toEqual({ ok: true, id: 'gw-1:g1', cls: 'alarm', duplicate: false })
    // One durable commit, the key with it, before anything is published; and published at once.
    expect(order).toEqual(['stored gw-1:g1 durable +1', 'published steppelink/v1/gw/gw-1/alert'])
    expect(store.get('gw-1:g1')).toMatchObject({ cls: 'alarm', stage: 'stored', key: 'form-1' })
    await r.run(500)
    const [alert] = r.uplink('/alert')
    expect(alert).toMatchObject({
      id: 'gw-1:g1',
      class: 'alarm',
      kind: 'medical',
      code: 100,
      terminal: null,
      address: null,
      number: null,
      text: MEDICAL.text,
      relay: { what: 'medical', for: { name: '巴图家', phone: '13904790000', where: '3号井冬营地' }, by: { household: '巴特尔家', member: '其其格' } },
      attempt: 1,
      stage: 'stored',
    })
    expect(checkUplink.Check(alert)).toBe(true)
  })

  it('a relayed alarm is republished until the receipt, and the operator moves it to resolved; its history shows each step', async () => {
    const r = await up()
    const res = r.gateway.household.relay({ what: 'crime', forName: '巴图家', text: '' }, 'k')
    if (!res.ok) throw new Error(res.message)
    await r.run(20_000)
    const copies = r.uplink('/alert').filter((a) => a.id === res.id)
    expect(copies.length).toBeGreaterThanOrEqual(2)
    expect(copies.map((c) => c.attempt)).toEqual(copies.map((_, i) => i + 1))
    expect(copies[0]).toMatchObject({ kind: 'panic', code: 120 })
    expect(copies[0]!.text).toBeUndefined()
    send(r, OWN, { id: 'c1', type: 'receipt', ids: [res.id] })
    await r.run(1_000)
    const after = r.uplink('/alert').length
    await r.run(120_000, undefined, 1_000)
    expect(r.uplink('/alert').length).toBe(after) // no republication after the receipt
    send(r, OWN, { id: 'c2', type: 'acknowledged', alert: res.id, by: 'Officer Bao' })
    send(r, OWN, { id: 'c3', type: 'dispatched', alert: res.id, unit: 'patrol car 3', eta: 40 })
    send(r, OWN, { id: 'c4', type: 'resolved', alert: res.id, text: 'all safe' })
    await r.run(1_000)
    const [a] = r.gateway.household.snapshot().alerts
    expect(a).toMatchObject({ id: res.id, cls: 'alarm', kind: 'panic', terminal: null, relay: { what: 'crime', forName: '巴图家' }, stage: 'resolved' })
    expect(a!.stages.map((x) => x.stage)).toEqual(['stored', 'sent', 'received', 'acknowledged', 'dispatched', 'resolved'])
    expect(a!.stages[3]).toMatchObject({ text: 'Officer Bao' })
    expect(a!.stages[4]).toMatchObject({ text: 'patrol car 3', eta: expect.any(Number) })
    expect(r.uplink('/reply')).toEqual([]) // every command found its alert
    expect(errors(r)).toEqual([]) // no terminal to INDICATE to, and no error for it
  })

  it('an alarm relay with no receipt becomes unconfirmed after the receipt timeout, and the page shows it', async () => {
    const r = await up()
    r.state.online = false
    const res = r.gateway.household.relay({ what: 'fire', forName: '巴图家', text: '草场着火' }, 'k')
    if (!res.ok) throw new Error(res.message)
    expect(r.state.hurried).toBe(1) // offline: the uplink is asked to reconnect sooner
    await r.run(61_000, undefined, 1_000)
    expect(r.gateway.household.snapshot().alerts[0]).toMatchObject({ stage: 'unconfirmed' })
    expect(errors(r)).toEqual([])
  })

  it('a request relay (livestock, other) goes the request way, on `event`, kind relay', async () => {
    const r = await up()
    const res = r.gateway.household.relay({ what: 'livestock', forName: '巴图家', where: '3号井', text: '两只羊走失' }, 'k')
    expect(res).toMatchObject({ ok: true, cls: 'request' })
    await r.run(2_000)
    const items = await itemsOf(r, ['relay'], 1)
    expect(items).toMatchObject([{ class: 'request', code: null, relay: { what: 'livestock', for: { name: '巴图家', where: '3号井' }, by: { household: '巴特尔家' } } }])
    expect(checkUplink.Check(items[0])).toBe(true)
    expect(r.uplink('/alert')).toEqual([])
    send(r, OWN, { id: 'c1', type: 'receipt', ids: [res.ok ? res.id : ''] })
    await r.run(500)
    expect(r.gateway.household.snapshot().alerts[0]!.stages.map((x) => x.stage)).toEqual(['stored', 'sent', 'received'])
  })

  it('the same key again returns the first relay and stores nothing (a double submit) ', async () => {
    const r = await up()
    const first = r.gateway.household.relay(MEDICAL, 'same-key')
    const writes = r.store.writes().durable
    const again = r.gateway.household.relay({ ...MEDICAL, text: 'typed twice' }, 'same-key')
    expect(again).toEqual({ ok: true, id: first.ok ? first.id : '', cls: 'alarm', duplicate: true })
    expect(r.store.writes().durable).toBe(writes)
    expect(r.store.cases(0)).toHaveLength(1)
    expect(r.gateway.household.relay(MEDICAL, 'other-key')).toMatchObject({ ok: true, duplicate: false })
    expect(r.store.cases(0)).toHaveLength(2)
  })

  const bytes = (n: number, c = 'x') => c.repeat(n)
  // The rule itself is tested at its source (model.test.ts): here, that the gateway answers with it.
  it.each<[string, unknown]>([
    ['a household name of 65 bytes', { ...MEDICAL, forName: bytes(65) }],
    ['a household name of 22 Chinese characters (66 bytes)', { ...MEDICAL, forName: bytes(22, '巴') }],
    ['letters in the phone', { ...MEDICAL, forPhone: 'call me' }],
    ['a line break in the household name', { ...MEDICAL, forName: 'a\nb' }],
    ['"other" without a message', { what: 'other', forName: '巴图家', text: ' ' }],
    ['no input at all', null],
  ])('refuses %s by the rule of a relay (checkRelay), naming the field, and stores nothing', async (_, input) => {
    const r = await up()
    const rule = checkRelay(input)
    if (rule.ok) throw new Error('the rule takes it')
    const res = r.gateway.household.relay(input as RelayInput, 'k')
    expect(res).toEqual(relayRefused(rule.errors))
    expect(res).toMatchObject({ ok: false, code: rule.errors[0].code, field: rule.errors[0].field, problem: rule.errors[0].problem })
    expect(r.store.cases(0)).toEqual([])
    expect(r.store.byKey('k')).toBeUndefined()
  })

  it('stores a relay as the rule cleaned it: trimmed, empty optional fields left out', async () => {
    const r = await up()
    const res = r.gateway.household.relay({ what: 'fire', forName: '  巴图家 ', forPhone: ' ', where: ' 3号井 ', text: '', by: '' }, 'k')
    if (!res.ok) throw new Error(res.message)
    const body = r.store.get(res.id)?.body
    expect(body?.relay).toEqual({ what: 'fire', for: { name: '巴图家', where: '3号井' }, by: { household: '巴特尔家' } })
    expect(body).not.toHaveProperty('text')
  })

  it('takes a message of exactly 480 bytes, line breaks (CR LF from a form as LF) and markup as text', async () => {
    const r = await up()
    expect(r.gateway.household.relay({ ...MEDICAL, text: bytes(160, '羊') }, 'a')).toMatchObject({ ok: true })
    const res = r.gateway.household.relay({ what: 'other', forName: '<b>巴图家</b>', text: 'line 1\r\nline 2 <script>alert(1)</script>' }, 'b')
    if (!res.ok) throw new Error(res.message)
    expect(r.store.get(res.id)?.body).toMatchObject({ text: 'line 1\nline 2 <script>alert(1)</script>', relay: { for: { name: '<b>巴图家</b>' } } })
  })

  it('a request relay below the disk reserve is STORE_REFUSED; an alarm relay is still stored, as a terminal alarm would be', async () => {
    const r = await up({ storeOptions: { freeSpace: () => 1024 } })
    const req = r.gateway.household.relay({ what: 'livestock', forName: '巴图家', text: '羊' }, 'k1')
    expect(req).toMatchObject({ ok: false, code: 'STORE_REFUSED' })
    if (!req.ok) expect(req.message).toMatch(/NOT saved.*Call 110 by phone/)
    expect(r.store.counters()['dropped.request.disk']).toBe(1)
    expect(r.gateway.household.relay(MEDICAL, 'k2')).toMatchObject({ ok: true, cls: 'alarm' })
  })

  it('a store that fails is STORE_FAILED: nothing saved, the verdict is `down` until a write succeeds again', async () => {
    for (const store of [new SqliteStore({ path: ':memory:', freeSpace: () => 1e12 }), new MemoryStore()]) {
      let broken = true
      const add = store.addEvent.bind(store)
      store.addEvent = (e) => {
        if (broken) throw Object.assign(new Error('SQLITE_IOERR: disk I/O error'), { code: 'SQLITE_IOERR' })
        return add(e)
      }
      const r = await up({ store })
      const res = r.gateway.household.relay(MEDICAL, 'k')
      expect(res).toMatchObject({ ok: false, code: 'STORE_FAILED' })
      if (!res.ok) expect(res.message).toMatch(/NOT saved.*Call 110 by phone/)
      expect(r.gateway.household.snapshot()).toMatchObject({ verdict: 'down', reasons: expect.arrayContaining(['store-failing']) })
      broken = false
      expect(r.gateway.household.relay(MEDICAL, 'k')).toMatchObject({ ok: true, duplicate: false })
      expect(r.gateway.household.snapshot().reasons).not.toContain('store-failing')
    }
  })
})

describe('household: a terminal alarm the disk could not store', () => {
  it('makes the verdict `down` (store-failing) until an event is stored again', async () => {
    const store = new SqliteStore({ path: ':memory:', freeSpace: () => 1e12 })
    let full = true
    const add = store.addEvent.bind(store)
    store.addEvent = (e) => {
      if (full) throw Object.assign(new Error('SQLITE_FULL: database or disk is full'), { code: 'SQLITE_FULL' })
      return add(e)
    }
    const r = await up({ store })
    let calls = 0
    r.gateway.household.subscribe(() => calls++)
    r.press()
    await r.run(2_000, () => r.stageNames(1).includes('unconfirmed'))
    expect(r.gateway.household.snapshot()).toMatchObject({ verdict: 'down', reasons: expect.arrayContaining(['store-failing']) })
    expect(calls).toBeGreaterThan(0)
    full = false
    await r.run(30_000, () => r.store.get('SL-T-5:1') !== undefined)
    expect(r.gateway.household.snapshot().reasons).not.toContain('store-failing')
  })
})

describe('household: the inbox [MQTT-3.12]', () => {
  const storm = { id: 'b1', type: 'broadcast', broadcast: 9001, text: '暴风雪预警', urgency: 'urgent' }

  it('reports each broadcast text received; read and passed on go back to the platform once each', async () => {
    const r = await up()
    send(r, OWN, storm)
    await r.run(1_000)
    const got = await itemsOf(r, ['broadcast-received'], 1)
    expect(got).toMatchObject([{ id: 'gw-1/got/9001.0', class: 'status', terminal: null, broadcast: 9001, revision: 0 }])
    expect(r.gateway.household.snapshot().inbox).toMatchObject([{ id: 9001, revision: 0, urgency: 'urgent', text: '暴风雪预警', readAt: null, passedOn: null }])

    expect(r.gateway.household.markRead(9001, 0)).toEqual({ ok: true })
    expect(r.gateway.household.markRead(9001, 0)).toEqual({ ok: true }) // again: nothing new
    expect(r.gateway.household.passedOn(9001, 0, 18)).toEqual({ ok: true })
    expect(r.gateway.household.passedOn(9001, 0, 18)).toEqual({ ok: true }) // again: nothing new
    expect(r.gateway.household.passedOn(9001, 0, 20)).toEqual({ ok: true }) // a correction
    await r.run(2_000)
    const items = await itemsOf(r, ['broadcast-read', 'broadcast-passed-on'], 3)
    expect(items.map((i) => [i.kind, i.id, i.by ?? i.households])).toEqual([
      ['broadcast-read', 'gw-1/read/9001.0/@household', 'household'],
      ['broadcast-passed-on', expect.stringMatching(/^gw-1:g\d+$/), 18],
      ['broadcast-passed-on', expect.stringMatching(/^gw-1:g\d+$/), 20],
    ])
    expect(items[1]!.id).not.toBe(items[2]!.id)
    for (const i of items) expect(checkUplink.Check(i)).toBe(true)
    expect(r.gateway.household.snapshot().inbox[0]).toMatchObject({ readAt: expect.any(Number), passedOn: { households: 20 } })

    // A new text is unread again, and received again.
    send(r, OWN, { ...storm, id: 'b2', text: '暴风雪解除' })
    await r.run(1_000)
    expect(r.gateway.household.snapshot().inbox).toMatchObject([{ id: 9001, revision: 1, readAt: null, passedOn: null }])
    expect((await itemsOf(r, ['broadcast-received'], 2)).map((i) => i.id)).toEqual(['gw-1/got/9001.0', 'gw-1/got/9001.1'])
  })

  it('passing on marks it read; unknown broadcasts and revisions, and bad counts, are refused', async () => {
    const r = await up()
    send(r, OWN, storm)
    await r.run(500)
    const h = r.gateway.household
    expect(h.markRead(1, 0)).toMatchObject({ ok: false, code: 'BROADCAST_UNKNOWN' })
    expect(h.markRead(9001, 1)).toMatchObject({ ok: false, code: 'BROADCAST_UNKNOWN', message: expect.stringMatching(/reload/) })
    expect(h.markRead(Number.NaN, 0)).toMatchObject({ ok: false, code: 'BROADCAST_UNKNOWN' })
    for (const n of [-1, 501, 1.5, Number.NaN, '3' as unknown as number]) expect(h.passedOn(9001, 0, n), String(n)).toMatchObject({ ok: false, code: 'BROADCAST_INVALID' })
    expect(h.passedOn(9001, 0, 0)).toEqual({ ok: true })
    expect(h.snapshot().inbox[0]).toMatchObject({ readAt: expect.any(Number), passedOn: { households: 0 } })
    await r.run(1_000)
    expect((await itemsOf(r, ['broadcast-read'], 1)).map((i) => i.by)).toEqual(['household'])
    send(r, OWN, { id: 'w', type: 'broadcast-withdraw', broadcast: 9001 })
    expect(h.snapshot().inbox).toEqual([])
    expect(h.markRead(9001, 1)).toMatchObject({ ok: false, code: 'BROADCAST_UNKNOWN' })
  })
})

describe('household: subscribe', () => {
  it('tells a listener once per burst of changes: a stage change, a relay; a listener that throws is logged and ignored', async () => {
    const r = await up()
    let calls = 0
    const off = r.gateway.household.subscribe(() => calls++)
    r.gateway.household.subscribe(() => {
      throw new Error('a page that broke')
    })
    r.press()
    await r.run(2_000)
    calls = 0
    send(r, OWN, { id: 'c1', type: 'receipt', ids: ['SL-T-5:1'] })
    send(r, OWN, { id: 'c2', type: 'acknowledged', alert: 'SL-T-5:1', by: 'Bao' })
    expect(calls).toBe(0) // not inside the core's call
    await Promise.resolve()
    expect(calls).toBe(1) // two changes, one call
    expect(r.logs.filter((l) => l.msg.includes('listener failed'))).not.toHaveLength(0)
    r.gateway.household.relay(MEDICAL, 'k')
    await Promise.resolve()
    expect(calls).toBe(2)
    off()
    send(r, OWN, { id: 'c3', type: 'resolved', alert: 'SL-T-5:1' })
    await Promise.resolve()
    expect(calls).toBe(2)
    expect(r.gateway.household.snapshot().alerts.find((a) => a.id === 'SL-T-5:1')?.stage).toBe('resolved')
  })

  it('is told when a heartbeat comes, and when the terminal is lost', async () => {
    const r = await up()
    let calls = 0
    r.gateway.household.subscribe(() => calls++)
    r.send({ type: 'HEARTBEAT', uptime: 1, mains: true, battery: 90 })
    await r.run(500)
    expect(calls).toBeGreaterThan(0)
    calls = 0
    r.line.clear()
    r.line.replace(1, { receive: () => {}, transmit: () => null, tick: () => null }) // the terminal falls silent
    await r.run(60_000, () => r.gateway.household.snapshot().terminals[0]!.lost, 1_000)
    expect(r.gateway.household.snapshot()).toMatchObject({ verdict: 'down', terminals: [{ lost: true }] })
    expect(calls).toBeGreaterThan(0)
  })
})

describe('household: what it publishes is what MQTT.md shows [MQTT-3.11] [MQTT-3.12]', () => {
  const spec = readFileSync(join(import.meta.dirname, '..', '..', 'protocol', 'MQTT.md'), 'utf8')
  const example = (match: string) => {
    const line = spec.split('\n').find((l) => l.startsWith('json  ') && l.includes(match))
    if (!line) throw new Error(`no example with ${match}`)
    const { time: _t, received: _r, attempt: _a, id: _id, ...rest } = JSON.parse(line.slice(6)) as Record<string, unknown>
    return rest
  }
  const made = (e: Record<string, unknown>) => {
    const { time: _t, received: _r, attempt: _a, id: _id, ...rest } = e
    return rest
  }

  it('a relayed alarm, a relayed request, a broadcast received, read and passed on by the household', async () => {
    const r = await up({ settings: { gateway: 'gw-0017', household: '巴特尔家' } })
    r.gateway.household.relay({ what: 'medical', forName: '巴图家', forPhone: '13904790000', where: '3号井冬营地', text: '老人从马上摔下，腿可能骨折。', by: '其其格' }, 'a')
    r.gateway.household.relay({ what: 'livestock', forName: '巴图家', where: '3号井', text: '两只羊在井边走失，明天需要兽医。' }, 'b')
    r.gateway.command('steppelink/v1/gw/gw-0017/cmd', Buffer.from(JSON.stringify({ v: 1, id: 'b1', type: 'broadcast', broadcast: 9001, text: 'storm', urgency: 'urgent' })))
    r.gateway.household.markRead(9001, 0)
    r.gateway.household.passedOn(9001, 0, 18)
    await r.run(2_000)
    const items = (await itemsOf(r, ['medical', 'relay', 'broadcast-received', 'broadcast-read', 'broadcast-passed-on'], 5)) as unknown as Record<string, unknown>[]
    const of = (kind: string, what?: string) => made(items.find((i) => i.kind === kind && (what === undefined || (i.relay as { what: string }).what === what))!)
    expect(of('medical')).toEqual(example('"kind":"medical","code":100'))
    expect(of('relay')).toEqual(example('"kind":"relay"'))
    expect(of('broadcast-received')).toEqual(example('"kind":"broadcast-received"'))
    expect(of('broadcast-read')).toEqual(example('/@household'))
    expect(of('broadcast-passed-on')).toEqual(example('"kind":"broadcast-passed-on"'))
    expect(items.find((i) => i.kind === 'broadcast-read')?.id).toBe('gw-0017/read/9001.0/@household')
    expect(items.find((i) => i.kind === 'broadcast-received')?.id).toBe('gw-0017/got/9001.0')
  })
})
