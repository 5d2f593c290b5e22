/**
 * One simulated gateway of the fleet: the real uplink (gateway/uplink.ts: persistent
 * session, stable client id, retained birth and will with the session counter, command
 * subscriptions, backoff with full jitter) with the gateway's publishing order of
 * protocol/MQTT.md on top, but no serial line and no SQLite store, so that a thousand of
 * them fit in one Node process:
 * - after every birth: each alarm waiting for its receipt at once, alone on `alert`
 *   (QoS 1), then the gateway status (retained), then the backlog as one zstd batch
 *   (`encodeBatch`), one publication at a time [MQTT-2.5] [MQTT-4.4] [MQTT-4.6];
 * - an alarm is published again on the gateway's own schedule (`alarmRetryDelayMs`)
 *   until the platform's receipt names it [MQTT-4.1];
 * - while online, one terminal status alone on `event` every `statusEveryMs`.
 */

import type { IClientOptions, MqttClient } from 'mqtt'
import type mqtt from 'mqtt'
import { alarmRetryDelayMs } from '../../gateway/outbox.js'
import { Uplink, type UplinkState } from '../../gateway/uplink.js'
import {
  MQTT_CONTRACT_VERSION,
  encodeBatch,
  encodePayload,
  gatewayTopics,
  parseCommand,
  type Birth,
  type GatewayTopics,
  type TerminalStatus,
  type UplinkEvent,
} from '../../protocol/mqtt.js'
import { seededRandom } from '../../protocol/random.js'

const VERSION = 'bench-fleet'
const ENCODING = 'cbor'

export interface SimGatewayOptions {
  id: string
  area: string
  prefix: string
  broker: string
  keepaliveS: number
  /** Terminals on the gateway's serial line: each has a coalesced status. */
  terminals: number
  statusEveryMs: number
  connect: typeof mqtt.connect
  /**
   * Seeds the gateway's random numbers (backoff jitter, alarm retry jitter, status phase):
   * the same fleet then draws the same delays against each broker.
   */
  seed: number
  /**
   * The uplink is online (CONNACK received, birth and SUBSCRIBE written [UPLINK-4]); `attemptAt`: when the
   * attempt that succeeded began, performance.now() (sub-millisecond, so that an attempt
   * just before a restore is never taken for one just after it).
   */
  onOnline: (g: SimGateway, attemptAt: number) => void
  /** Nothing waits: every alarm receipted, the status and the batch acknowledged. */
  onDrained: (g: SimGateway) => void
  /** A connection attempt failed or a connection was lost; `reason` is the Uplink's, without URLs and delays. */
  onFailure: (reason: string, attemptAt: number) => void
}

interface Alarm {
  id: string
  number: number
  storedAt: number
  /** Publications acknowledged by the broker so far. */
  published: number
  inFlight: boolean
  timer: NodeJS.Timeout | null
}

interface Job {
  topic: string
  payload: Buffer
  retain: boolean
  done: () => void
}

export class SimGateway {
  readonly id: string
  readonly topics: GatewayTopics
  readonly #o: SimGatewayOptions
  readonly #uplink: Uplink
  readonly #startedAt = Date.now()
  readonly #alarms = new Map<string, Alarm>()
  readonly #random: () => number
  /** When the current (or last) connection attempt began, performance.now(). */
  #attemptAt = 0
  #session = 0
  #nextNumber = 1
  #nextBatch = 1
  #statusVersion = 0
  #statusDue = false
  #batch: Buffer | null = null
  #event: Buffer | null = null
  #sending = false
  #statusTimer: NodeJS.Timeout | null = null
  /** Alarm publications beyond the first of each id (no receipt in time). */
  republished = 0
  /** When the last receipt arrived, ms. */
  receiptAt: number | null = null

  constructor(o: SimGatewayOptions) {
    this.#o = o
    this.id = o.id
    this.topics = gatewayTopics(o.prefix, o.id, o.area)
    this.#random = seededRandom(o.seed)
    // Same overloads as mqtt.connect; notes when each attempt begins.
    const connect = (target: string | IClientOptions, opts?: IClientOptions): MqttClient => {
      this.#attemptAt = performance.now()
      return typeof target === 'string' ? o.connect(target, opts) : o.connect(target)
    }
    this.#uplink = new Uplink({
      brokers: [o.broker],
      clientId: `steppelink-gw-${o.id}`,
      keepaliveS: o.keepaliveS,
      subscriptions: [this.topics.command, this.topics.allCommand, this.topics.areaCommand!],
      will: () => {
        // A new session before every attempt; the will names it [MQTT-2.2].
        this.#session += 1
        return this.#death()
      },
      birth: () => this.#birth(),
      connect,
      random: this.#random,
      onCommand: (_topic, payload) => this.#command(payload),
      onState: (s) => this.#state(s),
    })
  }

  start(): void {
    this.#uplink.start()
  }

  stop(): Promise<void> {
    this.#stopStatuses()
    for (const a of this.#alarms.values()) if (a.timer !== null) clearTimeout(a.timer)
    return this.#uplink.stop({ graceful: false })
  }

  get waitingAlarms(): number {
    return this.#alarms.size
  }

  /**
   * What the gateway piles up while its link is down: every terminal's coalesced status,
   * folded into one batch, and with `alarm` one alarm stored and waiting. Returns the
   * batch's size on the wire.
   */
  async buildBacklog(withAlarm: boolean): Promise<number> {
    this.#stopStatuses()
    this.#event = null
    this.receiptAt = null
    this.republished = 0
    const now = Date.now()
    const items = Array.from({ length: this.#o.terminals }, (_, k) => this.#terminalStatus(k, now))
    this.#batch = await encodeBatch({ v: MQTT_CONTRACT_VERSION, id: `${this.id}:b${this.#nextBatch++}`, gateway: this.id, items }, ENCODING)
    if (withAlarm) {
      const number = this.#nextNumber++
      const id = `${this.#terminal(0)}:${number}`
      this.#alarms.set(id, { id, number, storedAt: now, published: 0, inFlight: false, timer: null })
    }
    return this.#batch.length
  }

  // -- uplink ------------------------------------------------------------------------

  #state(s: UplinkState): void {
    if (!s.online) {
      if (s.retryInMs === undefined) return
      this.#o.onFailure((s.reason ?? '').replace(/; attempt \d+ in .*$/, '').replace(/mqtt:\/\/\S+/g, 'the broker'), this.#attemptAt)
      return
    }
    this.#o.onOnline(this, this.#attemptAt)
    // [MQTT-2.5] after the birth: alarms, then the status, then the backlog.
    for (const a of this.#alarms.values()) this.#publishAlarm(a)
    this.#statusDue = true
    if (this.#statusTimer === null) this.#startStatuses()
    this.#pump()
  }

  #command(payload: Buffer): void {
    const parsed = parseCommand(payload)
    if (!parsed.ok || parsed.command.type !== 'receipt') return
    let any = false
    for (const id of parsed.command.ids) {
      const a = this.#alarms.get(id)
      if (a === undefined) continue
      if (a.timer !== null) clearTimeout(a.timer)
      this.#alarms.delete(id)
      any = true
    }
    if (!any) return
    this.receiptAt = Date.now()
    this.#checkDrained()
  }

  // -- alarms [MQTT-4.1] [MQTT-4.4] ----------------------------------------------------

  #publishAlarm(a: Alarm): void {
    if (a.inFlight || !this.#uplink.online) return
    if (a.timer !== null) clearTimeout(a.timer)
    a.timer = null
    a.inFlight = true
    const payload = encodePayload(this.#alarmEvent(a), ENCODING)
    this.#uplink.publish(this.topics.alert, payload).then(
      () => {
        a.inFlight = false
        a.published += 1
        if (a.published > 1) this.republished += 1
        if (!this.#alarms.has(a.id)) return
        a.timer = setTimeout(() => this.#publishAlarm(a), alarmRetryDelayMs(a.published, this.#random))
      },
      () => {
        // Offline: it goes again right after the next birth.
        a.inFlight = false
      },
    )
  }

  // -- lower classes, one publication at a time [MQTT-4.6] -------------------------------

  #pump(): void {
    if (this.#sending || !this.#uplink.online) return
    const job = this.#nextJob()
    if (job === null) return this.#checkDrained()
    this.#sending = true
    this.#uplink
      .publish(job.topic, job.payload, { retain: job.retain })
      .then(job.done, () => {
        // Offline: the job stays; the next birth starts the pump again.
      })
      .finally(() => {
        this.#sending = false
        this.#pump()
      })
  }

  #nextJob(): Job | null {
    if (this.#statusDue) return { topic: this.topics.status, payload: this.#gatewayStatus(), retain: true, done: () => (this.#statusDue = false) }
    if (this.#batch !== null) return { topic: this.topics.batch, payload: this.#batch, retain: false, done: () => (this.#batch = null) }
    if (this.#event !== null) return { topic: this.topics.event, payload: this.#event, retain: false, done: () => (this.#event = null) }
    return null
  }

  #checkDrained(): void {
    if (this.#alarms.size === 0 && this.#batch === null && !this.#statusDue) this.#o.onDrained(this)
  }

  #startStatuses(): void {
    const tick = () => {
      this.#event = encodePayload(this.#terminalStatus(this.#statusVersion % this.#o.terminals, Date.now()), ENCODING)
      this.#pump()
    }
    // A random phase, so the fleet's statuses spread evenly over the interval.
    this.#statusTimer = setTimeout(() => {
      tick()
      this.#statusTimer = setInterval(tick, this.#o.statusEveryMs)
    }, this.#random() * this.#o.statusEveryMs)
  }

  #stopStatuses(): void {
    if (this.#statusTimer !== null) clearTimeout(this.#statusTimer)
    this.#statusTimer = null
  }

  // -- payloads ------------------------------------------------------------------------

  #time(at = Date.now()): { at: number; estimated: boolean } {
    return { at, estimated: false }
  }

  #terminal(k: number): string {
    return `T-${this.id}-${k}`
  }

  #birth(): { topic: string; payload: Buffer } {
    const b: Birth = { v: MQTT_CONTRACT_VERSION, type: 'birth', gateway: this.id, online: true, session: this.#session, time: this.#time(), version: VERSION, encoding: ENCODING, area: this.#o.area }
    return { topic: this.topics.state, payload: encodePayload(b, ENCODING) }
  }

  #death(): { topic: string; payload: Buffer } {
    const d: Birth = { v: MQTT_CONTRACT_VERSION, type: 'death', gateway: this.id, online: false, session: this.#session }
    return { topic: this.topics.state, payload: encodePayload(d, ENCODING) }
  }

  #alarmEvent(a: Alarm): UplinkEvent {
    return {
      v: MQTT_CONTRACT_VERSION,
      id: a.id,
      class: 'alarm',
      kind: 'emergency',
      code: 101,
      restore: false,
      gateway: this.id,
      terminal: this.#terminal(0),
      address: 1,
      number: a.number,
      time: this.#time(a.storedAt),
      received: a.storedAt,
      attempt: a.published + 1,
      stage: a.published === 0 ? 'stored' : 'sent',
    }
  }

  #terminalStatus(k: number, now: number): TerminalStatus {
    const since = now - this.#o.statusEveryMs
    this.#statusVersion += 1
    return {
      v: MQTT_CONTRACT_VERSION,
      id: `${this.id}:s:${this.#terminal(k)}:${this.#statusVersion}:${since}`,
      class: 'status',
      kind: 'status',
      gateway: this.id,
      terminal: this.#terminal(k),
      address: k + 1,
      time: this.#time(now),
      latest: { uptime: Math.round((now - this.#startedAt) / 1000), mains: true, battery: 87, millivolts: 4010 },
      since,
      heartbeats: Math.max(1, Math.round(this.#o.statusEveryMs / 10_000)),
      lowestBattery: 86,
      minutesWithoutMains: 0,
    }
  }

  /** The gateway's own status [MQTT-3.7], shaped like the reference gateway's. */
  #gatewayStatus(): Buffer {
    const now = Date.now()
    const terminals = Array.from({ length: this.#o.terminals }, (_, k) => ({
      address: k + 1,
      terminal: this.#terminal(k),
      session: 'open',
      answering: true,
      lost: false,
      lastHeardS: 4,
    }))
    const status = {
      v: MQTT_CONTRACT_VERSION,
      type: 'status',
      gateway: this.id,
      session: this.#session,
      time: this.#time(now),
      uptimeS: Math.round((now - this.#startedAt) / 1000),
      clock: { synchronised: true, offsetMs: 0 },
      terminals,
      backlog: { alarm: { count: this.#alarms.size, bytes: 0 }, request: { count: 0, bytes: 0 }, trouble: { count: 0, bytes: 0 }, status: { count: this.#batch === null ? 0 : this.#o.terminals, bytes: this.#batch?.length ?? 0 } },
      openAlerts: [...this.#alarms.keys()].map((id) => ({ id, stage: 'stored' })),
      counters: {},
    }
    return encodePayload(status, ENCODING)
  }
}
