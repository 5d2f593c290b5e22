/**
 * Sessions on the serial link: the handshake, a HELLO and a WELCOME [LINK-7.1], HELLO
 * repeated with backoff while no gateway answers, a repeated HELLO answered without a reset,
 * and the same HELLO from a new unit after the session was used [LINK-7.2]; restarts of
 * either end, announced or found by NAK no-session [LINK-7.2] [LINK-7.3]; and a session per
 * address with two terminals on one line [LINK-3.4].
 */

import { describe, expect, it } from 'vitest'
import { SimLine } from '../device-sim/sim-line.js'
import { cobsEncode } from './cobs.js'
import { encodeFrame } from './codec.js'
import { GatewayLink, TerminalLink, type LinkEvent } from './link.js'
import { seededRandom } from './random.js'
import { baseTimeoutMs } from './timing.js'
import { BAUD, drain, drained, event, eventNumbers, hello, messages, setup } from './link.suite.js'

describe('handshake [LINK-7.1] [LINK-7.2]', () => {
  it('opens a session on both ends from a HELLO and a WELCOME', () => {
    const { line, gateway, terminal, gLog, tLog } = setup()
    line.run(5_000, () => terminal.status.state === 'open')
    expect(terminal.status.state).toBe('open')
    expect(terminal.status.gatewayBoot).toBe(7)
    expect(gateway.terminal(3)?.state).toBe('open')
    expect(gLog).toContainEqual(expect.objectContaining({ kind: 'session', peer: 3, restarted: false }))
    expect(tLog).toContainEqual(expect.objectContaining({ kind: 'session', peer: 0, restarted: false }))
  })

  it('keeps sending HELLO with backoff while no gateway answers, and reports the gateway down', () => {
    const random = () => 0
    const terminal = new TerminalLink({ address: 3, hello: hello(1), baud: BAUD, random })
    const sentAt: number[] = []
    const events: LinkEvent[] = []
    let now = 0
    if (terminal.transmit()) sentAt.push(now)
    for (let i = 0; i < 8; i++) {
      now = terminal.tick(now)!
      terminal.tick(now)
      if (terminal.transmit()) sentAt.push(now)
      drain(terminal, events)
    }
    const gaps = sentAt.slice(1).map((t, i) => t - sentAt[i]!)
    const rto = baseTimeoutMs(BAUD)
    expect(gaps.slice(0, 5)).toEqual([rto, 2 * rto, 4 * rto, 8 * rto, 8 * rto])
    expect(events).toContainEqual({ kind: 'liveness', peer: 0, up: false })
  })

  it('answers a repeated HELLO (its WELCOME was lost) without resetting the session', () => {
    const { line, gateway, terminal, gLog } = setup()
    line.run(5_000, () => terminal.status.state === 'open')
    const sessions = gLog.filter((e) => e.kind === 'session').length
    gateway.receive(new Uint8Array([0, ...cobsEncode(encodeFrame({ dst: 0, src: 3, seq: 0, message: { type: 'HELLO', ...hello(1)(), session: 0 } })), 0]))
    drain(gateway, gLog)
    expect(gLog.filter((e) => e.kind === 'session').length).toBe(sessions)
  })

  it('takes the same HELLO after the terminal has used the session as a new start: a new unit fresh like the old one [LINK-7.2] (issue 10, item 17)', () => {
    const { line, gateway, terminal, gLog } = setup()
    line.run(5_000, () => terminal.status.state === 'open')
    terminal.send(event(1))
    line.run(10_000, () => eventNumbers(gLog).length === 1)
    const sessions = gLog.filter((e) => e.kind === 'session').length
    // The new unit: the same id, boot and session number, and its own event 1 in seq 0.
    const newUnit = [
      { type: 'HELLO', ...hello(1)(), session: 0 },
      { type: 'EVENT', number: 1, kind: 'fire', boot: 1, uptime: 3 },
    ] as const
    gateway.receive(new Uint8Array([0, ...cobsEncode(encodeFrame({ dst: 0, src: 3, seq: 0, message: newUnit[0] })), 0]))
    drain(gateway, gLog)
    expect(gLog.filter((e) => e.kind === 'session')).toHaveLength(sessions + 1)
    expect(gLog.at(-1)).toMatchObject({ kind: 'session', restarted: true })
    gateway.receive(new Uint8Array([0, ...cobsEncode(encodeFrame({ dst: 0, src: 3, seq: 0, message: newUnit[1] })), 0]))
    drain(gateway, gLog)
    // Delivered to the application as a message (not answered as a retransmission of seq 0).
    expect(gLog.filter((e) => e.kind === 'message').map((e) => e.kind === 'message' && e.message.type === 'EVENT' && e.message.kind)).toEqual(['emergency', 'fire'])
  })
})

describe('restarts [LINK-7.2] [LINK-7.3]', () => {
  it('a terminal restart (new boot counter) opens a new session and the gateway says restarted', () => {
    const { line, gateway, terminal, gLog } = setup()
    terminal.send(event(1))
    line.run(20_000, () => eventNumbers(gLog).length === 1)
    const reborn = new TerminalLink({ address: 3, hello: hello(2), baud: BAUD })
    const tLog: LinkEvent[] = []
    line.clear()
    line.replace(1, drained(reborn, tLog))
    reborn.send(event(2))
    line.run(line.now + 20_000, () => eventNumbers(gLog).length === 2)
    expect(gLog.filter((e) => e.kind === 'session').map((e) => e.kind === 'session' && e.restarted)).toEqual([false, true])
    expect(eventNumbers(gLog)).toEqual([1, 2])
    expect(gateway.terminal(3)?.hello?.boot).toBe(2)
  })

  it('a gateway restart is announced; the terminal re-handshakes and its queue flows on', () => {
    const { line, terminal, gLog, tLog } = setup()
    line.run(5_000, () => terminal.status.state === 'open')
    const reborn = new GatewayLink({ gateway: 'gw-1', boot: 8, baud: BAUD })
    const g2: LinkEvent[] = []
    line.clear()
    line.replace(0, drained(reborn, g2))
    reborn.announce()
    terminal.send(event(5))
    line.run(line.now + 20_000, () => eventNumbers(g2).length === 1)
    expect(eventNumbers(gLog)).toEqual([])
    expect(eventNumbers(g2)).toEqual([5])
    expect(tLog.filter((e) => e.kind === 'session').map((e) => e.kind === 'session' && e.restarted)).toEqual([false, true])
  })

  it('a gateway restart that nobody announced is found by NAK no-session', () => {
    const { line, terminal, tLog } = setup()
    line.run(5_000, () => terminal.status.state === 'open')
    const reborn = new GatewayLink({ gateway: 'gw-1', boot: 8, baud: BAUD })
    const g2: LinkEvent[] = []
    line.clear()
    line.replace(0, drained(reborn, g2))
    terminal.send(event(6))
    line.run(line.now + 20_000, () => eventNumbers(g2).length === 1)
    expect(eventNumbers(g2)).toEqual([6])
    expect(reborn.stats().noSession).toBeGreaterThan(0)
    expect(tLog.filter((e) => e.kind === 'session')).toHaveLength(2)
  })

  it('the message in flight when the peer restarts is sent again in the new session', () => {
    const { line, gateway, terminal, tLog } = setup()
    line.run(5_000, () => terminal.status.state === 'open')
    gateway.send(3, { type: 'INDICATE', event: 1, stage: 'received' })
    gateway.transmit() // lost on the wire as the terminal reboots
    const reborn = new TerminalLink({ address: 3, hello: hello(2), baud: BAUD })
    const t2: LinkEvent[] = []
    line.clear()
    line.replace(1, drained(reborn, t2))
    line.run(line.now + 20_000, () => messages(t2).length === 1)
    expect(messages(t2)).toEqual([{ type: 'INDICATE', event: 1, stage: 'received' }])
    void tLog
  })
})

describe('two terminals on one line [LINK-3.4]', () => {
  it("keeps a session per address and delivers both terminals' events", () => {
    const line = new SimLine(BAUD, { corrupt: 0.05, drop: 0.05 }, 5)
    const gateway = new GatewayLink({ gateway: 'gw-1', boot: 7, baud: BAUD, random: seededRandom(1) })
    const a = new TerminalLink({ address: 1, hello: hello(1, 'SL-T-A'), baud: BAUD, random: seededRandom(2) })
    const b = new TerminalLink({ address: 2, hello: hello(1, 'SL-T-B'), baud: BAUD, random: seededRandom(3) })
    const gLog: LinkEvent[] = []
    line.add(drained(gateway, gLog))
    line.add(drained(a, []))
    line.add(drained(b, []))
    for (let n = 1; n <= 10; n++) {
      a.send(event(n))
      b.send(event(100 + n))
    }
    line.run(600_000, () => eventNumbers(gLog).length === 20)
    const from = (addr: number) => gLog.flatMap((e) => (e.kind === 'message' && e.from === addr && e.message.type === 'EVENT' ? [e.message.number] : []))
    expect(from(1)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    expect(from(2)).toEqual([101, 102, 103, 104, 105, 106, 107, 108, 109, 110])
    expect(
      gateway
        .terminals()
        .map((t) => t.hello?.terminal)
        .sort(),
    ).toEqual(['SL-T-A', 'SL-T-B'])
  })
})
