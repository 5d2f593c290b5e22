/**
 * What the terminal is shown (to-the-button.ts), on the rig of gateway.suite.ts: stages as
 * INDICATE, whole after a restart and once per session, a call-back request as a case,
 * a cancel naming its alarm, operator text cut to fit (issue 10, items 5, 6, 7, 22); and
 * broadcasts as DISPLAY: read ones not sent again, revisions, broadcast-read events, no
 * DISPLAY to a terminal without a display, expiry and withdrawal (items 8, 9, 10, 19).
 */

import { beforeAll, describe, expect, it } from 'vitest'
import type { Capability } from '../protocol/messages.js'
import { ALL, AREA, OWN, displays, replies, rig, send, warmUpBatches } from './gateway.suite.js'

beforeAll(warmUpBatches)

describe('issue 10: what the terminal shows (items 5, 6, 7, 22)', () => {
  it('item 5: stages sent again after a terminal restart are whole: the unit, and the ETA still true', async () => {
    const r = rig()
    await r.run(2_000)
    r.press()
    await r.run(5_000, () => r.uplink('/alert').length > 0)
    send(r, OWN, { id: 'd', type: 'dispatched', alert: 'SL-T-5:1', unit: 'patrol car 3', eta: 40 })
    await r.run(2_000)
    expect(r.stages().at(-1)).toMatchObject({ stage: 'dispatched', text: 'patrol car 3', eta: 40 })
    await r.run(10 * 60_000)
    r.swapTerminal({ boot: 2, lastEvent: 1 })
    await r.run(5_000)
    expect(r.stages()).toEqual([{ type: 'INDICATE', event: 1, stage: 'dispatched', text: 'patrol car 3', eta: 30 }])
  })

  it('item 6: a stage is sent once per session: a retransmitted EVENT brings no second INDICATE', async () => {
    const r = rig()
    await r.run(2_000)
    const m = r.press()
    await r.run(5_000, () => r.stageNames(1).includes('sent'))
    r.terminal.send(m, { priority: 10 }) // the same event again (its ACK lost, say)
    await r.run(5_000)
    expect(r.stageNames(1)).toEqual(['stored', 'sent'])
  })

  it('items 7 and 22: a call-back request is a case: sent, received by receipt, acknowledged and resolved, each shown', async () => {
    const r = rig()
    await r.run(2_000)
    r.press('callback')
    await r.run(5_000, () => r.stageNames(1).includes('sent'))
    expect(r.uplink('/event')).toMatchObject([{ id: 'SL-T-5:1', class: 'request', kind: 'callback' }])
    send(r, OWN, { id: 'c1', type: 'receipt', ids: ['SL-T-5:1'] })
    await r.run(2_000)
    send(r, OWN, { id: 'c2', type: 'acknowledged', alert: 'SL-T-5:1', by: '110', text: 'We call you back before 15:00' })
    await r.run(2_000)
    send(r, OWN, { id: 'c3', type: 'resolved', alert: 'SL-T-5:1', text: 'called back' })
    await r.run(2_000)
    expect(r.stageNames(1)).toEqual(['stored', 'sent', 'received', 'acknowledged', 'resolved'])
    expect(r.stages().find((i) => i.stage === 'acknowledged')?.text).toBe('We call you back before 15:00')
    expect(replies(r)).toEqual([])
    expect(r.uplink('/event')).toHaveLength(1) // published once: a request is not republished like an alarm
  })

  it('item 22: a cancel names the alarm it cancels', async () => {
    const r = rig()
    await r.run(2_000)
    r.press('emergency')
    r.press('cancel')
    await r.run(5_000, () => r.uplink('/alert').some((a) => a.kind === 'cancel'))
    const alerts = r.uplink('/alert')
    expect(alerts.find((a) => a.kind === 'cancel')?.cancels).toBe('SL-T-5:1')
    expect(alerts.find((a) => a.kind === 'emergency')?.cancels).toBeUndefined()
  })

  it("item 22: alert commands about another gateway's alert on the area and all topics are ignored, not answered with an error", async () => {
    const r = rig()
    await r.run(1_000)
    send(r, AREA, { id: 'x1', type: 'acknowledged', alert: 'OTHER:1', by: 'Bao' })
    send(r, ALL, { id: 'x2', type: 'resolved', alert: 'OTHER:2' })
    send(r, OWN, { id: 'x3', type: 'resolved', alert: 'OTHER:3' })
    await r.run(100)
    expect(replies(r)).toEqual(['CMD_UNKNOWN_ALERT'])
  })

  it('item 22: an operator text too long for the terminal is cut with an ellipsis, logged and counted, not silently', async () => {
    const r = rig()
    await r.run(2_000)
    r.press()
    await r.run(5_000, () => r.uplink('/alert').length > 0)
    const text = '请待在病人身边，保持温暖。巡逻车三号已经出发，预计四十分钟后到达，请保持电话畅通，不要离开。'
    send(r, OWN, { id: 'k', type: 'acknowledged', alert: 'SL-T-5:1', by: 'Bao', text })
    await r.run(2_000)
    const shown = r.stages().find((i) => i.stage === 'acknowledged')!.text!
    expect(shown.endsWith('…')).toBe(true)
    expect(Buffer.byteLength(shown)).toBeLessThanOrEqual(120)
    expect(r.store.counters()['indicate.textCut']).toBe(1)
    expect(r.logs.some((l) => l.level === 'warn' && /longer than the terminal/.test(l.msg))).toBe(true)
    expect(r.store.get('SL-T-5:1')?.stageText).toBe(text) // kept whole for whoever can show it
  })
})

describe('issue 10: broadcasts (items 8, 9, 10, 19)', () => {
  const display = { terminal: { capabilities: ['display', 'buzzer'] as Capability[] } }

  it('item 8: a broadcast the terminal has read is not sent again at its next session', async () => {
    const r = rig(display)
    await r.run(2_000)
    send(r, OWN, { id: 'b', type: 'broadcast', broadcast: 9001, text: 'Blizzard tonight', urgency: 'urgent' })
    await r.run(2_000)
    expect(displays(r)).toHaveLength(1)
    r.terminal.send({ type: 'DISPLAY_READ', id: 9001 })
    await r.run(2_000)
    r.swapTerminal({ boot: 2, lastEvent: 0 })
    await r.run(5_000)
    expect(displays(r)).toEqual([])
  })

  it('items 9 and 19: the same id again replaces the text (a new revision, shown even after it was read), and a gateway restart keeps the new one', async () => {
    const r = rig(display)
    await r.run(2_000)
    send(r, OWN, { id: 'b1', type: 'broadcast', broadcast: 7, text: 'Storm warning', urgency: 'urgent' })
    await r.run(2_000)
    r.terminal.send({ type: 'DISPLAY_READ', id: 7 })
    await r.run(2_000)
    send(r, OWN, { id: 'b2', type: 'broadcast', broadcast: 7, text: 'All clear', urgency: 'info' })
    await r.run(2_000)
    expect(displays(r).map((d) => [d.text, d.revision])).toEqual([
      ['Storm warning', undefined],
      ['All clear', 1],
    ])
    r.gateway.stop()
    const second = rig({ store: r.store, boot: 2, terminal: { boot: 2, lastEvent: 0, capabilities: ['display'] } })
    await second.run(5_000)
    expect(displays(second).map((d) => d.text)).toEqual(['All clear'])
  })

  it('item 10: one broadcast-read per terminal and revision, under an id made of them; a read of something never sent is not published', async () => {
    const r = rig(display)
    await r.run(2_000)
    send(r, OWN, { id: 'b', type: 'broadcast', broadcast: 5, text: 'Notice', urgency: 'info' })
    await r.run(2_000)
    r.terminal.send({ type: 'DISPLAY_READ', id: 5 })
    r.terminal.send({ type: 'DISPLAY_READ', id: 5 })
    r.terminal.send({ type: 'DISPLAY_READ', id: 404 })
    await r.run(5_000)
    await r.run(400_000)
    const reads = (await r.items()).filter((i) => i.kind === 'broadcast-read')
    expect(reads).toMatchObject([{ id: 'gw-1/read/5.0/SL-T-5', broadcast: 5, revision: 0, terminal: 'SL-T-5' }])
    expect(r.logs.some((l) => l.level === 'warn' && /never sent it/.test(l.msg))).toBe(true)
  })

  it('item 10: a terminal without a display is sent no DISPLAY', async () => {
    const r = rig()
    await r.run(2_000)
    send(r, OWN, { id: 'b', type: 'broadcast', broadcast: 5, text: 'Notice', urgency: 'info' })
    await r.run(2_000)
    expect(displays(r)).toEqual([])
  })

  it('item 19: an already expired broadcast is refused (the clock set by the platform); expires in seconds is a schema error; a broadcast can be withdrawn', async () => {
    const r = rig(display)
    await r.run(2_000)
    const now = Date.UTC(2026, 11, 3, 12)
    send(r, OWN, { id: 't', type: 'time', now })
    send(r, OWN, { id: 'old', type: 'broadcast', broadcast: 1, text: 'Yesterday', urgency: 'info', expires: now - 3_600_000 })
    send(r, OWN, { id: 'secs', type: 'broadcast', broadcast: 2, text: 'Seconds', urgency: 'info', expires: Math.floor(now / 1000) + 3600 })
    send(r, OWN, { id: 'ok', type: 'broadcast', broadcast: 3, text: 'Road closed', urgency: 'warning', expires: now + 3_600_000 })
    await r.run(2_000)
    expect(replies(r)).toEqual(['CMD_BAD_VALUE', 'CMD_BAD_SCHEMA'])
    expect(displays(r).map((d) => d.id)).toEqual([3])
    send(r, OWN, { id: 'w', type: 'broadcast-withdraw', broadcast: 3 })
    await r.run(2_000)
    expect(displays(r).at(-1)).toMatchObject({ id: 3, expires: 0, revision: 1 })
    r.swapTerminal({ boot: 2, lastEvent: 0, capabilities: ['display'] })
    await r.run(5_000)
    expect(displays(r)).toEqual([]) // withdrawn: nothing to show, nothing to take back again
  })
})
