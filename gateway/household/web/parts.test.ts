/** The household page's parts on their own: the string tables, the script, live updates under a slow phone, the PIN limit, the secret files, attaching to a gateway. */

import { EventEmitter } from 'node:events'
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Script } from 'node:vm'
import { afterEach, describe, expect, it } from 'vitest'
import { ManualTimers } from '../../../tests/helpers/manual-timers.js'
import type { Logger } from '../../log.js'
import { APP_JS, STYLE_CSS } from './assets.js'
import { attachHouseholdPage } from './attach.js'
import { FakeHousehold } from './fake-household.js'
import { escapeHtml, html, raw } from './html.js'
import { LiveUpdates, type Sink } from './live.js'
import { LoginLimit } from './login-limit.js'
import { isPin, isToken, makePin, makeToken, pinPath, readOrMakeSecret, tokenPath } from './secrets.js'
import { EN, ZH } from './strings.js'

const dirs: string[] = []
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'steppelink-hh-'))
  dirs.push(d)
  return d
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

describe('strings', () => {
  it('has the same keys in both languages, and the same {placeholders} in each pair', () => {
    expect(Object.keys(EN).sort()).toEqual(Object.keys(ZH).sort())
    const holes = (s: string) => [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort()
    for (const k of Object.keys(ZH) as (keyof typeof ZH)[]) {
      expect(holes(EN[k]), k).toEqual(holes(ZH[k]))
      expect(ZH[k].trim(), k).not.toBe('')
      expect(EN[k].trim(), k).not.toBe('')
    }
  })
})

describe('html', () => {
  it('escapes every value but markup it made itself', () => {
    expect(escapeHtml(`<a href="x">'&'</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;')
    const inner = html`<b>${'<i>'}</b>`
    expect(html`<p title="${'"onmouseover="x'}">${inner}${['<', raw('<br>')]}${null}${undefined}${false}${3}</p>`.text).toBe('<p title="&quot;onmouseover=&quot;x"><b>&lt;i&gt;</b>&lt;<br>3</p>')
  })
})

describe('assets', () => {
  it('the script parses as a classic script, and neither file loads anything from elsewhere', () => {
    expect(() => new Script(APP_JS)).not.toThrow()
    expect(APP_JS).not.toMatch(/eval\(|new Function|https?:/)
    expect(STYLE_CSS).not.toMatch(/@import|url\(|@font-face/)
  })
})

/** A socket's write end that a test makes slow: write returns false while `full`, and 'drain' is emitted by the test. */
class SlowSink extends EventEmitter implements Sink {
  readonly written: string[] = []
  full = false
  ended = false
  write(chunk: string): boolean {
    this.written.push(chunk)
    return !this.full
  }
  end(): void {
    this.ended = true
    this.emit('close')
  }
}

describe('live updates', () => {
  const setup = () => {
    const fake = new FakeHousehold({ now: () => 0 })
    const timers = new ManualTimers()
    const live = new LiveUpdates({ household: fake, timers })
    const render = (s: ReturnType<FakeHousehold['snapshot']>) => `data: ${s.alerts.map((a) => `${a.id}=${a.stage}`).join(',')}\n\n`
    return { fake, timers, live, render }
  }

  it('gathers changes into one message per 50 ms, and sends nothing when nothing it shows changed', () => {
    const { fake, timers, live, render } = setup()
    const sink = new SlowSink()
    live.add(sink, { render })
    expect(sink.written).toEqual(['retry: 3000\n\n', 'data: \n\n'])
    const id = fake.alarm()
    fake.advance(id, 'sent')
    expect(timers.delays()).toEqual([50, 25_000])
    timers.fire(50)
    expect(sink.written.slice(2)).toEqual([`data: ${id}=sent\n\n`])
    fake.terminal({ terminal: 'SL-T-0001', battery: 50 })
    timers.fire(50)
    expect(sink.written).toHaveLength(3)
  })

  it('never queues for a slow phone: while its socket is full only the newest message waits, and goes when it drains', () => {
    const { fake, timers, live, render } = setup()
    const sink = new SlowSink()
    live.add(sink, { render })
    const id = fake.alarm()
    sink.full = true
    timers.fire(50)
    for (const stage of ['sent', 'received', 'acknowledged'] as const) {
      fake.advance(id, stage)
      timers.fire(50)
    }
    // The message written when the buffer filled, then nothing until it drains.
    expect(sink.written.slice(2)).toEqual([`data: ${id}=stored\n\n`])
    // Heartbeats wait too.
    timers.fire(25_000)
    expect(sink.written).toHaveLength(3)
    sink.full = false
    sink.emit('drain')
    expect(sink.written.slice(3)).toEqual([`data: ${id}=acknowledged\n\n`])
    timers.fire(25_000)
    expect(sink.written.at(-1)).toBe(': heartbeat\n\n')
  })

  it('stops listening to the household when the last page closes, and ends every stream at close()', () => {
    const { fake, live, render } = setup()
    const a = new SlowSink()
    const b = new SlowSink()
    live.add(a, { render })
    live.add(b, { render })
    expect(fake.listeners).toBe(1)
    a.emit('close')
    expect(live.size).toBe(1)
    live.close()
    expect(b.ended).toBe(true)
    expect(fake.listeners).toBe(0)
    const late = new SlowSink()
    live.add(late, { render })
    expect(late.ended).toBe(true)
  })
})

describe('PIN limit', () => {
  it('locks every address after 20 wrong PINs from many addresses, and a right PIN resets it', () => {
    let now = 0
    const limit = new LoginLimit({ now: () => now })
    for (let i = 0; i < 20; i++) {
      expect(limit.check(`10.0.0.${i}`).allowed).toBe(true)
      limit.failed(`10.0.0.${i}`)
    }
    expect(limit.check('10.0.0.99')).toEqual({ allowed: false, retryAfterMs: 30_000 })
    now += 30_000
    expect(limit.check('10.0.0.99').allowed).toBe(true)
    limit.failed('10.0.0.99')
    expect(limit.check('10.0.0.98')).toEqual({ allowed: false, retryAfterMs: 60_000 })
    now += 60_000
    limit.succeeded('10.0.0.98')
    limit.failed('10.0.0.97')
    expect(limit.check('10.0.0.97').allowed).toBe(true)
  })

  it('caps the wait of one address at 15 min and forgets it a day after its last wrong PIN', () => {
    let now = 0
    const limit = new LoginLimit({ now: () => now, overall: 1e9 })
    for (let i = 0; i < 30; i++) {
      now += 16 * 60_000
      limit.failed('a')
    }
    expect(limit.check('a')).toEqual({ allowed: false, retryAfterMs: 15 * 60_000 })
    now += 25 * 3600_000
    limit.failed('a')
    expect(limit.check('a').allowed).toBe(true)
  })
})

describe('secrets', () => {
  it('makes a 6-digit PIN and a token once, 0600, and reads them at the next start', () => {
    const dir = tempDir()
    const pin = readOrMakeSecret(pinPath(dir), isPin, makePin)
    expect(pin.made).toBe(true)
    expect(pin.value).toMatch(/^[0-9]{6}$/)
    expect(statSync(pinPath(dir)).mode & 0o777).toBe(0o600)
    expect(readOrMakeSecret(pinPath(dir), isPin, makePin)).toEqual({ value: pin.value, made: false, warning: null })
    const token = readOrMakeSecret(tokenPath(dir), isToken, makeToken)
    expect(token.value).toMatch(/^[A-Za-z0-9_-]{43}$/)
    expect(statSync(tokenPath(dir)).mode & 0o777).toBe(0o600)
  })

  it('makes a new one for an empty or garbled file, and closes a file others could read', () => {
    const dir = tempDir()
    writeFileSync(pinPath(dir), '')
    const fresh = readOrMakeSecret(pinPath(dir), isPin, makePin)
    expect(fresh.made).toBe(true)
    expect(fresh.warning).toMatch(/did not hold a valid secret/)
    writeFileSync(pinPath(dir), '123456\n')
    chmodSync(pinPath(dir), 0o644)
    const open = readOrMakeSecret(pinPath(dir), isPin, makePin)
    expect(open).toMatchObject({ value: '123456', made: false })
    expect(open.warning).toMatch(/readable by other users/)
    expect(statSync(pinPath(dir)).mode & 0o777).toBe(0o600)
  })
})

describe('attaching to the gateway', () => {
  const logger = () => {
    const lines: { level: string; fields: object; msg: string }[] = []
    const log: Logger = {
      error: (fields, msg) => lines.push({ level: 'error', fields, msg }),
      warn: (fields, msg) => lines.push({ level: 'warn', fields, msg }),
      info: (fields, msg) => lines.push({ level: 'info', fields, msg }),
      debug: () => {},
      child: () => log,
    }
    return { log, lines }
  }

  it('starts the page with a PIN made at first start, printed in the log, and the token file', async () => {
    const data = tempDir()
    const { log, lines } = logger()
    const server = await attachHouseholdPage({ data, household: { enabled: true, listen: '127.0.0.1', port: 0 } }, new FakeHousehold(), log)
    expect(server).not.toBeNull()
    const pin = readFileSync(pinPath(data), 'utf8').trim()
    expect(lines.at(-1)!.msg).toContain(`PIN ${pin} (made now`)
    expect(lines.at(-1)!.msg).toContain(server!.url)
    expect(isToken(readFileSync(tokenPath(data), 'utf8').trim())).toBe(true)
    await server!.close()
  })

  it('logs a port in use with what to do, and gives null: the gateway runs on', async () => {
    const blocker = createServer()
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r))
    const port = (blocker.address() as { port: number }).port
    const { log, lines } = logger()
    try {
      expect(await attachHouseholdPage({ data: tempDir(), household: { enabled: true, listen: '127.0.0.1', port, pin: '123456' } }, new FakeHousehold(), log)).toBeNull()
      expect(lines.at(-1)).toMatchObject({ level: 'error', fields: { code: 'EADDRINUSE' } })
      expect(lines.at(-1)!.msg).toMatch(/in use by another program.*household\.port.*alarms are not affected/)
    } finally {
      blocker.close()
    }
  })

  it('logs an unwritable data directory, and gives null', async () => {
    const { log, lines } = logger()
    expect(await attachHouseholdPage({ data: '/nonexistent/steppelink', household: { enabled: true, listen: '127.0.0.1', port: 0 } }, new FakeHousehold(), log)).toBeNull()
    expect(lines.at(-1)!.msg).toMatch(/cannot read or write its PIN or token in \/nonexistent\/steppelink/)
  })

  it('does nothing when household.enabled is false', async () => {
    const { log, lines } = logger()
    expect(await attachHouseholdPage({ data: tempDir(), household: { enabled: false, listen: '127.0.0.1', port: 0 } }, new FakeHousehold(), log)).toBeNull()
    expect(lines.at(-1)!.msg).toMatch(/household page off/)
  })
})
