/**
 * Whole pages: the layout around the live regions of view.ts, the login, the relay form,
 * and the pages that say no. Server-rendered; every form is a plain POST that works
 * without JavaScript (app.js only keeps the live regions fresh). No inline script or
 * style: the Content-Security-Policy allows only files of this server.
 */

import { LANGS, RELAY_WHATS, type Lang } from '../model.js'
import { type Html, html } from './html.js'
import { RELAY_FIELDS, type FieldProblem, type RelayField, type RelayTyped } from './relay-form.js'
import { t, type StringKey } from './strings.js'
import { eventsUrl, type LiveView, regionsOf, type ViewContext } from './view.js'

export interface LayoutOptions {
  lang: Lang
  title: string
  /** The session's CSRF token (the log-out form); null on pages before login. */
  csrf: string | null
  /** The live regions' page, or null for a page without live updates. */
  live: LiveView | null
  /** Which navigation link is the current page. */
  current?: 'home' | 'relay' | 'inbox'
  /** The status sentence at the top (already rendered), or null on pages before login. */
  verdict?: Html | null
  body: Html
}

const other = (lang: Lang): Lang => LANGS.find((l) => l !== lang)!

export function layout(o: LayoutOptions): string {
  const { lang } = o
  const nav =
    o.csrf !== null
      ? html`<nav>${(['home', 'relay', 'inbox'] as const).map(
          (p) => html`<a href="${p === 'home' ? '/' : `/${p}`}" data-test="nav-${p}"${o.current === p ? html` class="current" aria-current="page"` : ''}>${t(lang, `nav.${p}`)}</a>`,
        )}<form method="post" action="/logout" class="inline"><input type="hidden" name="csrf" value="${o.csrf}"><button class="link" data-test="logout">${t(lang, 'nav.logout')}</button></form></nav>`
      : ''
  return html`<!doctype html>
<html lang="${lang}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>${o.title} · ${t(lang, 'app.title')}</title><link rel="stylesheet" href="/style.css"><script src="/app.js" defer></script></head>
<body${o.live ? html` data-events="${eventsUrl(o.live)}"` : ''}>
<header><a class="lang" href="?lang=${other(lang)}" data-test="lang-switch" hreflang="${other(lang)}">${t(lang, 'lang.other')}</a><h1>${t(lang, 'app.title')}</h1>${nav}</header>
${o.verdict ? html`<div data-live="verdict" class="top">${o.verdict}</div>` : ''}
<main>
${o.body}
</main>
<p class="live-off-note" data-test="live-off">${t(lang, 'live.off')}</p>
</body></html>
`.text
}

/**
 * A live region. `hold`: the server rendered it with a problem to fix (the inbox's count
 * refused, the number typed kept): app.js leaves it as it is until the next page, since a
 * live update would wipe the message and what was typed.
 */
function region(name: string, markup: Html, hold = false): Html {
  return html`<section data-live="${name}"${hold ? html` data-live-hold` : ''}>${markup}</section>`
}

/** A page made of the live regions of `live`, with a notice above them. */
export function livePage(ctx: ViewContext, live: LiveView, title: string, current: LayoutOptions['current'], notice: Html | null = null, override: Record<string, Html> = {}): string {
  const { verdict, ...rest } = { ...regionsOf(live, ctx), ...override }
  return layout({
    lang: ctx.lang,
    title,
    csrf: ctx.csrf,
    live,
    ...(current ? { current } : {}),
    verdict: verdict ?? null,
    body: html`${notice ?? ''}${Object.entries(rest).map(([name, markup]) => region(name, markup, Object.hasOwn(override, name)))}`,
  })
}

export function notice(kind: 'ok' | 'error', text: string, test: string): Html {
  return html`<p class="notice notice-${kind}" data-test="${test}" role="${kind === 'error' ? 'alert' : 'status'}">${text}</p>`
}

export function loginPage(lang: Lang, problem: string | null): string {
  return layout({
    lang,
    title: t(lang, 'login.title'),
    csrf: null,
    live: null,
    body: html`<h2>${t(lang, 'login.title')}</h2>${problem ? html`<p class="error" data-test="login-error" role="alert">${problem}</p>` : ''}
<form method="post" action="/login" data-test="login-form"><label>${t(lang, 'login.pin')} <input name="pin" type="password" inputmode="numeric" autocomplete="current-password" maxlength="12" required autofocus data-test="login-pin"></label>
<button class="primary" data-test="login-submit">${t(lang, 'login.submit')}</button></form><p><small>${t(lang, 'login.hint')}</small></p>`,
  })
}

const LABELS: Record<RelayField, StringKey> = {
  forName: 'relay.forName',
  forPhone: 'relay.forPhone',
  where: 'relay.where',
  what: 'relay.what',
  text: 'relay.text',
  by: 'relay.by',
}

export interface RelayFormState {
  typed: RelayTyped
  key: string
  problems: Partial<Record<RelayField, FieldProblem>>
  /** A notice above the form: what went wrong as a whole. */
  notice: Html | null
}

function field(f: RelayField, s: RelayFormState, lang: Lang): Html {
  const p = s.problems[f]
  const error = p ? html`<p class="error" data-test="error-${f}" id="error-${f}">${t(lang, p.key, p.vars)}</p>` : ''
  const attrs = html` name="${f}" id="f-${f}" data-test="relay-${f}"${p ? html` aria-invalid="true" aria-describedby="error-${f}"` : ''}`
  if (f === 'what') {
    return html`<fieldset class="what${p ? ' invalid' : ''}"><legend>${t(lang, LABELS[f])}</legend>${RELAY_WHATS.map(
      (w) => html`<label class="choice"><input type="radio" name="what" value="${w}" data-test="relay-what-${w}"${s.typed.what === w ? html` checked` : ''}> ${t(lang, `what.${w}`)}</label>`,
    )}${error}</fieldset>`
  }
  const input =
    f === 'text'
      ? html`<textarea${attrs} rows="4">${s.typed.text}</textarea>`
      : html`<input${attrs} value="${s.typed[f]}"${f === 'forPhone' ? html` type="tel" inputmode="tel"` : ''}${f === 'forName' ? html` required` : ''}>`
  return html`<p class="field${p ? ' invalid' : ''}"><label for="f-${f}">${t(lang, LABELS[f])}</label>${input}${error}</p>`
}

export function relayBody(s: RelayFormState, lang: Lang, csrf: string): Html {
  return html`<h2>${t(lang, 'relay.title')}</h2>${s.notice ?? ''}<p>${t(lang, 'relay.intro')}</p>
<form method="post" action="/relay" data-test="relay-form"><input type="hidden" name="csrf" value="${csrf}"><input type="hidden" name="key" value="${s.key}" data-test="relay-key">
${RELAY_FIELDS.map((f) => field(f, s, lang))}
<p><small>${t(lang, 'relay.alarmNote')}</small></p>
<button class="primary" data-test="relay-submit">${t(lang, 'relay.submit')}</button></form>`
}

/** A page that refuses: the reason, what was typed (so nothing is lost) and a way back. */
export function refusedPage(lang: Lang, title: StringKey, text: StringKey, typed: [string, string][], test: string): string {
  const shown = typed.filter(([, v]) => v.trim() !== '')
  return layout({
    lang,
    title: t(lang, title),
    csrf: null,
    live: null,
    body: html`<h2>${t(lang, title)}</h2><p class="error" data-test="${test}" role="alert">${t(lang, text)}</p>${
      shown.length > 0 ? html`<p>${t(lang, 'forbidden.typed')}</p><pre data-test="typed">${shown.map(([k, v]) => `${k}: ${v}\n`).join('')}</pre>` : ''
    }<p><a href="/" data-test="back">${t(lang, 'forbidden.back')}</a></p>`,
  })
}
