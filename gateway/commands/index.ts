/**
 * Commands from the platform: the one path every payload on a command topic takes, then
 * the handler of its type. The path answers, once and here, what is not a command to apply:
 * an empty payload (a retained message cleared), a retained command, a payload that does
 * not parse, a repeat; and an error while applying one. [MQTT-5.2] [MQTT-5.3] [MQTT-5.4]
 */

import { createHash } from 'node:crypto'
import { parseCommand, type Command, type CommandType } from '../../protocol/mqtt.js'
import { broadcast, broadcastWithdraw } from './broadcasts.js'
import { configure } from './configure.js'
import type { CommandContext, CommandHandlers, CommandOf, Refusal } from './context.js'
import { receipt } from './receipt.js'
import type { Replies } from './replies.js'
import { acknowledged, dispatched, resolved } from './stages.js'
import { rebirth, statusRequest } from './status.js'
import { time } from './time.js'

/** The handler of each command type: one missing, or one for another type, does not compile (CommandHandlers). */
const HANDLERS = {
  receipt,
  acknowledged,
  dispatched,
  resolved,
  broadcast,
  'broadcast-withdraw': broadcastWithdraw,
  time,
  config: configure,
  'status-request': statusRequest,
  rebirth,
} as const satisfies CommandHandlers

/** Command ids remembered to recognise a repeat [MQTT-5.3], and retained commands answered once per run. */
const REMEMBERED = 1000

export interface CommandsDeps extends Omit<CommandContext, 'topic' | 'own' | 'now' | 'refuse'> {
  /** This gateway's own command topic. */
  ownTopic: string
  io: { now(): number }
  replies: Replies
  /** After a command is applied: put what it queued for the terminals on the serial line. */
  flush(): void
  /** After a command: publish what it made due. */
  pump(): void
}

export class Commands {
  readonly #recent: string[] = []
  /** Retained commands already answered with CMD_RETAINED, by digest: once each per run. */
  readonly #retained = new Set<string>()

  constructor(private readonly d: CommandsDeps) {}

  /**
   * A payload on one of the command topics; `retained`: the broker delivered a retained
   * message (the PUBLISH had its retain flag). Throws only on a bug: the caller catches.
   */
  receive(topic: string, payload: Buffer, retained: boolean): void {
    const { log } = this.d
    if (payload.length === 0) {
      // Not a message: how MQTT clears a retained one (the platform cleaning up). [MQTT-4.3]
      log.debug({ topic }, 'empty payload on a command topic (a retained message cleared): ignored')
      return
    }
    if (retained) {
      // A retained command would be applied by every gateway at every connection, for
      // ever: it is never applied. The platform hears of it once per gateway run. [MQTT-5.4]
      const digest = createHash('sha256').update(topic).update(payload).digest('base64')
      if (this.#retained.has(digest)) return
      if (this.#retained.size >= REMEMBERED) this.#retained.clear()
      this.#retained.add(digest)
      const parsed = parseCommand(payload)
      const id = parsed.ok ? parsed.command.id : parsed.id
      this.d.count('commands.rejected')
      this.d.replies.send(topic, id, 'CMD_RETAINED', `a retained command is never applied (it would be applied again at every connection); clear it: publish an empty retained message to ${topic}`)
      log.warn({ topic, command: id }, 'retained command ignored: commands must not be published retained')
      return
    }
    const parsed = parseCommand(payload)
    if (!parsed.ok) {
      this.d.count('commands.rejected')
      const sent = this.d.replies.send(topic, parsed.id, parsed.code, parsed.message)
      // A flood of bad commands must not flood the log (journald on the SD card) either:
      // the rejections whose report is held back are logged at debug, and counted.
      log[sent ? 'warn' : 'debug']({ topic, code: parsed.code, command: parsed.id, bytes: payload.length }, `command rejected: ${parsed.message}`)
      return
    }
    const c = parsed.command
    if (this.#recent.includes(c.id)) {
      log.debug({ command: c.id }, 'command repeated; ignored')
      return
    }
    this.#recent.push(c.id)
    if (this.#recent.length > REMEMBERED) this.#recent.shift()
    try {
      this.#apply(topic, c)
      this.d.flush()
    } catch (err) {
      log.error({ err, command: c.id, type: c.type }, 'internal error applying a command')
      this.d.replies.send(topic, c.id, 'CMD_FAILED', `the gateway could not apply it: ${(err as Error).message}`)
      // Failed, so not applied: the same command sent again is tried again, not ignored as a repeat.
      this.#recent.splice(this.#recent.lastIndexOf(c.id), 1)
    }
    this.d.pump()
  }

  #apply(topic: string, c: Command): void {
    const ctx: CommandContext = {
      ...this.d,
      topic,
      own: topic === this.d.ownTopic,
      now: this.d.io.now(),
      refuse: (code, message) => this.#refuse(topic, c, code, message),
    }
    run(c.type, c, ctx)
  }

  /** A valid command that cannot be applied: it has no effect; Reply and log say why. */
  #refuse(topic: string, c: Command, code: Refusal, message: string): void {
    this.d.count('commands.rejected')
    const sent = this.d.replies.send(topic, c.id, code, message)
    this.d.log[sent ? 'warn' : 'debug']({ topic, code, command: c.id, type: c.type }, `command refused: ${message}`)
  }
}

/** Calls the handler of `type` with its own command type (the map ties the two together). */
function run<T extends CommandType>(type: T, c: CommandOf<T>, ctx: CommandContext): void {
  const handler: CommandHandlers[T] = HANDLERS[type]
  handler(c, ctx)
}
