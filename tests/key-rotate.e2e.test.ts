/**
 * Key rotation end to end [MQTT-5.13] (issue 12): `steppelink gateway` from dist/ with a
 * current and a next platform key, aedes in this process, and `steppelink console
 * key-rotate` as an operator runs it. After the rotation a command signed with the old
 * key is refused with CMD_UNKNOWN_KEY, and one signed with the new key is applied; the
 * gateway's status names the new key, and a restart keeps it.
 */

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import mqtt, { type MqttClient } from 'mqtt'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { consoleCommand } from '../cli/console-command.js'
import { writeKeyPair } from '../cli/keygen-command.js'
import { decodePayload, parsePrivateKey, signCommand } from '../protocol/mqtt.js'
import { startAedes, type AedesBroker } from './helpers/broker.js'
import { startGateway, type GatewayProcess } from './helpers/gateway-process.js'
import { openPtyPair, type PtyPair } from './helpers/pty.js'
import { requireTool, waitUntil } from './helpers/system.js'

requireTool('socat')

const GW = 'gw-rot'

describe('console key-rotate against a real gateway [MQTT-5.13]', () => {
  let broker: AedesBroker
  let pty: PtyPair
  let dir: string
  let platform: MqttClient | null = null
  let gateway: GatewayProcess | null = null

  beforeEach(async () => {
    broker = await startAedes()
    pty = await openPtyPair()
    dir = mkdtempSync(join(tmpdir(), 'steppelink-rotate-'))
  })

  afterEach(async () => {
    await platform?.endAsync(true)
    await gateway?.kill('SIGKILL')
    await broker.close()
    await pty.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it('after key-rotate, the old key is CMD_UNKNOWN_KEY and the new key is applied, also after a restart', async () => {
    const current = writeKeyPair(join(dir, 'keys'))
    const next = writeKeyPair(join(dir, 'keys-2027'))
    const config = join(dir, 'gateway.json')
    writeFileSync(config, JSON.stringify({ platformKeys: { current: current.publicPath, next: next.publicPath } }))
    const data = join(dir, 'data')
    const flags = ['--config', config, '--serial', pty.a, '--broker', broker.url, '--id', GW, '--data', data]

    platform = await mqtt.connectAsync(broker.url, { protocolVersion: 4, reconnectPeriod: 0 })
    const replies: Record<string, unknown>[] = []
    const statuses: Record<string, unknown>[] = []
    const births: number[] = []
    platform.on('message', (topic, payload) => {
      if (payload.length === 0) return
      const m = decodePayload(payload) as Record<string, unknown>
      if (topic.endsWith('/reply')) replies.push(m)
      if (topic.endsWith('/status')) statuses.push(m)
      if (topic.endsWith('/state') && m.type === 'birth') births.push(m.session as number)
    })
    await platform.subscribeAsync([`steppelink/v1/gw/${GW}/reply`, `steppelink/v1/gw/${GW}/status`, `steppelink/v1/gw/${GW}/state`], { qos: 1 })

    gateway = startGateway(flags)
    await gateway.waitForLog((l) => l.msg === 'uplink online', 'online')

    // The operator's command, as the README shows it: the next key by its public key file.
    const out: string[] = []
    const err: string[] = []
    const io = { stdout: (t: string) => void out.push(t), stderr: (t: string) => void err.push(t), stdin: null, env: {} }
    const code = await consoleCommand(['key-rotate', '--broker', broker.url, '--to', GW, '--next-key', next.publicPath, '--signing-key', current.privatePath], io)
    expect(err.join('')).toBe('')
    expect(code).toBe(0)
    expect(out.join('')).toContain(`key-rotate to ${next.keyId} sent to steppelink/v1/gw/${GW}/cmd`)
    const rotated = await gateway.waitForLog((l) => l.msg.startsWith('platform key rotated'), 'the rotation')
    expect(rotated).toMatchObject({ from: current.keyId, to: next.keyId })

    // A command signed with the old key, and one with the new key: a rebirth, which shows as a second birth of this session, then a status naming the key in force.
    let seq = Date.now() + 1_000
    const send = (id: string, keyFile: string) =>
      platform!.publishAsync(
        `steppelink/v1/gw/${GW}/cmd`,
        signCommand({ v: 1, id, type: 'rebirth', aud: `gw/${GW}`, seq: ++seq, exp: Date.now() + 600_000 }, parsePrivateKey(readFileSync(keyFile, 'utf8')), 'json'),
        { qos: 1 },
      )
    await waitUntil(() => births.length >= 1, { timeoutMs: 10_000, what: 'the birth' })
    const first = births[0]!
    await send('old-key', current.privatePath)
    await send('new-key', next.privatePath)
    await waitUntil(() => replies.length >= 1 && births.filter((b) => b === first).length >= 2, { timeoutMs: 10_000, what: 'the refusal and the rebirth' })
    await waitUntil(() => statuses.at(-1)?.platformKey === next.keyId, { timeoutMs: 10_000, what: 'the status after the rebirth, naming the new key' })
    expect(replies.map((r) => [r.command, r.code])).toEqual([['old-key', 'CMD_UNKNOWN_KEY']])
    expect(statuses.at(-1)).toMatchObject({ commandsAuthenticated: true })

    // A restart keeps the new key in force.
    await gateway.kill('SIGTERM')
    gateway = startGateway(flags)
    await gateway.waitForLog((l) => l.msg === 'uplink online', 'online again')
    await waitUntil(() => births.some((b) => b !== first), { timeoutMs: 10_000, what: 'the birth after the restart' })
    const session = births.at(-1)!
    // A rebirth signed with the new key is applied (a second birth of this session); one with the old key is refused.
    await send('old-key-2', current.privatePath)
    await send('new-key-2', next.privatePath)
    await waitUntil(() => replies.length >= 2 && births.filter((b) => b === session).length >= 2, { timeoutMs: 10_000, what: 'the refusal and the rebirth after the restart' })
    await waitUntil(() => statuses.at(-1)?.platformKey === next.keyId, { timeoutMs: 10_000, what: 'the status after the rebirth, naming the new key' })
    expect(replies.map((r) => [r.command, r.code])).toEqual([
      ['old-key', 'CMD_UNKNOWN_KEY'],
      ['old-key-2', 'CMD_UNKNOWN_KEY'],
    ])
  })
})
