/**
 * Cases: the alarms and requests the console answers, kept by id for the life of the
 * process [CONSOLE-4], and their stages.
 *
 * - [CONSOLE-6] The console's stage of a case moves forward only, as canTake() asks the
 *   lifecycle (protocol/lifecycle.ts), the same for alarms and requests; each operator
 *   command is sent once per case. A receipt goes out for every copy whatever the stage
 *   ([MQTT-4.7]: a late receipt changes nothing at the gateway). What follows an
 *   acknowledgement by itself (AUTOMATIC_AFTER_ACKNOWLEDGEMENT) counts from it: dispatch
 *   and resolve for an alarm, only the resolve for a request (the hotline calls back;
 *   no patrol car). answers.ts sends them.
 */

import { isForward } from '../protocol/lifecycle.js'
import type { UplinkEvent } from '../protocol/mqtt.js'
import { ConsoleError } from './errors.js'
import { relayView, type CaseView, type ConsoleState } from './view.js'

/**
 * The console's stages of a case, an alarm or a request alike, in order. `stored`: the
 * console has it (in memory); `received`: its receipt was issued; then the operators'
 * answers [MQTT-4.7]. The gateway's own stages (`sent`, `unconfirmed`) travel in the
 * uplink as `gatewayStage` (a request is never `unconfirmed`).
 */
export const CONSOLE_STAGES = ['stored', 'received', 'acknowledged', 'dispatched', 'resolved'] as const
export type ConsoleStage = (typeof CONSOLE_STAGES)[number]
export type OperatorAction = 'receipt' | 'acknowledge' | 'dispatch' | 'resolve'

/** The stage each operator action moves a case to. */
export const ACTION_STAGE: Readonly<Record<OperatorAction, ConsoleStage>> = { receipt: 'received', acknowledge: 'acknowledged', dispatch: 'dispatched', resolve: 'resolved' }

/**
 * Whether a case at `stage` can still take `action`: the one question every caller asks.
 * The rules are the lifecycle's (protocol/lifecycle.ts): stages only move forward, any
 * may be skipped (dispatch straight after the receipt); so a receipt, sent for every copy,
 * moves only `stored`.
 */
export function canTake(stage: ConsoleStage, action: OperatorAction): boolean {
  return isForward(stage, ACTION_STAGE[action])
}

/**
 * The classes of a case: an alarm (an emergency: help is sent) or a request (a call-back
 * request, a message relayed for a neighbour: the hotline answers it).
 */
export type CaseClass = 'alarm' | 'request'

/**
 * What the console does by itself after it acknowledges a case, each after its delay
 * (`dispatchAfterS`, `resolveAfterS`): an alarm gets help sent and is closed; a request
 * is only closed, because the hotline answers it by phone.
 */
export const AUTOMATIC_AFTER_ACKNOWLEDGEMENT: Readonly<Record<CaseClass, readonly ('dispatch' | 'resolve')[]>> = {
  alarm: ['dispatch', 'resolve'],
  request: ['resolve'],
}

/**
 * The `text` of a request's acknowledgement, by kind, when the operator gives none: the
 * herder reads it at the button ([MQTT-4.7]: at most 120 bytes). An alarm's shows `by`.
 */
export const REQUEST_ACKNOWLEDGEMENTS: Readonly<Record<string, string>> = {
  callback: '110 centre will call you back',
  relay: '110 centre has the message',
}
/** For a request of a kind this version does not know. */
export const OTHER_REQUEST_ACKNOWLEDGEMENT = '110 centre has your request'

/** The `text` of an acknowledgement when the operator gives none: a request's by its kind; none for an alarm. */
export function acknowledgementText(c: { class: CaseClass; kind: string }): string | undefined {
  return c.class === 'request' ? (REQUEST_ACKNOWLEDGEMENTS[c.kind] ?? OTHER_REQUEST_ACKNOWLEDGEMENT) : undefined
}

/** A case as the console keeps it: its view, and the timers of what follows by itself. */
export interface CaseRecord extends CaseView {
  timers: unknown[]
}

/** A copy of a case for the outside: no timers, nothing shared. */
export function caseView({ timers: _timers, ...a }: CaseRecord): CaseView {
  return { ...a, time: { ...a.time }, history: a.history.map((h) => ({ ...h })), relay: a.relay === null ? null : { ...a.relay } }
}

/** The cases by id, for the life of the process [CONSOLE-4]; each copy is counted in `state`. */
export class CaseBook {
  readonly #cases = new Map<string, CaseRecord>()
  /** Alarm id -> the cancel that names it, also when the cancel came first (a console restarted in between). */
  readonly #cancelledBy = new Map<string, string>()

  constructor(private readonly state: ConsoleState) {}

  get(id: string): CaseRecord | undefined {
    return this.#cases.get(id)
  }

  values(): IterableIterator<CaseRecord> {
    return this.#cases.values()
  }

  /** Copies of the cases not resolved yet, oldest first. */
  open(): CaseView[] {
    return [...this.#cases.values()].filter((a) => canTake(a.stage, 'resolve')).map(caseView)
  }

  /** The case of this copy, new or known; counts it, and hears its terminal and gateway. */
  copy(e: UplinkEvent, cls: CaseClass, gateway: string, receivedAt: number, unknownKind: boolean): { a: CaseRecord; duplicate: boolean } {
    const counters = this.state.counters
    let a = this.#cases.get(e.id)
    const duplicate = a !== undefined
    if (cls === 'alarm') counters.alertCopies++
    else counters.requestCopies++
    if (a === undefined) {
      if (cls === 'alarm') counters.alerts++
      else counters.requests++
      a = {
        id: e.id,
        class: cls,
        gateway,
        terminal: e.terminal,
        kind: e.kind,
        code: e.code,
        address: e.address,
        number: e.number,
        time: e.time,
        text: e.text ?? null,
        firstReceivedAt: receivedAt,
        lastReceivedAt: receivedAt,
        copies: 1,
        attempt: e.attempt,
        gatewayStage: e.stage ?? null,
        stage: 'stored',
        history: [{ stage: 'stored', at: receivedAt }],
        acknowledgedBy: null,
        unit: null,
        eta: null,
        unknownKind,
        cancels: e.cancels ?? null,
        claims: e.claims ?? null,
        cancelledBy: this.#cancelledBy.get(e.id) ?? null,
        relay: relayView(e.relay),
        timers: [],
      }
      this.#cases.set(e.id, a)
    } else {
      a.copies++
      a.lastReceivedAt = receivedAt
      a.attempt = Math.max(a.attempt, e.attempt)
      if (e.stage !== undefined) a.gatewayStage = e.stage
      this.state.countDuplicate(e.id)
    }
    if (e.cancels !== undefined && !this.#cancelledBy.has(e.cancels)) {
      // Shown, not acted on: the terminal's word that the alarm was a mistake or is over; an operator closes it.
      this.#cancelledBy.set(e.cancels, e.id)
      const cancelled = this.#cases.get(e.cancels)
      if (cancelled !== undefined) cancelled.cancelledBy = e.id
    }
    this.state.touchTerminal(e.terminal, gateway, e.address, e.kind, receivedAt)
    this.state.touchGateway(gateway, receivedAt)
    return { a, duplicate }
  }

  /** Moves the case to the stage of `action` if it can still take it [CONSOLE-6]; false if not. */
  advance(a: CaseRecord, action: OperatorAction, at: number): boolean {
    if (!canTake(a.stage, action)) return false
    const next = ACTION_STAGE[action]
    a.stage = next
    a.history.push({ stage: next, at })
    return true
  }

  /** The case an operator command names; throws CONSOLE_UNKNOWN_ALERT, or CONSOLE_STAGE_PASSED if it is at that stage or further. */
  lookup(alertId: string, action: OperatorAction): CaseRecord {
    const a = this.#cases.get(alertId)
    if (a === undefined) throw new ConsoleError('CONSOLE_UNKNOWN_ALERT', `no alarm or request '${alertId}' has reached this console`)
    if (!canTake(a.stage, action)) throw new ConsoleError('CONSOLE_STAGE_PASSED', `${a.class} ${alertId} is already ${a.stage}`)
    return a
  }
}
