/**
 * The gateway's configuration: defaults, then a config file (JSON or TOML), then the
 * password from the environment, then command-line flags, each overriding the one before.
 * The merged result is checked once, with one TypeBox schema, at this boundary; the rest
 * of the gateway takes a `GatewayConfig` and checks nothing again.
 *
 * Errors are for a person at a terminal on a board: each names the key (`mqtt.keepalive`),
 * what was expected, what was found and where it came from (the file, a flag, the
 * environment), and all of them are reported at once, so one edit fixes them all.
 *
 * Nothing here does I/O except the injected `readFile`, and nothing here ever prints or
 * returns a password.
 */

import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { parse as parseToml, TomlError } from 'smol-toml'
import Type, { type Static, type TSchema } from 'typebox'
import { Compile } from 'typebox/compile'
import { Settings } from 'typebox/system'
import { DEFAULT_HEARTBEAT_S } from '../protocol/messages.js'
import { BROKER_URL_SCHEMES as BROKER_SCHEMES, DEFAULT_TOPIC_PREFIX, TOPIC_ID_PATTERN, TOPIC_PREFIX_PATTERN, TOPIC_PREFIX_RULE, brokerUrlProblem } from '../protocol/mqtt.js'
import { DEFAULT_LIMITS } from './limits.js'

// ---------------------------------------------------------------------------------------
// Schema. Each leaf's `description` is the "expected ..." of its error message.

/** Standard UART rates; terminals use 9600 (the protocol's default) or 115200. */
export const BAUD_RATES = [1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400] as const

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]

export { BROKER_URL_SCHEMES as BROKER_SCHEMES } from '../protocol/mqtt.js'

const integer = (minimum: number, maximum: number, unit: string) =>
  Type.Integer({ minimum, maximum, description: `an integer from ${minimum} to ${maximum}${unit}` })

const nonEmpty = (what: string) => Type.String({ minLength: 1, description: `a non-empty ${what}` })

const TOPIC_ID = 'of 1 to 64 letters, digits, ".", "_", ":" or "-" (it is an MQTT topic level)'


const BrokerUrl = Type.Refine(
  Type.String({ description: `a broker URL such as mqtts://broker.example:8883 (${BROKER_SCHEMES.slice(0, -1).join(', ')} or ${BROKER_SCHEMES.at(-1)})` }),
  (s: string) => brokerUrlProblem(s) === null,
  () => `not a broker URL with a host and one of the schemes ${BROKER_SCHEMES.join(' ')}`,
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
      },
      { additionalProperties: false, description: 'a table of MQTT settings (brokers, prefix, encoding, username, password, keepalive)' },
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
    log: Type.Object(
      { level: Type.Enum([...LOG_LEVELS], { description: `one of ${LOG_LEVELS.join(', ')}` }) },
      { additionalProperties: false, description: 'a table of log settings (level)' },
    ),
  },
  { additionalProperties: false, description: 'a table' },
)

/** The checked configuration. Times are in seconds, sizes in MB (2^20 bytes). */
export type GatewayConfig = Static<typeof GatewayConfigSchema>

const validator = Compile(GatewayConfigSchema)

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
} as const satisfies DeepPartial<GatewayConfig>

type DeepPartial<T> = { [K in keyof T]?: T[K] extends readonly unknown[] ? T[K] : T[K] extends object ? DeepPartial<T[K]> : T[K] }

/** The environment variable that holds the MQTT password (better than a flag: `ps` shows flags). */
export const PASSWORD_ENV = 'STEPPELINK_MQTT_PASSWORD'

// ---------------------------------------------------------------------------------------
// Flags

export interface GatewayOption {
  /** The flag without its dashes. */
  flag: string
  /** Where the value goes, e.g. 'timing.receiptTimeout'; null for --config. */
  path: string | null
  /** How a flag's text becomes a value: as is, as a number, or one more item of a list. */
  value: 'string' | 'number' | 'list'
  /** The placeholder in help, e.g. 'S' for seconds. */
  arg: string
  /** What it is, with its unit. */
  help: string
}

/** Every flag of `steppelink gateway`, in the order help lists them. */
export const OPTIONS: readonly GatewayOption[] = [
  { flag: 'serial', path: 'serial.path', value: 'string', arg: 'PATH', help: 'serial port of the terminal line, e.g. /dev/ttyUSB0' },
  { flag: 'baud', path: 'serial.baud', value: 'number', arg: 'N', help: `serial rate, bits/s: ${BAUD_RATES.join(' ')}` },
  { flag: 'broker', path: 'mqtt.brokers', value: 'list', arg: 'URL', help: 'MQTT broker, e.g. mqtts://broker.example:8883; repeat for fallbacks, tried in order' },
  { flag: 'id', path: 'gateway.id', value: 'string', arg: 'ID', help: 'gateway id, an MQTT topic level: 1-64 of A-Z a-z 0-9 . _ : -' },
  { flag: 'area', path: 'gateway.area', value: 'string', arg: 'AREA', help: 'area (e.g. the sumu) whose commands this gateway also takes' },
  { flag: 'data', path: 'data', value: 'string', arg: 'DIR', help: 'directory of the durable store; alerts survive power cuts there' },
  { flag: 'config', path: null, value: 'string', arg: 'FILE', help: 'config file, JSON (.json) or TOML (.toml); flags override it' },
  { flag: 'prefix', path: 'mqtt.prefix', value: 'string', arg: 'TOPIC', help: 'MQTT topic prefix' },
  { flag: 'encoding', path: 'mqtt.encoding', value: 'string', arg: 'cbor|json', help: 'MQTT payload encoding' },
  { flag: 'username', path: 'mqtt.username', value: 'string', arg: 'NAME', help: 'MQTT user name' },
  { flag: 'password', path: 'mqtt.password', value: 'string', arg: 'SECRET', help: `MQTT password, never logged; better in ${PASSWORD_ENV} (ps shows flags)` },
  { flag: 'keepalive', path: 'mqtt.keepalive', value: 'number', arg: 'S', help: 'MQTT keepalive, seconds (5-3600)' },
  { flag: 'supervision', path: 'timing.supervision', value: 'number', arg: 'S', help: 'seconds without a frame from a terminal before "terminal lost"; at least 2x heartbeat' },
  { flag: 'receipt-timeout', path: 'timing.receiptTimeout', value: 'number', arg: 'S', help: `seconds without the platform's receipt of an alarm before the terminal says "call 110 by phone"` },
  { flag: 'heartbeat', path: 'timing.heartbeat', value: 'number', arg: 'S', help: "seconds between the terminal's HEARTBEATs (10-86400)" },
  { flag: 'status-interval', path: 'timing.statusInterval', value: 'number', arg: 'S', help: 'seconds between status publications (gateway and terminals)' },
  { flag: 'log-level', path: 'log.level', value: 'string', arg: 'LEVEL', help: `log level: ${LOG_LEVELS.join(', ')}` },
]

const PARSE_OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  ...Object.fromEntries(OPTIONS.map((o) => [o.flag, { type: 'string', multiple: o.value === 'list' }])),
} as const satisfies NonNullable<Parameters<typeof parseArgs>[0]>['options']

function tokensOf(argv: string[]) {
  return parseArgs({ args: argv, options: PARSE_OPTIONS, strict: false, allowPositionals: true, tokens: true }).tokens
}

/** True when the arguments ask for help (`--help` or `-h`), whatever else is wrong with them. */
export function wantsHelp(argv: string[]): boolean {
  return tokensOf(argv).some((t) => t.kind === 'option' && t.name === 'help')
}

// ---------------------------------------------------------------------------------------
// Loading

export type ReadFile = (path: string) => string

export type LoadResult = { ok: true; config: GatewayConfig } | { ok: false; errors: string[] }

type Tree = Record<string, unknown>

const isTree = (v: unknown): v is Tree => typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date)

const defaultReadFile: ReadFile = (path) => readFileSync(path, 'utf8')

/**
 * Builds the configuration from flags (`argv`, without the subcommand name), the
 * environment (only `STEPPELINK_MQTT_PASSWORD`) and the file named by `--config`, read
 * with `readFile`. Never throws for bad input: every problem found is in `errors`, one
 * line each, ready to print.
 */
export function loadConfig(argv: string[], env: NodeJS.ProcessEnv, readFile: ReadFile = defaultReadFile): LoadResult {
  const errors: string[] = []
  const sources = new Map<string, string>()

  // 1. Flags, kept aside until the file is read: they are applied last.
  const flags: Tree = {}
  let file: string | null = null
  const tokens = tokensOf(argv)
  const unknownFlag = tokens.some((t) => t.kind === 'option' && !Object.hasOwn(PARSE_OPTIONS, t.name))
  for (const t of tokens) {
    if (t.kind === 'positional') {
      // After an unknown flag, its value shows up as a positional: one error is enough.
      if (!unknownFlag) errors.push(`unexpected argument ${JSON.stringify(t.value)}: every value follows its flag, e.g. --serial /dev/ttyUSB0`)
      continue
    }
    if (t.kind !== 'option' || t.name === 'help') continue
    const option = OPTIONS.find((o) => o.flag === t.name)
    if (!option) {
      const near = nearest(t.name, OPTIONS.map((o) => o.flag))
      errors.push(`unknown option ${t.rawName}${near ? `; did you mean --${near}?` : ''}`)
      continue
    }
    const text = t.value
    if (text === undefined || (!t.inlineValue && text.startsWith('--') && Object.hasOwn(PARSE_OPTIONS, text.slice(2)))) {
      errors.push(`--${option.flag} needs a value: --${option.flag} ${option.arg}`)
      continue
    }
    if (option.path === null) {
      file = text
      continue
    }
    const value = option.value === 'number' && /^[+-]?\d+(\.\d+)?$/.test(text) ? Number(text) : text
    if (option.value === 'list') {
      const list = getPath(flags, option.path)
      setPath(flags, option.path, Array.isArray(list) ? [...list, value] : [value])
    } else setPath(flags, option.path, value)
    sources.set(option.path, `from --${option.flag}`)
  }
  if (errors.length > 0) return { ok: false, errors }

  // 2. The file.
  let fromFile: Tree = {}
  if (file !== null) {
    const read = readConfigFile(file, readFile)
    if (!read.ok) return { ok: false, errors: [read.error] }
    fromFile = read.tree
  }

  // 3. The password from the environment; an empty variable counts as unset.
  const fromEnv: Tree = {}
  const password = env[PASSWORD_ENV]
  if (password !== undefined && password !== '') {
    setPath(fromEnv, 'mqtt.password', password)
    if (!sources.has('mqtt.password')) sources.set('mqtt.password', `from ${PASSWORD_ENV}`)
  }

  // Every section exists, so a missing required key is reported as `gateway.id`, not `gateway`.
  const skeleton: Tree = { gateway: {}, serial: {}, mqtt: {}, timing: {}, limits: {}, log: {} }
  const merged = [structuredClone(DEFAULTS) as Tree, fromFile, fromEnv, flags].reduce<Tree>(merge, skeleton)

  const sourceOf = (at: string[]): string => {
    for (let i = at.length; i > 0; i--) {
      const s = sources.get(at.slice(0, i).join('.'))
      if (s) return ` (${s})`
    }
    return file !== null && getPath(fromFile, at.join('.')) !== undefined ? ` (in ${file})` : ''
  }

  const found = validator.Check(merged) ? [] : schemaErrors(merged, sourceOf)
  const problems = [...found.map((p) => p.text), ...crossChecks(merged, new Set(found.map((p) => p.path)), sourceOf)]
  if (problems.length > 0) return { ok: false, errors: problems }
  return { ok: true, config: inSchemaOrder(GatewayConfigSchema, merged) as GatewayConfig }
}

/**
 * The rule between the terminal's heartbeat and the gateway's supervision, seconds: what
 * is wrong, or null. The config file and the platform's `config` command both obey it.
 */
export function timingProblem(supervisionS: number, heartbeatS: number): string | null {
  if (supervisionS >= 2 * heartbeatS) return null
  return `${supervisionS} s is less than twice timing.heartbeat (${heartbeatS} s), so one lost HEARTBEAT would raise "terminal lost"; raise supervision or lower heartbeat`
}

/** Rules that span keys; each runs only when the keys it reads passed the schema (`bad` holds those that did not). */
function crossChecks(merged: Tree, bad: Set<string>, sourceOf: (at: string[]) => string): string[] {
  const errors: string[] = []
  const supervision = getPath(merged, 'timing.supervision')
  const heartbeat = getPath(merged, 'timing.heartbeat')
  const valid = (...paths: string[]) => paths.every((p) => ![...bad].some((b) => b === p || p.startsWith(`${b}.`)))
  const timing = valid('timing.supervision', 'timing.heartbeat') && typeof supervision === 'number' && typeof heartbeat === 'number' ? timingProblem(supervision, heartbeat) : null
  if (timing !== null) errors.push(`config error: timing.supervision: ${timing}${sourceOf(['timing', 'supervision'])}`)
  if (valid('mqtt.password') && getPath(merged, 'mqtt.password') !== undefined && getPath(merged, 'mqtt.username') === undefined) {
    errors.push('config error: mqtt.password is set but mqtt.username is not: MQTT sends a password only with a user name; give --username NAME or set mqtt.username')
  }
  return errors
}

/** A copy of the configuration that is safe to log or print: passwords become '***'. */
export function redact(config: GatewayConfig): GatewayConfig {
  const copy = structuredClone(config)
  if (copy.mqtt.password !== undefined) copy.mqtt.password = '***'
  copy.mqtt.brokers = copy.mqtt.brokers.map((b) => {
    const url = new URL(b)
    if (url.password === '') return b
    url.password = '***'
    return url.href
  })
  return copy
}

// ---------------------------------------------------------------------------------------
// The config file

function readConfigFile(file: string, readFile: ReadFile): { ok: true; tree: Tree } | { ok: false; error: string } {
  let text: string
  try {
    text = readFile(file).replace(/^\uFEFF/, '')
  } catch (e) {
    return { ok: false, error: `config error: cannot read the config file ${file}: ${(e as Error).message}` }
  }
  // No telling extension: a file that starts with '{' is meant to be JSON, anything else TOML.
  const ext = file.toLowerCase().match(/\.(json|toml)$/)?.[1]
  const format = ext === 'json' || (ext === undefined && text.trimStart().startsWith('{')) ? 'JSON' : 'TOML'
  let value: unknown
  try {
    value = format === 'JSON' ? JSON.parse(text) : parseToml(text)
  } catch (e) {
    return { ok: false, error: `config error: ${file} is not valid ${format}: ${syntaxError(e, text)}` }
  }
  if (!isTree(value)) {
    return { ok: false, error: `config error: ${file}: expected a ${format} object with the keys gateway, serial, mqtt, data, timing, limits, log; got ${kindOf(value)}` }
  }
  return { ok: true, tree: value }
}

/** The parser's reason and where, as "line L, column C" for both JSON and TOML. */
function syntaxError(e: unknown, text: string): string {
  if (e instanceof TomlError) {
    const reason = (e.message.split('\n')[0] ?? '').replace(/^Invalid TOML document: /, '')
    return `${reason} at line ${e.line}, column ${e.column}`
  }
  if (!(e instanceof SyntaxError)) throw e
  // V8 gives a position (its wording changes between Node versions); line and column are ours.
  const m = e.message.match(/ at position (\d+)/)
  const reason = e.message.replace(/ in JSON at position \d+.*$/, '').replace(/ at position \d+.*$/, '')
  if (!m) return reason
  const before = text.slice(0, Number(m[1]))
  const line = before.split('\n').length
  const column = before.length - before.lastIndexOf('\n')
  return `${reason} at line ${line}, column ${column}`
}

// ---------------------------------------------------------------------------------------
// Schema errors as sentences

interface Problem {
  /** Dotted path of the key, '' for the whole document. */
  path: string
  text: string
}

function schemaErrors(value: Tree, sourceOf: (at: string[]) => string): Problem[] {
  const out: { at: string[]; text: string }[] = []
  const seen = new Set<string>()
  for (const e of allErrors(value)) {
    const at = e.instancePath.split('/').slice(1).map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    if (e.keyword === 'required') {
      for (const key of (e.params as { requiredProperties: string[] }).requiredProperties) out.push({ at: [...at, key], text: missing([...at, key]) })
      continue
    }
    if (e.keyword === 'additionalProperties') {
      for (const key of (e.params as { additionalProperties: string[] }).additionalProperties) out.push({ at: [...at, key], text: unknownKey(at, key, sourceOf) })
      continue
    }
    const schema = schemaAt(at)
    // No schema: the key itself is unknown, reported by its parent's additionalProperties.
    if (schema === undefined || seen.has(e.instancePath)) continue
    seen.add(e.instancePath)
    out.push({ at, text: `config error: ${dotted(at)}: expected ${String((schema as { description?: string }).description)}, got ${show(at, getPath(value, at.join('.')))}${sourceOf(at)}` })
  }
  // In the order of the schema (and of the help and the docs), whatever order TypeBox found them in.
  const order = leafPaths(GatewayConfigSchema, [])
  const rank = ({ at }: { at: string[] }) => {
    // An unknown key ranks with its section; an unknown section comes first.
    const keys = at.filter((k) => !/^\d+$/.test(k))
    for (let n = keys.length; n > 0; n--) {
      const known = keys.slice(0, n).join('.')
      const i = order.findIndex((leaf) => leaf === known || leaf.startsWith(`${known}.`))
      if (i !== -1) return i
    }
    return -1
  }
  return out
    .map((p, i) => ({ ...p, i, rank: rank(p) }))
    .sort((a, b) => a.rank - b.rank || a.i - b.i)
    .map(({ at, text }) => ({ path: at.filter((k) => !/^\d+$/.test(k)).join('.'), text }))
}

/** TypeBox keeps 8 errors by default (a guard for untrusted input); a config file is ours. */
function allErrors(value: unknown) {
  const { maxErrors } = Settings.Get()
  Settings.Set({ maxErrors: 200 })
  try {
    return validator.Errors(value)
  } finally {
    Settings.Set({ maxErrors })
  }
}

function missing(at: string[]): string {
  const path = at.join('.')
  const option = OPTIONS.find((o) => o.path === path)
  const flag = option ? `--${option.flag} ${option.arg}${option.value === 'list' ? ' (once per broker)' : ''} or ` : ''
  return `config error: ${path}: missing; give ${flag}set ${path} in the config file`
}

function unknownKey(at: string[], key: string, sourceOf: (at: string[]) => string): string {
  const known = Object.keys(propertiesOf(schemaAt(at)))
  const near = nearest(key, known)
  // A key put in the wrong section: `brokers` at the top instead of in `mqtt`.
  const elsewhere = near === null ? leafPaths(GatewayConfigSchema, []).find((p) => p.split('.').pop()?.toLowerCase() === key.toLowerCase()) : undefined
  const guess = near !== null ? dotted([...at, near]) : elsewhere
  const where = at.length === 0 ? 'top-level keys' : `keys in ${dotted(at)}`
  return `config error: ${dotted([...at, key])}: unknown key${sourceOf([...at, key])}.${guess ? ` Did you mean ${guess}?` : ''} Known ${where}: ${known.join(', ')}`
}

function schemaAt(at: string[]): TSchema | undefined {
  let schema: TSchema | undefined = GatewayConfigSchema
  for (const segment of at) {
    if (schema === undefined) return undefined
    const s = schema as { type?: unknown; items?: TSchema }
    schema = s.type === 'array' ? s.items : Object.hasOwn(propertiesOf(schema), segment) ? propertiesOf(schema)[segment] : undefined
  }
  return schema
}

function propertiesOf(schema: TSchema | undefined): Record<string, TSchema> {
  return (schema as { properties?: Record<string, TSchema> } | undefined)?.properties ?? {}
}

/** The value with its keys in the schema's order, so the logged configuration reads like the docs. */
function inSchemaOrder(schema: TSchema | undefined, value: unknown): unknown {
  const properties = propertiesOf(schema)
  if (!isTree(value) || Object.keys(properties).length === 0) return value
  return Object.fromEntries(Object.entries(properties).filter(([k]) => Object.hasOwn(value, k)).map(([k, s]) => [k, inSchemaOrder(s, value[k])]))
}

function leafPaths(schema: TSchema, at: string[]): string[] {
  const properties = Object.entries(propertiesOf(schema))
  if (properties.length === 0) return [at.join('.')]
  return properties.flatMap(([k, s]) => leafPaths(s, [...at, k]))
}

/** `mqtt.brokers[1]` from ['mqtt', 'brokers', '1']. */
function dotted(at: string[]): string {
  return at.reduce((s, k) => (/^\d+$/.test(k) ? `${s}[${k}]` : s === '' ? k : `${s}.${k}`), '')
}

function show(at: string[], value: unknown): string {
  // A mistyped password is still a password: say what kind of thing it was, never what.
  if (at.at(-1) === 'password') return kindOf(value)
  if (value instanceof Date) return `the date ${value.toISOString()}`
  if (typeof value === 'bigint') return String(value)
  const text = JSON.stringify(value) ?? String(value)
  return text.length > 80 ? `${text.slice(0, 77)}...` : text
}

function kindOf(value: unknown): string {
  if (Array.isArray(value)) return 'a list'
  if (value === null) return 'null'
  if (value instanceof Date) return 'a date'
  const t = typeof value
  return t === 'object' ? 'a table' : t === 'string' ? 'a string' : `a ${t}`
}

// ---------------------------------------------------------------------------------------
// Small helpers

function getPath(tree: Tree, path: string): unknown {
  let v: unknown = tree
  for (const k of path.split('.')) {
    if (Array.isArray(v) && /^\d+$/.test(k)) v = v[Number(k)]
    else if (isTree(v) && Object.hasOwn(v, k)) v = v[k]
    else return undefined
  }
  return v
}

function setPath(tree: Tree, path: string, value: unknown): void {
  const keys = path.split('.')
  const last = keys.pop() as string
  let t = tree
  for (const k of keys) {
    const next = t[k]
    t = isTree(next) ? next : (t[k] = {})
  }
  t[last] = value
}

/** Deep merge of tables; anything else (lists too) is replaced by the override. */
function merge(base: Tree, override: Tree): Tree {
  const out: Tree = { ...base }
  for (const [k, v] of Object.entries(override)) {
    const b = out[k]
    // A table never replaces a value of another kind: that value came from the file and
    // is wrong, and the schema should report it rather than the flags hide it.
    if (isTree(v) && b !== undefined && !isTree(b)) continue
    out[k] = isTree(b) && isTree(v) ? merge(b, v) : v
  }
  return out
}

/** The known name closest to a mistyped one, if it is close enough to be the intent. */
function nearest(name: string, known: string[]): string | null {
  const norm = (s: string) => s.toLowerCase().replace(/[-_]/g, '')
  let best: string | null = null
  let bestDistance = 3
  for (const k of known) {
    const d = distance(norm(name), norm(k))
    if (d < bestDistance) [best, bestDistance] = [k, d]
  }
  return best
}

function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const row = [i]
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min((prev[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1))
    }
    prev = row
  }
  return prev[b.length] ?? 0
}
