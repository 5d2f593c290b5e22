/**
 * `steppelink sim terminal`: a one-button terminal in software, on a real serial device
 * (one end of a socat pseudo-terminal pair, the gateway on the other), with real time and
 * the line rate of real hardware. Scripted (--press: press, wait for a stage, exit 0 or 1)
 * or interactive (keys for the buttons, and a live view of the box's LEDs, buzzer,
 * display and link).
 */

import { createInterface } from 'node:readline'
import { parseArgs, type ParseArgsConfig } from 'node:util'
import type { SerialEvent } from '../io/serial-line.js'
import { PROGRESS_RANK as RANK } from '../protocol/lifecycle.js'
import type { EventKind } from '../protocol/messages.js'
import { seededRandom } from '../protocol/random.js'
import { runOnSerial, type RunningTerminal } from '../device-sim/serial-runner.js'
import { displayText, terminalView, type TerminalViewState } from '../device-sim/terminal-view.js'
import { TerminalDevice, fileMemory, ramMemory, type AlertState, type NvMemory, type NvState, type ShownStage, type TerminalUpdate } from '../device-sim/terminal.js'
import { UsageError, numberFlag, oneOf, parseArgsError, reportUsage } from './usage.js'

/** The buttons, by the name the CLI uses; `hotline` is the protocol's `callback`. [LINK-5.4] */
export const BUTTONS = {
  emergency: 'emergency',
  hotline: 'callback',
  cancel: 'cancel',
  fire: 'fire',
  medical: 'medical',
  panic: 'panic',
} as const satisfies Record<string, EventKind>
export type Button = keyof typeof BUTTONS

/** Stages --until accepts, and the order stages are reached in. */
export const UNTIL_STAGES = ['stored', 'received', 'acknowledged', 'resolved'] as const
export type UntilStage = (typeof UNTIL_STAGES)[number]

/** How long the `u` key pulls the cable, ms. */
export const UNPLUG_MS = 5_000
/** Reopen backoff of the simulator's port: a replug is picked up within about 2 s. */
const BACKOFF = { initialMs: 200, maxMs: 2_000 }

const HELP = `Usage: steppelink sim terminal --serial PATH --id TERMINAL_ID [options]
       steppelink sim terminal --serial PATH --id TERMINAL_ID --press KIND [--count N] [--until STAGE] [--json]

Runs a one-button terminal (the firmware logic, with its non-volatile memory) on a serial
device, e.g. one end of a socat pseudo-terminal pair with the gateway on the other end.
Bytes leave at the line rate of real hardware (UART 8N1, 10 bits a byte: a 30-byte frame
at 9600 baud takes 31 ms), in small chunks, so the gateway sees realistic timing.

Options:
  --serial PATH     the terminal's end of the serial line (required)
  --id TERMINAL_ID  terminal id, as printed on the box: 1-32 of A-Z a-z 0-9 . _ : - (required)
  --address N       the terminal's address on the line, 1-254 (default 1)
  --baud N          line rate, baud (default 9600)
  --state FILE      the terminal's non-volatile memory (boot counter, event counter,
                    unacknowledged events), a JSON file written atomically; kill the
                    simulator (even with kill -9) and start it again with the same FILE,
                    and the events the gateway had not acknowledged are sent again under
                    their numbers (default: none, memory lasts as long as the process:
                    each start is then a new box with boot 1 and event numbers from 1,
                    as a terminal whose memory was wiped: a gateway that has seen this
                    --id before starts a new numbering for it, and its events get new
                    ids, e.g. SL-T-0001@gw-0017.1:1; delete FILE to try that)
  --noise BER       bit error rate on the line, 0 to 0.05: each bit written or read is
                    flipped with this probability, e.g. 1e-3 (default 0)
  --seed N          seed for the noise and the retry jitter, an integer (default: random)
  --help, -h        this help

Scripted mode (--press):
  --press KIND      press this button: emergency, hotline (a call-back request), cancel,
                    fire, medical or panic (default: none, interactive mode)
  --count N         how many presses, 1-10000 (default 1)
  --interval MS     time between presses, ms (default 1000)
  --until STAGE     exit 0 once every press has reached this stage or a later one:
                    stored (the gateway has it on disk: its ACK, or INDICATE stored),
                    received (the 110 platform has it), acknowledged (an operator took
                    it) or resolved; unconfirmed does not count (default received).
                    A hotline call-back request reaches received when the platform
                    confirms it, and acknowledged and resolved when an operator answers.
  --timeout S       exit 1 after this long, seconds, naming each press and the stage it
                    reached (default 120)
  --json            one JSON line per stage change on standard output:
                    {"event":N,"stage":"...","ms":ms since that press} plus "text" and
                    "eta" (minutes) when the gateway sent them; "earlier":true (and ms
                    since the start) for an event of an earlier run: one from the
                    memory, sent again, or one the gateway still reports on

Interactive mode (no --press): a live view of the box (LEDs, buzzer, display and link,
as PROTOCOL.md [LINK-5.7] recommends) and these keys:
  e  emergency      h  hotline call-back request      c  cancel
  f  fire           m  medical                        p  panic
  r  read: confirm the broadcast message shown (DISPLAY_READ)
  u  unplug: close the port for ${UNPLUG_MS / 1000} s, then it is reopened
  q  quit (also Ctrl-C)
With a terminal, keys act at once; otherwise one key (or its name, e.g. "emergency") a
line on standard input. At the end of input the simulator keeps running until q, SIGINT
or SIGTERM.

Pulling the cable for real: stop socat (the device and its link vanish) and start it
again with the same link paths; the simulator, like the gateway, reopens the path by
itself (backoff 0.2 s to 2 s). The u key does the same from this side only.

Exit status: 0 done (or quit), 1 --timeout reached (or the memory file unreadable),
2 usage error.

Example, with a gateway on the other end of a socat pair:
  socat -d -d pty,raw,echo=0,link=/tmp/gw pty,raw,echo=0,link=/tmp/term &
  steppelink sim terminal --serial /tmp/term --id SL-T-0001 --state /tmp/term-nv.json --press emergency --until received`

/** What the command talks to; each has the real thing as default. */
export interface SimTerminalIo {
  /** Output lines (default: standard output). */
  stdout: (text: string) => void
  /** Diagnostics and errors (default: standard error). */
  stderr: (text: string) => void
  /** Keys in interactive mode (default: standard input). */
  stdin: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown }
  /** Whether stdout is a terminal that can be redrawn in place (default: process.stdout.isTTY). */
  screen: boolean
}

interface Settings {
  serial: string
  id: string
  address: number
  baud: number
  state: string | null
  noise: number
  seed: number | null
  press: Button | null
  count: number
  interval: number
  until: UntilStage
  timeoutS: number
  json: boolean
}

const SCRIPTED_ONLY = ['count', 'interval', 'until', 'timeout', 'json'] as const

const OPTIONS = {
  serial: { type: 'string' },
  id: { type: 'string' },
  address: { type: 'string' },
  baud: { type: 'string' },
  state: { type: 'string' },
  noise: { type: 'string' },
  seed: { type: 'string' },
  press: { type: 'string' },
  count: { type: 'string' },
  interval: { type: 'string' },
  until: { type: 'string' },
  timeout: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies NonNullable<ParseArgsConfig['options']>

function parse(args: string[]): Settings {
  let values: ReturnType<typeof parseArgs<{ args: string[]; options: typeof OPTIONS }>>['values']
  try {
    values = parseArgs({ args, options: OPTIONS }).values
  } catch (e) {
    throw parseArgsError(e)
  }
  const int = (lo: number, hi: number) => (n: number) => Number.isInteger(n) && n >= lo && n <= hi

  if (values.serial === undefined || values.serial === '') {
    throw new UsageError("--serial PATH is required: the terminal's end of the serial line, e.g. one end of a socat pair")
  }
  if (values.id === undefined) throw new UsageError('--id TERMINAL_ID is required: the id printed on the box, e.g. SL-T-0001')
  if (!/^[A-Za-z0-9._:-]{1,32}$/.test(values.id)) {
    throw new UsageError(`--id must be 1-32 of A-Z a-z 0-9 . _ : - (it travels in HELLO), got '${values.id}'`)
  }
  const press = oneOf('press', values.press, Object.keys(BUTTONS) as Button[]) ?? null
  if (press === null) {
    const given = SCRIPTED_ONLY.filter((o) => values[o] !== undefined)
    if (given.length > 0) {
      throw new UsageError(`${given.map((o) => `--${o}`).join(', ')} only apply to scripted mode: add --press KIND, e.g. --press emergency`)
    }
  }
  if (values.state === '') throw new UsageError('--state needs a file name, e.g. --state /var/tmp/terminal-nv.json')
  return {
    serial: values.serial,
    id: values.id,
    address: numberFlag('address', values.address, int(1, 254), 'a whole number from 1 to 254') ?? 1,
    baud: numberFlag('baud', values.baud, int(300, 1_000_000), 'a line rate from 300 to 1000000 baud') ?? 9600,
    state: values.state ?? null,
    noise: numberFlag('noise', values.noise, (n) => n >= 0 && n <= 0.05, 'a bit error rate from 0 to 0.05') ?? 0,
    seed: numberFlag('seed', values.seed, Number.isSafeInteger, 'a whole number') ?? null,
    press,
    count: numberFlag('count', values.count, int(1, 10_000), 'a whole number from 1 to 10000') ?? 1,
    interval: numberFlag('interval', values.interval, (n) => n >= 0 && n <= 86_400_000, 'a time in ms from 0 to 86400000') ?? 1000,
    until: oneOf('until', values.until, UNTIL_STAGES) ?? 'received',
    timeoutS: numberFlag('timeout', values.timeout, (n) => n > 0 && n <= 31_536_000, 'a time in seconds, more than 0') ?? 120,
    json: values.json ?? false,
  }
}

/** The kinds of the events an earlier run left in the memory (to name them), or an error. */
function loadMemory(memory: NvMemory, file: string): NvState | null {
  try {
    return memory.load()
  } catch (e) {
    throw new Error(`cannot read the terminal's memory ${file}: ${(e as Error).message}. Move it away to start as a new box.`)
  }
}

export async function simTerminalCommand(args: string[], io: Partial<SimTerminalIo> = {}): Promise<number> {
  const stdout = io.stdout ?? ((text: string) => void process.stdout.write(`${text}\n`))
  const stderr = io.stderr ?? ((text: string) => void process.stderr.write(`${text}\n`))
  if (args.includes('--help') || args.includes('-h')) {
    stdout(HELP)
    return 0
  }
  let s: Settings
  try {
    s = parse(args)
  } catch (e) {
    return reportUsage(stderr, 'sim terminal', e)
  }
  const memory = s.state === null ? ramMemory() : fileMemory(s.state)
  let earlier: NvState | null
  try {
    earlier = loadMemory(memory, s.state ?? '')
  } catch (e) {
    stderr(`steppelink sim terminal: ${(e as Error).message}`)
    return 1
  }
  const sim = new Simulator(s, memory, earlier, { stdout, stderr, stdin: io.stdin ?? process.stdin, screen: io.screen ?? process.stdout.isTTY === true })
  return s.press === null ? sim.interactive() : sim.scripted(s.press)
}

/** One run: the device, its port, and what is printed about them. */
class Simulator {
  readonly device: TerminalDevice
  readonly running: RunningTerminal
  readonly started = Date.now()
  /** Event number -> when it was pressed in this run. */
  readonly pressedAt = new Map<number, number>()
  /** Event number -> the furthest stage it has reached (unconfirmed aside). */
  readonly best = new Map<number, ShownStage>()
  readonly kinds = new Map<number, EventKind>()
  /** Set while press() runs, so that its `saved` update is known as this run's press. */
  #pressing: { at: number; kind: EventKind } | null = null
  portOpen = false
  #errorsShown = 0
  lastKeyAt: number | null = null
  /** Recent lines for the live view. */
  readonly log: string[] = []
  #onChange: () => void = () => {}

  constructor(
    readonly s: Settings,
    memory: NvMemory,
    earlier: NvState | null,
    readonly io: SimTerminalIo,
  ) {
    for (const e of earlier?.pending ?? []) this.kinds.set(e.number, e.kind)
    const random = s.seed === null ? Math.random : seededRandom(s.seed)
    this.device = new TerminalDevice({
      address: s.address,
      terminal: s.id,
      memory,
      baud: s.baud,
      random: s.seed === null ? Math.random : seededRandom(s.seed + 1),
      now: this.started,
      onUpdate: (u) => this.#onUpdate(u),
    })
    const resent = earlier?.pending ?? []
    this.#info(`terminal ${s.id} (address ${s.address}, boot ${this.device.boot}) on ${s.serial} at ${s.baud} baud${s.noise > 0 ? `, bit error rate ${s.noise}` : ''}`)
    if (resent.length > 0) {
      this.#info(
        `${resent.length} event${resent.length === 1 ? '' : 's'} from before the restart, not acknowledged by the gateway, sent again: ${resent.map((e) => `#${e.number} ${e.kind}`).join(', ')}`,
      )
    }
    this.running = runOnSerial(this.device, {
      path: s.serial,
      baud: s.baud,
      pace: true,
      noise: s.noise,
      random,
      backoff: BACKOFF,
      onSerialEvent: (e) => this.#onSerial(e),
    })
  }

  press(kind: EventKind): number {
    const now = Date.now()
    this.device.tick(now)
    this.#pressing = { at: now, kind }
    try {
      return this.device.press(kind).number
    } finally {
      this.#pressing = null
      this.running.wake()
    }
  }

  async scripted(button: Button): Promise<number> {
    const s = this.s
    const kind = BUTTONS[button]
    const target = RANK[s.until]
    const mine: number[] = []
    let timer: NodeJS.Timeout | null = null
    const { promise, resolve } = withResolvers<number>()
    const done = () => mine.length === s.count && mine.every((n) => RANK[this.best.get(n) ?? 'saved'] >= target)
    this.#onChange = () => {
      if (done()) resolve(0)
    }
    const pressNext = () => {
      mine.push(this.press(kind))
      if (mine.length < s.count) timer = setTimeout(pressNext, s.interval)
      this.#onChange()
    }
    pressNext()
    const timeout = setTimeout(() => resolve(1), s.timeoutS * 1000)
    const stopSignals = onSignals(() => resolve(130))
    const code = await promise
    stopSignals()
    clearTimeout(timeout)
    if (timer) clearTimeout(timer)
    if (code === 0) {
      this.#info(`all ${s.count} press${s.count === 1 ? '' : 'es'} reached ${s.until} (or later) in ${Date.now() - this.started} ms`)
    } else if (code === 1) {
      this.io.stderr(`steppelink sim terminal: ${this.#timeoutReason(mine, button)}`)
    }
    await this.running.stop()
    return code
  }

  async interactive(): Promise<number> {
    const { stdin, screen } = this.io
    const { promise, resolve } = withResolvers<number>()
    const raw = stdin.isTTY === true && typeof stdin.setRawMode === 'function'
    const onKey = (key: string) => {
      this.lastKeyAt = Date.now()
      const k = key.trim().toLowerCase()
      const byName: Record<string, string> = { emergency: 'e', hotline: 'h', callback: 'h', cancel: 'c', fire: 'f', medical: 'm', panic: 'p', read: 'r', unplug: 'u', quit: 'q' }
      const action = k === '\u0003' ? 'q' : (byName[k] ?? k)
      const button = ({ e: 'emergency', h: 'hotline', c: 'cancel', f: 'fire', m: 'medical', p: 'panic' } as const satisfies Record<string, Button>)[action as 'e']
      if (button !== undefined) {
        const n = this.press(BUTTONS[button])
        this.#note(`key ${action}: ${button} pressed, event #${n}`)
      } else if (action === 'r') {
        const shown = this.device.displays[0]
        if (shown && this.device.readDisplay(shown.id)) {
          this.running.wake()
          this.#note(`key r: message #${shown.id} read; DISPLAY_READ sent`)
        } else this.#note('key r: no message to read')
      } else if (action === 'u') {
        this.running.unplug(UNPLUG_MS)
        this.#note(`key u: cable pulled for ${UNPLUG_MS / 1000} s`)
      } else if (action === 'q') {
        resolve(0)
        return
      } else if (k !== '') {
        this.#note(`unknown key '${k}': e h c f m p r u q (see --help)`)
      }
      this.#draw(true)
    }
    let rl: ReturnType<typeof createInterface> | null = null
    const onData = (chunk: Buffer | string) => {
      const text = chunk.toString()
      if (text.startsWith('\x1b')) return // arrows, function keys: not keys of the box
      for (const ch of text) onKey(ch)
    }
    if (raw) {
      stdin.setRawMode!(true)
      stdin.on('data', onData)
      stdin.resume()
    } else {
      rl = createInterface({ input: stdin, terminal: false })
      rl.on('line', onKey)
    }
    this.#onChange = () => this.#draw(false)
    if (!screen) this.io.stdout('keys: e emergency, h hotline, c cancel, f fire, m medical, p panic, r read, u unplug, q quit')
    this.#draw(true)
    const redraw = screen ? setInterval(() => this.#draw(false), 500) : null
    const stopSignals = onSignals(() => resolve(0))
    const code = await promise
    stopSignals()
    if (redraw) clearInterval(redraw)
    if (raw) {
      stdin.off('data', onData)
      stdin.setRawMode!(false)
    }
    rl?.close()
    stdin.pause()
    if (stdin === process.stdin) process.stdin.destroy()
    await this.running.stop()
    this.#info('quit')
    return code
  }

  viewState(): TerminalViewState {
    const status = this.device.link.status
    return {
      terminal: this.s.id,
      address: this.s.address,
      boot: this.device.boot,
      port: this.portOpen ? 'open' : 'closed',
      session: status.state,
      gatewayUp: status.up,
      gateway: this.device.gateway,
      pending: this.device.pending.length,
      alerts: [...this.device.alerts.values()],
      displays: this.device.displays,
      lastKeyAt: this.lastKeyAt,
    }
  }

  #lastScreen = ''

  /** Interactive view: redrawn in place on a terminal; otherwise printed after each key. */
  #draw(afterKey: boolean): void {
    if (this.s.press !== null) return
    const view = terminalView(this.viewState(), Date.now())
    if (!this.io.screen) {
      if (afterKey) this.io.stdout(view.join('\n'))
      return
    }
    const text = [...view, '', 'keys: e emergency  h hotline  c cancel  f fire  m medical  p panic  r read  u unplug  q quit', '', ...this.log.slice(-8)].join('\n')
    if (text === this.#lastScreen) return
    const first = this.#lastScreen === ''
    this.#lastScreen = text
    // Home, each line cleared to its end, then the rest of the screen: no flicker.
    this.io.stdout(
      `${first ? '\x1b[2J' : ''}\x1b[H${text
        .split('\n')
        .map((l) => `${l}\x1b[K`)
        .join('\n')}\x1b[J`,
    )
  }

  #onUpdate(u: TerminalUpdate): void {
    const now = Date.now()
    switch (u.kind) {
      case 'stage': {
        if (this.#pressing !== null && u.stage === 'saved' && !this.pressedAt.has(u.event)) {
          this.pressedAt.set(u.event, this.#pressing.at)
          this.kinds.set(u.event, this.#pressing.kind)
        }
        if (u.stage !== 'unconfirmed' && RANK[u.stage] >= RANK[this.best.get(u.event) ?? 'saved']) this.best.set(u.event, u.stage)
        const pressed = this.pressedAt.get(u.event)
        const ms = now - (pressed ?? this.started)
        if (this.s.json) {
          const line = {
            event: u.event,
            stage: u.stage,
            ms,
            ...(u.text !== undefined ? { text: u.text } : {}),
            ...(u.eta !== undefined ? { eta: u.eta } : {}),
            ...(pressed === undefined ? { earlier: true } : {}),
          }
          this.io.stdout(JSON.stringify(line))
        } else {
          const kind = this.kinds.get(u.event) ?? null
          const alert: AlertState = { event: u.event, kind, stage: u.stage, ...(u.text !== undefined ? { text: u.text } : {}), ...(u.eta !== undefined ? { eta: u.eta } : {}), at: now }
          const shows = displayText(alert, now, false).join(', ')
          const when = `${String(ms).padStart(7)} ms${pressed === undefined ? ' since start' : ''}`
          this.#line(`${when}  #${u.event} ${(kind ?? 'event').padEnd(9)} ${u.stage.padEnd(12)} ${shows}`)
        }
        break
      }
      case 'link':
        // `device` is not yet assigned while its constructor runs.
        if (u.up && this.device?.link.status.state === 'open') this.#info(`link: session open with gateway ${this.device.gateway ?? '?'}`)
        else if (!u.up) this.#info('link: gateway not answering; still trying (alarms not yet received show "call 110 by phone")')
        break
      case 'display':
        this.#info(`message #${u.id} [${u.urgency}]: ${u.text}`)
        break
      case 'time':
        break
    }
    this.#onChange()
  }

  #onSerial(e: SerialEvent): void {
    switch (e.kind) {
      case 'open':
        this.portOpen = true
        this.#errorsShown = 0
        this.#info(`serial: ${e.path} open`)
        break
      case 'closed':
        this.portOpen = false
        this.#info(`serial: ${e.path} closed (${e.reason}); reopening in ${e.retryInMs} ms`)
        break
      case 'error':
        // A missing device is retried every 2 s at most: say so once, then now and then.
        if (this.#errorsShown++ % 30 === 0) this.#info(`serial: ${e.code}: ${e.message}`)
        break
    }
    this.#onChange()
  }

  /** A stage line: standard output (readable mode), or the interactive log. */
  #line(text: string): void {
    if (this.s.press === null && this.io.screen) this.#note(text)
    else this.io.stdout(text)
  }

  /** Status: standard error in JSON mode (stdout stays JSON), else like a stage line. */
  #info(text: string): void {
    if (this.s.json) this.io.stderr(text)
    else this.#line(text)
  }

  #note(text: string): void {
    if (this.s.press === null && this.io.screen) {
      this.log.push(`${new Date().toISOString().slice(11, 23)}  ${text}`)
      if (this.log.length > 50) this.log.shift()
    } else this.#line(text)
  }

  #timeoutReason(mine: number[], button: Button): string {
    const s = this.s
    const parts = mine.map((n) => {
      const best = this.best.get(n) ?? 'saved'
      const now = this.device.stages.get(n)
      return `#${n} reached ${best}${now !== undefined && now !== best ? ` (now ${now})` : ''}`
    })
    const status = this.device.link.status
    const hint = !this.portOpen
      ? `the serial port ${s.serial} is not open`
      : status.state !== 'open'
        ? `no session with a gateway: is one running on the other end of ${s.serial}, at ${s.baud} baud?`
        : !status.up
          ? 'the gateway stopped answering'
          : button === 'hotline' && RANK[s.until] > RANK.sent
            ? `a hotline call-back request reaches ${s.until} only when the platform answers it (a receipt, an operator); the gateway has not reported it yet`
            : `the gateway has not reported ${s.until} yet`
    const made = mine.length < s.count ? `; only ${mine.length} of ${s.count} presses made` : ''
    return `timed out after ${s.timeoutS} s waiting for every press to reach ${s.until}: ${parts.join(', ')}${made}; ${hint}`
  }
}

function withResolvers<T>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void
  const promise = new Promise<T>((r) => (resolve = r))
  return { promise, resolve }
}

/** SIGINT and SIGTERM stop the run cleanly; returns the function that removes the handlers. */
function onSignals(stop: () => void): () => void {
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
  return () => {
    process.off('SIGINT', stop)
    process.off('SIGTERM', stop)
  }
}
