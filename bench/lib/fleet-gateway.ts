/**
 * One gateway of the scale benchmark's fleet: the real Gateway (gateway/gateway.ts) on a
 * MemoryStore, with a GatewayLink that no terminal is on, and the real Uplink, wired as
 * gateway/main.ts wires them (birth and will from the gateway, commands to it, `urgent`
 * and `hurry` from its waiting alarms, its tick loop), so that a thousand of them fit in
 * one Node process. What it publishes, and when, is the gateway's own doing:
 * - after every birth: each alarm waiting for its receipt at once, alone on `alert`, then
 *   its status (retained) and its backlog (terminal status folds as one zstd batch)
 *   [MQTT-2.5] [MQTT-4.4] [MQTT-4.6]; an alarm again on its schedule until the platform's
 *   receipt names it [MQTT-4.1];
 * - its status (retained) every status interval while online [MQTT-3.7].
 *
 * The terminals are played at the store, where the gateway would put what they send: the
 * store starts with the terminals the gateway knew when it last ran (its status lists
 * them, as a real one's does); at the outage each terminal's HEARTBEAT is folded
 * (putStatus, as the gateway does with one), and 1 in 20 gateways stores an alarm as the
 * gateway stores a terminal's EVENT. The serial side is not this benchmark's business
 * (bench `serial` and `latency` are): no terminal ever answers on the line, so
 * supervision is set beyond the run, and none is reported lost.
 */

import type { IClientOptions, MqttClient } from 'mqtt'
import type mqtt from 'mqtt'
import type { BatchCompression } from '../../gateway/compression.js'
import { Gateway, type GatewaySettings, type Log } from '../../gateway/gateway.js'
import { eventFingerprint } from '../../gateway/terminal-event.js'
import { MemoryStore } from '../../gateway/memory-store.js'
import { terminalEventId, type NewEvent } from '../../gateway/store.js'
import { Uplink, type UplinkState } from '../../gateway/uplink.js'
import { GatewayLink } from '../../protocol/link.js'
import { EVENT_KINDS, contactIdOf } from '../../protocol/messages.js'
import { CLASS_OF, MQTT_CONTRACT_VERSION } from '../../protocol/mqtt.js'
import { seededRandom } from '../../protocol/random.js'

const QUIET: Log = { debug() {}, info() {}, warn() {}, error() {} }
/** As gateway/main.ts: the tick never sleeps longer than this. */
const MAX_SLEEP_MS = 1_000

export interface FleetGatewayOptions {
  id: string
  area: string
  prefix: string
  broker: string
  keepaliveS: number
  /** Terminals on the gateway's serial line: each has a status fold at the outage. */
  terminals: number
  /** The gateway's status interval (statuses, its own and its terminals', at most this often), ms. */
  statusEveryMs: number
  connect: typeof mqtt.connect
  compression: BatchCompression
  /**
   * Seeds the gateway's random numbers (the uplink's backoff jitter; the alarm retry
   * jitter, drawn apart): the same fleet then draws the same delays against each broker.
   */
  seed: number
  /**
   * The uplink is online (CONNACK received, birth and SUBSCRIBE written [UPLINK-4]);
   * `attemptAt`: when the attempt that succeeded began, performance.now() (sub-millisecond,
   * so that an attempt just before a restore is never taken for one just after it).
   */
  onOnline: (g: FleetGateway, attemptAt: number) => void
  /** Nothing waits: every alarm receipted, the status and the batch acknowledged. */
  onDrained: (g: FleetGateway) => void
  /** A connection attempt failed or a connection was lost; `reason` is the Uplink's, without URLs and delays. */
  onFailure: (reason: string, attemptAt: number) => void
}

export class FleetGateway {
  readonly id: string
  readonly #o: FleetGatewayOptions
  readonly #store = new MemoryStore()
  readonly #gateway: Gateway
  readonly #uplink: Uplink
  /** When the current (or last) connection attempt began, performance.now(). */
  #attemptAt = 0
  #timer: NodeJS.Timeout | null = null
  #nextNumber = 1
  /** Alarms stored since the last outage began. */
  #alarms: string[] = []
  /** The gateway status has been acknowledged since the last birth. */
  #statusAcked = false
  /** Bytes of the batches acknowledged since the last outage began. */
  batchBytes = 0
  /** When the last receipt arrived, ms. */
  receiptAt: number | null = null

  constructor(o: FleetGatewayOptions) {
    this.#o = o
    this.id = o.id
    const settings: GatewaySettings = {
      gateway: o.id,
      area: o.area,
      prefix: o.prefix,
      encoding: 'cbor',
      // No terminal is on the line (see above): none is to be reported lost during the run.
      supervisionMs: 86_400_000,
      receiptTimeoutMs: 60_000,
      heartbeatS: 10,
      statusIntervalMs: o.statusEveryMs,
      version: 'bench-fleet',
    }
    const boot = this.#store.bump('gateway-boot')
    // The gateway's own record of the terminals it knew (gateway.ts, `terminals`).
    const known = Array.from({ length: o.terminals }, (_, k) => ({ address: k + 1, terminal: this.#terminal(k), capabilities: [] }))
    this.#store.setMeta('terminals', JSON.stringify(known))
    // Late-bound, as in gateway/main.ts: the core needs the uplink, which needs the core.
    let uplink: Uplink | null = null
    this.#gateway = new Gateway(
      settings,
      this.#store,
      new GatewayLink({ gateway: o.id, boot, maxQueue: 256 }),
      {
        writeSerial: () => {},
        publish: (topic, payload, options) => (uplink ? this.#publish(uplink, topic, payload, options) : Promise.reject(new Error('uplink not started'))),
        online: () => uplink?.online ?? false,
        hurry: () => void uplink?.hurry(),
        now: () => Date.now(),
        random: seededRandom(o.seed + 1_000_000),
        compression: o.compression,
      },
      QUIET,
      boot,
    )
    const topics = this.#gateway.topics
    // Same overloads as mqtt.connect; notes when each attempt begins.
    const connect = (target: string | IClientOptions, opts?: IClientOptions): MqttClient => {
      this.#attemptAt = performance.now()
      return typeof target === 'string' ? o.connect(target, opts) : o.connect(target)
    }
    uplink = this.#uplink = new Uplink({
      brokers: [o.broker],
      clientId: `steppelink-gw-${o.id}`,
      keepaliveS: o.keepaliveS,
      subscriptions: [topics.command, topics.allCommand, ...(topics.areaCommand ? [topics.areaCommand] : [])],
      will: () => this.#gateway.will(),
      birth: () => this.#gateway.birth(),
      onCommand: (topic, payload, retained) => this.#command(topic, payload, retained),
      urgent: () => this.#gateway.alarmWaiting(),
      connect,
      random: seededRandom(o.seed),
      onState: (s) => this.#state(s),
    })
  }

  start(): void {
    this.#gateway.start()
    this.#uplink.start()
    const loop = () => {
      const next = this.#gateway.tick()
      this.#timer = setTimeout(loop, Math.max(10, Math.min(MAX_SLEEP_MS, next - Date.now())))
    }
    loop()
  }

  async stop(): Promise<void> {
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#gateway.stop()
    await this.#uplink.stop({ graceful: false })
    this.#store.close()
  }

  get waitingAlarms(): number {
    return this.#store.unreceiptedAlarms()
  }

  /** Alarm publications beyond the first of each (no receipt in time), since the last outage began. */
  get republished(): number {
    return this.#alarms.reduce((n, id) => n + Math.max(0, (this.#store.get(id)?.attempts ?? 0) - 1), 0)
  }

  /**
   * What the gateway piles up while its link is down: a HEARTBEAT of each terminal folded
   * in the store, and with `alarm` an alarm stored as from a terminal's EVENT. Returns how
   * many status folds wait.
   */
  buildBacklog(alarm: boolean): number {
    this.receiptAt = null
    this.batchBytes = 0
    this.#alarms = []
    const now = Date.now()
    for (let k = 0; k < this.#o.terminals; k++) {
      this.#store.putStatus(this.#terminal(k), k + 1, { uptime: Math.round(now / 1000) % 86_400, mains: true, battery: 87, millivolts: 4010 }, now)
    }
    if (alarm) {
      const e = this.#alarmEvent(this.#nextNumber++, now)
      if (this.#store.addEvent(e).kind !== 'added') throw new Error(`${e.id} not stored`)
      this.#alarms.push(e.id)
      // As the gateway does with a terminal's alarm stored while offline.
      if (!this.#uplink.online) this.#uplink.hurry()
    }
    return this.#store.dirtyStatuses().length
  }

  #state(s: UplinkState): void {
    if (!s.online) {
      if (s.retryInMs === undefined) return
      this.#o.onFailure((s.reason ?? '').replace(/; attempt \d+ in .*$/, '').replace(/mqtt:\/\/\S+/g, 'the broker'), this.#attemptAt)
      return
    }
    this.#statusAcked = false
    this.#o.onOnline(this, this.#attemptAt)
    this.#gateway.online()
  }

  #command(topic: string, payload: Buffer, retained: boolean): void {
    const waiting = this.#store.unreceiptedAlarms()
    this.#gateway.command(topic, payload, { retained })
    if (this.#store.unreceiptedAlarms() < waiting) {
      this.receiptAt = Date.now()
      this.#checkDrained()
    }
  }

  /** The gateway's io.publish: the uplink's, noting what the drain waits for. */
  async #publish(uplink: Uplink, topic: string, payload: Buffer, options?: { retain?: boolean }): Promise<void> {
    await uplink.publish(topic, payload, options)
    const topics = this.#gateway.topics
    if (topic === topics.status) this.#statusAcked = true
    if (topic === topics.batch) this.batchBytes += payload.length
    // The gateway updates its store when this resolves, a few promise steps on: look
    // once they have all run.
    setImmediate(() => this.#checkDrained())
  }

  #checkDrained(): void {
    if (!this.#statusAcked || this.#store.unreceiptedAlarms() > 0 || this.#store.dirtyStatuses().length > 0) return
    const backlog = this.#store.backlog()
    if (backlog.request.count + backlog.trouble.count + backlog.status.count > 0) return
    this.#o.onDrained(this)
  }

  #terminal(k: number): string {
    return `T-${this.id}-${k}`
  }

  /** An emergency press of terminal 0, as the gateway stores it ([MQTT-3.1] body without attempt and time). */
  #alarmEvent(number: number, now: number): NewEvent {
    const terminal = this.#terminal(0)
    const id = terminalEventId(terminal, '', number)
    const m = { type: 'EVENT' as const, number, kind: 'emergency' as const, boot: 1, uptime: Math.round(now / 1000) % 86_400 }
    const body = {
      v: MQTT_CONTRACT_VERSION,
      id,
      class: CLASS_OF.emergency,
      kind: m.kind,
      code: contactIdOf(m.kind),
      restore: EVENT_KINDS[m.kind].restore,
      gateway: this.id,
      terminal,
      address: 1,
      number,
    }
    return {
      id,
      terminal,
      address: 1,
      number,
      cls: CLASS_OF.emergency,
      body,
      receivedAt: now,
      boot: this.#gateway.clock.boot,
      offset: this.#gateway.clock.offset,
      epoch: '',
      fingerprint: eventFingerprint(m),
    }
  }
}
