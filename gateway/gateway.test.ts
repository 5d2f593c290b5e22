import { describe, expect, it, vi } from 'vitest'
import { GatewayLink, TerminalLink, type LinkEvent } from '../protocol/link.js'
import type { Event, Stage, TerminalMessage } from '../protocol/messages.js'
import { ZSTD_MAGIC, decodeBatch, decodePayload, type UplinkEvent } from '../protocol/mqtt.js'
import { SimLine, onLine, seededRandom } from '../protocol/testing.js'
import { findCompression } from './compression.js'
import { Gateway, type GatewayIo, type GatewaySettings, type Log } from './gateway.js'
import { Store, type StoreOptions } from './store.js'

const SETTINGS: GatewaySettings = {
  gateway: 'gw-1',
  area: 'sumu-7',
  prefix: 'steppelink/v1',
  encoding: 'cbor',
  supervisionMs: 30_000,
  receiptTimeoutMs: 60_000,
  heartbeatS: 10,
  statusIntervalMs: 300_000,
  version: 'test',
}

interface Published {
  topic: string
  payload: Buffer
  retain: boolean
  at: number
}

/** A gateway on a simulated serial line with one terminal, a fake broker and a fake clock. */
function rig(opts: { store?: Store; storeOptions?: Partial<StoreOptions>; settings?: Partial<GatewaySettings>; boot?: number; compression?: GatewayIo['compression'] } = {}) {
  const line = new SimLine(9600, {}, 3)
  const store = opts.store ?? new Store({ path: ':memory:', freeSpace: () => 1e12, ...opts.storeOptions })
  const link = new GatewayLink({ gateway: 'gw-1', boot: opts.boot ?? 1, random: seededRandom(9) })
  const published: Published[] = []
  const logs: { level: string; msg: string; fields: object }[] = []
  const log: Log = Object.fromEntries(
    (['debug', 'info', 'warn', 'error'] as const).map((level) => [level, (fields: object, msg: string) => logs.push({ level, msg, fields })]),
  ) as unknown as Log
  /** While `holdAlerts` is set, an alert's PUBACK waits for it to resolve. */
  const state: { online: boolean; failPublish: boolean; holdAlerts: Promise<void> | null; hurried: number } = { online: true, failPublish: false, holdAlerts: null, hurried: 0 }
  let serialOut: Uint8Array[] = []
  const gateway = new Gateway(
    { ...SETTINGS, ...opts.settings },
    store,
    link,
    {
      writeSerial: (b) => serialOut.push(b),
      publish: async (topic, payload, o) => {
        if (!state.online || state.failPublish) throw new Error('offline')
        published.push({ topic, payload, retain: o?.retain ?? false, at: line.now })
        if (state.holdAlerts && topic.endsWith('/alert')) await state.holdAlerts
      },
      online: () => state.online,
      hurry: () => state.hurried++,
      now: () => line.now,
      random: () => 0.5,
      ...(opts.compression ? { compression: opts.compression } : {}),
    },
    log,
    opts.boot ?? 1,
  )
  line.add({
    receive: (b) => gateway.serialData(b),
    transmit: () => {
      const out = serialOut
      serialOut = []
      return out.length ? new Uint8Array(out.flatMap((c) => [...c])) : null
    },
    tick: () => gateway.tick(),
  })
  const tLog: LinkEvent[] = []
  let events = 0
  const terminal = new TerminalLink({ address: 5, hello: () => ({ terminal: 'SL-T-5', firmware: '1.0', capabilities: ['buzzer'], boot: 1, lastEvent: events }), random: seededRandom(4) })
  line.add(onLine(terminal, (e) => tLog.push(e)))
  gateway.start()
  gateway.serialOpened()
  const press = (kind: Event['kind'] = 'emergency', number = ++events): Event => {
    const m: Event = { type: 'EVENT', number, kind, boot: 1, uptime: 100 }
    terminal.send(m, { priority: 10 })
    return m
  }
  const stages = () => tLog.flatMap((e) => (e.kind === 'message' && e.message.type === 'INDICATE' ? [e.message] : []))
  const stageNames = (n: number) => stages().filter((i) => i.event === n).map((i) => i.stage)
  const uplink = (suffix: string) => published.filter((p) => p.topic.endsWith(suffix)).map((p) => decodePayload(p.payload) as UplinkEvent & Record<string, unknown>)
  const command = (c: Record<string, unknown>) => gateway.command('steppelink/v1/gw/gw-1/cmd', Buffer.from(JSON.stringify({ v: 1, ...c })))
  /** Runs the line, letting promises (publications) settle between steps. */
  const run = async (ms: number, until?: () => boolean) => {
    const end = line.now + ms
    while (line.now < end) {
      line.run(Math.min(end, line.now + 50), until)
      for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r))
      if (until?.()) return
    }
  }
  /** Every uplink item, singles and the contents of batches, in publication order. */
  const items = async () => {
    const out: { kind: string; class: string; [k: string]: unknown }[] = []
    for (const p of published) {
      if (p.topic.endsWith('/event') || p.topic.endsWith('/alert')) out.push(decodePayload(p.payload) as never)
      if (p.topic.endsWith('/batch')) out.push(...((await decodeBatch(p.payload)) as { items: never[] }).items)
    }
    return out
  }
  return { items, line, store, link, gateway, terminal, tLog, published, logs, state, press, stages, stageNames, uplink, command, run, send: (m: TerminalMessage) => terminal.send(m) }
}

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

describe('gateway: store and forward', () => {
  it('after an outage, sends alarms first, each on its own, then the backlog in a batch', async () => {
    const r = rig()
    r.state.online = false
    r.press('mains-lost')
    r.press('battery-low')
    r.press('callback')
    r.press('emergency')
    r.send({ type: 'HEARTBEAT', uptime: 5, mains: false, battery: 40 })
    await r.run(20_000)
    expect(r.published).toEqual([])
    r.state.online = true
    r.gateway.online()
    await r.run(2_000)
    const kinds = r.published.filter((p) => !p.topic.endsWith('/status')).map((p) => p.topic.split('/').pop())
    expect(kinds).toEqual(['alert', 'batch'])
    const batch = (await decodeBatch(r.published.find((p) => p.topic.endsWith('/batch'))!.payload)) as { items: { kind: string; class: string }[] }
    expect(batch.items.map((i) => i.kind)).toEqual(['callback', 'mains-lost', 'battery-low', 'status'])
    expect(r.store.backlog()).toMatchObject({ request: { count: 0 }, trouble: { count: 0 } })
    await r.run(2_000)
    // The call-back request (press 3) is done at PUBACK: its terminal sees it sent.
    expect(r.stageNames(3)).toEqual(['stored', 'sent'])
  })

  it('an alarm stored while offline hurries the uplink, and counts as waiting until its receipt', async () => {
    const r = rig()
    r.state.online = false
    r.press('mains-lost')
    await r.run(3_000)
    expect(r.state.hurried).toBe(0)
    expect(r.gateway.alarmWaiting()).toBe(false)
    r.press('emergency')
    await r.run(3_000)
    expect(r.state.hurried).toBe(1)
    expect(r.gateway.alarmWaiting()).toBe(true)
    r.state.online = true
    r.gateway.online()
    await r.run(2_000, () => r.uplink('/alert').length > 0)
    r.command({ id: 'r1', type: 'receipt', ids: [r.uplink('/alert')[0]!.id] })
    await r.run(100)
    expect(r.gateway.alarmWaiting()).toBe(false)
  })

  it('after an outage, the backlog and the status wait for the alarms\' PUBACK (they would share its TCP segment)', async () => {
    const r = rig()
    r.state.online = false
    r.press('mains-lost')
    r.press('emergency')
    await r.run(5_000)
    let release = () => {}
    r.state.holdAlerts = new Promise<void>((resolve) => (release = resolve))
    r.state.online = true
    r.gateway.online()
    await r.run(1_000)
    expect(r.published.map((p) => p.topic.split('/').pop())).toEqual(['alert'])
    release()
    await r.run(1_000)
    expect(r.published.map((p) => p.topic.split('/').pop()).sort()).toEqual(['alert', 'event', 'status'])
  })

  it('coalesces heartbeats while offline into one status with the lowest battery', async () => {
    const r = rig()
    r.state.online = false
    for (const [i, battery] of [50, 30, 45].entries()) {
      r.send({ type: 'HEARTBEAT', uptime: 10 * i, mains: false, battery })
      await r.run(10_000)
    }
    r.state.online = true
    r.gateway.online()
    await r.run(2_000)
    const statuses = r.uplink('/event').filter((e) => (e.kind as string) === 'status')
    expect(statuses).toHaveLength(1)
    expect(statuses[0]).toMatchObject({ heartbeats: 3, lowestBattery: 30, latest: { battery: 45 } })
  })

  it('says "terminal lost" when a terminal goes quiet past the supervision time, and "restored" when it is back', async () => {
    const r = rig()
    await r.run(2_000)
    r.line.replace(1, { receive: () => {}, transmit: () => null, tick: () => null })
    await r.run(35_000)
    expect(r.uplink('/event').map((e) => e.kind)).toContain('terminal-lost')
    r.line.replace(1, onLine(r.terminal, (e) => r.tLog.push(e)))
    r.send({ type: 'HEARTBEAT', uptime: 50, mains: true })
    await r.run(10_000)
    const items = await r.items()
    expect(items.map((e) => e.kind).filter((k) => k !== 'status')).toEqual(['terminal-lost', 'terminal-restored'])
    expect(items.find((e) => e.kind === 'terminal-lost')).toMatchObject({ class: 'trouble', code: 355, restore: false, terminal: 'SL-T-5', address: 5 })
  })

  it('when the disk fails, NAKs busy so the terminal keeps the alarm and sends it again', async () => {
    const store = new Store({ path: ':memory:', freeSpace: () => 1e12 })
    let failures = 2
    const add = store.addEvent.bind(store)
    store.addEvent = (e) => {
      if (failures-- > 0) throw Object.assign(new Error('SQLITE_IOERR: disk I/O error'), { code: 'SQLITE_IOERR' })
      return add(e)
    }
    const r = rig({ store })
    r.press()
    await r.run(20_000, () => r.uplink('/alert').length > 0)
    await r.run(2_000)
    expect(r.uplink('/alert')).toHaveLength(1)
    expect(r.logs.filter((l) => l.level === 'error' && /could not store/.test(l.msg))).toHaveLength(2)
    expect(r.stageNames(1)[0]).toBe('stored')
  })

  it('with the disk nearly full, drops lower classes (counted, logged) but takes alarms', async () => {
    const r = rig({ storeOptions: { freeSpace: () => 1024 * 1024 } })
    r.state.online = false
    r.press('mains-lost')
    r.press('emergency')
    await r.run(5_000)
    expect(r.store.backlog()).toMatchObject({ alarm: { count: 1 }, trouble: { count: 0 } })
    expect(r.store.counters()['dropped.trouble.disk']).toBe(1)
    expect(r.logs.some((l) => l.level === 'warn' && /disk nearly full/.test(l.msg))).toBe(true)
  })

  it('after a reboot, shows each open alert\'s stage on its terminal again', async () => {
    const first = rig()
    first.press()
    await first.run(5_000)
    first.command({ id: 'a', type: 'acknowledged', alert: 'SL-T-5:1', by: 'Bao' })
    await first.run(2_000)
    first.gateway.stop()
    const second = rig({ store: first.store, boot: 2 })
    await second.run(5_000)
    expect(second.stageNames(1)).toEqual(['acknowledged'])
  })
})

describe('gateway: batches without zstd [MQTT-4.2] [MQTT-3.7]', () => {
  const isZstd = (b: Buffer) => ZSTD_MAGIC.every((x, i) => b[i] === x)
  const gatewayStatus = (r: ReturnType<typeof rig>) => r.uplink('/status').at(-1) as Record<string, unknown> | undefined

  it('drains a backlog of 20 call-back requests in uncompressed batches when @mongodb-js/zstd cannot be loaded, and says so loudly', async () => {
    // As on 32-bit ARM, where the package has no binary: its import throws. node:zlib is
    // held to "none" too, so the test means the same on a Node.js that has zstd built in.
    vi.doMock('@mongodb-js/zstd', () => {
      throw new Error("Cannot find module '@mongodb-js/zstd-linux-arm-gnueabihf'")
    })
    try {
      const r = rig({ compression: findCompression({ builtIn: () => null }) })
      r.state.online = false
      for (let i = 0; i < 20; i++) r.press('callback')
      await r.run(30_000, () => r.store.backlog().request.count === 20)
      expect(r.store.backlog().request.count).toBe(20)
      r.state.online = true
      r.gateway.online()
      await r.run(5_000, () => r.store.backlog().request.count === 0)

      const batches = r.published.filter((p) => p.topic.endsWith('/batch'))
      expect(batches.length).toBeGreaterThanOrEqual(1)
      for (const b of batches) {
        expect(isZstd(b.payload)).toBe(false)
        expect(b.payload[0]! >= 0xa0 && b.payload[0]! <= 0xbf).toBe(true) // the bare CBOR map
      }
      const ids = (await r.items()).filter((i) => i.kind === 'callback').map((i) => i.id)
      expect(ids).toEqual(Array.from({ length: 20 }, (_, i) => `SL-T-5:${i + 1}`))
      expect(r.store.backlog().request.count).toBe(0)
      await r.run(1_000)
      for (let n = 1; n <= 20; n++) expect(r.stageNames(n)).toContain('sent')

      expect(gatewayStatus(r)?.compression).toEqual({ codec: 'none', error: expect.stringMatching(/^@mongodb-js\/zstd: .*; node:zlib: /) })
      const errors = r.logs.filter((l) => l.level === 'error')
      expect(errors.map((l) => l.msg)).toEqual([expect.stringMatching(/^zstd cannot be loaded on this board, so batches go uncompressed: a full batch is about 10 times larger/)])
      expect(r.logs.filter((l) => l.level === 'warn')).toEqual([])
    } finally {
      vi.doUnmock('@mongodb-js/zstd')
    }
  })

  it('sends a batch uncompressed when zstd throws on it, logs that (rate-limited), and counts it in the status', async () => {
    let calls = 0
    const r = rig({
      compression: Promise.resolve({
        codec: 'zstd',
        via: '@mongodb-js/zstd',
        compress: async () => {
          calls++
          throw new Error('ZSTD_error_memory_allocation')
        },
      }),
    })
    for (const round of [1, 2, 3]) {
      r.state.online = false
      r.press('mains-lost')
      r.press('test')
      await r.run(5_000, () => r.store.backlog().trouble.count + r.store.backlog().status.count === 2)
      r.state.online = true
      r.gateway.online()
      await r.run(2_000, () => r.store.backlog().trouble.count + r.store.backlog().status.count === 0)
      expect(calls, `round ${round}`).toBe(round)
    }
    const batches = r.published.filter((p) => p.topic.endsWith('/batch'))
    expect(batches).toHaveLength(3)
    expect(batches.every((b) => !isZstd(b.payload))).toBe(true)
    expect((await r.items()).filter((i) => i.kind === 'mains-lost' || i.kind === 'test')).toHaveLength(6)
    // The first failure is logged at once; the next two fall within the same minute.
    expect(r.logs.filter((l) => l.level === 'error').map((l) => l.msg)).toEqual([expect.stringMatching(/^zstd failed on a batch: it goes uncompressed/)])
    r.command({ id: 's', type: 'status-request' })
    await r.run(100)
    expect(gatewayStatus(r)?.compression).toEqual({ codec: 'zstd', via: '@mongodb-js/zstd', failures: 3, error: 'ZSTD_error_memory_allocation' })
  })

  it('says in the status which zstd it compresses with: @mongodb-js/zstd where it loads', async () => {
    const r = rig({ compression: await findCompression() })
    r.command({ id: 's', type: 'status-request' })
    await r.run(100)
    expect(gatewayStatus(r)?.compression).toEqual({ codec: 'zstd', via: '@mongodb-js/zstd' })
    expect(r.logs.some((l) => l.level === 'info' && l.msg === 'batches compressed with zstd (@mongodb-js/zstd)')).toBe(true)
  })

  it('logs a backlog failure that is not the uplink going offline as a warning, at most once a minute', async () => {
    const r = rig()
    await r.run(1_000)
    r.state.failPublish = true
    r.press('mains-lost')
    r.press('battery-low')
    await r.run(30_000)
    expect(r.store.backlog().trouble.count).toBe(2)
    expect(r.logs.filter((l) => l.level === 'warn' && l.msg.startsWith('backlog publication failed'))).toHaveLength(1)
    await r.run(31_000)
    const warnings = r.logs.filter((l) => l.level === 'warn' && l.msg.startsWith('backlog publication failed'))
    expect(warnings).toHaveLength(2)
    expect(warnings[1]!.fields).toMatchObject({ suppressed: expect.any(Number) })
    r.state.failPublish = false
    await r.run(2_000)
    expect(r.store.backlog().trouble.count).toBe(0)
  })
})

describe('gateway: commands', () => {
  it('rejects malformed and unknown commands with an error report, and goes on', async () => {
    const r = rig()
    r.gateway.command('steppelink/v1/gw/gw-1/cmd', Buffer.from('{not json'))
    r.command({ id: 'x', type: 'launch' })
    r.command({ id: 'y', type: 'acknowledged', alert: 'nobody:1', by: 'Bao' })
    r.gateway.command('steppelink/v1/gw/gw-1/cmd', Buffer.from([0xff, 0x00, 0x13]))
    await r.run(100)
    expect(r.uplink('/reply').map((e) => e.code)).toEqual(['CMD_UNDECODABLE', 'CMD_UNKNOWN_TYPE', 'CMD_UNKNOWN_ALERT', 'CMD_UNDECODABLE'])
    expect(r.store.counters()['commands.rejected']).toBe(3)
    r.press()
    await r.run(3_000, () => r.uplink('/alert').length > 0)
    expect(r.uplink('/alert')).toHaveLength(1)
  })


  it('holds back error reports beyond the budget, counts them, and the next report says how many ([MQTT-5.2])', async () => {
    const r = rig({ settings: { replyBudget: { burst: 5, perMinute: 6 } } })
    await r.run(1_000)
    for (let i = 0; i < 200; i++) r.command({ id: `bad-${i}`, type: 'launch' })
    await r.run(100)
    const first = r.uplink('/reply')
    expect(first.map((e) => e.command)).toEqual(['bad-0', 'bad-1', 'bad-2', 'bad-3', 'bad-4'])
    expect(first.every((e) => e.suppressed === undefined)).toBe(true)
    expect(r.store.counters()['replies.suppressed']).toBe(195)
    expect(r.store.counters()['commands.rejected']).toBe(200)
    // One warn line per report sent, and one saying reports are being held back.
    expect(r.logs.filter((l) => l.level === 'warn' && l.msg.startsWith('command rejected'))).toHaveLength(5)
    expect(r.logs.filter((l) => l.level === 'warn' && l.msg.startsWith('too many rejected commands'))).toHaveLength(1)

    // An alarm pressed during the flood goes out as if nothing happened.
    r.press()
    await r.run(3_000, () => r.uplink('/alert').length > 0)
    expect(r.uplink('/alert')).toHaveLength(1)

    // 6 a minute: after 10 s one token is back; the report it pays for carries the count.
    await r.run(10_000)
    r.command({ id: 'late', type: 'launch' })
    await r.run(100)
    const late = r.uplink('/reply').at(-1)!
    expect(late).toMatchObject({ command: 'late', code: 'CMD_UNKNOWN_TYPE', suppressed: 195 })
    expect(r.store.counters()['replies.suppressed']).toBe(195)
  })
  it('ignores a command id it has already applied', async () => {
    const r = rig()
    r.press()
    await r.run(3_000)
    r.command({ id: 'same', type: 'resolved', alert: 'SL-T-5:1' })
    r.command({ id: 'same', type: 'resolved', alert: 'SL-T-5:1' })
    await r.run(2_000)
    expect(r.stageNames(1).filter((s: Stage) => s === 'resolved')).toHaveLength(1)
  })

  it('platform time corrects event times and goes to the terminals', async () => {
    const r = rig()
    await r.run(2_000)
    const platformNow = 1_795_000_000_000
    r.command({ id: 't', type: 'time', now: platformNow })
    r.press()
    await r.run(3_000, () => r.uplink('/alert').length > 0)
    const [alert] = r.uplink('/alert')
    expect(alert!.time.estimated).toBe(false)
    expect(alert!.time.at).toBeGreaterThanOrEqual(platformNow)
    expect(alert!.time.at).toBeLessThan(platformNow + 5_000)
    expect(r.tLog.some((e) => e.kind === 'message' && e.message.type === 'TIME')).toBe(true)
  })

  it('broadcasts long texts to the terminals in parts', async () => {
    const r = rig()
    await r.run(2_000)
    r.command({ id: 'b', type: 'broadcast', broadcast: 77, text: '白灾预警：今夜暴雪，请把牲畜赶回棚圈。'.repeat(5), urgency: 'urgent' })
    await r.run(5_000)
    const displays = r.tLog.flatMap((e) => (e.kind === 'message' && e.message.type === 'DISPLAY' ? [e.message] : []))
    expect(displays.length).toBe(2)
    expect(displays.map((d) => [d.part, d.parts])).toEqual([[1, 2], [2, 2]])
    expect(displays.map((d) => d.text).join('')).toBe('白灾预警：今夜暴雪，请把牲畜赶回棚圈。'.repeat(5))
  })

  it('birth and death carry the session counter', () => {
    const r = rig()
    const w1 = decodePayload(r.gateway.will().payload)
    const b1 = decodePayload(r.gateway.birth().payload)
    const rebirth = decodePayload(r.gateway.birth().payload)
    const w2 = decodePayload(r.gateway.will().payload)
    const b2 = decodePayload(r.gateway.birth().payload)
    expect(w1).toMatchObject({ type: 'death', online: false, session: 1 })
    expect(b1).toMatchObject({ type: 'birth', online: true, session: 1, gateway: 'gw-1', area: 'sumu-7' })
    expect(rebirth).toMatchObject({ session: 1 })
    expect(w2).toMatchObject({ session: 2 })
    expect(b2).toMatchObject({ session: 2 })
  })
})

