/**
 * The live parts of the pages, made from a snapshot: the status sentence, the gateway's
 * status, the open alerts with their stage timelines, one alert, the inbox. The page
 * renders them once (pages.ts) and the live updates send the same functions' output again
 * on every change (live.ts), so what the page shows and what updates it never drift.
 *
 * Every element a browser test needs carries a stable `data-test` attribute.
 */

import { PROGRESS } from '../../../protocol/lifecycle.js'
import type { AlertView, BroadcastView, HouseholdSnapshot, Lang, TerminalView } from '../model.js'
import { type Html, html } from './html.js'
import { isKey, t, type StringKey } from './strings.js'

export interface ViewContext {
  snap: HouseholdSnapshot
  lang: Lang
  /** The session's CSRF token, for the forms inside a region (the inbox). */
  csrf: string
}

/** A time of the gateway's clock as the member reads it: month-day hours:minutes:seconds, the board's local time. */
export function when(ms: number | null | undefined, lang: Lang): string {
  if (ms === null || ms === undefined) return t(lang, 'never')
  const d = new Date(ms)
  const p = (n: number) => String(n).padStart(2, '0')
  return `${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`
}

/**
 * The string `key` with its `{t}` a time (`when`) in a <time>, which the style sheet keeps
 * on one line: a phone's narrow screen would otherwise break "12-04" after its hyphen.
 */
function saidAt(lang: Lang, key: StringKey, ms: number | null | undefined, vars: Record<string, string | number> = {}): Html {
  const mark = '\u0000'
  const [before, after] = t(lang, key, { ...vars, t: mark }).split(mark)
  return html`${before}<time>${when(ms, lang)}</time>${after ?? ''}`
}

function megabytes(bytes: number): string {
  return `${(bytes / 1048576).toFixed(bytes < 10 * 1048576 ? 1 : 0)} MB`
}

// ---------------------------------------------------------------------------------------
// The status sentence

export function verdictRegion({ snap, lang }: ViewContext): Html {
  return html`<p class="verdict verdict-${snap.verdict}" data-test="status-sentence" data-verdict="${snap.verdict}">${t(lang, `verdict.${snap.verdict}`)}</p>${
    snap.reasons.length > 0 ? html`<ul class="reasons" data-test="status-reasons">${snap.reasons.map((r) => html`<li data-reason="${r}">${t(lang, `reason.${r}`)}</li>`)}</ul>` : ''
  }`
}

// ---------------------------------------------------------------------------------------
// The gateway's status

function terminalItem(term: TerminalView, lang: Lang): Html {
  const state = term.lost ? 'lost' : term.answering ? 'answering' : 'notAnswering'
  const facts = [
    term.battery !== null ? t(lang, 'terminal.battery', { n: term.battery }) : null,
    term.mains !== null ? t(lang, term.mains ? 'terminal.mains.on' : 'terminal.mains.off') : null,
    term.signal !== null ? t(lang, 'terminal.signal', { n: term.signal }) : null,
    saidAt(lang, 'terminal.lastHeard', term.lastHeard),
  ]
    .filter((f): f is string | Html => f !== null)
    .map((f, i) => (i === 0 ? f : html` · ${f}`))
  return html`<li class="terminal terminal-${state}" data-test="terminal" data-terminal="${term.terminal}" data-state="${state}"><b>${term.terminal}</b> <span class="badge">${t(lang, `terminal.${state}`)}</span><br><small>${facts}</small></li>`
}

export function statusRegion({ snap, lang }: ViewContext): Html {
  const u = snap.uplink
  const backlog = (['alarm', 'request', 'trouble', 'status'] as const).map((k) => `${t(lang, `backlog.${k}`)} ${snap.backlog[k]}`).join(' · ')
  const disk =
    snap.disk.freeBytes === null
      ? t(lang, 'unknown')
      : `${t(lang, 'disk.free', { free: megabytes(snap.disk.freeBytes), reserve: megabytes(snap.disk.reserveBytes) })}${snap.disk.low ? ` (${t(lang, 'disk.low')})` : ''}`
  return html`<h2>${t(lang, 'status.title')}</h2>
<dl class="facts">
<dt>${t(lang, 'uplink.title')}</dt><dd data-test="uplink" data-online="${String(u.online)}"><span class="badge ${u.online ? 'good' : 'bad'}">${t(lang, u.online ? 'uplink.online' : 'uplink.offline')}</span> ${u.since !== null ? saidAt(lang, 'uplink.since', u.since) : ''}<br><small>${saidAt(lang, 'uplink.lastContact', u.lastContact)} · ${u.broker}</small></dd>
<dt>${t(lang, 'terminals.title')}</dt><dd>${snap.terminals.length === 0 ? html`<p data-test="terminals-none">${t(lang, 'terminals.none')}</p>` : html`<ul class="terminals" data-test="terminals">${snap.terminals.map((x) => terminalItem(x, lang))}</ul>`}</dd>
<dt>${t(lang, 'backlog.title')}</dt><dd data-test="backlog">${backlog}</dd>
<dt>${t(lang, 'disk.title')}</dt><dd data-test="disk" data-low="${String(snap.disk.low)}">${disk}</dd>
<dt>${t(lang, 'clock.title')}</dt><dd data-test="clock" data-synchronised="${String(snap.clock.synchronised)}">${t(lang, snap.clock.synchronised ? 'clock.set' : 'clock.estimated')} · <time>${when(snap.now, lang)}</time></dd>
<dt>${t(lang, 'gateway.title')}</dt><dd data-test="gateway">${snap.gateway}${snap.household ? ` · ${snap.household}` : ''}</dd>
<dt>${t(lang, 'version.title')}</dt><dd data-test="version">${snap.version}</dd>
</dl>`
}

// ---------------------------------------------------------------------------------------
// Alerts and their stages

function kindLabel(a: AlertView, lang: Lang): string {
  const key = a.relay ? `what.${a.relay.what}` : `kind.${a.kind}`
  return isKey(key) ? t(lang, key) : a.kind
}

function stageLabel(stage: string, lang: Lang): string {
  const key = `stage.${stage}`
  return isKey(key) ? t(lang, key as StringKey) : stage
}

/** The timeline: every stage reached (with time, text and ETA), then the stages still to come, greyed. */
export function timeline(a: AlertView, lang: Lang): Html {
  const reached = new Set(a.stages.map((s) => s.stage))
  const lastRank = Math.max(-1, ...a.stages.map((s) => PROGRESS.indexOf(s.stage as (typeof PROGRESS)[number])))
  // A request is answered, never dispatched: its timeline does not promise a unit.
  const todo = PROGRESS.filter((s, i) => i > lastRank && !reached.has(s) && !(a.cls === 'request' && s === 'dispatched'))
  return html`<ol class="timeline" data-test="alert-stages">${a.stages.map(
    (s) =>
      html`<li class="done stage-${s.stage}" data-test="stage" data-stage="${s.stage}"><span class="stage">${stageLabel(s.stage, lang)}</span> <time>${when(s.at, lang)}</time>${
        s.text ? html` <q data-test="stage-text">${s.text}</q>` : ''
      }${s.eta !== undefined ? html` <span data-test="stage-eta">${saidAt(lang, 'alert.eta', s.eta)}</span>` : ''}</li>`,
  )}${todo.map((s) => html`<li class="todo" data-stage="${s}">${stageLabel(s, lang)}</li>`)}</ol>`
}

export function alertItem(a: AlertView, lang: Lang, link: boolean): Html {
  const head = html`<b>${kindLabel(a, lang)}</b> <span class="badge stage-${a.stage}" data-test="alert-stage">${stageLabel(a.stage, lang)}</span>`
  const relay = a.relay
  const who = relay
    ? [
        t(lang, 'alert.forHousehold', { name: relay.forName }),
        relay.forPhone ? t(lang, 'alert.phone', { p: relay.forPhone }) : null,
        relay.where ? t(lang, 'alert.where', { w: relay.where }) : null,
        relay.by ? t(lang, 'alert.by', { b: relay.by }) : null,
      ].filter((x): x is string => x !== null)
    : [t(lang, 'alert.fromTerminal', { t: a.terminal ?? '?' })]
  return html`<li class="alert alert-${a.cls}" data-test="alert" data-alert-id="${a.id}" data-stage="${a.stage}">
${link ? html`<a href="/alerts/${encodeURIComponent(a.id)}">${head}</a>` : head} <small>${t(lang, a.cls === 'alarm' ? 'alert.alarm' : 'alert.request')} · ${a.id}</small>
<p class="who">${who.join(' · ')}</p>${a.text ? html`<p class="text" data-test="alert-text">${a.text}</p>` : ''}${
    a.stage === 'unconfirmed' ? html`<p class="call110" data-test="alert-call110">${t(lang, 'alert.call110')}</p>` : ''
  }
${timeline(a, lang)}</li>`
}

export function alertsRegion({ snap, lang }: ViewContext): Html {
  return html`<h2>${t(lang, 'alerts.title')}</h2>${
    snap.alerts.length === 0 ? html`<p data-test="alerts-none">${t(lang, 'alerts.none')}</p>` : html`<ul class="alerts" data-test="alerts">${snap.alerts.map((a) => alertItem(a, lang, true))}</ul>`
  }`
}

export function alertRegion(ctx: ViewContext, id: string): Html {
  const a = ctx.snap.alerts.find((x) => x.id === id)
  return a ? html`<ul class="alerts">${alertItem(a, ctx.lang, false)}</ul>` : html`<p class="error" data-test="alert-not-found">${t(ctx.lang, 'alert.notFound')}</p>`
}

// ---------------------------------------------------------------------------------------
// The inbox

/** A problem to show at one broadcast's passed-on form, with what was typed. */
export interface InboxProblem {
  broadcast: number
  households: string
  message: StringKey
}

function urgencyLabel(u: string, lang: Lang): string {
  const key = `urgency.${u}`
  return isKey(key) ? t(lang, key) : u
}

function inboxItem(b: BroadcastView, { lang, csrf }: ViewContext, problem: InboxProblem | null): Html {
  const mine = problem?.broadcast === b.id ? problem : null
  return html`<li class="broadcast urgency-${b.urgency}" data-test="inbox-item" data-broadcast="${b.id}" data-revision="${b.revision}" data-read="${String(b.readAt !== null)}">
<p><span class="badge urgency" data-test="inbox-urgency">${urgencyLabel(b.urgency, lang)}</span> <time data-test="inbox-time">${when(b.receivedAt, lang)}</time>${
    b.expires !== null ? html` <small>${saidAt(lang, 'inbox.expires', b.expires)}</small>` : ''
  }</p>
<p class="text" data-test="inbox-text">${b.text}</p>
${
  b.readAt !== null
    ? html`<p data-test="inbox-read-at">${saidAt(lang, 'inbox.readAt', b.readAt)}</p>`
    : html`<form method="post" action="/inbox/${b.id}/read"><input type="hidden" name="csrf" value="${csrf}"><input type="hidden" name="revision" value="${b.revision}"><button data-test="inbox-read">${t(lang, 'inbox.read')}</button></form>`
}
${
  b.passedOn !== null ? html`<p data-test="inbox-passed-on-done">${saidAt(lang, 'inbox.passedOnDone', b.passedOn.at, { n: b.passedOn.households })}</p>` : ''
}<form method="post" action="/inbox/${b.id}/passed-on" class="inline"><input type="hidden" name="csrf" value="${csrf}"><input type="hidden" name="revision" value="${b.revision}"><label>${t(lang, 'inbox.passedOn')} <input name="households" inputmode="numeric" size="4" value="${mine?.households ?? ''}" data-test="inbox-households"></label> <button data-test="inbox-passed-on">${t(lang, 'inbox.passedOnSubmit')}</button>${
    mine ? html`<p class="error" data-test="error-households">${t(lang, mine.message)}</p>` : ''
  }</form></li>`
}

export function inboxRegion(ctx: ViewContext, problem: InboxProblem | null = null): Html {
  return html`<h2>${t(ctx.lang, 'inbox.title')}</h2>${
    ctx.snap.inbox.length === 0
      ? html`<p data-test="inbox-none">${t(ctx.lang, 'inbox.none')}</p>`
      : html`<ul class="inbox" data-test="inbox">${ctx.snap.inbox.map((b) => inboxItem(b, ctx, problem))}</ul>`
  }`
}

// ---------------------------------------------------------------------------------------
// Which live regions each page has

export type LiveView = { view: 'home' } | { view: 'alert'; id: string } | { view: 'relay' } | { view: 'inbox' }

/** The regions of a page as name to markup, the page's and each live update's. */
export function regionsOf(v: LiveView, ctx: ViewContext): Record<string, Html> {
  switch (v.view) {
    case 'home':
      return { verdict: verdictRegion(ctx), status: statusRegion(ctx), alerts: alertsRegion(ctx) }
    case 'alert':
      return { verdict: verdictRegion(ctx), alert: alertRegion(ctx, v.id) }
    case 'relay':
      return { verdict: verdictRegion(ctx) }
    case 'inbox':
      return { verdict: verdictRegion(ctx), inbox: inboxRegion(ctx) }
  }
}

/** The query of /events that asks for the regions of `v`. */
export function eventsUrl(v: LiveView): string {
  return v.view === 'alert' ? `/events?view=alert&id=${encodeURIComponent(v.id)}` : `/events?view=${v.view}`
}

/** The LiveView a /events query asks for, or null. */
export function liveViewOf(query: URLSearchParams): LiveView | null {
  const view = query.get('view')
  if (view === 'home' || view === 'relay' || view === 'inbox') return { view }
  const id = query.get('id')
  if (view === 'alert' && id !== null && id.length <= 256) return { view, id }
  return null
}
