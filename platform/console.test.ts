/**
 * The operator console's cases against real brokers on 127.0.0.1 (aedes in process, and
 * mosquitto once), with fake gateways (tests/helpers/console-harness.ts): alarms and
 * requests, their receipts and answers, broadcasts and their reads, the persistent
 * session. Rule ids: [CONSOLE-n] of the files of platform/ (console.ts lists where each
 * is kept), [MQTT-x.y] of MQTT.md.
 *
 * Time: automatic dispatch and resolve run on injected timers that the test fires; no
 * test sleeps for a fixed time: each waits for a condition with a deadline.
 */

import { afterEach, describe, expect, it } from 'vitest'
import { waitFor } from '../device-sim/wait.js'
import { encodeBatch, encodePayload, type Encoding, type UplinkEvent } from '../protocol/mqtt.js'
import { startMosquitto } from '../tests/helpers/broker.js'
import { aedes, alarm, callback, cleanUp, cleanups, consoleFor, fakeGateway, relay, stageless, T0, trouble, uniq } from '../tests/helpers/console-harness.js'
import { ManualTimers } from '../tests/helpers/manual-timers.js'
import { ConsoleError, describeEvent, renderView } from './index.js'

afterEach(cleanUp)

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
})

describe('relays by the center household [MQTT-3.11] [MQTT-4.16]', () => {
  it('a relayed alarm (no terminal) goes to resolved as a press does, and the case says who relayed it and for whom', async () => {
    const broker = await aedes()
    const gw = await fakeGateway(broker.url)
    const timers = new ManualTimers()
    const { c, of } = await consoleFor(broker.url, { ack: 'auto', dispatchAfterS: 90, resolveAfterS: 1800, timers })
    const relayed: UplinkEvent = {
      ...alarm(gw.id, 1),
      id: `${gw.id}:g14`,
      kind: 'medical',
      code: 100,
      terminal: null,
      address: null,
      number: null,
      text: '老人从马上摔下',
      relay: { what: 'medical', for: { name: '巴图家', phone: '13904790000', where: '3号井冬营地' }, by: { household: '巴特尔家', member: '其其格' } },
    }
    await gw.publish('alert', encodePayload(relayed, 'cbor'))
    await waitFor('the receipt and the acknowledgement', () => gw.of('acknowledged').length === 1)
    expect(gw.of('receipt').map((r) => r.ids)).toEqual([[relayed.id]])
    const a = c.case(relayed.id)!
    expect(a).toMatchObject({ class: 'alarm', terminal: null, relay: { what: 'medical', for: '巴图家', phone: '13904790000', where: '3号井冬营地', household: '巴特尔家', member: '其其格' } })
    const row = renderView(c.snapshot(), { now: Date.now(), width: 400 }).find((l) => l.includes(relayed.id))
    expect(row).toContain('RELAYED medical for 巴图家 (tel 13904790000, at 3号井冬营地) by 巴特尔家 (其其格): 老人从马上摔下')
    expect(describeEvent(of('alert')[0]!)).toContain('RELAYED medical for 巴图家')
    timers.fire(90_000)
    await waitFor('the dispatch', () => gw.of('dispatched').length === 1)
    timers.fire(1_800_000)
    await waitFor('the resolve', () => gw.of('resolved').length === 1)
    expect(c.case(relayed.id)?.history.map((h) => h.stage)).toEqual(['stored', 'received', 'acknowledged', 'dispatched', 'resolved'])
    expect(gw.rejected).toEqual([])
  })

  it('a relayed request shows the relay on its case and its event line', async () => {
    const broker = await aedes()
    const gw = await fakeGateway(broker.url)
    const { c, of } = await consoleFor(broker.url, { ack: 'auto', timers: new ManualTimers() })
    const r = { ...relay(gw.id, 12, '两只羊走失'), relay: { what: 'livestock', for: { name: '巴图家' }, by: { household: null } } } as UplinkEvent
    await gw.publish('event', encodePayload(r, 'json'))
    await waitFor('the acknowledgement', () => gw.of('acknowledged').length === 1)
    expect(c.case(r.id)?.relay).toEqual({ what: 'livestock', for: '巴图家', phone: null, where: null, household: null, member: null })
    expect(describeEvent(of('event')[0]!)).toContain('RELAYED livestock for 巴图家 by a center household: 两只羊走失')
  })
})

describe('broadcast reads', () => {
  /** A broadcast-read as the gateway makes it: one id per broadcast, revision and terminal. */
  const read = (gateway: string, broadcast: number, revision: number, terminal: string): UplinkEvent =>
    stageless({
      ...alarm(gateway, 1),
      id: `${gateway}/read/${broadcast}.${revision}/${terminal}`,
      class: 'status',
      kind: 'broadcast-read',
      code: null,
      terminal,
      number: null,
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
      { gateway: a.id, terminals: 2, got: true, householdRead: false, passedOn: null },
      { gateway: b.id, terminals: 1, got: true, householdRead: false, passedOn: null },
    ])
    expect(s.broadcasts[1]).toMatchObject({ broadcast: 4242, sent: null, terminals: 1, gateways: [{ gateway: b.id, terminals: 1 }] })
    expect(s.broadcasts[2]).toMatchObject({ broadcast: 9002, terminals: 0 })
    expect(s.counters.duplicates).toBe(2)

    const view = renderView(s, { now: Date.now(), width: 300 }).join('\n')
    expect(view).toContain('Broadcasts: 3')
    expect(view).toMatch(
      new RegExp(
        `#9001 urgent to area:abag-03, sent \\d\\d:\\d\\d:\\d\\d \\(text replaced 1x\\): "Blizzard: roads closed too\\.": read on 3 terminals \\(${a.id} 2, ${b.id} 1\\), 1 of them the latest text \\(revision 1\\)`,
      ),
    )
    expect(view).toMatch(new RegExp(`#4242 not sent by this console: read on 1 terminal \\(${b.id} 1\\); got by 1 gateway\\n`))
    expect(view).toMatch(/#9002 info to .*"Vet visit on Friday": not read yet/)
  })

  it('per broadcast, which gateways got it, read it at the household and passed it on, to how many households (the latest count) [MQTT-3.12] [MQTT-4.16]', async () => {
    const broker = await aedes()
    const a = await fakeGateway(broker.url, uniq('gwa'))
    const b = await fakeGateway(broker.url, uniq('gwb'))
    const { c } = await consoleFor(broker.url)
    const ev = (gw: string, id: string, kind: string, over: Partial<UplinkEvent> & Record<string, unknown>, at = T0) =>
      stageless({
        ...alarm(gw, 1),
        id,
        class: 'status',
        kind,
        code: null,
        terminal: null,
        address: null,
        number: null,
        broadcast: 7001,
        revision: 0,
        time: { at, estimated: false },
        received: at,
        ...over,
      } as UplinkEvent)
    await a.publish('event', encodePayload(ev(a.id, `${a.id}/got/7001.0`, 'broadcast-received', {}), 'cbor'))
    await b.publish('event', encodePayload(ev(b.id, `${b.id}/got/7001.0`, 'broadcast-received', {}), 'json'))
    await a.publish('event', encodePayload(ev(a.id, `${a.id}/read/7001.0/@household`, 'broadcast-read', { by: 'household' }), 'cbor'))
    await a.publish('event', encodePayload(ev(a.id, `${a.id}:g5`, 'broadcast-passed-on', { households: 5 }, T0 + 1_000), 'cbor'))
    // A correction, and the first count again late (out of order): the latest by time counts.
    await a.publish('event', encodePayload(ev(a.id, `${a.id}:g6`, 'broadcast-passed-on', { households: 7 }, T0 + 2_000), 'cbor'))
    await a.publish('event', encodePayload(ev(a.id, `${a.id}:g5`, 'broadcast-passed-on', { households: 5 }, T0 + 1_000), 'cbor'))
    await b.publish('event', encodePayload(ev(b.id, `${b.id}:g9`, 'broadcast-passed-on', { households: 11 }), 'cbor'))
    await waitFor('the reports', () => (c.snapshot().broadcasts.find((x) => x.broadcast === 7001)?.passedOn ?? 0) === 18)
    const s = c.snapshot()
    const bc = s.broadcasts.find((x) => x.broadcast === 7001)!
    expect(bc).toMatchObject({ terminals: 0, gotBy: 2, passedOn: 18 })
    expect([...bc.gateways].sort((x, y) => x.gateway.localeCompare(y.gateway))).toEqual([
      { gateway: a.id, terminals: 0, got: true, householdRead: true, passedOn: 7 },
      { gateway: b.id, terminals: 0, got: true, householdRead: false, passedOn: 11 },
    ])
    const view = renderView(s, { now: Date.now(), width: 400 }).join('\n')
    expect(view).toContain(`#7001 not sent by this console: not read yet; got by 2 gateways; read by the household at ${a.id}; passed on to 18 households (`)
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
