/**
 * The household page end to end (issue 13), as the center-household member uses it: Debian's
 * Chromium as a 360-px phone (tests/helpers/browser.ts) on the page of a REAL gateway
 * process, in the whole loop (loop/loop.ts: aedes with the topic permissions, the gateway on
 * a pseudo-terminal, a simulated terminal on the other end, the operator console as the
 * platform, acknowledging, dispatching after 1 s and resolving 2 s later).
 *
 * Log in (a wrong PIN first); a terminal's alarm moving through its stages on an open page,
 * no reload; a relay from the form reaching the platform and "resolved"; a broadcast from
 * the console read and passed on, as the console counts it; a POST without the CSRF token
 * refused; bad input answered at its field, markup shown as text and never run; English.
 * Nothing requested off loopback. Waits are on what the page shows, never sleeps.
 *
 * `STEPPELINK_SCREENSHOTS=1 npx vitest run tests/household-page.e2e.test.ts` writes the
 * screenshots of docs/household-page.md into docs/screenshots/.
 */

import type { Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Loop, startLoop } from '../loop/loop.js'
import { launchBrowser, screenshot, type TestBrowser } from './helpers/browser.js'

let loop: Loop
let browser: TestBrowser
let site: { url: string; pin: string }

beforeAll(async () => {
  // Side by side (each takes seconds); whichever started is closed after, even if the other failed.
  const [l, b] = await Promise.allSettled([startLoop({ broker: 'aedes', console: { ack: 'auto', dispatchAfterS: 1, resolveAfterS: 2 }, logLevel: 'info' }), launchBrowser()])
  if (l.status === 'fulfilled') loop = l.value
  if (b.status === 'fulfilled') browser = b.value
  if (l.status === 'rejected') throw l.reason
  if (b.status === 'rejected') throw b.reason
  site = await loop.householdPage()
})

afterAll(async () => {
  await browser?.close()
  await loop?.close()
})

const at = (path: string) => `${site.url}${path}`
const test = (name: string) => `[data-test="${name}"]`

async function logIn(page: Page, lang: 'zh-CN' | 'en' = 'zh-CN'): Promise<void> {
  await page.goto(at(`/login?lang=${lang}`))
  await page.locator(test('login-pin')).fill(site.pin)
  await page.locator(test('login-submit')).click()
  await page.waitForURL(at('/'))
}

/** A phone of its own (cookies, session), logged in, on `/`. */
async function loggedIn(): Promise<Page> {
  const page = await browser.newPage()
  await logIn(page)
  return page
}

/** The stages the timeline of `alert` shows as reached, in order. */
function reached(page: Page, alert: string): Promise<string[]> {
  return page.locator(`${test('alert')}[data-alert-id="${alert}"] ${test('stage')}`).evaluateAll((els) => els.map((e) => e.getAttribute('data-stage') ?? ''))
}

/**
 * `sent` is the PUBACK; on a busy machine the platform's receipt can come first, and then
 * the store skips `sent` (as tests/demo-relay.e2e.test.ts says): the rest, in this order.
 */
const WHOLE_CASE = ['stored', 'received', 'acknowledged', 'dispatched', 'resolved']
const withoutSent = (stages: string[]) => stages.filter((s) => s !== 'sent')

describe('the household page, in a browser, on a real gateway', () => {
  it('refuses a wrong PIN with a message on the page, then logs in with the right one', async () => {
    const page = await browser.newPage()
    await page.goto(site.url)
    expect(new URL(page.url()).pathname).toBe('/login')
    await screenshot(page, 'household-login-zh-CN')

    const wrong = site.pin === '000000' ? '111111' : '000000'
    await page.locator(test('login-pin')).fill(wrong)
    const refused = page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/login')
    await page.locator(test('login-submit')).click()
    expect((await refused).status()).toBe(401)
    await expect.poll(() => page.locator(test('login-error')).textContent()).toBe('PIN 码不对。')

    await page.locator(test('login-pin')).fill(site.pin)
    await page.locator(test('login-submit')).click()
    await page.waitForURL(at('/'))
    // The terminal on the line answers, the uplink is up: an alarm pressed now gets through.
    await expect.poll(() => page.locator(test('status-sentence')).getAttribute('data-verdict')).toBe('ok')
    expect(await page.locator(`${test('terminal')}[data-terminal="${loop.terminals[0]!.id}"]`).getAttribute('data-state')).toBe('answering')
    expect(await page.locator(test('uplink')).getAttribute('data-online')).toBe('true')
    expect(await page.locator(test('gateway')).textContent()).toContain(loop.gatewayId)
    await page.context().close()

    const en = await browser.newPage({ locale: 'en' })
    await en.goto(at('/login?lang=en'))
    expect(await en.locator(test('login-submit')).textContent()).toBe('Log in')
    await screenshot(en, 'household-login-en')
    await en.context().close()
  })

  it("shows a terminal's alarm move through its stages live on the open page, without a reload", async () => {
    const page = await loggedIn()
    const terminal = loop.terminals[0]!
    const n = loop.press(0, 'emergency')
    const id = `${terminal.id}:${n}`
    // Every value the alarm's element takes on the page, in order; and a mark a reload would
    // wipe. (Strings: the tests are type-checked without the DOM's types.)
    await page.evaluate(`(() => {
      window.sameDocument = true
      window.stagesSeen = []
      const look = () => {
        const stage = document.querySelector('[data-test="alert"][data-alert-id="${id}"]')?.getAttribute('data-stage')
        if (stage && window.stagesSeen.at(-1) !== stage) window.stagesSeen.push(stage)
      }
      look()
      new MutationObserver(look).observe(document.body, { subtree: true, childList: true, attributes: true })
    })()`)
    const seen = () => page.evaluate('window.stagesSeen') as Promise<string[]>

    await expect.poll(seen, { timeout: 30_000 }).toContain('resolved')
    expect(await page.evaluate('window.sameDocument')).toBe(true)
    // Each update moves it forward; the operator's steps a second apart each show on their own.
    const order = ['stored', 'sent', 'received', 'acknowledged', 'dispatched', 'resolved']
    const values = await seen()
    expect(values.map((s) => order.indexOf(s))).toEqual([...values.map((s) => order.indexOf(s))].sort((a, b) => a - b))
    expect(values).toEqual(expect.arrayContaining(['dispatched', 'resolved']))
    expect(values.length).toBeGreaterThanOrEqual(3)

    expect(withoutSent(await reached(page, id))).toEqual(WHOLE_CASE)
    const dispatched = page.locator(`${test('alert')}[data-alert-id="${id}"] ${test('stage')}[data-stage="dispatched"]`)
    expect(await dispatched.locator(test('stage-text')).textContent()).toBe('patrol car 110-3')
    expect(await dispatched.locator(test('stage-eta')).textContent()).toMatch(/^预计 \d\d-\d\d \d\d:\d\d:\d\d 到达$/)

    // The alert's own page: its timeline, in both languages.
    await page.goto(at(`/alerts/${encodeURIComponent(id)}`))
    expect(withoutSent(await reached(page, id))).toEqual(WHOLE_CASE)
    await screenshot(page, 'household-alert-zh-CN')
    await page.goto(at(`/alerts/${encodeURIComponent(id)}?lang=en`))
    expect(await page.locator(`${test('stage')}[data-stage="resolved"] .stage`).textContent()).toBe('resolved')
    await screenshot(page, 'household-alert-en')
    await page.context().close()
  })

  it('sends an emergency relay for a neighbour from the form; it reaches the platform, who relayed it and for whom, and goes to "resolved"', async () => {
    const page = await loggedIn()
    await page.locator(test('nav-relay')).click()
    await page.waitForURL(at('/relay'))
    await page.locator(test('relay-forName')).fill('巴图家')
    await page.locator(test('relay-forPhone')).fill('138 0000 0000')
    await page.locator(test('relay-where')).fill('北边的井')
    await page.locator(test('relay-what-emergency')).check()
    await page.locator(test('relay-text')).fill('从马上摔下来，腿不能动了')
    await page.locator(test('relay-by')).fill('其其格')
    await page.locator(test('relay-submit')).click()

    await page.waitForURL(/\/alerts\//)
    const id = decodeURIComponent(new URL(page.url()).pathname.slice('/alerts/'.length))
    expect(id).toMatch(new RegExp(`^${loop.gatewayId}:g\\d+$`))
    await page.locator(test('relay-saved')).waitFor()
    const alert = page.locator(`${test('alert')}[data-alert-id="${id}"]`)
    expect(await alert.locator('.who').textContent()).toBe('代 巴图家 报 · 电话 138 0000 0000 · 地点：北边的井 · 代报人：其其格')
    await alert.locator(`${test('stage')}[data-stage="received"]`).waitFor({ timeout: 15_000 })
    await page.locator(`${test('alert')}[data-stage="resolved"]`).waitFor({ timeout: 30_000 })
    expect(withoutSent(await reached(page, id))).toEqual(WHOLE_CASE)

    // The platform saw it as an alarm, relayed by this household for that neighbour.
    const seen = loop.console.case(id)
    expect(seen).toMatchObject({ class: 'alarm', relay: { what: 'emergency', for: '巴图家', phone: '138 0000 0000', where: '北边的井', member: '其其格' } })
    await page.context().close()
  })

  it('shows a broadcast from the console in the inbox as it comes; read and passed on go back to the platform', async () => {
    const page = await loggedIn()
    await page.goto(at('/inbox'))
    await page.locator(test('inbox-none')).waitFor()
    const text = '暴风雪预警：今晚到明天有暴风雪，请把牲畜赶回圈里，不要外出放牧。'
    const sent = await loop.console.broadcast(loop.gatewayId, text, 'urgent', 24 * 3600)
    if (sent.type !== 'broadcast') throw new Error(`the console sent ${sent.type}`)
    // Live: the page was open before the broadcast came.
    const item = page.locator(`${test('inbox-item')}[data-broadcast="${sent.broadcast}"]`)
    await item.waitFor({ timeout: 15_000 })
    expect(await item.locator(test('inbox-text')).textContent()).toBe(text)
    expect(await item.locator(test('inbox-urgency')).textContent()).toBe('紧急')
    expect(await item.getAttribute('data-read')).toBe('false')

    await item.locator(test('inbox-read')).click()
    await page.locator(test('inbox-done')).waitFor()
    await item.locator(test('inbox-read-at')).waitFor()
    expect(await item.getAttribute('data-read')).toBe('true')

    // A count that is not one is answered at its broadcast, the typed number kept.
    await item.locator(test('inbox-households')).fill('0')
    await item.locator(test('inbox-passed-on')).click()
    await page.locator(test('inbox-invalid')).waitFor()
    expect(await item.locator(test('inbox-households')).inputValue()).toBe('0')
    await item.locator(test('error-households')).waitFor()

    await item.locator(test('inbox-households')).fill('12')
    await item.locator(test('inbox-passed-on')).click()
    await page.locator(test('inbox-done')).waitFor()
    expect(await item.locator(test('inbox-passed-on-done')).textContent()).toMatch(/^\d\d-\d\d \d\d:\d\d:\d\d 已转告 12 户$/)
    await screenshot(page, 'household-inbox-zh-CN')
    await page.goto(at('/inbox?lang=en'))
    expect(await item.locator(test('inbox-passed-on-done')).textContent()).toMatch(/^passed on to 12 households at /)
    await screenshot(page, 'household-inbox-en')

    // The console's broadcast view: this gateway got it, its household read it and passed it on to 12.
    const atPlatform = () =>
      loop.console
        .snapshot()
        .broadcasts.find((b) => b.broadcast === sent.broadcast)
        ?.gateways.find((g) => g.gateway === loop.gatewayId)
    await expect.poll(atPlatform, { timeout: 30_000 }).toEqual({ gateway: loop.gatewayId, terminals: expect.any(Number), got: true, householdRead: true, passedOn: 12 })
    await page.context().close()
  })

  it('refuses a POST without the CSRF token (403, the refusal page, what was typed kept) and makes no relay', async () => {
    const page = await loggedIn()
    await page.goto(at('/relay'))
    const form = { forName: '测试户', what: 'emergency', text: '没有令牌的表单', key: 'csrf-test-key-0123456789' }
    const alertsBefore = loop.console.snapshot().openAlarms.length + loop.events.filter((e) => e.type === 'alert').length

    // The session cookie goes with it (the page's own context), the token does not.
    const r = await page.request.post(at('/relay'), { form, maxRedirects: 0 })
    expect(r.status()).toBe(403)
    expect(await r.text()).toContain('data-test="refused-csrf"')
    // From the page itself, as a script on another page of the LAN cannot even do.
    const fromPage = await page.evaluate(async (f) => {
      const res = await fetch('/relay', { method: 'POST', body: new URLSearchParams(f), redirect: 'manual' })
      return { status: res.status, body: await res.text() }
    }, form)
    expect(fromPage.status).toBe(403)
    expect(fromPage.body).toContain('data-test="refused-csrf"')

    // A form whose token is stale (as after a gateway restart): the browser lands on the refusal.
    await page.locator(test('relay-forName')).fill(form.forName)
    await page.locator(test('relay-what-emergency')).check()
    await page.locator(test('relay-text')).fill(form.text)
    await page.evaluate(`document.querySelector('form[data-test="relay-form"] input[name="csrf"]').value = 'stale'`)
    const refused = page.waitForResponse((res) => res.request().method() === 'POST')
    await page.locator(test('relay-submit')).click()
    expect((await refused).status()).toBe(403)
    await page.locator(test('refused-csrf')).waitFor()
    expect(await page.locator(test('typed')).textContent()).toContain('没有令牌的表单')
    expect(await page.locator(test('typed')).textContent()).toContain('什么事: 紧急求助')
    await screenshot(page, 'household-refused-zh-CN')

    // Nothing was made: the page lists no alert for 测试户, the platform got nothing new.
    await page.goto(at('/'))
    expect(await page.locator('main').textContent()).not.toContain('测试户')
    expect(loop.console.snapshot().openAlarms.length + loop.events.filter((e) => e.type === 'alert').length).toBe(alertsBefore)
    await page.context().close()
  })

  it('answers bad input at its field, keeps what was typed, and shows markup as text, never running it', async () => {
    const page = await loggedIn()
    const markup = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'
    const pwned = () => page.evaluate('window.pwned ?? null')

    // An empty name (spaces only: the browser's `required` lets them through, the gateway does not).
    await page.goto(at('/relay'))
    await page.locator(test('relay-forName')).fill('   ')
    await page.locator(test('relay-what-medical')).check()
    await page.locator(test('relay-text')).fill(`头很疼 ${markup}`)
    const answer = page.waitForResponse((r) => r.request().method() === 'POST')
    await page.locator(test('relay-submit')).click()
    expect((await answer).status()).toBe(422)
    await page.locator(test('relay-invalid')).waitFor()
    expect(await page.locator(test('error-forName')).textContent()).toBe('必须填写。')
    expect(await page.locator(test('relay-text')).inputValue()).toBe(`头很疼 ${markup}`)
    expect(await page.locator(test('relay-what-medical')).isChecked()).toBe(true)
    expect(await pwned()).toBeNull()
    await screenshot(page, 'household-relay-error-zh-CN')

    // 161 Chinese characters: 483 bytes of UTF-8, over the 480 of the serial link, though far under 480 characters.
    await page.locator(test('relay-forName')).fill('巴图家')
    await page.locator(test('relay-text')).fill('雪'.repeat(161))
    await page.locator(test('relay-submit')).click()
    await page.locator(test('error-text')).waitFor()
    expect(await page.locator(test('error-text')).textContent()).toBe('太长了：483 字节，最多 480 字节（一个汉字3字节）。')
    expect(await page.locator(test('relay-forName')).inputValue()).toBe('巴图家')
    await expect.poll(() => page.locator(test('error-forName')).count()).toBe(0)

    // The same in English.
    await page.goto(at('/relay?lang=en'))
    await page.locator(test('relay-forName')).fill('Batu')
    await page.locator(test('relay-what-other')).check()
    await page.locator(test('relay-text')).fill('雪'.repeat(161))
    await page.locator(test('relay-submit')).click()
    expect(await page.locator(test('error-text')).textContent()).toBe('Too long: 483 bytes, at most 480 (a Chinese character is 3 bytes).')
    await screenshot(page, 'household-relay-error-en')

    // Markup in a relay that is saved: on its page and on the status page, text, not elements.
    await page.goto(at('/relay?lang=zh-CN'))
    await page.locator(test('relay-forName')).fill('<b>巴图</b>家')
    await page.locator(test('relay-what-other')).check()
    await page.locator(test('relay-text')).fill(markup)
    await page.locator(test('relay-submit')).click()
    await page.waitForURL(/\/alerts\//)
    const text = page.locator(test('alert-text'))
    expect(await text.textContent()).toBe(markup)
    expect(await text.locator('img, script').count()).toBe(0)
    expect(await page.locator('main .who').textContent()).toContain('代 <b>巴图</b>家 报')
    await page.goto(at('/'))
    await page.locator(test('alert-text'), { hasText: 'onerror' }).waitFor()
    expect(await page.locator('main img, main b:has-text("巴图")').count()).toBe(0)
    expect(await pwned()).toBeNull()
    await page.context().close()
  })

  it('switches to English and back with the link at the top; the choice stays from page to page', async () => {
    const page = await loggedIn()
    await screenshot(page, 'household-status-zh-CN')
    await page.locator(test('lang-switch')).click()
    await page.waitForURL(/lang=en/)
    expect(await page.locator('html').getAttribute('lang')).toBe('en')
    expect(await page.locator('h1').textContent()).toBe('Center household · 110 alarm gateway')
    expect(await page.locator(test('status-sentence')).textContent()).toBe('An alarm pressed now gets through to 110: it is stored and sent at once.')
    await screenshot(page, 'household-status-en')
    await page.locator(test('nav-relay')).click()
    await page.waitForURL(at('/relay'))
    expect(await page.locator('h2').first().textContent()).toBe('Relay for a neighbour')
    await page.locator(test('lang-switch')).click()
    await page.waitForURL(/lang=zh-CN/)
    expect(await page.locator('h2').first().textContent()).toBe('替邻居报警或求助')
    await page.context().close()
  })

  it('asked for nothing outside 127.0.0.1 (every file of the page is served by the gateway)', () => {
    expect(browser.outside).toEqual([])
  })
})
