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
 *
 * Each side has its file; this class owns what they share, wires them, and runs time:
 *   terminals.ts       the serial side: sessions, messages (an EVENT: terminal-event.ts),
 *                      numbering resets (numbering.ts), supervision, frame errors
 *   to-the-button.ts   the path back: the INDICATE of each stage, broadcasts as DISPLAY
 *   publishing.ts      the uplink: alarms, the backlog behind them, birth, death, status
 *   commands/          the platform's commands: one path in, one handler per type
 *   tick() below       whatever falls due: retransmissions, receipt deadlines, supervision
 */

import type { GatewayLink } from '../protocol/link.js'
import { gatewayTopics, type Encoding, type GatewayTopics } from '../protocol/mqtt.js'
import { GatewayClock } from './clock.js'
import { CommandAuth, type PlatformKeys } from './commands/auth.js'
import { Commands } from './commands/index.js'
import { loadSavedSettings } from './commands/configure.js'
import { Replies } from './commands/replies.js'
import type { BatchCompression } from './compression.js'
import { GatewayEvents } from './gateway-events.js'
import { KnownTerminals } from './known-terminals.js'
import { Outbox } from './outbox.js'
import { Publishing } from './publishing.js'
import { DEFAULT_REPLY_BUDGET, type ReplyBudgetOptions } from './reply-budget.js'
import { Household } from './household/service.js'
import type { Store } from './store.js'
import { Terminals } from './terminals.js'
import { ToTheButton } from './to-the-button.js'

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
  /** The platform's public keys: with them only signed commands are taken; without, commands are not authenticated. [MQTT-5.12] */
  platformKeys?: PlatformKeys | null
  /** The center household's name (config `household.name`), sent with every relay ([MQTT-3.11]); null or absent: none. */
  household?: string | null
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
  /** The TLS client certificate connected with, for the status ([MQTT-3.7] `tls`); null or absent without one. */
  tls?: () => { clientCertExpires: number; clientCertSubject: string } | null
  /**
   * The uplink as main.ts knows it, for the household page (issue 13): online, since when
   * (gateway clock, ms, or null before the first change), and the broker connected to or
   * last tried. Absent: online() alone, since when the core first saw it so.
   */
  uplinkState?: () => { online: boolean; since: number | null; broker: string | null }
  /** Free bytes on the file system of the data directory (fs.statfs), or null if unknown; for the household page. */
  diskFree?: () => number | null
}

const BOUNDS_EVERY_MS = 60_000

export class Gateway {
  readonly topics: GatewayTopics
  readonly clock: GatewayClock
  readonly outbox: Outbox
  /** The center household's page and command line (issue 13): snapshot, relay, inbox. */
  readonly household: Household
  readonly #known: KnownTerminals
  readonly #toButton: ToTheButton
  readonly #publishing: Publishing
  readonly #terminals: Terminals
  readonly #commands: Commands
  readonly #auth: CommandAuth
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
    const clock = new GatewayClock(store, boot, io.now)
    this.clock = clock
    // Getters: the platform's `config` command changes these while running.
    const outbox = new Outbox(store, clock, {
      gateway: settings.gateway,
      get receiptTimeoutMs() {
        return settings.receiptTimeoutMs
      },
      get statusIntervalMs() {
        return settings.statusIntervalMs
      },
      ...(io.random ? { random: io.random } : {}),
    })
    this.outbox = outbox
    // Every PUBACK is contact with the platform, for the household page (issue 13).
    const household: { current: Household | null } = { current: null }
    const publish: GatewayIo['publish'] = (topic, payload, options) =>
      io.publish(topic, payload, options).then(() => {
        household.current?.contact()
      })
    const uplinkIo: GatewayIo = { ...io, publish }
    const count = (name: string) => this.#count(name)
    const flush = () => this.#flushSerial()
    const replies = new Replies({ settings, topic: this.topics.reply, clock, io: uplinkIo, log, budget: settings.replyBudget ?? DEFAULT_REPLY_BUDGET, count })
    const startedAt = io.now()
    const known = new KnownTerminals(store)
    this.#known = known
    const toButton = new ToTheButton({ settings, store, link, clock, io, log, known, flush })
    this.#toButton = toButton
    const auth = new CommandAuth({ settings, keys: settings.platformKeys ?? null, store, clock, log })
    this.#auth = auth
    const publishing = new Publishing({ settings, topics: this.topics, store, link, clock, outbox, io: uplinkIo, log, known, toButton, startedAt, auth })
    this.#publishing = publishing
    // What the store kept of the last run: the platform's settings, the terminals.
    loadSavedSettings(store, settings)
    known.load()
    const events = new GatewayEvents({ settings, store, clock, io, log, stored: () => household.current?.changed() })
    this.household = new Household({ settings, store, link, clock, io, log, known, events, auth, pump: () => void this.pump() })
    household.current = this.household
    this.#terminals = new Terminals({
      settings,
      store,
      link,
      clock,
      io,
      log,
      known,
      toButton,
      events,
      count,
      startedAt,
      heartbeat: (t, hb, at) => this.household.heartbeat(t.terminal, hb, at),
      storeWrite: (ok) => this.household.storeWrite(ok),
    })
    this.#commands = new Commands({
      settings,
      store,
      link,
      clock,
      outbox,
      io,
      log,
      known,
      toButton,
      publishing,
      auth,
      events,
      count,
      replies,
      ownTopic: this.topics.command,
      flush,
      pump: () => void this.pump(),
    })
  }

  /** Logs the state the gateway starts from. The announcement waits for the port: serialOpened(). */
  start(): void {
    const open = this.store.openAlerts()
    this.log.info({ terminals: this.#known.size, openAlerts: open.length, backlog: this.store.backlog(), clockSynchronised: this.clock.synchronised }, 'gateway started')
    if (this.#auth.authenticated)
      this.log.info({ platformKey: this.#auth.activeKeyId, next: this.#auth.nextKeyId }, 'commands are authenticated: only commands signed with the platform key are applied')
    else {
      this.log.warn(
        { commandsAuthenticated: false },
        "COMMANDS ARE NOT AUTHENTICATED: no platform key is configured, so anyone who can publish on the command topics can silence alarms and write to the herders' displays. Configure platformKeys.current (steppelink keygen makes a key pair)",
      )
    }
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
    // A session, a heartbeat, an event, a read: the household page is told; bytes that
    // made no message (an ACK, half a frame) are not worth a new snapshot.
    if (this.#drainLink() > 0) this.household.changed()
  }

  #drainLink(): number {
    const n = this.#terminals.drain()
    this.#flushSerial()
    void this.pump()
    return n
  }

  /** Which terminals answer and which are lost, as one string: the household page is told when it changes. */
  #terminalsState(): string {
    let state = ''
    for (const t of this.#known.values()) state += `${t.address}:${this.link.terminal(t.address)?.up ? 1 : 0}${t.lost ? 1 : 0};`
    return state
  }

  #flushSerial(): void {
    for (let out = this.link.transmit(); out; out = this.link.transmit()) this.io.writeSerial(out)
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
    const terminalsBefore = this.#terminalsState()
    try {
      deadlines.push(this.link.tick(now))
      this.#drainLink()
      for (const e of this.outbox.overdue(now)) {
        this.#toButton.receiptOverdue(e)
        this.household.changed()
      }
      deadlines.push(this.#terminals.supervise(now))
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
      // A session that went down or up with the link's own timers.
      if (this.#terminalsState() !== terminalsBefore) this.household.changed()
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
    this.household.changed()
  }

  /** The uplink went offline (or tries another broker): the household page is told. */
  uplinkChanged(): void {
    this.household.changed()
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
    // Contact with the platform; a stage, a broadcast, the clock may have changed.
    this.household.contact()
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
