/**
 * A terminal whose memory is wiped (issue 10, item 1), as a technician would meet it: the
 * gateway as a real process on a socat pseudo-terminal, the terminal simulator as a real
 * process (`steppelink sim terminal --state FILE`), its state file deleted between two
 * runs. The second run starts again at boot 1 and event 1; its alarm must reach the
 * platform as a new alarm and come back `received`, never shown the first run's stage.
 */

import { spawn } from 'node:child_process'
import { existsSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { startLoop, type Loop } from '../loop/loop.js'
import { startAedes, type AedesBroker } from './helpers/broker.js'
import { startPlatform, type Platform } from './helpers/platform.js'
import { requireTool, waitUntil } from './helpers/system.js'

requireTool('socat')

const BIN = join(import.meta.dirname, '..', 'dist', 'cli', 'main.js')

/** One scripted run of the terminal simulator: its exit code and its JSON stage lines. */
function simTerminal(args: string[]): Promise<{ code: number | null; lines: Record<string, unknown>[]; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, 'sim', 'terminal', ...args, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c))
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c))
    child.once('exit', (code) =>
      resolve({
        code,
        lines: out
          .split('\n')
          .filter((l) => l.startsWith('{'))
          .map((l) => JSON.parse(l) as Record<string, unknown>),
        stderr,
      }),
    )
  })
}

describe('a wiped terminal, end to end (issue 10, item 1)', () => {
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

  it("its state file deleted between two runs: the new alarm #1 is published under a new id, received, never shown the old one's stage", async () => {
    // The loop harness with no terminal of its own (the simulator runs as a process) and
    // the platform above in place of the operator console.
    loop = await startLoop({ broker, console: false, gatewayId: 'gw-e2e', terminals: 0 })
    const gateway = loop.gateway
    const state = join(loop.dir, 'terminal-nv.json')
    const common = ['--serial', loop.pty.b, '--id', 'SL-T-WIPE', '--state', state, '--timeout', '30']

    // First run: alarm #1, received, then resolved by the operator.
    const first = await simTerminal([...common, '--press', 'emergency', '--until', 'received'])
    expect(first.code, first.stderr).toBe(0)
    expect(platform.alerts.has('SL-T-WIPE:1')).toBe(true)
    await platform.send('gw-e2e', { type: 'resolved', alert: 'SL-T-WIPE:1', text: 'first case closed' })
    await gateway.waitForLog((l) => l.msg === 'alert resolved', 'resolved')
    expect(JSON.parse(readFileSync(state, 'utf8'))).toMatchObject({ boot: 1, lastEvent: 1, pending: [] })

    // The memory is lost.
    rmSync(state)
    expect(existsSync(state)).toBe(false)

    // Second run: boot 1 again, event 1 again, another kind.
    const second = await simTerminal([...common, '--press', 'fire', '--until', 'received'])
    expect(second.code, second.stderr).toBe(0)
    await waitUntil(() => platform.alerts.has('SL-T-WIPE@gw-e2e.1:1'), { timeoutMs: 5_000, what: 'the new alarm at the platform' })
    expect(platform.alerts.get('SL-T-WIPE@gw-e2e.1:1')!.event).toMatchObject({ kind: 'fire', number: 1, terminal: 'SL-T-WIPE' })
    expect(platform.alerts.get('SL-T-WIPE:1')!.event.kind).toBe('emergency')
    // What the second run showed for its event 1: its own stages, never the old "resolved".
    const shown = second.lines.filter((l) => l.event === 1 && l.earlier !== true).map((l) => l.stage)
    expect(shown).toContain('received')
    expect(second.lines.some((l) => l.stage === 'resolved')).toBe(false)
    // The platform is told, with the reason.
    await waitUntil(() => [...platform.items.values()].some((i) => i.kind === 'terminal-reset'), { timeoutMs: 10_000, what: 'terminal-reset at the platform' })
    const reset = [...platform.items.values()].find((i) => i.kind === 'terminal-reset')!
    expect(reset).toMatchObject({ class: 'trouble', code: 305, terminal: 'SL-T-WIPE', reset: { reason: 'last-event-backwards', epoch: 'gw-e2e.1', previousNumber: 1 } })
    expect(gateway.logs.some((l) => l.level === 'warn' && /started its event numbers again/.test(l.msg))).toBe(true)
  })
})
