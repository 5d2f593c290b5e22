/**
 * The MQTT contract between a gateway and the platform: topics, payload schemas, and the
 * encoding of payloads and batches. MQTT.md is its prose form; a platform integrator can
 * import these schemas (`steppelink/protocol`) instead of copying them.
 *
 * Design:
 * - MQTT 3.1.1, QoS 1 everywhere: any broker works (mosquitto, aedes, EMQX ...).
 * - PUBACK means only "the broker has it". An alarm counts as received by the platform
 *   when the platform's `receipt` command names its id; until then the gateway publishes
 *   it again, under the same id. [MQTT-4.1]
 * - Every uplink item has an `id` that is unique forever, so the platform deduplicates by
 *   id and republishing is always safe. [MQTT-3.2]
 * - Commands are an envelope { v, id, type, ... } whose unknown fields are ignored, so a
 *   signature, a timestamp and a nonce can be added later (`auth`) without breaking
 *   older gateways. [MQTT-5.1]
 */

import { Decoder, Encoder } from 'cbor-x'
import { Decompress as ZstdDecompress } from 'fzstd'
import Type, { type Static } from 'typebox'
import { Compile } from 'typebox/compile'
import { ProtocolError } from './errors.js'
import { splitDisplayText } from './display.js'
import { EVENT_KINDS, STAGES, URGENCIES } from './messages.js'
import { SESSION_TRANSITIONS, type SessionState } from './session.js'

export const MQTT_CONTRACT_VERSION = 1
export const DEFAULT_TOPIC_PREFIX = 'steppelink/v1'

/**
 * Broker URL schemes, as mqtt.js connects with them: plain TCP (`mqtt:`, `tcp:`), TLS
 * (`mqtts:`, `ssl:`, `tls:`), WebSocket (`ws:`) and WebSocket over TLS (`wss:`). The one
 * list the gateway's configuration, its uplink and the console check against.
 */
export const BROKER_URL_SCHEMES = ['mqtt:', 'mqtts:', 'tcp:', 'ssl:', 'tls:', 'ws:', 'wss:'] as const

/** What is wrong with a broker URL (not a URL, no host, a scheme not in BROKER_URL_SCHEMES), or null. */
export function brokerUrlProblem(url: string): string | null {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    return 'not a URL'
  }
  if (!(BROKER_URL_SCHEMES as readonly string[]).includes(parsed.protocol)) return `scheme ${parsed.protocol} is not one of ${BROKER_URL_SCHEMES.join(' ')}`
  if (parsed.hostname === '') return 'no host'
  return null
}

// ---------------------------------------------------------------------------------------
// Topics [MQTT-2.x]

export interface GatewayTopics {
  /** Birth and death, retained. */
  state: string
  /** One alarm-class item per message; needs a receipt. */
  alert: string
  /** One item of a lower class per message. */
  event: string
  /** A batch of lower-class items: zstd-compressed, or bare from a gateway without zstd. */
  batch: string
  /** Gateway status: terminals, store, drops, clock. Retained. */
  status: string
  /** Error reports for rejected commands, and command results. */
  reply: string
  /** Commands to this gateway. */
  command: string
  /** Commands to every gateway in an area (if the gateway has one). */
  areaCommand: string | null
  /** Commands to every gateway. */
  allCommand: string
}

/**
 * The topic prefix ([MQTT-2.1]): levels joined by '/', none empty, no '+', '#' or NUL, not
 * starting with '$' (brokers keep `$...` topics to themselves). The one rule the gateway's
 * configuration and the console check.
 */
export const TOPIC_PREFIX_PATTERN = '^(?!\\$)[^#+/\\u0000]+(/[^#+/\\u0000]+)*$'
export const TOPIC_PREFIX_RULE = 'levels joined by "/", none empty, no "+" or "#", not starting with "$"'

/** MQTT topic levels may not hold '+', '#', '/' or NUL; ids are narrowed to a safe set. */
export const TOPIC_ID_PATTERN = '^[A-Za-z0-9._:-]{1,64}$'

export function gatewayTopics(prefix: string, gateway: string, area: string | null = null): GatewayTopics {
  const g = `${prefix}/gw/${gateway}`
  return {
    state: `${g}/state`,
    alert: `${g}/alert`,
    event: `${g}/event`,
    batch: `${g}/batch`,
    status: `${g}/status`,
    reply: `${g}/reply`,
    command: `${g}/cmd`,
    areaCommand: area === null ? null : `${prefix}/area/${area}/cmd`,
    allCommand: `${prefix}/all/cmd`,
  }
}

// ---------------------------------------------------------------------------------------
// Uplink payloads [MQTT-3.x]

const names = <O extends Record<string, unknown>>(o: O) => Type.Enum(Object.keys(o) as (keyof O & string)[])

/** Priority classes, highest first. [MQTT-3.3] */
export const CLASSES = ['alarm', 'request', 'trouble', 'status'] as const
export type PriorityClass = (typeof CLASSES)[number]

/** Kinds made by the gateway itself, beside the terminal's event kinds. */
export const GATEWAY_KINDS = {
  'terminal-lost': { code: 355, restore: false, text: 'no frame from the terminal for the supervision time' },
  'terminal-restored': { code: 355, restore: true, text: 'the terminal is heard again' },
  'terminal-reset': { code: 305, restore: false, text: "the terminal's event numbers restarted (memory wiped, or a new unit under the same id)" },
  relay: { code: null, restore: false, text: 'a message relayed by the center household for a neighbour' },
  'broadcast-read': { code: null, restore: false, text: 'a terminal user has read a broadcast (DISPLAY_READ)' },
} as const
export type GatewayKind = keyof typeof GATEWAY_KINDS

/** The priority class of every kind. Cancel travels with the alarms so it can never overtake the alarm it cancels. [MQTT-3.3] */
export const CLASS_OF: Readonly<Record<keyof typeof EVENT_KINDS | GatewayKind, PriorityClass>> = {
  medical: 'alarm',
  emergency: 'alarm',
  fire: 'alarm',
  panic: 'alarm',
  cancel: 'alarm',
  callback: 'request',
  relay: 'request',
  'mains-lost': 'trouble',
  'mains-restored': 'trouble',
  'battery-low': 'trouble',
  'battery-restored': 'trouble',
  tamper: 'trouble',
  'tamper-restored': 'trouble',
  'terminal-lost': 'trouble',
  'terminal-restored': 'trouble',
  'terminal-reset': 'trouble',
  test: 'status',
  'broadcast-read': 'status',
}

export const UPLINK_KINDS = [...Object.keys(EVENT_KINDS), ...Object.keys(GATEWAY_KINDS)] as (keyof typeof EVENT_KINDS | GatewayKind)[]

export const Time = Type.Object({
  at: Type.Integer({ description: 'UNIX milliseconds, corrected by platform time when known' }),
  estimated: Type.Boolean({ description: "true when the gateway's clock was never synchronised, or the terminal's time is inferred" }),
})

export const UplinkEvent = Type.Object(
  {
    v: Type.Literal(MQTT_CONTRACT_VERSION),
    id: Type.String({ minLength: 1, maxLength: 160, description: 'unique forever; `terminal:number` for terminal events' }),
    class: Type.Enum([...CLASSES]),
    kind: Type.Enum(UPLINK_KINDS),
    code: Type.Union([Type.Integer(), Type.Null()], { description: 'Ademco Contact ID event code, or null' }),
    restore: Type.Boolean(),
    gateway: Type.String(),
    terminal: Type.Union([Type.String(), Type.Null()], { description: 'terminal id from its HELLO; null for gateway events' }),
    address: Type.Union([Type.Integer({ minimum: 1, maximum: 254 }), Type.Null()]),
    number: Type.Union([Type.Integer({ minimum: 1 }), Type.Null()], { description: "the terminal's event number" }),
    user: Type.Optional(Type.Integer({ minimum: 0, maximum: 999 })),
    time: Time,
    received: Type.Integer({ description: 'UNIX ms (corrected) when the gateway stored it' }),
    attempt: Type.Integer({ minimum: 1, description: 'how many times this id has been published' }),
    text: Type.Optional(Type.String({ maxLength: 1000 })),
    stage: Type.Optional(names(STAGES)),
    terminalTime: Type.Optional(Type.Integer({ description: "UNIX ms from the terminal's own clock, if it had been told the time" })),
    broadcast: Type.Optional(Type.Integer({ description: 'broadcast id, for kind broadcast-read' })),
    revision: Type.Optional(Type.Integer({ minimum: 0, description: 'which text of the broadcast was read (0 the first; +1 at each replacement), for kind broadcast-read' })),
    cancels: Type.Optional(Type.String({ minLength: 1, maxLength: 160, description: 'for kind cancel: the id of the alarm it cancels, the latest open one of its terminal' })),
    reset: Type.Optional(
      Type.Object(
        {
          reason: Type.Enum(['boot-backwards', 'last-event-backwards', 'event-differs']),
          epoch: Type.String({ description: 'the tag of the new numbering, in the ids of the events after the reset' }),
          boot: Type.Integer({ minimum: 0, description: "the terminal's boot counter now" }),
          lastEvent: Type.Integer({ minimum: 0, description: 'the highest event number the terminal says it has assigned' }),
          previousBoot: Type.Union([Type.Integer({ minimum: 0 }), Type.Null()]),
          previousNumber: Type.Integer({ minimum: 0, description: 'the highest event number the gateway had seen from it before' }),
        },
        { additionalProperties: true },
      ),
    ),
  },
  { additionalProperties: true },
)
export type UplinkEvent = Static<typeof UplinkEvent>

/** Periodic status of one terminal, coalesced while offline. [MQTT-3.4] */
export const TerminalStatus = Type.Object(
  {
    v: Type.Literal(MQTT_CONTRACT_VERSION),
    id: Type.String(),
    class: Type.Literal('status'),
    kind: Type.Literal('status'),
    gateway: Type.String(),
    terminal: Type.String(),
    address: Type.Integer({ minimum: 1, maximum: 254 }),
    time: Time,
    latest: Type.Object({
      uptime: Type.Integer(),
      mains: Type.Boolean(),
      battery: Type.Optional(Type.Integer()),
      millivolts: Type.Optional(Type.Integer()),
      signal: Type.Optional(Type.Integer()),
      pending: Type.Optional(Type.Integer()),
      temperature: Type.Optional(Type.Integer()),
    }),
    since: Type.Integer({ description: 'UNIX ms of the first heartbeat folded into this one' }),
    heartbeats: Type.Integer({ minimum: 1, description: 'heartbeats folded into this status' }),
    lowestBattery: Type.Optional(Type.Integer()),
    minutesWithoutMains: Type.Integer({ minimum: 0 }),
  },
  { additionalProperties: true },
)
export type TerminalStatus = Static<typeof TerminalStatus>

export const Birth = Type.Object(
  {
    v: Type.Literal(MQTT_CONTRACT_VERSION),
    type: Type.Enum(['birth', 'death']),
    gateway: Type.String(),
    online: Type.Boolean(),
    session: Type.Integer({ minimum: 0, description: 'session counter: +1 at every connection attempt; the will names the same session as the birth' }),
    time: Type.Optional(Time),
    version: Type.Optional(Type.String()),
    encoding: Type.Optional(Type.Enum(['cbor', 'json'])),
    area: Type.Optional(Type.Union([Type.String(), Type.Null()])),
  },
  { additionalProperties: true },
)
export type Birth = Static<typeof Birth>

/**
 * What version 1 of the contract fixes of the gateway status [MQTT-3.7]: a platform relies
 * on these five fields alone, and MUST NOT fail on the others missing or new.
 */
export const GatewayStatusHead = Type.Object(
  {
    v: Type.Literal(MQTT_CONTRACT_VERSION),
    type: Type.Literal('status'),
    gateway: Type.String(),
    session: Type.Integer({ minimum: 0, description: 'the session of the connection it was published on, as in the birth' }),
    time: Time,
  },
  { additionalProperties: true },
)

const count = (description: string) => Type.Integer({ minimum: 0, description })
const counters = (description: string) => Type.Record(Type.String(), Type.Integer({ minimum: 0 }), { description })

/**
 * The gateway's status, retained on `status` [MQTT-3.7]: the fixed fields of
 * GatewayStatusHead, then what the reference gateway sends for the operators' overview,
 * each optional (a platform takes what it finds).
 */
export const GatewayStatus = Type.Object(
  {
    ...GatewayStatusHead.properties,
    uptimeS: Type.Optional(count('seconds since the gateway started')),
    clock: Type.Optional(
      Type.Object(
        {
          synchronised: Type.Boolean({ description: "whether a platform `time` set the gateway's clock in this boot" }),
          offsetMs: Type.Union([Type.Integer(), Type.Null()], { description: 'platform time minus gateway time, ms; null while not synchronised' }),
        },
        { additionalProperties: true },
      ),
    ),
    terminals: Type.Optional(
      Type.Array(
        Type.Object(
          {
            address: Type.Integer({ minimum: 1, maximum: 254 }),
            terminal: Type.String({ description: 'terminal id from its HELLO' }),
            session: Type.Enum(Object.keys(SESSION_TRANSITIONS) as SessionState[], { description: "state of the terminal's serial link session (PROTOCOL.md, session states)" }),
            answering: Type.Boolean({ description: 'whether the terminal answers on the serial line' }),
            lost: Type.Boolean({ description: 'terminal-lost raised and not restored' }),
            lastHeardS: Type.Union([Type.Integer(), Type.Null()], { description: 'seconds since its last frame, or null if never heard in this run' }),
          },
          { additionalProperties: true },
        ),
      ),
    ),
    backlog: Type.Optional(
      Type.Record(Type.String(), Type.Object({ count: count('items waiting'), bytes: count('their size') }, { additionalProperties: true }), {
        description: 'per priority class, what waits to be published',
      }),
    ),
    openAlerts: Type.Optional(
      Type.Array(
        Type.Object({ id: Type.String(), class: Type.Enum(['alarm', 'request']), stage: names(STAGES) }, { additionalProperties: true }),
        { description: 'every alarm and request not yet resolved' },
      ),
    ),
    counters: Type.Optional(counters('named counters since the store was made, e.g. dropped.trouble.age')),
    store: Type.Optional(
      Type.Object(
        {
          writes: Type.Object(
            {
              durable: count('commits since start synced to the medium'),
              lazy: count('commits since start not synced'),
              lastEvent: Type.Union([Type.Enum(['durable', 'lazy']), Type.Null()], { description: 'how the last event was committed' }),
            },
            { additionalProperties: true },
          ),
        },
        { additionalProperties: true },
      ),
    ),
    serial: Type.Optional(counters("the serial link's counters [LINK-9.1]")),
    compression: Type.Optional(
      Type.Object(
        {
          codec: Type.Enum(['zstd', 'none', 'pending'], { description: 'how batches are compressed; pending until the gateway knows' }),
          via: Type.Optional(Type.String({ description: 'for zstd: @mongodb-js/zstd or node:zlib' })),
          failures: Type.Optional(Type.Integer({ minimum: 1, description: 'batches that went bare because compressing them failed' })),
          error: Type.Optional(Type.String({ description: 'why zstd is missing, or the last failure' })),
        },
        { additionalProperties: true },
      ),
    ),
  },
  { additionalProperties: true },
)
export type GatewayStatus = Static<typeof GatewayStatus>

/** Batches stay small enough for a slow link and a small board. [MQTT-4.2] */
export const BATCH_MAX_ITEMS = 500
export const BATCH_MAX_BYTES = 64 * 1024

export const Batch = Type.Object(
  {
    v: Type.Literal(MQTT_CONTRACT_VERSION),
    id: Type.String(),
    gateway: Type.String(),
    items: Type.Array(Type.Union([UplinkEvent, TerminalStatus])),
  },
  { additionalProperties: true },
)
export type Batch = Static<typeof Batch>

export const Reply = Type.Object(
  {
    v: Type.Literal(MQTT_CONTRACT_VERSION),
    type: Type.Literal('error'),
    gateway: Type.String(),
    command: Type.Union([Type.String(), Type.Null()], { description: 'the id of the command, if it had a readable one' }),
    topic: Type.String(),
    code: Type.String({ description: 'stable error code, e.g. CMD_BAD_SCHEMA' }),
    message: Type.String(),
    time: Time,
    suppressed: Type.Optional(
      Type.Integer({ minimum: 1, description: 'error reports held back by the rate limit since the previous one that went out [MQTT-5.2]' }),
    ),
  },
  { additionalProperties: true },
)
export type Reply = Static<typeof Reply>

// ---------------------------------------------------------------------------------------
// Downlink commands [MQTT-5.x]

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
  /** Reserved for a signature, a nonce and a timestamp; ignored by this version. */
  auth: Type.Optional(Type.Unknown()),
}
const command = <T extends string, P extends Record<string, Type.TSchema>>(type: T, props: P) =>
  Type.Object({ ...envelope, type: Type.Literal(type), ...props }, { additionalProperties: true })

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
export const Rebirth = command('rebirth', {})

export const Command = Type.Union([Receipt, Acknowledged, Dispatched, Resolved, Broadcast, BroadcastWithdraw, PlatformTime, Configure, StatusRequest, Rebirth])
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
} as const satisfies Record<CommandType, unknown>

// ---------------------------------------------------------------------------------------
// Payload encoding [MQTT-4.x]

export type Encoding = 'cbor' | 'json'

// Maps with text keys, no cbor-x extensions: what any CBOR decoder reads as a plain map.
const cborEncoder = new Encoder({ useRecords: false, mapsAsObjects: true, tagUint8Array: false, pack: false })
// 8-byte integers (UNIX ms as other encoders write them) decode as numbers, not BigInt.
const cborDecoder = new Decoder({ useRecords: false, mapsAsObjects: true, int64AsNumber: true } as ConstructorParameters<typeof Decoder>[0])

/**
 * Integers beyond 32 bits (UNIX milliseconds) as BigInt, so that cbor-x writes them as
 * CBOR unsigned integers (0x1b) rather than doubles: a platform decoder then reads an
 * integer, as the schema says.
 */
function widenIntegers(v: unknown): unknown {
  if (typeof v === 'number') return Number.isSafeInteger(v) && (v > 0xffffffff || v < -0x100000000) ? BigInt(v) : v
  if (Array.isArray(v)) return v.map(widenIntegers)
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, widenIntegers(x)]))
  return v
}

export function encodePayload(value: unknown, encoding: Encoding): Buffer {
  return encoding === 'json' ? Buffer.from(JSON.stringify(value)) : Buffer.from(cborEncoder.encode(widenIntegers(value)))
}

/**
 * Decodes a payload in either encoding. Every payload of this contract is a map, so a
 * first byte that is a CBOR map head (0xa0-0xbf) means CBOR, and anything else is read as
 * JSON (a JSON text never starts with those bytes). Throws on bytes that are neither.
 */
export function decodePayload(payload: Uint8Array): unknown {
  const first = payload[0]
  if (first !== undefined && first >= 0xa0 && first <= 0xbf) return cborDecoder.decode(payload)
  return JSON.parse(Buffer.from(payload).toString('utf8'))
}

const commandValidators = Object.fromEntries(Object.entries(COMMAND_SCHEMAS).map(([k, v]) => [k, Compile(v as never)])) as Record<
  CommandType,
  ReturnType<typeof Compile>
>

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
] as const
export type CommandErrorCode = (typeof COMMAND_ERROR_CODES)[number]

export type CommandParse =
  | { ok: true; command: Command }
  | { ok: false; code: Exclude<CommandErrorCode, 'CMD_UNKNOWN_ALERT' | 'CMD_FAILED' | 'CMD_BAD_VALUE' | 'CMD_STALE' | 'CMD_RETAINED'>; message: string; id: string | null }

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

// ---------------------------------------------------------------------------------------
// Batches on the wire [MQTT-4.2]

/** The first bytes of a zstd frame: its magic number 0xFD2FB528, little-endian (RFC 8878). */
export const ZSTD_MAGIC: readonly number[] = [0x28, 0xb5, 0x2f, 0xfd]
/** The zstd level of the reference encoder. */
export const ZSTD_LEVEL = 3
/**
 * A receiver refuses a batch that decodes to more than this (1 MiB). A full batch is at
 * most 64 KiB before compression (BATCH_MAX_BYTES); the limit leaves room for that to grow,
 * and none for a "zip bomb" of a few kilobytes that decompresses to gigabytes.
 */
export const BATCH_MAX_DECOMPRESSED_BYTES = 1024 * 1024
/**
 * The largest zstd window the reference decoder allocates (8 MiB, the size RFC 8878 asks
 * every decoder to support; zstd levels up to 19 stay within it, and the reference
 * encoder writes 2 MiB). The decoder allocates the window a frame asks for, before the
 * first block: a frame must not make it allocate gigabytes.
 */
export const ZSTD_MAX_WINDOW_BYTES = 8 * 1024 * 1024
/** The largest block of a zstd frame: RFC 8878 Block_Maximum_Size is at most 128 KiB. */
const ZSTD_MAX_BLOCK_BYTES = 128 * 1024

/** Stable codes of a batch payload that cannot be read. Never renamed, only added to. [MQTT-4.2] */
export const BATCH_ERROR_CODES = [
  /** It decodes, or says it would, to more than the limit (BATCH_MAX_DECOMPRESSED_BYTES), or its zstd frame asks for a window over ZSTD_MAX_WINDOW_BYTES. */
  'BATCH_TOO_LARGE',
  /** Neither a zstd frame nor a CBOR or JSON map; a damaged or truncated zstd frame, or one with bytes after it; a frame whose contents are neither CBOR nor JSON. */
  'BATCH_UNDECODABLE',
] as const
export type BatchErrorCode = (typeof BATCH_ERROR_CODES)[number]

/** A batch payload that cannot be read: garbage from the wire, to count and drop, never fatal. */
export class BatchDecodeError extends ProtocolError {
  declare readonly code: BatchErrorCode
  constructor(code: BatchErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options)
  }
}

/** Compresses an encoded Batch into one zstd frame. */
export type ZstdCompress = (encoded: Buffer) => Promise<Buffer>

/** The reference compressor: @mongodb-js/zstd (a native binding) at ZSTD_LEVEL, imported when first used. */
export const referenceZstd: ZstdCompress = async (encoded) => {
  const { compress } = await import('@mongodb-js/zstd')
  return compress(encoded, ZSTD_LEVEL)
}

/**
 * A batch on the wire [MQTT-4.2]: the Batch encoded like every payload [MQTT-4.3], then
 * compressed into one zstd frame by `compress` (default: referenceZstd). With `compress`
 * null, the encoded Batch as it is: what a gateway that has no zstd sends.
 */
export async function encodeBatch(batch: Batch, encoding: Encoding, compress: ZstdCompress | null = referenceZstd): Promise<Buffer> {
  const encoded = encodePayload(batch, encoding)
  return compress ? compress(encoded) : encoded
}

export interface DecodeBatchOptions {
  /** Refuse a batch that decodes to more than this many bytes. Default BATCH_MAX_DECOMPRESSED_BYTES (1 MiB). */
  maxBytes?: number
}

/**
 * Reads a batch payload [MQTT-4.2]. Its first bytes tell which form it has: a zstd frame
 * (`28 b5 2f fd`) is decompressed and its contents decoded as a payload [MQTT-4.3];
 * anything else is the bare encoded Batch of a gateway that cannot compress (a CBOR map,
 * `a0`-`bf`, or a JSON object, `{`), decoded as it is. Resolves with the decoded value,
 * which the caller checks against `Batch`; rejects with a BatchDecodeError.
 *
 * Decompression is bounded, so a hostile or broken payload costs little: a frame that says
 * it holds more than `maxBytes`, whose raw and RLE blocks alone add up to more, or that
 * asks for a window over ZSTD_MAX_WINDOW_BYTES is refused before anything is
 * decompressed; any other is decompressed block by block (fzstd: pure JavaScript, so
 * every platform and board has it) and abandoned as soon as its output passes `maxBytes`.
 */
export async function decodeBatch(payload: Uint8Array, { maxBytes = BATCH_MAX_DECOMPRESSED_BYTES }: DecodeBatchOptions = {}): Promise<unknown> {
  const zstd = payload.length >= ZSTD_MAGIC.length && ZSTD_MAGIC.every((b, i) => payload[i] === b)
  if (!zstd && payload.length > maxBytes) {
    throw new BatchDecodeError('BATCH_TOO_LARGE', `uncompressed batch of ${payload.length} bytes; the limit is ${maxBytes}`)
  }
  const encoded = zstd ? decompressBounded(payload, maxBytes) : payload
  try {
    return decodePayload(encoded)
  } catch (e) {
    const what = zstd ? `the ${encoded.length} bytes in its zstd frame are neither CBOR nor JSON` : 'neither a zstd frame (28 b5 2f fd) nor CBOR nor JSON'
    throw new BatchDecodeError('BATCH_UNDECODABLE', `batch of ${payload.length} bytes: ${what}: ${(e as Error).message}`, { cause: e })
  }
}

/**
 * Checks one zstd frame's header and block headers (RFC 8878 section 3.1.1) before
 * anything is decompressed. fzstd trusts what a frame says: it allocates any window up to 2 GiB, an
 * RLE block of any size the 21-bit field can hold (2 MiB), and decodes whatever frames
 * follow; this walk refuses all of that first.
 */
function checkZstdFrame(b: Uint8Array, maxBytes: number): void {
  const bad = (why: string) => new BatchDecodeError('BATCH_UNDECODABLE', `batch of ${b.length} bytes: damaged zstd frame: ${why}`)
  const descriptor = b[4]
  if (descriptor === undefined) throw bad('truncated frame header')
  const singleSegment = (descriptor & 0x20) !== 0
  if (descriptor & 0x08) throw bad('reserved bit set in the frame header')
  const dictionaryBytes = [0, 1, 2, 4][descriptor & 3]!
  const contentSizeBytes = [singleSegment ? 1 : 0, 2, 4, 8][descriptor >> 6]!
  let p = 5
  let windowBytes = 0
  if (!singleSegment) {
    const w = b[p++]
    if (w === undefined) throw bad('truncated frame header')
    const base = 2 ** (10 + (w >> 3))
    windowBytes = base + (base / 8) * (w & 7)
  }
  const headerEnd = p + dictionaryBytes + contentSizeBytes
  if (headerEnd > b.length) throw bad('truncated frame header')
  let dictionary = 0
  for (let i = 0; i < dictionaryBytes; i++) dictionary += b[p + i]! * 2 ** (8 * i)
  if (dictionary !== 0) throw bad(`it needs dictionary ${dictionary}, and batches use none`)
  p += dictionaryBytes
  let contentBytes: number | null = null
  if (contentSizeBytes > 0) {
    contentBytes = 0
    for (let i = 0; i < contentSizeBytes; i++) contentBytes += b[p + i]! * 2 ** (8 * i)
    if (contentSizeBytes === 2) contentBytes += 256
    if (singleSegment) windowBytes = contentBytes
  }
  p = headerEnd
  const tooLarge = (why: string) => new BatchDecodeError('BATCH_TOO_LARGE', `batch of ${b.length} bytes: zstd frame ${why}; the limit is ${maxBytes} bytes`)
  if (contentBytes !== null && contentBytes > maxBytes) throw tooLarge(`says it holds ${contentBytes} bytes`)
  if (windowBytes > ZSTD_MAX_WINDOW_BYTES) {
    throw new BatchDecodeError('BATCH_TOO_LARGE', `batch of ${b.length} bytes: zstd frame asks for a window of ${windowBytes} bytes; the limit is ${ZSTD_MAX_WINDOW_BYTES}`)
  }
  const maxBlock = Math.min(windowBytes, ZSTD_MAX_BLOCK_BYTES)
  let plainBytes = 0
  for (let last = false; !last; ) {
    if (p + 3 > b.length) throw bad('truncated: a block header is missing')
    const header = b[p]! | (b[p + 1]! << 8) | (b[p + 2]! << 16)
    p += 3
    last = (header & 1) === 1
    const type = (header >> 1) & 3
    const size = header >>> 3
    if (type === 3) throw bad('block of the reserved type 3')
    if (size > maxBlock) throw bad(`a block of ${size} bytes, over the frame's largest block of ${maxBlock}`)
    if (type !== 2) plainBytes += size
    if (plainBytes > maxBytes) throw tooLarge(`would decompress to at least ${plainBytes} bytes (raw and RLE blocks)`)
    p += type === 1 ? 1 : size
  }
  if (descriptor & 0x04) p += 4 // Content_Checksum
  if (p > b.length) throw bad('truncated: the last block or the checksum is cut short')
  if (p < b.length) throw bad(`${b.length - p} bytes after the frame (a batch is one frame)`)
}

/** Decompresses one zstd frame, stopping as soon as its output passes `maxBytes`. */
function decompressBounded(frame: Uint8Array, maxBytes: number): Uint8Array {
  checkZstdFrame(frame, maxBytes)
  const chunks: Uint8Array[] = []
  let total = 0
  const stop = new Error('over the limit')
  const stream = new ZstdDecompress((chunk) => {
    total += chunk.length
    // Thrown out of push(): fzstd calls back synchronously, block by block.
    if (total > maxBytes) throw stop
    chunks.push(chunk)
  })
  try {
    stream.push(frame, true)
  } catch (e) {
    if (e === stop) {
      throw new BatchDecodeError('BATCH_TOO_LARGE', `batch of ${frame.length} bytes: zstd frame decompresses to more than ${maxBytes} bytes (stopped after ${total}); the limit is ${maxBytes} bytes`)
    }
    throw new BatchDecodeError('BATCH_UNDECODABLE', `batch of ${frame.length} bytes: damaged zstd frame: ${(e as Error).message}`, { cause: e })
  }
  return Buffer.concat(chunks, total)
}
