/**
 * A real browser for the household page's tests and its benchmark: Debian's Chromium
 * (/usr/bin/chromium) driven by playwright-core, shown as a cheap phone would show the page.
 *
 * playwright-core never downloads a browser, and `npx playwright install` cannot work here
 * (the board and CI have no internet), so the browser is the distribution's, launched by
 * path. scripts/system-deps.mjs installs it and fonts-noto-cjk (without a CJK font a headless
 * machine renders Chinese as boxes) for `npm test`; a missing one fails here with the line
 * that installs it, never a skipped test.
 *
 * Chromium never reaches the network: background services are off by flag, host names
 * other than the loopback ones resolve to nothing (`--host-resolver-rules`), and by default
 * a route handler aborts every request a page makes to anywhere but 127.0.0.1 or
 * localhost. Every such request is recorded in `outside`: a page test expects it empty
 * (STYLE.md 20: every asset in the package). Checked with strace on the smoke test
 * (2026-12-03, Chromium 156): TCP to 127.0.0.1 only; the only other connect() calls are UDP
 * ones to 2001:4860:4860::8888, Chromium's IPv6 reachability probe, a route lookup that
 * sends no packet.
 *
 * One browser per test file (a launch takes 1 to 3 s on two cores); one context per test
 * (`newPhone`), so each test has its own cookies, its own session.
 *
 * No vitest in here: the benchmark (bench/household-page.ts) uses the same launcher.
 */

import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type BrowserContext, type BrowserContextOptions, type Page } from 'playwright-core'

/** Debian's Chromium: the wrapper script, which sets the distribution's flags and libraries. */
export const CHROMIUM = '/usr/bin/chromium'
/** A file of fonts-noto-cjk: the Chinese of the page in screenshots. */
export const CJK_FONT = '/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc'
export const INSTALL_LINE = 'apt-get update && apt-get install -y chromium fonts-noto-cjk'

/** Where `screenshot` writes when STEPPELINK_SCREENSHOTS=1: docs/screenshots/<name>.png. */
export const SCREENSHOTS = join(import.meta.dirname, '..', '..', 'docs', 'screenshots')

/** Host names a page may load from; any other request is aborted and recorded. */
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]'])

/**
 * Flags beside playwright's own defaults (which already include --disable-extensions,
 * --disable-component-update, --disable-background-networking, --no-default-browser-check).
 * Playwright refuses `--user-data-dir` in `args` ("Pass userDataDir parameter to
 * launchPersistentContext"), so the fresh profile directory is given that way.
 */
const ARGS = [
  '--headless',
  // Tests run as root here, where Chromium's sandbox refuses to start.
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-default-apps',
  '--disable-breakpad',
  '--metrics-recording-only',
  // Every host name but loopback resolves to nothing: the browser's own requests (safe
  // browsing, updates, field trials) fail before a packet leaves, whatever service asks.
  '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost',
]

/**
 * A cheap Android phone: 360 × 640 CSS pixels at 2 device pixels each, touch, zh-CN
 * (the page is Chinese first), China's time zone.
 */
export const PHONE: BrowserContextOptions = {
  viewport: { width: 360, height: 640 },
  deviceScaleFactor: 2,
  isMobile: true,
  hasTouch: true,
  locale: 'zh-CN',
  timezoneId: 'Asia/Shanghai',
}

export interface LaunchOptions {
  /**
   * Abort, with a route handler, every request a page makes to anywhere but loopback
   * (default true). Routing passes every request through Node (a round trip each) and turns
   * off the HTTP cache, so the benchmark turns it off and relies on the flags; requests
   * outside are recorded in `outside` either way.
   */
  intercept?: boolean
}

export interface PhoneOptions {
  /** The browser's language, and so the page's Accept-Language (default zh-CN). */
  locale?: 'zh-CN' | 'en'
  /** Anything else of playwright's context options (they override PHONE). */
  context?: BrowserContextOptions
}

export interface TestBrowser {
  /** A new context with PHONE's screen: cookies, storage and cache of its own. Closed by `close`. */
  newPhone(opts?: PhoneOptions): Promise<BrowserContext>
  /** A page in a new phone context (`newPhone`): one test, one session. */
  newPage(opts?: PhoneOptions): Promise<Page>
  /** Every URL a page asked for that was not on loopback, in order (aborted unless `intercept` is false). */
  readonly outside: string[]
  /** The browser's version, for reports: "156.0.8078.114". */
  readonly version: string
  /** Closes every context and the browser, and removes the profile directory. */
  close(): Promise<void>
}

/**
 * Throws, with the line that installs them, when Chromium or the CJK font is missing.
 * `paths` replaces where they are looked for (a test of this function).
 */
export function requireChromium(paths: { chromium?: string; font?: string } = {}): void {
  const chromiumPath = paths.chromium ?? CHROMIUM
  const fontPath = paths.font ?? CJK_FONT
  const missing = [!existsSync(chromiumPath) && `Chromium (${chromiumPath})`, !existsSync(fontPath) && `the CJK font (${fontPath})`].filter(Boolean)
  if (missing.length > 0) {
    throw new Error(`The browser tests need ${missing.join(' and ')}, from Debian's chromium and fonts-noto-cjk. Run:\n  ${INSTALL_LINE}\n(npm test installs them when it runs as root.)`)
  }
}

/** Whether a page may load `url` (loopback over http or ws, or no network at all: data:, blob:, about:). */
export function isLocal(url: URL): boolean {
  if (!/^(https?|wss?):$/.test(url.protocol)) return true
  return LOOPBACK.has(url.hostname)
}

/**
 * Starts Chromium in a fresh profile under the system's temporary directory. Call once per
 * test file (beforeAll) and `close` it after (afterAll).
 */
export async function launchBrowser(opts: LaunchOptions = {}): Promise<TestBrowser> {
  requireChromium()
  const intercept = opts.intercept ?? true
  const profile = mkdtempSync(join(tmpdir(), 'steppelink-chromium-'))
  let persistent: BrowserContext
  try {
    // The persistent context is the profile's own; every test gets a context of its own
    // from the same browser below, so the persistent one is only the way to the profile.
    persistent = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, args: ARGS, headless: true })
  } catch (e) {
    rmSync(profile, { recursive: true, force: true })
    throw e
  }
  const browser = persistent.browser()
  if (browser === null) {
    await persistent.close()
    rmSync(profile, { recursive: true, force: true })
    throw new Error('playwright gave no browser for the persistent context')
  }
  const outside: string[] = []
  const contexts: BrowserContext[] = []

  const newPhone = async (o: PhoneOptions = {}): Promise<BrowserContext> => {
    const ctx = await browser.newContext({ ...PHONE, locale: o.locale ?? 'zh-CN', ...o.context })
    contexts.push(ctx)
    ctx.on('request', (r) => {
      if (!isLocal(new URL(r.url()))) outside.push(r.url())
    })
    if (intercept)
      await ctx.route(
        (url) => !isLocal(url),
        (route) => route.abort('blockedbyclient'),
      )
    return ctx
  }

  return {
    newPhone,
    async newPage(o) {
      return (await newPhone(o)).newPage()
    },
    outside,
    version: browser.version(),
    async close() {
      try {
        for (const ctx of contexts) await ctx.close().catch(() => {})
        await persistent.close()
      } finally {
        rmSync(profile, { recursive: true, force: true })
      }
    },
  }
}

/**
 * The fonts Chromium actually drew the text of the first element matching `selector` with
 * (CDP `CSS.getPlatformFontsForNode`), e.g. `[{ familyName: 'Noto Sans CJK SC', glyphCount: 6 }]`:
 * how a test knows the Chinese is not boxes.
 */
export async function platformFonts(page: Page, selector: string): Promise<{ familyName: string; glyphCount: number }[]> {
  const cdp = await page.context().newCDPSession(page)
  try {
    await cdp.send('DOM.enable')
    await cdp.send('CSS.enable')
    const { root } = await cdp.send('DOM.getDocument', { depth: -1 })
    const { nodeId } = await cdp.send('DOM.querySelector', { nodeId: root.nodeId, selector })
    if (nodeId === 0) throw new Error(`platformFonts: nothing matches ${selector}`)
    const { fonts } = await cdp.send('CSS.getPlatformFontsForNode', { nodeId })
    return fonts.map((f) => ({ familyName: f.familyName, glyphCount: f.glyphCount }))
  } finally {
    await cdp.detach()
  }
}

export interface ScreenshotOptions {
  /** Write here instead, always (a test that looks at its own picture); default: docs/screenshots, and only when STEPPELINK_SCREENSHOTS=1. */
  dir?: string
}

/**
 * The page as the phone shows it, whole (scrolled), as PNG. Written to
 * docs/screenshots/<name>.png only when STEPPELINK_SCREENSHOTS=1, so that an ordinary test
 * run does not rewrite the docs: `STEPPELINK_SCREENSHOTS=1 npx vitest run <browser test>`
 * refreshes them. `name`: lower-case words and hyphens, e.g. `status-zh-CN`.
 */
export async function screenshot(page: Page, name: string, opts: ScreenshotOptions = {}): Promise<{ png: Buffer; path: string | null }> {
  if (!/^[A-Za-z0-9][A-Za-z0-9-]*$/.test(name)) throw new Error(`screenshot name ${JSON.stringify(name)}: letters, digits and hyphens only`)
  // Animations and the caret would make two runs of the same page differ.
  const png = await page.screenshot({ fullPage: true, animations: 'disabled', caret: 'hide' })
  const dir = opts.dir ?? (process.env.STEPPELINK_SCREENSHOTS === '1' ? SCREENSHOTS : null)
  if (dir === null) return { png, path: null }
  mkdirSync(dir, { recursive: true })
  const path = join(dir, `${name}.png`)
  writeFileSync(path, png)
  return { png, path }
}
