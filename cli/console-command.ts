/**
 * `steppelink console`: the operator console of the banner 110 centre (platform/) at the
 * command line: a live view on a terminal, plain lines in a pipe, JSON lines with --json,
 * keys for the operator (console-live.ts). `steppelink console broadcast` publishes one
 * broadcast, or its withdrawal, and exits; `steppelink console key-rotate` one signed
 * key-rotate [MQTT-5.13]. Flags are checked with the schemas the console
 * checks its options with (console-flags.ts).
 */

import { parseArgs, type ParseArgsConfig } from 'node:util'
import {
  BroadcastSettings,
  CONSOLE_DEFAULTS,
  ConsoleError,
  ConsoleSettings,
  KeyRotateSettings,
  REQUEST_ACKNOWLEDGEMENTS,
  WithdrawSettings,
  publishBroadcast,
  publishKeyRotate,
  publishWithdraw,
  type CommandLine,
} from '../platform/index.js'
import type { Static } from 'typebox'
import { BROADCAST_FLAGS, CONSOLE_FLAGS, KEY_ROTATE_FLAGS, WITHDRAW_FLAGS, optionsFromFlags } from './console-flags.js'
import { runConsole } from './console-live.js'
import { UsageError, parseArgsError, reportUsage } from './usage.js'

export { tokenize } from './console-live.js'

export const PASSWORD_ENV = 'STEPPELINK_MQTT_PASSWORD'

/** The broker connection's flags, the same for the console and `console broadcast`. */
const CONNECTION_HELP = `  --username NAME     MQTT user name (default: none); the password comes from
                      ${PASSWORD_ENV}
  --ca FILE           TLS: the CA certificate (PEM) that signed the broker's certificate,
                      for a private CA; needs an mqtts:// or wss:// broker (default: the
                      public CAs)
  --cert FILE         TLS: client certificate (PEM), for a broker that requires one
                      (mutual TLS); with --key (default: none)
  --key FILE          TLS: the client certificate's private key (PEM, unencrypted)
  --servername NAME   TLS: the name on the broker's certificate, when it is not the
                      host of --broker (default: that host)
  --signing-key FILE  sign every command with this platform private key (platform.key
                      from steppelink keygen); gateways with its public key take only
                      signed commands (default: unsigned)`

const HELP = `Usage: steppelink console --broker URL [options]
       steppelink console broadcast --broker URL --to GATEWAY|all|area:NAME [options] "text"
       steppelink console broadcast --broker URL --to GATEWAY|all|area:NAME --withdraw ID
       steppelink console key-rotate --broker URL --to GATEWAY|all|area:NAME --next-key KEY --signing-key FILE

The operator console of the banner 110 centre. It watches every gateway on the broker
(alarms, events, batches, birth and death, status, replies), sends a receipt for every
copy of every alarm and every request (a call-back request, a message relayed for a
neighbour), and lets the operator acknowledge, dispatch and resolve each one; the herder
sees every step on the terminal. Runs until q, Ctrl-C, SIGINT or SIGTERM.
Its MQTT session is persistent (client id steppelink-console-<id>): alarms that arrive
while it is stopped are delivered when it starts again with the same --id.

Options:
  --broker URL        the platform's MQTT broker: mqtt://host:1883, mqtts://host:8883,
                      ws:// or wss:// (required)
  --prefix P          topic prefix, the gateways' mqtt.prefix (default ${CONSOLE_DEFAULTS.prefix})
  --id CONSOLE_ID     names the persistent session and prefixes command ids; 1-59 of
                      A-Z a-z 0-9 . _ : - ; run two consoles with two ids (default ${CONSOLE_DEFAULTS.id})
  --ack MODE          what happens to a new alarm or request besides its receipt
                      (default ${CONSOLE_DEFAULTS.ack}):
                        auto    acknowledged at once, by --operator; a request with a text
                                for the herder ("${REQUEST_ACKNOWLEDGEMENTS.callback}")
                        manual  the operator acknowledges it (key a)
                        none    receipts only
  --operator NAME     who acknowledges, shown on the terminal, 1-100 characters
                      (default "${CONSOLE_DEFAULTS.operator}")
  --dispatch-after S  send "dispatched" S seconds after an alarm's acknowledgement;
                      never to a request (default: never by itself, key d)
  --resolve-after S   send "resolved" S seconds after the acknowledgement of an alarm
                      or a request (default: never by itself, key r)
  --unit TEXT         the unit dispatched, 1-100 characters (default "${CONSOLE_DEFAULTS.unit}")
  --eta MIN           the unit's expected arrival, minutes, 0-65535 (default ${CONSOLE_DEFAULTS.etaMin})
${CONNECTION_HELP}
  --json              one JSON object per line on standard output instead of the view
  --help, -h          this help

Keys (on a terminal; read from standard input when it is a pipe, too):
  a        acknowledge the oldest alarm not yet acknowledged, or else the oldest such
           request (a request gets a text for the herder, e.g. "${REQUEST_ACKNOWLEDGEMENTS.callback}")
  d        dispatch the selected alarm or request, or else the oldest alarm not yet
           dispatched (asks for the unit and the eta; Enter keeps the default)
  r        resolve the selected alarm or request, or else the oldest open one, alarms
           first (asks how it ended)
  1-9      select that alarm or request of the lists (requests are numbered after the
           alarms); arrow up and down move the selection
  b        broadcast to the terminals (asks for the target, the urgency and the text)
  q        quit (Ctrl-C too)
  Esc      cancel a question

Output: on a terminal, a view redrawn on every change: gateways online and offline,
terminals, open alarms and, apart from them, open requests, each with age and stage
(stored, received, acknowledged, dispatched) and what a cancel takes back, broadcasts
with how many terminals have read each and through which gateways, recent trouble,
errors. Otherwise one line of plain text per event. Text from the wire is shown with
control characters and escape sequences as visible text (\\u001b), never obeyed.
With --json, one object per event with at least type (alert, event, status, state,
reply, command-sent, error, connection), id, gateway, terminal, code, kind, time (the
payload's {at, estimated}), receivedAt (local UNIX ms), ageMs (receivedAt - time.at,
null if the time is estimated) and duplicate: true for a republication of an id seen
before, or idConflict ({differs, versions, warning}) for another item under an id seen
before (two different alerts under one id: one may be forged; the case opens again and
shows every version); an event of class request also has stage and copies.

Examples:
  steppelink console --broker mqtt://127.0.0.1:1883
  steppelink console --broker mqtt://127.0.0.1:1883 --ack auto --dispatch-after 60 --resolve-after 600 --json
  steppelink console broadcast --broker mqtt://127.0.0.1:1883 --to area:abag-03 --urgency urgent "Blizzard tomorrow night: bring the herds in."
  steppelink console key-rotate --broker mqtt://127.0.0.1:1883 --to all --next-key keys-2027/platform.pub --signing-key keys/platform.key`

const BROADCAST_HELP = `Usage: steppelink console broadcast --broker URL --to GATEWAY|all|area:NAME [options] "text"
       steppelink console broadcast --broker URL --to GATEWAY|all|area:NAME --withdraw ID

Publishes one broadcast command (information for the terminals' displays: storm
warnings, notices) and exits 0 once the broker has it (PUBACK), 1 if it did not
acknowledge in time. The text is one argument (quote it): at most 2700 characters and
15 display parts of 180 bytes of UTF-8 (about 900 Chinese characters). With --withdraw,
publishes a broadcast-withdraw instead: the terminals remove that broadcast.

Options:
  --broker URL        the platform's MQTT broker (required)
  --to TARGET         a gateway id, all (every gateway), or area:NAME (every gateway of
                      that area) (required)
  --urgency LEVEL     info, warning or urgent: how insistently terminals show it (default info)
  --expires-in S      the text is stale after this many seconds (default: never)
  --broadcast-id N    the broadcast's id, 0-4294967295; the same id again replaces the
                      text on the terminals (default: the UNIX time in seconds)
  --withdraw ID       take back the broadcast with this id (0-4294967295, as it was
                      sent); no text, --urgency, --expires-in or --broadcast-id then
                      (default: none, send the text)
  --prefix P          topic prefix (default ${CONSOLE_DEFAULTS.prefix})
  --id CONSOLE_ID     prefixes the command id (default ${CONSOLE_DEFAULTS.id})
  --timeout S         give up when the broker has not acknowledged within S seconds (default 30)
${CONNECTION_HELP}
  --json              print the command sent as one JSON line
  --help, -h          this help`

const KEY_ROTATE_HELP = `Usage: steppelink console key-rotate --broker URL --to GATEWAY|all|area:NAME --next-key KEY --signing-key FILE [options]

Publishes one signed key-rotate command ([MQTT-5.13]) and exits 0 once the broker has it
(PUBACK), 1 if it did not acknowledge in time. Each gateway of --to whose configured
platformKeys.next is KEY makes it the key in force, keeps that across restarts, and from
then on refuses commands signed with the old key (CMD_UNKNOWN_KEY). A gateway whose next
key is another answers CMD_BAD_VALUE; the gateway status names the key in force
(platformKey). Sign with the new key from then on (--signing-key of the console).

Before: make the new pair (steppelink keygen --out keys-2027), put its platform.pub on
every gateway as platformKeys.next and restart them. A gateway offline now gets the
key-rotate from the broker when it comes back, within --valid-for.

Options:
  --broker URL        the platform's MQTT broker (required)
  --to TARGET         a gateway id, all (every gateway), or area:NAME (every gateway of
                      that area) (required)
  --next-key KEY      the new key: its key id (16 hex digits, as steppelink keygen prints
                      it), or its public key file (platform.pub of the new pair) (required)
  --signing-key FILE  the CURRENT platform private key (platform.key), which the gateways
                      take now: a key-rotate is applied only signed with it (required)
  --valid-for S       seconds the command stays valid, 60-2592000 (default 86400, a day)
  --prefix P          topic prefix (default ${CONSOLE_DEFAULTS.prefix})
  --id CONSOLE_ID     prefixes the command id (default ${CONSOLE_DEFAULTS.id})
  --timeout S         give up when the broker has not acknowledged within S seconds (default 30)
  --username NAME     MQTT user name (default: none); the password comes from
                      ${PASSWORD_ENV}
  --ca, --cert, --key, --servername   TLS, as for the console
  --json              print the command sent as one JSON line
  --help, -h          this help`

/** What the command talks to; each has the real thing as default. */
export interface ConsoleCommandIo {
  /** Text as given, no newline added (default: standard output). */
  stdout: (text: string) => void
  /** Text as given (default: standard error). */
  stderr: (text: string) => void
  /** Keys come from here (default: standard input); null: no keys. */
  stdin: (NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown }) | null
  /** Whether standard output is a terminal: the live view with ANSI; otherwise plain lines (default: process.stdout.isTTY). */
  isTTY: boolean
  /** The terminal's size (default: process.stdout, or 100 x 40). */
  size: () => { columns: number; rows: number }
  /** Where the password is read (default: process.env). */
  env: NodeJS.ProcessEnv
  /** When given, its abort stops the console, and no SIGINT/SIGTERM handlers are installed. */
  signal: AbortSignal | undefined
}

/** The broker connection's options, the same for the console and `console broadcast` (CONNECTION_HELP). */
const CONNECTION_OPTIONS = {
  username: { type: 'string' },
  ca: { type: 'string' },
  cert: { type: 'string' },
  key: { type: 'string' },
  servername: { type: 'string' },
  'signing-key': { type: 'string' },
} as const satisfies NonNullable<ParseArgsConfig['options']>

const CONSOLE_OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  broker: { type: 'string' },
  prefix: { type: 'string' },
  id: { type: 'string' },
  ack: { type: 'string' },
  operator: { type: 'string' },
  'dispatch-after': { type: 'string' },
  'resolve-after': { type: 'string' },
  unit: { type: 'string' },
  eta: { type: 'string' },
  ...CONNECTION_OPTIONS,
  json: { type: 'boolean' },
} as const satisfies NonNullable<ParseArgsConfig['options']>

const BROADCAST_OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  broker: { type: 'string' },
  to: { type: 'string' },
  urgency: { type: 'string' },
  'expires-in': { type: 'string' },
  'broadcast-id': { type: 'string' },
  withdraw: { type: 'string' },
  prefix: { type: 'string' },
  id: { type: 'string' },
  timeout: { type: 'string' },
  ...CONNECTION_OPTIONS,
  json: { type: 'boolean' },
} as const satisfies NonNullable<ParseArgsConfig['options']>

const KEY_ROTATE_OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  broker: { type: 'string' },
  to: { type: 'string' },
  'next-key': { type: 'string' },
  'valid-for': { type: 'string' },
  prefix: { type: 'string' },
  id: { type: 'string' },
  timeout: { type: 'string' },
  ...CONNECTION_OPTIONS,
  json: { type: 'boolean' },
} as const satisfies NonNullable<ParseArgsConfig['options']>

function defaultIo(io: Partial<ConsoleCommandIo>): ConsoleCommandIo {
  return {
    stdout: io.stdout ?? ((t) => process.stdout.write(t)),
    stderr: io.stderr ?? ((t) => process.stderr.write(t)),
    stdin: io.stdin === undefined ? process.stdin : io.stdin,
    // A terminal that cannot move the cursor gets lines, as a pipe does.
    isTTY: io.isTTY ?? (process.stdout.isTTY === true && (io.env ?? process.env).TERM !== 'dumb'),
    size: io.size ?? (() => ({ columns: process.stdout.columns ?? 100, rows: process.stdout.rows ?? 40 })),
    env: io.env ?? process.env,
    signal: io.signal,
  }
}

export async function consoleCommand(args: string[], io: Partial<ConsoleCommandIo> = {}): Promise<number> {
  const o = defaultIo(io)
  if (args[0] === 'broadcast') return broadcastCommand(args.slice(1), o)
  if (args[0] === 'key-rotate') return keyRotateCommand(args.slice(1), o)
  let values: ReturnType<typeof parseArgs<{ args: string[]; options: typeof CONSOLE_OPTIONS; allowPositionals: false; strict: true }>>['values']
  try {
    ;({ values } = parseArgs({ args, options: CONSOLE_OPTIONS, allowPositionals: false, strict: true }))
  } catch (e) {
    return usage(o, 'console', parseArgsError(e))
  }
  if (values.help) {
    o.stdout(`${HELP}\n`)
    return 0
  }
  let settings: Static<typeof ConsoleSettings>
  try {
    settings = optionsFromFlags(ConsoleSettings, CONSOLE_FLAGS, values, { password: o.env[PASSWORD_ENV] })
  } catch (e) {
    return usage(o, 'console', e)
  }
  return runConsole({ ...settings, json: values.json === true }, o)
}

type Which = 'console' | 'console broadcast' | 'console key-rotate'

function usage(o: ConsoleCommandIo, which: Which, e: unknown): number {
  return reportUsage((line) => o.stderr(`${line}\n`), which, e)
}

// ---------------------------------------------------------------------------------------
// broadcast

type BroadcastParsed = ReturnType<typeof parseArgs<{ args: string[]; options: typeof BROADCAST_OPTIONS; allowPositionals: true; strict: true }>>
type BroadcastValues = BroadcastParsed['values']

async function broadcastCommand(args: string[], o: ConsoleCommandIo): Promise<number> {
  let parsed: BroadcastParsed
  try {
    parsed = parseArgs({ args, options: BROADCAST_OPTIONS, allowPositionals: true, strict: true })
  } catch (e) {
    return usage(o, 'console broadcast', parseArgsError(e))
  }
  const { values, positionals } = parsed
  if (values.help) {
    o.stdout(`${BROADCAST_HELP}\n`)
    return 0
  }
  if (values.withdraw !== undefined) return withdrawCommand(values, positionals, o)
  let options: Static<typeof BroadcastSettings>
  try {
    if (positionals.length > 1) throw new UsageError(`the text must be one argument: put it in quotes (got ${positionals.length} words)`)
    options = optionsFromFlags(BroadcastSettings, BROADCAST_FLAGS, values, { text: positionals[0], password: o.env[PASSWORD_ENV] })
  } catch (e) {
    return usage(o, 'console broadcast', e)
  }
  return publishAndReport(o, values.json === true, publishBroadcast(options), ({ command, topic }) =>
    command.type === 'broadcast' ? `broadcast ${command.broadcast} (${command.urgency}) sent to ${topic}; the broker has it (command ${command.id})` : '',
  )
}

async function withdrawCommand(values: BroadcastValues, positionals: string[], o: ConsoleCommandIo): Promise<number> {
  let options: Static<typeof WithdrawSettings>
  try {
    const alone = ['urgency', 'expires-in', 'broadcast-id'].filter((k) => values[k as keyof BroadcastValues] !== undefined)
    if (alone.length > 0) throw new UsageError(`--withdraw takes a broadcast back: it has no ${alone.map((k) => `--${k}`).join(', ')}`)
    if (positionals.length > 0) throw new UsageError('--withdraw takes no text')
    options = optionsFromFlags(WithdrawSettings, WITHDRAW_FLAGS, values, { password: o.env[PASSWORD_ENV] })
  } catch (e) {
    return usage(o, 'console broadcast', e)
  }
  const broadcast = options.broadcast
  return publishAndReport(o, values.json === true, publishWithdraw(options), ({ command, topic }) => `broadcast ${broadcast} withdrawn: sent to ${topic}; the broker has it (command ${command.id})`)
}

// ---------------------------------------------------------------------------------------
// key-rotate

async function keyRotateCommand(args: string[], o: ConsoleCommandIo): Promise<number> {
  let values: ReturnType<typeof parseArgs<{ args: string[]; options: typeof KEY_ROTATE_OPTIONS; allowPositionals: false; strict: true }>>['values']
  try {
    ;({ values } = parseArgs({ args, options: KEY_ROTATE_OPTIONS, allowPositionals: false, strict: true }))
  } catch (e) {
    return usage(o, 'console key-rotate', parseArgsError(e))
  }
  if (values.help) {
    o.stdout(`${KEY_ROTATE_HELP}\n`)
    return 0
  }
  let options: Static<typeof KeyRotateSettings>
  try {
    options = optionsFromFlags(KeyRotateSettings, KEY_ROTATE_FLAGS, values, { password: o.env[PASSWORD_ENV] })
  } catch (e) {
    return usage(o, 'console key-rotate', e)
  }
  return publishAndReport(
    o,
    values.json === true,
    publishKeyRotate(options),
    ({ command, topic }) =>
      `key-rotate to ${command.type === 'key-rotate' ? command.key : '?'} sent to ${topic}, signed with the current key; the broker has it (command ${command.id}). Sign with the new key from now on; each gateway's status names its key in force (platformKey)`,
    'console key-rotate',
  )
}

/** Waits for the one command, prints it (a JSON line, or `said`), and gives the exit code: 0 sent, 1 not confirmed, 2 refused before sending. */
async function publishAndReport(o: ConsoleCommandIo, json: boolean, publishing: Promise<CommandLine>, said: (sent: CommandLine) => string, which: Which = 'console broadcast'): Promise<number> {
  try {
    const sent = await publishing
    o.stdout(`${json ? JSON.stringify(sent) : said(sent)}\n`)
    return 0
  } catch (e) {
    if (!(e instanceof ConsoleError)) throw e
    if (e.code === 'CONSOLE_BAD_COMMAND' || e.code === 'CONSOLE_BAD_OPTION') return usage(o, which, new UsageError(e.message))
    o.stderr(`steppelink ${which}: ${e.message}\n`)
    return 1
  }
}
