/**
 * What the console shows: the event log and the view, and text from the wire made safe
 * for a screen [CONSOLE-9]. Against aedes on 127.0.0.1, with fake gateways
 * (tests/helpers/console-harness.ts).
 */

import { afterEach, describe, expect, it } from 'vitest'
import { waitFor } from '../device-sim/wait.js'
import { encodePayload } from '../protocol/mqtt.js'
import { aedes, alarm, birth, cleanUp, consoleFor, CONTROL, fakeGateway, hostileGateway, T0, trouble } from '../tests/helpers/console-harness.js'
import { describeEvent, renderView } from './index.js'

afterEach(cleanUp)

describe('text from the wire on the screen [CONSOLE-9]', () => {
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
})

describe('steppelink console', () => {
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
})
