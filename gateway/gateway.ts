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
 *   EVENT frame -> store.recognise (new, or a replay of one already taken) ->
 *   store.addEvent (fsync) -> link.accept (ACK: the terminal may now forget it) ->
 *   INDICATE stored -> publish on `alert` -> PUBACK: INDICATE sent -> platform receipt:
 *   INDICATE received -> operator commands: acknowledged, dispatched, resolved. No receipt
 *   within the receipt timeout: INDICATE unconfirmed ("call 110 by phone"), and the
 *   gateway keeps publishing. Not stored (the disk failed): NAK busy, the terminal keeps
 *   the event, and INDICATE unconfirmed tells the herder to phone meanwhile.
 */

import { assertNever } from '../protocol/errors.js'
import type { GatewayLink, LinkEvent } from '../protocol/link.js'
import { EVENT_KINDS, contactIdOf, type DataMessage, type Event, type Hello } from '../protocol/messages.js'
import { CLASS_OF, MQTT_CONTRACT_VERSION, gatewayTopics, type Encoding, type GatewayTopics } from '../protocol/mqtt.js'
import { GatewayClock } from './clock.js'
import { Commands } from './commands/index.js'
import { loadSavedSettings } from './commands/configure.js'
import { Replies } from './commands/replies.js'
import type { BatchCompression } from './compression.js'
import { GatewayEvents } from './gateway-events.js'
import { KnownTerminals, type KnownTerminal } from './known-terminals.js'
import { Outbox } from './outbox.js'
import { Publishing } from './publishing.js'
import { DEFAULT_REPLY_BUDGET, type ReplyBudgetOptions } from './reply-budget.js'
import { terminalEventId, type NewEvent, type Reset, type Store } from './store.js'
import { INDICATED_CLASSES, ToTheButton } from './to-the-button.js'

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

const BOUNDS_EVERY_MS = 60_000
/** Frame errors from one terminal are logged once, then at most once in this long, ms. */
const FRAME_ERROR_LOG_MS = 60_000

/** What an EVENT says, to tell its retransmission from another event under the same number. [LINK-5.5] */
export function eventFingerprint(m: Event): string {
  return [m.kind, m.user ?? '', m.boot, m.uptime, m.time ?? ''].join('|')
}

export class Gateway {
  readonly topics: GatewayTopics
  readonly clock: GatewayClock
  readonly outbox: Outbox
  readonly #known: KnownTerminals
  readonly #events: GatewayEvents
  readonly #toButton: ToTheButton
  readonly #publishing: Publishing
  readonly #commands: Commands
  readonly #frameErrors = new Map<string, { next: number; repeated: number }>()
  #startedAt: number
  #nextBounds = 0

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
    const count = (name: string) => this.#count(name)
    const flush = () => this.#flushSerial()
    const replies = new Replies({ settings, topic: this.topics.reply, clock: this.clock, io, log, budget: settings.replyBudget ?? DEFAULT_REPLY_BUDGET, count })
    this.#startedAt = io.now()
    this.#known = new KnownTerminals(store)
    this.#toButton = new ToTheButton({ settings, store, link, clock: this.clock, io, log, known: this.#known, flush })
    this.#publishing = new Publishing({ settings, topics: this.topics, store, link, clock: this.clock, outbox: this.outbox, io, log, known: this.#known, toButton: this.#toButton, startedAt: this.#startedAt })
    // What the store kept of the last run: the platform's settings, the terminals.
    loadSavedSettings(store, settings)
    this.#known.load()
    this.#events = new GatewayEvents({ settings, store, clock: this.clock, io, log })
    this.#commands = new Commands({ settings, store, link, clock: this.clock, outbox: this.outbox, io, log, known: this.#known, toButton: this.#toButton, publishing: this.#publishing, count, replies, ownTopic: this.topics.command, flush, pump: () => void this.pump() })
  }

  /** Logs the state the gateway starts from. The announcement waits for the port: serialOpened(). */
  start(): void {
    const open = this.store.openAlerts()
    this.log.info(
      { terminals: this.#known.size, openAlerts: open.length, backlog: this.store.backlog(), clockSynchronised: this.clock.synchronised },
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
        this.log.info({ address: e.peer, terminal: this.#known.at(e.peer)?.terminal, up: e.up }, e.up ? 'terminal answers again' : 'terminal not answering')
        return
      case 'dropped':
        if (e.reason === 'queue-full') {
          this.log.warn({ address: e.to, message: e.message.type }, 'message to terminal dropped: its queue is full')
          if (e.message.type === 'INDICATE') this.#toButton.dropped(e.to, e.message.event)
        }
        return
      case 'refused':
        this.log.warn({ address: e.to, message: e.message.type, reason: e.reason }, 'terminal refused a message')
        return
      case 'frame-error':
        return this.#onFrameError(e)
      case 'delivered':
        return // counted by the link; summarised in the status
      default:
        return assertNever(e, 'link event')
    }
  }

  /**
   * Garbage on a long cable is expected and only counted. But a frame from a terminal that
   * passed its CRC and still cannot be read is a firmware fault, and a HELLO that cannot be
   * read means that terminal can never open a session: the log must say why, once, then at
   * most once a minute per terminal, frame type and error. [LINK-9.1]
   */
  #onFrameError(e: Extract<LinkEvent, { kind: 'frame-error' }>): void {
    if (e.from === undefined || (e.type !== 'HELLO' && e.code !== 'LINK_BAD_SCHEMA' && e.code !== 'LINK_BAD_CBOR')) return
    const key = `${e.from}:${e.type ?? '?'}:${e.code}`
    const now = this.io.now()
    const seen = this.#frameErrors.get(key)
    if (seen && now < seen.next) {
      seen.repeated++
      return
    }
    this.#frameErrors.set(key, { next: now + FRAME_ERROR_LOG_MS, repeated: 0 })
    const what =
      e.type === 'HELLO'
        ? 'a terminal HELLO was refused: it cannot open a session until its firmware sends a valid HELLO (PROTOCOL.md section 5)'
        : `a ${e.type ?? 'frame'} from a terminal was refused (answered NAK): its firmware sends what PROTOCOL.md section 5 does not allow`
    this.log.warn({ address: e.from, type: e.type, code: e.code, detail: e.detail, ...(seen ? { repeatedSinceLast: seen.repeated } : {}) }, `${what}: ${e.detail}`)
  }

  #onSession(address: number, hello: Hello, restarted: boolean): void {
    const previous = this.#known.at(address)
    if (previous && previous.terminal !== hello.terminal) {
      this.log.warn({ address, was: previous.terminal, now: hello.terminal }, 'a different terminal answers at this address')
    }
    let reset: Reset | null = null
    try {
      reset = this.store.hello(hello.terminal, hello.boot, hello.lastEvent, (n) => this.#epochTag(n))
    } catch (err) {
      this.log.error({ err, terminal: hello.terminal }, 'could not record the terminal HELLO in the store')
    }
    const t: KnownTerminal = {
      address,
      terminal: hello.terminal,
      lost: previous?.lost ?? false,
      capabilities: hello.capabilities,
      epoch: reset?.epoch ?? this.store.numbering(hello.terminal)?.epoch ?? '',
    }
    this.#known.set(t)
    this.#toButton.forget(address)
    this.#known.save()
    this.log.info({ address, terminal: hello.terminal, firmware: hello.firmware, boot: hello.boot, lastEvent: hello.lastEvent, restarted }, 'terminal session open')
    if (reset) this.#onReset(t, reset, hello.lastEvent)
    this.link.send(address, { type: 'CONFIG', heartbeat: this.settings.heartbeatS })
    if (this.clock.synchronised) this.link.send(address, { type: 'TIME', unix: Math.floor(this.clock.now().at / 1000), estimate: false })
    this.#toButton.sessionOpened(t)
  }

  /** The tag of the store's n-th numbering reset: unique to this gateway, so ids never collide across gateways. [MQTT-3.2] */
  #epochTag(n: number): string {
    return `${this.settings.gateway}.${n}`
  }

  /** A terminal's numbers started again: say so loudly, and tell the platform. */
  #onReset(t: KnownTerminal, reset: Reset, lastEvent: number): void {
    t.epoch = reset.epoch
    this.#toButton.forget(t.address)
    // Stages still queued for the old numbering would be taken for the new events. [invariant 3]
    const discarded = this.link.discard(t.address, (m) => m.type === 'INDICATE')
    this.log.warn(
      { terminal: t.terminal, address: t.address, ...reset, discardedIndicates: discarded },
      `terminal ${t.terminal} started its event numbers again (${reset.reason}): memory wiped, or a new unit under the same id; its events are now ${terminalEventId(t.terminal, reset.epoch, 1).replace(/1$/, 'n')}, never taken for old ones`,
    )
    this.#events.record('terminal-reset', t, `event numbers restarted (${reset.reason})`, {
      reset: { reason: reset.reason, epoch: reset.epoch, boot: this.link.terminal(t.address)?.hello?.boot ?? 0, lastEvent, previousBoot: reset.previousBoot, previousNumber: reset.previousNumber },
    })
  }

  #onMessage(address: number, ref: number, m: DataMessage): void {
    const terminal = this.#known.at(address)
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
        // A heartbeat is never worth a NAK: stored, refused or failed, the terminal gets its
        // ACK. It is status, folded in memory; nothing is promised about one. [MQTT-3.4]
        try {
          if (!this.store.putStatus(terminal.terminal, address, heartbeat, this.io.now())) {
            this.log.debug({ terminal: terminal.terminal, reserveMB: this.store.limits.reserveMB }, 'disk nearly full: heartbeat dropped and counted to keep room for alarms')
          }
        } catch (err) {
          this.log.warn({ err, terminal: terminal.terminal }, 'could not store a heartbeat; it is dropped')
          this.#count('dropped.status.error')
        }
        this.link.accept(ref)
        return
      }
      case 'DISPLAY_READ':
        return this.#onDisplayRead(terminal, ref, m.id, m.revision ?? 0)
      case 'INDICATE':
      case 'DISPLAY':
      case 'TIME':
      case 'CONFIG':
      case 'PING':
        // Gateway-to-terminal types are refused by the link before they get here.
        this.link.accept(ref)
        return
      default:
        return assertNever(m, 'message')
    }
  }

  #onEvent(t: KnownTerminal, ref: number, m: Event): void {
    const cls = CLASS_OF[m.kind]
    const fingerprint = eventFingerprint(m)
    let result
    try {
      const seen = this.store.recognise(t.terminal, m.number, fingerprint)
      if (seen.kind === 'replay') {
        // Taken before (a retransmission, a replay after a power cut), however long ago:
        // the terminal may forget it. Its stage, if the case is still kept, is shown again.
        this.link.accept(ref)
        this.log.info({ id: seen.event?.id ?? terminalEventId(t.terminal, t.epoch, m.number), stage: seen.event?.stage }, 'event already stored (retransmitted or replayed)')
        if (seen.event && INDICATED_CLASSES.has(seen.event.cls)) this.#toButton.indicate(seen.event)
        return
      }
      if (seen.kind === 'differs') {
        // A number already taken, for another event: the numbers started again without a
        // HELLO that showed it. The old event keeps its id; this one gets a new epoch.
        const reset = this.store.resetNumbering(t.terminal, 'event-differs', this.link.terminal(t.address)?.hello?.boot ?? m.boot, (n) => this.#epochTag(n))
        this.#onReset(t, reset, this.link.terminal(t.address)?.hello?.lastEvent ?? m.number)
      }
      const id = terminalEventId(t.terminal, t.epoch, m.number)
      const cancels = m.kind === 'cancel' ? this.store.latestOpenAlarm(t.terminal, t.epoch, m.number)?.id : undefined
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
        ...(cancels !== undefined ? { cancels } : {}),
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
        epoch: t.epoch,
        fingerprint,
      }
      result = this.store.addEvent(event)
    } catch (err) {
      // The disk failed (full, read-only SD card): the terminal keeps the event in its
      // non-volatile memory and retries on NAK busy; nothing is lost, and the log says why.
      this.link.defer(ref)
      this.log.error({ err, id: terminalEventId(t.terminal, t.epoch, m.number), terminal: t.terminal, number: m.number, class: cls }, 'could not store an event; the terminal keeps it and will send it again')
      this.#toButton.unstored(t, m.number, cls)
      return
    }
    if (result.kind === 'refused') {
      // Never for a terminal's event (the store refuses only what the gateway makes), but
      // whatever is not stored is never acknowledged: the terminal keeps it. [LINK-4.3]
      this.link.defer(ref)
      return
    }
    this.link.accept(ref)
    this.#toButton.stored(t.address, m.number)
    const e = result.event
    if (result.kind === 'added') {
      this.log.info({ id: e.id, class: cls, kind: m.kind, terminal: t.terminal, address: t.address, ...(e.body.cancels ? { cancels: e.body.cancels } : {}) }, cls === 'alarm' ? 'ALARM stored' : 'event stored')
      if (cls === 'alarm' && !this.io.online()) this.io.hurry?.()
    } else {
      this.log.info({ id: e.id, stage: e.stage }, 'event already stored (retransmitted or replayed)')
    }
    if (INDICATED_CLASSES.has(cls)) this.#toButton.indicate(e)
  }

  /**
   * The terminal's user read a broadcast. The platform hears it once per terminal and
   * revision, under an id made of those, so a repeat can be recognised; a read of something
   * this gateway never sent that terminal is not news for the platform. [MQTT-5.7]
   */
  #onDisplayRead(t: KnownTerminal, ref: number, id: number, revision: number): void {
    try {
      if (this.store.delivery(id, t.terminal) === undefined) {
        this.log.warn({ terminal: t.terminal, broadcast: id }, 'terminal reports reading a broadcast this gateway never sent it: ignored')
      } else if (this.store.broadcastRead(id, t.terminal, revision, this.io.now())) {
        this.#events.record('broadcast-read', t, `broadcast ${id}`, { broadcast: id, revision }, `${this.settings.gateway}/read/${id}.${revision}/${t.terminal}`)
      } else {
        this.log.debug({ terminal: t.terminal, broadcast: id, revision }, 'broadcast read again: already reported')
      }
    } catch (err) {
      this.log.error({ err, terminal: t.terminal, broadcast: id }, 'could not record a broadcast read; the terminal sends it again')
      this.link.defer(ref)
      return
    }
    this.link.accept(ref)
  }

  // ------------------------------------------------------------------ supervision

  #heard(t: KnownTerminal): void {
    if (!t.lost) return
    t.lost = false
    this.#events.record('terminal-restored', t)
  }

  #supervise(now: number): number | null {
    let next: number | null = null
    for (const t of this.#known.values()) {
      const last = Math.max(this.link.terminal(t.address)?.lastHeard ?? 0, this.#startedAt)
      if (!t.lost && now - last >= this.settings.supervisionMs) {
        t.lost = true
        this.#events.record('terminal-lost', t)
      } else if (t.lost && now - last < this.settings.supervisionMs) {
        this.#heard(t)
      }
      const d = last + this.settings.supervisionMs
      if (!t.lost && (next === null || d < next)) next = d
    }
    return next
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
      for (const e of this.outbox.overdue(now)) this.#toButton.receiptOverdue(e)
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
      this.#publishing.statusIfDue(now)
      void this.pump()
    } catch (err) {
      this.log.error({ err }, 'internal error in the gateway tick')
    }
    // Never in the past: a caller that sleeps until then must not spin.
    return Math.max(now + 1, Math.min(...deadlines.filter((d): d is number => d !== null)))
  }

  // ------------------------------------------------------------------ uplink (publishing.ts)

  /** Publishes whatever is due while the uplink is online. Safe to call at any time. */
  pump(): Promise<void> {
    return this.#publishing.pump()
  }

  /** Before each connection attempt: a new session, and its death as the Last Will. */
  will(): { topic: string; payload: Buffer } {
    return this.#publishing.will()
  }

  /** The birth message of the current session. */
  birth(): { topic: string; payload: Buffer } {
    return this.#publishing.birth()
  }

  /** The death message of the current session. */
  death(): { topic: string; payload: Buffer } {
    return this.#publishing.death()
  }

  /** The gateway's own status: terminals, store, drops, link counters, clock. */
  statusPayload(): Record<string, unknown> {
    return this.#publishing.statusPayload()
  }

  publishStatus(): Promise<void> {
    return this.#publishing.publishStatus()
  }

  /** Whether an alarm waits for the platform's receipt: the uplink then retries sooner. */
  alarmWaiting(): boolean {
    return this.#publishing.alarmWaiting()
  }

  /** The uplink came online: what waits goes, alarms first, then the status. */
  online(): void {
    this.#publishing.online()
  }

  // ------------------------------------------------------------------ commands (commands/)

  /**
   * A payload on one of the command topics. Never throws [MQTT-5.2]: it runs inside the
   * MQTT client's PUBLISH handler, where an exception ends the process before the PUBACK,
   * and the broker then delivers the same payload again to the restarted gateway.
   * `retained`: the broker delivered a retained message (the PUBLISH had its retain flag).
   */
  command(topic: string, payload: Buffer, options: { retained?: boolean } = {}): void {
    try {
      this.#commands.receive(topic, payload, options.retained === true)
    } catch (err) {
      this.log.error({ err, topic, bytes: payload.length }, 'internal error handling a command payload; it is dropped')
    }
  }

  /** A named counter in the store, for the status; a failing disk must not stop the caller. */
  #count(name: string): void {
    try {
      this.store.count(name)
    } catch {
      // A full or failing disk: the caller's log line still says what happened.
    }
  }

  stop(): void {
    this.#publishing.stop()
  }
}
