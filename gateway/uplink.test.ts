/**
 * The uplink against real brokers on 127.0.0.1: aedes in process (hookable), mosquitto as
 * a child process, and a stall proxy between them and the gateway for the link failures.
 * Rule IDs ([UPLINK-n]) refer to the header of uplink.ts.
 *
 * Time: mqtt.js keepalive and CONNACK timers and the brokers' timers are real. Tests that
 * need to hold the uplink's own retry loop inject ManualTimers; no test sleeps for a fixed
 * time: each waits for a condition with a deadline.
 */

import mqtt, { type IClientOptions, type MqttClient, type Packet } from 'mqtt'
import { afterEach, describe, expect, it } from 'vitest'
import { DEFAULT_TOPIC_PREFIX, encodePayload, gatewayTopics } from '../protocol/mqtt.js'
import { freePort, startAedes, startMosquitto } from '../tests/helpers/broker.js'
import { ManualTimers } from '../tests/helpers/manual-timers.js'
import { waitFor } from '../device-sim/wait.js'
import { startStallProxy } from '../tests/helpers/stall-proxy.js'
import { Uplink, UplinkError, backoffDelay, type Timers, type UplinkOptions, type UplinkState } from './uplink.js'

// ---------------------------------------------------------------------------------------
// Harness

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** How a promise stands once pending I/O callbacks had one turn: "at once" means settled by then. */
async function settledAtOnce(p: Promise<unknown>): Promise<unknown> {
  let state: unknown = 'pending'
  p.then(
    () => (state = 'resolved'),
    (e: unknown) => (state = e),
  )
  await new Promise((resolve) => setImmediate(resolve))
  return state
}

/** Real timers that remember which delays ran out. */
function recordingTimers(): Timers & { fired: number[] } {
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
const newGatewayId = () => `t${process.pid}-${++seq}`

const birthPayload = (gateway: string, session: number) => encodePayload({ v: 1, type: 'birth', gateway, online: true, session }, 'json')
const deathPayload = (gateway: string) => encodePayload({ v: 1, type: 'death', gateway, online: false, session: 0 }, 'json')

interface Gateway {
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
function makeGateway(brokers: string[], extra: Partial<UplinkOptions> = {}, id = newGatewayId()): Gateway {
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

interface Observer {
  client: MqttClient
  messages: { topic: string; payload: string; retain: boolean }[]
}

/** A platform-side client: subscribes (QoS 1) and can publish. */
async function platformClient(url: string, topics: string[] = []): Promise<Observer> {
  const client = await mqtt.connectAsync(url, { protocolVersion: 4, clean: true, reconnectPeriod: 0, clientId: `platform-${process.pid}-${++seq}` })
  cleanups.push(() => client.endAsync(true))
  const messages: Observer['messages'] = []
  client.on('message', (topic, payload, packet) => messages.push({ topic, payload: payload.toString(), retain: packet.retain }))
  if (topics.length > 0) await client.subscribeAsync(topics, { qos: 1 })
  return { client, messages }
}

async function aedes(opts?: Parameters<typeof startAedes>[0]) {
  const broker = await startAedes(opts)
  cleanups.push(() => broker.close())
  return broker
}

async function proxyTo(port: number) {
  const proxy = await startStallProxy({ port })
  cleanups.push(() => proxy.close())
  return proxy
}

const isOnline = (g: Gateway) => g.uplink.online && g.states.at(-1)?.online === true

// ---------------------------------------------------------------------------------------

describe('backoffDelay [UPLINK-6]', () => {
  it('is random() times the doubling ceiling, capped at maxMs', () => {
    const half = () => 0.5
    expect([0, 1, 2, 3, 8, 9, 10].map((n) => backoffDelay(n, 1000, 300_000, half))).toEqual([500, 1000, 2000, 4000, 128_000, 150_000, 150_000])
    expect(backoffDelay(0, 1000, 300_000, () => 0)).toBe(0)
    expect(backoffDelay(3, 1000, 300_000, () => 0.999_999)).toBe(7999)
    // After days offline the exponent does not overflow into Infinity or NaN.
    expect(backoffDelay(10_000, 1000, 300_000, () => 0.999_999)).toBe(299_999)
  })

  it('never waits longer than the uplink has been down, nor less than initialMs allows', () => {
    const half = () => 0.5
    // 8 failures would allow 256 s; down for 12 s, the ceiling is 12 s.
    expect(backoffDelay(8, 1000, 300_000, half, 12_000)).toBe(6_000)
    // Down for 200 ms: the ceiling is still initialMs.
    expect(backoffDelay(8, 1000, 300_000, half, 200)).toBe(500)
    // Down for an hour: the usual bounds.
    expect(backoffDelay(3, 1000, 300_000, half, 3_600_000)).toBe(4_000)
    expect(backoffDelay(12, 1000, 300_000, half, 3_600_000)).toBe(150_000)
  })
})

describe('Uplink against aedes', () => {
  it('[MQTT-5.4] says which commands the broker delivered retained (a retained command on subscribing), and which live (issue 10, item 21)', async () => {
    const broker = await aedes()
    const platform = await platformClient(broker.url)
    const gw = makeGateway([broker.url])
    await platform.client.publishAsync(gw.topics.allCommand, '{"type":"config"}', { qos: 1, retain: true })
    gw.uplink.start()
    await waitFor('the retained command', () => gw.commands.length === 1)
    expect(gw.retained).toEqual([gw.topics.allCommand])
    // Published with the retain flag while the gateway listens: a live delivery (MQTT 3.1.1 3.3.1.3).
    await waitFor('subscribed', () => gw.log.some((l) => l.startsWith('recv suback')))
    await platform.client.publishAsync(gw.topics.command, '{"type":"rebirth"}', { qos: 1, retain: true })
    await waitFor('the live command', () => gw.commands.length === 2)
    expect(gw.retained).toEqual([gw.topics.allCommand])
  })

  it('[UPLINK-4] publishes the birth retained QoS 1 before anything else, subscribes QoS 1, and is online without waiting for their acknowledgements', async () => {
    const broker = await aedes()
    const gw = makeGateway([broker.url])
    gw.uplink.start()
    await waitFor('online', () => isOnline(gw))

    const sent = gw.log.filter((l) => l.startsWith('send '))
    expect(sent.slice(0, 3)).toEqual([
      'send connect',
      `send publish ${gw.topics.state} q1 r`,
      `send subscribe ${gw.topics.command} q1, ${gw.topics.allCommand} q1`,
    ])
    // Online as soon as the birth and the SUBSCRIBE are written: an alarm published now goes
    // on the wire behind them, and the broker reads them in that order.
    await waitFor('the acknowledgements', () => gw.log.includes('recv puback') && gw.log.includes('recv suback'))
    const online = gw.log.indexOf('online')
    expect(online).toBeGreaterThan(gw.log.indexOf('send subscribe'))
    expect(online).toBeLessThan(gw.log.indexOf('recv puback'))
    expect(gw.states).toEqual([{ online: true, broker: broker.url, reason: `connected to ${broker.url} (new session), birth sent` }])
    expect(gw.births()).toBe(1)

    const observer = await platformClient(broker.url, [gw.topics.state])
    const retained = await waitFor('the retained birth', () => observer.messages[0])
    expect(retained).toEqual({ topic: gw.topics.state, payload: birthPayload(gw.id, 1).toString(), retain: true })

    // The subscriptions work: a command to this gateway and one to every gateway.
    await observer.client.publishAsync(gw.topics.command, Buffer.from('{"cmd":1}'), { qos: 1 })
    await observer.client.publishAsync(gw.topics.allCommand, Buffer.from('{"cmd":2}'), { qos: 1 })
    await waitFor('two commands', () => gw.commands.length === 2)
    expect(gw.commands).toEqual([
      { topic: gw.topics.command, payload: '{"cmd":1}' },
      { topic: gw.topics.allCommand, payload: '{"cmd":2}' },
    ])
  })

  it('[UPLINK-3] publish resolves on PUBACK, QoS 1, retained when asked', async () => {
    const broker = await aedes()
    const gw = makeGateway([broker.url])
    gw.uplink.start()
    await waitFor('online', () => isOnline(gw))
    const observer = await platformClient(broker.url, [gw.topics.event])

    const p = gw.uplink.publish(gw.topics.event, Buffer.from('e1'))
    expect(await settledAtOnce(p)).toBe('pending') // a round trip to the broker is needed
    await p
    const sentAt = gw.log.indexOf(`send publish ${gw.topics.event} q1`)
    expect(sentAt).toBeGreaterThan(0)
    expect(gw.log.indexOf('recv puback', sentAt)).toBeGreaterThan(sentAt)
    await waitFor('e1 at the platform', () => observer.messages.length === 1)
    expect(observer.messages).toEqual([{ topic: gw.topics.event, payload: 'e1', retain: false }])

    await gw.uplink.publish(gw.topics.status, Buffer.from('s1'), { retain: true })
    expect(gw.log).toContain(`send publish ${gw.topics.status} q1 r`)
    const late = await platformClient(broker.url, [gw.topics.status])
    expect(await waitFor('the retained status', () => late.messages[0])).toEqual({ topic: gw.topics.status, payload: 's1', retain: true })
  })

  it('[UPLINK-2] publish while offline rejects at once with UPLINK_OFFLINE and is never sent later', async () => {
    const broker = await aedes()
    const proxy = await proxyTo(broker.port)
    const timers = new ManualTimers()
    const gw = makeGateway([proxy.url], { timers, random: () => 0.5 })

    const beforeStart = await settledAtOnce(gw.uplink.publish(gw.topics.event, Buffer.from('before-start')))
    expect(beforeStart).toBeInstanceOf(UplinkError)
    expect((beforeStart as UplinkError).code).toBe('UPLINK_OFFLINE')

    gw.uplink.start()
    await waitFor('online', () => isOnline(gw))
    const observer = await platformClient(broker.url, [gw.topics.event])
    proxy.drop()
    await waitFor('offline', () => gw.states.at(-1)?.online === false)
    expect(gw.uplink.online).toBe(false)
    expect(gw.states.at(-1)).toMatchObject({ online: false, broker: proxy.url, retryInMs: 500 })

    const whileOffline = await settledAtOnce(gw.uplink.publish(gw.topics.event, Buffer.from('while-offline')))
    expect(whileOffline).toBeInstanceOf(UplinkError)
    expect((whileOffline as UplinkError).code).toBe('UPLINK_OFFLINE')

    timers.fire((ms) => ms === 500)
    await waitFor('online again', () => isOnline(gw))
    await gw.uplink.publish(gw.topics.event, Buffer.from('after'))
    await waitFor('"after" at the platform', () => observer.messages.length >= 1)
    // MQTT keeps one client's order: had anything been queued, it would have come first.
    expect(observer.messages.map((m) => m.payload)).toEqual(['after'])
    expect(gw.log.filter((l) => l.startsWith(`send publish ${gw.topics.event}`))).toHaveLength(1)
  })

  it('[UPLINK-3][UPLINK-6][UPLINK-7] broker killed mid-flight: publish rejects UPLINK_CLOSED, offline, full-jitter backoff across brokers, reset once stable', async () => {
    const held: ((error?: Error | null) => void)[] = []
    const authorizePublish: NonNullable<Parameters<typeof startAedes>[0]>['aedes'] = {
      authorizePublish: (_client, packet, callback) => {
        // Events reach the broker but never get their PUBACK: in flight when it dies.
        if (packet.topic.endsWith('/event')) held.push(callback)
        else callback(null)
      },
    }
    const a = await startAedes({ aedes: authorizePublish })
    cleanups.push(() => a.close())
    const b = `mqtt://127.0.0.1:${await freePort()}` // nobody listens: refused
    const draws = [0.5, 0.25, 0.75, 0.999, 0.1, 0.6, 0.3, 0.9]
    const drawn: number[] = []
    const random = () => {
      const r = draws[drawn.length % draws.length] ?? 0.5
      drawn.push(r)
      return r
    }
    const timers = recordingTimers()
    const initialMs = 40
    const maxMs = 200
    const stableMs = 300
    // A clock that runs fast, so that the bound by time offline ([UPLINK-6]) never binds here.
    let tick = 0
    const now = () => ++tick * 1e9
    const gw = makeGateway([a.url, b], { random, timers, now, backoff: { initialMs, maxMs, stableMs } })
    gw.uplink.start()
    await waitFor('online at a', () => isOnline(gw))

    const inFlight = gw.uplink.publish(gw.topics.event, Buffer.from('in-flight')).catch((e: unknown) => e)
    await waitFor('the event held by the broker', () => held.length === 1)
    await a.close()
    const err = await inFlight
    expect(err).toBeInstanceOf(UplinkError)
    expect((err as UplinkError).code).toBe('UPLINK_CLOSED')
    for (const release of held) release(new Error('broker gone'))

    const offline = () => gw.states.filter((s) => !s.online)
    await waitFor('six scheduled retries', () => offline().length >= 6)
    const restarted = await startAedes({ port: a.port })
    cleanups.push(() => restarted.close())
    await waitFor('online at a again', () => isOnline(gw))

    // First the lost connection (retry a first: its session is there), then failed attempts alternating.
    const lost = offline().slice(0, 6)
    expect(lost[0]?.reason).toMatch(new RegExp(`^connection to ${a.url} lost: .*; attempt 2 in \\d+ ms to ${a.url}$`))
    lost.forEach((s, i) => {
      const ceiling = Math.min(maxMs, initialMs * 2 ** i)
      expect(s.retryInMs, `retry ${i}`).toBe(Math.floor((drawn[i] ?? NaN) * ceiling))
      if (i === 0) return
      const failed = i % 2 === 1 ? a.url : b
      const next = i % 2 === 1 ? b : a.url
      expect(s.broker).toBe(failed)
      expect(s.reason).toMatch(new RegExp(`^connect to ${failed} failed: .*ECONNREFUSED.*; attempt ${i + 2} in ${s.retryInMs} ms to ${next}$`))
    })
    // 0.5×40, 0.25×80, 0.75×160, 0.999×200 (capped), 0.1×200, 0.6×200
    expect(lost.map((s) => s.retryInMs)).toEqual([20, 20, 120, 199, 20, 120])

    // A connection that stays up stableMs resets the backoff: the next retry is in [0, initialMs).
    const stableFired = timers.fired.filter((ms) => ms === stableMs).length
    await waitFor('the stable timer', () => timers.fired.filter((ms) => ms === stableMs).length > stableFired, 2000)
    const before = gw.states.length
    await restarted.close()
    const next = await waitFor('offline again', () => gw.states.slice(before).find((s) => !s.online))
    expect(next.retryInMs).toBe(Math.floor((drawn.at(-1) ?? NaN) * initialMs))
  })

  it('[UPLINK-6] while an alarm waits, the retry ceiling is urgentMaxMs, and hurry() redraws a retry minutes away', async () => {
    const refused = `mqtt://127.0.0.1:${await freePort()}`
    const timers = new ManualTimers()
    // An hour passes before each retry fires: down for hours, so only maxMs and urgentMaxMs
    // bound the ceiling, not the time offline.
    let clock = 0
    let urgent = false
    const gw = makeGateway([refused], { timers, random: () => 0.9, now: () => clock, urgent: () => urgent, backoff: { initialMs: 1000, maxMs: 300_000 } })
    const retry = (ms: number | ((ms: number) => boolean)) => {
      clock += 3_600_000
      timers.fire(ms)
    }
    gw.uplink.start()
    for (let i = 1; i <= 10; i++) {
      await waitFor(`failure ${i}`, () => gw.states.length === i)
      if (i < 10) retry(() => true)
    }
    // 9 failures before: 0.9 × min(300 s, 1 s × 2^9) = 270 s.
    expect(gw.states.at(-1)?.retryInMs).toBe(270_000)
    // An alarm is stored: the retry 270 s away is drawn again within 5 s.
    urgent = true
    expect(gw.uplink.hurry()).toBe(4_500)
    expect(timers.delays()).toEqual([4_500])
    expect(gw.uplink.hurry()).toBeNull() // soon enough already
    // And the retries that follow stay within the urgent ceiling while the alarm waits.
    retry(4_500)
    await waitFor('failure 11', () => gw.states.length === 11)
    expect(gw.states.at(-1)?.retryInMs).toBe(4_500)
    urgent = false
    retry(4_500)
    await waitFor('failure 12', () => gw.states.length === 12)
    expect(gw.states.at(-1)?.retryInMs).toBe(270_000)
    await gw.uplink.stop()
  })

  it('[UPLINK-4] a subscription the broker refuses is a warning: online once, and alarms still go up', async () => {
    const broker = await aedes({
      aedes: {
        // Refuse the all-gateways topic (a negative SUBACK), grant the rest.
        authorizeSubscribe: (_client, sub, done) => done(null, sub.topic.includes('/all/') ? null : sub),
      },
    })
    const warnings: string[] = []
    const gw = makeGateway([broker.url], { onWarning: (m) => warnings.push(m) })
    gw.uplink.start()
    await waitFor('the warning', () => warnings.length === 1)
    expect(warnings[0]).toBe(`${broker.url} refused the subscriptions ${gw.topics.allCommand}: commands on them will not arrive; check the broker's ACL`)
    expect(gw.states).toEqual([{ online: true, broker: broker.url, reason: `connected to ${broker.url} (new session), birth sent` }])
    await gw.uplink.publish(gw.topics.alert, Buffer.from('alarm'))
  })

  it('[UPLINK-7] fails over to the second broker when the first refuses', async () => {
    const broker = await aedes()
    const refused = `mqtt://127.0.0.1:${await freePort()}`
    const gw = makeGateway([refused, broker.url], { random: () => 0.5, backoff: { initialMs: 40 } })
    gw.uplink.start()
    await waitFor('online', () => isOnline(gw))
    expect(gw.states).toHaveLength(2)
    expect(gw.states[0]).toMatchObject({ online: false, broker: refused, retryInMs: 20 })
    expect(gw.states[0]?.reason).toMatch(new RegExp(`^connect to ${refused} failed: .*ECONNREFUSED.*; attempt 2 in 20 ms to ${broker.url}$`))
    expect(gw.states[1]).toMatchObject({ online: true, broker: broker.url })
  })

  it('[UPLINK-4] a persistent session delivers a command sent while the gateway was away', async () => {
    const broker = await aedes()
    const proxy = await proxyTo(broker.port)
    const timers = new ManualTimers()
    const gw = makeGateway([proxy.url], { timers, random: () => 0.5 })
    gw.uplink.start()
    // Online comes before the SUBACK [UPLINK-4]; the session has the subscriptions at the SUBACK.
    await waitFor('online, subscriptions granted', () => isOnline(gw) && gw.log.includes('recv suback'))

    const gone = new Promise<void>((resolve) => broker.aedes.on('clientDisconnect', (c) => c.id === gw.clientId && resolve()))
    proxy.drop()
    await gone
    await waitFor('offline', () => gw.states.at(-1)?.online === false)
    const platform = await platformClient(broker.url)
    await platform.client.publishAsync(gw.topics.command, Buffer.from('{"type":"receipt"}'), { qos: 1 })
    expect(gw.commands).toEqual([])

    timers.fire((ms) => ms === 500)
    await waitFor('the command sent while away', () => gw.commands.length === 1)
    expect(gw.commands).toEqual([{ topic: gw.topics.command, payload: '{"type":"receipt"}' }])
    await waitFor('online', () => isOnline(gw))
    expect(gw.states.at(-1)?.reason).toContain('session resumed')
    expect(gw.births()).toBe(2)
  })

  it('[UPLINK-8] detects a half-open link within 1.5 × keepalive, the broker publishes the will, and the uplink comes back', async () => {
    // Real time, keepalive 2 s: the point is that mqtt.js's own keepalive (PINGREQ, then
    // close without PINGRESP) and the broker's keepalive (will) really fire; faking the
    // timers would test a model of them. Both fire about 3 s after the stall.
    const keepaliveS = 2
    const broker = await aedes()
    const proxy = await proxyTo(broker.port)
    const gw = makeGateway([proxy.url], { keepaliveS, random: () => 0.5, backoff: { initialMs: 100 }, connectTimeoutMs: 8000 })
    gw.uplink.start()
    await waitFor('online', () => isOnline(gw))
    const observer = await platformClient(broker.url, [gw.topics.state])
    await waitFor('the retained birth', () => observer.messages.length === 1)

    const stalledAt = performance.now()
    proxy.stall()
    const lost = await waitFor('offline', () => gw.states.find((s) => !s.online), 1500 * keepaliveS + 1000)
    const detectedMs = performance.now() - stalledAt
    expect(lost.reason).toContain('keepalive timeout')
    expect(detectedMs).toBeLessThanOrEqual(1500 * keepaliveS + 500)
    expect(gw.log).toContain('send pingreq')
    console.info(`half-open link detected after ${Math.round(detectedMs)} ms (keepalive ${keepaliveS} s)`)

    const death = deathPayload(gw.id).toString()
    await waitFor('the will', () => observer.messages.some((m) => m.payload === death), 1500 * keepaliveS + 1000)
    console.info(`will published by the broker ${Math.round(performance.now() - stalledAt)} ms after the stall`)
    const late = await platformClient(broker.url, [gw.topics.state])
    expect(await waitFor('the retained death', () => late.messages[0])).toEqual({ topic: gw.topics.state, payload: death, retain: true })

    proxy.resume()
    await waitFor('online again', () => isOnline(gw), 3000)
    await waitFor('the new birth', () => observer.messages.at(-1)?.payload === birthPayload(gw.id, 2).toString())
    expect(gw.uplink.online).toBe(true)
  }, 10_000)

  it('[UPLINK-5] a graceful stop publishes the death itself and the broker discards the will', async () => {
    const broker = await aedes()
    const gw = makeGateway([broker.url])
    gw.uplink.start()
    await waitFor('online', () => isOnline(gw))
    const barrier = `test/barrier/${gw.id}`
    const observer = await platformClient(broker.url, [gw.topics.state, barrier])
    await waitFor('the retained birth', () => observer.messages.length === 1)

    const gone = new Promise<void>((resolve) => broker.aedes.on('clientDisconnect', (c) => c.id === gw.clientId && resolve()))
    await gw.uplink.stop({ graceful: true })
    expect(gw.uplink.online).toBe(false)
    expect(gw.log.filter((l) => l.startsWith('send ')).slice(-2)).toEqual([`send publish ${gw.topics.state} q1 r`, 'send disconnect'])
    expect(gw.states.at(-1)).toMatchObject({ online: false, broker: null })
    expect(gw.states.at(-1)?.reason).toContain('death published')
    await gone

    // Anything the broker published for the gateway's disconnect comes before the barrier.
    await observer.client.publishAsync(barrier, Buffer.from('barrier'), { qos: 1 })
    await waitFor('the barrier', () => observer.messages.some((m) => m.topic === barrier))
    const death = deathPayload(gw.id).toString()
    expect(observer.messages.map((m) => m.payload)).toEqual([birthPayload(gw.id, 1).toString(), death, 'barrier'])
    const late = await platformClient(broker.url, [gw.topics.state])
    expect(await waitFor('the retained death', () => late.messages[0])).toEqual({ topic: gw.topics.state, payload: death, retain: true })
  })

  it('[UPLINK-5] a stop that is not graceful leaves the death to the broker (the will)', async () => {
    const broker = await aedes()
    const gw = makeGateway([broker.url])
    gw.uplink.start()
    await waitFor('online', () => isOnline(gw))
    const observer = await platformClient(broker.url, [gw.topics.state])
    await waitFor('the retained birth', () => observer.messages.length === 1)

    await gw.uplink.stop({ graceful: false })
    const death = deathPayload(gw.id).toString()
    await waitFor('the will', () => observer.messages.some((m) => m.payload === death))
    // The gateway published only its birth and never said goodbye.
    expect(gw.log.filter((l) => l.startsWith('send publish'))).toEqual([`send publish ${gw.topics.state} q1 r`])
    expect(gw.log).not.toContain('send disconnect')
    const late = await platformClient(broker.url, [gw.topics.state])
    expect(await waitFor('the retained death', () => late.messages[0])).toEqual({ topic: gw.topics.state, payload: death, retain: true })
  })
})

describe('Uplink against mosquitto', () => {
  it('[UPLINK-4] a persistent session delivers a command sent while the link was down', async () => {
    const broker = await startMosquitto()
    cleanups.push(() => broker.close())
    const proxy = await proxyTo(broker.port)
    const timers = new ManualTimers()
    const gw = makeGateway([proxy.url], { timers, random: () => 0.5 })
    gw.uplink.start()
    await waitFor('online, subscriptions granted', () => isOnline(gw) && gw.log.includes('recv suback'))

    proxy.drop()
    await waitFor('offline', () => gw.states.at(-1)?.online === false)
    const platform = await platformClient(broker.url)
    await platform.client.publishAsync(gw.topics.command, Buffer.from('{"type":"broadcast"}'), { qos: 1 })
    expect(gw.commands).toEqual([])

    timers.fire((ms) => ms === 500)
    await waitFor('the command sent while away', () => gw.commands.length === 1)
    expect(gw.commands).toEqual([{ topic: gw.topics.command, payload: '{"type":"broadcast"}' }])
    await waitFor('online', () => isOnline(gw))
    // The resumed session kept the subscriptions: no second SUBSCRIBE, and they still work.
    expect(gw.states.at(-1)?.reason).toContain('session resumed, subscriptions kept')
    expect(gw.log.filter((l) => l.startsWith('send subscribe'))).toHaveLength(1)
    await platform.client.publishAsync(gw.topics.allCommand, Buffer.from('{"type":"rebirth"}'), { qos: 1 })
    await waitFor('a command after the reconnect', () => gw.commands.length === 2)
  })

  it('[UPLINK-4] the session survives a gateway restart and a broker restart (persistence)', async () => {
    const broker = await startMosquitto({ persistence: true })
    cleanups.push(() => broker.close())
    const id = newGatewayId()
    const first = makeGateway([broker.url], {}, id)
    first.uplink.start()
    await waitFor('online, subscriptions granted', () => isOnline(first) && first.log.includes('recv suback'))
    await first.uplink.stop()

    await broker.restart()
    const platform = await platformClient(broker.url)
    await platform.client.publishAsync(first.topics.command, Buffer.from('{"type":"time"}'), { qos: 1 })

    const second = makeGateway([broker.url], {}, id)
    second.uplink.start()
    await waitFor('the command sent while away', () => second.commands.length === 1)
    expect(second.commands).toEqual([{ topic: second.topics.command, payload: '{"type":"time"}' }])
    await waitFor('online', () => isOnline(second))
    expect(second.states.at(-1)?.reason).toContain('session resumed')
  })
})
