/**
 * The operator console against real brokers on 127.0.0.1 (aedes in process, and mosquitto
 * once), with fake gateways that publish what a gateway publishes (protocol/mqtt.ts
 * encodePayload / encodeBatch, CBOR and JSON) and read back, with parseCommand, every
 * command the console sends them. Rule ids: [CONSOLE-n] of console.ts, [MQTT-x.y] of
 * MQTT.md.
 *
 * Time: automatic dispatch and resolve run on injected timers that the test fires; no
 * test sleeps for a fixed time: each waits for a condition with a deadline.
 */

import { PassThrough } from 'node:stream'
import mqtt from 'mqtt'
import { afterEach, describe, expect, it } from 'vitest'
import { consoleCommand, tokenize } from '../cli/console-command.js'
import {
  COMMAND_ERROR_CODES,
  DEFAULT_TOPIC_PREFIX,
  encodeBatch,
  encodePayload,
  gatewayTopics,
  parseCommand,
  type Command,
  type Encoding,
  type TerminalStatus,
  type UplinkEvent,
} from '../protocol/mqtt.js'
import { freePort, startAedes, startMosquitto } from '../tests/helpers/broker.js'
import { ManualTimers } from '../tests/helpers/manual-timers.js'
import { ConsoleError, describeEvent, renderView, startConsole, type ConsoleEvent, type ConsoleOptions, type ConsoleTimers } from './console.js'
import { waitFor } from '../device-sim/wait.js'

// ---------------------------------------------------------------------------------------
// Harness

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

let seq = 0
const uniq = (p: string) => `${p}${process.pid}-${++seq}`

async function aedes() {
  const broker = await startAedes()
  cleanups.push(() => broker.close())
  return broker
}

/** A gateway as the platform sees it: publishes uplink, and reads its commands with parseCommand. */
async function fakeGateway(url: string, id = uniq('gw'), area: string | null = null) {
  const topics = gatewayTopics(DEFAULT_TOPIC_PREFIX, id, area)
  const client = await mqtt.connectAsync(url, { clientId: `fake-${id}`, clean: true, reconnectPeriod: 0, protocolVersion: 4 })
  cleanups.push(() => client.endAsync(true))
  const commands: (Command & { topic: string })[] = []
  const rejected: string[] = []
  client.on('message', (topic, payload) => {
    const p = parseCommand(payload)
    if (p.ok) commands.push({ ...p.command, topic })
    else rejected.push(`${p.code} ${p.message}`)
  })
  await client.subscribeAsync([topics.command, topics.allCommand, ...(topics.areaCommand ? [topics.areaCommand] : [])], { qos: 1 })
  const gw = {
    id,
    topics,
    client,
    commands,
    rejected,
    publish: (what: 'alert' | 'event' | 'batch' | 'state' | 'status' | 'reply', payload: Buffer, retain = false) =>
      client.publishAsync(topics[what], payload, { qos: 1, retain }),
    of: <T extends Command['type']>(type: T) => commands.filter((c): c is Extract<Command, { type: T }> & { topic: string } => c.type === type),
  }
  return gw
}

async function consoleFor(url: string, opts: Partial<ConsoleOptions> = {}) {
  const events: ConsoleEvent[] = []
  const c = await startConsole({ broker: url, id: uniq('c'), onEvent: (e) => events.push(e), ...opts })
  cleanups.push(() => c.close())
  const of = <T extends ConsoleEvent['type']>(type: T) => events.filter((e): e is Extract<ConsoleEvent, { type: T }> => e.type === type)
  return { c, events, of }
}

const T0 = 1_767_252_600_000

function alarm(gateway: string, n: number, over: Partial<UplinkEvent> = {}): UplinkEvent {
  return {
    v: 1,
    id: `T4-00123:${n}`,
    class: 'alarm',
    kind: 'emergency',
    code: 101,
    restore: false,
    gateway,
    terminal: 'T4-00123',
    address: 3,
    number: n,
    time: { at: T0, estimated: false },
    received: T0 + 40,
    attempt: 1,
    stage: 'stored',
    ...over,
  }
}

function trouble(gateway: string, n: number, kind: 'mains-lost' | 'tamper' = 'mains-lost'): UplinkEvent {
  return { ...alarm(gateway, n), class: 'trouble', kind, code: kind === 'tamper' ? 383 : 301, stage: undefined } as UplinkEvent
}

/** A call-back request of terminal T4-00123 (class request, on `event` or in a batch). */
function callback(gateway: string, n: number, over: Partial<UplinkEvent> = {}): UplinkEvent {
  return { ...alarm(gateway, n), class: 'request', kind: 'callback', code: null, stage: 'sent', ...over }
}

/** A message the center household relayed for a neighbour (class request, made by the gateway). */
function relay(gateway: string, n: number, text: string): UplinkEvent {
  return { ...alarm(gateway, n), id: `${gateway}:g${n}`, class: 'request', kind: 'relay', code: null, terminal: null, address: null, number: null, stage: 'sent', text }
}

function status(gateway: string, terminal: string, battery: number, mains: boolean): TerminalStatus {
  return {
    v: 1,
    id: `${gateway}:s:${terminal}:57:${T0}`,
    class: 'status',
    kind: 'status',
    gateway,
    terminal,
    address: 5,
    time: { at: T0 + 300_000, estimated: false },
    latest: { uptime: 86400, mains, battery },
    since: T0,
    heartbeats: 30,
    minutesWithoutMains: mains ? 0 : 5,
  }
}

const birth = (gateway: string, session: number, enc: Encoding = 'json') =>
  encodePayload({ v: 1, type: 'birth', gateway, online: true, session, time: { at: T0, estimated: true }, version: '0.1.0', encoding: enc, area: null }, enc)
const death = (gateway: string, session: number, enc: Encoding = 'json') => encodePayload({ v: 1, type: 'death', gateway, online: false, session }, enc)

// ---------------------------------------------------------------------------------------

describe('alerts', () => {
  it.each<Encoding>(['cbor', 'json'])('[CONSOLE-3] [CONSOLE-4] a receipt for every copy (%s), each with a new command id; one alarm, duplicates counted', async (enc) => {
    const broker = await aedes()
    const gw = await fakeGateway(broker.url)
    const { c, of } = await consoleFor(broker.url)
    const a = alarm(gw.id, 42)
    for (const attempt of [1, 2, 3]) await gw.publish('alert', encodePayload({ ...a, attempt, stage: attempt === 3 ? 'unconfirmed' : 'sent' }, enc))
    const receipts = await waitFor('three receipts', () => gw.of('receipt').length === 3 && gw.of('receipt'))

    expect(receipts.map((r) => r.ids)).toEqual([[a.id], [a.id], [a.id]])
    expect(new Set(receipts.map((r) => r.id)).size).toBe(3)
    expect(receipts.every((r) => r.topic === gw.topics.command)).toBe(true)
    expect(gw.rejected).toEqual([])
    const open = c.snapshot().openAlarms
    expect(open).toHaveLength(1)
    expect(open[0]).toMatchObject({ id: a.id, gateway: gw.id, terminal: 'T4-00123', kind: 'emergency', copies: 3, attempt: 3, gatewayStage: 'unconfirmed', stage: 'received' })
    expect(c.duplicates.get(a.id)).toBe(2)
    const alerts = of('alert')
    expect(alerts.map((e) => e.duplicate ?? false)).toEqual([false, true, true])
    expect(alerts.map((e) => e.copies)).toEqual([1, 2, 3])
    // Manual is the default: nothing but receipts until the operator acts.
    expect(gw.commands.map((x) => x.type)).toEqual(['receipt', 'receipt', 'receipt'])
    await waitFor('three command-sent events', () => of('command-sent').length === 3)
  })

  it('[CONSOLE-6] auto: acknowledged at once with `by`; dispatched and resolved the given seconds after the acknowledgement (injected timers)', async () => {
    const broker = await aedes()
    const gw = await fakeGateway(broker.url)
    const timers = new ManualTimers()
    const { c } = await consoleFor(broker.url, { ack: 'auto', dispatchAfterS: 90, resolveAfterS: 1800, operator: '110 centre: Officer Bao', timers })
    const a = alarm(gw.id, 7)
    await gw.publish('alert', encodePayload(a, 'cbor'))

    const [ack] = await waitFor('the acknowledgement', () => gw.of('acknowledged').length === 1 && gw.of('acknowledged'))
    expect(ack).toMatchObject({ type: 'acknowledged', alert: a.id, by: '110 centre: Officer Bao' })
    expect(gw.commands.map((x) => x.type)).toEqual(['receipt', 'acknowledged'])
    expect(timers.delays()).toEqual([90_000, 1_800_000])
    expect(c.case(a.id)?.stage).toBe('acknowledged')

    timers.fire(90_000)
    const [dispatched] = await waitFor('the dispatch', () => gw.of('dispatched').length === 1 && gw.of('dispatched'))
    expect(dispatched).toMatchObject({ alert: a.id, unit: 'patrol car 110-3', eta: 40 })
    expect(gw.of('resolved')).toEqual([])

    timers.fire(1_800_000)
    const [resolved] = await waitFor('the resolve', () => gw.of('resolved').length === 1 && gw.of('resolved'))
    expect(resolved).toMatchObject({ alert: a.id, text: 'Case closed by the 110 centre' })
    expect(c.case(a.id)?.history.map((h) => h.stage)).toEqual(['stored', 'received', 'acknowledged', 'dispatched', 'resolved'])
    expect(c.snapshot().openAlarms).toEqual([])

    // A late copy of a closed alarm: a receipt still, and no second answer.
    await gw.publish('alert', encodePayload({ ...a, attempt: 9 }, 'json'))
    await waitFor('the receipt of the late copy', () => gw.of('receipt').length === 2)
    expect(gw.commands.map((x) => x.type)).toEqual(['receipt', 'acknowledged', 'dispatched', 'resolved', 'receipt'])
    expect(timers.pending.size).toBe(0)
  })

  it('[CONSOLE-6] an operator dispatch before the timer: the timer sends nothing more, and the resolve still comes', async () => {
    const broker = await aedes()
    const gw = await fakeGateway(broker.url)
    const timers = new ManualTimers()
    const { c } = await consoleFor(broker.url, { ack: 'auto', dispatchAfterS: 30, resolveAfterS: 60, timers })
    const a = alarm(gw.id, 8)
    await gw.publish('alert', encodePayload(a, 'json'))
    await waitFor('the acknowledgement', () => gw.of('acknowledged').length === 1)
    await c.dispatch(a.id, 'Patrol car 3, Abag', 95)
    timers.fire(30_000)
    timers.fire(60_000)
    await waitFor('the resolve', () => gw.of('resolved').length === 1)
    expect(gw.of('dispatched').map((d) => [d.unit, d.eta])).toEqual([['Patrol car 3, Abag', 95]])
  })

  it.each<'manual' | 'none'>(['manual', 'none'])('%s: receipts only, until the operator acknowledges, dispatches and resolves through the API; stages only move forward', async (ack) => {
    const broker = await aedes()
    const gw = await fakeGateway(broker.url)
    const { c } = await consoleFor(broker.url, { ack })
    const a = alarm(gw.id, 42)
    await gw.publish('alert', encodePayload(a, 'cbor'))
    await waitFor('the receipt', () => gw.of('receipt').length === 1)
    expect(c.case(a.id)?.stage).toBe('received')

    const ackd = await c.acknowledge(a.id, 'Stay with the patient, keep warm')
    expect(ackd).toMatchObject({ type: 'acknowledged', alert: a.id, by: 'Operator on duty', text: 'Stay with the patient, keep warm' })
    await expect(c.acknowledge(a.id)).rejects.toMatchObject({ code: 'CONSOLE_STAGE_PASSED' })
    await expect(c.dispatch(a.id, 'x'.repeat(101))).rejects.toMatchObject({ code: 'CONSOLE_BAD_COMMAND', message: expect.stringContaining('/unit') })
    expect(c.case(a.id)?.stage).toBe('acknowledged')
    await c.dispatch(a.id, 'Patrol car 3, Abag', 95)
    await expect(c.acknowledge(a.id)).rejects.toBeInstanceOf(ConsoleError)
    await c.resolve(a.id, 'Taken to the banner hospital')
    await expect(c.resolve(a.id)).rejects.toMatchObject({ code: 'CONSOLE_STAGE_PASSED' })
    await expect(c.acknowledge('T4-00123:999')).rejects.toMatchObject({ code: 'CONSOLE_UNKNOWN_ALERT' })

    await waitFor('four commands at the gateway', () => gw.commands.length === 4)
    expect(gw.commands.map((x) => x.type)).toEqual(['receipt', 'acknowledged', 'dispatched', 'resolved'])
    expect(gw.of('dispatched')[0]).toMatchObject({ unit: 'Patrol car 3, Abag', eta: 95 })
    expect(gw.of('resolved')[0]).toMatchObject({ text: 'Taken to the banner hospital' })
    expect(gw.rejected).toEqual([])
  })

  it('cancels: the cancel says which alarm it takes back, that alarm says it was cancelled by the terminal, and both stay open for the operator', async () => {
    const broker = await aedes()
    const gw = await fakeGateway(broker.url)
    const { c, of } = await consoleFor(broker.url)
    const fire = alarm(gw.id, 42, { kind: 'fire', code: 110 })
    const cancel = alarm(gw.id, 43, { kind: 'cancel', code: 406, cancels: fire.id })
    await gw.publish('alert', encodePayload(fire, 'cbor'))
    await gw.publish('alert', encodePayload(cancel, 'cbor'))
    // A cancel that names an alarm the console has not seen yet (it restarted), then that alarm.
    await gw.publish('alert', encodePayload(alarm(gw.id, 8, { id: 'R1-00008:8', terminal: 'R1-00008', kind: 'cancel', code: 406, cancels: 'R1-00008:7' }), 'json'))
    await gw.publish('alert', encodePayload(alarm(gw.id, 7, { id: 'R1-00008:7', terminal: 'R1-00008' }), 'json'))
    await waitFor('four receipts', () => gw.of('receipt').length === 4)

    expect(c.case(fire.id)).toMatchObject({ cancelledBy: cancel.id, cancels: null, stage: 'received' })
    expect(c.case(cancel.id)).toMatchObject({ cancels: fire.id, cancelledBy: null })
    expect(c.case('R1-00008:7')).toMatchObject({ cancelledBy: 'R1-00008:8' })
    expect(c.snapshot().openAlarms.map((a) => a.id)).toEqual([fire.id, cancel.id, 'R1-00008:8', 'R1-00008:7'])
    expect(gw.commands.map((x) => x.type)).toEqual(['receipt', 'receipt', 'receipt', 'receipt'])
    const line = of('alert').find((e) => e.id === cancel.id)!
    expect(line.cancels).toBe(fire.id)
    expect(describeEvent(line)).toMatch(new RegExp(`ALERT +${cancel.id} +cancel \\(406\\) .*NEW ALARM.*; the terminal cancels ${fire.id} \\(close it\\)`))
    const view = renderView(c.snapshot(), { now: T0, width: 300 }).join('\n')
    expect(view).toMatch(new RegExp(`1\\. ${fire.id} +fire .*RECEIVED, CANCELLED by the terminal \\(${cancel.id}\\): close it`))
    expect(view).toMatch(new RegExp(`2\\. ${cancel.id} +cancel .*RECEIVED, cancels ${fire.id}`))
  })

  it('[CONSOLE-7] broadcast: to a gateway, an area, all; checked before it is sent', async () => {
    const broker = await aedes()
    const gw = await fakeGateway(broker.url, uniq('gw'), 'abag-03')
    const { c } = await consoleFor(broker.url)
    const before = Date.now()
    await c.broadcast(gw.id, 'Vet visit on Friday', 'info')
    await c.broadcast('area:abag-03', '白灾预警：明晚暴风雪，请把牲畜赶进棚圈。', 'urgent', 3600)
    await c.broadcast('all', 'Road to the sumu closed', 'warning', undefined, 9001)
    const got = await waitFor('three broadcasts', () => gw.of('broadcast').length === 3 && gw.of('broadcast'))
    expect(got.map((b) => [b.topic, b.urgency])).toEqual([
      [gw.topics.command, 'info'],
      [gw.topics.areaCommand, 'urgent'],
      [gw.topics.allCommand, 'warning'],
    ])
    expect(got[1]!.expires).toBeGreaterThanOrEqual(before + 3_600_000)
    expect(got[2]!.broadcast).toBe(9001)
    expect(new Set(got.map((b) => b.broadcast)).size).toBe(3)
    await expect(c.broadcast('area:a/b', 'x')).rejects.toMatchObject({ code: 'CONSOLE_BAD_COMMAND' })
    await expect(c.broadcast('all', '')).rejects.toMatchObject({ code: 'CONSOLE_BAD_COMMAND' })
    await expect(c.broadcast('all', '暴'.repeat(901))).rejects.toMatchObject({ code: 'CONSOLE_BAD_COMMAND', message: expect.stringContaining('15 display parts') })
    // Beyond what TIME and DISPLAY can carry (2106): refused before it is sent.
    await expect(c.broadcast('all', 'x', 'info', 100 * 366 * 86400)).rejects.toMatchObject({ code: 'CONSOLE_BAD_COMMAND', message: expect.stringContaining('/expires') })
    expect(gw.rejected).toEqual([])
  })
})

describe('requests are cases [CONSOLE-3] [CONSOLE-6]', () => {
  it('auto: a receipt for each (one per batch), acknowledged with a text for the herder, resolved after the resolve delay, never dispatched', async () => {
    const broker = await aedes()
    const gw = await fakeGateway(broker.url)
    const timers = new ManualTimers()
    const { c, of } = await consoleFor(broker.url, { ack: 'auto', dispatchAfterS: 90, resolveAfterS: 1800, timers })
    const alone = callback(gw.id, 41)
    await gw.publish('event', encodePayload(alone, 'cbor'))
    await waitFor('the receipt of the request alone', () => gw.of('receipt').length === 1)
    const second = callback(gw.id, 44)
    const neighbour = relay(gw.id, 12, '巴图家：两只羊在井边走失，明天需要兽医。')
    const batch = { v: 1 as const, id: `${gw.id}:b9`, gateway: gw.id, items: [second, neighbour, alone, trouble(gw.id, 45)] }
    await gw.publish('batch', await encodeBatch(batch, 'cbor'))
    await waitFor('three acknowledgements and two receipts', () => gw.of('acknowledged').length === 3 && gw.of('receipt').length === 2)

    // One receipt per message: the batch's requests together, the copy of the first again.
    expect(gw.of('receipt').map((r) => r.ids)).toEqual([[alone.id], [second.id, neighbour.id, alone.id]])
    expect(gw.commands.map((x) => x.type)).toEqual(['receipt', 'acknowledged', 'receipt', 'acknowledged', 'acknowledged'])
    expect(gw.of('acknowledged').map((a) => [a.alert, a.by, a.text])).toEqual([
      [alone.id, 'Operator on duty', '110 centre will call you back'],
      [second.id, 'Operator on duty', '110 centre will call you back'],
      [neighbour.id, 'Operator on duty', '110 centre has the message'],
    ])
    // Only the resolve is timed: no patrol car for a call-back.
    expect(timers.delays()).toEqual([1_800_000, 1_800_000, 1_800_000])
    const s = c.snapshot()
    expect(s.openAlarms).toEqual([])
    expect(s.openRequests.map((r) => [r.id, r.class, r.stage, r.copies])).toEqual([
      [alone.id, 'request', 'acknowledged', 2],
      [second.id, 'request', 'acknowledged', 1],
      [neighbour.id, 'request', 'acknowledged', 1],
    ])
    expect(s.counters).toMatchObject({ alerts: 0, requests: 3, requestCopies: 4, duplicates: 1, items: 1 })
    const lines = of('event').filter((e) => e.class === 'request')
    expect(lines.map((e) => [e.id, e.stage, e.copies, e.duplicate ?? false, e.batch])).toEqual([
      [alone.id, 'stored', 1, false, null],
      [second.id, 'stored', 1, false, batch.id],
      [neighbour.id, 'stored', 1, false, batch.id],
      [alone.id, 'acknowledged', 2, true, batch.id],
    ])
    expect(describeEvent(lines[0]!)).toMatch(new RegExp(`REQUEST +${alone.id} +callback from T4-00123 via ${gw.id}: NEW REQUEST`))
    expect(describeEvent(lines[3]!)).toMatch(/copy 2 \(duplicate\) in batch/)

    timers.fire(1_800_000)
    const [resolved] = await waitFor('the resolve', () => gw.of('resolved').length === 1 && gw.of('resolved'))
    expect(resolved).toMatchObject({ alert: alone.id, text: 'Case closed by the 110 centre' })
    expect(c.case(alone.id)?.history.map((h) => h.stage)).toEqual(['stored', 'received', 'acknowledged', 'resolved'])
    expect(c.snapshot().openRequests.map((r) => r.id)).toEqual([second.id, neighbour.id])
    expect(gw.of('dispatched')).toEqual([])
    expect(gw.rejected).toEqual([])
  })

  it('manual: the same stages as an alarm through the API, a dispatch too if the operator wants one; stages only move forward', async () => {
    const broker = await aedes()
    const gw = await fakeGateway(broker.url)
    const timers = new ManualTimers()
    const { c } = await consoleFor(broker.url, { dispatchAfterS: 30, resolveAfterS: 60, timers })
    const r = callback(gw.id, 41)
    await gw.publish('event', encodePayload(r, 'json'))
    await waitFor('the receipt', () => gw.of('receipt').length === 1)
    expect(c.case(r.id)).toMatchObject({ class: 'request', kind: 'callback', stage: 'received' })
    expect(gw.commands.map((x) => x.type)).toEqual(['receipt'])

    expect(await c.acknowledge(r.id)).toMatchObject({ alert: r.id, text: '110 centre will call you back' })
    expect(timers.delays()).toEqual([60_000])
    await expect(c.acknowledge(r.id)).rejects.toMatchObject({ code: 'CONSOLE_STAGE_PASSED', message: `request ${r.id} is already acknowledged` })
    await c.dispatch(r.id, 'Township vet', 120)
    await c.resolve(r.id, 'Called back at 14:05')
    await expect(c.dispatch(r.id)).rejects.toMatchObject({ code: 'CONSOLE_STAGE_PASSED' })
    expect(timers.pending.size).toBe(0)
    await waitFor('the answers', () => gw.commands.length === 4)
    expect(gw.commands.map((x) => x.type)).toEqual(['receipt', 'acknowledged', 'dispatched', 'resolved'])
    expect(gw.of('dispatched')[0]).toMatchObject({ alert: r.id, unit: 'Township vet', eta: 120 })
    expect(c.snapshot().openRequests).toEqual([])
    // An operator's own text replaces the default.
    const other = callback(gw.id, 42)
    await gw.publish('event', encodePayload(other, 'json'))
    await waitFor('its receipt', () => gw.of('receipt').length === 2)
    expect(await c.acknowledge(other.id, 'Officer Bao calls you within the hour')).toMatchObject({ text: 'Officer Bao calls you within the hour' })
  })

  it('the view lists requests apart from the alarms, numbered after them, with their text; never red', async () => {
    const broker = await aedes()
    const gw = await fakeGateway(broker.url)
    const now = T0 + 125_000
    const { c } = await consoleFor(broker.url, { now: () => now })
    await gw.publish('alert', encodePayload(alarm(gw.id, 42), 'cbor'))
    await gw.publish('event', encodePayload(relay(gw.id, 12, 'Batu: two sheep lost at the well'), 'cbor'))
    await gw.publish('event', encodePayload(callback(gw.id, 41), 'cbor'))
    await waitFor('three receipts', () => gw.of('receipt').length === 3)
    const text = renderView(c.snapshot(), { now, width: 200 }).join('\n')
    expect(text).toMatch(/Open alarms: 1\n {2}1\. T4-00123:42 +emergency/)
    expect(text).toMatch(new RegExp(`Open requests: 2\\n {2}2\\. ${gw.id}:g12 +relay +- +via ${gw.id} +age 2 min 05 s {2}RECEIVED: Batu: two sheep lost at the well\\n {2}3\\. T4-00123:41 +callback`))
    const ansi = renderView(c.snapshot(), { now, ansi: true }).filter((l) => l.includes('callback') || l.includes('relay'))
    expect(ansi.join('\n')).not.toContain('\x1b[31m')
  })

  it('keys: a takes the alarms first, then the requests; d goes to a request only when it is selected', async () => {
    const broker = await aedes()
    const gw = await fakeGateway(broker.url)
    const t = io()
    const stdin = new PassThrough()
    const run = consoleCommand(['--broker', broker.url, '--id', uniq('keys')], { ...t.io, stdin })
    await waitFor('connected', () => t.out.join('').includes('BROKER   connected'))
    const r = callback(gw.id, 41)
    await gw.publish('event', encodePayload(r, 'cbor'))
    await gw.publish('alert', encodePayload(alarm(gw.id, 42), 'cbor'))
    await waitFor('the receipts', () => gw.of('receipt').length === 2)

    stdin.write('a\n')
    await waitFor('the alarm acknowledged first', () => gw.of('acknowledged')[0]?.alert === 'T4-00123:42')
    stdin.write('a\n')
    const [, ack] = await waitFor('then the request', () => gw.of('acknowledged').length === 2 && gw.of('acknowledged'))
    expect(ack).toMatchObject({ alert: r.id, text: '110 centre will call you back' })
    stdin.write('d\n\n\n') // nothing selected: the alarm
    await waitFor('the dispatch to the alarm', () => gw.of('dispatched')[0]?.alert === 'T4-00123:42')
    stdin.write('d\n')
    await waitFor('no second alarm to dispatch', () => t.out.join('').includes('no open alarm waiting for a dispatch'))
    stdin.write('2\nd\nHerder Batu\n0\n') // the request, selected
    await waitFor('the dispatch to the request', () => gw.of('dispatched')[1]?.alert === r.id)
    stdin.write('r\nCalled back\n') // still selected
    const [resolved] = await waitFor('the resolve', () => gw.of('resolved').length === 1 && gw.of('resolved'))
    expect(resolved).toMatchObject({ alert: r.id, text: 'Called back' })
    stdin.write('q\n')
    expect(await run).toBe(0)
    expect(t.out.join('')).toMatch(/console stopped: 1 alarm \(1 still open\), 1 request \(0 still open\)/)
    expect(gw.rejected).toEqual([])
  })
})

describe('broadcast reads', () => {
  /** A broadcast-read as the gateway makes it: one id per broadcast, revision and terminal. */
  const read = (gateway: string, broadcast: number, revision: number, terminal: string): UplinkEvent => ({
    ...alarm(gateway, 1),
    id: `${gateway}/read/${broadcast}.${revision}/${terminal}`,
    class: 'status',
    kind: 'broadcast-read',
    code: null,
    terminal,
    number: null,
    stage: undefined,
    text: `broadcast ${broadcast}`,
    broadcast,
    revision,
  })

  it('for each broadcast: how many terminals read it and through which gateways, deduplicated by id; reads of a broadcast sent elsewhere too', async () => {
    const broker = await aedes()
    const a = await fakeGateway(broker.url, uniq('gwa'), 'abag-03')
    const b = await fakeGateway(broker.url, uniq('gwb'), 'abag-03')
    const { c } = await consoleFor(broker.url)
    await c.broadcast('area:abag-03', 'Blizzard tomorrow night: bring the herds in before dark.', 'urgent', 3600, 9001)
    await c.broadcast(a.id, 'Vet visit on Friday', 'info', undefined, 9002)
    expect(c.snapshot().broadcasts.map((x) => [x.broadcast, x.terminals])).toEqual([
      [9002, 0],
      [9001, 0],
    ])
    await a.publish('event', encodePayload(read(a.id, 9001, 0, 'T4-00123'), 'cbor'))
    // The same read again, alone and in a batch (a gateway restart), and a second terminal.
    const batch = { v: 1 as const, id: `${a.id}:b1`, gateway: a.id, items: [read(a.id, 9001, 0, 'T4-00123'), read(a.id, 9001, 0, 'R1-00008')] }
    await a.publish('batch', await encodeBatch(batch, 'cbor'))
    await a.publish('event', encodePayload(read(a.id, 9001, 0, 'T4-00123'), 'json'))
    await b.publish('event', encodePayload(read(b.id, 9001, 0, 'T7-00001'), 'json'))
    // Read by a terminal of a broadcast this console did not send (the CLI's, say).
    await b.publish('event', encodePayload(read(b.id, 4242, 0, 'T7-00001'), 'json'))
    await waitFor('the reads', () => c.snapshot().broadcasts.find((x) => x.broadcast === 4242)?.terminals === 1 && c.snapshot().broadcasts.find((x) => x.broadcast === 9001)?.terminals === 3)

    const replaced = await c.broadcast('area:abag-03', 'Blizzard: roads closed too.', 'urgent', 3600, 9001)
    expect(replaced).toMatchObject({ broadcast: 9001 })
    await a.publish('event', encodePayload(read(a.id, 9001, 1, 'T4-00123'), 'cbor'))
    await waitFor('the read of the new text', () => c.snapshot().broadcasts.find((x) => x.broadcast === 9001)?.latestRevision === 1)

    const s = c.snapshot()
    expect(s.broadcasts.map((x) => x.broadcast)).toEqual([9001, 4242, 9002])
    const storm = s.broadcasts[0]!
    expect(storm).toMatchObject({ terminals: 3, latestRevision: 1, terminalsOfLatest: 1, sent: { to: 'area:abag-03', text: 'Blizzard: roads closed too.', urgency: 'urgent', times: 2 } })
    expect(storm.gateways).toEqual([
      { gateway: a.id, terminals: 2 },
      { gateway: b.id, terminals: 1 },
    ])
    expect(s.broadcasts[1]).toMatchObject({ broadcast: 4242, sent: null, terminals: 1, gateways: [{ gateway: b.id, terminals: 1 }] })
    expect(s.broadcasts[2]).toMatchObject({ broadcast: 9002, terminals: 0 })
    expect(s.counters.duplicates).toBe(2)

    const view = renderView(s, { now: Date.now(), width: 300 }).join('\n')
    expect(view).toContain('Broadcasts: 3')
    expect(view).toMatch(new RegExp(`#9001 urgent to area:abag-03, sent \\d\\d:\\d\\d:\\d\\d \\(text replaced 1x\\): "Blizzard: roads closed too\\.": read on 3 terminals \\(${a.id} 2, ${b.id} 1\\), 1 of them the latest text \\(revision 1\\)`))
    expect(view).toMatch(new RegExp(`#4242 not sent by this console: read on 1 terminal \\(${b.id} 1\\)\\n`))
    expect(view).toMatch(/#9002 info to .*"Vet visit on Friday": not read yet/)
  })
})

describe('events, batches and statuses', () => {
  it.each<Encoding>(['cbor', 'json'])('[MQTT-4.2] batch items (%s) decoded one by one, deduplicated against the same item alone on `event`', async (enc) => {
    const broker = await aedes()
    const gw = await fakeGateway(broker.url)
    const { c, of } = await consoleFor(broker.url)
    const mains = trouble(gw.id, 11)
    await gw.publish('event', encodePayload(mains, enc))
    const relay: UplinkEvent = { ...alarm(gw.id, 1), id: `${gw.id}:g12`, class: 'request', kind: 'relay', code: null, terminal: null, address: null, number: null, stage: undefined, text: 'Neighbour Batu needs a vet' } as UplinkEvent
    const batch = { v: 1 as const, id: `${gw.id}:b311`, gateway: gw.id, items: [mains, status(gw.id, 'T4-00123', 71, false), status(gw.id, 'R1-00008', 100, true), relay, trouble(gw.id, 12, 'tamper')] }
    await gw.publish('batch', await encodeBatch(batch, enc))
    await waitFor('five items from the batch', () => of('event').length + of('status').length === 6)

    expect(c.duplicates.get(mains.id)).toBe(1)
    const events = of('event')
    expect(events.map((e) => [e.kind, e.batch, e.duplicate ?? false])).toEqual([
      ['mains-lost', null, false],
      ['mains-lost', batch.id, true],
      ['relay', batch.id, false],
      ['tamper', batch.id, false],
    ])
    expect(events[2]?.text).toBe('Neighbour Batu needs a vet')
    const s = c.snapshot()
    expect(s.terminals.map((t) => [t.terminal, t.battery, t.mains])).toEqual([
      ['R1-00008', 100, true],
      ['T4-00123', 71, false],
    ])
    expect(s.trouble.map((t) => t.kind)).toEqual(['tamper', 'mains-lost'])
    expect(s.openAlarms).toEqual([])
    // The relay is a request: a case of its own, with a receipt (below); the rest are items.
    expect(s.openRequests.map((r) => [r.id, r.kind, r.stage])).toEqual([[relay.id, 'relay', 'received']])
    expect(s.counters).toMatchObject({ items: 4, requests: 1, duplicates: 1, errors: 0 })
    const [receipt] = await waitFor('the receipt of the relay', () => gw.commands.length === 1 && gw.of('receipt'))
    expect(receipt!.ids).toEqual([relay.id])
  })

  it('terminal-reset: shown plainly in the log and the trouble list; the new ids are opaque, another alarm under the same terminal', async () => {
    const broker = await aedes()
    const gw = await fakeGateway(broker.url)
    const { c, of } = await consoleFor(broker.url)
    const reset = {
      ...trouble(gw.id, 1),
      id: `${gw.id}:g15`,
      kind: 'terminal-reset',
      code: 305,
      number: null,
      reset: { reason: 'boot-backwards', epoch: `${gw.id}.1`, boot: 1, lastEvent: 1, previousBoot: 7, previousNumber: 42 },
    } as UplinkEvent
    const before = alarm(gw.id, 1)
    const after = alarm(gw.id, 1, { id: `T4-00123@${gw.id}.1:1` })
    await gw.publish('alert', encodePayload(before, 'cbor'))
    await gw.publish('event', encodePayload(reset, 'cbor'))
    await gw.publish('alert', encodePayload(after, 'cbor'))
    await waitFor('two receipts', () => gw.of('receipt').length === 2)

    // The same number twice, two alarms: ids are compared whole, never parsed.
    expect(gw.of('receipt').map((r) => r.ids)).toEqual([[before.id], [after.id]])
    expect(c.snapshot().openAlarms.map((a) => [a.id, a.terminal, a.number])).toEqual([
      [before.id, 'T4-00123', 1],
      [after.id, 'T4-00123', 1],
    ])
    expect(c.duplicates.size).toBe(0)
    const plain = `terminal T4-00123 restarted its event numbers (its boot counter went back from 7 to 1): memory wiped or a new unit; new ids T4-00123@${gw.id}.1:n`
    const line = of('event').find((e) => e.kind === 'terminal-reset')!
    expect(line.reset).toEqual(reset.reset)
    expect(describeEvent(line)).toMatch(new RegExp(`EVENT +${gw.id}:g15 +trouble terminal-reset \\(305\\) from T4-00123 via ${gw.id}(, .* after it happened)?: terminal T4-00123 `))
    expect(describeEvent(line).endsWith(plain)).toBe(true)
    expect(c.snapshot().trouble[0]).toMatchObject({ kind: 'terminal-reset', terminal: 'T4-00123', reset: reset.reset })
    const view = renderView(c.snapshot(), { now: T0, width: 300 })
    expect(view.find((l) => l.includes('terminal-reset (305)'))?.endsWith(plain)).toBe(true)
    expect(view.join('\n')).toMatch(new RegExp(`2\\. T4-00123@${gw.id}\\.1:1 +emergency +T4-00123`))
  })

  it('[CONSOLE-2] [MQTT-4.9] malformed payloads are reported with a code and dropped; the console goes on', async () => {
    const broker = await aedes()
    const gw = await fakeGateway(broker.url)
    const { c, of } = await consoleFor(broker.url)
    const good = alarm(gw.id, 5)
    const { id: _id, ...noId } = good
    const okBatch = await encodeBatch({ v: 1, id: 'b1', gateway: gw.id, items: [trouble(gw.id, 20), { v: 1, id: 'x', kind: 'status' } as never] }, 'cbor')
    const bad: ['alert' | 'event' | 'batch' | 'state' | 'reply', Buffer, string][] = [
      ['alert', Buffer.from('hello'), 'CONSOLE_UNDECODABLE'],
      ['alert', Buffer.from('a1617601 00'.replace(' ', ''), 'hex'), 'CONSOLE_UNDECODABLE'],
      ['alert', encodePayload(noId, 'json'), 'CONSOLE_BAD_SCHEMA'],
      ['alert', Buffer.from('[1,2]'), 'CONSOLE_BAD_SCHEMA'],
      ['event', encodePayload({ ...trouble(gw.id, 1), time: 'yesterday' }, 'cbor'), 'CONSOLE_BAD_SCHEMA'],
      ['batch', Buffer.from('not zstd at all'), 'CONSOLE_UNDECODABLE'],
      ['batch', okBatch, 'CONSOLE_BAD_SCHEMA'],
      ['state', encodePayload({ v: 1, type: 'zombie', gateway: gw.id, online: true, session: 1 }, 'json'), 'CONSOLE_BAD_SCHEMA'],
      ['reply', encodePayload({ v: 1, type: 'error', gateway: gw.id }, 'json'), 'CONSOLE_BAD_SCHEMA'],
    ]
    for (const [what, payload] of bad) await gw.publish(what, payload)
    // Not errors: an empty retained state (a forgotten gateway), a reply type of a later version.
    await gw.publish('state', Buffer.alloc(0), true)
    await gw.publish('reply', encodePayload({ v: 1, type: 'result', gateway: gw.id, command: 'c-1' }, 'json'))
    // An alarm of a kind this version does not know: kept, shown, receipted [MQTT-6.1].
    await gw.publish('alert', encodePayload({ ...alarm(gw.id, 6), kind: 'avalanche', code: 199 }, 'cbor'))
    await gw.publish('alert', encodePayload(good, 'cbor'))

    await waitFor('two receipts', () => gw.of('receipt').length === 2)
    expect(gw.of('receipt').map((r) => r.ids[0])).toEqual(['T4-00123:6', good.id])
    const errors = of('error')
    expect(errors.map((e) => e.code)).toEqual(bad.map(([, , code]) => code))
    expect(errors[2]?.message).toMatch(/alert: .*id/)
    expect(errors[4]?.message).toMatch(/\/time/)
    expect(errors[6]?.message).toMatch(/batch b1 item 1/)
    expect(errors.every((e) => e.topic?.startsWith(`${DEFAULT_TOPIC_PREFIX}/gw/${gw.id}/`) && e.gateway === gw.id)).toBe(true)
    // The good item of the half-bad batch was kept.
    expect(c.snapshot().trouble.map((t) => t.id)).toEqual([trouble(gw.id, 20).id])
    expect(of('alert').map((e) => [e.kind, e.unknownKind ?? false])).toEqual([
      ['avalanche', true],
      ['emergency', false],
    ])
    expect(of('reply')).toEqual([])
    expect(c.snapshot().counters.errors).toBe(bad.length)
    expect(c.connected).toBe(true)
  })

  it('[MQTT-3.8] every code of COMMAND_ERROR_CODES, the new CMD_BAD_VALUE, CMD_STALE and CMD_RETAINED included, and a code of a later version, is shown as a reply', async () => {
    const broker = await aedes()
    const gw = await fakeGateway(broker.url)
    const { of } = await consoleFor(broker.url)
    const codes = [...COMMAND_ERROR_CODES, 'CMD_FROM_THE_FUTURE']
    expect(codes).toEqual(expect.arrayContaining(['CMD_BAD_VALUE', 'CMD_STALE', 'CMD_RETAINED']))
    for (const [i, code] of codes.entries()) {
      await gw.publish('reply', encodePayload({ v: 1, type: 'error', gateway: gw.id, command: `c-${i}`, topic: gw.topics.command, code, message: `reason ${i}`, time: { at: T0, estimated: false } }, 'json'))
    }
    const replies = await waitFor('every reply', () => of('reply').length === codes.length && of('reply'))
    expect(replies.map((r) => r.code)).toEqual(codes)
    replies.forEach((r, i) => expect(describeEvent(r)).toMatch(new RegExp(`REPLY +${gw.id} rejected command c-${i}: ${codes[i]} reason ${i}$`)))
    expect(of('error')).toEqual([])
  })

  it('[MQTT-3.8] a reply is shown with its code and the rejected command', async () => {
    const broker = await aedes()
    const gw = await fakeGateway(broker.url)
    const { of } = await consoleFor(broker.url)
    const reply = { v: 1, type: 'error', gateway: gw.id, command: 'c-9', topic: gw.topics.command, code: 'CMD_UNKNOWN_ALERT', message: 'no alert T4-1:1', time: { at: T0, estimated: false } }
    await gw.publish('reply', encodePayload(reply, 'cbor'))
    const [line] = await waitFor('the reply', () => of('reply').length === 1 && of('reply'))
    expect(line).toMatchObject({ type: 'reply', id: 'c-9', gateway: gw.id, code: 'CMD_UNKNOWN_ALERT', kind: 'error', command: 'c-9', message: 'no alert T4-1:1' })
  })
})

describe('liveness [MQTT-2.3] [CONSOLE-5]', () => {
  it('birth means online, a death of that session offline, a death of an older session is stale; a time command naming its session after each birth', async () => {
    const broker = await aedes()
    const gw = await fakeGateway(broker.url)
    const early = await fakeGateway(broker.url)
    const gone = await fakeGateway(broker.url)
    // Retained before the console starts: it learns them at once.
    await early.publish('state', birth(early.id, 2, 'cbor'), true)
    await gone.publish('state', death(gone.id, 4), true)
    const { c, of } = await consoleFor(broker.url)
    const online = (id: string) => c.snapshot().gateways.find((g) => g.gateway === id)?.online
    await waitFor('the retained states', () => online(early.id) === true && online(gone.id) === false)
    const [earlyTime] = await waitFor('time to the gateway born before the console', () => early.of('time').length === 1 && early.of('time'))
    expect(earlyTime!.session).toBe(2)
    expect(gone.commands).toEqual([])

    await gw.publish('state', birth(gw.id, 5), true)
    await waitFor('online', () => online(gw.id) === true)
    const [time] = await waitFor('the time command', () => gw.of('time').length === 1 && gw.of('time'))
    expect(Math.abs(time!.now - Date.now())).toBeLessThan(5000)
    await gw.publish('state', death(gw.id, 5, 'cbor'), true)
    await waitFor('offline', () => online(gw.id) === false)
    await gw.publish('state', birth(gw.id, 7), true)
    await waitFor('online again', () => online(gw.id) === true)
    // The will of session 6 (a connection that never got its birth out) arrives late.
    await gw.publish('state', death(gw.id, 6), true)
    await waitFor('the stale death', () => of('state').some((e) => e.stale))
    expect(online(gw.id)).toBe(true)
    await gw.publish('state', death(gw.id, 7), true)
    await waitFor('offline again', () => online(gw.id) === false)

    expect(of('state').filter((e) => e.gateway === gw.id).map((e) => [e.kind, e.session, e.online, e.stale ?? false])).toEqual([
      ['birth', 5, true, false],
      ['death', 5, false, false],
      ['birth', 7, true, false],
      ['death', 6, true, true],
      ['death', 7, false, false],
    ])
    // Each time names the session of the birth it answers, so a later session can refuse it.
    expect(gw.of('time').map((t) => t.session)).toEqual([5, 7])
    expect(describeEvent(of('command-sent').find((e) => e.kind === 'time' && e.gateway === gw.id)!)).toMatch(/SENT +time \d{4}-.*Z for session 5 -> /)
    expect(c.snapshot().gateways.find((g) => g.gateway === gw.id)).toMatchObject({ online: false, session: 7 })
  })

  it('a gateway status fills the overview: its terminals, lost or not', async () => {
    const broker = await aedes()
    const gw = await fakeGateway(broker.url)
    const { c, of } = await consoleFor(broker.url)
    const st = {
      v: 1,
      type: 'status',
      gateway: gw.id,
      session: 3,
      time: { at: T0, estimated: false },
      terminals: [{ address: 3, terminal: 'T4-00123', session: 'open', lost: false }, { address: 5, terminal: 'R1-00008', lost: true }, 'junk'],
    }
    await gw.publish('status', encodePayload(st, 'cbor'), true)
    await waitFor('the status', () => of('status').length === 1)
    expect(c.snapshot().terminals.map((t) => [t.terminal, t.address, t.lost])).toEqual([
      ['R1-00008', 5, true],
      ['T4-00123', 3, false],
    ])
    expect(of('status')[0]).toMatchObject({ scope: 'gateway', kind: 'gateway-status', session: 3, gateway: gw.id })
  })
})

describe('persistent session [CONSOLE-1] [MQTT-4.8]', () => {
  const awayAndBack = async (url: string) => {
    const gw = await fakeGateway(url)
    const id = uniq('desk')
    const first = await consoleFor(url, { id })
    expect(first.c.clientId).toBe(`steppelink-console-${id}`)
    await first.c.close()
    // While the console is away:
    await gw.publish('alert', encodePayload(alarm(gw.id, 77), 'cbor'))
    const second = await consoleFor(url, { id, ack: 'auto' })
    await waitFor('the alarm kept by the broker', () => second.of('alert').length === 1)
    await waitFor('its receipt and acknowledgement', () => gw.of('receipt').length === 1 && gw.of('acknowledged').length === 1)
    expect(second.of('connection')[0]).toMatchObject({ kind: 'connected', sessionPresent: true })
  }

  it('an alarm published while the console is away arrives when it comes back (aedes)', async () => {
    await awayAndBack((await aedes()).url)
  })

  it('the same against mosquitto', async () => {
    const broker = await startMosquitto()
    cleanups.push(() => broker.close())
    await awayAndBack(broker.url)
  })
})

describe('text from the wire on the screen [CONSOLE-9]', () => {
  /** What a terminal obeys: C0 (ESC, BEL, CR, LF ...), DEL, C1 (CSI U+009B ...), bidi overrides and isolates. */
  const CONTROL = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/
  // Clear the screen, home the cursor, hide, blink, recolour, move up a line, set the
  // window title (OSC), an 8-bit CSI, a bell, reverse the rest of the line, a fake new line.
  const hostile = (printable: string) => `\x1b[2J\x1b[H\x1b[8m\x1b[5m\x1b[31m${printable}\x1b[0m\x1b[1A\x1b]0;pwned\x07\x9b2J\x07\u202eevil\u202c\u2066x\u2069\x7f\r\nFAKE LINE`

  async function hostileGateway(url: string) {
    const gw = await fakeGateway(url)
    // An alarm of a kind this version does not know, so that its kind is free text too.
    const a = alarm(gw.id, 1, { id: `T4-00123:1${hostile('')}`, terminal: `T4-00123${hostile('')}`, kind: `avalanche${hostile('')}` as never, text: hostile('Fire at the north well') })
    const relay = { ...trouble(gw.id, 2), id: `${gw.id}:g1`, class: 'request', kind: 'relay', code: null, terminal: null, text: hostile('Batu needs a vet') }
    const reply = { v: 1, type: 'error', gateway: gw.id, command: `c-1${hostile('')}`, topic: gw.topics.command, code: `CMD_STALE${hostile('')}`, message: hostile('time for session 3'), time: { at: T0, estimated: false } }
    return {
      gw,
      a,
      publishAll: async () => {
        await gw.publish('alert', encodePayload(a, 'cbor'))
        await gw.publish('event', encodePayload(relay, 'json'))
        await gw.publish('reply', encodePayload(reply, 'json'))
        // Not JSON: the parser's message quotes the payload.
        await gw.publish('alert', Buffer.from(hostile('not json')))
      },
    }
  }

  it('item 25: the view and the event log show the printable text, and no control character, escape sequence or bidi override from the wire', async () => {
    const broker = await aedes()
    const { gw, a, publishAll } = await hostileGateway(broker.url)
    const { c, events } = await consoleFor(broker.url)
    await publishAll()
    await waitFor('the receipts, the reply and the error', () => gw.of('receipt').length === 2 && events.some((e) => e.type === 'reply') && events.some((e) => e.type === 'error'))
    expect(gw.of('receipt')[0]!.ids).toEqual([a.id]) // the id itself is passed on untouched

    const log = events.map(describeEvent)
    const view = renderView(c.snapshot(), { now: Date.now(), width: 1000 })
    for (const line of [...log, ...view]) expect(line).not.toMatch(CONTROL)
    const logText = log.join('\n')
    expect(logText).toMatch(/ALERT +T4-00123:1.* avalanche.* from T4-00123.*Fire at the north well/)
    expect(logText).toContain('Batu needs a vet')
    expect(logText).toContain('time for session 3')
    expect(logText).toMatch(/ERROR +CONSOLE_UNDECODABLE/)
    // Made visible, not silently dropped: the operator sees that something was sent.
    expect(logText).toContain('\\u001b[2J\\u001b[H')
    expect(logText).toContain('\\u202eevil\\u202c')
    expect(logText).toContain('\\r\\nFAKE LINE')
    expect(view.join('\n')).toMatch(/T4-00123:1.*avalanche/)
  })

  it('the same through `steppelink console`: plain lines, and the live view on a terminal', async () => {
    const broker = await aedes()
    const { publishAll } = await hostileGateway(broker.url)
    const plain = io()
    const stdin = new PassThrough()
    const runPlain = consoleCommand(['--broker', broker.url, '--id', uniq('plain')], { ...plain.io, stdin })
    const live = io()
    const runLive = consoleCommand(['--broker', broker.url, '--id', uniq('live')], { ...live.io, isTTY: true, env: { NO_COLOR: '1' }, size: () => ({ columns: 400, rows: 60 }) })
    await waitFor('both connected', () => plain.out.join('').includes('BROKER   connected') && live.out.join('').includes('connected'))
    await publishAll()
    await waitFor('the plain lines', () => plain.out.join('').includes('CONSOLE_UNDECODABLE') && plain.out.join('').includes('REPLY'))
    await waitFor('the live view', () => live.out.join('').includes('avalanche'))
    // A note quotes the alarm's id.
    stdin.write('a\n')
    await waitFor('the note of the acknowledgement', () => plain.out.join('').includes('NOTE     acknowledged alarm T4-00123:1'))
    plain.abort.abort()
    live.abort.abort()
    expect(await runPlain).toBe(0)
    expect(await runLive).toBe(0)

    for (const line of plain.lines()) expect(line).not.toMatch(CONTROL)
    expect(plain.out.join('')).toContain('Fire at the north well')
    // The live view's own sequences (alternate screen, home, erase) are all it may contain.
    const own = /\x1b\[\?1049[hl]|\x1b\[H|\x1b\[2J|\x1b\[K|\x1b\[J/g
    for (const line of live.out.join('').replace(own, '').split('\n')) expect(line).not.toMatch(CONTROL)
  })
})

// ---------------------------------------------------------------------------------------

function io() {
  const out: string[] = []
  const err: string[] = []
  const abort = new AbortController()
  return {
    out,
    err,
    abort,
    lines: () => out.join('').split('\n').filter((l) => l !== ''),
    io: { stdout: (t: string) => void out.push(t), stderr: (t: string) => void err.push(t), stdin: null, isTTY: false, signal: abort.signal },
  }
}

describe('steppelink console', () => {
  it('--json: one line per event with type, id, gateway, terminal, code, kind, time, receivedAt, ageMs, duplicate', async () => {
    const broker = await aedes()
    const gw = await fakeGateway(broker.url)
    const t = io()
    const run = consoleCommand(['--broker', broker.url, '--json', '--ack', 'auto', '--id', uniq('json')], t.io)
    const parsed = () => t.lines().map((l) => JSON.parse(l) as Record<string, unknown>)
    await waitFor('connected', () => parsed().some((l) => l.type === 'connection' && l.kind === 'connected'))
    await gw.publish('state', birth(gw.id, 1), true)
    const a = alarm(gw.id, 42, { time: { at: Date.now() - 1500, estimated: false } })
    await gw.publish('alert', encodePayload(a, 'cbor'))
    await gw.publish('alert', encodePayload({ ...a, attempt: 2 }, 'json'))
    await gw.publish('event', encodePayload({ ...trouble(gw.id, 3), time: { at: T0, estimated: true } }, 'cbor'))
    await waitFor('the lines', () => parsed().filter((l) => l.type === 'command-sent').length === 4 && parsed().some((l) => l.type === 'event'))
    t.abort.abort()
    expect(await run).toBe(0)

    const lines = parsed()
    for (const l of lines) expect(Object.keys(l)).toEqual(expect.arrayContaining(['type', 'id', 'gateway', 'terminal', 'code', 'kind', 'time', 'receivedAt', 'ageMs']))
    const alerts = lines.filter((l) => l.type === 'alert')
    expect(alerts).toHaveLength(2)
    expect(alerts[0]).toMatchObject({ id: a.id, gateway: gw.id, terminal: 'T4-00123', code: 101, kind: 'emergency', time: a.time, attempt: 1 })
    expect(alerts[0]).not.toHaveProperty('duplicate')
    expect(alerts[1]).toMatchObject({ id: a.id, attempt: 2, duplicate: true })
    const age = alerts[0]!.ageMs as number
    expect(age).toBeGreaterThanOrEqual(1500)
    expect(alerts[0]!.receivedAt as number).toBe(a.time.at + age)
    expect(lines.find((l) => l.type === 'event')).toMatchObject({ kind: 'mains-lost', code: 301, ageMs: null, class: 'trouble' })
    expect(lines.find((l) => l.type === 'state')).toMatchObject({ kind: 'birth', gateway: gw.id, session: 1, online: true })
    const sent = lines.filter((l) => l.type === 'command-sent')
    expect(sent.map((l) => l.kind).sort()).toEqual(['acknowledged', 'receipt', 'receipt', 'time'])
    expect(sent.find((l) => l.kind === 'acknowledged')).toMatchObject({ gateway: gw.id, terminal: 'T4-00123', alert: a.id, command: { by: 'Operator on duty' } })
    expect(t.err.join('')).toMatch(/console stopped: 1 alarm \(1 still open\)/)
  })

  it('without a terminal: plain lines, no ANSI; keys from standard input acknowledge, dispatch, resolve, broadcast, quit', async () => {
    const broker = await aedes()
    const gw = await fakeGateway(broker.url)
    const t = io()
    const stdin = new PassThrough()
    const run = consoleCommand(['--broker', broker.url, '--id', uniq('keys'), '--unit', 'Patrol car 3, Abag'], { ...t.io, stdin })
    await waitFor('connected', () => t.out.join('').includes('BROKER   connected'))
    await gw.publish('alert', encodePayload(alarm(gw.id, 42), 'cbor'))
    await gw.publish('alert', encodePayload(alarm(gw.id, 43, { kind: 'fire', code: 110 }), 'cbor'))
    await waitFor('the receipts', () => gw.of('receipt').length === 2)

    stdin.write('a\n')
    await waitFor('the acknowledgement of the oldest', () => gw.of('acknowledged')[0]?.alert === 'T4-00123:42')
    stdin.write('2\nd\n\n25\n') // select the fire; dispatch: the default unit, eta 25
    const [d] = await waitFor('the dispatch', () => gw.of('dispatched').length === 1 && gw.of('dispatched'))
    expect(d).toMatchObject({ alert: 'T4-00123:43', unit: 'Patrol car 3, Abag', eta: 25 })
    stdin.write('r\n\x1b\n') // a question cancelled with Esc sends nothing
    await waitFor('the note', () => t.out.join('').includes('resolve cancelled'))
    stdin.write('r\nFire out, nobody hurt\n')
    const [r] = await waitFor('the resolve', () => gw.of('resolved').length === 1 && gw.of('resolved'))
    expect(r).toMatchObject({ alert: 'T4-00123:43', text: 'Fire out, nobody hurt' })
    stdin.write('b\n\nwarning\nBlizzard tomorrow night\n')
    const [b] = await waitFor('the broadcast', () => gw.of('broadcast').length === 1 && gw.of('broadcast'))
    expect(b).toMatchObject({ topic: gw.topics.allCommand, urgency: 'warning', text: 'Blizzard tomorrow night' })
    stdin.write('q\n')
    expect(await run).toBe(0)

    const text = t.out.join('')
    expect(text).not.toContain('\x1b')
    expect(text).toMatch(/ALERT +T4-00123:42 +emergency \(101\) from T4-00123 via .*NEW ALARM/)
    expect(text).toMatch(/SENT +acknowledged T4-00123:42 by "Operator on duty"/)
    expect(text).toMatch(/console stopped: 2 alarms \(1 still open\)/)
    expect(gw.rejected).toEqual([])
  })

  it('the live view: gateways, terminals, open alarms with age and stage, trouble; ANSI only when asked', async () => {
    const broker = await aedes()
    const gw = await fakeGateway(broker.url)
    let now = T0 + 125_000
    const { c } = await consoleFor(broker.url, { ack: 'auto', now: () => now })
    await gw.publish('state', birth(gw.id, 3), true)
    await gw.publish('event', encodePayload(trouble(gw.id, 2), 'cbor'))
    await gw.publish('alert', encodePayload(alarm(gw.id, 42), 'cbor'))
    await gw.publish('alert', encodePayload(alarm(gw.id, 43, { stage: 'unconfirmed' }), 'cbor'))
    await waitFor('two acknowledgements', () => gw.of('acknowledged').length === 2)
    now += 60_000
    const plain = renderView(c.snapshot(), { now, width: 200, selected: 'T4-00123:43' })
    const text = plain.join('\n')
    expect(text).not.toContain('\x1b')
    expect(text).toContain('Gateways: 1 online, 0 offline')
    expect(text).toMatch(new RegExp(`online +${gw.id} +session 3`))
    expect(text).toMatch(/Terminals: 1/)
    expect(text).toMatch(/Open alarms: 2/)
    expect(text).toMatch(/ {2}1\. T4-00123:42 +emergency .* age 3 min 05 s {2}ACKNOWLEDGED/)
    expect(text).toMatch(/> 2\. T4-00123:43/)
    expect(text).toMatch(/mains-lost \(301\)/)
    const ansi = renderView(c.snapshot(), { now, ansi: true, selected: 'T4-00123:43' }).join('\n')
    expect(ansi).toContain('\x1b[7m')
  })

  it('tokenize: characters, arrows, a lone Escape', () => {
    expect(tokenize('a\x1b[A\x1b[B\x1bq\x1b[2~')).toEqual([{ kind: 'char', ch: 'a' }, { kind: 'up' }, { kind: 'down' }, { kind: 'esc' }, { kind: 'char', ch: 'q' }])
  })

  it.each(
    (
      [
    [[], /--broker is required/],
    [['--broker', 'localhost:1883'], /--broker must be an mqtt:\/\/.* got 'localhost:1883'/],
    [['--broker', 'not a url'], /--broker must be a URL/],
    [['--broker', 'mqtt://h', '--ack', 'sometimes'], /--ack must be one of auto, manual, none, got 'sometimes'/],
    [['--broker', 'mqtt://h', '--dispatch-after', 'soon'], /--dispatch-after must be seconds from 0 to 2000000, got 'soon'/],
    [['--broker', 'mqtt://h', '--resolve-after=-5'], /--resolve-after must be seconds/],
    [['--broker', 'mqtt://h', '--eta', '1.5'], /--eta must be whole minutes/],
    [['--broker', 'mqtt://h', '--id', 'desk/1'], /--id must be 1-59 of/],
    [['--broker', 'mqtt://h', '--prefix', 'a/#'], /--prefix must be topic levels/],
    [['--broker', 'mqtt://h', '--unit', ''], /--unit must be 1-100 characters/],
    [['--broker', 'mqtt://h', '--colour'], /Unknown option '--colour'/],
    [['--broker', 'mqtt://h', 'extra'], /Unexpected argument 'extra'|positional/i],
    [['broadcast', '--broker', 'mqtt://h', 'text'], /--to is required/],
    [['broadcast', '--broker', 'mqtt://h', '--to', 'all'], /text of the broadcast is missing/],
    [['broadcast', '--broker', 'mqtt://h', '--to', 'all', 'Storm', 'tonight'], /one argument: put it in quotes/],
    [['broadcast', '--broker', 'mqtt://h', '--to', 'all', '--urgency', 'severe', 'x'], /--urgency must be one of info, warning, urgent, got 'severe'/],
    [['broadcast', '--broker', 'mqtt://h', '--to', 'all', '--expires-in', '0', 'x'], /--expires-in must be seconds above 0/],
    [['broadcast', '--broker', 'mqtt://h', '--to', 'all', '--broadcast-id', '1.5', 'x'], /--broadcast-id must be a whole number/],
    [['broadcast', '--broker', 'mqtt://h', '--to', 'area:a+b', 'x'], /area name 'a\+b'/],
    [['broadcast', '--broker', 'mqtt://h', '--to', 'all', '暴'.repeat(901)], /15 display parts/],
    [['--broker', 'mqtt://h', '--eta'], /argument missing/],
    [['broadcast', '--broker', 'mqtt://h', '--withdraw', '9001'], /--to is required/],
    [['broadcast', '--broker', 'mqtt://h', '--to', 'all', '--withdraw', '1.5'], /--withdraw must be a broadcast id, a whole number from 0 to 4294967295, got '1.5'/],
    [['broadcast', '--broker', 'mqtt://h', '--to', 'all', '--withdraw', '4294967296'], /--withdraw must be a broadcast id/],
    [['broadcast', '--broker', 'mqtt://h', '--to', 'all', '--withdraw', '9001', 'Storm'], /--withdraw takes no text/],
    [['broadcast', '--broker', 'mqtt://h', '--to', 'all', '--withdraw', '9001', '--urgency', 'urgent', '--expires-in', '60'], /--withdraw takes a broadcast back: it has no --urgency, --expires-in/],
    [['broadcast', '--broker', 'mqtt://h', '--to', 'area:a/b', '--withdraw', '9001'], /area name 'a\/b'/],
      ] as [string[], RegExp][]
    ).map(([args, message]) => [args.join(' ').slice(0, 60), args, message] as const),
  )('usage error: %s', async (_label, args, message) => {
    const t = io()
    expect(await consoleCommand(args, t.io)).toBe(2)
    const err = t.err.join('')
    expect(err).toMatch(message)
    expect(err).toMatch(/See 'steppelink console( broadcast)? --help'\.\n$/)
    expect(t.out).toEqual([])
  })

  it('--help documents every option, with its default, and the keys', async () => {
    const t = io()
    expect(await consoleCommand(['--help'], t.io)).toBe(0)
    const help = t.out.join('')
    for (const flag of ['--broker', '--prefix', '--id', '--ack', '--operator', '--dispatch-after', '--resolve-after', '--unit', '--eta', '--username', '--json', '--help']) {
      expect(help).toContain(flag)
    }
    expect(help).toMatch(/default steppelink\/v1/)
    expect(help).toMatch(/default manual/)
    for (const key of ['a ', 'd ', 'r ', 'b ', 'q ', '1-9']) expect(help).toMatch(new RegExp(`\\n  ${key}`))
    const b = io()
    expect(await consoleCommand(['broadcast', '--help'], b.io)).toBe(0)
    for (const flag of ['--broker', '--to', '--urgency', '--expires-in', '--broadcast-id', '--withdraw', '--prefix', '--id', '--timeout', '--json']) expect(b.out.join('')).toContain(flag)
    expect(b.out.join('')).toMatch(/--withdraw ID +take back the broadcast with this id \(0-4294967295, as it was\n +sent\).*\n.*\(default: none, send the text\)/)
    expect(help).toContain('--withdraw ID')
  })

  it('broadcast: publishes one valid broadcast command and exits 0 once the broker has it', async () => {
    const broker = await aedes()
    const gw = await fakeGateway(broker.url, uniq('gw'), 'abag-03')
    const t = io()
    const before = Date.now()
    const text = '白灾预警：明晚暴风雪，请把牲畜赶进棚圈。'
    const code = await consoleCommand(['broadcast', '--broker', broker.url, '--to', 'area:abag-03', '--urgency', 'urgent', '--expires-in', '3600', '--broadcast-id', '9001', text], t.io)
    expect(code).toBe(0)
    expect(t.out.join('')).toMatch(new RegExp(`broadcast 9001 \\(urgent\\) sent to ${DEFAULT_TOPIC_PREFIX}/area/abag-03/cmd`))
    const [b] = await waitFor('the broadcast at the gateway', () => gw.of('broadcast').length === 1 && gw.of('broadcast'))
    expect(b).toMatchObject({ v: 1, type: 'broadcast', broadcast: 9001, text, urgency: 'urgent', topic: gw.topics.areaCommand })
    expect(b!.expires! - before).toBeGreaterThanOrEqual(3_600_000)
    expect(b!.expires! - Date.now()).toBeLessThanOrEqual(3_600_000)

    const j = io()
    expect(await consoleCommand(['broadcast', '--broker', broker.url, '--to', gw.id, '--json', 'Vet on Friday'], j.io)).toBe(0)
    const line = JSON.parse(j.out.join('')) as { type: string; topic: string; command: Command }
    expect(line).toMatchObject({ type: 'command-sent', kind: 'broadcast', gateway: gw.id, topic: gw.topics.command, command: { type: 'broadcast', urgency: 'info', text: 'Vet on Friday' } })
    expect(Object.keys(line)).toEqual(expect.arrayContaining(['id', 'terminal', 'code', 'time', 'receivedAt', 'ageMs']))
    expect(parseCommand(encodePayload(line.command, 'cbor')).ok).toBe(true)
    await waitFor('the second broadcast', () => gw.of('broadcast').length === 2)
  })

  it('broadcast --withdraw: publishes one valid broadcast-withdraw and exits 0 once the broker has it', async () => {
    const broker = await aedes()
    const gw = await fakeGateway(broker.url, uniq('gw'), 'abag-03')
    const t = io()
    expect(await consoleCommand(['broadcast', '--broker', broker.url, '--to', 'area:abag-03', '--withdraw', '9001'], t.io)).toBe(0)
    expect(t.out.join('')).toMatch(new RegExp(`^broadcast 9001 withdrawn: sent to ${DEFAULT_TOPIC_PREFIX}/area/abag-03/cmd; the broker has it \\(command main-`))
    const [w] = await waitFor('the withdrawal at the gateway', () => gw.of('broadcast-withdraw').length === 1 && gw.of('broadcast-withdraw'))
    expect(w).toMatchObject({ v: 1, type: 'broadcast-withdraw', broadcast: 9001, topic: gw.topics.areaCommand })
    expect(gw.rejected).toEqual([])

    const j = io()
    expect(await consoleCommand(['broadcast', '--broker', broker.url, '--to', gw.id, '--withdraw', '0', '--json'], j.io)).toBe(0)
    expect(JSON.parse(j.out.join(''))).toMatchObject({ type: 'command-sent', kind: 'broadcast-withdraw', gateway: gw.id, topic: gw.topics.command, command: { type: 'broadcast-withdraw', broadcast: 0 } })
    await waitFor('the second withdrawal', () => gw.of('broadcast-withdraw').length === 2)
  })

  it('broadcast: exit 1 when no broker acknowledges in time', async () => {
    const t = io()
    const port = await freePort()
    expect(await consoleCommand(['broadcast', '--broker', `mqtt://127.0.0.1:${port}`, '--to', 'all', '--timeout', '0.3', 'x'], t.io)).toBe(1)
    expect(t.err.join('')).toMatch(/did not acknowledge the broadcast within 0.3 s/)
    const w = io()
    expect(await consoleCommand(['broadcast', '--broker', `mqtt://127.0.0.1:${port}`, '--to', 'all', '--timeout', '0.3', '--withdraw', '9001'], w.io)).toBe(1)
    expect(w.err.join('')).toMatch(/did not acknowledge the withdrawal within 0.3 s/)
  })
})
