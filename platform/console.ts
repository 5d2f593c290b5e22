/**
 * The operator console: the platform's side of protocol/MQTT.md, as the banner 110 centre
 * would run it on a desk, and as the demo and the tests run it. It watches every
 * gateway's uplink, confirms each alarm, lets an operator (or a timer) answer it, and
 * publishes information to the grassland.
 *
 * Theory of operation. This file composes the parts; each rule ([CONSOLE-n], cited by the
 * tests) is written where it is kept:
 * - [CONSOLE-1] one persistent session, subscribed at every CONNACK: connection.ts
 * - [CONSOLE-2] untrusted data narrowed once, at the boundary: uplink.ts; then one
 *   handler per uplink topic behind one switch: handlers/
 * - [CONSOLE-3] a receipt for every copy of a case: answers.ts
 * - [CONSOLE-4] deduplication by id: cases.ts (cases), view.ts (other items)
 * - [CONSOLE-5] liveness from births and deaths, and the time after a birth: handlers/state.ts
 * - [CONSOLE-6] stages forward only, as the lifecycle allows: cases.ts; what follows an
 *   acknowledgement by itself: answers.ts
 * - [CONSOLE-7] commands checked before they are published, their ids: commands.ts
 * - [CONSOLE-8] state in memory: view.ts
 * - [CONSOLE-9] text from the wire made safe for a screen: render.ts
 * - [CONSOLE-10] same id, different content: a conflict, both versions kept, the case open: cases.ts
 */

import type { Urgency } from '../protocol/messages.js'
import type { Command } from '../protocol/mqtt.js'
import { Answers } from './answers.js'
import { CaseBook, caseView, type CaseRecord } from './cases.js'
import { broadcastBody, checkedCommand, commandIds, commandPayload, signerFromFile, targetTopic, type CommandSigner } from './commands.js'
import { Connection } from './connection.js'
import { ConsoleError, type PayloadErrorCode } from './errors.js'
import { blank, commandLine, type ConsoleEvent, type ErrorLine } from './events.js'
import { handleUplink, type HandlerContext } from './handlers/index.js'
import { CONSOLE_DEFAULTS, ConsoleSettings, checkOptions, type AckMode, type ConsoleOptions, type ConsoleTimers } from './options.js'
import { narrowUplink, uplinkFilters } from './uplink.js'
import { ConsoleState, type CaseView, type ConsoleSnapshot } from './view.js'

export interface OperatorConsole {
  readonly id: string
  readonly clientId: string
  readonly prefix: string
  readonly ack: AckMode
  /** Subscribed to the broker now. */
  readonly connected: boolean
  /** A copy of what the console knows, for a view. */
  snapshot(): ConsoleSnapshot
  /** One case, alarm or request, resolved ones included; undefined if never seen. */
  case(id: string): CaseView | undefined
  /** Repeats per id (copies beyond the first), for every id that had one. */
  readonly duplicates: ReadonlyMap<string, number>
  /** Resolves once subscribed (at once if already). */
  whenConnected(): Promise<void>
  /**
   * The operator takes the case: `acknowledged` with `by` = the operator, and `text` for
   * the herder (≤ 200 characters; for a request, by default its REQUEST_ACKNOWLEDGEMENTS
   * text). Resolves with the command once the broker has it; rejects with a ConsoleError
   * (unknown case, stage passed, bad text).
   */
  acknowledge(alertId: string, text?: string): Promise<Command>
  /** Help is on the way: `dispatched` with unit (default: the option `unit`) and eta in minutes (default `etaMin`); an alarm's, or a request's if the operator decides so. */
  dispatch(alertId: string, unit?: string, etaMin?: number): Promise<Command>
  /** The case is closed: `resolved` with text (default `resolveText`). */
  resolve(alertId: string, text?: string): Promise<Command>
  /**
   * Information for the grassland [MQTT-5.7]. `to`: a gateway id, `all`, or `area:NAME`.
   * Urgency default 'info'; expiresInS: seconds from now (default: never expires);
   * broadcastId: default a new one (UNIX seconds, kept increasing); the same id again
   * replaces the text on the terminals. Who has read it shows in `snapshot().broadcasts`.
   */
  broadcast(to: string, text: string, urgency?: Urgency, expiresInS?: number, broadcastId?: number): Promise<Command>
  /** Stops timers, finishes what is in flight (up to a second), disconnects; pending commands reject with CONSOLE_CLOSED. */
  close(): Promise<void>
}

class Console implements OperatorConsole, HandlerContext {
  readonly id: string
  readonly clientId: string
  readonly prefix: string
  readonly ack: AckMode
  readonly sendTime: boolean
  readonly options: ConsoleOptions
  readonly timers: ConsoleTimers
  readonly now: () => number
  readonly newId: () => string
  /** Signs every command [MQTT-5.12]; null: commands go unsigned. */
  readonly signer: CommandSigner | null
  readonly state: ConsoleState
  /** Alarms and requests by id, for the life of the process [CONSOLE-4]. */
  readonly cases: CaseBook
  readonly answers: Answers
  readonly #connection: Connection
  /** Messages are handled one after the other, in arrival order, batches (async) included. */
  #queue: Promise<void> = Promise.resolve()
  #closed = false
  #waiters: { resolve: () => void; reject: (e: Error) => void }[] = []

  constructor(o: ConsoleOptions) {
    checkOptions(ConsoleSettings, o)
    this.options = o
    this.id = o.id ?? CONSOLE_DEFAULTS.id
    this.clientId = o.clientId ?? `steppelink-console-${this.id}`
    this.prefix = o.prefix ?? CONSOLE_DEFAULTS.prefix
    this.ack = o.ack ?? CONSOLE_DEFAULTS.ack
    this.sendTime = o.sendTime !== false
    this.timers = o.timers ?? { setTimeout: (fn, ms) => setTimeout(fn, ms), clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>) }
    this.now = o.now ?? Date.now
    this.newId = commandIds(this.id, this.now, o.random ?? Math.random)
    this.signer = signerFromFile(o.signingKey, this.prefix, this.now)
    this.state = new ConsoleState(o.maxItemIds ?? CONSOLE_DEFAULTS.maxItemIds)
    this.cases = new CaseBook(this.state)
    this.answers = new Answers(this)
    const broker = o.broker
    this.#connection = new Connection(
      {
        broker,
        clientId: this.clientId,
        username: o.username,
        password: o.password,
        ca: o.ca,
        cert: o.cert,
        key: o.key,
        servername: o.servername,
        keepaliveS: o.keepaliveS ?? CONSOLE_DEFAULTS.keepaliveS,
        reconnectS: o.reconnectS ?? CONSOLE_DEFAULTS.reconnectS,
        filters: uplinkFilters(this.prefix),
      },
      {
        connected: (sessionPresent) => {
          this.emit({ ...blank(this.now()), type: 'connection', kind: 'connected', broker, sessionPresent })
          for (const w of this.#waiters.splice(0)) w.resolve()
        },
        refused: (filters) => this.error('CONSOLE_SUBSCRIBE_REFUSED', `the broker refused the subscriptions ${filters.join(', ')}: check its access rules`, null, null),
        disconnected: () => this.emit({ ...blank(this.now()), type: 'connection', kind: 'disconnected', broker }),
        failed: (message) => this.emit({ ...blank(this.now()), type: 'connection', kind: 'failed', broker, message }),
        message: (topic, payload, retained) => {
          const receivedAt = this.now()
          this.#queue = this.#queue.then(() => this.#onMessage(topic, payload, retained, receivedAt))
        },
      },
    )
  }

  get connected(): boolean {
    return this.#connection.connected
  }

  get closed(): boolean {
    return this.#closed
  }

  get duplicates(): ReadonlyMap<string, number> {
    return this.state.duplicates
  }

  whenConnected(): Promise<void> {
    if (this.#closed) return Promise.reject(new ConsoleError('CONSOLE_CLOSED', 'the console is closed'))
    if (this.connected) return Promise.resolve()
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }))
  }

  /** One message off the socket: narrowed at the boundary [CONSOLE-2], then to its handler. */
  async #onMessage(topic: string, payload: Buffer, retained: boolean, receivedAt: number): Promise<void> {
    if (this.#closed) return
    this.state.counters.messages++
    try {
      const n = await narrowUplink(this.prefix, topic, payload, retained)
      if (n.kind === 'error') return this.error(n.code, n.message, topic, n.gateway, receivedAt)
      if (n.kind === 'message') handleUplink(this, n.message, { gateway: n.gateway, topic, receivedAt })
    } catch (e) {
      this.error('CONSOLE_INTERNAL', `handling ${topic} failed: ${(e as Error).stack ?? String(e)}`, topic, null, receivedAt)
    }
  }

  // -- the operator ------------------------------------------------------------------------

  #lookup(alertId: string, action: 'acknowledge' | 'dispatch' | 'resolve'): CaseRecord {
    if (this.#closed) throw new ConsoleError('CONSOLE_CLOSED', 'the console is closed')
    return this.cases.lookup(alertId, action)
  }

  async acknowledge(alertId: string, text?: string): Promise<Command> {
    return this.answers.acknowledge(this.#lookup(alertId, 'acknowledge'), text)
  }

  async dispatch(alertId: string, unit?: string, etaMin?: number): Promise<Command> {
    return this.answers.dispatch(this.#lookup(alertId, 'dispatch'), unit, etaMin)
  }

  async resolve(alertId: string, text?: string): Promise<Command> {
    return this.answers.resolve(this.#lookup(alertId, 'resolve'), text)
  }

  async broadcast(to: string, text: string, urgency: Urgency = 'info', expiresInS?: number, broadcastId?: number): Promise<Command> {
    if (this.#closed) throw new ConsoleError('CONSOLE_CLOSED', 'the console is closed')
    const { topic, gateway } = targetTopic(this.prefix, to)
    const sent = await this.send(topic, gateway, broadcastBody(text, urgency, expiresInS, broadcastId, this.now()), null)
    if (sent.type === 'broadcast') {
      const b = this.state.broadcast(sent.broadcast, true)
      b.sent = { to, text: sent.text, urgency: sent.urgency, expires: sent.expires ?? null, at: sent.at ?? this.now(), times: (b.sent?.times ?? 0) + 1 }
    }
    return sent
  }

  // -- out ---------------------------------------------------------------------------------

  /** Builds, checks and publishes a command [CONSOLE-7]. */
  send(topic: string, gateway: string | null, body: Record<string, unknown>, alert: string | null): Promise<Command> {
    let command: Command
    try {
      command = checkedCommand({ v: 1, id: this.newId(), ...body, at: this.now() })
    } catch (e) {
      return Promise.reject(e)
    }
    return this.publish(topic, gateway, command, alert)
  }

  /** Publishes a checked command; once the broker has it, a `command-sent` event, or else an `error` event. */
  publish(topic: string, gateway: string | null, command: Command, alert: string | null): Promise<Command> {
    const sent = this.#connection.publish(topic, commandPayload(command, topic, this.signer), `${command.type} ${command.id}`).then(() => command)
    sent.then(
      () => {
        this.state.counters.commandsSent++
        this.emit(commandLine(command, topic, gateway, alert === null ? null : (this.cases.get(alert)?.terminal ?? null), alert, this.now()))
      },
      (e: Error) => this.error('CONSOLE_PUBLISH_FAILED', e.message, topic, gateway),
    )
    return sent
  }

  error(code: PayloadErrorCode, message: string, topic: string | null, gateway: string | null, receivedAt = this.now()): void {
    const line: ErrorLine = { ...blank(this.now()), receivedAt, type: 'error', code, message, topic, gateway }
    this.state.addError(line)
    this.emit(line)
  }

  emit(e: ConsoleEvent): void {
    try {
      // `type` first, for people reading the JSON lines.
      this.options.onEvent?.(Object.assign({ type: e.type }, e))
    } catch {
      // The callback is the caller's; its failure must not stop the handling of alarms.
    }
  }

  // -- state out ---------------------------------------------------------------------------

  snapshot(): ConsoleSnapshot {
    return this.state.snapshot(this.connected, this.cases.open())
  }

  case(id: string): CaseView | undefined {
    const a = this.cases.get(id)
    return a === undefined ? undefined : caseView(a)
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    for (const a of this.cases.values()) this.answers.stopTimers(a)
    for (const w of this.#waiters.splice(0)) w.reject(new ConsoleError('CONSOLE_CLOSED', 'the console was closed before it reached the broker'))
    await this.#connection.close()
    await this.#queue
  }
}

/**
 * Starts the console: connects with its persistent session and subscribes. Resolves once
 * subscribed (or at once with `waitForBroker: false`); mqtt.js keeps reconnecting after
 * a loss. Throws a ConsoleError CONSOLE_BAD_OPTION for options out of range.
 */
export async function startConsole(opts: ConsoleOptions): Promise<OperatorConsole> {
  const c = new Console(opts)
  if (opts.waitForBroker !== false) await c.whenConnected()
  return c
}
