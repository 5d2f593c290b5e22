/**
 * What the console shows people: one line per event (describeEvent) and the screen
 * (renderView), as plain text, with emphasis only when asked for a terminal.
 *
 * - [CONSOLE-9] Text from the wire (ids, kinds, texts, messages, even a parser's quote of
 *   a payload) reaches a human screen only through `screenText`, applied where text leaves
 *   for a screen: `describeEvent`, `renderView` (before its own colours) and the CLI's
 *   plain output. Control characters, escape sequences and bidi overrides are shown as
 *   `\u001b`-style text, so a gateway or anyone publishing on the broker cannot clear the
 *   operator's screen, move the cursor, recolour a line or reverse it. `--json` needs no
 *   such step: JSON escapes every control character.
 */

import type { Command } from '../protocol/mqtt.js'
import { canTake } from './cases.js'
import { assertNever } from './errors.js'
import type { ConsoleEvent, CopyConflict, TerminalReset } from './events.js'
import type { BroadcastView, CaseView, ConsoleSnapshot, CopyVersion, RelayView, TroubleView } from './view.js'

/**
 * What a terminal would obey rather than print: C0 controls (ESC, BEL, CR, LF, BS ...),
 * DEL, C1 controls (U+0080-U+009F: U+009B is a one-character CSI on many terminals), the
 * bidi embeddings and overrides U+202A-U+202E and isolates U+2066-U+2069 (which reverse
 * what follows on the line), and the line and paragraph separators U+2028-U+2029.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: the control characters are what this finds, to show them escaped instead of letting the terminal obey them
const UNSAFE_ON_SCREEN = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g
const SHORT_ESCAPES: Readonly<Record<string, string>> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' }

/**
 * Text made safe to print on a terminal [CONSOLE-9]: every character of UNSAFE_ON_SCREEN
 * becomes its escape as printable text (`\u001b`, `\u202e`; `\n`, `\r`, `\t`), so an
 * escape sequence arrives as harmless, visible characters (`\u001b[2J`) and the operator
 * sees that something odd was sent. Everything else is kept. Applying it twice changes
 * nothing more.
 */
export function screenText(text: string): string {
  return text.replace(UNSAFE_ON_SCREEN, (ch) => SHORT_ESCAPES[ch] ?? `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`)
}

/** Local wall-clock time, HH:MM:SS. */
export function clockTime(ms: number): string {
  const d = new Date(ms)
  return [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, '0')).join(':')
}

/** A duration for people: `45 s`, `3 min 05 s`, `2 h 03 min`, `4 d 07 h`. */
export function duration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000))
  if (s < 60) return `${s} s`
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`
  if (s < 86400) return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`
  return `${Math.floor(s / 86400)} d ${String(Math.floor((s % 86400) / 3600)).padStart(2, '0')} h`
}

const codeOf = (code: number | string | null) => (code === null ? '' : ` (${code})`)

/** One event as one line of plain text, prefixed with the local time it arrived; safe to print [CONSOLE-9]. */
export function describeEvent(e: ConsoleEvent): string {
  return screenText(eventLine(e))
}

function eventLine(e: ConsoleEvent): string {
  const at = clockTime(e.receivedAt)
  const late = e.ageMs !== null && e.ageMs >= 10_000 ? `, ${duration(e.ageMs)} after it happened` : ''
  switch (e.type) {
    case 'alert': {
      const dup = e.idConflict ? `copy ${e.copies}: ${conflictText(e.idConflict)}` : e.duplicate ? `copy ${e.copies} (duplicate)` : 'NEW ALARM'
      const unconfirmed = e.gatewayStage === 'unconfirmed' ? '; herder told "call 110 by phone": expect a call' : ''
      const cancels = e.cancels === undefined ? '' : `; the terminal cancels ${e.cancels} (close it)`
      const claims = e.claims === undefined ? '' : `; UNVERIFIED: a second device claiming ${e.claims}'s id (moved, or an impersonator)`
      const relay = e.relay === undefined ? '' : `; ${relayText(e.relay)}`
      return `${at}  ALERT    ${e.id}  ${e.kind}${codeOf(e.code)} from ${e.terminal ?? '-'} via ${e.gateway}: ${dup}, attempt ${e.attempt}, gateway stage ${e.gatewayStage ?? '-'}${late}${unconfirmed}${cancels}${claims}${relay}${e.text ? `: ${e.text}` : ''}`
    }
    case 'event':
      if (e.copies !== undefined) {
        const copy = e.idConflict ? `copy ${e.copies}: ${conflictText(e.idConflict)}` : e.duplicate ? `copy ${e.copies} (duplicate)` : 'NEW REQUEST'
        const relay = e.relay === undefined ? '' : `; ${relayText(e.relay)}`
        return `${at}  REQUEST  ${e.id}  ${e.kind}${codeOf(e.code)} from ${e.terminal ?? e.gateway} via ${e.gateway}: ${copy}${e.batch ? ` in batch ${e.batch}` : ''}${late}${relay}${e.text ? `: ${e.text}` : ''}`
      }
      return `${at}  EVENT    ${e.id}  ${e.class} ${e.kind}${codeOf(e.code)} from ${e.terminal ?? '-'} via ${e.gateway}${e.batch ? ` in batch ${e.batch}` : ''}${e.duplicate ? ' (duplicate)' : ''}${late}${troubleDetail(e)}${e.text ? `: ${e.text}` : ''}`
    case 'status':
      if (e.scope === 'gateway') return `${at}  STATUS   gateway ${e.gateway}, session ${e.session ?? '-'}`
      return `${at}  STATUS   terminal ${e.terminal} via ${e.gateway}: ${describeLatest(e.latest)}${e.duplicate ? ' (duplicate)' : ''}`
    case 'state':
      if (e.stale) return `${at}  STATE    ${e.gateway} death of old session ${e.session}: stale, ignored (still ${e.online ? 'online' : 'offline'})`
      return `${at}  STATE    ${e.gateway} ${e.online ? 'ONLINE' : 'OFFLINE'} (${e.kind}, session ${e.session})`
    case 'reply':
      return `${at}  REPLY    ${e.gateway} rejected command ${e.command ?? '(no id)'}: ${e.code} ${e.message}${e.suppressed > 0 ? ` (and ${e.suppressed} more reports held back before this one)` : ''}`
    case 'command-sent':
      return `${at}  SENT     ${e.kind} ${describeCommand(e.command)} -> ${e.topic}`
    case 'error':
      return `${at}  ERROR    ${e.code} ${e.message}${e.topic ? ` (on ${e.topic})` : ''}`
    case 'connection':
      if (e.kind === 'connected') return `${at}  BROKER   connected to ${e.broker}${e.sessionPresent ? ', session kept' : ', new session'}`
      if (e.kind === 'disconnected') return `${at}  BROKER   connection to ${e.broker} lost; reconnecting`
      return `${at}  BROKER   ${e.broker}: ${e.message ?? 'failed'}; retrying`
    default:
      return assertNever(e)
  }
}

/** [CONSOLE-10] A copy that is not a republication, for people: loud, with what differs. */
function conflictText(c: CopyConflict): string {
  return `CONFLICT: ${c.warning.toUpperCase()} (differs in ${c.differs.join(', ')}; ${c.versions} versions)`
}

/** One version of a case with a conflict, as a line under its row: what it says and when it came. */
function versionRow(v: CopyVersion, n: number): string {
  const e = v.event
  const time = `${e.time.estimated ? '~' : ''}${clockTime(e.time.at)}`
  return `       version ${n}: ${e.kind}${codeOf(e.code)} from ${e.terminal ?? '-'}${e.address === null ? '' : ` #${e.address}`} via ${v.gateway}, at ${time}, first came ${clockTime(v.firstReceivedAt)}, ${v.copies} cop${v.copies === 1 ? 'y' : 'ies'}${e.text ? `: ${e.text}` : ''}`
}

const RESET_REASONS: Readonly<Record<TerminalReset['reason'], (r: TerminalReset) => string>> = {
  'boot-backwards': (r) => `its boot counter went back from ${r.previousBoot ?? '?'} to ${r.boot}`,
  'last-event-backwards': (r) => `its last event number went back from ${r.previousNumber} to ${r.lastEvent}`,
  'event-differs': () => 'an event differed from the one the gateway had under the same number',
}

/**
 * A terminal-reset for people: the terminal's event numbers restarted (its memory was
 * wiped, or a new unit carries the same printed id), so its events from now on have ids
 * `<terminal>@<epoch>:<number>`; earlier ids with the same numbers are other events.
 */
export function describeReset(terminal: string | null, reset: TerminalReset | null): string {
  const who = terminal ?? '(unknown)'
  if (reset === null) return `terminal ${who} restarted its event numbers: memory wiped or a new unit`
  const why = RESET_REASONS[reset.reason]?.(reset) ?? `reason ${reset.reason}`
  return `terminal ${who} restarted its event numbers (${why}): memory wiped or a new unit; new ids ${who}@${reset.epoch}:n`
}

/** What a trouble item says beyond its kind: a terminal-reset's explanation, a terminal-id-conflict's addresses. */
function troubleDetail(t: { kind: string | null; terminal: string | null; reset?: TerminalReset | null; conflict?: TroubleView['conflict'] }): string {
  if (t.kind === 'terminal-id-conflict' && t.conflict) {
    const c = t.conflict
    return `: terminal id ${c.terminal} is bound to address ${c.boundAddress}, and a second device claims it from address ${c.address}; its alarms come as ${c.as}, unverified`
  }
  return t.kind === 'terminal-reset' ? `: ${describeReset(t.terminal, t.reset ?? null)}` : ''
}

function describeLatest(latest: Record<string, unknown> | undefined): string {
  if (latest === undefined) return ''
  const parts = [`mains ${latest.mains === false ? 'OFF' : 'on'}`]
  if (typeof latest.battery === 'number') parts.push(`battery ${latest.battery}%`)
  if (typeof latest.signal === 'number') parts.push(`signal ${latest.signal} dBm`)
  if (typeof latest.temperature === 'number') parts.push(`${latest.temperature} °C`)
  return parts.join(', ')
}

function describeCommand(c: Command): string {
  switch (c.type) {
    case 'receipt':
      return c.ids.join(', ')
    case 'acknowledged':
      return `${c.alert} by "${c.by}"${c.text ? `: ${c.text}` : ''}`
    case 'dispatched':
      return `${c.alert}: ${c.unit}${c.eta === undefined ? '' : `, eta ${c.eta} min`}`
    case 'resolved':
      return `${c.alert}${c.text ? `: ${c.text}` : ''}`
    case 'broadcast':
      return `#${c.broadcast} ${c.urgency}: ${c.text}`
    case 'broadcast-withdraw':
      return `#${c.broadcast}`
    case 'time':
      return `${new Date(c.now).toISOString()}${c.session === undefined ? '' : ` for session ${c.session}`}`
    default:
      return c.id
  }
}

export interface ViewOptions {
  now: number
  /** Characters per line; longer lines are cut. Default 100. */
  width?: number
  /** The case (alarm or request) the operator selected (keys d and r act on it). */
  selected?: string | null
  /** Bold, inverse and red for a terminal; false for plain text. Default false. */
  ansi?: boolean
  /** Lines under the lists: the operator's notes, the key help, a prompt. */
  footer?: string[]
  /** Header line. */
  title?: string
  /** Rows of each list at most. Default 8. */
  rows?: number
}

/** The console's screen, as lines: gateways, terminals, open alarms and open requests with age and stage, broadcasts and their readers, recent trouble, errors. Safe to print [CONSOLE-9]. */
export function renderView(s: ConsoleSnapshot, o: ViewOptions): string[] {
  const width = o.width ?? 100
  const rows = o.rows ?? 8
  const ansi = o.ansi ?? false
  /** Each line as plain text with its emphasis; made safe, cut and coloured in one place at the end. */
  const lines: [Emphasis, string][] = []
  const push = (text: string, emphasis: Emphasis = 'plain') => void lines.push([emphasis, text])
  const more = (total: number, shown: number) => {
    if (total > shown) push(`  ... and ${total - shown} more`)
  }
  const online = s.gateways.filter((g) => g.online).length
  if (o.title !== undefined) push(o.title, 'bold')
  push(`Gateways: ${online} online, ${s.gateways.length - online} offline`, 'bold')
  for (const g of s.gateways.slice(0, rows)) {
    push(
      `  ${g.online ? 'online ' : 'OFFLINE'}  ${g.gateway.padEnd(16)} session ${g.session ?? '-'}${g.area ? `, area ${g.area}` : ''}, ${g.online ? 'up' : 'down'} for ${duration(o.now - g.since)}, last heard ${duration(o.now - g.lastHeard)} ago`,
      g.online ? 'plain' : 'alarm',
    )
  }
  more(s.gateways.length, rows)
  const lost = s.terminals.filter((t) => t.lost).length
  push(`Terminals: ${s.terminals.length}${lost > 0 ? `, ${lost} lost` : ''}`, 'bold')
  for (const t of s.terminals.slice(0, rows)) {
    const power = [t.mains === false ? 'mains OFF' : t.mains === true ? 'mains on' : null, t.battery === null ? null : `battery ${t.battery}%`].filter((x) => x !== null).join(', ')
    push(
      `  ${t.terminal.padEnd(16)} via ${t.gateway}${t.address === null ? '' : ` #${t.address}`}, ${t.lost ? 'LOST' : `last ${t.lastKind}`} ${duration(o.now - t.lastHeard)} ago${power ? `, ${power}` : ''}`,
      t.lost ? 'alarm' : 'plain',
    )
  }
  more(s.terminals.length, rows)
  push(`Open alarms: ${s.openAlarms.length}`, 'bold')
  // At least nine, so that each of the keys 1-9 selects one that is on the screen.
  const alarmRows = Math.max(rows, 9)
  s.openAlarms.slice(0, alarmRows).forEach((a, i) => {
    const waiting = canTake(a.stage, 'acknowledge')
    push(caseRow(a, i + 1, o), a.id === o.selected ? 'selected' : waiting ? 'alarm' : 'plain')
    for (const [j, v] of (a.conflict?.versions ?? []).entries()) push(versionRow(v, j + 1), 'alarm')
  })
  more(s.openAlarms.length, alarmRows)
  // Not emergencies: below the alarms, never red, numbered on after them (openCases).
  push(`Open requests: ${s.openRequests.length}`, 'bold')
  s.openRequests.slice(0, rows).forEach((a, i) => {
    push(caseRow(a, s.openAlarms.length + i + 1, o), a.id === o.selected ? 'selected' : a.conflict ? 'alarm' : 'plain')
    for (const [j, v] of (a.conflict?.versions ?? []).entries()) push(versionRow(v, j + 1), 'alarm')
  })
  more(s.openRequests.length, rows)
  if (s.broadcasts.length > 0) {
    push(`Broadcasts: ${s.broadcasts.length}`, 'bold')
    for (const b of s.broadcasts.slice(0, Math.min(rows, 5))) push(`  ${broadcastRow(b)}`)
    more(s.broadcasts.length, Math.min(rows, 5))
  }
  push('Recent trouble', 'bold')
  if (s.trouble.length === 0) push('  none')
  for (const t of s.trouble.slice(0, Math.min(rows, 5))) {
    push(`  ${clockTime(t.receivedAt)}  ${t.gateway}  ${t.terminal ?? '-'}  ${t.kind}${codeOf(t.code)}${troubleDetail(t)}`)
  }
  if (s.errors.length > 0) {
    push(`Errors: ${s.counters.errors}`, 'bold')
    for (const e of s.errors.slice(-3)) push(`  ${eventLine(e)}`)
  }
  for (const f of o.footer ?? []) push(f)
  const cut = (t: string) => (t.length > width ? `${t.slice(0, width - 1)}…` : t)
  return lines.map(([emphasis, text]) => emphasize(cut(screenText(text)), emphasis, ansi))
}

/** One open case as a row of the view, `n` its number in openCases. */
function caseRow(a: CaseView, n: number, o: ViewOptions): string {
  const age = a.time.estimated ? `~${duration(o.now - a.firstReceivedAt)}` : duration(o.now - a.time.at)
  const answer = a.stage === 'dispatched' && a.unit ? ` (${a.unit}${a.eta === null ? '' : `, eta ${a.eta} min`})` : ''
  const phone = a.gatewayStage === 'unconfirmed' && a.stage === 'stored' ? ', UNCONFIRMED: expect a phone call' : ''
  const copies = a.copies > 1 ? `, ${a.copies} copies` : ''
  const cancel = `${a.cancels === null ? '' : `, cancels ${a.cancels}`}${a.cancelledBy === null ? '' : `, CANCELLED by the terminal (${a.cancelledBy}): close it`}`
  const claims = a.claims === null ? '' : `, UNVERIFIED (claims ${a.claims}'s id)`
  // A request's text is its message (a relay's, for a neighbour): the operator needs it to answer;
  // so is a relayed alarm's, with who relayed it and for whom. [MQTT-4.16]
  const text = (a.class === 'request' || a.relay !== null) && a.text ? `: ${a.text}` : ''
  const conflict = a.conflict === null ? '' : `, CONFLICT: ${a.conflict.warning.toUpperCase()} (differs in ${a.conflict.differs.join(', ')})`
  const relay = a.relay === null ? '' : `, ${relayText(a.relay)}`
  const mark = a.id === o.selected ? '>' : ' '
  return `${mark} ${n}. ${a.id.padEnd(14)} ${a.kind.padEnd(9)} ${(a.terminal ?? '-').padEnd(10)} via ${a.gateway}  age ${age}  ${a.stage.toUpperCase()}${conflict}${answer}${copies}${phone}${claims}${cancel}${relay}${text}`
}

/** Who relayed it and for whom: `RELAYED medical for 巴图家 (tel 139..., at 3号井) by 巴特尔家 (其其格)`. [MQTT-4.16] */
export function relayText(r: RelayView): string {
  const about = [r.phone === null ? null : `tel ${r.phone}`, r.where === null ? null : `at ${r.where}`].filter((x) => x !== null).join(', ')
  const by = [r.household ?? 'a center household', r.member === null ? null : `(${r.member})`].filter((x) => x !== null).join(' ')
  return `RELAYED ${r.what} for ${r.for}${about ? ` (${about})` : ''} by ${by}`
}

/** A broadcast and its readers: `#9001 urgent to all, sent 10:00:00: "Blizzard…": read on 3 terminals (gw-1 2, gw-2 1)`. */
function broadcastRow(b: BroadcastView): string {
  const short = (t: string) => (t.length > 40 ? `${t.slice(0, 39)}…` : t)
  const what =
    b.sent === null
      ? 'not sent by this console'
      : `${b.sent.urgency} to ${b.sent.to}, sent ${clockTime(b.sent.at)}${b.sent.times > 1 ? ` (text replaced ${b.sent.times - 1}x)` : ''}: "${short(b.sent.text)}"`
  const read = b.terminals === 0 ? 'not read yet' : `read on ${b.terminals} terminal${b.terminals === 1 ? '' : 's'} (${b.gateways.map((g) => `${g.gateway} ${g.terminals}`).join(', ')})`
  const latest = b.latestRevision !== null && b.latestRevision > 0 ? `, ${b.terminalsOfLatest} of them the latest text (revision ${b.latestRevision})` : ''
  // Which gateways got it, read it at the household and passed it on, to how many households. [MQTT-4.16]
  const got = b.gotBy === 0 ? '' : `; got by ${b.gotBy} gateway${b.gotBy === 1 ? '' : 's'}`
  const households = b.gateways.filter((g) => g.householdRead).map((g) => g.gateway)
  const householdRead = households.length === 0 ? '' : `; read by the household at ${households.join(', ')}`
  const passers = b.gateways.filter((g) => g.passedOn !== null)
  const passed = passers.length === 0 ? '' : `; passed on to ${b.passedOn} households (${passers.map((g) => `${g.gateway} ${g.passedOn}`).join(', ')})`
  return `#${b.broadcast} ${what}: ${read}${latest}${got}${householdRead}${passed}`
}

type Emphasis = 'plain' | 'bold' | 'alarm' | 'selected'

/** Bold, red or inverse on a terminal (our own sequences, added after screenText); nothing without ANSI. */
function emphasize(text: string, emphasis: Emphasis, ansi: boolean): string {
  if (!ansi) return text
  switch (emphasis) {
    case 'plain':
      return text
    case 'bold':
      return `\x1b[1m${text}\x1b[22m`
    case 'alarm':
      return `\x1b[31m${text}\x1b[39m`
    case 'selected':
      return `\x1b[7m${text}\x1b[27m`
    default:
      return assertNever(emphasis)
  }
}
