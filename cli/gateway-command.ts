/**
 * `steppelink gateway`: runs the gateway of a center household until SIGTERM or SIGINT.
 * This file only reads the configuration, starts the log and hands over to
 * `runGateway` (gateway/main.ts), which is loaded only now so that `--help` and
 * configuration errors answer fast on a board.
 */

import { DEFAULTS, OPTIONS, PASSWORD_ENV, loadConfig, redact, wantsHelp, type GatewayConfig, type ReadFile } from '../gateway/config.js'
import { createLogger, type LogDestination, type Logger } from '../gateway/log.js'

/** The gateway itself: resolves with the exit code once it has stopped (after SIGTERM or SIGINT). */
export type RunGateway = (config: GatewayConfig, log: Logger) => Promise<number>

/** What the command talks to; each has the real thing as default. */
export interface GatewayCommandIo {
  /** Help text goes here (default: standard output). */
  stdout: (text: string) => void
  /** Usage and configuration errors go here (default: standard error). */
  stderr: (text: string) => void
  /** Where STEPPELINK_MQTT_PASSWORD is read (default: process.env). */
  env: NodeJS.ProcessEnv
  /** Reads the --config file (default: the file system, UTF-8). */
  readFile: ReadFile
  /** Where log lines go (default: standard output, written synchronously). */
  logDestination: LogDestination
  /** The gateway (default: `runGateway` from gateway/main.js). */
  run: RunGateway
}

/** A full config file, every key at its default except the required ones. */
export const EXAMPLE_CONFIG_TOML = `# /etc/steppelink/gateway.toml
data = "/var/lib/steppelink"      # the durable store; alerts survive power cuts here

[gateway]
id = "xlg-abag-0042"               # MQTT topic level: 1-64 of A-Z a-z 0-9 . _ : -
area = "abag"                      # optional: also take commands sent to this area

[serial]
path = "/dev/ttyUSB0"
baud = 9600                        # bits/s

[mqtt]
brokers = ["mqtts://110.example.cn:8883", "mqtts://backup.example.cn:8883"]   # tried in order
prefix = "steppelink/v1"
encoding = "cbor"                  # or "json"
username = "xlg-abag-0042"
# password = "..."                 # better in STEPPELINK_MQTT_PASSWORD; keep this file 0600 if not
keepalive = 60                     # s

[timing]                           # all in seconds
supervision = 30                   # no frame from a terminal this long: "terminal lost"
receiptTimeout = 60                # no receipt from the platform this long: terminal says "call 110"
heartbeat = 10                     # terminal HEARTBEAT interval; supervision must be at least twice it
statusInterval = 300               # gateway status publications

[limits]                           # lower classes only: alarms are never dropped
maxRequestEvents = 10000
maxTroubleEvents = 10000
maxRequestAgeDays = 30
maxTroubleAgeDays = 7
maxStoreMB = 64                    # event bodies of the lower classes on disk
reserveMB = 16                     # free disk kept for alarms

[log]
level = "info"                     # fatal, error, warn, info, debug, trace, silent

[household]                        # the page for the center household, and the local API of the CLI
enabled = true
listen = "0.0.0.0"                 # every interface; better the LAN interface's address, e.g. "192.168.4.1"
port = 8080
# pin = "482913"                   # 6-12 digits; left out: made at first start, kept in the data
#                                  # directory (household-pin, 0600); steppelink status shows it
`

const LIMIT_HELP: Record<keyof typeof DEFAULTS.limits, string> = {
  maxRequestEvents: 'requests kept while the uplink is down, events',
  maxTroubleEvents: 'trouble reports kept while the uplink is down, events',
  maxRequestAgeDays: 'an undelivered request is dropped after, days',
  maxTroubleAgeDays: 'an undelivered trouble report is dropped after, days',
  maxStoreMB: 'disk for the event bodies of the lower classes, MB',
  reserveMB: 'free disk kept for alarms; below it only alarms are stored, MB',
}

const REQUIRED = new Set(['serial.path', 'mqtt.brokers', 'gateway.id', 'data'])

function defaultOf(path: string | null): string {
  if (path === null) return ''
  if (REQUIRED.has(path)) return '(required)'
  let v: unknown = DEFAULTS
  for (const k of path.split('.')) v = typeof v === 'object' && v !== null ? (v as Record<string, unknown>)[k] : undefined
  return v === undefined ? '(default: none)' : `(default ${String(v)})`
}

export function gatewayHelp(): string {
  const rows = OPTIONS.map((o) => [`--${o.flag} ${o.arg}`, `${o.help} ${defaultOf(o.path)}`.trim()] as const)
  const width = Math.max(...rows.map(([flag]) => flag.length))
  const limitWidth = Math.max(...Object.keys(LIMIT_HELP).map((k) => k.length))
  return [
    'Usage: steppelink gateway --serial PATH --broker URL [--broker URL ...] --id ID --data DIR [options]',
    '       steppelink gateway --config FILE [options]',
    '',
    'Runs the gateway of a center household until SIGTERM or SIGINT: reads alarms from the',
    'terminals on the serial line, stores each on disk before acknowledging it, publishes it',
    "to the platform's MQTT broker until the platform confirms it, and carries the answers",
    'back to the terminal. Logs one JSON object per line on standard output.',
    '',
    'Options (flags override the config file, which overrides the defaults):',
    ...rows.map(([flag, text]) => `  ${flag.padEnd(width)}  ${text}`),
    `  ${'--help, -h'.padEnd(width)}  this help`,
    '',
    'Store limits (config file only, table [limits]); they bound only the lower classes,',
    'alarms are never dropped to make room:',
    ...Object.entries(LIMIT_HELP).map(([k, text]) => `  ${k.padEnd(limitWidth)}  ${text} ${defaultOf(`limits.${k}`)}`),
    '',
    'Environment:',
    `  ${PASSWORD_ENV}  the MQTT password; overrides the config file, --password overrides it`,
    '',
    'Config file: JSON (.json) or TOML (.toml; any other name: JSON if it starts with "{",',
    'else TOML), the same keys in both. Unknown keys are errors, so typos do not pass',
    'silently. A full file:',
    '',
    ...EXAMPLE_CONFIG_TOML.trimEnd()
      .split('\n')
      .map((l) => (l === '' ? '' : `  ${l}`)),
    '',
    'Example:',
    '  steppelink gateway --serial /dev/ttyUSB0 --broker mqtts://110.example.cn:8883 --id xlg-abag-0042 --data /var/lib/steppelink',
  ].join('\n')
}

// gateway/main.ts (the wiring of the real port, store and broker) is imported at run time
// only, so this command does not load serialport, SQLite and MQTT for --help.
async function loadRunGateway(): Promise<RunGateway> {
  return (await import('../gateway/main.js')).runGateway
}

export async function gatewayCommand(args: string[], io: Partial<GatewayCommandIo> = {}): Promise<number> {
  const stdout = io.stdout ?? ((text: string) => process.stdout.write(`${text}\n`))
  const stderr = io.stderr ?? ((text: string) => process.stderr.write(`${text}\n`))
  if (wantsHelp(args)) {
    stdout(gatewayHelp())
    return 0
  }
  const loaded = loadConfig(args, io.env ?? process.env, io.readFile)
  if (!loaded.ok) {
    for (const e of loaded.errors) stderr(`steppelink gateway: ${e}`)
    stderr("See 'steppelink gateway --help'.")
    return 2
  }
  const { config } = loaded
  const log = createLogger(config.log.level, io.logDestination)
  log.info({ config: redact(config) }, 'gateway starting with this configuration')
  const run = io.run ?? (await loadRunGateway())
  return run(config, log)
}
