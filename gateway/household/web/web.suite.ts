/**
 * What the household page's tests share: the server on 127.0.0.1, a free port, with the
 * fake household, a clock and timers the test moves, and a client that logs in and keeps
 * its cookie, as a phone's browser would (but without one: fetch, manual redirects).
 */

import { afterEach } from 'vitest'
import { ManualTimers } from '../../../tests/helpers/manual-timers.js'
import { FakeHousehold } from './fake-household.js'
import { type HouseholdServer, type HouseholdServerOptions, startHouseholdServer } from './server.js'

export const PIN = '246810'
export const TOKEN = 'T'.repeat(43)

const servers: HouseholdServer[] = []
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close()
})

export interface Rig {
  server: HouseholdServer
  base: string
  fake: FakeHousehold
  timers: ManualTimers
  clock: { now: number }
  /** A logged-in client. */
  client: () => Promise<Client>
}

export async function rig(o: Partial<HouseholdServerOptions> = {}): Promise<Rig> {
  const clock = { now: Date.parse('2026-12-03T08:00:00Z') }
  const timers = new ManualTimers()
  const fake = new FakeHousehold({ now: () => clock.now })
  const started = await startHouseholdServer({ household: fake, listen: '127.0.0.1', port: 0, pin: PIN, token: TOKEN, now: () => clock.now, timers, ...o })
  if (!started.ok) throw new Error(started.message)
  servers.push(started.server)
  const base = `http://127.0.0.1:${started.server.port}`
  return {
    server: started.server,
    base,
    fake,
    timers,
    clock,
    client: async () => {
      const c = new Client(base)
      const r = await c.login(PIN)
      if (r.status !== 303) throw new Error(`login failed: ${r.status}`)
      return c
    },
  }
}

export class Client {
  readonly cookies = new Map<string, string>()
  constructor(readonly base: string) {}

  #remember(r: Response): void {
    for (const c of r.headers.getSetCookie()) {
      const [pair] = c.split(';')
      const i = pair!.indexOf('=')
      const name = pair!.slice(0, i)
      const value = pair!.slice(i + 1)
      if (/Max-Age=0/.test(c)) this.cookies.delete(name)
      else this.cookies.set(name, value)
    }
  }

  #cookie(): Record<string, string> {
    return this.cookies.size > 0 ? { cookie: [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ') } : {}
  }

  async get(path: string, headers: Record<string, string> = {}): Promise<Response> {
    const r = await fetch(this.base + path, { redirect: 'manual', headers: { ...this.#cookie(), ...headers } })
    this.#remember(r)
    return r
  }

  async post(path: string, form: Record<string, string>, headers: Record<string, string> = {}): Promise<Response> {
    const r = await fetch(this.base + path, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...this.#cookie(), ...headers },
      body: new URLSearchParams(form).toString(),
    })
    this.#remember(r)
    return r
  }

  login(pin: string): Promise<Response> {
    return this.post('/login', { pin })
  }

  /** The page at `path` and the hidden fields of its first form with `action` (csrf, key, revision). */
  async form(path: string, action: string): Promise<{ html: string; fields: Record<string, string> }> {
    const html = await (await this.get(path)).text()
    const start = html.indexOf(`action="${action}"`)
    if (start === -1) throw new Error(`no form to ${action} on ${path}`)
    const form = html.slice(start, html.indexOf('</form>', start))
    const fields: Record<string, string> = {}
    for (const m of form.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)"/g)) fields[m[1]!] = m[2]!
    return { html, fields }
  }
}

/** The text of a page without tags, entities decoded, for "the page says ...". */
export function textOf(html: string): string {
  return html
    .replace(/<[^>]*>/g, ' ')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&amp;/g, '&')
    .replace(/\s+/g, ' ')
}
