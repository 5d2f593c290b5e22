/**
 * The console's answers to cases: the receipt of every copy, then the operators'
 * acknowledgement, dispatch and resolve, by hand or by themselves after an
 * acknowledgement [CONSOLE-6].
 *
 * - [CONSOLE-3] Every copy of a case gets a receipt at once, each with a new command id,
 *   duplicates included: a copy means the gateway has not seen a receipt yet.
 *   [MQTT-4.10] [MQTT-4.12] A case is an alarm (on `alert`) or a request (class `request`:
 *   a call-back, a relayed message, on `event` or in a batch); the requests of one batch
 *   share one receipt.
 */

import { gatewayTopics, type Command } from '../protocol/mqtt.js'
import { AUTOMATIC_AFTER_ACKNOWLEDGEMENT, acknowledgementText, canTake, type CaseBook, type CaseRecord, type OperatorAction } from './cases.js'
import { checkedCommand } from './commands.js'
import { CONSOLE_DEFAULTS, type AckMode, type ConsoleOptions, type ConsoleTimers } from './options.js'

/**
 * What one message leaves to do once all its items are in: the receipt of its cases (one
 * command for a whole batch), then the automatic acknowledgements, in that order.
 */
export interface Followup {
  receipts: CaseRecord[]
  acknowledgements: CaseRecord[]
}

/** [CONSOLE-3] A receipt for every copy; a new case is acknowledged too in `auto`, unless it has a conflict: an operator takes that one [CONSOLE-10]. */
export function followCopy(f: Followup, a: CaseRecord, duplicate: boolean, ack: AckMode): void {
  f.receipts.push(a)
  if (!duplicate && ack === 'auto' && a.conflict === null) f.acknowledgements.push(a)
}

/** A receipt names at most this many ids ([MQTT-5.5]). */
const MAX_RECEIPT_IDS = 1000

/** What the answers need of the console. */
export interface AnswersContext {
  readonly prefix: string
  readonly options: ConsoleOptions
  readonly cases: CaseBook
  readonly timers: ConsoleTimers
  readonly closed: boolean
  now(): number
  newId(): string
  /** Builds, checks and publishes a command [CONSOLE-7]. */
  send(topic: string, gateway: string | null, body: Record<string, unknown>, alert: string | null): Promise<Command>
  /** Publishes a checked command. */
  publish(topic: string, gateway: string | null, command: Command, alert: string | null): Promise<Command>
}

export class Answers {
  constructor(private readonly c: AnswersContext) {}

  /** The receipt of what one message brought, in one command (a batch's requests together), then the automatic acknowledgements. */
  followUp(gateway: string, f: Followup): void {
    if (f.receipts.length === 0) return
    for (const a of f.receipts) this.c.cases.advance(a, 'receipt', this.c.now())
    const ids = [...new Set(f.receipts.map((a) => a.id))]
    for (let i = 0; i < ids.length; i += MAX_RECEIPT_IDS) {
      const some = ids.slice(i, i + MAX_RECEIPT_IDS)
      this.c.send(gatewayTopics(this.c.prefix, gateway).command, gateway, { type: 'receipt', ids: some }, some[0]!).catch(() => {})
    }
    for (const a of f.acknowledgements) this.acknowledge(a).catch(() => {})
  }

  /** `acknowledged` by the operator; then what follows by itself, counted from now [CONSOLE-6]. */
  async acknowledge(a: CaseRecord, text = acknowledgementText(a)): Promise<Command> {
    const o = this.c.options
    const by = o.operator ?? CONSOLE_DEFAULTS.operator
    const sent = this.#answer(a, 'acknowledge', { type: 'acknowledged', alert: a.id, by, ...(text === undefined ? {} : { text }) })
    a.acknowledgedBy = by
    const delays = { dispatch: o.dispatchAfterS, resolve: o.resolveAfterS }
    const actions = { dispatch: () => this.dispatch(a), resolve: () => this.resolve(a) }
    for (const action of AUTOMATIC_AFTER_ACKNOWLEDGEMENT[a.class]) {
      const s = delays[action]
      if (s === undefined || s === null) continue
      a.timers.push(
        this.c.timers.setTimeout(() => {
          if (!this.c.closed && a.conflict === null && canTake(a.stage, action)) actions[action]().catch(() => {})
        }, s * 1000),
      )
    }
    return sent
  }

  /** `dispatched`: the unit (default the option `unit`) and its eta in minutes (default `etaMin`). */
  dispatch(a: CaseRecord, unit = this.c.options.unit ?? CONSOLE_DEFAULTS.unit, eta: number | undefined = this.c.options.etaMin ?? CONSOLE_DEFAULTS.etaMin): Promise<Command> {
    const sent = this.#answer(a, 'dispatch', { type: 'dispatched', alert: a.id, unit, eta })
    a.unit = unit
    a.eta = eta
    return sent
  }

  /** `resolved` with the text (default `resolveText`); nothing more follows by itself. */
  resolve(a: CaseRecord, text = this.c.options.resolveText ?? CONSOLE_DEFAULTS.resolveText): Promise<Command> {
    const sent = this.#answer(a, 'resolve', { type: 'resolved', alert: a.id, ...(text === '' ? {} : { text }) })
    this.stopTimers(a)
    return sent
  }

  stopTimers(a: CaseRecord): void {
    for (const t of a.timers.splice(0)) this.c.timers.clearTimeout(t)
  }

  /** Checks the answer, moves the stage, publishes: a bad text throws before anything changes. */
  #answer(a: CaseRecord, action: OperatorAction, body: Record<string, unknown>): Promise<Command> {
    const command = checkedCommand({ v: 1, id: this.c.newId(), ...body, at: this.c.now() })
    this.c.cases.advance(a, action, this.c.now())
    return this.c.publish(gatewayTopics(this.c.prefix, a.gateway).command, a.gateway, command, a.id)
  }
}
