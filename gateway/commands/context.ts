/**
 * What a command handler is given, and what a handler is. One handler per command type
 * (index.ts holds the map): each sees the command as its own type, already narrowed from
 * the untrusted payload by parseCommand. [MQTT-5.1]
 */

import type { GatewayLink } from '../../protocol/link.js'
import type { Command, CommandErrorCode, CommandType } from '../../protocol/mqtt.js'
import type { GatewayClock } from '../clock.js'
import type { GatewayEvents } from '../gateway-events.js'
import type { GatewaySettings, Log } from '../gateway.js'
import type { KnownTerminals } from '../known-terminals.js'
import type { Outbox } from '../outbox.js'
import type { Publishing } from '../publishing.js'
import type { Store } from '../store.js'
import type { ToTheButton } from '../to-the-button.js'
import type { CommandAuth } from './auth.js'

/** Why a valid command is not applied. [MQTT-5.2] */
export type Refusal = Extract<CommandErrorCode, 'CMD_BAD_VALUE' | 'CMD_STALE' | 'CMD_UNKNOWN_ALERT'>

export interface CommandContext {
  /** The command topic it came on. */
  topic: string
  /** Whether that is this gateway's own topic, rather than its area's or every gateway's. [MQTT-5.4] */
  own: boolean
  /** Whether it came signed with the platform key in force, and passed every check of [MQTT-5.12]. */
  signed: boolean
  /** The platform keys [MQTT-5.12] [MQTT-5.13]. */
  auth: CommandAuth
  /** When it is applied, gateway clock, ms. */
  now: number
  /** Live: the `config` command changes them. */
  settings: GatewaySettings
  store: Store
  link: GatewayLink
  clock: GatewayClock
  outbox: Outbox
  log: Log
  known: KnownTerminals
  toButton: ToTheButton
  publishing: Publishing
  /** Events the gateway makes itself, for the platform (a broadcast received). */
  events: GatewayEvents
  /** A named counter in the store, for the status; never throws. */
  count(name: string): void
  /** Answers that it cannot be applied: it has no effect; the Reply and the log say why. */
  refuse(code: Refusal, message: string): void
}

export type CommandOf<T extends CommandType> = Extract<Command, { type: T }>
export type CommandHandler<T extends CommandType> = (c: CommandOf<T>, ctx: CommandContext) => void
/** A handler for every command type: a type added to the contract without one does not compile. */
export type CommandHandlers = { readonly [T in CommandType]: CommandHandler<T> }
