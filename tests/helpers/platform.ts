/**
 * A platform written against protocol/MQTT.md: subscribes to every gateway's uplink,
 * decodes alerts, events and batches, deduplicates by id, sends a receipt for every alarm,
 * and lets a test act as the operator.
 */

import mqtt, { type MqttClient } from 'mqtt'
import { decodeBatch, decodePayload, type UplinkEvent } from '../../protocol/mqtt.js'

export interface Platform {
  client: MqttClient
  /** Every alarm id seen, with how many times it reached the wire. */
  alerts: Map<string, { event: UplinkEvent; copies: number }>
  /** Other uplink items by id (events, batch items, statuses). */
  items: Map<string, Record<string, unknown>>
  states: Record<string, unknown>[]
  replies: Record<string, unknown>[]
  send(gateway: string, command: Record<string, unknown>): Promise<void>
  close(): Promise<void>
}

let commandIds = 0

export async function startPlatform(url: string, options: { receipts?: boolean; prefix?: string } = {}): Promise<Platform> {
  const prefix = options.prefix ?? 'steppelink/v1'
  const client = mqtt.connect(url, { clientId: `platform-${process.pid}-${Math.random().toString(16).slice(2)}`, clean: true, reconnectPeriod: 200 })
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve())
    client.once('error', reject)
  })
  const p: Platform = {
    client,
    alerts: new Map(),
    items: new Map(),
    states: [],
    replies: [],
    send: async (gateway, command) => {
      await client.publishAsync(`${prefix}/gw/${gateway}/cmd`, JSON.stringify({ v: 1, id: `cmd-${++commandIds}`, ...command }), { qos: 1 })
    },
    close: async () => {
      await client.endAsync()
    },
  }
  client.on('message', (topic, payload) => {
    void (async () => {
      const kind = topic.split('/').pop()
      const gateway = topic.split('/')[3]!
      if (kind === 'alert') {
        const e = decodePayload(payload) as UplinkEvent
        const seen = p.alerts.get(e.id)
        p.alerts.set(e.id, { event: e, copies: (seen?.copies ?? 0) + 1 })
        // [MQTT-4.1] A receipt for every copy: the first may have been lost.
        if (options.receipts !== false) await p.send(gateway, { type: 'receipt', ids: [e.id] })
      } else if (kind === 'event') {
        const e = decodePayload(payload) as Record<string, unknown>
        p.items.set(String(e.id), e)
      } else if (kind === 'batch') {
        const b = (await decodeBatch(payload)) as { items: Record<string, unknown>[] }
        for (const e of b.items) p.items.set(String(e.id), e)
      } else if (kind === 'state') {
        p.states.push(decodePayload(payload) as Record<string, unknown>)
      } else if (kind === 'reply') {
        p.replies.push(decodePayload(payload) as Record<string, unknown>)
      }
    })().catch(() => {})
  })
  await client.subscribeAsync(`${prefix}/gw/+/+`, { qos: 1 })
  return p
}
