/**
 * The console's events: one per uplink item, command and notable happening, in order,
 * through `onEvent`; `steppelink console --json` prints each as a line. Every event has
 * the fields of LineBase, so that a reader of the JSON lines finds the same keys in each.
 */

import type { Command, CommandType, UplinkEvent } from '../protocol/mqtt.js'
import type { ConsoleStage } from './cases.js'
import type { PayloadErrorCode } from './errors.js'
import { relayView, type RelayView } from './view.js'

/** A payload's time ([MQTT-3.5]). */
export type Time = { at: number; estimated: boolean }

/** What a terminal-reset carries: why the gateway saw the terminal's event numbers restart, and the new `epoch` of its ids. */
export type TerminalReset = NonNullable<UplinkEvent['reset']>

export interface LineBase {
  /** The item's id; a command's id for `command-sent`; the rejected command's for `reply`. */
  id: string | null
  /** The gateway: from the topic for uplink, the addressee for a command (null for area and all). */
  gateway: string | null
  terminal: string | null
  /** Contact ID code of an event; the error code of a reply or an error. */
  code: number | string | null
  kind: string | null
  /** The payload's own time ([MQTT-3.5]); for a command, when it was issued. */
  time: Time | null
  /** Local clock, UNIX ms: when it reached the console (for a command: when the broker acknowledged it). */
  receivedAt: number
  /** receivedAt − time.at: how old it was on arrival; null when there is no time or it is estimated. */
  ageMs: number | null
}

/** A copy whose content differs from what came under its id before [CONSOLE-10] [MQTT-4.15]. */
export interface CopyConflict {
  /** The fields in which it differs from the first version. */
  differs: string[]
  /** Versions under this id so far. */
  versions: number
  warning: string
}

export interface AlertLine extends LineBase {
  type: 'alert'
  id: string
  class: string
  address: number | null
  number: number | null
  attempt: number
  /** The stage the gateway had when it published this copy (`stored`, `sent`, `unconfirmed`). */
  gatewayStage: string | null
  /** The console's stage when the copy arrived. */
  stage: ConsoleStage
  /** Copies of this id so far, this one included. */
  copies: number
  duplicate?: true
  /** [CONSOLE-10] Not a republication: another item under a known id; one may be forged. */
  idConflict?: CopyConflict
  text?: string
  /** A cancel: the id of the alarm it cancels, when the gateway knows it. */
  cancels?: string
  /** From a second claimant of a bound terminal id ([MQTT-3.10]): the id it claimed. Unverified: it may be that terminal moved, or an impersonator. */
  claims?: string
  /** Relayed by the center household for a neighbour ([MQTT-3.11]): who relayed it, for whom. */
  relay?: RelayView
  unknownKind?: true
}

export interface EventLine extends LineBase {
  type: 'event'
  id: string
  class: string
  restore: boolean
  address: number | null
  number: number | null
  attempt: number
  /** The batch it came in, or null when it came alone on `event`. */
  batch: string | null
  /** A request ([CONSOLE-3]): the console's stage of the case when this copy arrived. */
  stage?: ConsoleStage
  /** A request: copies of this id so far, this one included. */
  copies?: number
  duplicate?: true
  /** A request: [CONSOLE-10] another item under a known id. */
  idConflict?: CopyConflict
  text?: string
  broadcast?: number
  /** A broadcast-read: which text of the broadcast was read (0 the first, +1 at each replacement). */
  revision?: number
  /** A terminal-reset: why, and the tag of the terminal's ids from now on. */
  reset?: TerminalReset
  /** A relayed request ([MQTT-3.11]): who relayed it, for whom. */
  relay?: RelayView
  /** A broadcast-read by the center household (`household`) rather than a terminal ([MQTT-3.12]). */
  by?: string
  /** A broadcast-passed-on: to how many households. */
  households?: number
  unknownKind?: true
}

export interface StatusLine extends LineBase {
  type: 'status'
  /** `terminal`: a TerminalStatus ([MQTT-3.4]), kind `status`; `gateway`: the gateway's status ([MQTT-3.7]), kind `gateway-status`. */
  scope: 'terminal' | 'gateway'
  batch: string | null
  duplicate?: true
  latest?: Record<string, unknown>
  session?: number
}

export interface StateLine extends LineBase {
  type: 'state'
  kind: 'birth' | 'death'
  session: number
  /** The gateway's liveness after this message. */
  online: boolean
  /** A death of an older session than the latest birth: ignored [MQTT-2.3]. */
  stale?: true
}

export interface ReplyLine extends LineBase {
  type: 'reply'
  /** The rejected command's id (also in `id`). */
  command: string | null
  message: string
  topic: string
  /** Replies the gateway held back by its rate limit before this one ([MQTT-5.2]); 0 if none. */
  suppressed: number
}

export interface CommandLine extends LineBase {
  type: 'command-sent'
  id: string
  kind: CommandType
  topic: string
  /** The alert it is about (receipt: the first id), or null. */
  alert: string | null
  command: Command
}

export interface ErrorLine extends LineBase {
  type: 'error'
  code: PayloadErrorCode
  message: string
  topic: string | null
}

export interface ConnectionLine extends LineBase {
  type: 'connection'
  kind: 'connected' | 'disconnected' | 'failed'
  broker: string
  /** At `connected`: whether the broker still had this console's session. */
  sessionPresent?: boolean
  message?: string
}

export type ConsoleEvent = AlertLine | EventLine | StatusLine | StateLine | ReplyLine | CommandLine | ErrorLine | ConnectionLine

/** The times of a line: the payload's, when it arrived, and how old it was then. */
export function times(time: Time | null, receivedAt: number): Pick<LineBase, 'time' | 'receivedAt' | 'ageMs'> {
  return { time, receivedAt, ageMs: time === null || time.estimated ? null : receivedAt - time.at }
}

/** The fields of LineBase, all empty, at `receivedAt`. */
export function blank(receivedAt: number): LineBase {
  return { id: null, gateway: null, terminal: null, code: null, kind: null, time: null, receivedAt, ageMs: null }
}

/** The `command-sent` line of a command the broker has, `receivedAt` when it acknowledged it. */
export function commandLine(command: Command, topic: string, gateway: string | null, terminal: string | null, alert: string | null, receivedAt: number): CommandLine {
  const at = command.at ?? receivedAt
  return { type: 'command-sent', id: command.id, gateway, terminal, code: null, kind: command.type, time: { at, estimated: false }, receivedAt, ageMs: receivedAt - at, topic, alert, command }
}

/** The fields of an `event` line that come from the item itself. */
export function eventFields(e: UplinkEvent, gateway: string, batch: string | null, unknownKind: boolean) {
  return {
    type: 'event' as const,
    id: e.id,
    gateway,
    terminal: e.terminal,
    code: e.code,
    kind: e.kind,
    class: e.class,
    restore: e.restore,
    address: e.address,
    number: e.number,
    attempt: e.attempt,
    batch,
    ...(e.text === undefined ? {} : { text: e.text }),
    ...(e.broadcast === undefined ? {} : { broadcast: e.broadcast }),
    ...(e.revision === undefined ? {} : { revision: e.revision }),
    ...(e.reset === undefined ? {} : { reset: e.reset }),
    ...(e.relay === undefined ? {} : { relay: relayView(e.relay)! }),
    ...(e.by === undefined ? {} : { by: e.by }),
    ...(e.households === undefined ? {} : { households: e.households }),
    ...(unknownKind ? { unknownKind: true as const } : {}),
  }
}
