/**
 * What the terminal's box shows, as text: its LEDs, its buzzer, its display and the state
 * of its link, derived from the recommended indications of PROTOCOL.md [LINK-5.7]. A pure
 * function of the terminal's state and the time, so that the simulator can draw it and a
 * test can check it line by line.
 *
 * Rules (from [LINK-5.7] and [LINK-8.2]):
 * 1. The LEDs and the display follow the most recent alarm (a call-back request only when
 *    no alarm is showing); a resolved alert returns to idle after RESOLVED_IDLE_MS.
 * 2. `unconfirmed` always shows, for any alarm: red LED steady, a repeating beep until a
 *    key is pressed, and "Not confirmed: call 110 by phone".
 * 3. A buzzer pattern (two beeps, ...) plays once when its stage is shown; the view shows it
 *    for BEEP_SHOWN_MS after that.
 * 4. `saved` and `delivered` are the terminal's own states (never on the wire): `saved`
 *    reads "sending" once the session is open, `delivered` looks like `stored`.
 */

import type { EventKind } from '../protocol/messages.js'
import { ALARM_KINDS, type AlertState, type DisplayText, type ShownStage } from './terminal.js'

export type Led = 'off' | 'fast blink' | 'slow blink' | 'steady'
export type Buzzer = 'silent' | 'one short beep' | 'two beeps' | 'three beeps' | 'one long beep' | 'repeating beep'

export interface Indication {
  red: Led
  amber: Led
  green: Led
  buzzer: Buzzer
  /** The display's text, one entry a line. */
  display: string[]
}

/** The state the view is drawn from; the simulator collects it from TerminalDevice and its port. */
export interface TerminalViewState {
  terminal: string
  address: number
  boot: number
  /** The serial port: open, or closed (cable pulled, device gone; it is reopened). */
  port: 'open' | 'closed'
  /** The link session with the gateway [LINK-7.1]. */
  session: 'open' | 'syncing' | 'closed'
  /** False once the gateway stopped answering [LINK-6.1]. */
  gatewayUp: boolean
  gateway: string | null
  /** Events in NV memory not yet acknowledged by the gateway. */
  pending: number
  alerts: readonly AlertState[]
  /** Broadcast texts not yet read. */
  displays: readonly DisplayText[]
  /** When a key was last pressed, ms (same clock as `now`): it silences a repeating beep. */
  lastKeyAt: number | null
}

/** How long a one-shot buzzer pattern is shown after its stage, ms. */
export const BEEP_SHOWN_MS = 3_000
/** A resolved alert leaves the LEDs and the display after this long, ms ("about 1 min"). */
export const RESOLVED_IDLE_MS = 60_000

const OFF = { red: 'off', amber: 'off', green: 'off' } as const

/** [LINK-5.7] LEDs and buzzer for each stage; `saved` and `delivered` are local states. */
const STAGE_LOOK: Record<ShownStage, { red: Led; amber: Led; green: Led; buzzer: Buzzer }> = {
  saved: { ...OFF, red: 'fast blink', buzzer: 'one short beep' },
  delivered: { ...OFF, amber: 'slow blink', buzzer: 'two beeps' },
  stored: { ...OFF, amber: 'slow blink', buzzer: 'two beeps' },
  sent: { ...OFF, amber: 'steady', buzzer: 'silent' },
  received: { ...OFF, green: 'slow blink', buzzer: 'three beeps' },
  acknowledged: { ...OFF, green: 'steady', buzzer: 'three beeps' },
  dispatched: { ...OFF, green: 'steady', buzzer: 'one long beep' },
  resolved: { ...OFF, green: 'steady', buzzer: 'one long beep' },
  unconfirmed: { ...OFF, red: 'steady', buzzer: 'repeating beep' },
}

export const UNCONFIRMED_TEXT = 'Not confirmed: call 110 by phone'

function isAlarm(kind: EventKind | null): boolean {
  // An event known only from an INDICATE (sent again after a restart) may be an alarm.
  return kind === null || ALARM_KINDS.has(kind)
}

/** [LINK-5.7] The recommended display text of an alert's stage. */
export function displayText(alert: AlertState, now: number, sending: boolean): string[] {
  const request = alert.kind === 'callback'
  const what = alert.kind === 'cancel' ? 'cancel' : 'alarm'
  switch (alert.stage) {
    case 'saved':
      if (request) return [sending ? 'Sending call-back request…' : 'Call-back request saved – sending']
      return [sending ? 'Sending to centre household…' : 'Alarm saved – sending']
    case 'delivered':
    case 'stored':
      return [request ? 'Call-back request received' : 'Received by centre household']
    case 'sent':
      return [request ? 'Call-back request sent to 110' : 'Sent to 110, waiting for confirmation']
    case 'received':
      return [`110 has your ${request ? 'call-back request' : what}`]
    case 'acknowledged':
      return [alert.text ? `110 operator: ${alert.text}` : '110 operator:']
    case 'dispatched': {
      const lines = [alert.text ? `Help on the way: ${alert.text}` : 'Help on the way']
      // eta counts from the moment the INDICATE arrived.
      if (alert.eta !== undefined) lines.push(`about ${Math.max(0, Math.round(alert.eta - (now - alert.at) / 60_000))} min`)
      return lines
    }
    case 'resolved':
      return [alert.text ? `Closed: ${alert.text}` : 'Closed']
    case 'unconfirmed':
      return [UNCONFIRMED_TEXT]
  }
}

/** The alert the LEDs and display follow (rule 1), or undefined when the box is idle. */
export function shownAlert(alerts: readonly AlertState[], now: number): AlertState | undefined {
  const live = alerts.filter((a) => !(a.stage === 'resolved' && now - a.at >= RESOLVED_IDLE_MS))
  const latest = (list: AlertState[]) => list.reduce<AlertState | undefined>((best, a) => (best === undefined || a.event > best.event ? a : best), undefined)
  return latest(live.filter((a) => isAlarm(a.kind))) ?? latest(live)
}

/** LEDs, buzzer and display for the whole box (rules 1 to 3). */
export function indication(state: TerminalViewState, now: number): Indication {
  const silenced = (since: number) => state.lastKeyAt !== null && state.lastKeyAt >= since
  const oneShot = (pattern: Buzzer, since: number): Buzzer => (pattern === 'repeating beep' ? (silenced(since) ? 'silent' : pattern) : now - since < BEEP_SHOWN_MS ? pattern : 'silent')
  const alert = shownAlert(state.alerts, now)
  const out: Indication = { ...OFF, buzzer: 'silent', display: [] }
  if (alert) {
    const look = STAGE_LOOK[alert.stage]
    Object.assign(out, { red: look.red, amber: look.amber, green: look.green, buzzer: oneShot(look.buzzer, alert.at) })
    out.display.push(...displayText(alert, now, state.session === 'open' && state.port === 'open'))
  }
  // Rule 2: another alarm that is not confirmed is not hidden by a newer one.
  for (const a of state.alerts) {
    if (a === alert || a.stage !== 'unconfirmed' || !isAlarm(a.kind)) continue
    out.red = 'steady'
    if (!silenced(a.at)) out.buzzer = 'repeating beep'
    out.display.push(`Alarm #${a.event}: ${UNCONFIRMED_TEXT}`)
  }
  for (const d of state.displays) {
    const pattern: Buzzer = d.urgency === 'urgent' ? 'repeating beep' : d.urgency === 'warning' ? 'one short beep' : 'silent'
    if (out.buzzer === 'silent') out.buzzer = oneShot(pattern, d.at)
  }
  if (out.display.length === 0 && state.displays.length === 0) out.display.push('Ready')
  return out
}

function ago(ms: number): string {
  const s = Math.max(0, ms) / 1000
  return s < 60 ? `${s.toFixed(1)} s ago` : `${Math.floor(s / 60)} min ${Math.floor(s % 60)} s ago`
}

function linkLine(s: TerminalViewState): string {
  const memory = s.pending === 0 ? 'no events waiting in memory' : `${s.pending} event${s.pending === 1 ? '' : 's'} in memory not yet acknowledged`
  if (s.port === 'closed') return `serial port closed (cable unplugged?), reopening; ${memory}`
  if (!s.gatewayUp) return `gateway not answering, still trying; ${memory}`
  if (s.session !== 'open') return `saying HELLO to the gateway; ${memory}`
  return `open with gateway ${s.gateway ?? '?'}; ${memory}`
}

/** The box as lines of text: LEDs, buzzer, display, the alerts, unread messages, the link. */
export function terminalView(state: TerminalViewState, now: number): string[] {
  const ind = indication(state, now)
  const shown = shownAlert(state.alerts, now)
  const label = (s: string) => s.padEnd(9)
  const lines = [
    `Terminal ${state.terminal} (address ${state.address}, boot ${state.boot})`,
    `${label('LEDs')}red: ${ind.red}   amber: ${ind.amber}   green: ${ind.green}`,
    `${label('Buzzer')}${ind.buzzer}`,
    ...ind.display.map((l, i) => `${label(i === 0 ? 'Display' : '')}${l}`),
  ]
  for (const d of state.displays) {
    lines.push(`${label(ind.display.length === 0 && d === state.displays[0] ? 'Display' : '')}[${d.urgency}] ${d.text}${d.complete ? '' : ' (more parts to come)'}`)
  }
  const alerts = [...state.alerts].sort((a, b) => b.event - a.event)
  alerts.forEach((a, i) => {
    const extra = [a.text, a.eta !== undefined ? `eta ${a.eta} min` : undefined].filter((x) => x !== undefined).join(', ')
    lines.push(`${label(i === 0 ? 'Alerts' : '')}#${a.event} ${a.kind ?? 'event'}: ${a.stage}${extra ? ` (${extra})` : ''}, ${ago(now - a.at)}${a === shown ? '  <- shown' : ''}`)
  })
  state.displays.forEach((d, i) => {
    lines.push(`${label(i === 0 ? 'Messages' : '')}#${d.id} unread (press r when read)`)
  })
  lines.push(`${label('Link')}${linkLine(state)}`)
  return lines
}
