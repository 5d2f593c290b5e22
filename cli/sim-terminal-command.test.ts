import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { runOnSerial, type RunningTerminal, type SerialDevice } from '../device-sim/serial-runner.js'
import { GatewayLink } from '../protocol/link.js'
import type { DataMessage, Event, GatewayMessage, Hello, Stage } from '../protocol/messages.js'
import { openPtyPair, type PtyPair } from '../tests/helpers/pty.js'
import { requireTool, waitUntil } from '../tests/helpers/system.js'
import { simTerminalCommand, type SimTerminalIo } from './sim-terminal-command.js'

requireTool('socat')

/** Runs the command in this process with its output captured. */
async function run(args: string[], io: Partial<SimTerminalIo> = {}) {
  const out: string[] = []
  const err: string[] = []
  const code = await simTerminalCommand(args, { stdout: (t) => void out.push(t), stderr: (t) => void err.push(t), screen: false, ...io })
  return { code, stdout: out.join('\n'), stderr: err.join('\n'), lines: out }
}

describe('steppelink sim terminal: help and usage', () => {
  it('documents every option with its default and unit', async () => {
    const r = await run(['--help'])
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/^Usage: steppelink sim terminal --serial PATH --id TERMINAL_ID/)
    for (const [option, text] of [
      ['--serial PATH', /\(required\)/],
      ['--id TERMINAL_ID', /\(required\)/],
      ['--address N', /\(default 1\)/],
      ['--baud N', /baud \(default 9600\)/],
      ['--state FILE', /non-volatile memory/],
      ['--noise BER', /\(default 0\)/],
      ['--seed N', /\(default: random\)/],
      ['--press KIND', /emergency, hotline/],
      ['--count N', /\(default 1\)/],
      ['--interval MS', /ms \(default 1000\)/],
      ['--until STAGE', /stored/],
      ['--timeout S', /seconds/],
      ['--json', /one JSON line per stage change/],
    ] as const) {
      // The option's line and the lines that continue it.
      const all = r.stdout.split('\n')
      const at = all.findIndex((l) => l.startsWith(`  ${option} `))
      expect(at, option).toBeGreaterThanOrEqual(0)
      let end = at + 1
      while (end < all.length && /^ {6,}\S/.test(all[end]!)) end++
      expect(all.slice(at, end).join(' '), option).toMatch(text)
    }
    expect(r.stdout).toMatch(/--until STAGE[\s\S]*\(default received\)/)
    expect(r.stdout).toMatch(/--timeout S[\s\S]*\(default 120\)/)
    expect(r.stdout).toMatch(/--state FILE[\s\S]*\(default: none/)
    for (const key of ['e ', 'h ', 'c ', 'f ', 'm ', 'p ', 'r ', 'u ', 'q ']) expect(r.stdout).toContain(`  ${key} `)
  })

  it.each([
    [[], /--serial PATH is required/],
    [['--serial', '/tmp/x'], /--id TERMINAL_ID is required/],
    [['--serial', '/tmp/x', '--id', 'has space'], /--id must be 1-32 of/],
    [['--serial', '/tmp/x', '--id', 'T1', '--press', 'flood'], /--press must be one of emergency, hotline, cancel, fire, medical, panic, got 'flood'/],
    [['--serial', '/tmp/x', '--id', 'T1', '--address', '0'], /--address must be a whole number from 1 to 254, got '0'/],
    [['--serial', '/tmp/x', '--id', 'T1', '--baud', 'fast'], /--baud must be a line rate/],
    [['--serial', '/tmp/x', '--id', 'T1', '--noise', '0.5'], /--noise must be a bit error rate from 0 to 0.05, got '0.5'/],
    [['--serial', '/tmp/x', '--id', 'T1', '--press', 'fire', '--until', 'sent'], /--until must be one of stored, received, acknowledged, resolved, got 'sent'/],
    [['--serial', '/tmp/x', '--id', 'T1', '--press', 'fire', '--timeout', '0'], /--timeout must be a time in seconds/],
    [['--serial', '/tmp/x', '--id', 'T1', '--count', '3', '--json'], /--count, --json only apply to scripted mode: add --press KIND/],
    [['--serial', '/tmp/x', '--id', 'T1', '--bogus'], /Unknown option '--bogus'/],
  ])('exits 2 naming what is wrong: %j', async (args, message) => {
    const r = await run(args)
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(message)
    expect(r.stderr).toMatch(/See 'steppelink sim terminal --help'\.$/)
  })

  it('exits 1 naming the file when the memory file is not readable', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'steppelink-sim-'))
    try {
      writeFileSync(join(dir, 'nv.json'), '{"boot": 3, "lastEv')
      const r = await run(['--serial', '/tmp/none', '--id', 'T1', '--state', join(dir, 'nv.json'), '--press', 'fire'])
      expect(r.code).toBe(1)
      expect(r.stderr).toMatch(/cannot read the terminal's memory .*nv\.json: .*Move it away to start as a new box/)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

/**
 * The gateway's side of the cable, in this process: a GatewayLink that stores nothing
 * but ACKs each EVENT (unless `hold`) and answers it with the INDICATE stages `stages`
 * gives, as the real gateway would. No gateway process, no broker.
 */
function fakeGateway(path: string, stages: (e: Event) => GatewayMessage[]) {
  const link = new GatewayLink({ gateway: 'gw-test', boot: Date.now() % 1_000_000 })
  const events: Event[] = []
  const messages: DataMessage[] = []
  const hellos: Hello[] = []
  const state = { hold: false }
  const drain = () => {
    for (let e = link.nextEvent(); e; e = link.nextEvent()) {
      if (e.kind === 'session' && e.hello) hellos.push(e.hello)
      if (e.kind !== 'message') continue
      messages.push(e.message)
      if (e.message.type !== 'EVENT') {
        link.accept(e.ref)
        continue
      }
      events.push(e.message)
      if (state.hold) continue
      link.accept(e.ref)
      for (const m of stages(e.message)) link.send(e.from, m)
    }
  }
  const endpoint: SerialDevice = {
    receive: (bytes, now) => {
      link.receive(bytes, now)
      drain()
    },
    transmit: () => link.transmit(),
    tick: (now) => {
      const d = link.tick(now)
      drain()
      return d
    },
  }
  link.announce()
  const running: RunningTerminal = runOnSerial(endpoint, { path })
  return { link, events, messages, hellos, state, running }
}

const indicate =
  (...stages: Stage[]) =>
  (e: Event): GatewayMessage[] =>
    stages.map((stage) => ({ type: 'INDICATE', event: e.number, stage, ...(stage === 'acknowledged' ? { text: 'Officer Bao' } : {}) }))

interface StageLine {
  event: number
  stage: string
  ms: number
  text?: string
  earlier?: true
}
const parseLines = (stdout: string) =>
  stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as StageLine)

describe('steppelink sim terminal: scripted, against a gateway link end on a socat pair', () => {
  let pty: PtyPair
  let dir: string
  const gateways: ReturnType<typeof fakeGateway>[] = []
  beforeEach(async () => {
    pty = await openPtyPair()
    dir = mkdtempSync(join(tmpdir(), 'steppelink-sim-'))
  })
  afterEach(async () => {
    await Promise.all(gateways.splice(0).map((g) => g.running.stop()))
    await pty.close()
    rmSync(dir, { recursive: true, force: true })
  })
  const gateway = (stages: (e: Event) => GatewayMessage[]) => {
    const g = fakeGateway(pty.a, stages)
    gateways.push(g)
    return g
  }
  const sim = (...args: string[]) => ['--serial', pty.b, '--id', 'SL-T-SIM', ...args]

  it('presses --count times, prints one JSON line per stage change, and exits 0 once every press is received', async () => {
    const g = gateway(indicate('stored', 'sent', 'received'))
    const r = await run(sim('--press', 'emergency', '--count', '2', '--interval', '100', '--json', '--timeout', '30'))
    expect(r.stderr).not.toMatch(/timed out/)
    expect(r.code).toBe(0)
    const lines = parseLines(r.stdout)
    expect(r.lines.every((l) => l.startsWith('{'))).toBe(true) // stdout is JSON only
    for (const n of [1, 2]) {
      const mine = lines.filter((l) => l.event === n)
      expect(mine.map((l) => l.stage)).toEqual(['saved', 'delivered', 'stored', 'sent', 'received'])
      expect(mine[0]!.ms).toBeLessThan(100) // the NV write: no time on the line yet
      const ms = mine.map((l) => l.ms)
      expect(ms).toEqual([...ms].sort((a, b) => a - b))
    }
    expect(g.events.map((e) => [e.number, e.kind, e.boot])).toEqual([
      [1, 'emergency', 1],
      [2, 'emergency', 1],
    ])
    expect(g.hellos[0]).toMatchObject({ terminal: 'SL-T-SIM', boot: 1, lastEvent: 0 })
  })

  it('takes a later stage than --until as reached, and prints the text the gateway sent', async () => {
    gateway(indicate('stored', 'received', 'acknowledged'))
    const r = await run(sim('--press', 'fire', '--until', 'received', '--json', '--timeout', '30'))
    expect(r.code).toBe(0)
    const r2 = await run(sim('--press', 'fire', '--until', 'acknowledged', '--json', '--timeout', '30'))
    expect(r2.code).toBe(0)
    expect(parseLines(r2.stdout).find((l) => l.stage === 'acknowledged')).toMatchObject({ event: 1, text: 'Officer Bao' })
  })

  it('sends hotline as the protocol kind callback, and prints readable lines without --json', async () => {
    const g = gateway(indicate('stored'))
    const r = await run(sim('--press', 'hotline', '--until', 'stored', '--timeout', '30', '--baud', '19200', '--address', '7'))
    expect(r.code).toBe(0)
    expect(g.events[0]).toMatchObject({ number: 1, kind: 'callback' })
    expect(g.link.terminal(7)?.state).toBe('open')
    expect(r.stdout).toMatch(/terminal SL-T-SIM \(address 7, boot 1\) on .* at 19200 baud/)
    expect(r.stdout).toMatch(/^ +\d+ ms +#1 callback +saved +Call-back request saved – sending$/m)
    expect(r.stdout).toMatch(/^ +\d+ ms +#1 callback +(delivered|stored) +Call-back request received$/m)
    expect(r.stdout).toMatch(/all 1 press reached stored \(or later\)/)
  })

  it('exits 1 at --timeout, naming each press and the stage it reached', async () => {
    gateway(indicate('stored'))
    const started = Date.now()
    const r = await run(sim('--press', 'emergency', '--until', 'received', '--timeout', '1.5'))
    expect(r.code).toBe(1)
    expect(Date.now() - started).toBeGreaterThanOrEqual(1500)
    expect(r.stderr).toMatch(/timed out after 1\.5 s waiting for every press to reach received: #1 reached stored; the gateway has not reported received yet/)
  })

  it('says there is no gateway when nothing answers on the line', async () => {
    const r = await run(sim('--press', 'panic', '--count', '3', '--interval', '5000', '--until', 'stored', '--timeout', '1'))
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/#1 reached saved; only 1 of 3 presses made; no session with a gateway: is one running on the other end of .*, at 9600 baud\?/)
  })

  it('--state: a press the gateway never acknowledged is sent again, under its number, by the next run', async () => {
    const state = join(dir, 'nv', 'terminal.json')
    const g = gateway(indicate('stored', 'received'))
    g.state.hold = true // the gateway gets it but never commits it: no ACK
    const first = await run(sim('--state', state, '--press', 'emergency', '--until', 'stored', '--timeout', '1.5', '--json'))
    expect(first.code).toBe(1)
    expect(first.stderr).toMatch(/#1 reached saved/)
    expect(existsSync(state)).toBe(true)
    const nv = JSON.parse(readFileSync(state, 'utf8')) as { boot: number; lastEvent: number; pending: Event[] }
    expect(nv).toMatchObject({ boot: 1, lastEvent: 1, pending: [{ number: 1, kind: 'emergency', boot: 1 }] })

    g.state.hold = false
    const second = await run(sim('--state', state, '--press', 'fire', '--until', 'received', '--timeout', '30', '--json'))
    expect(second.code).toBe(0)
    expect(second.stderr).toMatch(/1 event from before the restart, not acknowledged by the gateway, sent again: #1 emergency/)
    const lines = parseLines(second.stdout)
    expect(lines.filter((l) => l.event === 1).every((l) => l.earlier === true)).toBe(true)
    expect(lines.filter((l) => l.event === 1).map((l) => l.stage)).toEqual(expect.arrayContaining(['saved', 'received']))
    expect(lines.filter((l) => l.event === 2).map((l) => l.stage)).toEqual(['saved', 'delivered', 'stored', 'received'])
    // Number 1 keeps its first boot: it is the same event, unchanged. [LINK-5.5]
    const accepted = g.events.slice(-2).map((e) => [e.number, e.kind, e.boot])
    expect(accepted).toEqual([
      [1, 'emergency', 1],
      [2, 'fire', 2],
    ])
    expect(g.hellos.at(-1)).toMatchObject({ boot: 2, lastEvent: 1 }) // the HELLO at start, before the press
    expect(JSON.parse(readFileSync(state, 'utf8'))).toEqual({ boot: 2, lastEvent: 2, pending: [] })
  })

  it('interactive, keys line by line: e presses emergency, r confirms the message shown, q quits', async () => {
    const g = gateway(indicate('stored', 'received'))
    const stdin = new PassThrough()
    const out: string[] = []
    const done = simTerminalCommand(sim(), { stdin, stdout: (t) => void out.push(t), stderr: (t) => void out.push(t), screen: false })
    await waitUntil(() => g.link.terminal(1)?.state === 'open', { what: 'a session', timeoutMs: 10_000 })
    stdin.write('e\n')
    await waitUntil(() => out.some((l) => /#1 emergency +received +110 has your alarm/.test(l)), { what: 'received on the terminal', timeoutMs: 10_000 })
    g.link.send(1, { type: 'DISPLAY', id: 77, text: 'Storm tonight', urgency: 'urgent' })
    g.running.wake()
    await waitUntil(() => out.some((l) => l.includes('message #77 [urgent]: Storm tonight')), { what: 'the message', timeoutMs: 10_000 })
    stdin.write('read\n')
    await waitUntil(() => g.messages.some((m) => m.type === 'DISPLAY_READ' && m.id === 77), { what: 'DISPLAY_READ', timeoutMs: 10_000 })
    stdin.write('x\n')
    stdin.write('q\n')
    expect(await done).toBe(0)
    const text = out.join('\n')
    expect(text).toContain('key e: emergency pressed, event #1')
    expect(text).toContain('key r: message #77 read; DISPLAY_READ sent')
    expect(text).toContain("unknown key 'x'")
    // The view of the box is printed after each key.
    expect(text).toMatch(/LEDs +red: \w/)
    expect(text).toMatch(/Link +open with gateway gw-test/)
  })
})
