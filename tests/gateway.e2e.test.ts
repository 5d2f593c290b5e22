/**
 * The gateway as it runs on a board: a real child process on a real pseudo-terminal
 * (socat), a real MQTT broker (aedes, in this process), a terminal running the firmware
 * logic on the other end of the line, and a platform written against MQTT.md.
 */

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { runOnSerial, type RunningTerminal } from '../device-sim/serial-runner.js'
import { TerminalDevice, ramMemory, type TerminalUpdate } from '../device-sim/terminal.js'
import { SqliteStore } from '../gateway/sqlite-store.js'
import { startAedes, type AedesBroker } from './helpers/broker.js'
import { startGateway, type GatewayProcess } from './helpers/gateway-process.js'
import { startPlatform, type Platform } from './helpers/platform.js'
import { openPtyPair, type PtyPair } from './helpers/pty.js'
import { requireTool, waitUntil } from './helpers/system.js'

requireTool('socat')

describe('gateway end to end: real process, pseudo-terminal, aedes', () => {
  let pty: PtyPair
  let broker: AedesBroker
  let platform: Platform
  let dir: string
  const gateways: GatewayProcess[] = []
  const terminals: RunningTerminal[] = []

  beforeEach(async () => {
    pty = await openPtyPair()
    broker = await startAedes()
    platform = await startPlatform(broker.url)
    dir = mkdtempSync(join(tmpdir(), 'steppelink-e2e-'))
  })

  afterEach(async () => {
    await Promise.all(terminals.splice(0).map((t) => t.stop()))
    await Promise.all(gateways.splice(0).map((g) => g.kill('SIGKILL')))
    await platform.close()
    await broker.close()
    await pty.close()
    rmSync(dir, { recursive: true, force: true })
  })

  const gateway = async () => {
    const g = startGateway(['--serial', pty.a, '--broker', broker.url, '--id', 'gw-e2e', '--data', dir, '--log-level', 'debug'])
    gateways.push(g)
    await g.waitForLog((l) => l.msg === 'gateway ready', 'ready')
    return g
  }

  const terminal = (updates: TerminalUpdate[] = []) => {
    const device = new TerminalDevice({ address: 1, terminal: 'SL-T-E2E', memory: ramMemory(), onUpdate: (u) => updates.push(u), now: Date.now() })
    terminals.push(runOnSerial(device, { path: pty.b }))
    return device
  }

  it('a press reaches the platform; the receipt and the acknowledgement come back; the terminal shows each stage', async () => {
    const g = await gateway()
    const updates: TerminalUpdate[] = []
    const device = terminal(updates)
    await waitUntil(() => device.link.status.state === 'open', { timeoutMs: 10_000, what: 'terminal session' })
    device.press('emergency')
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
    let g = await gateway()
    const device = terminal()
    await waitUntil(() => device.link.status.state === 'open', { timeoutMs: 10_000, what: 'terminal session' })
    const presses = 20
    for (let i = 1; i <= presses; i++) {
      device.press(i % 4 === 0 ? 'fire' : 'emergency')
      await new Promise((r) => setTimeout(r, 40))
      if (i === 8) {
        await g.kill('SIGKILL')
        g = await gateway()
      }
    }
    const ids = Array.from({ length: presses }, (_, i) => `SL-T-E2E:${i + 1}`)
    await waitUntil(() => ids.every((id) => platform.alerts.has(id)) && device.pending.length === 0, { timeoutMs: 30_000, what: 'every alarm at the platform' })
    await waitUntil(() => ids.every((_, i) => device.stages.get(i + 1) === 'received'), { timeoutMs: 15_000, what: 'every alarm received at the terminal' })
    expect([...platform.alerts.keys()].sort()).toEqual([...ids].sort())
    const copies = [...platform.alerts.values()].reduce((n, a) => n + a.copies, 0)
    console.log(`SIGKILL mid-burst: ${presses} alarms, ${copies} copies on the wire (${copies - presses} republished), all deduplicated by id`)
    await g.kill('SIGTERM')
    const store = new SqliteStore({ path: join(dir, 'gateway.db') })
    try {
      const open = store.openAlerts()
      expect(open.map((e) => e.id).sort()).toEqual([...ids].sort())
      expect(open.every((e) => e.done && e.stage === 'received')).toBe(true)
    } finally {
      store.close()
    }
  })
})
