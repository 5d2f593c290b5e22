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
 * - [CONSOLE-10] Same id, different content [MQTT-4.15]: a copy is a duplicate only if it
 *   is a republication of what came under that id before (protocol/mqtt-copies.ts says
 *   which fields count); else the case has a conflict: both versions are kept and shown,
 *   the case opens again at `stored` (whatever it had reached: the answers may have gone to
 *   the other version), it gets its receipt, is never acknowledged, dispatched or resolved
 *   by itself, and waits for an operator who phones the household. One of the versions may
 *   be forged.
 */

import { isForward } from '../protocol/lifecycle.js'
import { differingContent, type UplinkEvent } from '../protocol/mqtt.js'
import { ConsoleError } from './errors.js'
import { relayView, type CaseView, type ConsoleState, type CopyVersion } from './view.js'

/** Versions kept per case at most: a flood of forgeries under one id is counted, not kept. */
export const MAX_VERSIONS = 8

/** What the operator is told of a case with a conflict [CONSOLE-10]. */
export const CONFLICT_WARNING = 'two different alerts under one id: one may be forged; phone the household'

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
  return {
    ...a,
    time: { ...a.time },
    history: a.history.map((h) => ({ ...h })),
    relay: a.relay === null ? null : { ...a.relay },
    conflict: a.conflict === null ? null : { ...a.conflict, differs: [...a.conflict.differs], versions: a.conflict.versions.map(versionView) },
  }
}

function versionView(v: CopyVersion): CopyVersion {
  return { ...v, event: structuredClone(v.event) }
}

/** What one copy did to its case. */
export interface Copied {
  a: CaseRecord
  /** A republication of a version seen before [MQTT-4.9]. */
  duplicate: boolean
  /** A new version under a known id [CONSOLE-10]: the fields in which it differs from the first; null if none. */
  conflict: string[] | null
}

/** The cases by id, for the life of the process [CONSOLE-4]; each copy is counted in `state`. */
export class CaseBook {
  readonly #cases = new Map<string, CaseRecord>()
  /** Alarm id -> the cancel that names it, also when the cancel came first (a console restarted in between). */
  readonly #cancelledBy = new Map<string, string>()
  /** Case id -> the distinct versions that came under it, the first first [CONSOLE-10]. */
  readonly #versions = new Map<string, CopyVersion[]>()

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
  copy(e: UplinkEvent, cls: CaseClass, gateway: string, receivedAt: number, unknownKind: boolean): Copied {
    const counters = this.state.counters
    let a = this.#cases.get(e.id)
    let duplicate = false
    let conflict: string[] | null = null
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
        conflict: null,
        relay: relayView(e.relay),
        timers: [],
      }
      this.#cases.set(e.id, a)
      this.#versions.set(e.id, [{ gateway, event: e, firstReceivedAt: receivedAt, lastReceivedAt: receivedAt, copies: 1 }])
    } else {
      a.copies++
      a.lastReceivedAt = receivedAt
      a.attempt = Math.max(a.attempt, e.attempt)
      if (e.stage !== undefined) a.gatewayStage = e.stage
      const versions = this.#versions.get(e.id)!
      // [MQTT-4.15] The same gateway, and the same content but for what changes per publication.
      const open = a.stage !== 'resolved'
      const same = versions.find((v) => v.gateway === gateway && differingContent(v.event, e, { open }).length === 0)
      if (same !== undefined) {
        same.copies++
        same.lastReceivedAt = receivedAt
        duplicate = true
        this.state.countDuplicate(e.id)
      } else {
        const first = versions[0]!
        conflict = differingContent(first.event, e, { open })
        if (first.gateway !== gateway) conflict.unshift('gateway (topic)')
        if (versions.length < MAX_VERSIONS) versions.push({ gateway, event: e, firstReceivedAt: receivedAt, lastReceivedAt: receivedAt, copies: 1 })
        counters.conflicts++
        a.conflict = {
          warning: CONFLICT_WARNING,
          differs: [...new Set([...(a.conflict?.differs ?? []), ...conflict])],
          since: a.conflict?.since ?? receivedAt,
          versions,
        }
        // Open again, whatever it had reached: its answers may have gone to the other version.
        if (a.stage !== 'stored') {
          a.stage = 'stored'
          a.history.push({ stage: 'stored', at: receivedAt })
        }
      }
    }
    if (e.cancels !== undefined && !this.#cancelledBy.has(e.cancels)) {
      // Shown, not acted on: the terminal's word that the alarm was a mistake or is over; an operator closes it.
      this.#cancelledBy.set(e.cancels, e.id)
      const cancelled = this.#cases.get(e.cancels)
      if (cancelled !== undefined) cancelled.cancelledBy = e.id
    }
    this.state.touchTerminal(e.terminal, gateway, e.address, e.kind, receivedAt)
    this.state.touchGateway(gateway, receivedAt)
    return { a, duplicate, conflict }
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
