/**
 * One mqtt.js client, the Uplink's unit of connection: the options of an attempt
 * ([UPLINK-1]: mqtt.js never reconnects on its own), the words for why a connection closed,
 * and ending a client within a bound. The Uplink makes one per attempt and drives it.
 */

import type { IClientOptions, MqttClient } from 'mqtt'
import type { Timers } from '../io/timers.js'
import { connackRefusal } from '../protocol/mqtt-acl.js'

/** The client options of one connection attempt. */
export function clientOptions(o: {
  clientId: string
  username: string | undefined
  password: string | undefined
  keepaliveS: number
  connectTimeoutMs: number
  will: { topic: string; payload: Buffer }
}): IClientOptions {
  return {
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
export function describeClose(err: Error | null, keepaliveS: number, connectTimeoutMs: number): string {
  if (err === null) return 'closed by the peer'
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
