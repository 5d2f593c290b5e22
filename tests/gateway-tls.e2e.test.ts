/**
 * The gateway process over mutual TLS with a private CA (issue 12): `steppelink gateway`
 * from dist/ with --mqtt-ca, --mqtt-cert and --mqtt-key, a real pseudo-terminal, and
 * mosquitto with a TLS listener that requires a client certificate, all made by openssl in
 * the test. Its client certificate expires in 10 days: the gateway warns at start, and its
 * retained status carries the expiry [MQTT-3.7]. A file that is not a key stops it at
 * start with a config error.
 */

import { mkdtempSync, rmSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import mqtt, { type MqttClient } from 'mqtt'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { decodePayload } from '../protocol/mqtt.js'
import { certInfo } from '../gateway/tls.js'
import { startMosquitto, type MosquittoBroker } from './helpers/broker.js'
import { startGateway, type GatewayProcess } from './helpers/gateway-process.js'
import { openPtyPair, type PtyPair } from './helpers/pty.js'
import { requireTool, waitUntil } from './helpers/system.js'
import { makeTestPki, type TestPki } from './helpers/tls-certs.js'

requireTool('socat')
requireTool('openssl')

describe('gateway end to end over mutual TLS (issue 12)', () => {
  let pki: TestPki
  let pty: PtyPair
  let dir: string
  let broker: MosquittoBroker
  let platform: MqttClient | null = null
  let gateway: GatewayProcess | null = null

  beforeEach(async () => {
    pki = makeTestPki({ clientDays: 10 })
    pty = await openPtyPair()
    broker = await startMosquitto({ tls: { cafile: pki.ca.cert, certfile: pki.server.cert, keyfile: pki.server.key, requireCertificate: true } })
    dir = mkdtempSync(join(tmpdir(), 'steppelink-tls-'))
  })

  afterEach(async () => {
    await platform?.endAsync(true)
    await gateway?.kill('SIGKILL')
    await broker.close()
    await pty.close()
    rmSync(dir, { recursive: true, force: true })
    pki.remove()
  })

  const flags = (key: string) => [
    '--serial',
    pty.a,
    '--broker',
    broker.url,
    '--id',
    'gw-tls',
    '--data',
    dir,
    '--household-listen',
    '127.0.0.1',
    '--household-port',
    '0',
    '--mqtt-ca',
    pki.ca.cert,
    '--mqtt-cert',
    pki.client.cert,
    '--mqtt-key',
    key,
  ]

  it('connects, warns that its certificate expires within 30 days, and says when in its status', async () => {
    const expires = certInfo(await readFile(pki.client.cert)).validTo
    platform = await mqtt.connectAsync(broker.url, {
      protocolVersion: 4,
      reconnectPeriod: 0,
      ca: await readFile(pki.ca.cert),
      cert: await readFile(pki.client.cert),
      key: await readFile(pki.client.key),
    })
    const statuses: Record<string, unknown>[] = []
    platform.on('message', (_, payload) => {
      if (payload.length > 0) statuses.push(decodePayload(payload) as Record<string, unknown>)
    })
    await platform.subscribeAsync('steppelink/v1/gw/gw-tls/status', { qos: 1 })

    gateway = startGateway(flags(pki.client.key))
    await gateway.waitForLog((l) => l.msg === 'uplink online', 'online over TLS')
    const warning = await gateway.waitForLog((l) => l.level === 'warn' && l.msg.startsWith('the client certificate'), 'the expiry warning')
    expect(warning.msg).toMatch(/^the client certificate \(mqtt\.tls\.cert, CN gw-test\) expires on .*, in 9 days \(by the gateway's own clock, not yet synchronised by the platform\): renew it/)
    await waitUntil(() => statuses.length > 0, { timeoutMs: 10_000, what: 'the gateway status' })
    expect(statuses[0]?.tls).toEqual({ clientCertExpires: expires, clientCertSubject: 'gw-test' })
  })

  it('stops at start with a config error when the key file is not a key', async () => {
    gateway = startGateway(flags(pki.client.cert))
    const code = await gateway.exited
    expect(code).not.toBe(0)
    expect(gateway.stderr).toContain(`config error: mqtt.tls.key: ${pki.client.cert} holds a certificate, not a private key`)
  })
})
