/**
 * The uplink when the link fails, against real brokers on the harness of uplink.suite.ts:
 * publish while offline rejects at once [UPLINK-2]; a broker killed mid-flight rejects what
 * is in flight, and the retries back off with full jitter across the brokers, reset once the
 * connection is stable [UPLINK-3] [UPLINK-6] [UPLINK-7]; the retry ceiling while an alarm
 * waits, and hurry() [UPLINK-6]; failover to the second broker [UPLINK-7]; a half-open link
 * found by the keepalive, with the will published [UPLINK-8].
 */

import { afterEach, describe, expect, it } from 'vitest'
import { freePort, startAedes } from '../tests/helpers/broker.js'
import { ManualTimers } from '../tests/helpers/manual-timers.js'
import { waitFor } from '../device-sim/wait.js'
import { UplinkError } from './uplink.js'
import { aedes, birthPayload, cleanUp, cleanups, deathPayload, isOnline, makeGateway, platformClient, proxyTo, recordingTimers, settledAtOnce } from './uplink.suite.js'

afterEach(cleanUp)

describe('Uplink against aedes', () => {
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
})
