/**
 * One command and out, each on a connection of its own, not a running console's: a
 * broadcast or its withdrawal (`steppelink console broadcast`), a key rotation
 * (`steppelink console key-rotate`).
 */

import { readFileSync } from 'node:fs'
import mqtt from 'mqtt'
import { keyId, parsePublicKey } from '../protocol/mqtt.js'
import { tlsClientOptions } from './connection.js'
import { COMMAND_PUBLISH, broadcastBody, checkedCommand, commandIds, commandPayload, signerFromFile, targetTopic } from './commands.js'
import { ConsoleError } from './errors.js'
import { commandLine, type CommandLine } from './events.js'
import {
  BroadcastSettings,
  CONSOLE_DEFAULTS,
  KeyRotateSettings,
  WithdrawSettings,
  checkOptions,
  type BroadcastOptions,
  type KeyRotateOptions,
  type OneCommandOptions,
  type WithdrawOptions,
} from './options.js'

/**
 * Publishes one broadcast command (QoS 1, not retained) on a connection of its own
 * (clean session, a client id of its own) and resolves once the broker has it (PUBACK),
 * with the `command-sent` event of it.
 * Throws CONSOLE_BAD_OPTION or CONSOLE_BAD_COMMAND before connecting if the command would
 * be rejected, and CONSOLE_NOT_CONFIRMED if the broker did not acknowledge in time (the
 * broker may or may not have it then).
 */
export async function publishBroadcast(o: BroadcastOptions): Promise<CommandLine> {
  checkOptions(BroadcastSettings, o)
  return publishOne(o, 'broadcast', (nowMs) => broadcastBody(o.text, o.urgency ?? 'info', o.expiresInS, o.broadcastId, nowMs))
}

/** Publishes one `broadcast-withdraw` command, as publishBroadcast publishes a broadcast. */
export async function publishWithdraw(o: WithdrawOptions): Promise<CommandLine> {
  checkOptions(WithdrawSettings, o)
  return publishOne(o, 'withdrawal', () => ({ type: 'broadcast-withdraw', broadcast: o.broadcast }))
}

/** How long a key-rotate stays valid by default, s: a day, for gateways that are briefly offline ([MQTT-5.13]). */
export const KEY_ROTATE_VALID_FOR_S = 86_400

/**
 * The key id of `nextKey`: 16 hex digits as given, or the id of the public key in that file
 * (platform.pub of the new pair). Throws CONSOLE_BAD_OPTION saying what is wrong.
 */
export function nextKeyId(nextKey: string): string {
  if (/^[0-9a-f]{16}$/.test(nextKey)) return nextKey
  let text: string
  try {
    text = readFileSync(nextKey, 'utf8')
  } catch (e) {
    throw new ConsoleError('CONSOLE_BAD_OPTION', `the next key '${nextKey}' is neither a key id (16 hex digits, lower case) nor a file that can be read: ${(e as Error).message}`)
  }
  try {
    return keyId(parsePublicKey(text))
  } catch (e) {
    throw new ConsoleError('CONSOLE_BAD_OPTION', `${nextKey} is not a platform public key (platform.pub of the new pair): ${(e as Error).message}`)
  }
}

/**
 * Publishes one signed `key-rotate` [MQTT-5.13], as publishBroadcast publishes a broadcast:
 * the gateways of `to` make their configured next key the key in force. Signed with the
 * current key (`signingKey`, required: an unsigned key-rotate is refused), valid for
 * `validForS` (default a day). Throws CONSOLE_BAD_OPTION before connecting if a key file is
 * wrong. That the gateways took it shows in their status (`platformKey`) and, if not, in a
 * Reply (`CMD_BAD_VALUE`: not their next key; `CMD_UNKNOWN_KEY`: not signed with their key
 * in force).
 */
export async function publishKeyRotate(o: KeyRotateOptions): Promise<CommandLine> {
  checkOptions(KeyRotateSettings, o)
  const key = nextKeyId(o.nextKey)
  return publishOne(o, 'key-rotate', () => ({ type: 'key-rotate', key }), (o.validForS ?? KEY_ROTATE_VALID_FOR_S) * 1000)
}

async function publishOne(o: OneCommandOptions, what: string, body: (nowMs: number) => Record<string, unknown>, validityMs?: number): Promise<CommandLine> {
  const now = o.now ?? Date.now
  const prefix = o.prefix ?? CONSOLE_DEFAULTS.prefix
  const id = o.id ?? CONSOLE_DEFAULTS.id
  const { topic, gateway } = targetTopic(prefix, o.to)
  const newId = commandIds(id, now, Math.random)
  const command = checkedCommand({ v: 1, id: newId(), ...body(now()), at: now() })
  const signer = signerFromFile(o.signingKey, prefix, now, validityMs)
  const timeoutMs = o.timeoutMs ?? 30_000
  const tls = tlsClientOptions(o.broker, o)
  const client = mqtt.connect(o.broker, {
    // A client id of its own (never the console's, whose session it would take over), clean.
    clientId: `steppelink-console-${id.slice(0, 40)}-b${Math.floor(Math.random() * 0xffffffff).toString(16)}`,
    clean: true,
    protocolVersion: 4,
    reconnectPeriod: 1000,
    connectTimeout: Math.min(timeoutMs, 30_000),
    ...(o.username === undefined ? {} : { username: o.username }),
    ...(o.password === undefined ? {} : { password: o.password }),
    ...tls,
  })
  let lastError: string | null = null
  client.on('error', (e) => {
    lastError = e.message
  })
  let timer: ReturnType<typeof setTimeout> | undefined
  try {
    await new Promise<void>((resolve, reject) => {
      timer = setTimeout(() => {
        reject(
          new ConsoleError('CONSOLE_NOT_CONFIRMED', `the broker ${o.broker} did not acknowledge the ${what} within ${timeoutMs / 1000} s${lastError === null ? '' : ` (last error: ${lastError})`}`),
        )
      }, timeoutMs)
      // Published at once: mqtt.js keeps it until the connection is up.
      client.publish(topic, commandPayload(command, topic, signer), COMMAND_PUBLISH, (err) => {
        if (err) reject(new ConsoleError('CONSOLE_NOT_CONFIRMED', `publishing the ${what} failed: ${err.message}`, { cause: err }))
        else resolve()
      })
    })
  } finally {
    clearTimeout(timer)
    await client.endAsync(true).catch(() => {})
  }
  return commandLine(command, topic, gateway, null, null, now())
}
