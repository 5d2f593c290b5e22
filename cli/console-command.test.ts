/**
 * `steppelink console` and `steppelink console broadcast` against aedes on 127.0.0.1, with
 * fake gateways (tests/helpers/console-harness.ts): the JSON lines, the plain lines, the
 * keys, the usage errors, the help, one broadcast and its withdrawal.
 */

import { PassThrough } from 'node:stream'
import { afterEach, describe, expect, it } from 'vitest'
import { waitFor } from '../device-sim/wait.js'
import { DEFAULT_TOPIC_PREFIX, encodePayload, parseCommand, type Command } from '../protocol/mqtt.js'
import { freePort } from '../tests/helpers/broker.js'
import { aedes, alarm, birth, callback, cleanUp, CONTROL, fakeGateway, hostileGateway, io, T0, trouble, uniq } from '../tests/helpers/console-harness.js'
import { consoleCommand, tokenize } from './console-command.js'

afterEach(cleanUp)

describe('requests are cases [CONSOLE-3] [CONSOLE-6]', () => {
  it('keys: a takes the alarms first, then the requests; d goes to a request only when it is selected', async () => {
    const broker = await aedes()
    const gw = await fakeGateway(broker.url)
    const t = io()
    const stdin = new PassThrough()
    const run = consoleCommand(['--broker', broker.url, '--id', uniq('keys')], { ...t.io, stdin })
    await waitFor('connected', () => t.out.join('').includes('BROKER   connected'))
    const r = callback(gw.id, 41)
    await gw.publish('event', encodePayload(r, 'cbor'))
    await gw.publish('alert', encodePayload(alarm(gw.id, 42), 'cbor'))
    await waitFor('the receipts', () => gw.of('receipt').length === 2)

    stdin.write('a\n')
    await waitFor('the alarm acknowledged first', () => gw.of('acknowledged')[0]?.alert === 'T4-00123:42')
    stdin.write('a\n')
    const [, ack] = await waitFor('then the request', () => gw.of('acknowledged').length === 2 && gw.of('acknowledged'))
    expect(ack).toMatchObject({ alert: r.id, text: '110 centre will call you back' })
    stdin.write('d\n\n\n') // nothing selected: the alarm
    await waitFor('the dispatch to the alarm', () => gw.of('dispatched')[0]?.alert === 'T4-00123:42')
    stdin.write('d\n')
    await waitFor('no second alarm to dispatch', () => t.out.join('').includes('no open alarm waiting for a dispatch'))
    stdin.write('2\nd\nHerder Batu\n0\n') // the request, selected
    await waitFor('the dispatch to the request', () => gw.of('dispatched')[1]?.alert === r.id)
    stdin.write('r\nCalled back\n') // still selected
    const [resolved] = await waitFor('the resolve', () => gw.of('resolved').length === 1 && gw.of('resolved'))
    expect(resolved).toMatchObject({ alert: r.id, text: 'Called back' })
    stdin.write('q\n')
    expect(await run).toBe(0)
    expect(t.out.join('')).toMatch(/console stopped: 1 alarm \(1 still open\), 1 request \(0 still open\)/)
    expect(gw.rejected).toEqual([])
  })
})

describe('text from the wire on the screen [CONSOLE-9]', () => {
  it('the same through `steppelink console`: plain lines, and the live view on a terminal', async () => {
    const broker = await aedes()
    const { publishAll } = await hostileGateway(broker.url)
    const plain = io()
    const stdin = new PassThrough()
    const runPlain = consoleCommand(['--broker', broker.url, '--id', uniq('plain')], { ...plain.io, stdin })
    const live = io()
    const runLive = consoleCommand(['--broker', broker.url, '--id', uniq('live')], { ...live.io, isTTY: true, env: { NO_COLOR: '1' }, size: () => ({ columns: 400, rows: 60 }) })
    await waitFor('both connected', () => plain.out.join('').includes('BROKER   connected') && live.out.join('').includes('connected'))
    await publishAll()
    await waitFor('the plain lines', () => plain.out.join('').includes('CONSOLE_UNDECODABLE') && plain.out.join('').includes('REPLY'))
    await waitFor('the live view', () => live.out.join('').includes('avalanche'))
    // A note quotes the alarm's id.
    stdin.write('a\n')
    await waitFor('the note of the acknowledgement', () => plain.out.join('').includes('NOTE     acknowledged alarm T4-00123:1'))
    plain.abort.abort()
    live.abort.abort()
    expect(await runPlain).toBe(0)
    expect(await runLive).toBe(0)

    for (const line of plain.lines()) expect(line).not.toMatch(CONTROL)
    expect(plain.out.join('')).toContain('Fire at the north well')
    // The live view's own sequences (alternate screen, home, erase) are all it may contain.
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the live view's own ESC sequences, removed so that any other control character is found
    const own = /\x1b\[\?1049[hl]|\x1b\[H|\x1b\[2J|\x1b\[K|\x1b\[J/g
    for (const line of live.out.join('').replace(own, '').split('\n')) expect(line).not.toMatch(CONTROL)
  })
})

describe('steppelink console', () => {
  it('--json: one line per event with type, id, gateway, terminal, code, kind, time, receivedAt, ageMs, duplicate', async () => {
    const broker = await aedes()
    const gw = await fakeGateway(broker.url)
    const t = io()
    const run = consoleCommand(['--broker', broker.url, '--json', '--ack', 'auto', '--id', uniq('json')], t.io)
    const parsed = () => t.lines().map((l) => JSON.parse(l) as Record<string, unknown>)
    await waitFor('connected', () => parsed().some((l) => l.type === 'connection' && l.kind === 'connected'))
    await gw.publish('state', birth(gw.id, 1), true)
    const a = alarm(gw.id, 42, { time: { at: Date.now() - 1500, estimated: false } })
    await gw.publish('alert', encodePayload(a, 'cbor'))
    await gw.publish('alert', encodePayload({ ...a, attempt: 2 }, 'json'))
    await gw.publish('event', encodePayload({ ...trouble(gw.id, 3), time: { at: T0, estimated: true } }, 'cbor'))
    await waitFor('the lines', () => parsed().filter((l) => l.type === 'command-sent').length === 4 && parsed().some((l) => l.type === 'event'))
    t.abort.abort()
    expect(await run).toBe(0)

    const lines = parsed()
    for (const l of lines) expect(Object.keys(l)).toEqual(expect.arrayContaining(['type', 'id', 'gateway', 'terminal', 'code', 'kind', 'time', 'receivedAt', 'ageMs']))
    const alerts = lines.filter((l) => l.type === 'alert')
    expect(alerts).toHaveLength(2)
    expect(alerts[0]).toMatchObject({ id: a.id, gateway: gw.id, terminal: 'T4-00123', code: 101, kind: 'emergency', time: a.time, attempt: 1 })
    expect(alerts[0]).not.toHaveProperty('duplicate')
    expect(alerts[1]).toMatchObject({ id: a.id, attempt: 2, duplicate: true })
    const age = alerts[0]!.ageMs as number
    expect(age).toBeGreaterThanOrEqual(1500)
    expect(alerts[0]!.receivedAt as number).toBe(a.time.at + age)
    expect(lines.find((l) => l.type === 'event')).toMatchObject({ kind: 'mains-lost', code: 301, ageMs: null, class: 'trouble' })
    expect(lines.find((l) => l.type === 'state')).toMatchObject({ kind: 'birth', gateway: gw.id, session: 1, online: true })
    const sent = lines.filter((l) => l.type === 'command-sent')
    expect(sent.map((l) => l.kind).sort()).toEqual(['acknowledged', 'receipt', 'receipt', 'time'])
    expect(sent.find((l) => l.kind === 'acknowledged')).toMatchObject({ gateway: gw.id, terminal: 'T4-00123', alert: a.id, command: { by: 'Operator on duty' } })
    expect(t.err.join('')).toMatch(/console stopped: 1 alarm \(1 still open\)/)
  })

  it('without a terminal: plain lines, no ANSI; keys from standard input acknowledge, dispatch, resolve, broadcast, quit', async () => {
    const broker = await aedes()
    const gw = await fakeGateway(broker.url)
    const t = io()
    const stdin = new PassThrough()
    const run = consoleCommand(['--broker', broker.url, '--id', uniq('keys'), '--unit', 'Patrol car 3, Abag'], { ...t.io, stdin })
    await waitFor('connected', () => t.out.join('').includes('BROKER   connected'))
    await gw.publish('alert', encodePayload(alarm(gw.id, 42), 'cbor'))
    await gw.publish('alert', encodePayload(alarm(gw.id, 43, { kind: 'fire', code: 110 }), 'cbor'))
    await waitFor('the receipts', () => gw.of('receipt').length === 2)

    stdin.write('a\n')
    await waitFor('the acknowledgement of the oldest', () => gw.of('acknowledged')[0]?.alert === 'T4-00123:42')
    stdin.write('2\nd\n\n25\n') // select the fire; dispatch: the default unit, eta 25
    const [d] = await waitFor('the dispatch', () => gw.of('dispatched').length === 1 && gw.of('dispatched'))
    expect(d).toMatchObject({ alert: 'T4-00123:43', unit: 'Patrol car 3, Abag', eta: 25 })
    stdin.write('r\n\x1b\n') // a question cancelled with Esc sends nothing
    await waitFor('the note', () => t.out.join('').includes('resolve cancelled'))
    stdin.write('r\nFire out, nobody hurt\n')
    const [r] = await waitFor('the resolve', () => gw.of('resolved').length === 1 && gw.of('resolved'))
    expect(r).toMatchObject({ alert: 'T4-00123:43', text: 'Fire out, nobody hurt' })
    stdin.write('b\n\nwarning\nBlizzard tomorrow night\n')
    const [b] = await waitFor('the broadcast', () => gw.of('broadcast').length === 1 && gw.of('broadcast'))
    expect(b).toMatchObject({ topic: gw.topics.allCommand, urgency: 'warning', text: 'Blizzard tomorrow night' })
    stdin.write('q\n')
    expect(await run).toBe(0)

    const text = t.out.join('')
    expect(text).not.toContain('\x1b')
    expect(text).toMatch(/ALERT +T4-00123:42 +emergency \(101\) from T4-00123 via .*NEW ALARM/)
    expect(text).toMatch(/SENT +acknowledged T4-00123:42 by "Operator on duty"/)
    expect(text).toMatch(/console stopped: 2 alarms \(1 still open\)/)
    expect(gw.rejected).toEqual([])
  })

  it('tokenize: characters, arrows, a lone Escape', () => {
    expect(tokenize('a\x1b[A\x1b[B\x1bq\x1b[2~')).toEqual([{ kind: 'char', ch: 'a' }, { kind: 'up' }, { kind: 'down' }, { kind: 'esc' }, { kind: 'char', ch: 'q' }])
  })

  it.each(
    (
      [
        [[], /--broker is required/],
        [['--broker', 'localhost:1883'], /--broker must be an mqtt:\/\/.* got 'localhost:1883'/],
        [['--broker', 'not a url'], /--broker must be a URL/],
        [['--broker', 'mqtt://h', '--ack', 'sometimes'], /--ack must be one of auto, manual, none, got 'sometimes'/],
        [['--broker', 'mqtt://h', '--dispatch-after', 'soon'], /--dispatch-after must be seconds from 0 to 2000000, got 'soon'/],
        [['--broker', 'mqtt://h', '--resolve-after=-5'], /--resolve-after must be seconds/],
        [['--broker', 'mqtt://h', '--eta', '1.5'], /--eta must be whole minutes/],
        [['--broker', 'mqtt://h', '--id', 'desk/1'], /--id must be 1-59 of/],
        [['--broker', 'mqtt://h', '--prefix', 'a/#'], /--prefix must be topic levels/],
        [['--broker', 'mqtt://h', '--unit', ''], /--unit must be 1-100 characters/],
        [['--broker', 'mqtt://h', '--colour'], /Unknown option '--colour'/],
        [['--broker', 'mqtt://h', 'extra'], /Unexpected argument 'extra'|positional/i],
        [['broadcast', '--broker', 'mqtt://h', 'text'], /--to is required/],
        [['broadcast', '--broker', 'mqtt://h', '--to', 'all'], /text of the broadcast is missing/],
        [['broadcast', '--broker', 'mqtt://h', '--to', 'all', 'Storm', 'tonight'], /one argument: put it in quotes/],
        [['broadcast', '--broker', 'mqtt://h', '--to', 'all', '--urgency', 'severe', 'x'], /--urgency must be one of info, warning, urgent, got 'severe'/],
        [['broadcast', '--broker', 'mqtt://h', '--to', 'all', '--expires-in', '0', 'x'], /--expires-in must be seconds above 0/],
        [['broadcast', '--broker', 'mqtt://h', '--to', 'all', '--broadcast-id', '1.5', 'x'], /--broadcast-id must be a whole number/],
        [['broadcast', '--broker', 'mqtt://h', '--to', 'area:a+b', 'x'], /area name 'a\+b'/],
        [['broadcast', '--broker', 'mqtt://h', '--to', 'all', '暴'.repeat(901)], /15 display parts/],
        [['--broker', 'mqtt://h', '--eta'], /argument missing/],
        [['broadcast', '--broker', 'mqtt://h', '--withdraw', '9001'], /--to is required/],
        [['broadcast', '--broker', 'mqtt://h', '--to', 'all', '--withdraw', '1.5'], /--withdraw must be a broadcast id, a whole number from 0 to 4294967295, got '1.5'/],
        [['broadcast', '--broker', 'mqtt://h', '--to', 'all', '--withdraw', '4294967296'], /--withdraw must be a broadcast id/],
        [['broadcast', '--broker', 'mqtt://h', '--to', 'all', '--withdraw', '9001', 'Storm'], /--withdraw takes no text/],
        [
          ['broadcast', '--broker', 'mqtt://h', '--to', 'all', '--withdraw', '9001', '--urgency', 'urgent', '--expires-in', '60'],
          /--withdraw takes a broadcast back: it has no --urgency, --expires-in/,
        ],
        [['broadcast', '--broker', 'mqtt://h', '--to', 'area:a/b', '--withdraw', '9001'], /area name 'a\/b'/],
        [['key-rotate', '--broker', 'mqtt://h', '--to', 'all', '--next-key', '0123456789abcdef'], /--signing-key is required: a key-rotate must be signed/],
        [['key-rotate', '--broker', 'mqtt://h', '--to', 'all', '--signing-key', 'platform.key'], /--next-key is required/],
        [['key-rotate', '--broker', 'mqtt://h', '--next-key', '0123456789abcdef', '--signing-key', 'k'], /--to is required/],
        [['key-rotate', '--broker', 'mqtt://h', '--to', 'all', '--next-key', 'x', '--signing-key', 'k', '--valid-for', '10'], /--valid-for must be whole seconds from 60/],
        [['key-rotate', '--broker', 'mqtt://h', '--to', 'all', '--next-key', '/nonexistent/platform.pub', '--signing-key', 'k'], /neither a key id \(16 hex digits, lower case\) nor a file/],
        [['key-rotate', '--broker', 'mqtt://h', '--to', 'all', '--next-key', '0123456789abcdef', '--signing-key', '/nonexistent/platform.key'], /cannot read the signing key/],
        [['key-rotate', '--broker', 'mqtt://h', '--to', 'all', '--next-key', '0123456789abcdef', '--signing-key', 'k', 'extra'], /Unexpected argument 'extra'|positional/i],
      ] as [string[], RegExp][]
    ).map(([args, message]) => [args.join(' ').slice(0, 60), args, message] as const),
  )('usage error: %s', async (_label, args, message) => {
    const t = io()
    expect(await consoleCommand(args, t.io)).toBe(2)
    const err = t.err.join('')
    expect(err).toMatch(message)
    expect(err).toMatch(/See 'steppelink console( broadcast| key-rotate)? --help'\.\n$/)
    expect(t.out).toEqual([])
  })

  it('--help documents every option, with its default, and the keys', async () => {
    const t = io()
    expect(await consoleCommand(['--help'], t.io)).toBe(0)
    const help = t.out.join('')
    for (const flag of ['--broker', '--prefix', '--id', '--ack', '--operator', '--dispatch-after', '--resolve-after', '--unit', '--eta', '--username', '--json', '--help']) {
      expect(help).toContain(flag)
    }
    expect(help).toMatch(/default steppelink\/v1/)
    expect(help).toMatch(/default manual/)
    for (const key of ['a ', 'd ', 'r ', 'b ', 'q ', '1-9']) expect(help).toMatch(new RegExp(`\\n  ${key}`))
    const b = io()
    expect(await consoleCommand(['broadcast', '--help'], b.io)).toBe(0)
    for (const flag of ['--broker', '--to', '--urgency', '--expires-in', '--broadcast-id', '--withdraw', '--prefix', '--id', '--timeout', '--json']) expect(b.out.join('')).toContain(flag)
    expect(b.out.join('')).toMatch(/--withdraw ID +take back the broadcast with this id \(0-4294967295, as it was\n +sent\).*\n.*\(default: none, send the text\)/)
    expect(help).toContain('--withdraw ID')
    expect(help).toContain('steppelink console key-rotate')
    const k = io()
    expect(await consoleCommand(['key-rotate', '--help'], k.io)).toBe(0)
    for (const flag of ['--broker', '--to', '--next-key', '--signing-key', '--valid-for', '--prefix', '--id', '--timeout', '--json']) expect(k.out.join('')).toContain(flag)
    expect(k.out.join('')).toMatch(/default 86400, a day/)
  })

  it('broadcast: publishes one valid broadcast command and exits 0 once the broker has it', async () => {
    const broker = await aedes()
    const gw = await fakeGateway(broker.url, uniq('gw'), 'abag-03')
    const t = io()
    const before = Date.now()
    const text = '白灾预警：明晚暴风雪，请把牲畜赶进棚圈。'
    const code = await consoleCommand(['broadcast', '--broker', broker.url, '--to', 'area:abag-03', '--urgency', 'urgent', '--expires-in', '3600', '--broadcast-id', '9001', text], t.io)
    expect(code).toBe(0)
    expect(t.out.join('')).toMatch(new RegExp(`broadcast 9001 \\(urgent\\) sent to ${DEFAULT_TOPIC_PREFIX}/area/abag-03/cmd`))
    const [b] = await waitFor('the broadcast at the gateway', () => gw.of('broadcast').length === 1 && gw.of('broadcast'))
    expect(b).toMatchObject({ v: 1, type: 'broadcast', broadcast: 9001, text, urgency: 'urgent', topic: gw.topics.areaCommand })
    expect(b!.expires! - before).toBeGreaterThanOrEqual(3_600_000)
    expect(b!.expires! - Date.now()).toBeLessThanOrEqual(3_600_000)

    const j = io()
    expect(await consoleCommand(['broadcast', '--broker', broker.url, '--to', gw.id, '--json', 'Vet on Friday'], j.io)).toBe(0)
    const line = JSON.parse(j.out.join('')) as { type: string; topic: string; command: Command }
    expect(line).toMatchObject({ type: 'command-sent', kind: 'broadcast', gateway: gw.id, topic: gw.topics.command, command: { type: 'broadcast', urgency: 'info', text: 'Vet on Friday' } })
    expect(Object.keys(line)).toEqual(expect.arrayContaining(['id', 'terminal', 'code', 'time', 'receivedAt', 'ageMs']))
    expect(parseCommand(encodePayload(line.command, 'cbor')).ok).toBe(true)
    await waitFor('the second broadcast', () => gw.of('broadcast').length === 2)
  })

  it('broadcast --withdraw: publishes one valid broadcast-withdraw and exits 0 once the broker has it', async () => {
    const broker = await aedes()
    const gw = await fakeGateway(broker.url, uniq('gw'), 'abag-03')
    const t = io()
    expect(await consoleCommand(['broadcast', '--broker', broker.url, '--to', 'area:abag-03', '--withdraw', '9001'], t.io)).toBe(0)
    expect(t.out.join('')).toMatch(new RegExp(`^broadcast 9001 withdrawn: sent to ${DEFAULT_TOPIC_PREFIX}/area/abag-03/cmd; the broker has it \\(command main-`))
    const [w] = await waitFor('the withdrawal at the gateway', () => gw.of('broadcast-withdraw').length === 1 && gw.of('broadcast-withdraw'))
    expect(w).toMatchObject({ v: 1, type: 'broadcast-withdraw', broadcast: 9001, topic: gw.topics.areaCommand })
    expect(gw.rejected).toEqual([])

    const j = io()
    expect(await consoleCommand(['broadcast', '--broker', broker.url, '--to', gw.id, '--withdraw', '0', '--json'], j.io)).toBe(0)
    expect(JSON.parse(j.out.join(''))).toMatchObject({
      type: 'command-sent',
      kind: 'broadcast-withdraw',
      gateway: gw.id,
      topic: gw.topics.command,
      command: { type: 'broadcast-withdraw', broadcast: 0 },
    })
    await waitFor('the second withdrawal', () => gw.of('broadcast-withdraw').length === 2)
  })

  it('broadcast: exit 1 when no broker acknowledges in time', async () => {
    const t = io()
    const port = await freePort()
    expect(await consoleCommand(['broadcast', '--broker', `mqtt://127.0.0.1:${port}`, '--to', 'all', '--timeout', '0.3', 'x'], t.io)).toBe(1)
    expect(t.err.join('')).toMatch(/did not acknowledge the broadcast within 0.3 s/)
    const w = io()
    expect(await consoleCommand(['broadcast', '--broker', `mqtt://127.0.0.1:${port}`, '--to', 'all', '--timeout', '0.3', '--withdraw', '9001'], w.io)).toBe(1)
    expect(w.err.join('')).toMatch(/did not acknowledge the withdrawal within 0.3 s/)
  })
})
