/**
 * The flags of `steppelink gateway`: one table (OPTIONS) that the parser, the help, the
 * error messages and the docs all read, and the flags of a command line as a layer of the
 * configuration.
 */

import { parseArgs } from 'node:util'
import { nearest } from './config-nearest.js'
import { BAUD_RATES, LOG_LEVELS, PASSWORD_ENV } from './config-schema.js'
import { getPath, setPath, type Tree } from './config-tree.js'

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
  { flag: 'mqtt-ca', path: 'mqtt.tls.ca', value: 'string', arg: 'FILE', help: "CA certificate (PEM) that signed the broker's certificate: a private CA; needs an mqtts:// broker" },
  { flag: 'mqtt-cert', path: 'mqtt.tls.cert', value: 'string', arg: 'FILE', help: 'client certificate (PEM) for mutual TLS; read again at each connection attempt (renewal without restart)' },
  { flag: 'mqtt-key', path: 'mqtt.tls.key', value: 'string', arg: 'FILE', help: "the client certificate's private key (PEM, unencrypted; keep it mode 0600)" },
  { flag: 'mqtt-servername', path: 'mqtt.tls.servername', value: 'string', arg: 'NAME', help: "the name on the broker's certificate, when it is not the host of the broker URL" },
  { flag: 'supervision', path: 'timing.supervision', value: 'number', arg: 'S', help: 'seconds without a frame from a terminal before "terminal lost"; at least 2x heartbeat' },
  { flag: 'receipt-timeout', path: 'timing.receiptTimeout', value: 'number', arg: 'S', help: `seconds without the platform's receipt of an alarm before the terminal says "call 110 by phone"` },
  { flag: 'heartbeat', path: 'timing.heartbeat', value: 'number', arg: 'S', help: "seconds between the terminal's HEARTBEATs (10-86400)" },
  { flag: 'status-interval', path: 'timing.statusInterval', value: 'number', arg: 'S', help: 'seconds between status publications (gateway and terminals)' },
  { flag: 'household-listen', path: 'household.listen', value: 'string', arg: 'ADDR', help: 'IP address the household page listens on: the LAN interface, 127.0.0.1, or 0.0.0.0 for every interface' },
  { flag: 'household-port', path: 'household.port', value: 'number', arg: 'PORT', help: 'TCP port of the household page and the local API (0: a free one)' },
  { flag: 'log-level', path: 'log.level', value: 'string', arg: 'LEVEL', help: `log level: ${LOG_LEVELS.join(', ')}` },
  // Signed commands (issue 12) [MQTT-5.12]
  {
    flag: 'platform-key',
    path: 'platformKeys.current',
    value: 'string',
    arg: 'FILE|KEY',
    help: "the platform's public key (platform.pub from steppelink keygen, or base64): only commands signed with it are applied",
  },
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

export type FlagLayer = { ok: true; flags: Tree; file: string | null; sources: Map<string, string> } | { ok: false; errors: string[] }

/**
 * The flags of `argv` as a tree of their own, the file `--config` names, and where each
 * value came from (`from --baud`); or every problem found in them.
 */
export function readFlags(argv: string[]): FlagLayer {
  const errors: string[] = []
  const sources = new Map<string, string>()
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
      // The console's TLS flags (--ca, --cert ...) are the gateway's with mqtt- before them.
      const near =
        nearest(
          t.name,
          OPTIONS.map((o) => o.flag),
        ) ?? OPTIONS.find((o) => o.flag === `mqtt-${t.name}`)?.flag
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
  return { ok: true, flags, file, sources }
}
