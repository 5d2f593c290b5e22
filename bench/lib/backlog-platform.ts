/**
 * The platform side of the outage and backlog benchmarks: a subscriber on the platform's
 * broker that decodes what arrives (alerts, single events, zstd batches; CBOR or JSON, as
 * [MQTT-4.3] says), records when each item id first arrived, and sends a receipt for every
 * alert copy ([MQTT-4.10]) when asked. And a publisher for the baselines: one MQTT message
 * per item, QoS 1, in order.
 */

import { randomUUID } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import mqtt, { type MqttClient } from 'mqtt'
import { decodeBatch, decodePayload, DEFAULT_TOPIC_PREFIX } from '../../protocol/mqtt.js'
import { startMosquitto, type MosquittoBroker } from '../../device-sim/mosquitto.js'
import { waitUntil } from '../../device-sim/wait.js'

/** Where the platform reads from: the uplink topics of [MQTT-4.8] that carry items. */
const ITEM_TOPICS = ['alert', 'event', 'batch'] as const

/**
 * The platform's broker: mosquitto with persistence ([MQTT-2.6]) and a per-client queue
 * large enough for a burst (the default of 1000 drops QoS 1 messages to a subscriber that
 * falls behind, which a fast drain on a perfect link makes happen).
 */
export function startPlatformBroker(): Promise<MosquittoBroker> {
  return startMosquitto({ persistence: true, conf: ['max_queued_messages 1000000'] })
}

export interface Arrival {
  id: string
  /** performance.now() when the message carrying it arrived. */
  at: number
  topic: string
  /** Bytes of the MQTT payload that carried it (a whole batch for a batched item). */
  payloadBytes: number
}

export interface Platform {
  /** First arrival of each item id since the last reset(), in arrival order. */
  readonly first: Map<string, Arrival>
  /** The first copy of each item, decoded. */
  readonly items: Map<string, Record<string, unknown>>
  /** MQTT messages received on the item topics since the last reset(). */
  readonly messages: number
  /** Forget what arrived (between samples). */
  reset(): void
  /** Resolves once every id has arrived; rejects after timeoutMs with what is missing. */
  waitFor(ids: readonly string[], timeoutMs: number): Promise<void>
  close(): Promise<void>
}

export async function startPlatform(opts: { url: string; receipts: boolean; clientId: string }): Promise<Platform> {
  const client = await mqtt.connectAsync(opts.url, { clientId: opts.clientId, clean: true, protocolVersion: 4, reconnectPeriod: 0 })
  const first = new Map<string, Arrival>()
  const items = new Map<string, Record<string, unknown>>()
  let messages = 0
  const record = (item: unknown, arrival: Omit<Arrival, 'id'>) => {
    if (item === null || typeof item !== 'object') return
    const rec = item as Record<string, unknown>
    if (typeof rec.id !== 'string' || first.has(rec.id)) return
    first.set(rec.id, { id: rec.id, ...arrival })
    items.set(rec.id, rec)
  }
  client.on('message', (topic, payload) => {
    const at = performance.now()
    messages++
    const what = topic.slice(topic.lastIndexOf('/') + 1)
    const arrival = { at, topic, payloadBytes: payload.length }
    if (what === 'batch') {
      decodeBatch(payload).then(
        (b) => {
          for (const item of (b as { items: unknown[] }).items) record(item, arrival)
        },
        () => {},
      )
      return
    }
    let item: unknown
    try {
      item = decodePayload(payload)
    } catch {
      return // [MQTT-4.9]: an undecodable payload is skipped
    }
    record(item, arrival)
    if (what === 'alert' && opts.receipts && typeof (item as { id?: unknown }).id === 'string') {
      const receipt = { v: 1, id: randomUUID(), type: 'receipt', ids: [(item as { id: string }).id] }
      client.publish(topic.replace(/alert$/, 'cmd'), JSON.stringify(receipt), { qos: 1 })
    }
  })
  await client.subscribeAsync(
    ITEM_TOPICS.map((t) => `${DEFAULT_TOPIC_PREFIX}/gw/+/${t}`),
    { qos: 1 },
  )
  return {
    first,
    items,
    get messages() {
      return messages
    },
    reset: () => {
      first.clear()
      items.clear()
      messages = 0
    },
    waitFor: (ids, timeoutMs) =>
      waitUntil(() => ids.every((id) => first.has(id)), {
        timeoutMs,
        intervalMs: 2,
        what: () => {
          const missing = ids.filter((id) => !first.has(id))
          return `${missing.length} of ${ids.length} items at the platform (first missing: ${missing.slice(0, 3).join(', ')})`
        },
      }),
    close: () => client.endAsync(true),
  }
}

export interface Message {
  topic: string
  payload: Buffer
}

/** Connects a plain MQTT 3.1.1 client (what a naive system or an administrator's script uses). */
export function connectClient(url: string, clientId: string): Promise<MqttClient> {
  return mqtt.connectAsync(url, { clientId, clean: true, protocolVersion: 4, reconnectPeriod: 0, keepalive: 60 })
}

/** Publishes every message at QoS 1, in order; resolves once the broker has acknowledged all. */
export async function publishAll(client: MqttClient, messages: readonly Message[]): Promise<void> {
  await Promise.all(messages.map((m) => client.publishAsync(m.topic, m.payload, { qos: 1 })))
}

/** Bytes of an MQTT 3.1.1 PUBLISH at QoS 1 on the wire: fixed header, topic, packet id, payload. */
export function publishPacketBytes(topic: string, payloadBytes: number): number {
  const remaining = 2 + Buffer.byteLength(topic) + 2 + payloadBytes
  const lengthBytes = remaining < 128 ? 1 : remaining < 16_384 ? 2 : remaining < 2_097_152 ? 3 : 4
  return 1 + lengthBytes + remaining
}
