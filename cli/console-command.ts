/**
 * `steppelink console`: the operator console of the banner 110 centre (platform/)
 * at the command line: a live view on a terminal, plain lines in a pipe, JSON lines with
 * --json, keys for the operator. `steppelink console broadcast` publishes one broadcast
 * and exits.
 */

import { parseArgs, type ParseArgsConfig } from 'node:util'
import type { Urgency } from '../protocol/messages.js'
import {
  ACK_MODES,
  CONSOLE_DEFAULTS,
  CONSOLE_ID_PATTERN,
  ConsoleError,
  REQUEST_ACKNOWLEDGEMENTS,
  URGENCY_NAMES,
  canTake,
  clockTime,
  describeEvent,
  openCases,
  publishBroadcast,
  publishWithdraw,
  renderView,
  screenText,
  startConsole,
  type AckMode,
  type CaseView,
  type CommandLine,
  type ConsoleEvent,
  type OperatorConsole,
} from '../platform/index.js'

export const PASSWORD_ENV = 'STEPPELINK_MQTT_PASSWORD'

const HELP = `Usage: steppelink console --broker URL [options]
       steppelink console broadcast --broker URL --to GATEWAY|all|area:NAME [options] "text"
       steppelink console broadcast --broker URL --to GATEWAY|all|area:NAME --withdraw ID

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
  --username NAME     MQTT user name (default: none); the password comes from
                      ${PASSWORD_ENV}
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
null if the time is estimated) and duplicate: true for an id seen before; an event
of class request also has stage and copies.

Examples:
  steppelink console --broker mqtt://127.0.0.1:1883
  steppelink console --broker mqtt://127.0.0.1:1883 --ack auto --dispatch-after 60 --resolve-after 600 --json
  steppelink console broadcast --broker mqtt://127.0.0.1:1883 --to area:abag-03 --urgency urgent "Blizzard tomorrow night: bring the herds in."`

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
  --username NAME     MQTT user name (default: none); the password comes from
                      ${PASSWORD_ENV}
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

class UsageError extends Error {}

function number(flag: string, raw: string | undefined, ok: (n: number) => boolean, what: string): number | undefined {
  if (raw === undefined) return undefined
  const n = Number(raw)
  if (raw.trim() === '' || !Number.isFinite(n) || !ok(n)) throw new UsageError(`--${flag} must be ${what}, got '${raw}'`)
  return n
}

function brokerUrl(raw: string | undefined): string {
  if (raw === undefined) throw new UsageError('--broker is required: the URL of the platform\'s MQTT broker, e.g. --broker mqtt://127.0.0.1:1883')
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    throw new UsageError(`--broker must be a URL such as mqtt://127.0.0.1:1883, got '${raw}'`)
  }
  if (!['mqtt:', 'mqtts:', 'tcp:', 'ssl:', 'ws:', 'wss:'].includes(url.protocol)) {
    throw new UsageError(`--broker must be an mqtt://, mqtts://, ws:// or wss:// URL, got '${raw}'`)
  }
  return raw
}

function consoleId(raw: string | undefined): string | undefined {
  if (raw !== undefined && !new RegExp(CONSOLE_ID_PATTERN).test(raw)) throw new UsageError(`--id must be 1-59 of A-Z a-z 0-9 . _ : -, got '${raw}'`)
  return raw
}

function prefixOf(raw: string | undefined): string | undefined {
  if (raw !== undefined && (raw === '' || /[+#\0]/.test(raw) || raw.startsWith('/') || raw.endsWith('/'))) {
    throw new UsageError(`--prefix must be topic levels without + or # and without a leading or trailing /, got '${raw}'`)
  }
  return raw
}

function text(flag: string, raw: string | undefined, max: number): string | undefined {
  if (raw !== undefined && (raw.length < 1 || raw.length > max)) throw new UsageError(`--${flag} must be 1-${max} characters, got ${raw.length}`)
  return raw
}

/** parseArgs's own errors (unknown option, missing value) as usage errors. */
function parseError(e: unknown): UsageError {
  return new UsageError((e as Error).message.replace(/\s+/g, ' ').trim().replace(/\.$/, ''))
}

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
  username: { type: 'string' },
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
  username: { type: 'string' },
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
  let values
  try {
    ;({ values } = parseArgs({ args, options: CONSOLE_OPTIONS, allowPositionals: false, strict: true }))
  } catch (e) {
    return usage(o, 'console', parseError(e))
  }
  if (values.help) {
    o.stdout(`${HELP}\n`)
    return 0
  }
  let options
  try {
    const ack = values.ack
    if (ack !== undefined && !(ACK_MODES as readonly string[]).includes(ack)) throw new UsageError(`--ack must be one of ${ACK_MODES.join(', ')}, got '${ack}'`)
    const seconds = (n: number) => n >= 0 && n <= 2_000_000
    options = {
      broker: brokerUrl(values.broker),
      prefix: prefixOf(values.prefix),
      id: consoleId(values.id),
      ack: ack as AckMode | undefined,
      operator: text('operator', values.operator, 100),
      dispatchAfterS: number('dispatch-after', values['dispatch-after'], seconds, 'seconds from 0 to 2000000'),
      resolveAfterS: number('resolve-after', values['resolve-after'], seconds, 'seconds from 0 to 2000000'),
      unit: text('unit', values.unit, 100),
      etaMin: number('eta', values.eta, (n) => Number.isInteger(n) && n >= 0 && n <= 65535, 'whole minutes from 0 to 65535'),
      username: values.username,
      json: values.json === true,
    }
  } catch (e) {
    return usage(o, 'console', e)
  }
  return runConsole(options, o)
}

function usage(o: ConsoleCommandIo, which: 'console' | 'console broadcast', e: unknown): number {
  if (!(e instanceof UsageError)) throw e
  o.stderr(`steppelink ${which}: ${e.message}. See 'steppelink ${which} --help'.\n`)
  return 2
}

/** Drops undefined values, so that defaults apply (exactOptionalPropertyTypes-safe). */
function defined<T extends Record<string, unknown>>(o: T): { [K in keyof T]: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as never
}

// ---------------------------------------------------------------------------------------
// broadcast

async function broadcastCommand(args: string[], o: ConsoleCommandIo): Promise<number> {
  let parsed
  try {
    parsed = parseArgs({ args, options: BROADCAST_OPTIONS, allowPositionals: true, strict: true })
  } catch (e) {
    return usage(o, 'console broadcast', parseError(e))
  }
  const { values, positionals } = parsed
  if (values.help) {
    o.stdout(`${BROADCAST_HELP}\n`)
    return 0
  }
  if (values.withdraw !== undefined) return withdrawCommand(values, positionals, o)
  let options
  try {
    const broker = brokerUrl(values.broker)
    if (values.to === undefined) throw new UsageError('--to is required: a gateway id, all, or area:NAME')
    const urgency = values.urgency ?? 'info'
    if (!(URGENCY_NAMES as readonly string[]).includes(urgency)) throw new UsageError(`--urgency must be one of ${URGENCY_NAMES.join(', ')}, got '${urgency}'`)
    if (positionals.length === 0) throw new UsageError('the text of the broadcast is missing: give it as the last argument, in quotes')
    if (positionals.length > 1) throw new UsageError(`the text must be one argument: put it in quotes (got ${positionals.length} words)`)
    options = defined({
      broker,
      to: values.to,
      text: positionals[0]!,
      urgency: urgency as Urgency,
      expiresInS: number('expires-in', values['expires-in'], (n) => n > 0 && n <= 10 * 366 * 86400, 'seconds above 0 (at most ten years)'),
      broadcastId: number('broadcast-id', values['broadcast-id'], (n) => Number.isInteger(n) && n >= 0 && n <= 0xffffffff, 'a whole number from 0 to 4294967295'),
      ...connection(values, o),
    })
  } catch (e) {
    return usage(o, 'console broadcast', e)
  }
  return publishAndReport(o, values.json === true, publishBroadcast(options), ({ command, topic }) =>
    command.type === 'broadcast' ? `broadcast ${command.broadcast} (${command.urgency}) sent to ${topic}; the broker has it (command ${command.id})` : '',
  )
}

/** Waits for the one command, prints it (a JSON line, or `said`), and gives the exit code: 0 sent, 1 not confirmed, 2 refused before sending. */
async function publishAndReport(o: ConsoleCommandIo, json: boolean, publishing: Promise<CommandLine>, said: (sent: CommandLine) => string): Promise<number> {
  try {
    const sent = await publishing
    o.stdout(`${json ? JSON.stringify(sent) : said(sent)}\n`)
    return 0
  } catch (e) {
    if (!(e instanceof ConsoleError)) throw e
    if (e.code === 'CONSOLE_BAD_COMMAND' || e.code === 'CONSOLE_BAD_OPTION') return usage(o, 'console broadcast', new UsageError(e.message))
    o.stderr(`steppelink console broadcast: ${e.message}\n`)
    return 1
  }
}

type BroadcastValues = ReturnType<typeof parseArgs<{ args: string[]; options: typeof BROADCAST_OPTIONS; allowPositionals: true; strict: true }>>['values']

/** How `console broadcast` reaches the broker: the same for a broadcast and its withdrawal. */
function connection(values: BroadcastValues, o: ConsoleCommandIo) {
  return {
    prefix: prefixOf(values.prefix),
    id: consoleId(values.id),
    timeoutMs: (number('timeout', values.timeout, (n) => n > 0 && n <= 86400, 'seconds above 0') ?? 30) * 1000,
    username: values.username,
    password: o.env[PASSWORD_ENV],
  }
}

async function withdrawCommand(values: BroadcastValues, positionals: string[], o: ConsoleCommandIo): Promise<number> {
  let options
  try {
    const broker = brokerUrl(values.broker)
    if (values.to === undefined) throw new UsageError('--to is required: a gateway id, all, or area:NAME')
    const alone = ['urgency', 'expires-in', 'broadcast-id'].filter((k) => values[k as keyof BroadcastValues] !== undefined)
    if (alone.length > 0) throw new UsageError(`--withdraw takes a broadcast back: it has no ${alone.map((k) => `--${k}`).join(', ')}`)
    if (positionals.length > 0) throw new UsageError('--withdraw takes no text')
    options = defined({
      broker,
      to: values.to,
      broadcast: number('withdraw', values.withdraw, (n) => Number.isInteger(n) && n >= 0 && n <= 0xffffffff, 'a broadcast id, a whole number from 0 to 4294967295')!,
      ...connection(values, o),
    })
  } catch (e) {
    return usage(o, 'console broadcast', e)
  }
  const broadcast = options.broadcast
  return publishAndReport(o, values.json === true, publishWithdraw(options), ({ command, topic }) => `broadcast ${broadcast} withdrawn: sent to ${topic}; the broker has it (command ${command.id})`)
}

// ---------------------------------------------------------------------------------------
// The running console: output, keys, prompts

interface RunOptions {
  broker: string
  prefix: string | undefined
  id: string | undefined
  ack: AckMode | undefined
  operator: string | undefined
  dispatchAfterS: number | undefined
  resolveAfterS: number | undefined
  unit: string | undefined
  etaMin: number | undefined
  username: string | undefined
  json: boolean
}

interface Prompt {
  question: string
  buffer: string
  done: (answer: string | null) => void
}

type Token = { kind: 'char'; ch: string } | { kind: 'up' | 'down' | 'esc' }

/** Splits what stdin gave into keys: characters, arrows, a lone Escape; other escape sequences are dropped. */
export function tokenize(chunk: string): Token[] {
  const out: Token[] = []
  const chars = [...chunk]
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i]!
    if (ch !== '\x1b') {
      out.push({ kind: 'char', ch })
      continue
    }
    const next = chars[i + 1]
    if (next !== '[' && next !== 'O') {
      out.push({ kind: 'esc' })
      continue
    }
    let j = i + 2
    while (j < chars.length && !/[A-Za-z~]/.test(chars[j]!)) j++
    const final = chars[j]
    if (final === 'A') out.push({ kind: 'up' })
    if (final === 'B') out.push({ kind: 'down' })
    i = j
  }
  return out
}

async function runConsole(r: RunOptions, o: ConsoleCommandIo): Promise<number> {
  const live = o.isTTY && !r.json
  // Colours and inverse only on a terminal, and not when NO_COLOR is set (no-color.org).
  const ansi = live && !o.env.NO_COLOR
  const stdin = o.stdin
  const raw = stdin?.isTTY === true && typeof stdin.setRawMode === 'function'
  let operatorConsole: OperatorConsole | undefined
  let selected: string | null = null
  const notes: string[] = []
  let prompt: Prompt | null = null
  let renderTimer: ReturnType<typeof setTimeout> | undefined
  let stopped = false

  // -- output ------------------------------------------------------------------------------
  const render = () => {
    renderTimer = undefined
    if (stopped || operatorConsole === undefined) return
    const { columns, rows } = o.size()
    const snap = operatorConsole.snapshot()
    const now = Date.now()
    const footer = [
      ...notes.slice(-3).map((n) => `  ${n}`),
      'Keys: a acknowledge  d dispatch  r resolve  1-9 select  b broadcast  q quit',
      ...(prompt ? [`${prompt.question} ${prompt.buffer}`] : []),
    ]
    const lines = renderView(snap, {
      now,
      width: Math.max(40, columns - 1),
      rows: Math.max(3, Math.min(8, Math.floor((rows - 14) / 4))),
      ansi,
      selected,
      title: `Steppelink operator console "${operatorConsole.id}"  ${r.broker}  ${snap.connected ? 'connected' : 'NOT CONNECTED, retrying'}  ack ${operatorConsole.ack}  ${clockTime(now)}`,
      footer,
    })
    // Home, each line then erase to its end, erase below: no flicker.
    o.stdout(`\x1b[H${lines.map((l) => `${l}\x1b[K`).join('\n')}\x1b[J`)
  }
  const changed = () => {
    if (live && renderTimer === undefined) renderTimer = setTimeout(render, 50)
  }
  // Notes and questions quote alert ids and error messages, text from the wire: outside
  // the live view (which renderView makes safe) they go through screenText [CONSOLE-9].
  const say = (write: (text: string) => void, text: string, end = '\n') => write(`${screenText(text)}${end}`)
  const note = (text: string) => {
    if (live) {
      notes.push(`${clockTime(Date.now())}  ${text}`)
      if (notes.length > 20) notes.shift()
      changed()
    } else if (r.json) say(o.stderr, text)
    else say(o.stdout, `${clockTime(Date.now())}  NOTE     ${text}`)
  }
  const onEvent = (e: ConsoleEvent) => {
    if (r.json) o.stdout(`${JSON.stringify(e)}\n`)
    else if (live) changed()
    else o.stdout(`${describeEvent(e)}\n`)
  }

  // -- questions -----------------------------------------------------------------------------
  // Keys wait while an action runs until it asks a question or ends, so that piped input
  // ("d", then the answers) reaches the questions and not the key handler.
  let consumed: (() => void) | null = null
  /** The running action has asked its next question, or ended: the next key may come. */
  const step = () => {
    const c = consumed
    consumed = null
    c?.()
  }
  /** Waits for the running action's next step (at once when none runs). */
  const nextStep = (): Promise<void> =>
    busy
      ? new Promise((resolve) => {
          consumed = resolve
        })
      : Promise.resolve()
  const ask = (question: string): Promise<string | null> =>
    new Promise((resolve) => {
      prompt = { question, buffer: '', done: resolve }
      step()
      if (live) changed()
      else if (r.json) say(o.stderr, `${question} `, '')
      else say(o.stdout, `${question} `)
    })
  const answer = (value: string | null) => {
    const p = prompt
    prompt = null
    p?.done(value)
    changed()
  }
  const withDefault = async (question: string, fallback: string): Promise<string | null> => {
    const a = await ask(`${question} [${fallback}]:`)
    return a === null ? null : a.trim() === '' ? fallback : a.trim()
  }

  // -- actions -----------------------------------------------------------------------------
  /** Alarms, then requests: the order of the view and of the keys 1-9. */
  const open = (): CaseView[] => (operatorConsole === undefined ? [] : openCases(operatorConsole.snapshot()))
  /** The selected case if it can take the action, or else the first of the list that `fallback` allows too. */
  const pick = (eligible: (a: CaseView) => boolean, fallback: (a: CaseView) => boolean = () => true): CaseView | undefined => {
    const list = open()
    return list.find((a) => a.id === selected && eligible(a)) ?? list.find((a) => eligible(a) && fallback(a))
  }
  const report = (what: string, p: Promise<unknown>) =>
    p.then(
      () => note(`${what}: the broker has it`),
      (e: unknown) => note(`${what} not sent: ${(e as Error).message}`),
    )
  const actions: Record<string, () => Promise<void>> = {
    a: async () => {
      const a = open().find((x) => canTake(x.stage, 'acknowledge'))
      if (a === undefined) return note('no alarm or request waiting for an acknowledgement')
      await report(`acknowledged ${a.class} ${a.id}`, operatorConsole!.acknowledge(a.id))
    },
    d: async () => {
      // A request gets a dispatch only when the operator selects it: the hotline answers requests.
      const a = pick(
        (x) => canTake(x.stage, 'dispatch'),
        (x) => x.class === 'alarm',
      )
      if (a === undefined) return note('no open alarm waiting for a dispatch (select a request with 1-9 to dispatch to it)')
      const unit = await withDefault(`dispatch to ${a.id}: unit`, r.unit ?? CONSOLE_DEFAULTS.unit)
      if (unit === null) return note('dispatch cancelled')
      const eta = await withDefault(`dispatch to ${a.id}: eta, minutes`, String(r.etaMin ?? CONSOLE_DEFAULTS.etaMin))
      if (eta === null) return note('dispatch cancelled')
      const minutes = Number(eta)
      if (!Number.isInteger(minutes) || minutes < 0 || minutes > 65535) return note(`dispatch cancelled: the eta must be whole minutes from 0 to 65535, got '${eta}'`)
      await report(`dispatched ${unit} to ${a.id}`, operatorConsole!.dispatch(a.id, unit, minutes))
    },
    r: async () => {
      const a = pick((x) => canTake(x.stage, 'resolve'))
      if (a === undefined) return note('no open alarm or request to resolve')
      const how = await withDefault(`resolve ${a.id}: how it ended`, CONSOLE_DEFAULTS.resolveText)
      if (how === null) return note('resolve cancelled')
      await report(`resolved ${a.id}`, operatorConsole!.resolve(a.id, how))
    },
    b: async () => {
      const to = await withDefault('broadcast to (a gateway id, all, area:NAME)', 'all')
      if (to === null) return note('broadcast cancelled')
      const urgency = await withDefault('urgency (info, warning, urgent)', 'info')
      if (urgency === null) return note('broadcast cancelled')
      if (!(URGENCY_NAMES as readonly string[]).includes(urgency)) return note(`broadcast cancelled: the urgency must be info, warning or urgent, got '${urgency}'`)
      const message = await ask('text (empty: cancel):')
      if (message === null || message.trim() === '') return note('broadcast cancelled')
      await report(`broadcast to ${to}`, operatorConsole!.broadcast(to, message.trim(), urgency as Urgency))
    },
  }

  // -- keys ----------------------------------------------------------------------------------
  let quit: () => void = () => {}
  const done = new Promise<void>((resolve) => {
    quit = resolve
  })
  let busy = false
  let lastWasCR = false
  let skipNewline = false
  const onKey = (t: Token): Promise<void> | void => {
    if (prompt) {
      const reply = (value: string | null) => {
        const next = nextStep()
        answer(value)
        return next
      }
      if (t.kind === 'esc') return reply(null)
      if (t.kind !== 'char') return
      if (t.ch === '\n' && lastWasCR) return
      // Line input (a pipe, a terminal not in raw mode): "d" then Enter is the key, not the answer.
      const keyEnd = skipNewline && prompt.buffer === '' && (t.ch === '\n' || t.ch === '\r')
      skipNewline = false
      if (keyEnd) return
      if (t.ch === '\r' || t.ch === '\n') return reply(prompt.buffer)
      if (t.ch === '\x03') return reply(null)
      if (t.ch === '\x7f' || t.ch === '\b') prompt.buffer = [...prompt.buffer].slice(0, -1).join('')
      else if (t.ch >= ' ') prompt.buffer += t.ch
      return changed()
    }
    if (t.kind === 'up' || t.kind === 'down') {
      const list = open()
      const i = list.findIndex((a) => a.id === selected)
      const next = t.kind === 'up' ? (i <= 0 ? list.length - 1 : i - 1) : i + 1 >= list.length ? 0 : i + 1
      selected = list[next]?.id ?? null
      return changed()
    }
    if (t.kind !== 'char') return
    const ch = t.ch
    if (ch === 'q' || ch === '\x03') return quit()
    if (ch >= '1' && ch <= '9') {
      const a = open()[Number(ch) - 1]
      selected = a?.id ?? null
      if (a === undefined) note(`no alarm or request ${ch} in the lists`)
      return changed()
    }
    const action = actions[ch]
    if (action === undefined) return
    if (busy) return note('one thing at a time: wait for the last one to finish')
    busy = true
    skipNewline = !raw
    const next = nextStep()
    action()
      .catch((e: unknown) => note(`failed: ${(e as Error).message}`))
      .finally(() => {
        busy = false
        step()
      })
    return next
  }
  const queue: Token[] = []
  let pumping = false
  const pump = async () => {
    if (pumping) return
    pumping = true
    for (let t = queue.shift(); t !== undefined && !stopped; t = queue.shift()) {
      await onKey(t)
      lastWasCR = t.kind === 'char' && t.ch === '\r'
    }
    pumping = false
  }
  const onData = (chunk: string | Buffer) => {
    queue.push(...tokenize(chunk.toString()))
    void pump()
  }

  // -- start -------------------------------------------------------------------------------
  const stopSignal = () => quit()
  if (o.signal) {
    if (o.signal.aborted) quit()
    o.signal.addEventListener('abort', stopSignal, { once: true })
  } else {
    process.on('SIGINT', stopSignal)
    process.on('SIGTERM', stopSignal)
  }
  // The alternate screen keeps the operator's scrollback as it was.
  if (live) o.stdout('\x1b[?1049h\x1b[H\x1b[2J')
  const refresh = live ? setInterval(changed, 1000) : undefined
  const onResize = () => changed()
  if (live) process.stdout.on('resize', onResize)
  try {
    try {
      operatorConsole = await startConsole(
        defined({
          broker: r.broker,
          prefix: r.prefix,
          id: r.id,
          ack: r.ack,
          operator: r.operator,
          dispatchAfterS: r.dispatchAfterS,
          resolveAfterS: r.resolveAfterS,
          unit: r.unit,
          etaMin: r.etaMin,
          username: r.username,
          password: o.env[PASSWORD_ENV],
          waitForBroker: false,
          onEvent,
        }),
      )
    } catch (e) {
      if (e instanceof ConsoleError && e.code === 'CONSOLE_BAD_OPTION') return usage(o, 'console', new UsageError(e.message))
      throw e
    }
    if (!live) note(`console "${operatorConsole.id}" (client id ${operatorConsole.clientId}) connecting to ${r.broker}, ack ${operatorConsole.ack}; keys: a d r 1-9 b q`)
    changed()
    if (stdin) {
      if (raw) stdin.setRawMode!(true)
      stdin.setEncoding('utf8')
      stdin.on('data', onData)
      stdin.resume()
    }
    await done
  } finally {
    stopped = true
    clearTimeout(renderTimer)
    clearInterval(refresh)
    if (live) process.stdout.off('resize', onResize)
    if (stdin) {
      stdin.off('data', onData)
      if (raw) stdin.setRawMode!(false)
      stdin.pause()
    }
    if (o.signal) o.signal.removeEventListener('abort', stopSignal)
    else {
      process.off('SIGINT', stopSignal)
      process.off('SIGTERM', stopSignal)
    }
    ;(prompt as Prompt | null)?.done(null)
    if (live) o.stdout('\x1b[?1049l')
  }
  const snap = operatorConsole.snapshot()
  await operatorConsole.close()
  const c = snap.counters
  const summary = `console stopped: ${c.alerts} alarm${c.alerts === 1 ? '' : 's'} (${snap.openAlarms.length} still open), ${c.requests} request${c.requests === 1 ? '' : 's'} (${snap.openRequests.length} still open), ${c.items} other items, ${c.duplicates} duplicates, ${c.commandsSent} commands sent, ${c.errors} errors`
  if (r.json) o.stderr(`${summary}\n`)
  else o.stdout(`${summary}\n`)
  return 0
}
