/**
 * Commands from the platform: the one path every payload on a command topic takes, then
 * the handler of its type. The path answers, once and here, what is not a command to apply:
 * an empty payload (a retained message cleared), a retained command, a payload that does
 * not parse, a repeat; and an error while applying one. [MQTT-5.2] [MQTT-5.3] [MQTT-5.4]
 *
 * Signed commands [MQTT-5.12] (auth.ts): the signature is verified before the body is
 * parsed; then the audience; then the repeat rule (a QoS 1 redelivery is ignored silently,
 * as before); then expiry and the sequence number, which is taken on disk before the
 * command is applied.
 */

import { createHash } from 'node:crypto'
import { openEnvelope, parseCommand, tryDecode, type Command, type CommandType } from '../../protocol/mqtt.js'
import { broadcast, broadcastWithdraw } from './broadcasts.js'
import { configure } from './configure.js'
import type { CommandAuth, Refused } from './auth.js'
import type { CommandContext, CommandHandlers, CommandOf, Refusal } from './context.js'
import { keyRotate } from './key-rotate.js'
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
  'key-rotate': keyRotate,
} as const satisfies CommandHandlers

/** Command ids remembered to recognise a repeat [MQTT-5.3], and retained commands answered once per run. */
const REMEMBERED = 1000

export interface CommandsDeps extends Omit<CommandContext, 'topic' | 'own' | 'now' | 'refuse' | 'signed'> {
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
      const id = idOf(payload)
      this.d.count('commands.rejected')
      this.d.replies.send(topic, id, 'CMD_RETAINED', `a retained command is never applied (it would be applied again at every connection); clear it: publish an empty retained message to ${topic}`)
      log.warn({ topic, command: id }, 'retained command ignored: commands must not be published retained')
      return
    }
    const opened = this.d.auth.open(payload)
    if (!opened.ok) return this.#reject(topic, idOf(payload), opened)
    const parsed = parseCommand(opened.body)
    if (!parsed.ok) {
      this.d.count('commands.rejected')
      const sent = this.d.replies.send(topic, parsed.id, parsed.code, parsed.message)
      // A flood of bad commands must not flood the log (journald on the SD card) either:
      // the rejections whose report is held back are logged at debug, and counted.
      log[sent ? 'warn' : 'debug']({ topic, code: parsed.code, command: parsed.id, bytes: payload.length }, `command rejected: ${parsed.message}`)
      return
    }
    const c = parsed.command
    if (opened.signed) {
      const wrong = this.d.auth.audience(topic, c)
      if (wrong) return this.#reject(topic, c.id, wrong)
    }
    if (this.#recent.includes(c.id)) {
      log.debug({ command: c.id }, 'command repeated; ignored')
      return
    }
    let taking: ReturnType<CommandAuth['fresh']> | null = null
    if (opened.signed) {
      taking = this.d.auth.fresh(c)
      if ('code' in taking) return this.#reject(topic, c.id, taking)
    }
    this.#recent.push(c.id)
    if (this.#recent.length > REMEMBERED) this.#recent.shift()
    try {
      // The sequence number is taken on disk first: a power cut while applying loses the
      // command (the platform sends it again under a new seq), never applies it twice. [MQTT-5.12]
      taking?.take()
      this.#apply(topic, c, opened.signed)
      this.d.flush()
    } catch (err) {
      log.error({ err, command: c.id, type: c.type }, 'internal error applying a command')
      this.d.replies.send(topic, c.id, 'CMD_FAILED', `the gateway could not apply it: ${(err as Error).message}`)
      // Failed, so not applied: the same command sent again is tried again, not ignored as a repeat.
      this.#recent.splice(this.#recent.lastIndexOf(c.id), 1)
      try {
        taking?.undo()
      } catch (e) {
        log.error({ err: e, command: c.id }, 'could not give back the sequence number of a failed command')
      }
    }
    this.d.pump()
  }

  /** A command refused before it is applied, for a reason of [MQTT-5.12] (or its envelope). */
  #reject(topic: string, id: string | null, r: Refused): void {
    this.d.count('commands.rejected')
    const sent = this.d.replies.send(topic, id, r.code, r.message)
    this.d.log[sent ? 'warn' : 'debug']({ topic, code: r.code, command: id }, `command rejected: ${r.message}`)
  }

  #apply(topic: string, c: Command, signed: boolean): void {
    const ctx: CommandContext = {
      ...this.d,
      signed,
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

/** The id of a signed command's body for a Reply, read without trusting it (the signature may not verify); null if none. */
function idOf(payload: Uint8Array): string | null {
  const opened = openEnvelope(tryDecode(payload))
  const value = opened.kind === 'signed' ? tryDecode(opened.body) : opened.kind === 'plain' ? tryDecode(payload) : undefined
  const id = (value as { id?: unknown } | undefined)?.id
  return typeof id === 'string' && id.length <= 128 ? id : null
}

/** Calls the handler of `type` with its own command type (the map ties the two together). */
function run<T extends CommandType>(type: T, c: CommandOf<T>, ctx: CommandContext): void {
  const handler: CommandHandlers[T] = HANDLERS[type]
  handler(c, ctx)
}
