/**
 * The uplink's acknowledged requests: a QoS 1 PUBLISH waiting for its PUBACK, a SUBSCRIBE
 * waiting for its SUBACK. Each is tied to the mqtt.js client it went out on, so that the
 * close of that client rejects it with UPLINK_CLOSED [UPLINK-3]: mqtt.js itself would keep
 * it in the client's store and never call back. The Uplink owns one of these and says when
 * a client closed (failAll).
 */

import type { MqttClient } from 'mqtt'

export type UplinkErrorCode = 'UPLINK_OFFLINE' | 'UPLINK_CLOSED'

/** A publish that did not get its PUBACK; the outbox keeps the item and retries later. */
export class UplinkError extends Error {
  readonly code: UplinkErrorCode
  constructor(code: UplinkErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'UplinkError'
    this.code = code
  }
}

interface Inflight {
  client: MqttClient
  fail: (e: UplinkError) => void
}

export class UplinkRequests {
  readonly #inflight = new Set<Inflight>()

  /** QoS 1; resolves on PUBACK. */
  publish(client: MqttClient, topic: string, payload: Buffer, retain: boolean): Promise<void> {
    return this.#track(client, `publish to ${topic}`, (done) => {
      client.publish(topic, payload, { qos: 1, retain }, (err) => done(err ?? null, undefined))
    })
  }

  /** Resolves with the topics the broker refused (SUBACK 0x80). */
  subscribe(client: MqttClient, topics: string[]): Promise<string[]> {
    if (topics.length === 0) return Promise.resolve([])
    return this.#track<string[]>(client, 'subscribe', (done) => {
      client.subscribe(topics, { qos: 1 }, (err, granted) => {
        // mqtt.js reports a refused topic as an error carrying the SUBACK; that is not a
        // reason to stay offline: alarms must still go up.
        const suback = err !== null && 'packet' in err ? (err as { packet?: { granted?: unknown } }).packet : undefined
        if (err !== null && !Array.isArray(suback?.granted)) return done(err, [])
        const codes: unknown[] = Array.isArray(suback?.granted) ? suback.granted : (granted ?? []).map((g) => g.qos)
        done(
          null,
          topics.filter((_, i) => typeof codes[i] === 'number' && ((codes[i] as number) & 0x80) !== 0),
        )
      })
    })
  }

  /**
   * Rejects the requests of one client (or of all when null) with UPLINK_CLOSED, `cause`
   * the error the connection last reported, if any.
   */
  failAll(client: MqttClient | null, message: string, cause: Error | null): void {
    for (const entry of this.#inflight) {
      if (client !== null && entry.client !== client) continue
      this.#inflight.delete(entry)
      entry.fail(new UplinkError('UPLINK_CLOSED', message, { cause: cause ?? undefined }))
    }
  }

  /** Runs one acknowledged request; the close of its client rejects it with UPLINK_CLOSED. */
  #track<T>(client: MqttClient, what: string, start: (done: (err: Error | null, value: T) => void) => void): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const entry: Inflight = { client, fail: reject }
      this.#inflight.add(entry)
      start((err, value) => {
        if (!this.#inflight.delete(entry)) return
        if (err) reject(new UplinkError('UPLINK_CLOSED', `${what}: ${err.message}`, { cause: err }))
        else resolve(value)
      })
    })
  }
}
