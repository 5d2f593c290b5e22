/**
 * One mqtt.js client, the Uplink's unit of connection: the options of an attempt
 * ([UPLINK-1]: mqtt.js never reconnects on its own), the words for why a connection closed,
 * and ending a client within a bound. The Uplink makes one per attempt and drives it.
 */

import type { IClientOptions, MqttClient } from 'mqtt'
import type { Timers } from '../io/timers.js'
import { connackRefusal } from '../protocol/mqtt-acl.js'
import type { TlsMaterial } from './tls.js'

/** The client options of one connection attempt. */
export function clientOptions(o: {
  clientId: string
  username: string | undefined
  password: string | undefined
  keepaliveS: number
  connectTimeoutMs: number
  will: { topic: string; payload: Buffer }
  /** CA, client certificate and key, server name: for an mqtts:// (tls://, wss://) broker. */
  tls?: TlsMaterial | undefined
}): IClientOptions {
  return {
    // The broker's certificate is always verified (mqtt.js defaults to it; said here so that no spread can undo it).
    ...(o.tls !== undefined ? { ...o.tls, rejectUnauthorized: true } : {}),
    protocolVersion: 4,
    clientId: o.clientId,
    ...(o.username !== undefined ? { username: o.username } : {}),
    ...(o.password !== undefined ? { password: o.password } : {}),
    clean: false,
    keepalive: o.keepaliveS,
    reconnectPeriod: 0, // [UPLINK-1]
    connectTimeout: o.connectTimeoutMs,
    queueQoSZero: false,
    resubscribe: false,
    will: { topic: o.will.topic, payload: o.will.payload, qos: 1, retain: true },
  }
}

/** Why a connection closed or an attempt failed, for the log line; `err` the client's last error. */
export function describeClose(err: Error | null, keepaliveS: number, connectTimeoutMs: number, tls?: TlsMaterial): string {
  if (err === null) return 'closed by the peer'
  const handshake = describeTlsError(err, tls)
  if (handshake !== null) return handshake
  if (err.message === 'Keepalive timeout') {
    return `keepalive timeout: no PINGRESP within 1.5 × ${keepaliveS} s (silent link)`
  }
  if (err.message === 'connack timeout') return `no CONNACK within ${connectTimeoutMs} ms`
  const code = (err as { code?: unknown }).code
  // [MQTT-2.7] A refused CONNECT says which setting to check, not just mqtt.js's words.
  const refusal = connackRefusal(code, 'mqtt.username')
  if (refusal !== null) return refusal
  return typeof code === 'string' && !err.message.includes(code) ? `${err.message} (${code})` : err.message
}

/** The broker's certificate did not verify against mqtt.tls.ca (Node's codes from OpenSSL's X509_V_ERR_*). */
const UNTRUSTED = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_SIGNATURE_FAILURE',
])

/**
 * A TLS failure in plain words, with what to do and the code to search for; null if `err`
 * is not one. The broker's certificate is checked by Node (codes such as
 * UNABLE_TO_VERIFY_LEAF_SIGNATURE, ERR_TLS_CERT_ALTNAME_INVALID); ours by the broker, which
 * answers with a TLS alert that arrives as an OpenSSL error (ERR_SSL_..._ALERT_...). mqtt.js
 * passes both on as the client's 'error' before the close.
 */
export function describeTlsError(err: Error, tls?: TlsMaterial): string | null {
  const code = (err as { code?: unknown }).code
  if (typeof code !== 'string') return null
  const ca = tls?.ca !== undefined ? 'the CA in mqtt.tls.ca' : 'a CA this gateway trusts (mqtt.tls.ca is not set: only the public CAs are)'
  if (UNTRUSTED.has(code)) return `the broker's certificate is not signed by ${ca} (${code}); check mqtt.tls.ca, or that this is the right broker`
  if (code === 'CERT_HAS_EXPIRED') return `the broker's certificate has expired, or the gateway's clock is wrong (${code})`
  if (code === 'CERT_NOT_YET_VALID') {
    return `the broker's certificate is not valid yet: the gateway's clock is probably wrong (a board without a real-time clock needs NTP or fake-hwclock) (${code})`
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    const names = (err as { cert?: { subjectaltname?: string } }).cert?.subjectaltname ?? (err as { reason?: string }).reason ?? err.message
    const host = (err as { host?: string }).host
    return `certificate name mismatch: the broker's certificate is for ${names}${host ? `, not ${host}` : ''}; set mqtt.tls.servername to one of its names, or use that name in the broker URL (${code})`
  }
  // The alerts by their ending: OpenSSL names the protocol in the middle, and renamed it
  // (Node.js 20's OpenSSL 3.0 says ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED, Node.js 24's
  // 3.5 ERR_SSL_SSL/TLS_ALERT_CERTIFICATE_EXPIRED: the board's runtime, issue 14).
  if (code.startsWith('ERR_SSL_') && code.endsWith('_ALERT_CERTIFICATE_EXPIRED')) {
    return `the broker refused our client certificate as expired (mqtt.tls.cert): renew it and copy it over the file; the next attempt reads it (${code})`
  }
  if (code.startsWith('ERR_SSL_') && code.endsWith('_ALERT_UNKNOWN_CA')) {
    return `the broker refused our client certificate: it is not signed by a CA the broker trusts (mqtt.tls.cert from another CA?) (${code})`
  }
  if (code.startsWith('ERR_SSL_') && code.endsWith('_ALERT_CERTIFICATE_REQUIRED')) return `the broker requires a client certificate: set mqtt.tls.cert and mqtt.tls.key (${code})`
  if (/^ERR_SSL_.*ALERT_(BAD_CERTIFICATE|CERTIFICATE_|UNSUPPORTED_CERTIFICATE|ACCESS_DENIED|HANDSHAKE_FAILURE)/.test(code)) {
    return `the broker refused our client certificate (it may be expired or from another CA) (${code})`
  }
  if (code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_')) {
    const reason = (err as { reason?: string }).reason ?? err.message.split('\n')[0]
    return `TLS handshake failed: ${reason} (${code})`
  }
  return null
}

/**
 * Ends a client and waits for its connection to close, within boundMs. Returns at once if
 * it has closed already (`closed`).
 */
export async function endClient(client: MqttClient, force: boolean, closed: boolean, timers: Timers, boundMs: number): Promise<void> {
  if (closed) return
  const closing = new Promise<void>((resolve) => client.once('close', () => resolve()))
  // A graceful end waits for outstanding PUBACKs, sends DISCONNECT and half-closes; a
  // dead link never finishes that, and end(true) after end(false) is a no-op in mqtt.js,
  // so the bound destroys the stream itself.
  client.end(force)
  if (!(await within(closing, boundMs, timers))) {
    client.stream.destroy()
    await closing
  }
}

/** true if p settled successfully within ms. */
export function within(p: Promise<unknown>, ms: number, timers: Timers): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const timer = timers.setTimeout(() => resolve(false), ms)
    p.then(
      () => {
        timers.clearTimeout(timer)
        resolve(true)
      },
      () => {
        timers.clearTimeout(timer)
        resolve(false)
      },
    )
  })
}
