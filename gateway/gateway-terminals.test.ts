/**
 * The serial side (terminals.ts, numbering.ts), on the rig of gateway.suite.ts: a terminal
 * whose numbers start again, wiped or replaced by a new unit, gets new ids and never its
 * predecessor's stages, and a replay is recognised for ever (issue 10, items 1, 2, 17); a
 * HELLO that fails its schema is logged so that a technician can tell why a terminal
 * cannot connect (item 14).
 */

import { Encoder } from 'cbor-x'
import { beforeAll, describe, expect, it } from 'vitest'
import { cobsEncode } from '../protocol/cobs.js'
import { crc32c } from '../protocol/crc32c.js'
import { OWN, rig, send, warmUpBatches } from './gateway.suite.js'

beforeAll(warmUpBatches)

describe('issue 10: a terminal whose numbers start again (items 1, 2, 17)', () => {
  it('item 1: a wiped terminal (boot and lastEvent back to the start) gets new ids; its new alarm #1 is published, never taken for the old #1 nor shown its stage', async () => {
    const r = rig({ terminal: { boot: 5 } })
    await r.run(2_000)
    r.press('emergency')
    await r.run(5_000, () => r.uplink('/alert').length > 0)
    for (const [id, type] of [
      ['a1', 'receipt'],
      ['a2', 'acknowledged'],
      ['a3', 'resolved'],
    ] as const) {
      send(r, OWN, { id, type, ...(type === 'receipt' ? { ids: ['SL-T-5:1'] } : { alert: 'SL-T-5:1', by: 'Bao' }) })
    }
    await r.run(3_000)
    expect(r.stageNames(1).at(-1)).toBe('resolved')

    r.swapTerminal({ boot: 1, lastEvent: 0 }) // memory wiped: starts again at boot 1, event 1
    await r.run(3_000)
    r.press('fire', 1, 7)
    await r.run(5_000, () => r.uplink('/alert').length > 1)
    await r.run(2_000)
    const alerts = r.uplink('/alert')
    expect(alerts.map((a) => [a.id, a.kind])).toEqual([
      ['SL-T-5:1', 'emergency'],
      ['SL-T-5@gw-1.1:1', 'fire'],
    ])
    expect(r.stageNames(1)).toEqual(['stored', 'sent']) // the new alarm's own stages, not "resolved"
    const reset = (await r.items()).find((i) => i.kind === 'terminal-reset')
    expect(reset).toMatchObject({ class: 'trouble', code: 305, terminal: 'SL-T-5', reset: { reason: 'boot-backwards', epoch: 'gw-1.1', previousBoot: 5, previousNumber: 1 } })
    expect(r.logs.some((l) => l.level === 'warn' && /started its event numbers again/.test(l.msg))).toBe(true)
    // The old alert answered late goes nowhere near the new unit's display.
    send(r, OWN, { id: 'late', type: 'resolved', alert: 'SL-T-5:1', text: 'old case' })
    send(r, OWN, { id: 'new-ack', type: 'acknowledged', alert: 'SL-T-5@gw-1.1:1', by: 'Officer Wu' })
    await r.run(3_000)
    expect(
      r
        .stages()
        .filter((i) => i.event === 1)
        .map((i) => i.text ?? i.stage),
    ).toEqual(['stored', 'sent', 'Officer Wu'])
  })

  it('item 1: stages queued for the old unit (it was unplugged before they went out) never reach the new one', async () => {
    const r = rig()
    await r.run(2_000)
    r.press('emergency', 1, 40)
    await r.run(5_000, () => r.uplink('/alert').length > 0)
    await r.run(1_000)
    // The operator answers while the old unit is already gone: the INDICATEs wait in the queue.
    r.swapTerminal({ boot: 1, lastEvent: 0 })
    send(r, OWN, { id: 'k', type: 'acknowledged', alert: 'SL-T-5:1', by: 'Bao' })
    send(r, OWN, { id: 'd', type: 'dispatched', alert: 'SL-T-5:1', unit: 'car 3', eta: 20 })
    await r.run(5_000)
    expect(r.stages()).toEqual([])
    r.press('fire', 1, 9)
    await r.run(5_000, () => r.uplink('/alert').length > 1)
    await r.run(1_000)
    expect(r.stageNames(1)).toEqual(['stored', 'sent'])
  })

  it('item 17: a new unit put on the address of one still in its first session is a new start: its #1 is stored and published, not ACKed as a retransmission', async () => {
    const r = rig()
    await r.run(2_000)
    r.press('emergency', 1, 40)
    await r.run(5_000, () => r.uplink('/alert').length > 0)
    send(r, OWN, { id: 'k', type: 'acknowledged', alert: 'SL-T-5:1', by: 'Bao' })
    await r.run(2_000)
    // Fresh from the factory like the old one: boot 1, session 0, lastEvent 0 - the same HELLO.
    r.swapTerminal({ boot: 1, lastEvent: 0 })
    await r.run(2_000)
    r.press('emergency', 1, 12)
    await r.run(5_000, () => r.uplink('/alert').length > 1)
    await r.run(1_000)
    expect(r.uplink('/alert').map((a) => a.id)).toEqual(['SL-T-5:1', 'SL-T-5@gw-1.1:1'])
    expect(r.stageNames(1)).not.toContain('acknowledged')
    expect(r.stageNames(1)[0]).toBe('stored')
  })

  it('item 1: an EVENT under a number already taken, saying something else, starts a new numbering even without a telling HELLO', async () => {
    const r = rig()
    await r.run(2_000)
    r.press('emergency', 1, 40)
    await r.run(5_000, () => r.uplink('/alert').length > 0)
    r.press('panic', 1, 41) // same number, another event
    await r.run(5_000, () => r.uplink('/alert').length > 1)
    expect(r.uplink('/alert').map((a) => [a.id, a.kind])).toEqual([
      ['SL-T-5:1', 'emergency'],
      ['SL-T-5@gw-1.1:1', 'panic'],
    ])
    expect((await r.items()).find((i) => i.kind === 'terminal-reset')).toMatchObject({ reset: { reason: 'event-differs' } })
  })

  it('item 2: a replay is recognised for ever: a trouble event after its PUBACK, a resolved alarm after it was purged', async () => {
    const r = rig()
    await r.run(2_000)
    const trouble = r.press('mains-lost', 1, 50)
    const alarm = r.press('emergency', 2, 60)
    await r.run(10_000, () => r.uplink('/alert').length > 0 && r.uplink('/event').length > 0)
    send(r, OWN, { id: 'res', type: 'resolved', alert: 'SL-T-5:2' })
    await r.run(2_000)
    expect(r.store.get('SL-T-5:1')).toBeUndefined() // published: the row is gone
    // A day and more later the resolved alarm is purged; then a power cut replays both.
    await r.run(25 * 3_600_000, undefined, 60_000)
    expect(r.store.get('SL-T-5:2')).toBeUndefined()
    r.swapTerminal({ boot: 2, lastEvent: 2 })
    r.terminal.send(trouble, { priority: 5 })
    r.terminal.send(alarm, { priority: 10 })
    await r.run(10_000)
    const kinds = (await r.items()).filter((i) => i.kind !== 'status').map((i) => i.kind)
    expect(kinds.filter((k) => k === 'mains-lost')).toHaveLength(1)
    expect(kinds.filter((k) => k === 'emergency')).toHaveLength(1)
    expect(r.logs.filter((l) => /already stored/.test(l.msg))).toHaveLength(2)
    expect(r.tLog.filter((e) => e.kind === 'delivered')).toHaveLength(2) // the terminal may forget them
  })
})

describe('issue 10: diagnosing a terminal that cannot connect (item 14)', () => {
  it('a HELLO that fails its schema is logged (warn, with why), once a minute at most', async () => {
    const r = rig()
    await r.run(1_000)
    const bad = { type: 'HELLO', terminal: 'SL-T-9', firmware: 'v1\u0007', capabilities: [], boot: 1, lastEvent: 0, session: 0 } as const
    // Encoded by hand: the reference encoder refuses a message that fails its schema.
    const body = encodeCbor(
      new Map<number, unknown>([
        [0, bad.terminal],
        [1, bad.firmware],
        [2, 0],
        [3, 1],
        [4, 0],
        [5, 0],
      ]),
    )
    const frame = new Uint8Array([1, 0, 9, 0x10, 0, ...body])
    const withCrc = new Uint8Array([...frame, ...le32(crc32c(frame))])
    const wire = new Uint8Array([0, ...cobsEncode(withCrc), 0])
    for (let i = 0; i < 10; i++) {
      r.gateway.serialData(wire)
      await r.run(1_000)
    }
    const warns = () => r.logs.filter((l) => l.level === 'warn' && /HELLO was refused/.test(l.msg))
    expect(warns()).toHaveLength(1)
    expect(warns()[0]!.msg).toMatch(/firmware/)
    expect(warns()[0]!.fields).toMatchObject({ address: 9, code: 'LINK_BAD_SCHEMA' })
    await r.run(60_000)
    r.gateway.serialData(wire)
    expect(warns()).toHaveLength(2)
    expect(warns()[1]!.fields).toMatchObject({ repeatedSinceLast: 9 })
  })
})

const cbor = new Encoder({ useRecords: false, mapsAsObjects: false, tagUint8Array: false })
function encodeCbor(m: Map<number, unknown>): Uint8Array {
  return cbor.encode(m)
}
function le32(n: number): number[] {
  return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff]
}
