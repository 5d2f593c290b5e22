/**
 * The console's options. What is data is one TypeBox schema per entry point (the running
 * console, one broadcast, one withdrawal), each option with what it must be in words
 * (`description`, or the message of a refinement). The entry points check their options
 * against it once (checkOptions), and `steppelink console` checks its flags against the
 * same schema (optionProblem), so a range is written once and both say it the same way.
 * The hooks (timers, clock, callback) stand beside the schema; every default is in
 * CONSOLE_DEFAULTS.
 */

import Type, { type Static, type TObject } from 'typebox'
import { Compile } from 'typebox/compile'
import { URGENCIES, type Urgency } from '../protocol/messages.js'
import { BROKER_URL_SCHEMES as BROKER_SCHEMES, DEFAULT_TOPIC_PREFIX, TOPIC_PREFIX_PATTERN, TOPIC_PREFIX_RULE } from '../protocol/mqtt.js'
import { ConsoleError } from './errors.js'
import type { ConsoleEvent } from './events.js'

export const ACK_MODES = ['auto', 'manual', 'none'] as const
export type AckMode = (typeof ACK_MODES)[number]
export const URGENCY_NAMES = Object.keys(URGENCIES) as readonly Urgency[]

export const CONSOLE_DEFAULTS = {
  prefix: DEFAULT_TOPIC_PREFIX,
  id: 'main',
  ack: 'manual' as AckMode,
  operator: 'Operator on duty',
  unit: 'patrol car 110-3',
  etaMin: 40,
  resolveText: 'Case closed by the 110 centre',
  keepaliveS: 30,
  reconnectS: 1,
  maxItemIds: 100_000,
}

/**
 * A console id names the persistent session and prefixes command ids. At most 59
 * characters, so that the client id `steppelink-console-<id>` stays within the 78 that
 * brokers must accept [MQTT-2.6].
 */
export const CONSOLE_ID_PATTERN = '^[A-Za-z0-9._:-]{1,59}$'

/** Topic levels: not empty, no `+`, `#` or NUL, no `/` first or last. */

/** The URL in a text, or null; the refinements below are called with whatever the option holds. */
function urlOf(s: unknown): URL | null {
  if (typeof s !== 'string') return null
  try {
    return new URL(s)
  } catch {
    return null
  }
}
const isUrl = (s: unknown): boolean => urlOf(s) !== null
const isBrokerUrl = (s: unknown): boolean => (BROKER_SCHEMES as readonly string[]).includes(urlOf(s)?.protocol ?? '')

const BrokerUrl = Type.Refine(
  Type.Refine(Type.String({ description: "the URL of the platform's MQTT broker" }), isUrl, () => 'a URL such as mqtt://127.0.0.1:1883'),
  isBrokerUrl,
  () => 'an mqtt://, mqtts://, ws:// or wss:// URL',
)

const text = (min: number, max: number) => Type.String({ minLength: min, maxLength: max, description: min === 0 ? `at most ${max} characters` : `${min}-${max} characters` })
const delay = Type.Union([Type.Number({ minimum: 0, maximum: 2_000_000 }), Type.Null()], { description: 'seconds from 0 to 2000000' })
const broadcastId = (description: string) => Type.Integer({ minimum: 0, maximum: 0xffffffff, description })

/** How a console, or one command, reaches the broker. */
const connection = {
  /** Broker URL: `mqtt://host:1883`, `mqtts://host:8883`, `ws://...`, `wss://...`. Required. */
  broker: BrokerUrl,
  /** First topic levels; must be the gateways' `mqtt.prefix`. Default `steppelink/v1`. */
  prefix: Type.Optional(Type.String({ pattern: TOPIC_PREFIX_PATTERN, description: `topic levels as the gateways' mqtt.prefix: ${TOPIC_PREFIX_RULE}` })),
  /** This console's id (CONSOLE_ID_PATTERN). Names its persistent session and prefixes its command ids. Default `main`. */
  id: Type.Optional(Type.String({ pattern: CONSOLE_ID_PATTERN, description: '1-59 of A-Z a-z 0-9 . _ : -' })),
  username: Type.Optional(Type.String({ description: 'an MQTT user name' })),
  password: Type.Optional(Type.String({ description: 'an MQTT password' })),
  /** TLS (an mqtts:// or wss:// broker): the CA file (PEM) that signed the broker's certificate, when it is a private CA. Read once, at start. */
  ca: Type.Optional(Type.String({ minLength: 1, description: 'a CA certificate file (PEM)' })),
  /** TLS: the client certificate file (PEM), for a broker that requires one (mutual TLS); needs `key`. */
  cert: Type.Optional(Type.String({ minLength: 1, description: 'a client certificate file (PEM)' })),
  /** TLS: the client certificate's private key file (PEM, unencrypted); needs `cert`. */
  key: Type.Optional(Type.String({ minLength: 1, description: 'a private key file (PEM)' })),
  /** TLS: the name on the broker's certificate, when it is not the host of the broker URL. */
  servername: Type.Optional(Type.String({ minLength: 1, description: "the host name on the broker's certificate" })),
  /** Signed commands [MQTT-5.12]: a file with the platform's private key (platform.key from `steppelink keygen`); every command is signed with it. Default: unsigned. */
  signingKey: Type.Optional(Type.String({ minLength: 1, description: 'a file with the platform private key (platform.key from steppelink keygen)' })),
}

/** The options of startConsole that are data. */
export const ConsoleSettings = Type.Object(
  {
    ...connection,
    /**
     * MQTT client id. Default `steppelink-console-<id>`. Keep it the same from run to run:
     * the broker keeps the alarms that arrive while the console is away under it. Two
     * consoles running at once need two ids (the broker disconnects a duplicate).
     */
    clientId: Type.Optional(Type.String({ description: 'an MQTT client id' })),
    /**
     * What happens to a new case (alarm or request) besides its receipt. 'auto': an
     * `acknowledged` at once (for a request with the text of REQUEST_ACKNOWLEDGEMENTS);
     * 'manual': the operator acknowledges (`acknowledge()`, or a key in the CLI); 'none':
     * receipts only. Default 'manual'.
     */
    ack: Type.Optional(Type.Enum([...ACK_MODES], { description: `one of ${ACK_MODES.join(', ')}` })),
    /** `by` of the acknowledgements, shown on the terminal, 1–100 characters. Default 'Operator on duty'. */
    operator: Type.Optional(text(1, 100)),
    /** Send `dispatched` this many seconds after an alarm's acknowledgement (never to a request). Default null: never by itself. */
    dispatchAfterS: Type.Optional(delay),
    /** Send `resolved` this many seconds after the acknowledgement of an alarm or a request. Default null: never by itself. */
    resolveAfterS: Type.Optional(delay),
    /** The unit of an automatic (or default) dispatch, ≤ 100 characters. Default 'patrol car 110-3'. */
    unit: Type.Optional(text(1, 100)),
    /** Expected arrival of that unit, minutes (0–65535). Default 40. */
    etaMin: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535, description: 'whole minutes from 0 to 65535' })),
    /** The text of an automatic (or default) resolve, ≤ 200 characters. Default 'Case closed by the 110 centre'. */
    resolveText: Type.Optional(text(0, 200)),
    /** Send a `time` command, with the birth's `session`, after every birth [MQTT-4.13]. Default true. */
    sendTime: Type.Optional(Type.Boolean({ description: 'true or false' })),
    /** MQTT keep-alive, s (MQTT's 16 bits). Default 30. */
    keepaliveS: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535, description: 'whole seconds from 0 to 65535' })),
    /** Delay between reconnection attempts, s. Default 1. */
    reconnectS: Type.Optional(Type.Number({ minimum: 0, description: 'seconds, 0 or more' })),
    /** Resolve `startConsole` only once subscribed (first CONNACK and SUBACK). Default true; false: at once, and keep trying in the background. */
    waitForBroker: Type.Optional(Type.Boolean({ description: 'true or false' })),
    /** Ids of items other than alerts remembered for deduplication. Default 100 000. */
    maxItemIds: Type.Optional(Type.Integer({ minimum: 0, description: 'a whole number, 0 or more' })),
  },
  { additionalProperties: true },
)

/** The clock the automatic dispatch and resolve run on; injectable so tests can hold it. */
export interface ConsoleTimers {
  setTimeout(fn: () => void, ms: number): unknown
  clearTimeout(handle: unknown): void
}

/** What the console calls, beside its settings. */
export interface ConsoleHooks {
  /** Default: the global setTimeout/clearTimeout. */
  timers?: ConsoleTimers
  /** Local clock, UNIX ms. Default Date.now. */
  now?: () => number
  /** For command ids. Default Math.random. */
  random?: () => number
  /** Every event, in order: what `--json` prints, one per line. Must not throw. */
  onEvent?: (event: ConsoleEvent) => void
}

export type ConsoleOptions = Static<typeof ConsoleSettings> & ConsoleHooks

/** What publishing one command needs, without a running console. */
const oneCommand = {
  ...connection,
  /** A gateway id, `all`, or `area:NAME`. */
  to: Type.String({ description: 'a gateway id, all, or area:NAME' }),
  /** Give up when the broker has not acknowledged within this, ms. Default 30 000. */
  timeoutMs: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 86_400_000, description: 'milliseconds above 0, at most a day' })),
}

/** The options of publishBroadcast that are data. */
export const BroadcastSettings = Type.Object(
  {
    ...oneCommand,
    /** What the terminals show; the broadcast command's schema judges it [MQTT-5.7]. */
    text: Type.String({ description: 'the text of the broadcast' }),
    /** Default 'info'. */
    urgency: Type.Optional(Type.Enum([...URGENCY_NAMES], { description: `one of ${URGENCY_NAMES.join(', ')}` })),
    /** Seconds from now; default: never expires. */
    expiresInS: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 10 * 366 * 86400, description: 'seconds above 0 (at most ten years)' })),
    /** Default: UNIX seconds now. */
    broadcastId: Type.Optional(broadcastId('a whole number from 0 to 4294967295')),
  },
  { additionalProperties: true },
)

/** The options of publishWithdraw that are data. */
export const WithdrawSettings = Type.Object(
  {
    ...oneCommand,
    /** The id of the broadcast to take back (0-4294967295): the terminals remove it. */
    broadcast: broadcastId('a broadcast id, a whole number from 0 to 4294967295'),
  },
  { additionalProperties: true },
)

/** The options of publishKeyRotate that are data [MQTT-5.13]. */
export const KeyRotateSettings = Type.Object(
  {
    ...oneCommand,
    /** The key id (16 hex digits) of the gateways' configured next key, or a file with that public key (platform.pub of the new pair), whose id is taken. */
    nextKey: Type.String({ minLength: 1, description: 'the next key: its key id (16 hex digits), or its public key file (platform.pub of the new pair)' }),
    /** A key-rotate must be signed with the key in force: the current private key file. */
    signingKey: Type.String({ minLength: 1, description: 'the current platform private key file (platform.key), which the gateways take now' }),
    /** How long the command stays valid, s: a gateway offline longer gets it expired once its clock is set. Default 86 400 (a day). */
    validForS: Type.Optional(Type.Integer({ minimum: 60, maximum: 30 * 86400, description: 'whole seconds from 60 to 2592000 (30 days)' })),
  },
  { additionalProperties: true },
)

const OneCommandSettings = Type.Object(oneCommand, { additionalProperties: true })

interface OneCommandHooks {
  /** Local clock, UNIX ms. Default Date.now. */
  now?: () => number
}
export type OneCommandOptions = Static<typeof OneCommandSettings> & OneCommandHooks
export type BroadcastOptions = Static<typeof BroadcastSettings> & OneCommandHooks
export type WithdrawOptions = Static<typeof WithdrawSettings> & OneCommandHooks
export type KeyRotateOptions = Static<typeof KeyRotateSettings> & OneCommandHooks

// ---------------------------------------------------------------------------------------
// Checking

/** The first thing wrong with some options, in the order of their schema. */
export interface OptionProblem {
  /** The option, e.g. `dispatchAfterS`. */
  key: string
  /** What it must be, in words, from the schema: `seconds from 0 to 2000000`. */
  expected: string
  /** It is missing (and has no default); its length (a text's) is out of range; or its value is wrong. */
  kind: 'missing' | 'length' | 'value'
}

const validators = new WeakMap<TObject, ReturnType<typeof Compile>>()

/** What is wrong with `options` by `schema` (ConsoleSettings, BroadcastSettings, WithdrawSettings), or null. */
export function optionProblem(schema: TObject, options: object): OptionProblem | null {
  let validator = validators.get(schema)
  if (validator === undefined) {
    validator = Compile(schema)
    validators.set(schema, validator)
  }
  if (validator.Check(options)) return null
  const order = Object.keys(schema.properties)
  const described = (key: string) => String((schema.properties[key] as { description?: string } | undefined)?.description ?? key)
  const problems = validator.Errors(options).flatMap((e): OptionProblem[] => {
    if (e.keyword === 'required') {
      return (e.params as { requiredProperties: string[] }).requiredProperties.map((key) => ({ key, expected: described(key), kind: 'missing' as const }))
    }
    const key = e.instancePath.split('/')[1] ?? ''
    const expected = e.keyword === '~refine' ? (e.params as { message: string }).message : described(key)
    return [{ key, expected, kind: e.keyword === 'minLength' || e.keyword === 'maxLength' ? 'length' : 'value' }]
  })
  // The first in the order of the schema (and of the docs), whatever order the checks found them in.
  return problems.sort((x, y) => order.indexOf(x.key) - order.indexOf(y.key))[0] ?? { key: '', expected: 'options that fit their schema', kind: 'value' }
}

/** Throws a ConsoleError CONSOLE_BAD_OPTION naming the first option out of range. */
export function checkOptions(schema: TObject, options: object): void {
  const p = optionProblem(schema, options)
  if (p === null) return
  const value = (options as Record<string, unknown>)[p.key]
  const got = p.kind === 'length' ? `${[...String(value)].length} characters` : typeof value === 'string' ? `'${value}'` : String(value)
  throw new ConsoleError('CONSOLE_BAD_OPTION', p.kind === 'missing' ? `${p.key} is required: ${p.expected}` : `${p.key}: must be ${p.expected}, got ${got}`)
}
