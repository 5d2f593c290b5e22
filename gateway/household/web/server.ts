/**
 * The household page and the local API, served by the gateway process on the household's
 * LAN (issue 13). Built on Node's own node:http, no framework: the board has no internet
 * to fetch updates from, the routes are a dozen, and every dependency is one more thing
 * that can break on an emergency box; node:http is maintained with Node itself.
 *
 * Routes (GET unless said; every page needs a session but /login and the two files):
 *   /login, POST /login, POST /logout       the PIN, a session cookie
 *   /                                       status at a glance and the open alerts
 *   /alerts/<id>                            one alert and its stages (where a relay lands)
 *   /relay, POST /relay                     relay for a neighbour
 *   /inbox, POST /inbox/<id>/read, POST /inbox/<id>/passed-on
 *   /events                                 server-sent events: the page's live regions
 *   /style.css, /app.js                     the two files (assets.ts)
 *   /api/...                                the local API of the command line (api.ts)
 *
 * The alarm path never depends on this: a port in use or a bad address is reported and
 * the gateway runs on without the page; an error in a handler is a 500 for that request.
 */

import { randomBytes } from 'node:crypto'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import { createRequire } from 'node:module'
import type { AddressInfo } from 'node:net'
import { realTimers, type Timers } from '../../../io/timers.js'
import type { Logger } from '../../log.js'
import { LANGS, type HouseholdService, type Lang } from '../model.js'
import { handleApi } from './api.js'
import { ASSETS } from './assets.js'
import { BodyError, cookies, readForm, redirect, SECURITY_HEADERS, sameOrigin, send, sendHtml } from './http-util.js'
import { LiveUpdates, sseMessage } from './live.js'
import { LoginLimit } from './login-limit.js'
import { livePage, loginPage, notice, refusedPage, relayBody, layout, type RelayFormState } from './pages.js'
import { formProblems, IDEMPOTENCY_KEY, RELAY_FIELDS, type FieldProblem, type RelayField, type RelayTyped, submitRelay, typedFrom } from './relay-form.js'
import { SESSION_COOKIE, Sessions, sameSecret, type Session } from './sessions.js'
import { isKey, t } from './strings.js'
import { type InboxProblem, inboxRegion, liveViewOf, regionsOf, type ViewContext, verdictRegion } from './view.js'

// node:http by require, not by import: Node.js 22's import of a built-in reads every one of
// its exports, and node:http's WebSocket getter loads undici, which compiles WebAssembly as
// it loads. Under --lite-mode (the service's flag: no WebAssembly) that killed the gateway
// at start, before it was ready. Node.js 24 loads it lazily. `npm run test:node -- 22` found it.
const { createServer } = createRequire(import.meta.url)('node:http') as typeof import('node:http')

export interface HouseholdServerOptions {
  household: HouseholdService
  /** IP address to listen on (household.listen). */
  listen: string
  /** TCP port (household.port); 0: a free one. */
  port: number
  /** The PIN that opens a session. */
  pin: string
  /** The local API's bearer token. */
  token: string
  log?: Logger | null
  /** The clock of sessions and the PIN rate limit (ms). Default Date.now. */
  now?: () => number
  /** The timers of the live updates. Default the real ones. */
  timers?: Timers
  /** ms without a request before a session ends. Default 12 h. */
  sessionIdleMs?: number
  /** ms of changes gathered into one live update. Default 50. */
  coalesceMs?: number
  /** ms between heartbeat comments on /events. Default 25,000. */
  heartbeatMs?: number
}

export interface HouseholdServer {
  /** http://address:port/ as a phone on the LAN types it (for 0.0.0.0, this board's loopback). */
  url: string
  address: string
  port: number
  /** Open /events streams. */
  readonly liveStreams: number
  /** Ends the live streams and every connection; resolves once the port is free. */
  close(): Promise<void>
}

export type StartResult = { ok: true; server: HouseholdServer } | { ok: false; code: string; message: string }

const LANG_COOKIE = 'lang'

export async function startHouseholdServer(o: HouseholdServerOptions): Promise<StartResult> {
  const now = o.now ?? Date.now
  const log = o.log ?? null
  const sessions = new Sessions({ now, ...(o.sessionIdleMs !== undefined ? { idleMs: o.sessionIdleMs } : {}) })
  const limit = new LoginLimit({ now })
  const live = new LiveUpdates({
    household: o.household,
    timers: o.timers ?? realTimers,
    ...(o.coalesceMs !== undefined ? { coalesceMs: o.coalesceMs } : {}),
    ...(o.heartbeatMs !== undefined ? { heartbeatMs: o.heartbeatMs } : {}),
  })
  const pages = new Pages(o, sessions, limit, live, log)

  const server: Server = createServer((req, res) => {
    pages.handle(req, res).catch((err: unknown) => {
      log?.error({ err, url: req.url }, 'household page: a request failed (the alarm path is not affected)')
      if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', 'internal error\n')
      else res.destroy()
    })
  })
  // A request must arrive whole within 30 s (a slowloris on the LAN holds no socket for long).
  server.requestTimeout = 30_000
  server.headersTimeout = 20_000
  server.maxConnections = 128
  server.on('clientError', (_err, socket) => socket.destroy())

  const listening = await new Promise<{ ok: true } | { ok: false; err: NodeJS.ErrnoException }>((resolve) => {
    const onError = (err: NodeJS.ErrnoException) => resolve({ ok: false, err })
    server.once('error', onError)
    server.listen({ host: o.listen, port: o.port }, () => {
      server.off('error', onError)
      resolve({ ok: true })
    })
  })
  if (!listening.ok) {
    live.close()
    server.close()
    return { ok: false, code: listening.err.code ?? 'LISTEN_FAILED', message: listenProblem(listening.err, o.listen, o.port) }
  }
  server.on('error', (err) => log?.error({ err }, 'household page: server error (the alarm path is not affected)'))
  const addr = server.address() as AddressInfo
  const shown = o.listen === '0.0.0.0' ? '127.0.0.1' : o.listen === '::' ? '::1' : o.listen
  const url = `http://${shown.includes(':') ? `[${shown}]` : shown}:${addr.port}/`
  return {
    ok: true,
    server: {
      url,
      address: addr.address,
      port: addr.port,
      get liveStreams() {
        return live.size
      },
      close: () =>
        new Promise<void>((resolve) => {
          live.close()
          server.close(() => resolve())
          server.closeAllConnections()
        }),
    },
  }
}

/** What went wrong at listen, and what to do, in a sentence for the log. */
export function listenProblem(err: NodeJS.ErrnoException, listen: string, port: number): string {
  const where = `${listen.includes(':') ? `[${listen}]` : listen}:${port}`
  const tail = 'The gateway runs on without the household page (alarms are not affected); fix it and restart the gateway.'
  switch (err.code) {
    case 'EADDRINUSE':
      return `household page: port ${port} on ${listen} is in use by another program (ss -ltnp 'sport = :${port}' shows which). Set household.port to a free port, or stop the other program. ${tail}`
    case 'EADDRNOTAVAIL':
      return `household page: ${listen} is not an address of this board (ip -br addr lists them). Set household.listen to the LAN interface's address, or 0.0.0.0. ${tail}`
    case 'EACCES':
      return `household page: not allowed to listen on ${where} (ports below 1024 need root). Set household.port to 1024 or above, e.g. 8080. ${tail}`
    default:
      return `household page: cannot listen on ${where}: ${err.message}. ${tail}`
  }
}

class Pages {
  constructor(
    readonly o: HouseholdServerOptions,
    readonly sessions: Sessions,
    readonly limit: LoginLimit,
    readonly live: LiveUpdates,
    readonly log: Logger | null,
  ) {}

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://gateway.local')
    const path = url.pathname
    const method = req.method ?? 'GET'
    if (path.startsWith('/api/')) return handleApi(req, res, path, { household: this.o.household, token: this.o.token, log: this.log })

    const jar = cookies(req)
    const setCookies: string[] = []
    const asked = url.searchParams.get('lang')
    let lang: Lang = (LANGS as readonly string[]).includes(jar.get(LANG_COOKIE) ?? '') ? (jar.get(LANG_COOKIE) as Lang) : 'zh-CN'
    if (asked !== null && (LANGS as readonly string[]).includes(asked)) {
      lang = asked as Lang
      setCookies.push(`${LANG_COOKIE}=${lang}; Path=/; SameSite=Strict; Max-Age=31536000`)
    }
    const headers = setCookies.length > 0 ? { 'Set-Cookie': setCookies } : {}

    const asset = method === 'GET' || method === 'HEAD' ? ASSETS[path] : undefined
    if (asset) {
      if (req.headers['if-none-match'] === asset.etag) {
        res.writeHead(304, { ...SECURITY_HEADERS, ETag: asset.etag, 'Cache-Control': 'no-cache' })
        return void res.end()
      }
      return send(res, 200, asset.type, asset.body, { ETag: asset.etag, 'Cache-Control': 'no-cache' })
    }

    // Browsers ask for it on every first visit; no icon, and no 404 in their console.
    if (path === '/favicon.ico') {
      res.writeHead(204, { ...SECURITY_HEADERS, 'Cache-Control': 'max-age=86400' })
      return void res.end()
    }
    if (path === '/login') {
      if (method === 'POST') return this.login(req, res, lang)
      if (this.session(jar)) return redirect(res, '/', headers)
      return sendHtml(res, 200, loginPage(lang, null), headers)
    }

    const session = this.session(jar)
    if (method === 'POST') {
      let form: URLSearchParams
      try {
        form = await readForm(req)
      } catch (e) {
        if (!(e instanceof BodyError)) throw e
        return sendHtml(res, 413, refusedPage(lang, 'badRequest.title', 'badRequest.text', [], 'bad-request'))
      }
      const typed = path === '/relay' ? RELAY_FIELDS.map((f): [string, string] => [t(lang, `relay.${f}`), shownAsTyped(f, form.get(f) ?? '', lang)]) : []
      if (!session) return sendHtml(res, 403, refusedPage(lang, 'forbidden.title', 'forbidden.session', typed, 'refused-session'))
      if (!sameOrigin(req) || !sameSecret(form.get('csrf') ?? '', session.csrf)) {
        this.log?.warn({ path, address: req.socket.remoteAddress }, 'household page: a POST without a valid CSRF token was refused')
        return sendHtml(res, 403, refusedPage(lang, 'forbidden.title', 'forbidden.csrf', typed, 'refused-csrf'))
      }
      return this.post(res, path, form, session, lang)
    }
    if (method !== 'GET' && method !== 'HEAD') return send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n', { Allow: 'GET, POST' })
    if (!session) {
      if (path === '/events') return send(res, 401, 'text/plain; charset=utf-8', 'log in first\n')
      return redirect(res, '/login', headers)
    }
    // The cookie's own lifetime starts again with each page, as the session's idle time does.
    if (path !== '/events') setCookies.push(this.sessionCookie(session))
    return this.get(req, res, url, session, lang, { 'Set-Cookie': setCookies })
  }

  /** HttpOnly: no script reads it; SameSite=Strict: no other site's page sends it. No Secure flag: the page is plain HTTP on the household's LAN. */
  sessionCookie(session: Session): string {
    return `${SESSION_COOKIE}=${session.id}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${Math.round(this.sessions.idleMs / 1000)}`
  }

  session(jar: Map<string, string>): Session | null {
    return this.sessions.get(jar.get(SESSION_COOKIE))
  }

  ctx(session: Session, lang: Lang): ViewContext {
    return { snap: this.o.household.snapshot(), lang, csrf: session.csrf }
  }

  flash(session: Session, lang: Lang) {
    const f = session.flash
    session.flash = null
    return f ? notice(f.kind, t(lang, f.key, f.vars), f.test) : null
  }

  async login(req: IncomingMessage, res: ServerResponse, lang: Lang): Promise<void> {
    const address = req.socket.remoteAddress ?? 'unknown'
    let form: URLSearchParams
    try {
      form = await readForm(req)
    } catch (e) {
      if (!(e instanceof BodyError)) throw e
      return sendHtml(res, 413, loginPage(lang, t(lang, 'badRequest.text')))
    }
    if (!sameOrigin(req)) return sendHtml(res, 403, refusedPage(lang, 'forbidden.title', 'forbidden.csrf', [], 'refused-csrf'))
    const check = this.limit.check(address)
    if (!check.allowed) {
      const s = Math.ceil(check.retryAfterMs / 1000)
      return sendHtml(res, 429, loginPage(lang, t(lang, 'login.locked', { s })), { 'Retry-After': String(s) })
    }
    if (!sameSecret(form.get('pin')?.trim() ?? '', this.o.pin)) {
      this.limit.failed(address)
      this.log?.warn({ address }, 'household page: wrong PIN')
      return sendHtml(res, 401, loginPage(lang, t(lang, 'login.wrong')))
    }
    this.limit.succeeded(address)
    const session = this.sessions.create()
    this.log?.info({ address }, 'household page: logged in')
    redirect(res, '/', { 'Set-Cookie': this.sessionCookie(session) })
  }

  get(req: IncomingMessage, res: ServerResponse, url: URL, session: Session, lang: Lang, headers: Record<string, string[]>): void {
    const path = url.pathname
    if (path === '/') return sendHtml(res, 200, livePage(this.ctx(session, lang), { view: 'home' }, t(lang, 'nav.home'), 'home', this.flash(session, lang)), headers)
    if (path === '/relay') return sendHtml(res, 200, this.relayPage(session, lang, { typed: emptyTyped(), key: newKey(), problems: {}, notice: null }), headers)
    if (path === '/inbox') return sendHtml(res, 200, livePage(this.ctx(session, lang), { view: 'inbox' }, t(lang, 'nav.inbox'), 'inbox', this.flash(session, lang)), headers)
    if (path.startsWith('/alerts/')) {
      let id: string
      try {
        id = decodeURIComponent(path.slice('/alerts/'.length))
      } catch {
        return this.notFound(res, lang)
      }
      return sendHtml(res, 200, livePage(this.ctx(session, lang), { view: 'alert', id }, t(lang, 'alert.title', { id }), undefined, this.flash(session, lang)), headers)
    }
    if (path === '/events') {
      if (req.method !== 'GET') return send(res, 405, 'text/plain; charset=utf-8', 'GET only\n', { Allow: 'GET' })
      const view = liveViewOf(url.searchParams)
      if (!view) return send(res, 400, 'text/plain; charset=utf-8', 'unknown view\n')
      res.writeHead(200, { ...SECURITY_HEADERS, 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-store', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' })
      req.socket.setNoDelay(true)
      const csrf = session.csrf
      this.live.add(res, {
        render: (snap) => sseMessage({ regions: Object.fromEntries(Object.entries(regionsOf(view, { snap, lang, csrf })).map(([k, v]) => [k, v.text])) }),
      })
      return
    }
    return this.notFound(res, lang)
  }

  notFound(res: ServerResponse, lang: Lang): void {
    sendHtml(res, 404, refusedPage(lang, 'notFound.title', 'notFound.text', [], 'not-found'))
  }

  relayPage(session: Session, lang: Lang, state: RelayFormState): string {
    const ctx = this.ctx(session, lang)
    return layout({ lang, title: t(lang, 'nav.relay'), csrf: session.csrf, live: { view: 'relay' }, current: 'relay', verdict: verdictRegion(ctx), body: relayBody(state, lang, session.csrf) })
  }

  post(res: ServerResponse, path: string, form: URLSearchParams, session: Session, lang: Lang): void {
    if (path === '/logout') {
      this.sessions.end(session.id)
      return redirect(res, '/login', { 'Set-Cookie': `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0` })
    }
    if (path === '/relay') return this.relay(res, form, session, lang)
    const m = /^\/inbox\/(\d{1,15})\/(read|passed-on)$/.exec(path)
    if (m) return this.inbox(res, Number(m[1]), m[2] as 'read' | 'passed-on', form, session, lang)
    return this.notFound(res, lang)
  }

  relay(res: ServerResponse, form: URLSearchParams, session: Session, lang: Lang): void {
    const typed = typedFrom((k) => form.get(k) ?? undefined)
    const givenKey = form.get('key') ?? ''
    const key = IDEMPOTENCY_KEY.test(givenKey) ? givenKey : newKey()
    const again = (status: number, problems: Partial<Record<RelayField, FieldProblem>>, note: ReturnType<typeof notice>) =>
      sendHtml(res, status, this.relayPage(session, lang, { typed, key, problems, notice: note }))
    const result = submitRelay(this.o.household, typed, key, this.log, 'the page')
    if (result.ok) {
      this.log?.info({ id: result.id, cls: result.cls, duplicate: result.duplicate, what: typed.what }, result.duplicate ? 'relay sent twice from the page: one relay' : 'relay saved from the page')
      session.flash = result.duplicate ? { kind: 'ok', key: 'relay.duplicate', test: 'relay-duplicate' } : { kind: 'ok', key: 'relay.saved', test: 'relay-saved' }
      return redirect(res, `/alerts/${encodeURIComponent(result.id)}`)
    }
    switch (result.code) {
      case 'RELAY_INVALID':
      case 'RELAY_UNKNOWN_KIND':
        return again(422, formProblems(result), notice('error', t(lang, 'relay.fix'), 'relay-invalid'))
      case 'STORE_REFUSED':
      case 'STORE_FAILED': {
        this.log?.error({ code: result.code, message: result.message }, 'relay from the page NOT saved: the member is told to call 110 by phone')
        const why = t(lang, result.code === 'STORE_REFUSED' ? 'relay.refused' : 'relay.failed')
        return again(503, {}, notice('error', t(lang, 'relay.notSaved', { why }), 'relay-not-saved'))
      }
    }
  }

  inbox(res: ServerResponse, id: number, action: 'read' | 'passed-on', form: URLSearchParams, session: Session, lang: Lang): void {
    const snap = this.o.household.snapshot()
    const current = snap.inbox.find((b) => b.id === id)
    const given = Number(form.get('revision'))
    const revision = Number.isInteger(given) && given >= 0 && (form.get('revision') ?? '') !== '' ? given : current?.revision
    if (current === undefined || revision === undefined) {
      session.flash = { kind: 'error', key: 'inbox.unknown', test: 'inbox-unknown' }
      return redirect(res, '/inbox')
    }
    let result: ReturnType<HouseholdService['markRead']>
    if (action === 'read') result = this.o.household.markRead(id, revision)
    else {
      const typed = (form.get('households') ?? '').trim()
      const n = /^\d{1,4}$/.test(typed) ? Number(typed) : NaN
      if (!(n >= 1 && n <= 1000)) {
        const problem: InboxProblem = { broadcast: id, households: typed, message: 'inbox.badCount' }
        const ctx: ViewContext = { snap, lang, csrf: session.csrf }
        // The problem marked at its broadcast, the typed number kept.
        return sendHtml(res, 422, livePage(ctx, { view: 'inbox' }, t(lang, 'nav.inbox'), 'inbox', notice('error', t(lang, 'inbox.badCount'), 'inbox-invalid'), { inbox: inboxRegion(ctx, problem) }))
      }
      result = this.o.household.passedOn(id, revision, n)
    }
    session.flash = result.ok
      ? { kind: 'ok', key: 'inbox.done', test: 'inbox-done' }
      : result.code === 'BROADCAST_UNKNOWN'
        ? { kind: 'error', key: 'inbox.unknown', test: 'inbox-unknown' }
        : { kind: 'error', key: 'inbox.failed', vars: { message: result.message }, test: 'inbox-failed' }
    redirect(res, '/inbox')
  }
}

/** A relay field's value as the refusal page shows it: the kind as the form named it (紧急求助, not `emergency`), the rest as typed. */
function shownAsTyped(field: RelayField, value: string, lang: Lang): string {
  const key = `what.${value}`
  return field === 'what' && isKey(key) ? t(lang, key) : value
}

function emptyTyped(): RelayTyped {
  return { forName: '', forPhone: '', where: '', what: '', text: '', by: '' }
}

/** An idempotency key for one rendering of the relay form. */
function newKey(): string {
  return randomBytes(16).toString('base64url')
}
