/**
 * The uplink side: what the outbox (outbox.ts) says is due goes on the wire here, alarms
 * on their own lane and the backlog behind their PUBACKs; and the gateway's own state for
 * the platform: birth, death (the Last Will) and the retained status. [MQTT-2.x] [MQTT-4.x]
 *
 * A PUBACK moves an alarm to `sent` and a request too; their terminals are told
 * (to-the-button.ts). Failures never throw out of here: what is not published stays in the
 * store and goes at the next chance.
 */

import { assertNever } from '../protocol/errors.js'
import type { GatewayLink } from '../protocol/link.js'
import { MQTT_CONTRACT_VERSION, encodePayload, type Birth, type GatewayTopics } from '../protocol/mqtt.js'
import type { GatewayClock } from './clock.js'
import type { CommandAuth } from './commands/auth.js'
import { BatchEncoder } from './compression.js'
import type { GatewayIo, GatewaySettings, Log } from './gateway.js'
import type { KnownTerminals } from './known-terminals.js'
import type { Outbox, Publication } from './outbox.js'
import { ReplyBudget } from './reply-budget.js'
import type { Store } from './store.js'
import type { ToTheButton } from './to-the-button.js'
import type { UplinkErrorCode } from './uplink.js'

/** Rejections of io.publish that mean only "the uplink went away": the backlog waits for it. */
const OFFLINE_CODES: ReadonlySet<unknown> = new Set<UplinkErrorCode>(['UPLINK_OFFLINE', 'UPLINK_CLOSED'])

export interface PublishingDeps {
  settings: GatewaySettings
  topics: GatewayTopics
  store: Store
  link: GatewayLink
  clock: GatewayClock
  outbox: Outbox
  io: Pick<GatewayIo, 'publish' | 'online' | 'now' | 'compression' | 'tls'>
  log: Log
  known: KnownTerminals
  toButton: ToTheButton
  /** When the gateway started, gateway clock, ms (its uptime in the status). */
  startedAt: number
  /** Whether commands are authenticated, and with which key (the status). [MQTT-5.12] */
  auth: Pick<CommandAuth, 'authenticated' | 'activeKeyId'>
}

export class Publishing {
  readonly #inFlight = new Set<string>()
  readonly #batches: BatchEncoder
  /** Backlog failures other than going offline: logged at once, then one line a minute. */
  readonly #backlogWarnings = new ReplyBudget({ burst: 1, perMinute: 1 })
  #backlogBusy = false
  /** Settles when the alarms last put on the wire have their PUBACK (or failed). */
  #alarmsOut: Promise<unknown> = Promise.resolve()
  #session = 0
  #nextGatewayStatus = 0
  #stopped = false

  constructor(private readonly d: PublishingDeps) {
    this.#batches = new BatchEncoder({ ...(d.io.compression ? { compression: d.io.compression } : {}), log: d.log, now: d.io.now })
  }

  /** The session of the current (or next) connection: in the birth, the death and the status; a `time` names it. [MQTT-2.2] [MQTT-5.8] */
  get session(): number {
    return this.#session
  }

  /** Publishes whatever is due while the uplink is online. Safe to call at any time. */
  async pump(): Promise<void> {
    const { outbox, io, log } = this.d
    if (this.#stopped || !io.online()) return
    const now = io.now()
    const alarms = outbox.nextAlarms(now, this.#inFlight).map((p) => this.#publishAlarm(p))
    if (alarms.length > 0) this.#alarmsOut = Promise.all(alarms)
    if (this.#backlogBusy) return
    this.#backlogBusy = true
    try {
      // The backlog goes behind the alarms' PUBACKs, not beside them: on a 20 kbit/s link the
      // bytes written right after an alarm share its TCP segment and hold it back (bench
      // `outage`: about 150 ms for a status). #publishAlarm never rejects.
      await this.#alarmsOut
      for (let p = outbox.nextBacklog(io.now()); p && io.online() && !this.#stopped; p = outbox.nextBacklog(io.now())) {
        await this.#publish(p)
        outbox.published(p, io.now())
        this.#casesSent(p)
      }
    } catch (err) {
      // Going offline mid-drain is expected, and the backlog waits in the store. Anything
      // else can stop the backlog for good (a batch zstd could not compress did, unseen at
      // debug level), so it is a warning; rate-limited, because pump() runs every second.
      if (!io.online() || OFFLINE_CODES.has((err as { code?: unknown }).code)) {
        log.debug({ err: (err as Error).message }, 'backlog publication interrupted; it stays in the store')
      } else {
        const line = this.#backlogWarnings.take(io.now())
        if (line.send) log.warn({ err, ...(line.suppressed > 0 ? { suppressed: line.suppressed } : {}) }, 'backlog publication failed; it stays in the store and is tried again')
      }
    } finally {
      this.#backlogBusy = false
    }
  }

  /**
   * A request (a call-back) is published once, not until a receipt (it is not an
   * emergency), and stays a case: at the broker's PUBACK its terminal is told `sent`; the
   * platform's receipt and answers move it on like an alarm's. [MQTT-4.6]
   */
  #casesSent(p: Publication): void {
    for (const id of p.ids) {
      const e = this.d.store.get(id)
      if (e?.cls === 'request' && e.stage === 'sent') this.d.toButton.indicate(e)
    }
  }

  async #publishAlarm(p: Publication): Promise<void> {
    const { store, outbox, io, log, toButton } = this.d
    const id = p.ids[0]!
    this.#inFlight.add(id)
    try {
      await this.#publish(p)
      const before = store.get(id)
      outbox.published(p, io.now())
      const after = store.get(id)
      log.info({ id, attempt: after?.attempts }, 'alarm published')
      if (before?.stage === 'stored' && after?.stage === 'sent') toButton.indicate(after)
    } catch (err) {
      log.debug({ id, err: (err as Error).message }, 'alarm publication failed; retrying when the link allows')
    } finally {
      this.#inFlight.delete(id)
    }
  }

  async #publish(p: Publication): Promise<void> {
    const { topics, io } = this.d
    const enc = this.d.settings.encoding
    switch (p.kind) {
      case 'alert':
        return io.publish(topics.alert, encodePayload(p.payload, enc))
      case 'event':
        return io.publish(topics.event, encodePayload(p.payload, enc))
      case 'batch':
        return io.publish(topics.batch, await this.#batches.encode(p.payload, enc))
      default:
        return assertNever(p, 'publication')
    }
  }

  /**
   * Asked before each connection attempt: a new session (the counter goes up by one), and
   * its death to register as the Last Will. The birth that follows names the same
   * session, so the platform can tell a late death of an old connection from the death
   * of the current one. [MQTT-2.2]
   */
  will(): { topic: string; payload: Buffer } {
    this.#session = this.d.store.bump('birth')
    return this.death()
  }

  /** The birth message of the current session (published on connect, and on rebirth). [MQTT-2.2] */
  birth(): { topic: string; payload: Buffer } {
    const { settings } = this.d
    if (this.#session === 0) this.#session = this.d.store.bump('birth')
    const b: Birth = {
      v: MQTT_CONTRACT_VERSION,
      type: 'birth',
      gateway: settings.gateway,
      online: true,
      session: this.#session,
      time: this.d.clock.now(),
      version: settings.version,
      encoding: settings.encoding,
      area: settings.area,
    }
    return { topic: this.d.topics.state, payload: encodePayload(b, settings.encoding) }
  }

  /** The platform asked for the birth again (it lost track of this gateway): retained, like the one on connect. */
  rebirth(): void {
    const b = this.birth()
    void this.d.io.publish(b.topic, b.payload, { retain: true }).catch(() => {})
  }

  /** The death message (Last Will, and on a clean stop) of the current session. */
  death(): { topic: string; payload: Buffer } {
    const { settings } = this.d
    const d: Birth = { v: MQTT_CONTRACT_VERSION, type: 'death', gateway: settings.gateway, online: false, session: this.#session }
    return { topic: this.d.topics.state, payload: encodePayload(d, settings.encoding) }
  }

  /** The gateway's own status: terminals, store, drops, link counters, clock, TLS certificate. Retained. */
  statusPayload(): Record<string, unknown> {
    const { settings, store, link, clock, io, known } = this.d
    const now = io.now()
    const tls = io.tls?.() ?? null
    return {
      v: MQTT_CONTRACT_VERSION,
      type: 'status',
      gateway: settings.gateway,
      session: this.#session,
      time: clock.now(),
      uptimeS: Math.round((now - this.d.startedAt) / 1000),
      clock: { synchronised: clock.synchronised, offsetMs: clock.offset },
      terminals: [...known.values()].map((t) => {
        const s = link.terminal(t.address)
        return {
          address: t.address,
          terminal: t.terminal,
          session: s?.state ?? 'closed',
          answering: s?.up ?? false,
          lost: t.lost,
          lastHeardS: s?.lastHeard != null ? Math.round((now - s.lastHeard) / 1000) : null,
          ...(t.claims !== undefined ? { claims: t.claims } : {}),
        }
      }),
      backlog: store.backlog(),
      openAlerts: store.openAlerts().map((e) => ({ id: e.id, class: e.cls, stage: e.stage })),
      counters: store.counters(),
      store: { writes: store.writes() },
      serial: link.stats(),
      compression: this.#batches.status(),
      ...(tls !== null ? { tls } : {}),
      commandsAuthenticated: this.d.auth.authenticated,
      platformKey: this.d.auth.activeKeyId,
    }
  }

  async publishStatus(): Promise<void> {
    try {
      await this.d.io.publish(this.d.topics.status, encodePayload(this.statusPayload(), this.d.settings.encoding), { retain: true })
    } catch (err) {
      this.d.log.debug({ err: (err as Error).message }, 'status not published; next interval')
    }
  }

  /** The gateway status goes out every status interval while online (the tick asks). */
  statusIfDue(now: number): void {
    if (this.d.io.online() && now >= this.#nextGatewayStatus) {
      this.#nextGatewayStatus = now + this.d.settings.statusIntervalMs
      void this.publishStatus()
    }
  }

  /**
   * Whether an alarm waits for the platform's receipt (unconfirmed ones too: they wait the
   * most): the uplink then retries sooner. [UPLINK-6]
   */
  alarmWaiting(): boolean {
    try {
      return this.d.store.unreceiptedAlarms() > 0
    } catch {
      return true // a failing store: err on the side of the alarm
    }
  }

  /**
   * The uplink came online: publish what waits, alarms first, every alarm without a
   * receipt at once, whatever its schedule (its receipt may have been lost with the last
   * connection). [MQTT-2.5] [MQTT-4.4]
   */
  online(): void {
    try {
      this.d.outbox.newConnection()
    } catch (err) {
      this.d.log.error({ err }, 'could not mark the waiting alarms due; they go at their own times')
    }
    void this.pump()
    // The gateway status too goes after the alarms pump() has just put on the wire (see
    // there why); the tick must not send it meanwhile.
    this.#nextGatewayStatus = Infinity
    void this.#alarmsOut.then(() => {
      this.#nextGatewayStatus = this.d.io.now() + this.d.settings.statusIntervalMs
      return this.publishStatus()
    })
  }

  /** Nothing more goes out (the process is stopping; the uplink sends the death). */
  stop(): void {
    this.#stopped = true
  }
}
