/**
 * Same id, different content [CONSOLE-10] [MQTT-4.15]: the attack of issue 12 where a
 * forged alert published first under a terminal's next id made the console take the real
 * emergency for a duplicate. Against aedes on 127.0.0.1 with fake gateways
 * (tests/helpers/console-harness.ts); injected timers, no sleeps.
 */

import { afterEach, describe, expect, it } from 'vitest'
import { waitFor } from '../device-sim/wait.js'
import { COPY_TIME_TOLERANCE_MS, encodePayload } from '../protocol/mqtt.js'
import { aedes, alarm, callback, cleanUp, consoleFor, fakeGateway, T0 } from '../tests/helpers/console-harness.js'
import { ManualTimers } from '../tests/helpers/manual-timers.js'
import { CONFLICT_WARNING } from './cases.js'
import { describeEvent, renderView } from './index.js'

afterEach(cleanUp)

describe('same id, different content [CONSOLE-10]', () => {
  it('a forged alert first, the real one next under its id: a conflict, both versions kept and shown, neither dropped', async () => {
    const broker = await aedes()
    const gw = await fakeGateway(broker.url)
    const { c, of } = await consoleFor(broker.url)
    const forged = alarm(gw.id, 43, { time: { at: T0 - 3_600_000, estimated: false }, received: T0 - 3_600_000 })
    const real = alarm(gw.id, 43, { time: { at: T0, estimated: false }, received: T0 })
    await gw.publish('alert', encodePayload(forged, 'cbor'))
    await waitFor('the first receipt', () => gw.of('receipt').length === 1)
    await gw.publish('alert', encodePayload(real, 'cbor'))
    // The real one's republications: duplicates of the real version, not new conflicts.
    await gw.publish('alert', encodePayload({ ...real, attempt: 2, stage: 'sent' }, 'cbor'))
    await waitFor('three receipts', () => gw.of('receipt').length === 3)

    const lines = of('alert')
    expect(lines.map((e) => [e.duplicate ?? false, e.idConflict?.differs ?? null])).toEqual([
      [false, null],
      [false, ['time', 'received']],
      [true, null],
    ])
    expect(describeEvent(lines[1]!)).toContain(`CONFLICT: ${CONFLICT_WARNING.toUpperCase()}`)
    const a = c.case(real.id)!
    expect(a.conflict).toMatchObject({ warning: CONFLICT_WARNING, differs: ['time', 'received'] })
    expect(a.conflict!.versions.map((v) => [v.event.time.at, v.copies])).toEqual([
      [forged.time.at, 1],
      [real.time.at, 2],
    ])
    expect(c.snapshot().counters).toMatchObject({ alerts: 1, alertCopies: 3, duplicates: 1, conflicts: 1 })
    const view = renderView(c.snapshot(), { now: T0 + 60_000, width: 400 }).join('\n')
    expect(view).toMatch(/T4-00123:43 .*CONFLICT: TWO DIFFERENT ALERTS UNDER ONE ID: ONE MAY BE FORGED; PHONE THE HOUSEHOLD/)
    expect(view).toMatch(/version 1: emergency \(101\) from T4-00123 #3 via .*1 copy/)
    expect(view).toMatch(/version 2: emergency \(101\) from T4-00123 #3 via .*2 copies/)
  })

  it('a gateway that booted without the time: estimated first, corrected later is a republication while the case is open [MQTT-4.15]', async () => {
    const broker = await aedes()
    const gw = await fakeGateway(broker.url)
    const { c, of } = await consoleFor(broker.url)
    const booted = alarm(gw.id, 44, { time: { at: 5_000, estimated: true }, received: 5_000 })
    await gw.publish('alert', encodePayload(booted, 'cbor'))
    await waitFor('the first receipt', () => gw.of('receipt').length === 1)
    // The platform's `time` came, the receipt was slow: republished with the corrected time.
    await gw.publish('alert', encodePayload({ ...booted, time: { at: T0, estimated: false }, received: T0, attempt: 2 }, 'cbor'))
    await waitFor('two receipts', () => gw.of('receipt').length === 2)
    expect(of('alert').map((e) => [e.duplicate ?? false, e.idConflict?.differs ?? null])).toEqual([
      [false, null],
      [true, null],
    ])
    expect(c.case(booted.id)!.conflict).toBeNull()
  })

  it('a case closed on the forged version opens again when the real one comes, and the operator answers it', async () => {
    const broker = await aedes()
    const gw = await fakeGateway(broker.url)
    const { c } = await consoleFor(broker.url)
    const forged = alarm(gw.id, 43, { kind: 'medical', code: 100 })
    await gw.publish('alert', encodePayload(forged, 'cbor'))
    await waitFor('the receipt', () => gw.of('receipt').length === 1)
    await c.acknowledge(forged.id)
    await c.resolve(forged.id)
    expect(c.snapshot().openAlarms).toEqual([])

    await gw.publish('alert', encodePayload(alarm(gw.id, 43, { time: { at: T0 + 5 * 60_000, estimated: false } }), 'cbor'))
    await waitFor('the second receipt', () => gw.of('receipt').length === 2)
    const open = c.snapshot().openAlarms
    expect(open.map((a) => [a.id, a.stage, a.conflict?.differs])).toEqual([[forged.id, 'received', ['kind', 'code', 'time']]])
    expect(open[0]!.history.map((h) => h.stage)).toEqual(['stored', 'received', 'acknowledged', 'resolved', 'stored', 'received'])
    await c.acknowledge(forged.id, '110 centre: we are phoning you')
    await waitFor('the second acknowledgement', () => gw.of('acknowledged').length === 2)
    expect(gw.of('acknowledged').map((x) => x.alert)).toEqual([forged.id, forged.id])
  })

  it('auto: a case with a conflict is not acknowledged, dispatched or resolved by itself; an operator takes it', async () => {
    const broker = await aedes()
    const gw = await fakeGateway(broker.url)
    const timers = new ManualTimers()
    const { c } = await consoleFor(broker.url, { ack: 'auto', dispatchAfterS: 90, resolveAfterS: 1800, timers })
    const first = alarm(gw.id, 43)
    await gw.publish('alert', encodePayload(first, 'cbor'))
    await waitFor('the acknowledgement', () => gw.of('acknowledged').length === 1)
    const at = T0 + COPY_TIME_TOLERANCE_MS + 1
    await gw.publish('alert', encodePayload(alarm(gw.id, 43, { time: { at, estimated: false }, received: at }), 'cbor'))
    await waitFor('the second receipt', () => gw.of('receipt').length === 2)
    // The dispatch and resolve that followed the first acknowledgement are stopped.
    expect(timers.delays()).toEqual([])
    expect(gw.commands.map((x) => x.type)).toEqual(['receipt', 'acknowledged', 'receipt'])
    expect(c.case(first.id)).toMatchObject({ stage: 'received', conflict: { differs: ['time'] } })
  })

  it('a request under a known id from another gateway, or saying something else, is a conflict too', async () => {
    const broker = await aedes()
    const gw = await fakeGateway(broker.url)
    const other = await fakeGateway(broker.url)
    const { c, of } = await consoleFor(broker.url)
    const r = callback(gw.id, 8)
    await gw.publish('event', encodePayload(r, 'cbor'))
    await other.publish('event', encodePayload({ ...r, gateway: other.id }, 'cbor'))
    await waitFor('two request lines', () => of('event').length === 2)
    expect(of('event').map((e) => e.idConflict?.differs ?? null)).toEqual([null, ['gateway (topic)', 'gateway']])
    expect(c.case(r.id)!.conflict!.versions.map((v) => v.gateway)).toEqual([gw.id, other.id])
  })
})
