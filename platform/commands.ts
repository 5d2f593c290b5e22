/**
 * The commands the console sends, before they are sent: ids, targets, bodies, and the
 * check that makes them commands a gateway takes.
 *
 * - [CONSOLE-7] Commands are JSON, QoS 1, never retained [MQTT-5.4], each checked with
 *   `parseCommand` before it is published, so the console cannot send what a gateway
 *   would reject. Command ids are `<console id>-<start, base 36>-<counter>-<random>`:
 *   unique across restarts without a counter on disk.
 */

import { readFileSync } from 'node:fs'
import type { KeyObject } from 'node:crypto'
import type { Urgency } from '../protocol/messages.js'
import { TOPIC_ID_PATTERN, audienceOfTopic, encodePayload, gatewayTopics, keyId, parseCommand, parsePrivateKey, signCommand, type Command } from '../protocol/mqtt.js'
import { ConsoleError } from './errors.js'

/** What every command is published with [CONSOLE-7]. */
export const COMMAND_PUBLISH = { qos: 1, retain: false } as const

/** A command as it goes on the wire [CONSOLE-7]: signed when the console has a signing key [MQTT-5.12]. */
export function commandPayload(command: Command, topic?: string, signer?: CommandSigner | null): Buffer {
  if (signer && topic !== undefined) return signer.sign(command, topic)
  return encodePayload(command, 'json')
}

/** How long a signed command stays valid after it is sent (`exp`), ms: long enough to wait in the broker for a gateway that is briefly offline. */
export const COMMAND_VALIDITY_MS = 3_600_000

/** Signs commands [MQTT-5.12]: `aud` from the topic, `seq` = max(now, last + 1) (no state on disk), `exp` = now + validity. */
export interface CommandSigner {
  readonly keyId: string
  sign(command: Command, topic: string): Buffer
}

/** A signer with `key`; `prefix` is the gateways' topic prefix. */
export function commandSigner(key: KeyObject, prefix: string, now: () => number, validityMs = COMMAND_VALIDITY_MS): CommandSigner {
  let last = 0
  return {
    keyId: keyId(key),
    sign(command, topic) {
      const aud = audienceOfTopic(prefix, topic)
      if (aud === null) throw new ConsoleError('CONSOLE_BAD_COMMAND', `${topic} is not a command topic under ${prefix}: cannot sign for it`)
      const t = now()
      last = Math.max(t, last + 1)
      return signCommand({ ...command, aud, seq: last, exp: t + validityMs }, key, 'json')
    },
  }
}

/** The signer of a key file (platform.key), or null without one; throws CONSOLE_BAD_OPTION saying what is wrong. */
export function signerFromFile(file: string | undefined, prefix: string, now: () => number, validityMs = COMMAND_VALIDITY_MS): CommandSigner | null {
  if (file === undefined) return null
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (e) {
    throw new ConsoleError('CONSOLE_BAD_OPTION', `cannot read the signing key ${file}: ${(e as Error).message}; give platform.key from steppelink keygen`)
  }
  try {
    return commandSigner(parsePrivateKey(text), prefix, now, validityMs)
  } catch (e) {
    throw new ConsoleError('CONSOLE_BAD_OPTION', `${file} is not a platform private key (PEM, from steppelink keygen): ${(e as Error).message}`)
  }
}

/** A command's body checked as a gateway would check it; throws CONSOLE_BAD_COMMAND naming the field. */
export function checkedCommand(body: Record<string, unknown>): Command {
  const parsed = parseCommand(encodePayload(body, 'json'))
  if (!parsed.ok) throw new ConsoleError('CONSOLE_BAD_COMMAND', parsed.message)
  return parsed.command
}

/** Command ids unique across restarts without state on disk [CONSOLE-7]. */
export function commandIds(id: string, now: () => number, random: () => number): () => string {
  const start = now().toString(36)
  let counter = 0
  return () =>
    `${id}-${start}-${++counter}-${Math.floor(random() * 0x10000)
      .toString(16)
      .padStart(4, '0')}`
}

const topicId = new RegExp(TOPIC_ID_PATTERN)

/** The command topic of a broadcast target [MQTT-5.4]: a gateway id, `all`, or `area:NAME`. Throws CONSOLE_BAD_COMMAND. */
export function targetTopic(prefix: string, to: string): { topic: string; gateway: string | null } {
  if (to === 'all') return { topic: gatewayTopics(prefix, 'x').allCommand, gateway: null }
  if (to.startsWith('area:')) {
    const area = to.slice(5)
    if (!topicId.test(area)) throw new ConsoleError('CONSOLE_BAD_COMMAND', `area name '${area}' must be 1-64 of A-Z a-z 0-9 . _ : -`)
    return { topic: gatewayTopics(prefix, 'x', area).areaCommand!, gateway: null }
  }
  if (!topicId.test(to)) throw new ConsoleError('CONSOLE_BAD_COMMAND', `'${to}' is not a gateway id (1-64 of A-Z a-z 0-9 . _ : -), 'all' or 'area:NAME'`)
  return { topic: gatewayTopics(prefix, to).command, gateway: to }
}

/** Broadcast ids: UNIX seconds, kept increasing within a process so two in a second do not replace each other. */
let lastBroadcastId = 0
function nextBroadcastId(nowMs: number): number {
  lastBroadcastId = Math.max(lastBroadcastId + 1, Math.floor(nowMs / 1000)) % 2 ** 32
  return lastBroadcastId
}

/** The body of a broadcast command [MQTT-5.7]; `expiresInS` from `nowMs`; a new id unless one is given. */
export function broadcastBody(text: string, urgency: Urgency, expiresInS: number | undefined, broadcastId: number | undefined, nowMs: number): Record<string, unknown> {
  if (expiresInS !== undefined && !(Number.isFinite(expiresInS) && expiresInS > 0)) {
    throw new ConsoleError('CONSOLE_BAD_COMMAND', `expiresInS must be a number of seconds above 0, got ${expiresInS}`)
  }
  return {
    type: 'broadcast',
    broadcast: broadcastId ?? nextBroadcastId(nowMs),
    text,
    urgency,
    ...(expiresInS === undefined ? {} : { expires: Math.round(nowMs + expiresInS * 1000) }),
  }
}
