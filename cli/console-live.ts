/**
 * The running `steppelink console`: the live view on a terminal (or plain lines, or JSON
 * lines), the operator's keys and questions, until q, Ctrl-C, SIGINT or SIGTERM.
 */

import type { Urgency } from '../protocol/messages.js'
import {
  CONSOLE_DEFAULTS,
  ConsoleError,
  URGENCY_NAMES,
  canTake,
  clockTime,
  describeEvent,
  openCases,
  renderView,
  screenText,
  startConsole,
  type CaseView,
  type ConsoleEvent,
  type ConsoleHooks,
  type ConsoleOptions,
  type OperatorConsole,
} from '../platform/index.js'
import type { ConsoleCommandIo } from './console-command.js'
import { UsageError, reportUsage } from './usage.js'

/** What the console runs with: its settings, checked, and whether to print JSON lines. */
export type RunOptions = Omit<ConsoleOptions, keyof ConsoleHooks> & { json: boolean }

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

export async function runConsole(r: RunOptions, o: ConsoleCommandIo): Promise<number> {
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
    const footer = [...notes.slice(-3).map((n) => `  ${n}`), 'Keys: a acknowledge  d dispatch  r resolve  1-9 select  b broadcast  q quit', ...(prompt ? [`${prompt.question} ${prompt.buffer}`] : [])]
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
      const { json: _json, ...settings } = r
      operatorConsole = await startConsole({ ...settings, waitForBroker: false, onEvent })
    } catch (e) {
      if (e instanceof ConsoleError && e.code === 'CONSOLE_BAD_OPTION') return reportUsage((line) => o.stderr(`${line}\n`), 'console', new UsageError(e.message))
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
  const summary = `console stopped: ${c.alerts} alarm${c.alerts === 1 ? '' : 's'} (${snap.openAlarms.length} still open), ${c.requests} request${c.requests === 1 ? '' : 's'} (${snap.openRequests.length} still open), ${c.items} other items, ${c.duplicates} duplicates, ${c.conflicts > 0 ? `${c.conflicts} CONFLICTS (two different alerts under one id), ` : ''}${c.commandsSent} commands sent, ${c.errors} errors`
  if (r.json) o.stderr(`${summary}\n`)
  else o.stdout(`${summary}\n`)
  return 0
}
