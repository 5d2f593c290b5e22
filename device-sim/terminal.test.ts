import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { GatewayLink, type LinkEvent } from '../protocol/link.js'
import type { DataMessage, Event, GatewayMessage, Hello } from '../protocol/messages.js'
import { seededRandom } from '../protocol/random.js'
import { SimLine, onLine, type Endpoint } from './sim-line.js'
import { BEEP_SHOWN_MS, RESOLVED_IDLE_MS, UNCONFIRMED_TEXT, indication, terminalView, type Indication, type TerminalViewState } from './terminal-view.js'
import { TerminalDevice, fileMemory, ramMemory, type AlertState, type NvMemory, type TerminalUpdate } from './terminal.js'

const SILENT: Endpoint = { receive: () => {}, transmit: () => null, tick: () => null }

/**
 * A terminal and a gateway link end on an in-memory line with a fake clock. The gateway
 * accepts every EVENT (unless `hold`) and answers with the INDICATE stages `answer` gives.
 */
function rig(opts: { memory?: NvMemory; answer?: (e: Event) => GatewayMessage[] } = {}) {
  const line = new SimLine(9600, {}, 11)
  const gateway = new GatewayLink({ gateway: 'gw-t', boot: 1, random: seededRandom(2) })
  const memory = opts.memory ?? ramMemory()
  const events: Event[] = []
  const fromTerminal: DataMessage[] = []
  const sessions: Hello[] = []
  const state = { hold: false, busy: false }
  const answer = opts.answer ?? ((e: Event) => [{ type: 'INDICATE', event: e.number, stage: 'stored' }] satisfies GatewayMessage[])
  const onGateway = (e: LinkEvent) => {
    if (e.kind === 'session' && e.hello) sessions.push(e.hello)
    if (e.kind !== 'message') return
    fromTerminal.push(e.message)
    if (e.message.type !== 'EVENT') return gateway.accept(e.ref)
    events.push(e.message)
    if (state.hold) return // not on disk yet: no ACK, the terminal keeps it and retries
    if (state.busy) return gateway.defer(e.ref) // cannot store it: NAK busy
    gateway.accept(e.ref)
    for (const m of answer(e.message)) gateway.send(e.from, m)
  }
  const gatewayEnd = onLine(gateway, onGateway)
  const gatewayIndex = line.add(gatewayEnd)
  const updates: TerminalUpdate[] = []
  const boot = () => new TerminalDevice({ address: 3, terminal: 'SL-T-3', memory, random: seededRandom(5), now: line.now, onUpdate: (u) => updates.push(u) })
  let device = boot()
  const deviceIndex = line.add(device)
  return {
    line,
    gateway,
    memory,
    events,
    fromTerminal,
    sessions,
    updates,
    state,
    get device() {
      return device
    },
    /** Runs the line for `ms` of simulated time. */
    run: (ms: number) => line.run(line.now + ms),
    /** A power cut: the device starts again from its NV memory; what was on the wire is lost. */
    powerCut() {
      line.clear()
      device = boot()
      line.replace(deviceIndex, device)
      return device
    },
    /** The gateway stops answering (its cable pulled), or answers again. */
    gatewaySilent(silent: boolean) {
      line.clear()
      line.replace(gatewayIndex, silent ? SILENT : gatewayEnd)
    },
    stagesOf: (n: number) => updates.flatMap((u) => (u.kind === 'stage' && u.event === n ? [u.stage] : [])),
  }
}

describe('TerminalDevice: stages [LINK-5.7] [LINK-8.2]', () => {
  it('shows saved at the press, delivered at the ACK, then each INDICATE stage with its text and eta', () => {
    const r = rig({
      answer: (e) => [
        { type: 'INDICATE', event: e.number, stage: 'stored' },
        { type: 'INDICATE', event: e.number, stage: 'sent' },
        { type: 'INDICATE', event: e.number, stage: 'received' },
        { type: 'INDICATE', event: e.number, stage: 'acknowledged', text: 'Officer Bao' },
        { type: 'INDICATE', event: e.number, stage: 'dispatched', text: 'patrol car 3', eta: 95 },
      ],
    })
    r.run(1000)
    expect(r.device.link.status.state).toBe('open')
    expect(r.device.gateway).toBe('gw-t')
    const e = r.device.press('emergency')
    expect(e).toMatchObject({ number: 1, kind: 'emergency', boot: 1 })
    expect(r.device.stages.get(1)).toBe('saved')
    r.run(5000)
    expect(r.stagesOf(1)).toEqual(['saved', 'delivered', 'stored', 'sent', 'received', 'acknowledged', 'dispatched'])
    expect(r.updates).toContainEqual({ kind: 'stage', event: 1, stage: 'acknowledged', text: 'Officer Bao' })
    expect(r.device.alerts.get(1)).toMatchObject({ event: 1, kind: 'emergency', stage: 'dispatched', text: 'patrol car 3', eta: 95 })
    expect(r.device.pending).toEqual([])
  })

  it('shows an alarm not yet received as unconfirmed when the gateway goes silent; leaves received alarms and stored requests; the next INDICATE replaces it', () => {
    const r = rig({
      answer: (e) =>
        e.kind === 'emergency'
          ? [
              { type: 'INDICATE', event: e.number, stage: 'stored' },
              { type: 'INDICATE', event: e.number, stage: 'received' },
            ]
          : [{ type: 'INDICATE', event: e.number, stage: 'stored' }],
    })
    r.run(1000)
    r.device.press('emergency') // #1: received
    r.device.press('callback') // #2: a request, stored: goes no further
    r.device.press('fire') // #3: stored only
    r.run(3000)
    expect([1, 2, 3].map((n) => r.device.stages.get(n))).toEqual(['received', 'stored', 'stored'])

    r.gatewaySilent(true)
    r.run(60_000) // heartbeats go unanswered: down after 4 attempts [LINK-6.1]
    expect(r.updates).toContainEqual({ kind: 'link', up: false })
    expect(r.device.link.status.up).toBe(false)
    expect([1, 2, 3].map((n) => r.device.stages.get(n))).toEqual(['received', 'stored', 'unconfirmed'])

    r.gatewaySilent(false)
    r.gateway.send(3, { type: 'INDICATE', event: 3, stage: 'received' })
    r.run(30_000)
    expect(r.device.link.status.up).toBe(true)
    expect(r.device.stages.get(3)).toBe('received')
    expect(r.stagesOf(3)).toEqual(['saved', 'delivered', 'stored', 'unconfirmed', 'received'])
  })

  it('shows a press made while the gateway is silent as unconfirmed, then delivered once it answers', () => {
    const r = rig()
    r.run(1000)
    r.gatewaySilent(true)
    r.device.press('medical')
    r.run(30_000)
    expect(r.device.stages.get(1)).toBe('unconfirmed')
    expect(r.device.pending).toHaveLength(1)
    r.gatewaySilent(false)
    r.run(30_000)
    expect(r.device.pending).toEqual([])
    expect(r.device.stages.get(1)).toBe('stored')
  })
})

describe('TerminalDevice: non-volatile memory across a power cut [LINK-5.5] [LINK-8.1]', () => {
  it('sends unacknowledged events again after a restart, under the same numbers and unchanged; the boot counter goes up', () => {
    const r = rig()
    r.run(1000)
    expect(r.device.boot).toBe(1)
    r.state.hold = true // the gateway gets the event but has not written it: no ACK
    const first = r.device.press('emergency')
    r.run(2000)
    expect(r.events).toEqual([first])
    expect(r.device.pending).toEqual([first])
    expect(r.device.stages.get(1)).toBe('saved')

    r.state.hold = false
    const after = r.powerCut()
    expect(after.boot).toBe(2)
    expect(after.pending).toEqual([first])
    expect(after.stages.get(1)).toBe('saved') // shown from memory at once, not only after the ACK
    r.run(3000)
    expect(r.events).toEqual([first, first]) // the same event, number 1 of boot 1, again
    expect(after.pending).toEqual([])
    expect(after.stages.get(1)).toBe('stored')
    expect(r.sessions.at(-1)).toMatchObject({ terminal: 'SL-T-3', boot: 2, lastEvent: 1 })

    const second = after.press('fire')
    expect(second).toMatchObject({ number: 2, boot: 2 })
    r.run(2000)
    expect(r.events.map((e) => e.number)).toEqual([1, 1, 2])
  })

  it('keeps its memory in a file: boot counter, event counter and pending events survive a new process', () => {
    const dir = mkdtempSync(join(tmpdir(), 'steppelink-nv-'))
    try {
      const path = join(dir, 'sub', 'terminal.json')
      const r = rig({ memory: fileMemory(path) })
      r.run(1000)
      r.device.press('emergency')
      r.run(2000)
      r.state.hold = true
      const held = r.device.press('panic')
      r.run(2000)
      // What a second process (the simulator started again after kill -9) finds on disk.
      expect(JSON.parse(readFileSync(path, 'utf8'))).toEqual({ boot: 1, lastEvent: 2, pending: [held] })
      r.state.hold = false
      const after = r.powerCut()
      expect(after.boot).toBe(2)
      r.run(3000)
      expect(r.events.map((e) => [e.number, e.kind, e.boot])).toEqual([
        [1, 'emergency', 1],
        [2, 'panic', 1],
        [2, 'panic', 1],
      ])
      expect(after.press('fire').number).toBe(3)
      expect(new TerminalDevice({ address: 3, terminal: 'SL-T-3', memory: fileMemory(path) }).boot).toBe(3)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('TerminalDevice: broadcast texts [LINK-5.8]', () => {
  it('holds a DISPLAY (its parts joined) until read; readDisplay sends DISPLAY_READ once per id; a read text sent again is not shown again', () => {
    const r = rig()
    r.run(1000)
    r.gateway.send(3, { type: 'DISPLAY', id: 9001, text: 'Snow storm tomorrow night, ', urgency: 'urgent', part: 1, parts: 2 })
    r.run(1000)
    expect(r.device.displays).toEqual([{ id: 9001, text: 'Snow storm tomorrow night, ', urgency: 'urgent', at: expect.any(Number), complete: false }])
    r.gateway.send(3, { type: 'DISPLAY', id: 9001, text: 'bring the herds in.', urgency: 'urgent', part: 2, parts: 2 })
    r.gateway.send(3, { type: 'DISPLAY', id: 9002, text: 'Road closed.', urgency: 'info' })
    r.run(1000)
    expect(r.device.displays.map((d) => [d.id, d.text, d.complete])).toEqual([
      [9001, 'Snow storm tomorrow night, bring the herds in.', true],
      [9002, 'Road closed.', true],
    ])

    expect(r.device.readDisplay(9001)).toBe(true)
    expect(r.device.readDisplay(9001)).toBe(false)
    expect(r.device.readDisplay(4242)).toBe(false)
    r.run(1000)
    expect(r.fromTerminal.filter((m) => m.type === 'DISPLAY_READ')).toEqual([{ type: 'DISPLAY_READ', id: 9001 }])
    expect(r.device.displays.map((d) => d.id)).toEqual([9002])

    r.gateway.send(3, { type: 'DISPLAY', id: 9001, text: 'Snow storm tomorrow night, ', urgency: 'urgent', part: 1, parts: 2 })
    r.run(1000)
    expect(r.device.displays.map((d) => d.id)).toEqual([9002])
  })

  it('shows a replaced text (a higher revision) again, even read; says which revision it read; removes a withdrawn one at once [LINK-5.8] (issue 10, items 9 and 19)', () => {
    const r = rig()
    r.run(1000)
    r.gateway.send(3, { type: 'DISPLAY', id: 7, text: 'Storm warning', urgency: 'urgent' })
    r.run(1000)
    r.device.readDisplay(7)
    r.gateway.send(3, { type: 'DISPLAY', id: 7, text: 'All clear', urgency: 'info', revision: 1 })
    r.gateway.send(3, { type: 'DISPLAY', id: 8, text: 'Road closed', urgency: 'warning' })
    r.run(1000)
    expect(r.device.displays.map((d) => [d.id, d.text])).toEqual([
      [7, 'All clear'],
      [8, 'Road closed'],
    ])
    r.device.readDisplay(7)
    r.run(1000)
    expect(r.fromTerminal.filter((m) => m.type === 'DISPLAY_READ')).toEqual([
      { type: 'DISPLAY_READ', id: 7 },
      { type: 'DISPLAY_READ', id: 7, revision: 1 },
    ])
    r.gateway.send(3, { type: 'DISPLAY', id: 8, text: 'withdrawn', urgency: 'warning', expires: 0, revision: 1 })
    r.run(1000)
    expect(r.device.displays).toEqual([])
    expect(r.updates.filter((u) => u.kind === 'display').map((u) => u.kind === 'display' && u.text)).toEqual(['Storm warning', 'All clear', 'Road closed'])
  })
})

describe('TerminalDevice: an alarm the gateway cannot store [LINK-8.2] (issue 10, item 23)', () => {
  it('shows unconfirmed 30 s after the press while the gateway answers NAK busy, and delivered once it takes it', () => {
    const r = rig()
    r.run(1000)
    r.state.busy = true // the gateway's disk is full: NAK busy, it answers but cannot take it
    r.device.press('emergency')
    r.run(25_000)
    expect(r.stagesOf(1)).toEqual(['saved'])
    r.run(6_000)
    expect(r.stagesOf(1)).toEqual(['saved', 'unconfirmed'])
    expect(r.updates.some((u) => u.kind === 'link' && !u.up)).toBe(false) // it did answer
    r.state.busy = false
    r.run(30_000)
    expect(r.stagesOf(1).slice(0, 4)).toEqual(['saved', 'unconfirmed', 'delivered', 'stored'])
  })
})

// ---------------------------------------------------------------------------------------
// The view: a pure function of the state and the time.

const BASE: TerminalViewState = {
  terminal: 'SL-T-1',
  address: 1,
  boot: 4,
  port: 'open',
  session: 'open',
  gatewayUp: true,
  gateway: 'gw-1',
  pending: 0,
  alerts: [],
  displays: [],
  lastKeyAt: null,
}
const NOW = 1_000_000
const alert = (a: Partial<AlertState> & Pick<AlertState, 'stage'>): AlertState => ({ event: 1, kind: 'emergency', at: NOW, ...a })
const show = (alerts: AlertState[], extra: Partial<TerminalViewState> = {}, now = NOW) => indication({ ...BASE, alerts, ...extra }, now)

describe('terminalView: the recommended indications of [LINK-5.7]', () => {
  const table: { name: string; alert: AlertState; state?: Partial<TerminalViewState>; want: Indication }[] = [
    {
      name: 'saved, no session yet',
      alert: alert({ stage: 'saved' }),
      state: { session: 'syncing' },
      want: { red: 'fast blink', amber: 'off', green: 'off', buzzer: 'one short beep', display: ['Alarm saved – sending'] },
    },
    {
      name: 'saved, on the line (sending)',
      alert: alert({ stage: 'saved' }),
      want: { red: 'fast blink', amber: 'off', green: 'off', buzzer: 'one short beep', display: ['Sending to centre household…'] },
    },
    { name: 'delivered (as stored)', alert: alert({ stage: 'delivered' }), want: { red: 'off', amber: 'slow blink', green: 'off', buzzer: 'two beeps', display: ['Received by centre household'] } },
    { name: 'stored', alert: alert({ stage: 'stored' }), want: { red: 'off', amber: 'slow blink', green: 'off', buzzer: 'two beeps', display: ['Received by centre household'] } },
    { name: 'sent', alert: alert({ stage: 'sent' }), want: { red: 'off', amber: 'steady', green: 'off', buzzer: 'silent', display: ['Sent to 110, waiting for confirmation'] } },
    { name: 'received', alert: alert({ stage: 'received' }), want: { red: 'off', amber: 'off', green: 'slow blink', buzzer: 'three beeps', display: ['110 has your alarm'] } },
    {
      name: 'acknowledged',
      alert: alert({ stage: 'acknowledged', text: 'Officer Bao' }),
      want: { red: 'off', amber: 'off', green: 'steady', buzzer: 'three beeps', display: ['110 operator: Officer Bao'] },
    },
    {
      name: 'dispatched',
      alert: alert({ stage: 'dispatched', text: 'patrol car 3', eta: 95 }),
      want: { red: 'off', amber: 'off', green: 'steady', buzzer: 'one long beep', display: ['Help on the way: patrol car 3', 'about 95 min'] },
    },
    { name: 'resolved', alert: alert({ stage: 'resolved', text: 'false alarm' }), want: { red: 'off', amber: 'off', green: 'steady', buzzer: 'one long beep', display: ['Closed: false alarm'] } },
    { name: 'unconfirmed', alert: alert({ stage: 'unconfirmed' }), want: { red: 'steady', amber: 'off', green: 'off', buzzer: 'repeating beep', display: [UNCONFIRMED_TEXT] } },
    {
      name: 'a call-back request, stored',
      alert: alert({ kind: 'callback', stage: 'stored' }),
      want: { red: 'off', amber: 'slow blink', green: 'off', buzzer: 'two beeps', display: ['Call-back request received'] },
    },
    {
      name: 'a cancel, received',
      alert: alert({ kind: 'cancel', stage: 'received' }),
      want: { red: 'off', amber: 'off', green: 'slow blink', buzzer: 'three beeps', display: ['110 has your cancel'] },
    },
  ]
  it.each(table)('$name', ({ alert: a, state, want }) => {
    expect(show([a], state)).toEqual(want)
  })

  it('idle: every LED off, silent, "Ready"', () => {
    expect(show([])).toEqual({ red: 'off', amber: 'off', green: 'off', buzzer: 'silent', display: ['Ready'] })
  })

  it('plays a beep pattern once: shown for BEEP_SHOWN_MS after the stage, then silent', () => {
    const a = alert({ stage: 'received' })
    expect(show([a], {}, NOW + BEEP_SHOWN_MS - 1).buzzer).toBe('three beeps')
    expect(show([a], {}, NOW + BEEP_SHOWN_MS).buzzer).toBe('silent')
  })

  it('repeats the unconfirmed beep until a key is pressed after it', () => {
    const a = alert({ stage: 'unconfirmed' })
    expect(show([a], { lastKeyAt: NOW - 1 }, NOW + 600_000).buzzer).toBe('repeating beep')
    expect(show([a], { lastKeyAt: NOW + 5 }, NOW + 10).buzzer).toBe('silent')
    expect(show([a], { lastKeyAt: NOW + 5 }, NOW + 10).red).toBe('steady')
  })

  it('returns to idle about a minute after resolved', () => {
    const a = alert({ stage: 'resolved' })
    expect(show([a], {}, NOW + RESOLVED_IDLE_MS - 1).green).toBe('steady')
    expect(show([a], {}, NOW + RESOLVED_IDLE_MS)).toEqual({ red: 'off', amber: 'off', green: 'off', buzzer: 'silent', display: ['Ready'] })
  })

  it('counts the eta down from the moment the INDICATE arrived', () => {
    expect(show([alert({ stage: 'dispatched', eta: 30 })], {}, NOW + 10 * 60_000).display).toEqual(['Help on the way', 'about 20 min'])
  })

  it('follows the most recent alarm, not a newer call-back request', () => {
    const alarm = alert({ event: 5, stage: 'received' })
    const request = alert({ event: 6, kind: 'callback', stage: 'stored' })
    expect(show([alarm, request]).display).toEqual(['110 has your alarm'])
    expect(show([alert({ event: 4, stage: 'stored' }), alert({ event: 5, stage: 'received' })]).display).toEqual(['110 has your alarm'])
  })

  it('never hides an unconfirmed alarm behind a newer one', () => {
    const old = alert({ event: 1, stage: 'unconfirmed' })
    const fresh = alert({ event: 2, stage: 'received', at: NOW - 10_000 })
    expect(show([old, fresh])).toEqual({ red: 'steady', amber: 'off', green: 'slow blink', buzzer: 'repeating beep', display: ['110 has your alarm', `Alarm #1: ${UNCONFIRMED_TEXT}`] })
  })

  it('treats an event known only from an INDICATE (kind unknown) as an alarm', () => {
    expect(show([alert({ kind: null, stage: 'unconfirmed' })]).display).toEqual([UNCONFIRMED_TEXT])
  })

  it('shows broadcasts: an urgent one beeps until a key is pressed, info is silent', () => {
    const urgent = { id: 9001, text: 'Snow storm tonight', urgency: 'urgent' as const, at: NOW, complete: true }
    const info = { id: 9002, text: 'Road closed', urgency: 'info' as const, at: NOW, complete: true }
    expect(show([], { displays: [info] })).toEqual({ red: 'off', amber: 'off', green: 'off', buzzer: 'silent', display: [] })
    expect(show([], { displays: [urgent] }, NOW + 60_000).buzzer).toBe('repeating beep')
    expect(show([], { displays: [urgent], lastKeyAt: NOW + 1 }, NOW + 60_000).buzzer).toBe('silent')
    const lines = terminalView({ ...BASE, displays: [urgent, info] }, NOW)
    expect(lines).toContain('Display  [urgent] Snow storm tonight')
    expect(lines).toContain('         [info] Road closed')
    expect(lines).toContain('Messages #9001 unread (press r when read)')
  })

  it('draws the whole box: LEDs, buzzer, display, alerts, link', () => {
    const lines = terminalView({ ...BASE, pending: 1, alerts: [alert({ event: 1, stage: 'received', at: NOW - 60_000 }), alert({ event: 2, kind: 'fire', stage: 'saved', at: NOW - 1500 })] }, NOW)
    expect(lines).toEqual([
      'Terminal SL-T-1 (address 1, boot 4)',
      'LEDs     red: fast blink   amber: off   green: off',
      'Buzzer   one short beep',
      'Display  Sending to centre household…',
      'Alerts   #2 fire: saved, 1.5 s ago  <- shown',
      '         #1 emergency: received, 1 min 0 s ago',
      'Link     open with gateway gw-1; 1 event in memory not yet acknowledged',
    ])
  })

  it.each([
    [{ port: 'closed' }, 'serial port closed (cable unplugged?), reopening; no events waiting in memory'],
    [{ gatewayUp: false }, 'gateway not answering, still trying; no events waiting in memory'],
    [{ session: 'syncing' }, 'saying HELLO to the gateway; no events waiting in memory'],
    [{ pending: 3 }, 'open with gateway gw-1; 3 events in memory not yet acknowledged'],
  ] as [Partial<TerminalViewState>, string][])('link state %o', (state, text) => {
    expect(terminalView({ ...BASE, ...state }, NOW).at(-1)).toBe(`Link     ${text}`)
  })
})
