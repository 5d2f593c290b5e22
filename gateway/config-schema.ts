/**
 * The gateway configuration's one TypeBox schema and every default, and how to walk the
 * schema (the sections and keys in its order). Each leaf's `description` is the
 * "expected ..." of its error message (config-errors.ts).
 */

import { isIP } from 'node:net'
import Type, { type Static, type TSchema } from 'typebox'
import { Compile } from 'typebox/compile'
import { DEFAULT_HEARTBEAT_S } from '../protocol/messages.js'
import { BROKER_URL_SCHEMES as BROKER_SCHEMES, DEFAULT_TOPIC_PREFIX, TOPIC_ID_PATTERN, TOPIC_PREFIX_PATTERN, TOPIC_PREFIX_RULE, brokerUrlProblem } from '../protocol/mqtt.js'
import { DEFAULT_LIMITS } from './limits.js'
import { isTree } from './config-tree.js'

/** Standard UART rates; terminals use 9600 (the protocol's default) or 115200. */
export const BAUD_RATES = [1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400] as const

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]

export { BROKER_URL_SCHEMES as BROKER_SCHEMES } from '../protocol/mqtt.js'

const integer = (minimum: number, maximum: number, unit: string) => Type.Integer({ minimum, maximum, description: `an integer from ${minimum} to ${maximum}${unit}` })

const nonEmpty = (what: string) => Type.String({ minLength: 1, description: `a non-empty ${what}` })

const TOPIC_ID = 'of 1 to 64 letters, digits, ".", "_", ":" or "-" (it is an MQTT topic level)'

const BrokerUrl = Type.Refine(
  Type.String({ description: `a broker URL such as mqtts://broker.example:8883 (${BROKER_SCHEMES.slice(0, -1).join(', ')} or ${BROKER_SCHEMES.at(-1)})` }),
  (s: string) => brokerUrlProblem(s) === null,
  () => `not a broker URL with a host and one of the schemes ${BROKER_SCHEMES.join(' ')}`,
)

/** An IP address of this board, not a host name: the page must not depend on a resolver on a board without internet. */
const ListenAddress = Type.Refine(
  Type.String({ description: 'an IP address of this board to listen on, such as 192.168.4.1 (the household LAN), 127.0.0.1 (this board only) or 0.0.0.0 (every interface)' }),
  (s: string) => isIP(s) !== 0,
  () => 'not an IP address',
)

export const GatewayConfigSchema = Type.Object(
  {
    gateway: Type.Object(
      {
        id: Type.String({ pattern: TOPIC_ID_PATTERN, description: `an id ${TOPIC_ID}` }),
        area: Type.Optional(Type.String({ pattern: TOPIC_ID_PATTERN, description: `an area name ${TOPIC_ID}` })),
      },
      { additionalProperties: false, description: 'a table of gateway settings (id, area)' },
    ),
    serial: Type.Object(
      {
        path: nonEmpty('serial port path such as /dev/ttyUSB0'),
        baud: Type.Enum([...BAUD_RATES], { description: `one of the baud rates ${BAUD_RATES.join(', ')}` }),
      },
      { additionalProperties: false, description: 'a table of serial port settings (path, baud)' },
    ),
    mqtt: Type.Object(
      {
        brokers: Type.Array(BrokerUrl, { minItems: 1, description: 'a list of one or more broker URLs' }),
        prefix: Type.String({
          maxLength: 200,
          pattern: TOPIC_PREFIX_PATTERN,
          description: `an MQTT topic prefix such as "steppelink/v1" (${TOPIC_PREFIX_RULE})`,
        }),
        encoding: Type.Enum(['cbor', 'json'], { description: 'one of cbor, json' }),
        username: Type.Optional(nonEmpty('user name')),
        password: Type.Optional(nonEmpty('password')),
        keepalive: integer(5, 3600, ' (seconds)'),
        tls: Type.Optional(
          Type.Object(
            {
              ca: Type.Optional(nonEmpty("path of the CA certificate file (PEM) that signed the broker's certificate")),
              cert: Type.Optional(nonEmpty('path of the client certificate file (PEM)')),
              key: Type.Optional(nonEmpty("path of the client certificate's private key file (PEM)")),
              servername: Type.Optional(nonEmpty("host name the broker's certificate is for")),
            },
            { additionalProperties: false, description: 'a table of TLS settings (ca, cert, key, servername)' },
          ),
        ),
      },
      { additionalProperties: false, description: 'a table of MQTT settings (brokers, prefix, encoding, username, password, keepalive, tls)' },
    ),
    data: nonEmpty('directory path for the store'),
    timing: Type.Object(
      {
        supervision: integer(10, 86400, ' (seconds)'),
        receiptTimeout: integer(5, 86400, ' (seconds)'),
        heartbeat: integer(10, 86400, ' (seconds)'),
        statusInterval: integer(10, 86400, ' (seconds)'),
      },
      { additionalProperties: false, description: 'a table of times (supervision, receiptTimeout, heartbeat, statusInterval)' },
    ),
    limits: Type.Object(
      {
        maxRequestEvents: integer(1, 10_000_000, ' (events)'),
        maxTroubleEvents: integer(1, 10_000_000, ' (events)'),
        maxRequestAgeDays: integer(1, 3650, ' (days)'),
        maxTroubleAgeDays: integer(1, 3650, ' (days)'),
        maxStoreMB: integer(1, 1_048_576, ' (MB)'),
        reserveMB: integer(0, 1_048_576, ' (MB)'),
      },
      { additionalProperties: false, description: 'a table of store limits (maxRequestEvents, maxTroubleEvents, maxRequestAgeDays, maxTroubleAgeDays, maxStoreMB, reserveMB)' },
    ),
    log: Type.Object({ level: Type.Enum([...LOG_LEVELS], { description: `one of ${LOG_LEVELS.join(', ')}` }) }, { additionalProperties: false, description: 'a table of log settings (level)' }),
    // ---- The household page and local API (issue 13): this block only. ----
    household: Type.Object(
      {
        name: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: "the center household's name, 1 to 64 characters, sent with every relay so the platform sees who relayed it" })),
        enabled: Type.Boolean({ description: 'true or false' }),
        listen: ListenAddress,
        port: integer(0, 65535, ' (0: a free port chosen at start, for tests and the demo)'),
        pin: Type.Optional(Type.String({ pattern: '^[0-9]{6,12}$', description: 'a PIN of 6 to 12 digits (or leave it out: the gateway makes one at first start)' })),
      },
      { additionalProperties: false, description: 'a table of household page settings (name, enabled, listen, port, pin)' },
    ),
    // ---- end of the household page ----
    // ---- Signed commands (issue 12) [MQTT-5.12] [MQTT-5.13]: this block only. ----
    // Without it the gateway applies unsigned commands and warns at every start.
    platformKeys: Type.Optional(
      Type.Object(
        {
          current: nonEmpty('platform public key: a file path (platform.pub from `steppelink keygen`), or the key itself in base64 (44 characters) or PEM'),
          next: Type.Optional(nonEmpty('next platform public key, for key-rotate: a file path, or the key in base64 or PEM')),
        },
        { additionalProperties: false, description: 'a table of platform keys (current, next)' },
      ),
    ),
    // ---- end of signed commands ----
  },
  { additionalProperties: false, description: 'a table' },
)

/** The checked configuration. Times are in seconds, sizes in MB (2^20 bytes). */
export type GatewayConfig = Static<typeof GatewayConfigSchema>

/** The schema compiled once: loadConfig checks with it, config-errors.ts asks it for the errors. */
export const validator = Compile(GatewayConfigSchema)

/**
 * Every default in one place. Keys without a default (gateway.id, serial.path,
 * mqtt.brokers, data) are required.
 */
export const DEFAULTS = {
  serial: {
    /** bits/s; the protocol's default rate. */
    baud: 9600,
  },
  mqtt: {
    /** Topics are `<prefix>/gw/<id>/...` (`gatewayTopics` in protocol/mqtt.ts). */
    prefix: DEFAULT_TOPIC_PREFIX,
    /** Payload encoding: CBOR, fewer bytes than JSON on a metered cellular link. */
    encoding: 'cbor',
    /** s; the client pings at least this often, so a dead connection is noticed within about two of these. */
    keepalive: 60,
  },
  timing: {
    /** s without any frame from a terminal before "terminal lost" is raised. */
    supervision: 30,
    /**
     * s from storing an alarm to the platform's receipt of it; past this the terminal shows
     * "not confirmed: call 110 by phone" (the gateway keeps publishing it all the same).
     */
    receiptTimeout: 60,
    /** s between the terminal's HEARTBEATs (sent to it in CONFIG): a third of supervision. */
    heartbeat: DEFAULT_HEARTBEAT_S,
    /** s between status publications (the gateway's and its terminals'). */
    statusInterval: 300,
  },
  /**
   * Store limits: gateway/limits.ts has them with their units. They bound only the lower
   * classes: alarms are never dropped to make room.
   */
  limits: DEFAULT_LIMITS,
  log: {
    level: 'info',
  },
  household: {
    /** The page and the local API run beside the alarm path; `false` turns both off (the CLI's status, relay and inbox with them). */
    enabled: true,
    /**
     * Every interface, so that phones on the household's Wi-Fi reach the page on a board
     * whose LAN address nobody configured. Where the board has an uplink interface of its own
     * (a cellular modem with a public address), set the LAN interface's address instead: the
     * page is never needed on the uplink.
     */
    listen: '0.0.0.0',
    /** TCP port of the page and the local API; 8080, as the board runs the gateway as a normal user (ports below 1024 need root). */
    port: 8080,
  },
} as const satisfies DeepPartial<GatewayConfig>

type DeepPartial<T> = { [K in keyof T]?: T[K] extends readonly unknown[] ? T[K] : T[K] extends object ? DeepPartial<T[K]> : T[K] }

/** The environment variable that holds the MQTT password (better than a flag: `ps` shows flags). */
export const PASSWORD_ENV = 'STEPPELINK_MQTT_PASSWORD'

// ---------------------------------------------------------------------------------------
// Walking the schema

/** The schema of the key at `at` (an index in a list reads the list's items); undefined for a key it does not know. */
export function schemaAt(at: string[]): TSchema | undefined {
  let schema: TSchema | undefined = GatewayConfigSchema
  for (const segment of at) {
    if (schema === undefined) return undefined
    const s = schema as { type?: unknown; items?: TSchema }
    schema = s.type === 'array' ? s.items : Object.hasOwn(propertiesOf(schema), segment) ? propertiesOf(schema)[segment] : undefined
  }
  return schema
}

/** The properties of an object schema; none for any other. */
export function propertiesOf(schema: TSchema | undefined): Record<string, TSchema> {
  return (schema as { properties?: Record<string, TSchema> } | undefined)?.properties ?? {}
}

/** The value with its keys in the schema's order, so the logged configuration reads like the docs. */
export function inSchemaOrder(schema: TSchema | undefined, value: unknown): unknown {
  const properties = propertiesOf(schema)
  if (!isTree(value) || Object.keys(properties).length === 0) return value
  return Object.fromEntries(
    Object.entries(properties)
      .filter(([k]) => Object.hasOwn(value, k))
      .map(([k, s]) => [k, inSchemaOrder(s, value[k])]),
  )
}

/** The dotted path of every leaf under `schema`, in the schema's order. */
export function leafPaths(schema: TSchema, at: string[]): string[] {
  const properties = Object.entries(propertiesOf(schema))
  if (properties.length === 0) return [at.join('.')]
  return properties.flatMap(([k, s]) => leafPaths(s, [...at, k]))
}
