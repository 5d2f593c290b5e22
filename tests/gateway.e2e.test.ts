/**
 * The gateway as it runs on a board: a real child process on a real pseudo-terminal
 * (socat), a real MQTT broker (aedes, in this process), a terminal running the firmware
 * logic on the other end of the line, and a platform written against MQTT.md.
 */

import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { TerminalUpdate } from '../device-sim/terminal.js'
import { SqliteStore } from '../gateway/sqlite-store.js'
import { checkDelivery } from '../loop/delivery.js'
import { sleep, startLoop, type Loop } from '../loop/loop.js'
import { startAedes, type AedesBroker } from './helpers/broker.js'
import { startPlatform, type Platform } from './helpers/platform.js'
import { requireTool, waitUntil } from './helpers/system.js'

requireTool('socat')

describe('gateway end to end: real process, pseudo-terminal, aedes', () => {
  let broker: AedesBroker
  let platform: Platform
  let loop: Loop | null = null

  beforeEach(async () => {
    broker = await startAedes()
    platform = await startPlatform(broker.url)
  })

  afterEach(async () => {
    await loop?.close()
    loop = null
    await platform.close()
    await broker.close()
  })

  /** The loop harness on this test's broker, with the platform above in place of the operator console. */
  const start = async (updates: TerminalUpdate[] = []) => {
    loop = await startLoop({ broker, console: false, gatewayId: 'gw-e2e', terminalId: () => 'SL-T-E2E', onTerminalUpdate: (_, u) => updates.push(u) })
    return loop
  }

  it('a press reaches the platform; the receipt and the acknowledgement come back; the terminal shows each stage', async () => {
    const updates: TerminalUpdate[] = []
    const l = await start(updates)
    const g = l.gateway
    const device = l.terminals[0]!.device
    l.press(0, 'emergency')
    await waitUntil(() => platform.alerts.has('SL-T-E2E:1'), { timeoutMs: 10_000, what: 'alarm at the platform' })
    expect(platform.alerts.get('SL-T-E2E:1')!.event).toMatchObject({ kind: 'emergency', code: 101, class: 'alarm', gateway: 'gw-e2e', terminal: 'SL-T-E2E', number: 1 })
    await waitUntil(() => device.stages.get(1) === 'received', { timeoutMs: 10_000, what: 'received at the terminal' })
    await platform.send('gw-e2e', { type: 'acknowledged', alert: 'SL-T-E2E:1', by: 'Officer Bao' })
    await waitUntil(() => device.stages.get(1) === 'acknowledged', { timeoutMs: 10_000, what: 'acknowledged at the terminal' })
    const shown = updates.flatMap((u) => (u.kind === 'stage' && u.event === 1 ? [u.stage] : []))
    // `sent` (the broker's PUBACK) is skipped when the platform's receipt overtakes it: both
    // can arrive in one TCP read, and a stage never goes back.
    expect(shown.filter((s) => s !== 'sent')).toEqual(['saved', 'delivered', 'stored', 'received', 'acknowledged'])
    expect(shown.indexOf('sent')).toBeLessThanOrEqual(shown.indexOf('received'))
    expect(updates.find((u) => u.kind === 'stage' && u.stage === 'acknowledged')).toMatchObject({ text: 'Officer Bao' })
    expect(g.logs.some((l) => l.msg === 'ALARM stored')).toBe(true)
    expect(platform.states.some((s) => s.type === 'birth' && s.gateway === 'gw-e2e')).toBe(true)
  })

  it('killed with SIGKILL in the middle of a burst and restarted, loses and duplicates nothing', async () => {
    const l = await start()
    const t = l.terminals[0]!
    const device = t.device
    const presses = 20
    for (let i = 1; i <= presses; i++) {
      l.press(0, i % 4 === 0 ? 'fire' : 'emergency')
      await sleep(40)
      if (i === 8) await l.restartGateway('SIGKILL')
    }
    const ids = Array.from({ length: presses }, (_, i) => `SL-T-E2E:${i + 1}`)
    await waitUntil(() => ids.every((id) => platform.alerts.has(id)) && device.pending.length === 0, { timeoutMs: 30_000, what: 'every alarm at the platform' })
    await waitUntil(() => ids.every((_, i) => device.stages.get(i + 1) === 'received'), { timeoutMs: 15_000, what: 'every alarm received at the terminal' })
    expect([...platform.alerts.keys()].sort()).toEqual([...ids].sort())
    expect(checkDelivery([t], platform.alerts.keys()), 'the delivery promise, at the platform of MQTT.md').toEqual([])
    const copies = [...platform.alerts.values()].reduce((n, a) => n + a.copies, 0)
    console.log(`SIGKILL mid-burst: ${presses} alarms, ${copies} copies on the wire (${copies - presses} republished), all deduplicated by id`)
    await l.stopGateway('SIGTERM')
    const store = new SqliteStore({ path: join(l.dataDir, 'gateway.db') })
    try {
      const open = store.openAlerts()
      expect(open.map((e) => e.id).sort()).toEqual([...ids].sort())
      expect(open.every((e) => e.done && e.stage === 'received')).toBe(true)
    } finally {
      store.close()
    }
  })
})
