/**
 * The gateway's core: the serial link to the terminals on one side, the store and the
 * MQTT uplink on the other, and the rules between them. Its one promise: an alarm pressed
 * on a terminal is never lost, reaches the platform as soon as any link allows, and the
 * terminal always shows the honest state of it.
 *
 * I/O is injected (serial writes, MQTT publications, the clock), so tests drive the core
 * with a fake clock and an in-memory line; gateway/main.ts wires the real port and broker.
 *
 * Order of a press, and why:
 *   EVENT frame -> store.addEvent (fsync) -> link.accept (ACK: the terminal may now
 *   forget it) -> INDICATE stored -> publish on `alert` -> PUBACK: INDICATE sent ->
 *   platform receipt: INDICATE received -> operator commands: acknowledged, dispatched,
 *   resolved. No receipt within the receipt timeout: INDICATE unconfirmed ("call 110 by
 *   phone"), and the gateway keeps publishing.
 */

import { splitDisplayText } from '../protocol/display.js'
import type { GatewayLink, LinkEvent } from '../protocol/link.js'
import { EVENT_KINDS, contactIdOf, type DataMessage, type Event, type Hello, type Indicate, type Stage } from '../protocol/messages.js'
import {
  CLASS_OF,
  GATEWAY_KINDS,
  MQTT_CONTRACT_VERSION,
  encodePayload,
  gatewayTopics,
  parseCommand,
  type Birth,
  type Command,
  type Encoding,
  type GatewayKind,
  type GatewayTopics,
  type Reply,
} from '../protocol/mqtt.js'
import { GatewayClock } from './clock.js'
import { BatchEncoder, type BatchCompression } from './compression.js'
import { Outbox, type Publication } from './outbox.js'
import { DEFAULT_REPLY_BUDGET, ReplyBudget, type ReplyBudgetOptions } from './reply-budget.js'
import type { NewEvent, StoredEvent, Store } from './store.js'
import type { UplinkErrorCode } from './uplink.js'

export interface GatewaySettings {
  gateway: string
  area: string | null
  prefix: string
  encoding: Encoding
  /** No frame from a terminal for this long raises "terminal lost", ms. */
  supervisionMs: number
  /** An alarm without receipt this long after storing becomes unconfirmed, ms. */
  receiptTimeoutMs: number
  /** Terminal heartbeat interval, sent in CONFIG, s. */
  heartbeatS: number
  /** Terminal and gateway status go out this often, ms. */
  statusIntervalMs: number
  /** Software version, in the birth message. */
  version: string
  /** Error reports on the reply topic: a burst, then so many a minute. Default DEFAULT_REPLY_BUDGET. */
  replyBudget?: ReplyBudgetOptions
}

export interface Log {
  debug(fields: object, msg: string): void
  info(fields: object, msg: string): void
  warn(fields: object, msg: string): void
  error(fields: object, msg: string): void
}

export interface GatewayIo {
  writeSerial(bytes: Uint8Array): void
  /** QoS 1; resolves on PUBACK, rejects if offline or the connection drops first. */
  publish(topic: string, payload: Buffer, options?: { retain?: boolean }): Promise<void>
  online(): boolean
  /** An alarm was stored while offline: reconnect soon rather than at a retry minutes away. */
  hurry?(): void
  /** Gateway clock, ms. */
  now(): number
  random?: () => number
  /** How batches are compressed ([MQTT-4.2]), or the finding of it. Default: findCompression() (@mongodb-js/zstd, else node:zlib, else none). */
  compression?: BatchCompression | Promise<BatchCompression>
}

interface KnownTerminal {
  address: number
  terminal: string
  lost: boolean
}

/** Stages shown on the terminal for alarm and request classes. */
const INDICATED_CLASSES = new Set(['alarm', 'request'])
/** A terminal shows alerts resolved this recently again after a restart, ms. */
const RECENT_MS = 3_600_000
const BOUNDS_EVERY_MS = 60_000
const INDICATE_PRIORITY = 10
const INDICATE_TEXT_MAX_BYTES = 120
/** Messages queued to a terminal beyond which INDICATEs of one alert replace each other. */
const INDICATE_BACKLOG = 8
/** Rejections of io.publish that mean only "the uplink went away": the backlog waits for it. */
const OFFLINE_CODES: ReadonlySet<unknown> = new Set<UplinkErrorCode>(['UPLINK_OFFLINE', 'UPLINK_CLOSED'])

export class Gateway {
  readonly topics: GatewayTopics
  readonly clock: GatewayClock
  readonly outbox: Outbox
  readonly #terminals = new Map<number, KnownTerminal>()
  readonly #inFlight = new Set<string>()
  readonly #recentCommands: string[] = []
  readonly #replyBudgetOptions: ReplyBudgetOptions
  readonly #replyBudget: ReplyBudget
  readonly #batches: BatchEncoder
  /** Backlog failures other than going offline: logged at once, then one line a minute. */
  readonly #backlogWarnings = new ReplyBudget({ burst: 1, perMinute: 1 })
  #backlogBusy = false
  /** Settles when the alarms last put on the wire have their PUBACK (or failed). */
  #alarmsOut: Promise<unknown> = Promise.resolve()
  #session = 0
  #startedAt: number
  #nextBounds = 0
  #nextGatewayStatus = 0
  #stopped = false

  constructor(
    private readonly settings: GatewaySettings,
    private readonly store: Store,
    private readonly link: GatewayLink,
    private readonly io: GatewayIo,
    private readonly log: Log,
    boot: number,
  ) {
    this.topics = gatewayTopics(settings.prefix, settings.gateway, settings.area)
    this.clock = new GatewayClock(store, boot, io.now)
    // Getters: the platform's `config` command changes these while running.
    this.outbox = new Outbox(store, this.clock, {
      gateway: settings.gateway,
      get receiptTimeoutMs() {
        return settings.receiptTimeoutMs
      },
      get statusIntervalMs() {
        return settings.statusIntervalMs
      },
      ...(io.random ? { random: io.random } : {}),
    })
    this.#replyBudgetOptions = settings.replyBudget ?? DEFAULT_REPLY_BUDGET
    this.#replyBudget = new ReplyBudget(this.#replyBudgetOptions)
    this.#batches = new BatchEncoder({ ...(io.compression ? { compression: io.compression } : {}), log, now: io.now })
    this.#startedAt = io.now()
    this.#loadSettings()
    for (const t of JSON.parse(store.meta('terminals') ?? '[]') as KnownTerminal[]) this.#terminals.set(t.address, { ...t, lost: false })
  }

  /** Logs the state the gateway starts from. The announcement waits for the port: serialOpened(). */
  start(): void {
    const open = this.store.openAlerts()
    this.log.info(
      { terminals: this.#terminals.size, openAlerts: open.length, backlog: this.store.backlog(), clockSynchronised: this.clock.synchronised },
      'gateway started',
    )
  }

  // ------------------------------------------------------------------ serial side

  /**
   * The serial port is open (at start, or again after an unplug): tell the terminals that
   * this gateway is there, so that a terminal that knew another boot of it says HELLO at
   * once rather than at its next retry. [LINK-7.3]
   */
  serialOpened(): void {
    this.link.announce()
    this.#flushSerial()
  }

  /** Bytes from the serial port. */
  serialData(bytes: Uint8Array): void {
    this.link.receive(bytes, this.io.now())
    this.#drainLink()
  }

  #drainLink(): void {
    for (let e = this.link.nextEvent(); e; e = this.link.nextEvent()) {
      try {
        this.#onLinkEvent(e)
      } catch (err) {
        // One bad event must not stop the others, nor the gateway.
        this.log.error({ err, event: e.kind }, 'internal error handling a link event')
        // A message left without an answer stops the terminal's line for good (each copy it
        // sends again is a duplicate of the one awaited): NAK busy, it sends it again later.
        // A no-op if it was answered before the error.
        if (e.kind === 'message') this.link.defer(e.ref)
      }
    }
    this.#flushSerial()
    void this.pump()
  }

  #flushSerial(): void {
    for (let out = this.link.transmit(); out; out = this.link.transmit()) this.io.writeSerial(out)
  }

  #onLinkEvent(e: LinkEvent): void {
    switch (e.kind) {
      case 'session':
        return this.#onSession(e.peer, e.hello!, e.restarted)
      case 'message':
        return this.#onMessage(e.from, e.ref, e.message)
      case 'liveness':
        this.log.info({ address: e.peer, terminal: this.#terminals.get(e.peer)?.terminal, up: e.up }, e.up ? 'terminal answers again' : 'terminal not answering')
        return
      case 'dropped':
        if (e.reason === 'queue-full') this.log.warn({ address: e.to, message: e.message.type }, 'message to terminal dropped: its queue is full')
        return
      case 'refused':
        this.log.warn({ address: e.to, message: e.message.type, reason: e.reason }, 'terminal refused a message')
        return
      case 'delivered':
      case 'frame-error':
        return // counted by the link; summarised in the status
    }
  }

  #onSession(address: number, hello: Hello, restarted: boolean): void {
    const previous = this.#terminals.get(address)
    if (previous && previous.terminal !== hello.terminal) {
      this.log.warn({ address, was: previous.terminal, now: hello.terminal }, 'a different terminal answers at this address')
    }
    this.#terminals.set(address, { address, terminal: hello.terminal, lost: previous?.lost ?? false })
    this.#saveTerminals()
    this.log.info({ address, terminal: hello.terminal, firmware: hello.firmware, boot: hello.boot, lastEvent: hello.lastEvent, restarted }, 'terminal session open')
    this.link.send(address, { type: 'CONFIG', heartbeat: this.settings.heartbeatS })
    if (this.clock.synchronised) this.link.send(address, { type: 'TIME', unix: Math.floor(this.clock.now().at / 1000), estimate: false })
    // The terminal may have lost its display state: show each open alert's stage again.
    for (const alert of this.store.recentAlerts(hello.terminal, this.io.now() - RECENT_MS)) this.#indicate(alert)
    for (const b of this.store.activeBroadcasts(this.clock.now().at)) this.#display(address, b.id, b.text, b.urgency, b.expires)
  }

  #onMessage(address: number, ref: number, m: DataMessage): void {
    const terminal = this.#terminals.get(address)
    if (!terminal) {
      // Only possible if the link delivered before a session: accept, it is a link bug.
      this.log.error({ address, message: m.type }, 'message from a terminal without a session')
      this.link.accept(ref)
      return
    }
    this.#heard(terminal)
    switch (m.type) {
      case 'EVENT':
        return this.#onEvent(terminal, ref, m)
      case 'HEARTBEAT': {
        const { type: _type, ...heartbeat } = m
        // A heartbeat is never worth a NAK: stored, refused or failed, the terminal gets its ACK.
        try {
          if (!this.store.putStatus(terminal.terminal, address, heartbeat, this.io.now())) {
            this.log.debug({ terminal: terminal.terminal, reserveMB: this.store.limits.reserveMB }, 'disk nearly full: heartbeat dropped and counted to keep room for alarms')
          }
        } catch (err) {
          this.log.warn({ err, terminal: terminal.terminal }, 'could not store a heartbeat; it is dropped')
          try {
            this.store.count('dropped.status.error')
          } catch {
            // The disk is full: the line above says it.
          }
        }
        this.link.accept(ref)
        return
      }
      case 'DISPLAY_READ':
        this.#gatewayEvent('broadcast-read', terminal, `broadcast ${m.id}`, { broadcast: m.id })
        this.link.accept(ref)
        return
      default:
        // Gateway-to-terminal types are refused by the link before they get here.
        this.link.accept(ref)
    }
  }

  #onEvent(t: KnownTerminal, ref: number, m: Event): void {
    const id = `${t.terminal}:${m.number}`
    const cls = CLASS_OF[m.kind]
    const body = {
      v: MQTT_CONTRACT_VERSION,
      id,
      class: cls,
      kind: m.kind,
      code: contactIdOf(m.kind),
      restore: EVENT_KINDS[m.kind].restore,
      gateway: this.settings.gateway,
      terminal: t.terminal,
      address: t.address,
      number: m.number,
      ...(m.user !== undefined ? { user: m.user } : {}),
      ...(m.time !== undefined ? { terminalTime: m.time * 1000 } : {}),
    }
    const event: NewEvent = {
      id,
      terminal: t.terminal,
      address: t.address,
      number: m.number,
      cls,
      body,
      receivedAt: this.io.now(),
      boot: this.clock.boot,
      offset: this.clock.offset,
    }
    let result
    try {
      result = this.store.addEvent(event)
    } catch (err) {
      // The disk failed (full, read-only SD card): the terminal keeps the event in its
      // non-volatile memory and retries on NAK busy; nothing is lost, and the log says why.
      this.link.defer(ref)
      this.log.error({ err, id, class: cls }, 'could not store an event; the terminal keeps it and will send it again')
      return
    }
    this.link.accept(ref)
    switch (result.kind) {
      case 'added':
        this.log.info({ id, class: cls, kind: m.kind, terminal: t.terminal, address: t.address }, cls === 'alarm' ? 'ALARM stored' : 'event stored')
        if (INDICATED_CLASSES.has(cls)) this.#indicate(result.event)
        if (cls === 'alarm' && !this.io.online()) this.io.hurry?.()
        return
      case 'duplicate':
        this.log.info({ id, stage: result.event.stage }, 'event already stored (retransmitted or replayed)')
        if (INDICATED_CLASSES.has(cls)) this.#indicate(result.event)
        return
      case 'refused':
        this.log.warn({ id, class: cls, kind: m.kind, reason: result.reason, reserveMB: this.store.limits.reserveMB }, 'disk nearly full: event dropped and counted to keep room for alarms')
        return
    }
  }

  /** Shows an alert's stage on its terminal; newer stages replace queued older ones. */
  #indicate(e: StoredEvent, extra: Pick<Indicate, 'text' | 'eta'> = {}): void {
    if (e.number === null || e.terminal === null) return
    const address = [...this.#terminals.values()].find((t) => t.terminal === e.terminal)?.address ?? e.address
    if (address === null) return
    // Operators' texts can be longer than a terminal's line: cut at a character boundary.
    const text = extra.text === undefined ? undefined : splitDisplayText(extra.text, INDICATE_TEXT_MAX_BYTES, 1).parts[0]
    const message: Indicate = { type: 'INDICATE', event: e.number, stage: e.stage, ...(text ? { text } : {}), ...(extra.eta !== undefined ? { eta: extra.eta } : {}) }
    this.link.send(address, message, this.#indicateOptions(address, e.number))
    this.#flushSerial()
  }

  /**
   * While the line to a terminal keeps up, every stage goes in turn. Once a backlog builds
   * (a terminal that was away, a burst of alarms), a newer stage replaces one of the same
   * alert not yet sent: the queue then holds each alert's latest stage, and never
   * overflows into dropping one.
   */
  #indicateOptions(address: number, event: number): { priority: number; coalesce?: string } {
    const busy = (this.link.terminal(address)?.queued ?? 0) >= INDICATE_BACKLOG
    return busy ? { priority: INDICATE_PRIORITY, coalesce: `indicate:${event}` } : { priority: INDICATE_PRIORITY }
  }

  #display(address: number, id: number, text: string, urgency: 'info' | 'warning' | 'urgent', expires: number | null): void {
    const { parts, truncated } = splitDisplayText(text)
    if (truncated) this.log.warn({ broadcast: id }, 'broadcast text too long for the terminal display: cut after 15 parts')
    parts.forEach((part, i) =>
      this.link.send(address, {
        type: 'DISPLAY',
        id,
        text: part,
        urgency,
        ...(expires !== null ? { expires: Math.floor(expires / 1000) } : {}),
        ...(parts.length > 1 ? { part: i + 1, parts: parts.length } : {}),
      }),
    )
  }

  #gatewayEvent(kind: GatewayKind, t: KnownTerminal | null, text?: string, extra: Record<string, unknown> = {}): void {
    let n: number
    try {
      n = this.store.bump('gateway-event')
    } catch (err) {
      this.log.error({ err, kind, terminal: t?.terminal }, 'could not store a gateway event')
      return
    }
    const id = `${this.settings.gateway}:g${n}`
    const cls = CLASS_OF[kind]
    const body = {
      v: MQTT_CONTRACT_VERSION,
      id,
      class: cls,
      kind,
      code: GATEWAY_KINDS[kind].code,
      restore: GATEWAY_KINDS[kind].restore,
      gateway: this.settings.gateway,
      terminal: t?.terminal ?? null,
      address: t?.address ?? null,
      number: null,
      ...(text !== undefined ? { text } : {}),
      ...extra,
    }
    try {
      const r = this.store.addEvent({ id, terminal: null, address: t?.address ?? null, number: null, cls, body, receivedAt: this.io.now(), boot: this.clock.boot, offset: this.clock.offset })
      if (r.kind === 'refused') this.log.warn({ id, kind }, 'disk nearly full: gateway event dropped and counted')
    } catch (err) {
      this.log.error({ err, id, kind }, 'could not store a gateway event')
    }
    this.log.info({ id, kind, terminal: t?.terminal }, `gateway event: ${kind}`)
  }

  #heard(t: KnownTerminal): void {
    if (!t.lost) return
    t.lost = false
    this.#gatewayEvent('terminal-restored', t)
  }

  #supervise(now: number): number | null {
    let next: number | null = null
    for (const t of this.#terminals.values()) {
      const last = Math.max(this.link.terminal(t.address)?.lastHeard ?? 0, this.#startedAt)
      if (!t.lost && now - last >= this.settings.supervisionMs) {
        t.lost = true
        this.#gatewayEvent('terminal-lost', t)
      } else if (t.lost && now - last < this.settings.supervisionMs) {
        this.#heard(t)
      }
      const d = last + this.settings.supervisionMs
      if (!t.lost && (next === null || d < next)) next = d
    }
    return next
  }

  #saveTerminals(): void {
    this.store.setMeta('terminals', JSON.stringify([...this.#terminals.values()].map(({ address, terminal }) => ({ address, terminal }))))
  }

  // ------------------------------------------------------------------ time

  /**
   * Runs everything that is due: link retransmissions, receipt deadlines, supervision,
   * store bounds, status. Returns when to be called again (gateway clock), at the latest
   * a second from now so that a stuck deadline cannot sleep for ever.
   */
  tick(): number {
    const now = this.io.now()
    const deadlines: (number | null)[] = [now + 1_000]
    try {
      deadlines.push(this.link.tick(now))
      this.#drainLink()
      for (const e of this.outbox.overdue(now)) {
        this.log.warn({ id: e.id, terminal: e.terminal, receiptTimeoutMs: this.settings.receiptTimeoutMs }, 'ALARM NOT CONFIRMED by the platform: terminal told to call 110 by phone; still trying')
        this.#indicate(e)
      }
      deadlines.push(this.#supervise(now))
      if (now >= this.#nextBounds) {
        const dropped = this.store.enforceBounds(now)
        if (Object.keys(dropped).length > 0) this.log.warn({ dropped, limits: this.store.limits }, 'store limits reached: oldest lower-class events dropped and counted')
        this.#nextBounds = now + BOUNDS_EVERY_MS
      }
      // A fold still unpublished after two status intervals waits for the uplink: keep it
      // on disk (once per such wait), so that a reboot does not lose it.
      this.store.flushStatuses(now, 2 * this.settings.statusIntervalMs)
      deadlines.push(this.#nextBounds, this.outbox.nextDeadline(now, this.io.online()))
      if (this.io.online() && now >= this.#nextGatewayStatus) {
        this.#nextGatewayStatus = now + this.settings.statusIntervalMs
        void this.publishStatus()
      }
      void this.pump()
    } catch (err) {
      this.log.error({ err }, 'internal error in the gateway tick')
    }
    // Never in the past: a caller that sleeps until then must not spin.
    return Math.max(now + 1, Math.min(...deadlines.filter((d): d is number => d !== null)))
  }

  // ------------------------------------------------------------------ uplink

  /** Publishes whatever is due while the uplink is online. Safe to call at any time. */
  async pump(): Promise<void> {
    if (this.#stopped || !this.io.online()) return
    const now = this.io.now()
    const alarms = this.outbox.nextAlarms(now, this.#inFlight).map((p) => this.#publishAlarm(p))
    if (alarms.length > 0) this.#alarmsOut = Promise.all(alarms)
    if (this.#backlogBusy) return
    this.#backlogBusy = true
    try {
      // The backlog goes behind the alarms' PUBACKs, not beside them: on a 20 kbit/s link the
      // bytes written right after an alarm share its TCP segment and hold it back (bench
      // `outage`: about 150 ms for a status). #publishAlarm never rejects.
      await this.#alarmsOut
      for (let p = this.outbox.nextBacklog(this.io.now()); p && this.io.online() && !this.#stopped; p = this.outbox.nextBacklog(this.io.now())) {
        await this.#publish(p)
        this.outbox.published(p, this.io.now())
        this.#requestsSent(p)
      }
    } catch (err) {
      // Going offline mid-drain is expected, and the backlog waits in the store. Anything
      // else can stop the backlog for good (a batch zstd could not compress did, unseen at
      // debug level), so it is a warning; rate-limited, because pump() runs every second.
      if (!this.io.online() || OFFLINE_CODES.has((err as { code?: unknown }).code)) {
        this.log.debug({ err: (err as Error).message }, 'backlog publication interrupted; it stays in the store')
      } else {
        const line = this.#backlogWarnings.take(this.io.now())
        if (line.send) this.log.warn({ err, ...(line.suppressed > 0 ? { suppressed: line.suppressed } : {}) }, 'backlog publication failed; it stays in the store and is tried again')
      }
    } finally {
      this.#backlogBusy = false
    }
  }

  /**
   * A call-back request is done at the broker's PUBACK (it is not an alarm: no receipt is
   * awaited); its terminal is told it is `sent`, the last stage it will see.
   */
  #requestsSent(p: Publication): void {
    if (p.kind === 'alert') return
    const items = p.kind === 'batch' ? p.payload.items : [p.payload]
    for (const item of items) {
      if (item.class !== 'request' || !('number' in item) || item.number === null || item.terminal === null) continue
      const address = [...this.#terminals.values()].find((t) => t.terminal === item.terminal)?.address
      if (address !== undefined) this.link.send(address, { type: 'INDICATE', event: item.number, stage: 'sent' }, this.#indicateOptions(address, item.number))
    }
    this.#flushSerial()
  }

  async #publishAlarm(p: Publication): Promise<void> {
    const id = p.ids[0]!
    this.#inFlight.add(id)
    try {
      await this.#publish(p)
      const before = this.store.get(id)
      this.outbox.published(p, this.io.now())
      const after = this.store.get(id)
      this.log.info({ id, attempt: after?.attempts }, 'alarm published')
      if (before?.stage === 'stored' && after?.stage === 'sent') this.#indicate(after)
    } catch (err) {
      this.log.debug({ id, err: (err as Error).message }, 'alarm publication failed; retrying when the link allows')
    } finally {
      this.#inFlight.delete(id)
    }
  }

  async #publish(p: Publication): Promise<void> {
    const enc = this.settings.encoding
    switch (p.kind) {
      case 'alert':
        return this.io.publish(this.topics.alert, encodePayload(p.payload, enc))
      case 'event':
        return this.io.publish(this.topics.event, encodePayload(p.payload, enc))
      case 'batch':
        return this.io.publish(this.topics.batch, await this.#batches.encode(p.payload, enc))
    }
  }

  /**
   * Asked before each connection attempt: a new session (the counter goes up by one), and
   * its death to register as the Last Will. The birth that follows names the same
   * session, so the platform can tell a late death of an old connection from the death
   * of the current one. [MQTT-2.2]
   */
  will(): { topic: string; payload: Buffer } {
    this.#session = this.store.bump('birth')
    return this.death()
  }

  /** The birth message of the current session (published on connect, and on rebirth). [MQTT-2.2] */
  birth(): { topic: string; payload: Buffer } {
    if (this.#session === 0) this.#session = this.store.bump('birth')
    const b: Birth = {
      v: MQTT_CONTRACT_VERSION,
      type: 'birth',
      gateway: this.settings.gateway,
      online: true,
      session: this.#session,
      time: this.clock.now(),
      version: this.settings.version,
      encoding: this.settings.encoding,
      area: this.settings.area,
    }
    return { topic: this.topics.state, payload: encodePayload(b, this.settings.encoding) }
  }

  /** The death message (Last Will, and on a clean stop) of the current session. */
  death(): { topic: string; payload: Buffer } {
    const d: Birth = { v: MQTT_CONTRACT_VERSION, type: 'death', gateway: this.settings.gateway, online: false, session: this.#session }
    return { topic: this.topics.state, payload: encodePayload(d, this.settings.encoding) }
  }

  /** The gateway's own status: terminals, store, drops, link counters, clock. Retained. */
  statusPayload(): Record<string, unknown> {
    const now = this.io.now()
    return {
      v: MQTT_CONTRACT_VERSION,
      type: 'status',
      gateway: this.settings.gateway,
      session: this.#session,
      time: this.clock.now(),
      uptimeS: Math.round((now - this.#startedAt) / 1000),
      clock: { synchronised: this.clock.synchronised, offsetMs: this.clock.offset },
      terminals: [...this.#terminals.values()].map((t) => {
        const s = this.link.terminal(t.address)
        return { address: t.address, terminal: t.terminal, session: s?.state ?? 'closed', answering: s?.up ?? false, lost: t.lost, lastHeardS: s?.lastHeard != null ? Math.round((now - s.lastHeard) / 1000) : null }
      }),
      backlog: this.store.backlog(),
      openAlerts: this.store.openAlerts().map((e) => ({ id: e.id, stage: e.stage })),
      counters: this.store.counters(),
      serial: this.link.stats(),
      compression: this.#batches.status(),
    }
  }

  async publishStatus(): Promise<void> {
    try {
      await this.io.publish(this.topics.status, encodePayload(this.statusPayload(), this.settings.encoding), { retain: true })
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, 'status not published; next interval')
    }
  }

  /** Whether an alarm waits for the platform's receipt: the uplink then retries sooner. */
  alarmWaiting(): boolean {
    try {
      return this.store.awaitingReceipt(Infinity).length > 0
    } catch {
      return true // a failing store: err on the side of the alarm
    }
  }

  /** The uplink came online: publish what waits, alarms first. */
  online(): void {
    void this.pump()
    // The gateway status too goes after the alarms pump() has just put on the wire (see
    // there why); tick() must not send it meanwhile.
    this.#nextGatewayStatus = Infinity
    void this.#alarmsOut.then(() => {
      this.#nextGatewayStatus = this.io.now() + this.settings.statusIntervalMs
      return this.publishStatus()
    })
  }

  // ------------------------------------------------------------------ commands

  /**
   * A payload on one of the command topics. Never throws [MQTT-5.2]: it runs inside the
   * MQTT client's PUBLISH handler, where an exception ends the process before the PUBACK,
   * and the broker then delivers the same payload again to the restarted gateway.
   */
  command(topic: string, payload: Buffer): void {
    try {
      this.#command(topic, payload)
    } catch (err) {
      this.log.error({ err, topic, bytes: payload.length }, 'internal error handling a command payload; it is dropped')
    }
  }

  #command(topic: string, payload: Buffer): void {
    const parsed = parseCommand(payload)
    if (!parsed.ok) {
      this.#count('commands.rejected')
      const sent = this.#reply(topic, parsed.id, parsed.code, parsed.message)
      // A flood of bad commands must not flood the log (journald on the SD card) either:
      // the rejections whose report is held back are logged at debug, and counted.
      this.log[sent ? 'warn' : 'debug']({ topic, code: parsed.code, command: parsed.id, bytes: payload.length }, `command rejected: ${parsed.message}`)
      return
    }
    const c = parsed.command
    if (this.#recentCommands.includes(c.id)) {
      this.log.debug({ command: c.id }, 'command repeated; ignored')
      return
    }
    this.#recentCommands.push(c.id)
    if (this.#recentCommands.length > 1000) this.#recentCommands.shift()
    try {
      this.#apply(topic, c)
      this.#flushSerial()
    } catch (err) {
      this.log.error({ err, command: c.id, type: c.type }, 'internal error applying a command')
      this.#reply(topic, c.id, 'CMD_FAILED', `the gateway could not apply it: ${(err as Error).message}`)
    }
    void this.pump()
  }

  #apply(topic: string, c: Command): void {
    const now = this.io.now()
    const stage = (alert: string, to: Stage, extra: Pick<Indicate, 'text' | 'eta'>) => {
      const e = this.store.advance(alert, to, now)
      if (e) {
        this.log.info({ id: alert, stage: to, command: c.id }, `alert ${to}`)
        this.#indicate(e, extra)
      } else if (!this.store.get(alert)) {
        this.#reply(topic, c.id, 'CMD_UNKNOWN_ALERT', `no alert ${alert} at this gateway (resolved long ago, or another gateway's)`)
      }
    }
    switch (c.type) {
      case 'receipt':
        for (const id of c.ids) {
          const e = this.store.advance(id, 'received', now)
          if (e) {
            this.log.info({ id, afterMs: now - e.receivedAt }, 'alarm received by the platform')
            this.#indicate(e)
          }
        }
        return
      case 'acknowledged':
        return stage(c.alert, 'acknowledged', { text: c.text ?? c.by })
      case 'dispatched':
        return stage(c.alert, 'dispatched', { text: c.unit, ...(c.eta !== undefined ? { eta: c.eta } : {}) })
      case 'resolved':
        return stage(c.alert, 'resolved', c.text !== undefined ? { text: c.text } : {})
      case 'broadcast': {
        const b = { id: c.broadcast, text: c.text, urgency: c.urgency, expires: c.expires ?? null, receivedAt: now }
        this.store.addBroadcast(b)
        const sessions = [...this.#terminals.values()].filter((t) => this.link.terminal(t.address)?.state === 'open')
        for (const t of sessions) this.#display(t.address, b.id, b.text, b.urgency, b.expires)
        this.log.info({ broadcast: c.broadcast, urgency: c.urgency, terminals: sessions.length }, 'broadcast sent to terminals')
        return
      }
      case 'time': {
        const offset = this.clock.setPlatformTime(c.now)
        this.log.info({ offsetMs: offset }, 'clock synchronised with the platform')
        for (const t of this.#terminals.values()) this.link.send(t.address, { type: 'TIME', unix: Math.floor(c.now / 1000), estimate: false }, { coalesce: 'time' })
        return
      }
      case 'config': {
        if (c.heartbeat !== undefined) this.settings.heartbeatS = c.heartbeat
        if (c.supervision !== undefined) this.settings.supervisionMs = c.supervision * 1000
        if (c.receiptTimeout !== undefined) this.settings.receiptTimeoutMs = c.receiptTimeout * 1000
        if (c.statusInterval !== undefined) this.settings.statusIntervalMs = c.statusInterval * 1000
        this.#saveSettings()
        if (c.heartbeat !== undefined) for (const t of this.#terminals.values()) this.link.send(t.address, { type: 'CONFIG', heartbeat: c.heartbeat }, { coalesce: 'config' })
        this.log.info({ heartbeatS: this.settings.heartbeatS, supervisionMs: this.settings.supervisionMs, receiptTimeoutMs: this.settings.receiptTimeoutMs, statusIntervalMs: this.settings.statusIntervalMs }, 'configuration changed by the platform')
        return
      }
      case 'status-request':
        this.outbox.requestStatus()
        void this.publishStatus()
        return
      case 'rebirth': {
        const b = this.birth()
        void this.io.publish(b.topic, b.payload, { retain: true }).catch(() => {})
        this.outbox.requestStatus()
        void this.publishStatus()
        return
      }
    }
  }

  /**
   * An error report on the reply topic, if the budget allows ([MQTT-5.2]): returns whether
   * it goes out. Held-back reports are counted (`replies.suppressed`), and the next one
   * that goes out says how many ([MQTT-3.8] `suppressed`).
   */
  #reply(topic: string, command: string | null, code: string, message: string): boolean {
    const decision = this.#replyBudget.take(this.io.now())
    if (!decision.send) {
      this.#count('replies.suppressed')
      if (decision.first) {
        this.log.warn(
          { burst: this.#replyBudgetOptions.burst, perMinute: this.#replyBudgetOptions.perMinute },
          'too many rejected commands: error reports to the platform are held back; the next report says how many, and the gateway status counts them (replies.suppressed)',
        )
      }
      return false
    }
    const r: Reply = {
      v: MQTT_CONTRACT_VERSION,
      type: 'error',
      gateway: this.settings.gateway,
      command,
      topic,
      code,
      message,
      time: this.clock.now(),
      ...(decision.suppressed > 0 ? { suppressed: decision.suppressed } : {}),
    }
    this.io.publish(this.topics.reply, encodePayload(r, this.settings.encoding)).catch(() => {
      // Offline: the log line already says it; error reports are not worth storing.
    })
    return true
  }

  /** A named counter in the store, for the status; a failing disk must not stop the caller. */
  #count(name: string): void {
    try {
      this.store.count(name)
    } catch {
      // A full or failing disk: the caller's log line still says what happened.
    }
  }

  /** Settings changed by the platform survive a restart. */
  #saveSettings(): void {
    const { heartbeatS, supervisionMs, receiptTimeoutMs, statusIntervalMs } = this.settings
    this.store.setMeta('settings', JSON.stringify({ heartbeatS, supervisionMs, receiptTimeoutMs, statusIntervalMs }))
  }

  #loadSettings(): void {
    const saved = this.store.meta('settings')
    if (saved) Object.assign(this.settings, JSON.parse(saved) as Partial<GatewaySettings>)
  }

  stop(): void {
    this.#stopped = true
  }
}
