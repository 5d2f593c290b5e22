/**
 * The words for why a TLS connection failed (describeTlsError), for the codes the tests
 * against mosquitto cannot easily make (uplink-tls.test.ts makes the others), and the TLS
 * options given to mqtt.js (issue 12).
 */

import { describe, expect, it } from 'vitest'
import { clientOptions, describeClose, describeTlsError } from './uplink-client.js'

const tlsError = (code: string, message = code, extra: object = {}) => Object.assign(new Error(message), { code, ...extra })

describe('describeTlsError', () => {
  it('blames the clock for a broker certificate not valid yet: a board without a real-time clock', () => {
    expect(describeTlsError(tlsError('CERT_NOT_YET_VALID'), { ca: Buffer.from('x') })).toBe(
      "the broker's certificate is not valid yet: the gateway's clock is probably wrong (a board without a real-time clock needs NTP or fake-hwclock) (CERT_NOT_YET_VALID)",
    )
  })

  it('says that only the public CAs are trusted when mqtt.tls.ca is not set', () => {
    expect(describeTlsError(tlsError('UNABLE_TO_GET_ISSUER_CERT_LOCALLY'))).toBe(
      "the broker's certificate is not signed by a CA this gateway trusts (mqtt.tls.ca is not set: only the public CAs are) (UNABLE_TO_GET_ISSUER_CERT_LOCALLY); check mqtt.tls.ca, or that this is the right broker",
    )
  })

  it('names another refusal of our certificate by its alert, and any other TLS failure by its reason', () => {
    expect(describeTlsError(tlsError('ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE'))).toBe(
      'the broker refused our client certificate (it may be expired or from another CA) (ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE)',
    )
    expect(describeTlsError(tlsError('ERR_SSL_WRONG_VERSION_NUMBER', 'long\nopenssl text', { reason: 'wrong version number' }))).toBe(
      'TLS handshake failed: wrong version number (ERR_SSL_WRONG_VERSION_NUMBER)',
    )
  })

  it("reads the broker's alerts whichever OpenSSL names them: Node.js 20's (SSLV3, TLSV1) and Node.js 24's (SSL/TLS), the board's runtime", () => {
    for (const code of ['ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED', 'ERR_SSL_SSL/TLS_ALERT_CERTIFICATE_EXPIRED']) {
      expect(describeTlsError(tlsError(code))).toBe(`the broker refused our client certificate as expired (mqtt.tls.cert): renew it and copy it over the file; the next attempt reads it (${code})`)
    }
    for (const code of ['ERR_SSL_TLSV1_ALERT_UNKNOWN_CA', 'ERR_SSL_SSL/TLS_ALERT_UNKNOWN_CA']) {
      expect(describeTlsError(tlsError(code))).toMatch(/^the broker refused our client certificate: it is not signed by a CA the broker trusts/)
    }
    for (const code of ['ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', 'ERR_SSL_SSL/TLS_ALERT_CERTIFICATE_REQUIRED']) {
      expect(describeTlsError(tlsError(code))).toMatch(/^the broker requires a client certificate: set mqtt.tls.cert and mqtt.tls.key/)
    }
  })

  it('leaves errors that are not TLS to describeClose', () => {
    expect(describeTlsError(tlsError('ECONNREFUSED'))).toBeNull()
    expect(describeClose(tlsError('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:1'), 60, 30_000, {})).toBe('connect ECONNREFUSED 127.0.0.1:1')
  })
})

describe('clientOptions with TLS', () => {
  const base = { clientId: 'c', username: undefined, password: undefined, keepaliveS: 60, connectTimeoutMs: 1000, will: { topic: 't', payload: Buffer.alloc(0) } }
  it('passes the CA, certificate, key and server name, and always verifies the broker', () => {
    const tls = { ca: Buffer.from('ca'), cert: Buffer.from('cert'), key: Buffer.from('key'), servername: 'broker.internal' }
    expect(clientOptions({ ...base, tls })).toMatchObject({ ...tls, rejectUnauthorized: true })
  })
  it('adds nothing without TLS', () => {
    expect(Object.keys(clientOptions(base))).not.toContain('rejectUnauthorized')
  })
})
