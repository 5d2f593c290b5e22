/**
 * Downlink commands [MQTT-5.x], platform to gateway: the envelope, a schema per command
 * type, and parseCommand, which narrows an untrusted payload to one of them or says what
 * is wrong (the codes of the error report on `reply`).
 */

import Type, { type Static } from 'typebox'
import { Compile } from 'typebox/compile'
import { splitDisplayText } from './display.js'
import { URGENCIES } from './messages.js'
import { MQTT_CONTRACT_VERSION, names } from './mqtt-contract.js'
import { decodePayload } from './mqtt-encoding.js'

/**
 * Times the gateway can pass on: TIME and DISPLAY carry UNIX seconds in 32 bits [LINK-5.9],
 * so nothing later than 2106-02-07 06:28:15 UTC; nothing before 2017 is a real clock.
 */
export const MIN_UNIX_MS = 1_500_000_000_000
export const MAX_UNIX_MS = 0xffffffff * 1000
const unixMs = (description: string) => Type.Integer({ minimum: MIN_UNIX_MS, maximum: MAX_UNIX_MS, description })
const alertId = Type.String({ minLength: 1, maxLength: 160, description: 'the id of an alert, as published' })
const envelope = {
  v: Type.Literal(MQTT_CONTRACT_VERSION),
  id: Type.String({ minLength: 1, maxLength: 128, description: 'command id, unique; the gateway ignores a repeat' }),
  at: Type.Optional(Type.Integer({ description: 'UNIX ms when the platform issued it' })),
  /** Reserved; ignored by this version (signatures use the signed envelope of [MQTT-5.12] instead). */
  auth: Type.Optional(Type.Unknown()),
  // Signed commands [MQTT-5.12]: what the signature binds to the command. Required in the body of a signed envelope.
  aud: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'audience: gw/<id>, area/<area> or all, as the topic it is published on' })),
  seq: Type.Optional(Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER, description: 'sequence number, per audience, only growing' })),
  exp: Type.Optional(unixMs('UNIX ms after which the command must not be applied')),
}
const command = <T extends string, P extends Record<string, Type.TSchema>>(type: T, props: P) => Type.Object({ ...envelope, type: Type.Literal(type), ...props }, { additionalProperties: true })

export const Receipt = command('receipt', { ids: Type.Array(alertId, { minItems: 1, maxItems: 1000 }) })
export const Acknowledged = command('acknowledged', { alert: alertId, by: Type.String({ minLength: 1, maxLength: 100 }), text: Type.Optional(Type.String({ maxLength: 200 })) })
export const Dispatched = command('dispatched', {
  alert: alertId,
  unit: Type.String({ minLength: 1, maxLength: 100 }),
  eta: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535, description: 'minutes' })),
})
export const Resolved = command('resolved', { alert: alertId, text: Type.Optional(Type.String({ maxLength: 200 })) })
export const Broadcast = command('broadcast', {
  broadcast: Type.Integer({ minimum: 0, maximum: 0xffffffff, description: 'broadcast id' }),
  // What a terminal can show: 15 DISPLAY parts of 180 bytes of UTF-8. [LINK-5.8]
  text: Type.Refine(
    Type.String({ minLength: 1, maxLength: 2700 }),
    (t: string) => !splitDisplayText(t).truncated,
    () => 'must fit 15 display parts of 180 bytes of UTF-8 (about 900 Chinese characters)',
  ),
  urgency: names(URGENCIES),
  expires: Type.Optional(unixMs('UNIX ms')),
})
export const BroadcastWithdraw = command('broadcast-withdraw', { broadcast: Type.Integer({ minimum: 0, maximum: 0xffffffff, description: 'the id of the broadcast to take back' }) })
export const PlatformTime = command('time', {
  now: unixMs('UNIX ms'),
  session: Type.Optional(Type.Integer({ minimum: 0, description: "the session of the gateway's birth this time answers; a time for another session is stale" })),
})
export const Configure = command('config', {
  heartbeat: Type.Optional(Type.Integer({ minimum: 10, maximum: 86400, description: 'terminal heartbeat, s' })),
  supervision: Type.Optional(Type.Integer({ minimum: 10, maximum: 86400, description: 'terminal lost after, s' })),
  receiptTimeout: Type.Optional(Type.Integer({ minimum: 5, maximum: 86400, description: 'unconfirmed after, s' })),
  statusInterval: Type.Optional(Type.Integer({ minimum: 10, maximum: 86400, description: 'gateway status, s' })),
})
export const StatusRequest = command('status-request', {})
export const KeyRotate = command('key-rotate', {
  key: Type.String({ pattern: '^[0-9a-f]{16}$', description: "the key id of the gateway's configured next platform key, which becomes the current one" }),
})
export const Rebirth = command('rebirth', {})

export const Command = Type.Union([Receipt, Acknowledged, Dispatched, Resolved, Broadcast, BroadcastWithdraw, PlatformTime, Configure, StatusRequest, Rebirth, KeyRotate])
export type Command = Static<typeof Command>
export type CommandType = Command['type']
export const COMMAND_SCHEMAS = {
  receipt: Receipt,
  acknowledged: Acknowledged,
  dispatched: Dispatched,
  resolved: Resolved,
  broadcast: Broadcast,
  'broadcast-withdraw': BroadcastWithdraw,
  time: PlatformTime,
  config: Configure,
  'status-request': StatusRequest,
  rebirth: Rebirth,
  'key-rotate': KeyRotate,
} as const satisfies Record<CommandType, unknown>

const commandValidators = Object.fromEntries(Object.entries(COMMAND_SCHEMAS).map(([k, v]) => [k, Compile(v as never)])) as Record<CommandType, ReturnType<typeof Compile>>

/** Commands are small (a receipt of 1000 long ids is about 45 KiB); anything larger is refused before it is parsed. */
export const MAX_COMMAND_BYTES = 64 * 1024

/** Stable codes of the error reports on the reply topic. [MQTT-5.2] */
export const COMMAND_ERROR_CODES = [
  'CMD_TOO_LARGE',
  'CMD_UNDECODABLE',
  'CMD_NOT_AN_OBJECT',
  'CMD_BAD_VERSION',
  'CMD_UNKNOWN_TYPE',
  'CMD_BAD_SCHEMA',
  /** A command names an alert this gateway does not have. */
  'CMD_UNKNOWN_ALERT',
  /** The gateway could not apply a valid command (an internal error; it is logged). */
  'CMD_FAILED',
  /** Well-formed, but a value cannot be applied: a config that breaks a rule, a broadcast already expired. */
  'CMD_BAD_VALUE',
  /** A `time` for another session of the gateway, or far behind its clock: it waited in the broker. */
  'CMD_STALE',
  /** A command that the broker kept retained: ignored, it would be applied again at every connection. */
  'CMD_RETAINED',
  // Signed commands [MQTT-5.12]
  /** A plain command to a gateway that has a platform key: only signed commands are taken. */
  'CMD_UNSIGNED',
  /** Signed with a key that is not the gateway's current platform key. */
  'CMD_UNKNOWN_KEY',
  /** The signature does not verify: the body was changed, or it was not signed by that key. */
  'CMD_BAD_SIGNATURE',
  /** The body's `aud` is not the audience of the topic it came on, or not this gateway, its area or all. */
  'CMD_WRONG_AUDIENCE',
  /** Past its `exp` by the gateway's clock, once the platform has set it. */
  'CMD_EXPIRED',
  /** Its `seq` was taken already in its audience (or is older than the window): a replay. */
  'CMD_REPLAYED',
] as const
export type CommandErrorCode = (typeof COMMAND_ERROR_CODES)[number]
/** The codes of [MQTT-5.12], given before or after parsing the body. */
export type SignatureErrorCode = 'CMD_UNSIGNED' | 'CMD_UNKNOWN_KEY' | 'CMD_BAD_SIGNATURE' | 'CMD_WRONG_AUDIENCE' | 'CMD_EXPIRED' | 'CMD_REPLAYED'

export type CommandParse =
  | { ok: true; command: Command }
  | { ok: false; code: Exclude<CommandErrorCode, 'CMD_UNKNOWN_ALERT' | 'CMD_FAILED' | 'CMD_BAD_VALUE' | 'CMD_STALE' | 'CMD_RETAINED' | SignatureErrorCode>; message: string; id: string | null }

/**
 * A value from an untrusted payload, for an error message. Never throws: CBOR can carry
 * values JSON cannot write (a bignum, tag 2 or 3, decodes to a BigInt).
 */
function describeValue(v: unknown): string {
  if (typeof v === 'bigint') return `${v}n`
  try {
    return JSON.stringify(v) ?? String(v)
  } catch {
    return Object.prototype.toString.call(v)
  }
}

/** Narrows an untrusted downlink payload to a typed command, or says what is wrong. [MQTT-5.2] */
export function parseCommand(payload: Uint8Array): CommandParse {
  if (payload.length > MAX_COMMAND_BYTES) {
    return { ok: false, code: 'CMD_TOO_LARGE', message: `command of ${payload.length} bytes; the limit is ${MAX_COMMAND_BYTES}`, id: null }
  }
  let value: unknown
  try {
    value = decodePayload(payload)
  } catch (e) {
    return { ok: false, code: 'CMD_UNDECODABLE', message: `payload is neither JSON nor CBOR: ${(e as Error).message}`, id: null }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    const got = value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value
    return { ok: false, code: 'CMD_NOT_AN_OBJECT', message: `a command must be a map/object, got ${got}`, id: null }
  }
  const v = value as Record<string, unknown>
  const id = typeof v.id === 'string' && v.id.length <= 128 ? v.id : null
  if (v.v !== MQTT_CONTRACT_VERSION) {
    return { ok: false, code: 'CMD_BAD_VERSION', message: `contract version ${describeValue(v.v)}, this gateway speaks ${MQTT_CONTRACT_VERSION}`, id }
  }
  const type = v.type
  const validator = typeof type === 'string' && Object.hasOwn(commandValidators, type) ? commandValidators[type as CommandType] : undefined
  if (!validator) {
    return { ok: false, code: 'CMD_UNKNOWN_TYPE', message: `unknown command type ${describeValue(type)}; known: ${Object.keys(COMMAND_SCHEMAS).join(', ')}`, id }
  }
  if (!validator.Check(v)) {
    const first = [...validator.Errors(v)][0]
    return { ok: false, code: 'CMD_BAD_SCHEMA', message: `${String(type)}: ${first ? `${first.instancePath || '/'} ${first.message}` : 'fails its schema'}`, id }
  }
  return { ok: true, command: v as Command }
}
