/**
 * The uplink over TLS with a private CA against the real mosquitto (issue 12), on the
 * harness of uplink.suite.ts: certificates made by openssl in the test
 * (tests/helpers/tls-certs.ts), a TLS listener on 127.0.0.1 with `require_certificate
 * true`. Mutual TLS connects and publishes the birth; a wrong CA, an expired or foreign
 * client certificate and a name that is not on the broker's certificate are refused, each
 * in plain words in the uplink's log line; a certificate renewed on disk is used at the
 * next attempt without a restart.
 */

import { copyFileSync, readFileSync } from 'node:fs'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { waitFor } from '../device-sim/wait.js'
import { startMosquitto, type MosquittoBroker } from '../tests/helpers/broker.js'
import { ManualTimers } from '../tests/helpers/manual-timers.js'
import { makeTestPki, type CertFiles } from '../tests/helpers/tls-certs.js'
import { TlsFiles, type TlsSettings } from './tls.js'
import { birthPayload, cleanUp, cleanups, makeGateway, platformClient } from './uplink.suite.js'

afterEach(cleanUp)

const pki = makeTestPki()
afterAll(() => pki.remove())

/** mosquitto with mutual TLS: its certificate from `server`, clients' certificates must be signed by our CA. */
async function tlsBroker(server: CertFiles = pki.server): Promise<MosquittoBroker> {
  const broker = await startMosquitto({ tls: { cafile: pki.ca.cert, certfile: server.cert, keyfile: server.key, requireCertificate: true } })
  cleanups.push(() => broker.close())
  return broker
}

/** The uplink of a gateway with these TLS settings, its retry loop held (ManualTimers): one attempt. */
function tlsGateway(url: string, settings: TlsSettings) {
  const files = new TlsFiles(settings)
  return makeGateway([url], { tls: () => files.load(), timers: new ManualTimers() })
}

/** The reason the uplink gave for its first failed attempt. */
async function refusal(url: string, settings: TlsSettings): Promise<string> {
  const gw = tlsGateway(url, settings)
  gw.uplink.start()
  const state = await waitFor('the attempt to fail', () => gw.states.find((s) => !s.online))
  expect(gw.uplink.online).toBe(false)
  expect(gw.births()).toBe(0)
  return state.reason ?? ''
}

const client = { ca: pki.ca.cert, cert: pki.client.cert, key: pki.client.key }

describe('Uplink over mutual TLS against mosquitto (issue 12)', () => {
  it('[UPLINK-9] connects with our CA and client certificate, and publishes its birth', async () => {
    const broker = await tlsBroker()
    expect(broker.url).toMatch(/^mqtts:\/\/127\.0\.0\.1:\d+$/)
    const gw = tlsGateway(broker.url, client)
    gw.uplink.start()
    await waitFor('online', () => gw.uplink.online)
    expect(gw.states[0]).toEqual({ online: true, broker: broker.url, reason: `connected to ${broker.url} (new session), birth sent` })
    // The platform, with a certificate of its own from the same CA, sees the retained birth.
    const platform = await platformClient(broker.url, [gw.topics.state], {
      ca: readFileSync(pki.ca.cert),
      cert: readFileSync(pki.client.cert),
      key: readFileSync(pki.client.key),
    })
    const birth = await waitFor('the retained birth', () => platform.messages[0])
    expect(birth).toEqual({ topic: gw.topics.state, payload: birthPayload(gw.id, 1).toString(), retain: true })
  })

  it('refuses a broker whose certificate is not signed by mqtt.tls.ca, in plain words', async () => {
    const broker = await tlsBroker()
    const reason = await refusal(broker.url, { ...client, ca: pki.foreignCa.cert })
    expect(reason).toMatch(
      /^connect to mqtts:\/\/127\.0\.0\.1:\d+ failed: the broker's certificate is not signed by the CA in mqtt\.tls\.ca \(SELF_SIGNED_CERT_IN_CHAIN\); check mqtt\.tls\.ca, or that this is the right broker; attempt 2 in \d+ ms/,
    )
  })

  it('refuses a broker certificate from a foreign CA (UNABLE_TO_VERIFY_LEAF_SIGNATURE)', async () => {
    const broker = await tlsBroker(pki.foreignServer)
    expect(await refusal(broker.url, client)).toContain("failed: the broker's certificate is not signed by the CA in mqtt.tls.ca (UNABLE_TO_VERIFY_LEAF_SIGNATURE)")
  })

  it('is refused with an expired client certificate, and says so', async () => {
    const broker = await tlsBroker()
    // The alert's code names the protocol as the runtime's OpenSSL does: SSLV3 on Node.js 20, SSL/TLS on 24.
    expect(await refusal(broker.url, { ...client, cert: pki.expiredClient.cert, key: pki.expiredClient.key })).toMatch(
      /failed: the broker refused our client certificate as expired \(mqtt\.tls\.cert\): renew it and copy it over the file; the next attempt reads it \(ERR_SSL_(SSLV3|SSL\/TLS)_ALERT_CERTIFICATE_EXPIRED\)/,
    )
  })

  it('is refused with a client certificate from a foreign CA, and says so', async () => {
    const broker = await tlsBroker()
    expect(await refusal(broker.url, { ...client, cert: pki.foreignClient.cert, key: pki.foreignClient.key })).toMatch(
      /failed: the broker refused our client certificate: it is not signed by a CA the broker trusts \(mqtt\.tls\.cert from another CA\?\) \(ERR_SSL_(TLSV1|SSL\/TLS)_ALERT_UNKNOWN_CA\)/,
    )
  })

  it('is refused without a client certificate where the broker requires one', async () => {
    const broker = await tlsBroker()
    expect(await refusal(broker.url, { ca: pki.ca.cert })).toMatch(
      /failed: the broker requires a client certificate: set mqtt\.tls\.cert and mqtt\.tls\.key \(ERR_SSL_(TLSV13|SSL\/TLS)_ALERT_CERTIFICATE_REQUIRED\)/,
    )
  })

  it('refuses a broker whose certificate is not for mqtt.tls.servername, naming the names it is for', async () => {
    const broker = await tlsBroker()
    expect(await refusal(broker.url, { ...client, servername: 'broker.example' })).toContain(
      "failed: certificate name mismatch: the broker's certificate is for DNS:localhost, IP Address:127.0.0.1, not broker.example; set mqtt.tls.servername to one of its names, or use that name in the broker URL (ERR_TLS_CERT_ALTNAME_INVALID)",
    )
  })

  it('accepts a servername that is on the certificate', async () => {
    const broker = await tlsBroker()
    const gw = tlsGateway(broker.url, { ...client, servername: 'localhost' })
    gw.uplink.start()
    await waitFor('online', () => gw.uplink.online)
  })

  it('[UPLINK-9] uses a client certificate renewed on disk at the next attempt, without a restart', async () => {
    const broker = await tlsBroker()
    const cert = pki.write('renewed.crt', readFileSync(pki.expiredClient.cert, 'utf8'))
    const key = pki.write('renewed.key', readFileSync(pki.expiredClient.key, 'utf8'))
    const timers = new ManualTimers()
    const changes: string[] = []
    const files = new TlsFiles({ ca: pki.ca.cert, cert, key }, { onChange: (now, before) => changes.push(`${before.subject} -> ${now.subject}`) })
    const gw = makeGateway([broker.url], { tls: () => files.load(), timers })
    gw.uplink.start()
    await waitFor('the refusal', () => gw.states.some((s) => !s.online))
    expect(gw.states[0]?.reason).toContain('as expired')
    // The operator copies the renewed pair over the files; the retry reads them.
    copyFileSync(pki.client.cert, cert)
    copyFileSync(pki.client.key, key)
    timers.fire(() => true)
    await waitFor('online', () => gw.uplink.online)
    expect(changes).toEqual(['gw-expired -> gw-test'])
  })
})
