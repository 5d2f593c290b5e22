/**
 * What comes up from the gateways, through the console's boundary (uplink.ts) and its
 * handlers (handlers/): events, batches, terminal and gateway statuses, replies, births
 * and deaths, and payloads that are not what the contract says. Against aedes on
 * 127.0.0.1, with fake gateways (tests/helpers/console-harness.ts).
 */

import { afterEach, describe, expect, it } from 'vitest'
import { waitFor } from '../device-sim/wait.js'
import { COMMAND_ERROR_CODES, DEFAULT_TOPIC_PREFIX, encodeBatch, encodePayload, type Encoding, type UplinkEvent } from '../protocol/mqtt.js'
import { aedes, alarm, birth, cleanUp, consoleFor, death, fakeGateway, stageless, status, T0, trouble } from '../tests/helpers/console-harness.js'
import { describeEvent, renderView } from './index.js'

afterEach(cleanUp)

describe('events, batches and statuses', () => {
  it.each<Encoding>(['cbor', 'json'])('[MQTT-4.2] batch items (%s) decoded one by one, deduplicated against the same item alone on `event`', async (enc) => {
    const broker = await aedes()
    const gw = await fakeGateway(broker.url)
    const { c, of } = await consoleFor(broker.url)
    const mains = trouble(gw.id, 11)
    await gw.publish('event', encodePayload(mains, enc))
    const relay = stageless({
      ...alarm(gw.id, 1),
      id: `${gw.id}:g12`,
      class: 'request',
      kind: 'relay',
      code: null,
      terminal: null,
      address: null,
      number: null,
      text: 'Neighbour Batu needs a vet',
    } as UplinkEvent)
    const batch = {
      v: 1 as const,
      id: `${gw.id}:b311`,
      gateway: gw.id,
      items: [mains, status(gw.id, 'T4-00123', 71, false), status(gw.id, 'R1-00008', 100, true), relay, trouble(gw.id, 12, 'tamper')],
    }
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

  it('[MQTT-3.10] a second claimant of a terminal id: its alarm is a case of its own, marked unverified; the conflict is said with both addresses', async () => {
    const broker = await aedes()
    const gw = await fakeGateway(broker.url)
    const { c, of } = await consoleFor(broker.url)
    const as = `T4-00123@${gw.id}.a7`
    const own = alarm(gw.id, 2)
    const claimed = alarm(gw.id, 2, { id: `${as}:2`, terminal: as, address: 7, claims: 'T4-00123' })
    const conflict = {
      ...trouble(gw.id, 1),
      id: `${gw.id}:g16`,
      kind: 'terminal-id-conflict',
      code: 380,
      address: 7,
      number: null,
      text: `terminal id T4-00123, bound to address 3, claimed from address 7`,
      conflict: { terminal: 'T4-00123', boundAddress: 3, address: 7, as },
    } as UplinkEvent
    await gw.publish('alert', encodePayload(own, 'cbor'))
    await gw.publish('event', encodePayload(conflict, 'json'))
    await gw.publish('alert', encodePayload(claimed, 'cbor'))
    await waitFor('two receipts', () => gw.of('receipt').length === 2)
    expect(c.snapshot().openAlarms.map((a) => [a.id, a.terminal, a.claims])).toEqual([
      [own.id, 'T4-00123', null],
      [claimed.id, as, 'T4-00123'],
    ])
    expect(describeEvent(of('alert').find((e) => e.id === claimed.id)!)).toMatch(/UNVERIFIED: a second device claiming T4-00123's id/)
    expect(describeEvent(of('alert').find((e) => e.id === own.id)!)).not.toMatch(/UNVERIFIED/)
    const view = renderView(c.snapshot(), { now: T0, width: 400 }).join('\n')
    expect(view).toMatch(/UNVERIFIED \(claims T4-00123's id\)/)
    expect(view).toMatch(
      new RegExp(
        `terminal-id-conflict \\(380\\): terminal id T4-00123 is bound to address 3, and a second device claims it from address 7; its alarms come as ${as.replace(/\./g, '\\.')}, unverified`,
      ),
    )
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

  it('[MQTT-2.9] a retained alert (mosquitto cannot refuse one) is ignored with CONSOLE_RETAINED and gets no receipt; a retained state is read', async () => {
    const broker = await aedes()
    const gw = await fakeGateway(broker.url)
    // Left on the broker before the console subscribes: delivered to it with the retain flag.
    await gw.publish('alert', encodePayload(alarm(gw.id, 7), 'cbor'), true)
    await gw.publish('state', birth(gw.id, 3), true)
    const { c, of } = await consoleFor(broker.url)
    await waitFor('the error', () => of('error').length === 1)
    expect(of('error')[0]).toMatchObject({ code: 'CONSOLE_RETAINED', gateway: gw.id, topic: gw.topics.alert })
    await waitFor('online', () => c.snapshot().gateways.some((g) => g.gateway === gw.id && g.online))
    await gw.publish('alert', encodePayload(alarm(gw.id, 8), 'cbor'))
    await waitFor('a receipt', () => gw.of('receipt').length === 1)
    expect(gw.of('receipt')[0]?.ids).toEqual([alarm(gw.id, 8).id])
    expect(of('alert').map((e) => e.id)).toEqual([alarm(gw.id, 8).id])
  })

  it('[MQTT-3.8] every code of COMMAND_ERROR_CODES, the new CMD_BAD_VALUE, CMD_STALE and CMD_RETAINED included, and a code of a later version, is shown as a reply', async () => {
    const broker = await aedes()
    const gw = await fakeGateway(broker.url)
    const { of } = await consoleFor(broker.url)
    const codes = [...COMMAND_ERROR_CODES, 'CMD_FROM_THE_FUTURE']
    expect(codes).toEqual(expect.arrayContaining(['CMD_BAD_VALUE', 'CMD_STALE', 'CMD_RETAINED']))
    for (const [i, code] of codes.entries()) {
      await gw.publish(
        'reply',
        encodePayload({ v: 1, type: 'error', gateway: gw.id, command: `c-${i}`, topic: gw.topics.command, code, message: `reason ${i}`, time: { at: T0, estimated: false } }, 'json'),
      )
    }
    const replies = await waitFor('every reply', () => of('reply').length === codes.length && of('reply'))
    expect(replies.map((r) => r.code)).toEqual(codes)
    replies.forEach((r, i) => {
      expect(describeEvent(r)).toMatch(new RegExp(`REPLY +${gw.id} rejected command c-${i}: ${codes[i]} reason ${i}$`))
    })
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

    expect(
      of('state')
        .filter((e) => e.gateway === gw.id)
        .map((e) => [e.kind, e.session, e.online, e.stale ?? false]),
    ).toEqual([
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
