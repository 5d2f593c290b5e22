/**
 * The gateway's MQTT connection to the platform's broker, built for a rural cellular link
 * that drops for hours and for a thousand gateways that come back at once after a
 * regional outage. MQTT 3.1.1 (protocolVersion 4), QoS 1 everywhere.
 *
 * This file has the phases and the retry loop that moves through them. Beside it:
 * uplink-options.ts (the options, each with its default and unit, and the state reported),
 * uplink-client.ts (one mqtt.js client: its options, why it closed, ending it),
 * uplink-requests.ts (PUBLISH and SUBSCRIBE waiting for their acknowledgement; UplinkError)
 * and uplink-backoff.ts (the retry delay).
 *
 * Theory of operation (rule IDs are used in the tests):
 * - [UPLINK-1] One mqtt.js client per connection attempt, always with `reconnectPeriod: 0`:
 *   mqtt.js never reconnects and never replays on its own. This file owns the retry loop,
 *   the failover and the backoff, and a stale client can never resend or call back late.
 * - [UPLINK-2] Nothing is queued while offline. `publish()` rejects with UPLINK_OFFLINE at
 *   once; the durable outbox is the only queue.
 * - [UPLINK-3] `publish()` resolves on PUBACK, and only then. If the connection closes
 *   first it rejects with UPLINK_CLOSED. mqtt.js with `clean: false` would keep such a
 *   message in its in-memory store and never call back (it waits to resend it on the same
 *   client), so the rejection is ours; the store goes away with its client, and the outbox
 *   publishes the item again under the same id, which is safe [MQTT-3.2].
 * - [UPLINK-4] At every CONNACK the birth is published (retained, QoS 1) before any other
 *   publish, and the command subscriptions are issued (QoS 1) unless the broker resumed a
 *   session on which this process has subscribed them already: a resumed session keeps
 *   its subscriptions (MQTT 3.1.1 3.1.2.4), and a SUBSCRIBE is not free: it costs a round
 *   trip before `online`, and aedes scans every retained message for each topic, which
 *   made a reconnect storm of 2,000 gateways CPU-bound (bench `scale`). The first
 *   connection of a process always subscribes, so a changed area takes effect. `online`
 *   becomes true as soon as they are written, without waiting for PUBACK and SUBACK: the
 *   broker reads one connection in order, so they come before whatever is published next,
 *   and the first alarm after an outage saves a round trip (a second on GPRS, bench
 *   `outage`). A refused subscription is reported, not fatal: alarms must still go up.
 * - [UPLINK-5] The will is the death (retained, QoS 1). A graceful stop publishes the same
 *   payload itself and then sends DISCONNECT, on which the broker discards the will; a
 *   stop that is not graceful just drops the connection and leaves the death to the will.
 * - [UPLINK-6] Retry delay = random() * min(maxMs, initialMs * 2^failures, offline) ("full
 *   jitter"), so gateways returning together spread out. `offline` is how long the uplink
 *   has been down (at least initialMs): after a short outage nobody waits several times
 *   its length (2,000 gateways after a 2 s outage: the last was back after 14.7 s without
 *   this bound, 2 s with it). While an alarm waits for its receipt (`urgent()`,
 *   unconfirmed ones included), the ceiling is at most urgentMaxMs (5 s), and `hurry()`
 *   redraws a retry scheduled further away: after an outage of hours the ceiling has
 *   reached maxMs (5 min), and an alarm pressed during it would otherwise wait up to 5 min
 *   after the link came back. 5 s, not more: the alarm goes out within seconds of the
 *   broker coming back (bench `outage`, broker down 2 min with two alarms waiting), and
 *   only gateways with an alarm waiting retry that often (a refused TCP connection, or a
 *   SYN on a dead cellular link, costs bytes, not money). `failures` counts attempts since
 *   the last connection that stayed online for `stableMs` (10 s): a link that flaps faster
 *   than that keeps backing off instead of hammering the broker, while a link that drops
 *   now and then (a cellular link every minute) reconnects at once each time instead of
 *   backing off towards maxMs with the link up.
 * - [UPLINK-7] Failover: an attempt that fails moves on to the next broker URL. After a
 *   connection that was online is lost, that broker is tried first again, because the
 *   persistent session (and the commands queued in it meanwhile) lives there.
 * - [UPLINK-8] A link where bytes just stop (no FIN) is found by the MQTT keepalive:
 *   mqtt.js sends PINGREQ once no ack has come back for `keepaliveS` and drops the
 *   connection at 1.5 × keepaliveS without an answer; the broker, on its side, publishes
 *   the will after 1.5 × keepaliveS without a packet [MQTT-3.1.2-24].
 * - [UPLINK-9] TLS (issue 12): `tls()` is asked before every attempt, so certificate files
 *   renewed on disk are used from the next one; the broker's certificate is always
 *   verified. A handshake that fails is an attempt that fails, said in plain words in the
 *   state's reason (describeTlsError in uplink-client.ts), and retried with the backoff:
 *   a refused certificate may be renewed meanwhile.
 */

import mqtt, { type MqttClient } from 'mqtt'
import { noDelay } from '../io/tcp.js'
import { realTimers, type Timers } from '../io/timers.js'
import { brokerUrlProblem } from '../protocol/mqtt.js'
import { transition, type TransitionTable } from '../protocol/transition.js'
import { backoffDelay } from './uplink-backoff.js'
import { clientOptions, describeClose, endClient, within } from './uplink-client.js'
import type { UplinkOptions } from './uplink-options.js'
import type { TlsMaterial } from './tls.js'
import { UplinkError, UplinkRequests } from './uplink-requests.js'

export type { Timers } from '../io/timers.js'
export { backoffDelay } from './uplink-backoff.js'
export type { UplinkOptions, UplinkState } from './uplink-options.js'
export { UplinkError, type UplinkErrorCode } from './uplink-requests.js'

// ---------------------------------------------------------------------------------------
// Phases. Invariants: `#client` is non-null exactly in connecting, online and stopping; a
// retry timer runs only in waiting; `online` is true only in online.

type Phase = 'idle' | 'connecting' | 'online' | 'waiting' | 'stopping' | 'stopped'
type Step = 'start' | 'ready' | 'closed' | 'retry' | 'stop' | 'stopped'

const NEXT: TransitionTable<Phase, Step> = {
  idle: { start: 'connecting', stop: 'stopping' },
  connecting: { ready: 'online', closed: 'waiting', stop: 'stopping' },
  online: { closed: 'waiting', stop: 'stopping' },
  waiting: { retry: 'connecting', stop: 'stopping' },
  stopping: { stopped: 'stopped' },
  stopped: {},
}

export class Uplink {
  readonly #o: UplinkOptions
  readonly #keepaliveS: number
  readonly #initialMs: number
  readonly #maxMs: number
  readonly #urgentMaxMs: number
  readonly #stableMs: number
  readonly #connectTimeoutMs: number
  readonly #stopTimeoutMs: number
  readonly #random: () => number
  readonly #timers: Timers
  readonly #now: () => number
  readonly #connect: typeof mqtt.connect

  #phase: Phase = 'idle'
  #client: MqttClient | null = null
  /** The will of the current (or last) connection; the death a graceful stop publishes. */
  #will: { topic: string; payload: Buffer } = { topic: '', payload: Buffer.alloc(0) }
  #broker: string | null = null
  #lastError: Error | null = null
  /** The TLS material of the current (or last) attempt, for the words of a TLS failure. */
  #tls: TlsMaterial | undefined = undefined
  /** Index into brokers of the next attempt. */
  #next = 0
  #failures = 0
  /** When the uplink last went down (or the first attempt began), for [UPLINK-6]; null online. */
  #offlineSince: number | null = null
  /** Brokers on which this process's SUBSCRIBE was granted: a resumed session there has it. */
  readonly #subscribedOn = new Set<string>()
  #retryTimer: unknown = null
  /** When the scheduled retry fires (this.#now() clock), for hurry(). */
  #retryAt: number | null = null
  #stableTimer: unknown = null
  #stopping: Promise<void> | null = null
  readonly #requests = new UplinkRequests()
  readonly #closed = new WeakSet<MqttClient>()

  constructor(o: UplinkOptions) {
    if (o.brokers.length === 0) throw new Error('Uplink: brokers is empty')
    for (const url of o.brokers) {
      const problem = brokerUrlProblem(url)
      if (problem !== null) throw new Error(`Uplink: broker ${JSON.stringify(url)}: ${problem}`)
    }
    if (o.clientId.length === 0) throw new Error('Uplink: clientId is empty')
    const keepaliveS = o.keepaliveS ?? 60
    if (!Number.isInteger(keepaliveS) || keepaliveS < 1 || keepaliveS > 65535) {
      throw new Error(`Uplink: keepaliveS must be an integer in 1..65535 (0 would disable half-open detection), got ${keepaliveS}`)
    }
    this.#o = o
    this.#keepaliveS = keepaliveS
    this.#initialMs = o.backoff?.initialMs ?? 1000
    this.#maxMs = o.backoff?.maxMs ?? 300_000
    this.#urgentMaxMs = Math.min(this.#maxMs, o.backoff?.urgentMaxMs ?? 5_000)
    this.#stableMs = o.backoff?.stableMs ?? 10_000
    this.#connectTimeoutMs = o.connectTimeoutMs ?? 30_000
    this.#stopTimeoutMs = o.stopTimeoutMs ?? 5000
    this.#random = o.random ?? Math.random
    this.#timers = o.timers ?? realTimers
    this.#now = o.now ?? Date.now
    this.#connect = o.connect ?? mqtt.connect
  }

  get online(): boolean {
    return this.#phase === 'online'
  }

  /** Connects to the first broker at once; from then on the uplink keeps itself connected. */
  start(): void {
    if (this.#phase !== 'idle') throw new Error(`Uplink.start() called in phase ${this.#phase}; an Uplink starts once`)
    this.#to('start')
    this.#attempt()
  }

  /** [UPLINK-2] [UPLINK-3] QoS 1; resolves on PUBACK. */
  publish(topic: string, payload: Buffer, opts: { retain?: boolean } = {}): Promise<void> {
    // biome-ignore lint/suspicious/noControlCharactersInRegex: U+0000 is forbidden in an MQTT topic name, like the wildcards + and # in one published to: such a topic is refused
    if (topic.length === 0 || /[+#\u0000]/.test(topic)) throw new TypeError(`Uplink.publish: invalid topic ${JSON.stringify(topic)}`)
    const client = this.#client
    if (this.#phase !== 'online' || client === null || !client.connected) {
      return Promise.reject(new UplinkError('UPLINK_OFFLINE', `uplink offline (${this.#phase}); not sent: ${topic}`))
    }
    return this.#requests.publish(client, topic, payload, opts.retain ?? false)
  }

  /**
   * [UPLINK-5] graceful: publish the death (retained) and DISCONNECT, so the broker drops
   * the will. Not graceful: drop the connection; the broker publishes the will (at once on
   * a clean TCP close, after 1.5 × keepalive if the link is dead). Calling it again returns
   * the same promise. Publishes still waiting for PUBACK reject with UPLINK_CLOSED.
   */
  stop(opts: { graceful: boolean } = { graceful: false }): Promise<void> {
    this.#stopping ??= this.#stop(opts.graceful)
    return this.#stopping
  }

  async #stop(graceful: boolean): Promise<void> {
    this.#clearTimer('retry')
    this.#clearTimer('stable')
    const wasOnline = this.#phase === 'online'
    const client = this.#client
    const broker = this.#broker
    this.#to('stop')
    let reason = 'stopped'
    if (client !== null) {
      let deathAcked = false
      if (graceful && wasOnline) {
        this.#o.onState({ online: false, broker, reason: `stopping: publishing the death to ${broker}` })
        deathAcked = await within(this.#requests.publish(client, this.#will.topic, this.#will.payload, true), this.#stopTimeoutMs, this.#timers)
      }
      await endClient(client, !deathAcked, this.#closed.has(client), this.#timers, this.#stopTimeoutMs)
      reason = deathAcked
        ? `stopped: death published to ${broker} and disconnected`
        : graceful && wasOnline
          ? `stopped: the death got no PUBACK within ${this.#stopTimeoutMs} ms; connection dropped, the broker publishes the will`
          : `stopped: connection to ${broker} dropped; the broker publishes the will`
    }
    this.#client = null
    this.#requests.failAll(null, 'uplink stopped', this.#lastError)
    this.#to('stopped')
    this.#o.onState({ online: false, broker: null, reason })
  }

  // -------------------------------------------------------------------------------------

  #to(step: Step): void {
    this.#phase = transition(NEXT, this.#phase, step, 'Uplink')
  }

  #attempt(): void {
    const url = this.#o.brokers[this.#next]
    if (url === undefined) throw new Error(`Uplink: broker index ${this.#next} out of range`)
    this.#broker = url
    this.#lastError = null
    this.#will = typeof this.#o.will === 'function' ? this.#o.will() : this.#o.will
    // Read again at each attempt: a certificate renewed on disk is used from the next one.
    this.#tls = this.#o.tls?.()
    const options = clientOptions({
      clientId: this.#o.clientId,
      username: this.#o.username,
      password: this.#o.password,
      keepaliveS: this.#keepaliveS,
      connectTimeoutMs: this.#connectTimeoutMs,
      will: this.#will,
      tls: this.#tls,
    })
    const client = this.#connect(url, options) // [UPLINK-1] a client of its own for each attempt
    this.#client = client
    client.on('connect', (connack) => {
      noDelay(client)
      this.#onConnack(client, url, connack.sessionPresent)
    })
    // Commands are delivered even from a client being torn down: mqtt.js acknowledges them.
    // The retain flag of a delivery says the broker kept it: a retained command. [MQTT-5.4]
    client.on('message', (topic, payload, packet) => this.#o.onCommand(topic, payload, packet.retain === true))
    client.on('error', (err) => {
      if (client === this.#client) this.#lastError = err
    })
    client.on('close', () => this.#onClose(client, url))
  }

  #onConnack(client: MqttClient, url: string, sessionPresent: boolean): void {
    if (client !== this.#client || this.#phase !== 'connecting') return
    const birth = this.#o.birth()
    // The birth goes on the wire first; the SUBSCRIBE follows it in the same round trip.
    const born = this.#requests.publish(client, birth.topic, birth.payload, true)
    const resumed = sessionPresent && this.#subscribedOn.has(url)
    const subscribed = resumed ? Promise.resolve([]) : this.#requests.subscribe(client, this.#o.subscriptions)
    // Online at once, not at the PUBACK and SUBACK: one connection's packets reach the broker
    // in order, so the birth and the SUBSCRIBE are there before anything published from now
    // on, and the first alarm after an outage does not wait a round trip (a second on GPRS)
    // for their acknowledgements. [UPLINK-4]
    this.#offlineSince = null
    this.#to('ready')
    this.#stableTimer = this.#timers.setTimeout(() => {
      this.#stableTimer = null
      this.#failures = 0
    }, this.#stableMs)
    const session = sessionPresent ? (resumed ? 'session resumed, subscriptions kept' : 'session resumed') : 'new session'
    this.#o.onState({ online: true, broker: url, reason: `connected to ${url} (${session}), birth sent` })
    Promise.all([born, subscribed]).then(
      ([, refused]) => {
        if (client !== this.#client) return
        if (refused.length === 0) {
          this.#subscribedOn.add(url)
          return
        }
        this.#subscribedOn.delete(url)
        this.#o.onWarning?.(`${url} refused the subscriptions ${refused.join(', ')}: commands on them will not arrive; check the broker's ACL`)
      },
      (err: unknown) => {
        // The connection closed before the acknowledgements: #onClose handles it.
        if (client !== this.#client || this.#phase !== 'online') return
        this.#lastError ??= err instanceof Error ? err : new Error(String(err))
        client.end(true)
      },
    )
  }

  #onClose(client: MqttClient, url: string): void {
    this.#closed.add(client)
    this.#requests.failAll(client, `connection to ${url} closed before PUBACK`, this.#lastError)
    if (client !== this.#client) return
    if (this.#phase === 'stopping' || this.#phase === 'stopped') return
    const was = this.#phase
    this.#client = null
    this.#clearTimer('stable')
    client.end(true) // releases mqtt.js state; its stream is already closed
    const n = this.#o.brokers.length
    if (was !== 'online') this.#next = (this.#next + 1) % n
    const now = this.#now()
    this.#offlineSince ??= now
    const delay = this.#retryDelay(now, this.#failures, this.#o.urgent?.() === true)
    this.#failures += 1
    this.#to('closed')
    this.#scheduleRetry(now, delay)
    const what = was === 'online' ? `connection to ${url} lost` : `connect to ${url} failed`
    const nextUrl = this.#o.brokers[this.#next] ?? url
    this.#o.onState({
      online: false,
      broker: url,
      reason: `${what}: ${describeClose(this.#lastError, this.#keepaliveS, this.#connectTimeoutMs, this.#tls)}; attempt ${this.#failures + 1} in ${delay} ms to ${nextUrl}`,
      retryInMs: delay,
    })
  }

  #scheduleRetry(now: number, delay: number): void {
    this.#retryAt = now + delay
    this.#retryTimer = this.#timers.setTimeout(() => {
      this.#retryTimer = null
      this.#to('retry')
      this.#attempt()
    }, delay)
  }

  /**
   * An alarm now waits to go up ([UPLINK-6]): a retry scheduled further away than the
   * urgent ceiling is drawn again within it. Returns the new delay, ms, or null if the
   * scheduled retry stands (not waiting, or soon enough already).
   */
  hurry(): number | null {
    if (this.#phase !== 'waiting' || this.#retryTimer === null || this.#retryAt === null) return null
    const now = this.#now()
    if (this.#retryAt - now <= this.#urgentMaxMs) return null
    this.#clearTimer('retry')
    // Drawn again as for the failure that scheduled it (already counted in #failures).
    const delay = this.#retryDelay(now, this.#failures - 1, true)
    this.#scheduleRetry(now, delay)
    return delay
  }

  /** [UPLINK-6] The delay after `failures` failures, `urgent` when an alarm waits. */
  #retryDelay(now: number, failures: number, urgent: boolean): number {
    const offlineMs = now - (this.#offlineSince ?? now)
    return backoffDelay(failures, this.#initialMs, urgent ? this.#urgentMaxMs : this.#maxMs, this.#random, offlineMs)
  }

  #clearTimer(which: 'retry' | 'stable'): void {
    if (which === 'retry' && this.#retryTimer !== null) {
      this.#timers.clearTimeout(this.#retryTimer)
      this.#retryTimer = null
    }
    if (which === 'stable' && this.#stableTimer !== null) {
      this.#timers.clearTimeout(this.#stableTimer)
      this.#stableTimer = null
    }
  }
}
