/**
 * The harness the uplink's broker tests share (uplink-session.test.ts,
 * uplink-failures.test.ts): real brokers on 127.0.0.1, aedes in process (hookable) and
 * mosquitto as a child process, a stall proxy between them and the gateway for the link
 * failures, the Uplink wired as the gateway wires it with a spy on its mqtt.js clients,
 * and a platform-side client. Rule IDs ([UPLINK-n]) refer to the header of uplink.ts. Not a
 * test file itself; tsconfig.json leaves *.suite.ts out of the build.
 *
 * Time: mqtt.js keepalive and CONNACK timers and the brokers' timers are real. Tests that
 * need to hold the uplink's own retry loop inject ManualTimers; no test sleeps for a fixed
 * time: each waits for a condition with a deadline.
 *
 * What a test starts goes on `cleanups`; every file that uses the harness runs cleanUp in
 * an afterEach.
 */

import mqtt, { type IClientOptions, type MqttClient, type Packet } from 'mqtt'
import { DEFAULT_TOPIC_PREFIX, encodePayload, gatewayTopics } from '../protocol/mqtt.js'
import { startAedes } from '../tests/helpers/broker.js'
import { startStallProxy } from '../tests/helpers/stall-proxy.js'
import { Uplink, type Timers, type UplinkOptions, type UplinkState } from './uplink.js'

/** What a test started (brokers, proxies, clients, uplinks), to stop when it ends. */
export const cleanups: (() => unknown)[] = []

/** Stops what the test started, the last first. */
export async function cleanUp(): Promise<void> {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
}

/** How a promise stands once pending I/O callbacks had one turn: "at once" means settled by then. */
export async function settledAtOnce(p: Promise<unknown>): Promise<unknown> {
  let state: unknown = 'pending'
  p.then(
    () => (state = 'resolved'),
    (e: unknown) => (state = e),
  )
  await new Promise((resolve) => setImmediate(resolve))
  return state
}

/** Real timers that remember which delays ran out. */
export function recordingTimers(): Timers & { fired: number[] } {
  const fired: number[] = []
  return {
    fired,
    setTimeout: (fn, ms) =>
      setTimeout(() => {
        fired.push(ms)
        fn()
      }, ms),
    clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
  }
}

function describePacket(p: Packet): string {
  switch (p.cmd) {
    case 'publish':
      return `publish ${p.topic} q${p.qos}${p.retain ? ' r' : ''}`
    case 'subscribe':
      return `subscribe ${p.subscriptions.map((s) => `${s.topic} q${s.qos}`).join(', ')}`
    default:
      return p.cmd
  }
}

let seq = 0
export const newGatewayId = () => `t${process.pid}-${++seq}`

export const birthPayload = (gateway: string, session: number) => encodePayload({ v: 1, type: 'birth', gateway, online: true, session }, 'json')
export const deathPayload = (gateway: string) => encodePayload({ v: 1, type: 'death', gateway, online: false, session: 0 }, 'json')

export interface Gateway {
  id: string
  clientId: string
  topics: ReturnType<typeof gatewayTopics>
  uplink: Uplink
  states: UplinkState[]
  commands: { topic: string; payload: string }[]
  /** The topics of the commands the broker delivered as retained messages, in order. */
  retained: string[]
  /** Packets as the gateway's mqtt.js client sent and received them, and what the uplink reported. */
  log: string[]
  births: () => number
}

/** A gateway's uplink wired as the gateway will wire it, with a spy on its mqtt.js clients. */
export function makeGateway(brokers: string[], extra: Partial<UplinkOptions> = {}, id = newGatewayId()): Gateway {
  const topics = gatewayTopics(DEFAULT_TOPIC_PREFIX, id)
  const log: string[] = []
  const states: UplinkState[] = []
  const commands: { topic: string; payload: string }[] = []
  const retained: string[] = []
  let session = 0
  const connect = ((url: string, opts: IClientOptions) => {
    // manualConnect, so that the CONNECT itself is seen by the spy.
    const client = mqtt.connect(url, { ...opts, manualConnect: true })
    client.on('packetsend', (p) => log.push(`send ${describePacket(p)}`))
    client.on('packetreceive', (p) => log.push(`recv ${describePacket(p)}`))
    client.connect()
    return client
  }) as typeof mqtt.connect
  const uplink = new Uplink({
    brokers,
    clientId: `steppelink-gw-${id}`,
    subscriptions: [topics.command, topics.allCommand],
    will: { topic: topics.state, payload: deathPayload(id) },
    birth: () => {
      session += 1
      return { topic: topics.state, payload: birthPayload(id, session) }
    },
    connect,
    onCommand: (topic, payload, isRetained) => {
      commands.push({ topic, payload: payload.toString() })
      if (isRetained) retained.push(topic)
      log.push(`command ${topic}`)
    },
    onState: (s) => {
      states.push(s)
      log.push(s.online ? 'online' : 'offline')
    },
    ...extra,
  })
  cleanups.push(() => uplink.stop())
  return { id, clientId: `steppelink-gw-${id}`, topics, uplink, states, commands, retained, log, births: () => session }
}

export interface Observer {
  client: MqttClient
  messages: { topic: string; payload: string; retain: boolean }[]
}

/** A platform-side client: subscribes (QoS 1) and can publish. `extra`: more options (TLS files). */
export async function platformClient(url: string, topics: string[] = [], extra: IClientOptions = {}): Promise<Observer> {
  const client = await mqtt.connectAsync(url, { protocolVersion: 4, clean: true, reconnectPeriod: 0, clientId: `platform-${process.pid}-${++seq}`, ...extra })
  cleanups.push(() => client.endAsync(true))
  const messages: Observer['messages'] = []
  client.on('message', (topic, payload, packet) => messages.push({ topic, payload: payload.toString(), retain: packet.retain }))
  if (topics.length > 0) await client.subscribeAsync(topics, { qos: 1 })
  return { client, messages }
}

export async function aedes(opts?: Parameters<typeof startAedes>[0]) {
  const broker = await startAedes(opts)
  cleanups.push(() => broker.close())
  return broker
}

export async function proxyTo(port: number) {
  const proxy = await startStallProxy({ port })
  cleanups.push(() => proxy.close())
  return proxy
}

export const isOnline = (g: Gateway) => g.uplink.online && g.states.at(-1)?.online === true
