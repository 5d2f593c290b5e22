/**
 * The household page's routes, without a browser: the server on 127.0.0.1 with the fake
 * household, a clock and timers the test moves, fetch as the phone. (The browser test,
 * Chromium through playwright-core, is tests/household-*.)
 */

import { createServer } from 'node:net'
import { describe, expect, it } from 'vitest'
import type { Logger } from '../../log.js'
import { checkRelay, RELAY_LIMITS, type RelayInput, relayRefused } from '../model.js'
import { startHouseholdServer } from './server.js'
import { Client, PIN, rig, textOf, TOKEN } from './web.suite.js'

const RELAY = { forName: '巴特尔 Bater', forPhone: '+86 138 0000 0000', where: '冬营地 winter camp by the north well', what: 'medical', text: '老人摔伤，腿断了', by: '其其格' }

/** A call of the local API, as `steppelink` makes it. */
const api = (base: string, path: string, token: string | null, body?: unknown) =>
  fetch(base + path, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { ...(token !== null ? { authorization: `Bearer ${token}` } : {}), 'content-type': 'application/json' },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  })

describe('login', () => {
  it('opens a session with the right PIN: an HttpOnly, SameSite=Strict cookie, then the home page', async () => {
    const { base } = await rig()
    const c = new Client(base)
    expect((await c.get('/')).headers.get('location')).toBe('/login')
    const page = await c.get('/login')
    expect(page.status).toBe(200)
    expect(await page.text()).toContain('data-test="login-form"')
    const r = await c.login(PIN)
    expect(r.status).toBe(303)
    expect(r.headers.get('location')).toBe('/')
    const cookie = r.headers.getSetCookie().find((x) => x.startsWith('sl_session='))!
    expect(cookie).toMatch(/HttpOnly/)
    expect(cookie).toMatch(/SameSite=Strict/)
    expect(cookie).toMatch(/Max-Age=43200/)
    expect(/^sl_session=([A-Za-z0-9_-]{43});/.exec(cookie)).not.toBeNull()
    expect((await c.get('/')).status).toBe(200)
    // Logged in, /login goes home.
    expect((await c.get('/login')).headers.get('location')).toBe('/')
  })

  it('refuses a wrong PIN with a message on the page, and no cookie', async () => {
    const { base } = await rig()
    const c = new Client(base)
    const r = await c.login('000000')
    expect(r.status).toBe(401)
    const html = await r.text()
    expect(html).toContain('data-test="login-error"')
    expect(textOf(html)).toContain('PIN 码不对')
    expect(c.cookies.has('sl_session')).toBe(false)
    expect((await c.get('/')).status).toBe(303)
  })

  it('locks an address out after 5 wrong PINs, doubling the wait, even for the right PIN', async () => {
    const { base, clock } = await rig()
    const c = new Client(base)
    for (let i = 0; i < 5; i++) expect((await c.login(`10000${i}`)).status).toBe(401)
    const locked = await c.login(PIN)
    expect(locked.status).toBe(429)
    expect(locked.headers.get('retry-after')).toBe('30')
    expect(textOf(await locked.text())).toContain('30 秒后再试')
    clock.now += 30_001
    expect((await c.login('999999')).status).toBe(401)
    expect((await c.login(PIN)).headers.get('retry-after')).toBe('60')
    clock.now += 60_001
    expect((await c.login(PIN)).status).toBe(303)
    // A right PIN forgets the count.
    expect((await new Client(base).login('111111')).status).toBe(401)
  })

  it('logs out with a POST carrying the CSRF token; the old cookie is then worth nothing', async () => {
    const { client } = await rig()
    const c = await client()
    const old = c.cookies.get('sl_session')!
    const { fields } = await c.form('/', '/logout')
    const r = await c.post('/logout', { csrf: fields.csrf! })
    expect(r.headers.get('location')).toBe('/login')
    expect(c.cookies.has('sl_session')).toBe(false)
    c.cookies.set('sl_session', old)
    expect((await c.get('/')).headers.get('location')).toBe('/login')
  })

  it('ends a session after 12 h idle, not before', async () => {
    const { client, clock } = await rig()
    const c = await client()
    clock.now += 12 * 3600_000 - 1000
    expect((await c.get('/')).status).toBe(200)
    clock.now += 12 * 3600_000 + 1
    expect((await c.get('/')).headers.get('location')).toBe('/login')
  })
})

describe('pages', () => {
  const pages = async () => {
    const r = await rig()
    const id = r.fake.alarm('fire')
    r.fake.broadcast({ id: 9001, text: '白灾预警：今夜暴雪', urgency: 'urgent' })
    return { ...r, paths: ['/', '/relay', '/inbox', `/alerts/${encodeURIComponent(id)}`] }
  }

  it('serves every page in Chinese by default, with the security headers and a link to English', async () => {
    const { client, paths } = await pages()
    const c = await client()
    for (const path of paths) {
      const r = await c.get(path)
      expect(r.status, path).toBe(200)
      const html = await r.text()
      expect(html, path).toContain('<html lang="zh-CN">')
      expect(html, path).toContain('data-test="lang-switch"')
      expect(html, path).toContain('data-test="status-sentence"')
      expect(html, path).not.toMatch(/<script>|<script [^>]*>[^<]|\son[a-z]+=|style=/)
      expect(r.headers.get('content-security-policy')).toMatch(/^default-src 'self'/)
      expect(r.headers.get('x-frame-options')).toBe('DENY')
      expect(r.headers.get('referrer-policy')).toBe('no-referrer')
      expect(r.headers.get('x-content-type-options')).toBe('nosniff')
    }
  })

  it('switches to English with ?lang=en and keeps it in a cookie', async () => {
    const { client, paths } = await pages()
    const c = await client()
    expect(await (await c.get('/?lang=en')).text()).toContain('<html lang="en">')
    expect(c.cookies.get('lang')).toBe('en')
    for (const path of paths) {
      const html = await (await c.get(path)).text()
      expect(html, path).toContain('<html lang="en">')
      expect(textOf(html), path).toContain('An alarm pressed now gets through')
    }
    expect(await (await c.get('/?lang=zh-CN')).text()).toContain('<html lang="zh-CN">')
    expect(await (await new Client(c.base).get('/login?lang=en')).text()).toContain('Log in')
  })

  it('says at the top whether an alarm pressed now gets through, and why not', async () => {
    const { client, fake } = await rig()
    const c = await client()
    expect(await (await c.get('/')).text()).toContain('data-verdict="ok"')
    fake.uplink(false)
    const delayed = await (await c.get('/?lang=en')).text()
    expect(delayed).toContain('data-verdict="delayed"')
    expect(textOf(delayed)).toContain('the link to the 110 platform is down')
    fake.terminal({ terminal: 'SL-T-0001', lost: true, answering: false })
    const down = await (await c.get('/')).text()
    expect(down).toContain('data-verdict="down"')
    expect(down).toContain('data-state="lost"')
  })

  it('shows the status: uplink, terminals with battery, mains and signal, backlog, disk, clock, version', async () => {
    const { client } = await rig()
    const c = await client()
    const text = textOf(await (await c.get('/?lang=en')).text())
    for (const s of ['online', 'SL-T-0001', 'battery 87%', 'mains on', 'signal -71 dBm', 'alarms 0', '900 MB free, 16 MB kept for alarms', 'set by the platform', '0.1.0', 'gw-test'])
      expect(text).toContain(s)
  })

  it('shows each alert with its stage timeline, the unit and ETA, and "call 110" while unconfirmed', async () => {
    const { client, fake, clock } = await rig()
    const c = await client()
    const id = fake.alarm()
    fake.advance(id, 'unconfirmed')
    let html = await (await c.get('/?lang=en')).text()
    expect(html).toContain('data-test="alert-call110"')
    expect(textOf(html)).toContain('Not confirmed: call 110 by phone!')
    fake.advance(id, 'received')
    fake.advance(id, 'dispatched', { text: 'patrol car 110-3 <b>', eta: clock.now + 40 * 60_000 })
    html = await (await c.get(`/alerts/${encodeURIComponent(id)}?lang=en`)).text()
    expect(html).not.toContain('data-test="alert-call110"')
    expect(html).toContain(`data-alert-id="${id}"`)
    expect(html).toContain('data-stage="dispatched"')
    expect(html).toContain('patrol car 110-3 &lt;b&gt;')
    expect(html).toContain('data-test="stage-eta"')
    expect([...html.matchAll(/data-test="stage" data-stage="(\w+)"/g)].map((m) => m[1])).toEqual(['stored', 'received', 'dispatched'])
    expect(html).toMatch(/class="todo" data-stage="resolved"/)
  })

  it('answers an unknown page with 404 and an unknown alert with a sentence', async () => {
    const { client } = await rig()
    const c = await client()
    expect((await c.get('/nothing')).status).toBe(404)
    expect(await (await c.get('/alerts/nope')).text()).toContain('data-test="alert-not-found"')
    expect((await c.get('/alerts/%E0%A4%A')).status).toBe(404)
  })

  it('keeps the first page under 100 kB with its style sheet and script, with 20 alerts and 10 broadcasts', async () => {
    const { client, fake } = await rig()
    for (let i = 0; i < 20; i++) {
      const id = fake.alarm(i % 2 ? 'fire' : 'medical', `SL-T-${String(i).padStart(4, '0')}`, '牧民需要帮助'.repeat(20))
      fake.advance(id, 'sent')
      fake.advance(id, 'received')
      fake.advance(id, 'acknowledged', { text: '值班员 Operator on duty' })
      fake.advance(id, 'dispatched', { text: '巡逻车 110-3', eta: Date.now() })
    }
    for (let i = 0; i < 10; i++) fake.broadcast({ id: i, text: '白灾预警：今夜暴雪，请把牲畜赶回棚圈。'.repeat(10), urgency: 'urgent' })
    const c = await client()
    const page = await c.get('/')
    const html = Buffer.from(await page.arrayBuffer())
    const css = Buffer.from(await (await c.get('/style.css')).arrayBuffer())
    const js = Buffer.from(await (await c.get('/app.js')).arrayBuffer())
    expect(html.toString()).toContain('href="/style.css"')
    expect(html.toString()).toContain('src="/app.js"')
    expect(html.length + css.length + js.length).toBeLessThan(100 * 1024)
  })

  it('serves its two files without a session, with their types and an ETag', async () => {
    const { base } = await rig()
    const c = new Client(base)
    const css = await c.get('/style.css')
    expect(css.headers.get('content-type')).toBe('text/css; charset=utf-8')
    const js = await c.get('/app.js')
    expect(js.headers.get('content-type')).toBe('text/javascript; charset=utf-8')
    expect((await c.get('/app.js', { 'if-none-match': js.headers.get('etag')! })).status).toBe(304)
    // Nothing from outside: no URL with a host in either.
    expect(`${await css.text()}${await js.text()}`).not.toMatch(/https?:\/\/|@import|url\(/)
  })
})

describe('CSRF', () => {
  it('refuses a POST without the token, with a wrong one, or from another origin: 403, a clear page, nothing done', async () => {
    const { client, fake } = await rig()
    const c = await client()
    const { fields } = await c.form('/relay', '/relay')
    const cases: { form: Record<string, string>; headers?: Record<string, string> }[] = [
      { form: { ...RELAY, key: fields.key! } },
      { form: { ...RELAY, key: fields.key!, csrf: 'x'.repeat(43) } },
      { form: { ...RELAY, key: fields.key!, csrf: fields.csrf! }, headers: { origin: 'http://evil.example' } },
      { form: { ...RELAY, key: fields.key!, csrf: fields.csrf! }, headers: { referer: 'http://evil.example/page' } },
    ]
    for (const { form, headers } of cases) {
      const r = await c.post('/relay', form, headers)
      expect(r.status).toBe(403)
      const html = await r.text()
      expect(html).toContain('data-test="refused-csrf"')
      // What was typed is on the refusal, to copy; the kind as the form named it.
      expect(textOf(html)).toContain('老人摔伤，腿断了')
      expect(textOf(html)).toContain('什么事: 急病')
    }
    expect(fake.relays).toHaveLength(0)
    // The same form with its token and our own origin goes through; so does it with
    // `Origin: null`, what Chromium sends from a page with Referrer-Policy: no-referrer.
    const ok = await c.post('/relay', { ...RELAY, ...fields }, { origin: c.base })
    expect(ok.status).toBe(303)
    expect(fake.relays).toHaveLength(1)
    const again = await c.form('/relay', '/relay')
    expect((await c.post('/relay', { ...RELAY, ...again.fields }, { origin: 'null' })).status).toBe(303)
    expect(fake.relays).toHaveLength(2)
  })

  it('refuses a POST without a session (ended, or the gateway restarted), showing what was typed', async () => {
    const { base, fake } = await rig()
    const r = await new Client(base).post('/relay', { ...RELAY, csrf: 'x', key: 'k'.repeat(22) })
    expect(r.status).toBe(403)
    const html = await r.text()
    expect(html).toContain('data-test="refused-session"')
    expect(textOf(html)).toContain('巴特尔 Bater')
    expect(fake.relays).toHaveLength(0)
  })

  it('refuses a PIN posted from another origin', async () => {
    const { base } = await rig()
    expect((await new Client(base).post('/login', { pin: PIN }, { origin: 'http://evil.example' })).status).toBe(403)
  })
})

describe('relay', () => {
  it('saves a relay, then 303 to its alert page, which says "saved" once and shows its live stages', async () => {
    const { client, fake } = await rig()
    const c = await client()
    const { fields, html: form } = await c.form('/relay?lang=en', '/relay')
    for (const f of ['relay-form', 'relay-forName', 'relay-forPhone', 'relay-where', 'relay-what-medical', 'relay-text', 'relay-by', 'relay-submit']) expect(form).toContain(`data-test="${f}"`)
    const r = await c.post('/relay', { ...RELAY, ...fields })
    expect(r.status).toBe(303)
    const id = fake.relays[0]!.id
    expect(r.headers.get('location')).toBe(`/alerts/${encodeURIComponent(id)}`)
    expect(fake.relays[0]!.input).toEqual({
      what: 'medical',
      forName: '巴特尔 Bater',
      forPhone: '+86 138 0000 0000',
      where: '冬营地 winter camp by the north well',
      text: '老人摔伤，腿断了',
      by: '其其格',
    })
    const page = await (await c.get(r.headers.get('location')!)).text()
    expect(page).toContain('data-test="relay-saved"')
    expect(page).toContain(`data-events="/events?view=alert&amp;id=${encodeURIComponent(id)}"`)
    expect(page).toContain('data-stage="stored"')
    expect(textOf(page)).toContain('relayed for 巴特尔 Bater')
    expect(await (await c.get(r.headers.get('location')!)).text()).not.toContain('data-test="relay-saved"')
  })

  it('makes one relay of a double submit (the same idempotency key), and says so', async () => {
    const { client, fake } = await rig()
    const c = await client()
    const { fields } = await c.form('/relay', '/relay')
    const [a, b] = await Promise.all([c.post('/relay', { ...RELAY, ...fields }), c.post('/relay', { ...RELAY, ...fields })])
    expect(a.headers.get('location')).toBe(b.headers.get('location'))
    expect(fake.relays).toHaveLength(1)
    expect(await (await c.get(b.headers.get('location')!)).text()).toMatch(/data-test="relay-(saved|duplicate)"/)
    // A new rendering of the form is a new key: a second relay.
    const again = await c.form('/relay', '/relay')
    expect(again.fields.key).not.toBe(fields.key)
    await c.post('/relay', { ...RELAY, ...again.fields })
    expect(fake.relays).toHaveLength(2)
  })

  const bad: { name: string; form: Partial<typeof RELAY>; field: string; says: string }[] = [
    { name: 'no household name', form: { forName: '  ' }, field: 'forName', says: 'Required.' },
    { name: 'a name over 64 bytes (22 Chinese characters)', form: { forName: '巴'.repeat(22) }, field: 'forName', says: 'Too long: 66 bytes, at most 64' },
    { name: 'a text over 480 bytes', form: { text: '伤'.repeat(161) }, field: 'text', says: 'Too long: 483 bytes, at most 480' },
    { name: 'a where over 160 bytes', form: { where: 'w'.repeat(161) }, field: 'where', says: 'at most 160' },
    { name: 'a control character', form: { where: 'north\u0007well' }, field: 'where', says: 'control character' },
    { name: 'a line break in a one-line field (a crafted POST)', form: { where: 'north\nwell' }, field: 'where', says: 'control character' },
    { name: 'a line separator in the text', form: { text: 'help\u2028now' }, field: 'text', says: 'control character' },
    { name: 'letters in the phone', form: { forPhone: 'call me' }, field: 'forPhone', says: 'Only digits' },
    { name: 'an unknown kind', form: { what: 'bomb' }, field: 'what', says: 'Pick one' },
    { name: 'no kind', form: { what: '' }, field: 'what', says: 'Pick one' },
    { name: 'another request without text', form: { what: 'other', text: '' }, field: 'text', says: 'say what is needed' },
  ]

  it.each(bad)('answers $name on the form, at the field, keeping what was typed (markup escaped)', async ({ form, field, says }) => {
    const { client, fake } = await rig()
    const c = await client()
    const { fields } = await c.form('/relay?lang=en', '/relay')
    const typed = { ...RELAY, by: '<script>alert(1)</script>', ...form }
    const r = await c.post('/relay', { ...typed, ...fields })
    expect(r.status).toBe(422)
    const html = await r.text()
    expect(html).toContain(`data-test="error-${field}"`)
    expect(textOf(html.slice(html.indexOf(`data-test="error-${field}"`)))).toContain(says)
    expect(html).toContain('data-test="relay-invalid"')
    expect(html).not.toContain('<script>alert')
    expect(html).toContain('value="&lt;script&gt;alert(1)&lt;/script&gt;"')
    for (const f of ['forName', 'where'] as const) expect(html).toContain(`value="${typed[f].replace(/"/g, '&quot;')}"`)
    expect(html).toContain(`>${typed.text}</textarea>`)
    // The same key stays, so the corrected form is still one relay.
    expect(html).toContain(`name="key" value="${fields.key}"`)
    expect(fake.relays).toHaveLength(0)
  })

  it('marks every field the rule refuses at once, each in the page’s words (zh-CN)', async () => {
    const { client } = await rig()
    const c = await client()
    const { fields } = await c.form('/relay?lang=zh-CN', '/relay')
    const html = await (await c.post('/relay', { ...RELAY, ...fields, forName: '', forPhone: 'call me', by: '巴'.repeat(22) })).text()
    const says = (f: string) => textOf(html.slice(html.indexOf('>', html.indexOf(`data-test="error-${f}"`)) + 1)).trim()
    expect(says('forName')).toMatch(/^必须填写。/)
    expect(says('forPhone')).toMatch(/^只能填写数字、空格和 \+ - \( \)。/)
    expect(says('by')).toMatch(/^太长了：66 字节，最多 64 字节（一个汉字3字节）。/)
    expect(html).not.toContain('data-test="error-where"')
  })

  it('the form, the local API and the fake household refuse the same 65-byte name by the same rule', async () => {
    const { client, base, fake } = await rig()
    const sent = { what: 'fire', forName: 'n'.repeat(65), where: 'east pasture' }
    const rule = checkRelay(sent)
    if (rule.ok) throw new Error('the rule takes it')
    expect(rule.errors).toEqual([expect.objectContaining({ field: 'forName', problem: 'tooLong', bytes: 65, limit: 64 })])
    // The local API answers the rule's errors as they are.
    const r = await api(base, '/api/relay', TOKEN, { ...sent, key: 'k'.repeat(20) })
    expect(r.status).toBe(422)
    expect(await r.json()).toEqual(relayRefused(rule.errors))
    // The form marks the same field, in its words.
    const c = await client()
    const { fields } = await c.form('/relay?lang=en', '/relay')
    const html = await (await c.post('/relay', { ...RELAY, ...sent, ...fields })).text()
    expect(textOf(html.slice(html.indexOf('data-test="error-forName"')))).toContain('Too long: 65 bytes, at most 64 (a Chinese character is 3 bytes).')
    // A service behind them refuses it the same way (the fake, as the gateway: service.test.ts).
    expect(fake.relay(sent as RelayInput, 'k'.repeat(21))).toEqual(relayRefused(rule.errors))
    expect(fake.relays).toHaveLength(0)
    // 64 bytes go through both.
    expect((await api(base, '/api/relay', TOKEN, { ...sent, forName: 'n'.repeat(64) })).status).toBe(200)
    const again = await c.form('/relay?lang=en', '/relay')
    expect((await c.post('/relay', { ...RELAY, ...sent, forName: 'n'.repeat(64), ...again.fields })).status).toBe(303)
    expect(fake.relays).toHaveLength(2)
  })

  it('a relay() that throws is STORE_FAILED, NOT saved, on the page and in the local API alike (one wrapper), and logged', async () => {
    const lines: { level: string; msg: string }[] = []
    const log: Logger = {
      error: (_, msg) => lines.push({ level: 'error', msg }),
      warn: (_, msg) => lines.push({ level: 'warn', msg }),
      info: (_, msg) => lines.push({ level: 'info', msg }),
      debug: () => {},
      child: () => log,
    }
    const { client, base, fake } = await rig({ log })
    fake.relay = () => {
      throw new Error('SQLITE_IOERR: disk I/O error')
    }
    const r = await api(base, '/api/relay', TOKEN, { what: 'fire', forName: 'Batu' })
    expect(r.status).toBe(503)
    expect(await r.json()).toEqual({ ok: false, code: 'STORE_FAILED', message: 'SQLITE_IOERR: disk I/O error' })
    const c = await client()
    const { fields } = await c.form('/relay?lang=en', '/relay')
    const page = await c.post('/relay', { ...RELAY, ...fields })
    expect(page.status).toBe(503)
    const text = textOf(await page.text())
    expect(text).toContain('The relay was NOT saved!')
    expect(text).toContain("The gateway's store failed.")
    expect(lines.filter((l) => l.msg.includes('relay() threw')).map((l) => `${l.level}: ${l.msg}`)).toEqual([
      'error: relay from the local API: relay() threw; the relay was NOT saved',
      'error: relay from the page: relay() threw; the relay was NOT saved',
    ])
  })

  it('shows markup in a relay as text, never as markup, on every page it reaches', async () => {
    const { client } = await rig()
    const c = await client()
    const { fields } = await c.form('/relay', '/relay')
    const evil = '<img src=x onerror=alert(1)>"\'&'
    const r = await c.post('/relay', { ...RELAY, forName: evil, text: evil, where: evil, ...fields })
    for (const path of [r.headers.get('location')!, '/']) {
      const html = await (await c.get(path)).text()
      expect(html).not.toContain('<img')
      expect(html).toContain('&lt;img src=x onerror=alert(1)&gt;&quot;&#39;&amp;')
    }
  })

  it.each([
    ['refused', 'disk is full'],
    ['failed', 'store failed'],
  ] as const)('says the relay was NOT saved when the store %s, to call 110, and keeps the form', async (store, why) => {
    const { client, fake } = await rig()
    const c = await client()
    fake.store = store
    const { fields } = await c.form('/relay?lang=en', '/relay')
    const r = await c.post('/relay', { ...RELAY, ...fields })
    expect(r.status).toBe(503)
    const html = await r.text()
    expect(html).toContain('data-test="relay-not-saved"')
    const text = textOf(html)
    expect(text).toContain('The relay was NOT saved!')
    expect(text).toContain(why)
    expect(text).toContain('Call 110 by phone now.')
    expect(text).not.toContain('Saved:')
    expect(html).toContain('value="巴特尔 Bater"')
    expect(html).toContain('>老人摔伤，腿断了</textarea>')
    expect(fake.relays).toHaveLength(0)
    // Once the store works again, the same form goes through.
    fake.store = 'ok'
    expect((await c.post('/relay', { ...RELAY, ...fields })).status).toBe(303)
    expect(fake.relays).toHaveLength(1)
  })

  it('shows a field the gateway refuses the same way, in its words', async () => {
    const { client, fake } = await rig()
    const c = await client()
    fake.relay = () => ({ ok: false, code: 'RELAY_INVALID', field: 'where', message: 'where: not a place the platform knows' })
    const { fields } = await c.form('/relay?lang=en', '/relay')
    const html = await (await c.post('/relay', { ...RELAY, ...fields })).text()
    expect(html).toContain('data-test="error-where"')
    expect(textOf(html)).toContain('The gateway refused it: where: not a place the platform knows')
  })

  it('refuses a body over 16 kB with 413, doing nothing', async () => {
    const { client, fake } = await rig()
    const c = await client()
    const { fields } = await c.form('/relay', '/relay')
    expect((await c.post('/relay', { ...RELAY, ...fields, text: 'x'.repeat(20_000) })).status).toBe(413)
    expect(fake.relays).toHaveLength(0)
  })
})

describe('inbox', () => {
  it('shows broadcasts with urgency, time and text; "read" and "passed on to N households" reach the household', async () => {
    const { client, fake } = await rig()
    fake.broadcast({ id: 9001, revision: 2, text: '白灾预警 <i>今夜</i>', urgency: 'urgent' })
    const c = await client()
    const { html, fields } = await c.form('/inbox?lang=en', '/inbox/9001/read')
    for (const f of ['inbox-item', 'inbox-urgency', 'inbox-time', 'inbox-text', 'inbox-read', 'inbox-households', 'inbox-passed-on']) expect(html).toContain(`data-test="${f}"`)
    expect(html).toContain('白灾预警 &lt;i&gt;今夜&lt;/i&gt;')
    expect(textOf(html)).toContain('urgent')
    const r = await c.post('/inbox/9001/read', fields)
    expect(r.headers.get('location')).toBe('/inbox')
    expect(fake.reads).toEqual([{ broadcast: 9001, revision: 2 }])
    const after = await (await c.get('/inbox')).text()
    expect(after).toContain('data-test="inbox-done"')
    expect(after).toContain('data-test="inbox-read-at"')
    expect(after).not.toContain('data-test="inbox-read"')

    const passed = await c.form('/inbox', '/inbox/9001/passed-on')
    expect((await c.post('/inbox/9001/passed-on', { ...passed.fields, households: '12' })).status).toBe(303)
    expect(fake.passed).toEqual([{ broadcast: 9001, revision: 2, households: 12 }])
    expect(textOf(await (await c.get('/inbox?lang=en')).text())).toContain('passed on to 12 households')
  })

  it('answers a bad number of households at its broadcast, keeping what was typed', async () => {
    const { client, fake } = await rig()
    fake.broadcast({ id: 7, text: 'x' })
    const c = await client()
    const { fields } = await c.form('/inbox', '/inbox/7/passed-on')
    for (const typed of ['0', 'many', '1001', '<b>']) {
      const r = await c.post('/inbox/7/passed-on', { ...fields, households: typed })
      expect(r.status).toBe(422)
      const html = await r.text()
      expect(html).toContain('data-test="error-households"')
      expect(html).toContain(`data-test="inbox-households"`)
      expect(html).toContain(`value="${typed.replace('<', '&lt;').replace('>', '&gt;')}"`)
      // Held against the live updates (app.js), which would wipe the message and the number; the status sentence is not.
      expect(html).toContain('<section data-live="inbox" data-live-hold>')
      expect(html).not.toMatch(/data-live="verdict"[^>]*data-live-hold/)
    }
    expect(await (await c.get('/inbox')).text()).not.toContain('data-live-hold')
    expect(fake.passed).toEqual([])
  })

  it('says a broadcast is gone when it was withdrawn', async () => {
    const { client } = await rig()
    const c = await client()
    const { fields } = await c.form('/', '/logout')
    expect((await c.post('/inbox/5/read', { csrf: fields.csrf! })).headers.get('location')).toBe('/inbox')
    expect(await (await c.get('/inbox')).text()).toContain('data-test="inbox-unknown"')
  })
})

/** Reads server-sent events from a fetch body. */
class EventReader {
  #buffer = ''
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>
  readonly #decoder = new TextDecoder()
  constructor(body: ReadableStream<Uint8Array>) {
    this.#reader = body.getReader()
  }
  /** The next `update` event's data, parsed; null when the stream ends. */
  async next(): Promise<{ regions: Record<string, string> } | null> {
    for (;;) {
      const end = this.#buffer.indexOf('\n\n')
      if (end !== -1) {
        const block = this.#buffer.slice(0, end)
        this.#buffer = this.#buffer.slice(end + 2)
        const data = /^data: (.*)$/m.exec(block)
        if (/^event: update$/m.test(block) && data) return JSON.parse(data[1]!) as { regions: Record<string, string> }
        continue
      }
      const { value, done } = await this.#reader.read()
      if (done) return null
      this.#buffer += this.#decoder.decode(value, { stream: true })
    }
  }
  cancel(): Promise<void> {
    return this.#reader.cancel()
  }
}

describe('live updates', () => {
  const open = async (c: Client, view: string) => {
    const r = await fetch(`${c.base}/events?view=${view}`, { headers: { cookie: [...c.cookies].map(([k, v]) => `${k}=${v}`).join('; ') } })
    expect(r.status).toBe(200)
    expect(r.headers.get('content-type')).toBe('text/event-stream; charset=utf-8')
    return new EventReader(r.body!)
  }

  it('sends the page as it is at once, then a whole new snapshot after a stage change (coalesced)', async () => {
    const { client, fake, timers } = await rig()
    const id = fake.alarm()
    const c = await client()
    const events = await open(c, 'home')
    const first = (await events.next())!
    expect(Object.keys(first.regions)).toEqual(['verdict', 'status', 'alerts'])
    expect(first.regions.alerts).toContain('data-stage="stored"')
    fake.advance(id, 'sent')
    fake.advance(id, 'received')
    expect(timers.delays()).toContain(50)
    timers.fire(50)
    const second = (await events.next())!
    expect(second.regions.alerts).toContain(`data-alert-id="${id}" data-stage="received"`)
    expect(second.regions.status).toBe(first.regions.status)
    await events.cancel()
  })

  it('refuses /events without a session, or for an unknown view', async () => {
    const { base, client } = await rig()
    expect((await fetch(`${base}/events?view=home`)).status).toBe(401)
    const c = await client()
    expect((await c.get('/events?view=nope')).status).toBe(400)
  })

  it('closes every stream when the server stops', async () => {
    const { client, server, fake } = await rig()
    const c = await client()
    const events = await open(c, 'alert&id=x')
    await events.next()
    expect(server.liveStreams).toBe(1)
    expect(fake.listeners).toBe(1)
    await server.close()
    expect(await events.next()).toBeNull()
    expect(server.liveStreams).toBe(0)
    expect(fake.listeners).toBe(0)
  })
})

describe('local API', () => {
  it('refuses a request without the token, or with a wrong one, and takes no session cookie instead', async () => {
    const { base, client } = await rig()
    const c = await client()
    for (const token of [null, 'wrong', `${TOKEN}x`]) {
      const r = await api(base, '/api/status', token)
      expect(r.status).toBe(401)
      expect(((await r.json()) as { code: string }).code).toBe('API_UNAUTHORIZED')
    }
    expect((await c.get('/api/status')).status).toBe(401)
  })

  it('gives the snapshot, the inbox; relays; marks read and passed on', async () => {
    const { base, fake } = await rig()
    fake.broadcast({ id: 3, revision: 4, text: 'storm' })
    const status = (await (await api(base, '/api/status', TOKEN)).json()) as { gateway: string; verdict: string }
    expect(status).toMatchObject({ gateway: 'gw-test', verdict: 'ok' })
    expect(await (await api(base, '/api/inbox', TOKEN)).json()).toMatchObject([{ id: 3, revision: 4, text: 'storm' }])
    const relay = await api(base, '/api/relay', TOKEN, { what: 'fire', forName: 'Batu', where: 'east pasture', key: 'k'.repeat(20) })
    expect(relay.status).toBe(200)
    expect(await relay.json()).toMatchObject({ ok: true, cls: 'alarm', duplicate: false })
    expect(await (await api(base, '/api/relay', TOKEN, { what: 'fire', forName: 'Batu', key: 'k'.repeat(20) })).json()).toMatchObject({ ok: true, duplicate: true })
    expect(fake.relays).toHaveLength(1)
    expect((await api(base, '/api/inbox/3/read', TOKEN, {})).status).toBe(200)
    expect((await api(base, '/api/inbox/3/passed-on', TOKEN, { households: 7 })).status).toBe(200)
    expect(fake.reads).toEqual([{ broadcast: 3, revision: 4 }])
    expect(fake.passed).toEqual([{ broadcast: 3, revision: 4, households: 7 }])
  })

  it('answers bad input with a code, the field and a message; the store refusing with 503', async () => {
    const { base, fake } = await rig()
    const cases: [string, unknown, number, string][] = [
      ['/api/relay', { what: 'bomb', forName: 'x' }, 422, 'RELAY_UNKNOWN_KIND'],
      ['/api/relay', { what: 'fire', forName: '' }, 422, 'RELAY_INVALID'],
      ['/api/relay', { what: 'fire', forName: 5 }, 422, 'RELAY_INVALID'],
      ['/api/relay', [1, 2], 400, 'BODY_BAD'],
      ['/api/inbox/3/read', {}, 404, 'BROADCAST_UNKNOWN'],
      ['/api/nothing', {}, 404, 'API_NOT_FOUND'],
    ]
    for (const [path, body, status, code] of cases) {
      const r = await api(base, path, TOKEN, body)
      expect(r.status, path).toBe(status)
      expect(((await r.json()) as { code: string }).code, path).toBe(code)
    }
    const notJson = await fetch(`${base}/api/relay`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` }, body: '{nope' })
    expect(notJson.status).toBe(400)
    fake.store = 'refused'
    const refused = await api(base, '/api/relay', TOKEN, { what: 'fire', forName: 'Batu' })
    expect(refused.status).toBe(503)
    expect(await refused.json()).toMatchObject({ ok: false, code: 'STORE_REFUSED' })
  })
})

describe('odd requests', () => {
  it('answers garbage in paths, methods, cookies and bodies without a 500, and keeps serving', async () => {
    const { base, client, fake } = await rig()
    const c = await client()
    const cookie = [...c.cookies].map(([k, v]) => `${k}=${v}`).join('; ')
    const odd: { path: string; init?: RequestInit }[] = [
      { path: '//evil.example/' },
      { path: '/alerts/%' },
      { path: `/alerts/${'x'.repeat(5000)}` },
      { path: '/inbox/99999999999999999999/read', init: { method: 'POST', body: 'csrf=x' } },
      { path: '/relay', init: { method: 'PUT' } },
      { path: '/relay', init: { method: 'DELETE', headers: { cookie } } },
      { path: '/', init: { headers: { cookie: 'sl_session; =; ;;; lang=xx; sl_session=%%%' } } },
      { path: `/events?view=alert&id=${'y'.repeat(300)}`, init: { headers: { cookie } } },
      { path: '/relay', init: { method: 'POST', headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' }, body: '%%%&&&==&csrf' } },
      { path: '/login', init: { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'pin=%FF%FE' } },
      { path: '/api/relay', init: { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` }, body: 'null' } },
      { path: '/api/relay', init: { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` }, body: '{"what":{"a":1},"forName":["x"]}' } },
      { path: '/api/inbox/1/passed-on', init: { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` }, body: '{"households":"12","revision":-1}' } },
      { path: '/events', init: { method: 'HEAD', headers: { cookie } } },
    ]
    for (const { path, init } of odd) {
      const r = await fetch(base + path, { redirect: 'manual', ...init })
      expect(r.status, `${init?.method ?? 'GET'} ${path.slice(0, 60)}`).toBeLessThan(500)
      await r.arrayBuffer()
    }
    expect(fake.relays).toHaveLength(0)
    expect((await c.get('/')).status).toBe(200)
  })

  it("does not promise a unit on a request's timeline", async () => {
    const { client, fake } = await rig()
    const id = fake.alarm('callback')
    const c = await client()
    const html = await (await c.get(`/alerts/${encodeURIComponent(id)}`)).text()
    expect(html).toMatch(/class="todo" data-stage="acknowledged"/)
    expect(html).not.toMatch(/data-stage="dispatched"/)
  })
})

describe('listening', () => {
  it('reports a port in use with what to do, without throwing', async () => {
    const blocker = createServer()
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r))
    const port = (blocker.address() as { port: number }).port
    try {
      const { fake } = await rig()
      const r = await startHouseholdServer({ household: fake, listen: '127.0.0.1', port, pin: PIN, token: TOKEN })
      expect(r.ok).toBe(false)
      if (r.ok) return
      expect(r.code).toBe('EADDRINUSE')
      expect(r.message).toMatch(new RegExp(`port ${port} on 127.0.0.1 is in use by another program`))
      expect(r.message).toMatch(/Set household.port to a free port/)
      expect(r.message).toMatch(/alarms are not affected/)
    } finally {
      blocker.close()
    }
  })

  it('reports an address that is not this board’s', async () => {
    const { fake } = await rig()
    const r = await startHouseholdServer({ household: fake, listen: '192.0.2.77', port: 0, pin: PIN, token: TOKEN })
    expect(r.ok).toBe(false)
    if (!r.ok) expect(r.message).toMatch(/192\.0\.2\.77 is not an address of this board/)
  })

  it('keeps the limits of the relay form where the model has them', () => {
    expect(RELAY_LIMITS.forName).toBe(64)
  })
})
