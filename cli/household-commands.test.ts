/** `steppelink status | relay | inbox` against the household server with the fake household, found through a config file as on a board. */

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { checkRelay } from '../gateway/household/model.js'
import { pinPath, tokenPath, writeSecret } from '../gateway/household/web/secrets.js'
import { rig, TOKEN } from '../gateway/household/web/web.suite.js'
import { inboxCommand, relayCommand, statusCommand } from './household-commands.js'
import { DEFAULT_LOCAL_API_IO, type LocalApiIo } from './local-api.js'

const dirs: string[] = []
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

async function board(o: { token?: string; pin?: string | null; port?: number } = {}) {
  const r = await rig()
  const dir = mkdtempSync(join(tmpdir(), 'steppelink-cli-hh-'))
  dirs.push(dir)
  const data = join(dir, 'data')
  const config = join(dir, 'gateway.toml')
  writeFileSync(config, `data = "${data}"\n[household]\nlisten = "0.0.0.0"\nport = ${o.port ?? r.server.port}\n`)
  mkdirSync(data)
  writeSecret(tokenPath(data), o.token ?? TOKEN)
  if (o.pin !== null) writeSecret(pinPath(data), o.pin ?? '135790')
  const out: string[] = []
  const err: string[] = []
  const io: LocalApiIo = { ...DEFAULT_LOCAL_API_IO, stdout: (l) => out.push(l), stderr: (l) => err.push(l), addresses: () => ['192.168.4.1'] }
  return { ...r, config, data, dir, out, err, io }
}

describe('steppelink status', () => {
  it('shows the sentence, the uplink, terminals, backlog, alerts, and the page address with its PIN', async () => {
    const b = await board()
    const id = b.fake.alarm('fire')
    b.fake.advance(id, 'unconfirmed')
    expect(await statusCommand(['-c', b.config], b.io)).toBe(0)
    const text = b.out.join('\n')
    expect(text).toContain('Steppelink gateway gw-test (巴图家 (Batu)), version 0.1.0')
    expect(text).toContain('An alarm pressed now gets through to 110')
    expect(text).toMatch(/uplink\s+online since/)
    expect(text).toMatch(/terminals\s+SL-T-0001 answering, battery 87%, mains on, signal -71 dBm/)
    expect(text).toMatch(/backlog\s+alarms 0, requests 0, trouble 0, status 0/)
    expect(text).toContain(`${id}  SL-T-0001: fire  unconfirmed  Not confirmed: call 110 by phone!`)
    expect(text).toMatch(/page\s+http:\/\/192\.168\.4\.1:\d+\//)
    expect(text).toMatch(/PIN\s+135790/)
  })

  it('gives the snapshot and the page as JSON with --json', async () => {
    const b = await board()
    expect(await statusCommand(['--config', b.config, '--json'], b.io)).toBe(0)
    const v = JSON.parse(b.out.join('\n')) as { gateway: string; verdict: string; page: { urls: string[]; pin: string } }
    expect(v).toMatchObject({ gateway: 'gw-test', verdict: 'ok', page: { pin: '135790' } })
    expect(v.page.urls[0]).toMatch(/^http:\/\/192\.168\.4\.1:/)
  })

  it('takes the PIN of the config over the file, and says the page has not made one yet', async () => {
    const b = await board({ pin: null })
    expect(await statusCommand(['-c', b.config], b.io)).toBe(0)
    expect(b.out.join('\n')).toMatch(/PIN\s+not made yet/)
    writeFileSync(b.config, `data = "${b.data}"\n[household]\nlisten = "127.0.0.1"\nport = ${b.server.port}\npin = "8642000"\n`)
    b.out.length = 0
    expect(await statusCommand(['-c', b.config], b.io)).toBe(0)
    expect(b.out.join('\n')).toMatch(/PIN\s+8642000 \(household.pin of the config\)/)
    expect(b.out.join('\n')).toMatch(/page\s+http:\/\/127\.0\.0\.1:\d+\//)
  })

  it('says the gateway is not running, exit 1, when nothing answers', async () => {
    const b = await board()
    await b.server.close()
    expect(await statusCommand(['-c', b.config], b.io)).toBe(1)
    expect(b.err).toEqual([
      expect.stringMatching(/^steppelink status: the gateway is not running or its page is off: systemctl status steppelink-gateway \(nothing answered at http:\/\/127\.0\.0\.1:\d+\)$/),
    ])
  })

  it('says what is wrong with the token, the config or the flags', async () => {
    const b = await board({ token: 'x'.repeat(43) })
    expect(await statusCommand(['-c', b.config], b.io)).toBe(1)
    expect(b.err.at(-1)).toMatch(/refused the token in .*household-api-token: is .* the data directory of the gateway that runs there\?/)
    rmSync(tokenPath(b.data))
    expect(await statusCommand(['-c', b.config], b.io)).toBe(1)
    expect(b.err.at(-1)).toMatch(/no .*household-api-token: the gateway is not running or its page is off/)
    expect(await statusCommand(['-c', join(b.dir, 'missing.toml')], b.io)).toBe(1)
    expect(b.err.at(-1)).toMatch(/cannot read the config file .*missing\.toml/)
    expect(await statusCommand(['--bogus'], b.io)).toBe(2)
    expect(b.err.at(-1)).toMatch(/Unknown option '--bogus'.*See 'steppelink status --help'/)
    expect(await statusCommand(['--data', b.data, '--port', 'x'], b.io)).toBe(2)
  })

  it('finds the gateway by --data and --port without a config file', async () => {
    const b = await board()
    expect(await statusCommand(['--data', b.data, '--port', String(b.server.port)], b.io)).toBe(0)
    expect(b.out.join('\n')).toContain('An alarm pressed now gets through')
  })
})

const FLAGS = { what: '--what', forName: '--for', forPhone: '--phone', where: '--where', text: '--text', by: '--by' } as const

describe('steppelink relay', () => {
  it('relays for a neighbour and says it is saved', async () => {
    const b = await board()
    const code = await relayCommand(['-c', b.config, '--what', 'medical', '--for', 'Batu', '--phone', '13800000000', '--where', 'north well', '--text', 'fell from a horse', '--by', 'Qiqige'], b.io)
    expect(code).toBe(0)
    expect(b.fake.relays.map((r) => r.input)).toEqual([{ what: 'medical', forName: 'Batu', forPhone: '13800000000', where: 'north well', text: 'fell from a horse', by: 'Qiqige' }])
    expect(b.out[0]).toMatch(/^saved: relay gw-test:r\d+ \(alarm\) is stored on the gateway/)
  })

  it('says NOT saved and call 110 when the store refuses, exit 1; JSON with --json', async () => {
    const b = await board()
    b.fake.store = 'refused'
    expect(await relayCommand(['-c', b.config, '--what', 'fire', '--for', 'Batu'], b.io)).toBe(1)
    expect(b.err.at(-1)).toBe('steppelink relay: NOT saved (STORE_REFUSED: the disk is at its reserve). Call 110 by phone now.')
    b.fake.store = 'ok'
    expect(await relayCommand(['-c', b.config, '--what', 'livestock', '--for', 'Batu', '--text', '30 sheep', '--json'], b.io)).toBe(0)
    expect(JSON.parse(b.out.at(-1)!)).toMatchObject({ ok: true, cls: 'request', duplicate: false })
  })

  it('refuses a wrong call before asking the gateway, exit 2', async () => {
    const b = await board()
    const cases: [string[], RegExp][] = [
      [['--for', 'Batu'], /--what KIND is required/],
      [['--what', 'bomb', '--for', 'Batu'], /--what must be one of emergency, medical, fire, crime, livestock, other, got 'bomb'/],
      [['--what', 'fire', '--for', 'Batu', 'extra'], /unexpected argument 'extra'/],
    ]
    for (const [args, message] of cases) {
      expect(await relayCommand(['-c', b.config, ...args], b.io)).toBe(2)
      expect(b.err.at(-1)).toMatch(message)
    }
    expect(b.fake.relays).toHaveLength(0)
  })

  it('refuses what the rule of a relay refuses, in its words, with the flag, before asking the gateway: exit 2', async () => {
    const b = await board()
    await b.server.close()
    // The gateway is not even running: the rule (gateway/household/model.ts) answers, not the local API.
    const cases: [string[], Parameters<typeof checkRelay>[0]][] = [
      [['--what', 'fire', '--for', 'n'.repeat(65)], { what: 'fire', forName: 'n'.repeat(65) }],
      [['--what', 'fire', '--for', '巴'.repeat(22)], { what: 'fire', forName: '巴'.repeat(22) }],
      [['--what', 'fire'], { what: 'fire' }],
      [['--what', 'other', '--for', 'Batu'], { what: 'other', forName: 'Batu' }],
      [['--what', 'fire', '--for', 'Batu', '--phone', 'call me'], { what: 'fire', forName: 'Batu', forPhone: 'call me' }],
    ]
    for (const [args, sent] of cases) {
      const rule = checkRelay(sent)
      if (rule.ok) throw new Error('the rule takes it')
      b.err.length = 0
      expect(await relayCommand(['-c', b.config, ...args], b.io)).toBe(2)
      expect(b.err).toEqual(rule.errors.map((e) => `steppelink relay: not sent: ${e.message} (${FLAGS[e.field]}; ${e.code}). Nothing was saved.`))
    }
    expect(b.err).toEqual(['steppelink relay: not sent: forPhone: only digits, spaces and + - ( ) are allowed; type the number again (--phone; RELAY_INVALID). Nothing was saved.'])
    expect(b.fake.relays).toHaveLength(0)
  })

  it('sends the relay as the rule cleaned it, and shows a refusal of the gateway in its words', async () => {
    const b = await board()
    expect(await relayCommand(['-c', b.config, '--what', 'fire', '--for', '  Batu ', '--where', ' '], b.io)).toBe(0)
    expect(b.fake.relays.map((r) => r.input)).toEqual([{ what: 'fire', forName: 'Batu', text: '' }])
    b.fake.relay = () => ({ ok: false, code: 'RELAY_INVALID', field: 'where', message: 'where: not a place the platform knows' })
    expect(await relayCommand(['-c', b.config, '--what', 'fire', '--for', 'Batu'], b.io)).toBe(2)
    expect(b.err.at(-1)).toBe('steppelink relay: not sent: where: not a place the platform knows (RELAY_INVALID). Nothing was saved.')
  })
})

describe('help', () => {
  it.each([
    ['status', statusCommand, /Usage: steppelink status/],
    ['relay', relayCommand, /--what KIND {6}emergency, medical, fire, crime, livestock, other/],
    ['inbox', inboxCommand, /steppelink inbox passed-on ID --households N/],
  ] as const)('%s --help says what it does, with every option, exit 0', async (_name, command, says) => {
    const out: string[] = []
    expect(await command(['--help'], { ...DEFAULT_LOCAL_API_IO, stdout: (l) => out.push(l) })).toBe(0)
    expect(out.join('\n')).toMatch(says)
    expect(out.join('\n')).toContain('-c, --config FILE')
  })
})

describe('steppelink inbox', () => {
  it('lists broadcasts, marks one read and passed on', async () => {
    const b = await board()
    b.fake.broadcast({ id: 9001, text: 'storm tonight\u001b[2J', urgency: 'urgent', revision: 3 })
    expect(await inboxCommand(['-c', b.config], b.io)).toBe(0)
    expect(b.out.join('\n')).toMatch(/9001 {2}urgent .* unread\n {8}storm tonight\\u001b\[2J/)
    expect(await inboxCommand(['read', '9001', '-c', b.config], b.io)).toBe(0)
    expect(b.out.at(-1)).toBe('broadcast 9001 marked read; the platform will be told')
    expect(await inboxCommand(['passed-on', '9001', '--households', '12', '-c', b.config], b.io)).toBe(0)
    expect(b.fake.reads).toEqual([{ broadcast: 9001, revision: 3 }])
    expect(b.fake.passed).toEqual([{ broadcast: 9001, revision: 3, households: 12 }])
    expect(await inboxCommand(['-c', b.config, '--json'], b.io)).toBe(0)
    expect(JSON.parse(b.out.at(-1)!)).toMatchObject([{ id: 9001, passedOn: { households: 12 } }])
  })

  it('says a broadcast is unknown (exit 1), and refuses wrong calls (exit 2)', async () => {
    const b = await board()
    expect(await inboxCommand(['read', '5', '-c', b.config], b.io)).toBe(1)
    expect(b.err.at(-1)).toMatch(/no broadcast 5 in the inbox/)
    const cases: [string[], RegExp][] = [
      [['passed-on', '5'], /passed-on needs --households N/],
      [['passed-on', '5', '--households', '0'], /from 1 to 1000, got '0'/],
      [['read', 'x'], /read takes a broadcast id/],
      [['read', '5', '--households', '3'], /--households goes with passed-on/],
      [['delete', '5'], /unknown subcommand 'delete'/],
    ]
    for (const [args, message] of cases) {
      expect(await inboxCommand([...args, '-c', b.config], b.io)).toBe(2)
      expect(b.err.at(-1)).toMatch(message)
    }
  })
})
