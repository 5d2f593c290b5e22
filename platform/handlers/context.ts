/**
 * What a handler of an uplink message is given: the console's state to update, and the
 * ways out (events, errors, commands). Handlers take narrowed messages (uplink.ts) and
 * check nothing again [CONSOLE-2].
 */

import type { Command } from '../../protocol/mqtt.js'
import type { Answers, Followup } from '../answers.js'
import type { CaseBook } from '../cases.js'
import type { PayloadErrorCode } from '../errors.js'
import type { ConsoleEvent } from '../events.js'
import type { AckMode } from '../options.js'
import type { ConsoleState } from '../view.js'

export interface HandlerContext {
  readonly prefix: string
  readonly ack: AckMode
  /** Answer every birth with a `time` command [MQTT-4.13]. */
  readonly sendTime: boolean
  readonly state: ConsoleState
  readonly cases: CaseBook
  readonly answers: Answers
  now(): number
  emit(event: ConsoleEvent): void
  error(code: PayloadErrorCode, message: string, topic: string | null, gateway: string | null, receivedAt?: number): void
  /** Builds, checks and publishes a command [CONSOLE-7]. */
  send(topic: string, gateway: string | null, body: Record<string, unknown>, alert: string | null): Promise<Command>
}

/** The message being handled: where it came from, when, and what it leaves to do. */
export interface Handling {
  readonly gateway: string
  readonly topic: string
  /** Local clock when it came off the socket. */
  readonly receivedAt: number
  readonly followup: Followup
}
