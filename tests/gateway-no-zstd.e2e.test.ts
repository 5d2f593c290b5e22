/**
 * A gateway on which zstd cannot be loaded, as on 32-bit ARM where @mongodb-js/zstd has no
 * binary (issue 10, item 4): the real process, started with a module hook that makes the
 * package throw on import (tests/helpers/no-zstd.mjs), a real pseudo-terminal, aedes, and
 * between gateway and broker a port that refuses connections until the link comes up (then
 * a plain TCP proxy). Before the fix, such a gateway never drained a backlog of two or
 * more items.
 */

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { Compile } from 'typebox/compile'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { runOnSerial, type RunningTerminal } from '../device-sim/serial-runner.js'
import { TerminalDevice, ramMemory } from '../device-sim/terminal.js'
import { GatewayStatus, ZSTD_MAGIC, decodePayload } from '../protocol/mqtt.js'
import { freePort, startAedes, type AedesBroker } from './helpers/broker.js'
import { startGateway, type GatewayProcess } from './helpers/gateway-process.js'
import { startPlatform, type Platform } from './helpers/platform.js'
import { startStallProxy, type StallProxy } from './helpers/stall-proxy.js'
import { openPtyPair, type PtyPair } from './helpers/pty.js'
import { requireTool, waitUntil } from './helpers/system.js'

requireTool('socat')

const NO_ZSTD = pathToFileURL(join(import.meta.dirname, 'helpers', 'no-zstd.mjs')).href
const PRESSES = 30

describe('gateway end to end without zstd: the backlog still drains [MQTT-4.2]', () => {
  let pty: PtyPair
  let dir: string
  let broker: AedesBroker
  let platform: Platform
  let link: StallProxy | null = null
  let gateway: GatewayProcess | null = null
  let terminal: RunningTerminal | null = null

  beforeEach(async () => {
    pty = await openPtyPair()
    broker = await startAedes()
    platform = await startPlatform(broker.url)
    dir = mkdtempSync(join(tmpdir(), 'steppelink-nozstd-'))
  })

  afterEach(async () => {
    await terminal?.stop()
    await gateway?.kill('SIGKILL')
    await link?.close()
    await platform.close()
    await broker.close()
    await pty.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it(`${PRESSES} call-back requests pressed while the broker is unreachable all reach the platform, in bare batches; the log and the status say why`, async () => {
    const batches: Buffer[] = []
    const statuses: Record<string, unknown>[] = []
    platform.client.on('message', (topic, payload) => {
      if (topic.endsWith('/batch')) batches.push(payload)
      if (topic.endsWith('/status') && payload.length > 0) statuses.push(decodePayload(payload) as Record<string, unknown>)
    })
    // The gateway's broker address: nothing listens there yet, every attempt is refused.
    const port = await freePort()
    gateway = startGateway(
      ['--serial', pty.a, '--broker', `mqtt://127.0.0.1:${port}`, '--id', 'gw-nozstd', '--data', dir, '--log-level', 'debug', '--household-listen', '127.0.0.1', '--household-port', '0'],
      {},
      ['--import', NO_ZSTD],
    )
    await gateway.waitForLog((l) => l.msg === 'gateway ready', 'ready')
    const loud = gateway.logs.filter((l) => l.level === 'error' && l.msg.startsWith('zstd cannot be loaded'))
    expect(loud).toHaveLength(1)
    expect(loud[0]!.msg).toContain('a full batch is about 10 times larger')
    expect(loud[0]!.compression).toEqual({ codec: 'none', error: expect.stringContaining("@mongodb-js/zstd: Cannot find module '@mongodb-js/zstd-linux-arm-gnueabihf'") })

    const device = new TerminalDevice({ address: 1, terminal: 'SL-T-NZ', memory: ramMemory(), now: Date.now() })
    terminal = runOnSerial(device, { path: pty.b })
    await waitUntil(() => device.link.status.state === 'open', { timeoutMs: 10_000, what: 'terminal session' })
    for (let i = 0; i < PRESSES; i++) device.press('callback')
    terminal.wake()
    // The gateway has stored every one of them when the terminal has none left to send.
    await waitUntil(() => device.pending.length === 0, { timeoutMs: 15_000, what: 'every press stored by the gateway' })
    expect(gateway.logs.some((l) => l.msg === 'uplink online')).toBe(false)

    // The link comes up: the gateway's next attempt reaches the broker.
    link = await startStallProxy({ port: broker.port }, { port })

    const ids = Array.from({ length: PRESSES }, (_, i) => `SL-T-NZ:${i + 1}`)
    await waitUntil(() => ids.every((id) => platform.items.has(id)), {
      timeoutMs: 30_000,
      what: () => `every call-back request at the platform; missing ${ids.filter((id) => !platform.items.has(id)).length}`,
    })
    expect(ids.map((id) => platform.items.get(id))).toEqual(ids.map(() => expect.objectContaining({ kind: 'callback', class: 'request', gateway: 'gw-nozstd' })))
    expect(batches.length).toBeGreaterThanOrEqual(1)
    for (const b of batches) {
      expect(ZSTD_MAGIC.every((x, i) => b[i] === x)).toBe(false)
      expect(b[0]! >= 0xa0 && b[0]! <= 0xbf).toBe(true) // the bare CBOR map
    }
    // The herder's terminal shows each request sent (the broker has it).
    await waitUntil(() => ids.every((_, i) => device.stages.get(i + 1) === 'sent'), { timeoutMs: 10_000, what: 'every request shown sent at the terminal' })
    await waitUntil(() => statuses.length > 0, { timeoutMs: 10_000, what: 'the gateway status' })
    expect(statuses.at(-1)!.compression).toEqual({ codec: 'none', error: expect.stringContaining('@mongodb-js/zstd: ') })
    // What the real gateway publishes fits the contract's schema of its status [MQTT-3.7].
    const checkStatus = Compile(GatewayStatus)
    for (const s of statuses) expect(checkStatus.Check(s) ? null : [...checkStatus.Errors(s)][0]).toBeNull()
    expect(gateway.logs.filter((l) => l.level === 'warn' && l.msg.startsWith('backlog publication failed'))).toEqual([])
    console.log(`without zstd: ${PRESSES} call-back requests in ${batches.length} bare batch(es) of ${batches.map((b) => b.length).join(', ')} bytes`)
  })
})
