/**
 * The uplink against real brokers while the link holds, on the harness of uplink.suite.ts:
 * the birth retained before anything else, the subscriptions and a refused one [UPLINK-4],
 * publish resolving on PUBACK [UPLINK-3], retained and live commands [MQTT-5.4], persistent
 * sessions that deliver what was sent while the gateway was away (aedes, and mosquitto
 * across a gateway and a broker restart), and stopping with and without the death
 * [UPLINK-5]. Links that fail are in uplink-failures.test.ts.
 */

import { afterEach, describe, expect, it } from 'vitest'
import { startMosquitto } from '../tests/helpers/broker.js'
import { ManualTimers } from '../tests/helpers/manual-timers.js'
import { waitFor } from '../device-sim/wait.js'
import { aedes, birthPayload, cleanUp, cleanups, deathPayload, isOnline, makeGateway, newGatewayId, platformClient, proxyTo, settledAtOnce } from './uplink.suite.js'

afterEach(cleanUp)

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
    expect(sent.slice(0, 3)).toEqual(['send connect', `send publish ${gw.topics.state} q1 r`, `send subscribe ${gw.topics.command} q1, ${gw.topics.allCommand} q1`])
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
