/**
 * The platform's commands as the gateway applies them (commands/), on the rig of
 * gateway.suite.ts: malformed, unknown and repeated commands, the reply budget [MQTT-5.2],
 * platform time, broadcasts in parts, birth and death with the session counter; and the
 * issue 10 items about commands: a config that breaks the heartbeat rule (11), a stale time
 * (12), a time after 2106 (20), a retained command (21).
 */

import { beforeAll, describe, expect, it } from 'vitest'
import type { Stage } from '../protocol/messages.js'
import { decodePayload } from '../protocol/mqtt.js'
import { ALL, OWN, replies, rig, send, warmUpBatches } from './gateway.suite.js'

beforeAll(warmUpBatches)

describe('gateway: commands', () => {
  it('rejects malformed and unknown commands with an error report, and goes on', async () => {
    const r = rig()
    r.gateway.command('steppelink/v1/gw/gw-1/cmd', Buffer.from('{not json'))
    r.command({ id: 'x', type: 'launch' })
    r.command({ id: 'y', type: 'acknowledged', alert: 'nobody:1', by: 'Bao' })
    r.gateway.command('steppelink/v1/gw/gw-1/cmd', Buffer.from([0xff, 0x00, 0x13]))
    await r.run(100)
    expect(r.uplink('/reply').map((e) => e.code)).toEqual(['CMD_UNDECODABLE', 'CMD_UNKNOWN_TYPE', 'CMD_UNKNOWN_ALERT', 'CMD_UNDECODABLE'])
    // Every Reply is a rejection counted, the unknown alert too.
    expect(r.store.counters()['commands.rejected']).toBe(4)
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
    const r = rig({ terminal: { capabilities: ['display', 'buzzer'] } })
    await r.run(2_000)
    r.command({ id: 'b', type: 'broadcast', broadcast: 77, text: '白灾预警：今夜暴雪，请把牲畜赶回棚圈。'.repeat(5), urgency: 'urgent' })
    await r.run(5_000)
    const displays = r.tLog.flatMap((e) => (e.kind === 'message' && e.message.type === 'DISPLAY' ? [e.message] : []))
    expect(displays.length).toBe(2)
    expect(displays.map((d) => [d.part, d.parts])).toEqual([
      [1, 2],
      [2, 2],
    ])
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

describe('issue 10: commands from the platform (items 11, 12, 20, 21)', () => {
  it('item 11: a config that breaks the heartbeat rule is refused with a Reply, like in the config file', async () => {
    const r = rig()
    await r.run(1_000)
    send(r, OWN, { id: 'c', type: 'config', supervision: 10, heartbeat: 600 })
    send(r, OWN, { id: 'd', type: 'config', heartbeat: 20 }) // 30 s supervision < 2 x 20 s
    await r.run(100)
    expect(r.uplink('/reply')).toMatchObject([
      { code: 'CMD_BAD_VALUE', command: 'c' },
      { code: 'CMD_BAD_VALUE', command: 'd' },
    ])
    expect(r.uplink('/reply')[0]!.message).toMatch(/less than twice timing\.heartbeat/)
    send(r, OWN, { id: 'e', type: 'config', heartbeat: 20, supervision: 60 })
    await r.run(100)
    expect(replies(r)).toHaveLength(2)
    expect(r.tLog.some((e) => e.kind === 'message' && e.message.type === 'CONFIG' && e.message.heartbeat === 20)).toBe(true)
  })

  it('item 12: a time for another session, or far behind a clock already set, is stale and not applied', async () => {
    const r = rig()
    await r.run(1_000)
    r.gateway.will()
    const session = (decodePayload(r.gateway.birth().payload) as { session: number }).session
    const now = Date.UTC(2026, 11, 3, 12)
    send(r, OWN, { id: 't0', type: 'time', now: now - 3_600_000, session: session - 1 })
    send(r, OWN, { id: 't1', type: 'time', now, session })
    send(r, OWN, { id: 't2', type: 'time', now: now - 10 * 60_000 })
    await r.run(100)
    expect(r.uplink('/reply')).toMatchObject([
      { code: 'CMD_STALE', command: 't0' },
      { code: 'CMD_STALE', command: 't2' },
    ])
    expect(Math.abs(r.gateway.clock.now().at - now)).toBeLessThan(1_000)
  })

  it('item 20: a time the terminals cannot be told (after 2106) is refused by the schema and blocks nothing', async () => {
    const r = rig()
    await r.run(1_000)
    send(r, OWN, { id: 't', type: 'time', now: 4_294_967_296_000 })
    await r.run(100)
    expect(replies(r)).toEqual(['CMD_BAD_SCHEMA'])
    r.press()
    await r.run(5_000, () => r.stageNames(1).includes('sent'))
    expect(r.stageNames(1)).toEqual(['stored', 'sent'])
  })

  it('item 21: a retained command is never applied, answered once with CMD_RETAINED; an empty payload (clearing it) is ignored', async () => {
    const r = rig()
    await r.run(1_000)
    const c = { id: 'kept', type: 'config', statusInterval: 900 }
    send(r, ALL, c, { retained: true })
    send(r, ALL, c, { retained: true })
    r.gateway.command(ALL, Buffer.alloc(0), { retained: false })
    r.gateway.command(ALL, Buffer.alloc(0), { retained: true })
    await r.run(100)
    expect(r.uplink('/reply')).toMatchObject([{ code: 'CMD_RETAINED', command: 'kept' }])
    expect(r.store.meta('settings')).toBeUndefined()
  })
})
