/**
 * The browser harness itself (tests/helpers/browser.ts), on the stand-in page
 * (tests/helpers/stand-in-page.ts): Debian's Chromium starts, shows Chinese with a real
 * font, logs in with a PIN, posts a form and follows its 303, takes a live stage by
 * server-sent events, takes a screenshot, and reaches nothing but 127.0.0.1. If this file
 * fails, the household page's browser tests cannot say anything.
 */

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { INSTALL_LINE, launchBrowser, PHONE, platformFonts, requireChromium, screenshot, type TestBrowser } from './helpers/browser.js'
import { startStandInPage, type StandInPage } from './helpers/stand-in-page.js'

let browser: TestBrowser
let site: StandInPage
let shots = ''

beforeAll(async () => {
  shots = mkdtempSync(join(tmpdir(), 'steppelink-shots-'))
  site = await startStandInPage()
  browser = await launchBrowser()
})

afterAll(async () => {
  await browser?.close()
  await site?.close()
  if (shots) rmSync(shots, { recursive: true, force: true })
})

async function logIn(page: Page, pin: string): Promise<void> {
  await page.getByLabel('PIN').fill(pin)
  await page.getByRole('button', { name: '登录' }).click()
}

describe('the browser harness on a stand-in page', () => {
  it('logs in (a wrong PIN first), posts a form through its 303 and sees a stage arrive by server-sent events', async () => {
    const page = await browser.newPage()
    await page.goto(site.url)
    expect(new URL(page.url()).pathname).toBe('/login')

    await logIn(page, site.pin === '000000' ? '111111' : '000000')
    await page.locator('[data-test="error"]').waitFor()
    expect(await page.locator('[data-test="error"]').textContent()).toBe('PIN 不对，请再试一次。')

    await logIn(page, site.pin)
    await page.waitForURL(`${site.url}/`)
    expect(await page.locator('h1').textContent()).toBe('中心户 · 状态')

    // Markup in the text is shown as text, never as markup.
    const text = '<b>羊群</b> 走失了，在东边的井'
    await page.getByLabel('给邻居的留言').fill(text)
    const posted = page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/note')
    await page.getByRole('button', { name: '保存' }).click()
    expect((await posted).status()).toBe(303)
    await page.waitForURL(`${site.url}/?saved=0`)
    expect(await page.locator('[data-test="saved"]').textContent()).toBe(`已保存：${text}`)
    expect(site.notes).toEqual([text])

    await page.locator('body[data-live="yes"]').waitFor()
    expect(site.listeners).toBe(1)
    site.setStage('已确认收到')
    await page.locator('[data-test="stage"]', { hasText: '已确认收到' }).waitFor({ timeout: 5_000 })

    const shot = await screenshot(page, 'browser-smoke', { dir: shots })
    expect(shot.path).toBe(join(shots, 'browser-smoke.png'))
    // A PNG, as wide as the phone's screen in device pixels (IHDR's width, bytes 16-19).
    expect(shot.png.subarray(1, 4).toString('latin1')).toBe('PNG')
    expect(shot.png.readUInt32BE(16)).toBe(PHONE.viewport!.width * PHONE.deviceScaleFactor!)

    expect(browser.outside).toEqual([])
    await page.context().close()
  })

  it('draws the Chinese with a CJK font (fonts-noto-cjk), not boxes', async () => {
    const page = await browser.newPage()
    await page.goto(`${site.url}/login`)
    const fonts = await platformFonts(page, 'h1')
    expect(fonts.map((f) => f.familyName).join(', ')).toMatch(/Noto Sans CJK/)
    await page.context().close()
  })

  it('gives each test a context of its own (no session carried over), in English when asked', async () => {
    const page = await browser.newPage({ locale: 'en' })
    await page.goto(site.url)
    expect(new URL(page.url()).pathname).toBe('/login')
    expect(await page.evaluate('navigator.language')).toBe('en')
    await page.context().close()
  })

  it('names the packages to install when Chromium or the font is missing, rather than skipping', () => {
    expect(() => requireChromium()).not.toThrow()
    expect(() => requireChromium({ chromium: '/nonexistent/chromium' })).toThrow(INSTALL_LINE)
    expect(() => requireChromium({ font: '/nonexistent/font.ttc' })).toThrow(/the CJK font \(\/nonexistent\/font\.ttc\)/)
  })

  it('reaches nothing outside 127.0.0.1: the requests are aborted and recorded', async () => {
    const page = await browser.newPage()
    await page.goto(`${site.url}/login`)
    const before = browser.outside.length
    const tries = ['http://192.0.2.1/font.woff2', 'https://example.com/cdn.js']
    for (const url of tries) {
      expect(await page.evaluate(`fetch(${JSON.stringify(url)}).then(() => 'reached', () => 'blocked')`)).toBe('blocked')
    }
    expect(browser.outside.slice(before)).toEqual(tries)
    await page.context().close()
  })
})
