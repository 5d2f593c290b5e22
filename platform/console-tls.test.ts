/**
 * The console over mutual TLS with a private CA (issue 12): --ca, --cert, --key and
 * --servername, against mosquitto with a TLS listener that requires a client certificate,
 * with certificates made by openssl in the test (tests/helpers/tls-certs.ts). Options that
 * cannot work are refused before connecting, each saying what to do.
 */

import { readFileSync } from 'node:fs'
import mqtt from 'mqtt'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { waitFor } from '../device-sim/wait.js'
import { DEFAULT_TOPIC_PREFIX, encodePayload, gatewayTopics } from '../protocol/mqtt.js'
import { startMosquitto } from '../tests/helpers/broker.js'
import { alarm, cleanUp, cleanups, consoleFor, uniq } from '../tests/helpers/console-harness.js'
import { makeTestPki } from '../tests/helpers/tls-certs.js'
import { consoleCommand } from '../cli/console-command.js'
import { ConsoleError, startConsole } from './index.js'
import { tlsClientOptions } from './connection.js'

afterEach(cleanUp)
const pki = makeTestPki()
afterAll(() => pki.remove())

async function tlsBroker() {
  const broker = await startMosquitto({ tls: { cafile: pki.ca.cert, certfile: pki.server.cert, keyfile: pki.server.key, requireCertificate: true } })
  cleanups.push(() => broker.close())
  return broker
}

describe('console over mutual TLS (issue 12)', () => {
  it('connects with its CA, certificate and key, and receives an alarm from a gateway that connects the same way', async () => {
    const broker = await tlsBroker()
    const { c, of } = await consoleFor(broker.url, { ca: pki.ca.cert, cert: pki.client.cert, key: pki.client.key, servername: 'localhost' })
    expect(c.connected).toBe(true)
    const id = uniq('gw')
    const gw = await mqtt.connectAsync(broker.url, {
      protocolVersion: 4,
      reconnectPeriod: 0,
      ca: readFileSync(pki.ca.cert),
      cert: readFileSync(pki.client.cert),
      key: readFileSync(pki.client.key),
    })
    cleanups.push(() => gw.endAsync(true))
    await gw.publishAsync(gatewayTopics(DEFAULT_TOPIC_PREFIX, id).alert, encodePayload(alarm(id, 1), 'cbor'), { qos: 1 })
    await waitFor('the alarm', () => of('alert').length === 1)
  })

  it('says why the broker refused it: a client certificate from another CA', async () => {
    const broker = await tlsBroker()
    const { c, of } = await consoleFor(broker.url, { ca: pki.ca.cert, cert: pki.foreignClient.cert, key: pki.foreignClient.key, waitForBroker: false })
    const failed = await waitFor('the failure', () => of('connection').find((e) => e.kind === 'failed'))
    expect(failed.message).toContain('alert unknown ca')
    expect(c.connected).toBe(false)
  })

  it('refuses options that cannot work before connecting, saying what to do', () => {
    const bad = (broker: string, o: object) => {
      try {
        tlsClientOptions(broker, o)
      } catch (e) {
        expect(e).toBeInstanceOf(ConsoleError)
        return (e as ConsoleError).message
      }
      return 'no error'
    }
    expect(bad('mqtt://127.0.0.1:1883', { ca: pki.ca.cert })).toBe('--ca: TLS options need an mqtts:// or wss:// broker URL, got mqtt://127.0.0.1:1883')
    expect(bad('mqtts://b', { cert: pki.client.cert })).toBe('--cert is given but --key is not: a client certificate needs its private key')
    expect(bad('mqtts://b', { key: pki.client.key })).toBe('--key is given but --cert is not: give the client certificate too')
    expect(bad('mqtts://b', { ca: '/nope/ca.crt' })).toBe("--ca: cannot read /nope/ca.crt (ENOENT: no such file or directory, open '/nope/ca.crt')")
    expect(tlsClientOptions('mqtt://b', {})).toEqual({})
    expect(tlsClientOptions('mqtts://b', { ca: pki.ca.cert, servername: 'x' })).toEqual({ ca: readFileSync(pki.ca.cert), servername: 'x', rejectUnauthorized: true })
  })

  it('startConsole throws CONSOLE_BAD_OPTION for them', async () => {
    await expect(startConsole({ broker: 'mqtts://127.0.0.1:1', cert: pki.client.cert })).rejects.toMatchObject({ code: 'CONSOLE_BAD_OPTION' })
  })

  it('steppelink console takes --ca, --cert, --key and --servername, and names a wrong one as a usage error', async () => {
    const err: string[] = []
    const code = await consoleCommand(['--broker', 'mqtts://127.0.0.1:1', '--cert', pki.client.cert, '--json'], { stderr: (t) => err.push(t), stdout: () => {}, stdin: null, env: {} })
    expect(code).toBe(2)
    expect(err.join('')).toContain('--cert is given but --key is not: a client certificate needs its private key')
    const broadcastErr: string[] = []
    const sent = await consoleCommand(['broadcast', '--broker', 'mqtt://127.0.0.1:1', '--to', 'all', '--ca', pki.ca.cert, 'text'], {
      stderr: (t) => broadcastErr.push(t),
      stdout: () => {},
      env: {},
    })
    expect(sent).toBe(2)
    expect(broadcastErr.join('')).toContain('--ca: TLS options need an mqtts:// or wss:// broker URL, got mqtt://127.0.0.1:1')
  })
})
