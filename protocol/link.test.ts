import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { SimLine, onLine, type Impairments } from '../device-sim/sim-line.js'
import { cobsEncode } from './cobs.js'
import { crc32c } from './crc32c.js'
import { FrameDecoder, encodeFrame } from './codec.js'
import { GatewayLink, TerminalLink, type LinkEvent } from './link.js'
import type { Event, Hello } from './messages.js'
import { seededRandom } from './random.js'
import { baseTimeoutMs } from './timing.js'

const BAUD = 9600

function hello(boot: number, terminal = 'SL-T-0001'): () => Omit<Hello, 'type' | 'session'> {
  return () => ({ terminal, firmware: '1.0.0', capabilities: ['buzzer', 'keys'], boot, lastEvent: 0 })
}

function event(number: number): Event {
  return { type: 'EVENT', number, kind: 'emergency', boot: 1, uptime: number }
}

/** Drains a link end's events into `log`, accepting every message at once (gateway manual mode). */
function drain(end: TerminalLink | GatewayLink, log: LinkEvent[], accept = true): void {
  for (let e = end.nextEvent(); e; e = end.nextEvent()) {
    log.push(e)
    if (accept && e.kind === 'message') end.accept(e.ref)
  }
}

/** An end on the line whose events go to `log`, each message accepted at once. */
function drained(end: TerminalLink | GatewayLink, log: LinkEvent[], accept = true) {
  return onLine(end, (e) => {
    log.push(e)
    if (accept && e.kind === 'message') end.accept(e.ref)
  })
}

function setup(impairments: Impairments = {}, seed = 1) {
  const line = new SimLine(BAUD, impairments, seed)
  const random = seededRandom(seed + 1000)
  const gateway = new GatewayLink({ gateway: 'gw-1', boot: 7, baud: BAUD, random })
  const terminal = new TerminalLink({ address: 3, hello: hello(1), baud: BAUD, random })
  const gLog: LinkEvent[] = []
  const tLog: LinkEvent[] = []
  line.add(drained(gateway, gLog))
  line.add(drained(terminal, tLog))
  return { line, gateway, terminal, gLog, tLog }
}

/** Wire bytes of a frame built by hand with a correct CRC, for frames our encoder refuses to make. */
function rawFrame(bytes: number[]): Uint8Array {
  const raw = new Uint8Array([...bytes, 0, 0, 0, 0])
  new DataView(raw.buffer).setUint32(raw.length - 4, crc32c(raw, 0, raw.length - 4), true)
  return new Uint8Array([0, ...cobsEncode(raw), 0])
}

const messages = (log: LinkEvent[]) => log.flatMap((e) => (e.kind === 'message' ? [e.message] : []))
const eventNumbers = (log: LinkEvent[]) => messages(log).flatMap((m) => (m.type === 'EVENT' ? [m.number] : []))

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

describe('delivery [LINK-4.2] [LINK-4.3] [LINK-4.4]', () => {
  it('delivers events in order, each once, and reports each delivered to the sender', () => {
    const { line, terminal, gLog, tLog } = setup()
    const refs = [1, 2, 3, 4, 5].map((n) => terminal.send(event(n)))
    line.run(60_000, () => tLog.filter((e) => e.kind === 'delivered').length === 5)
    expect(eventNumbers(gLog)).toEqual([1, 2, 3, 4, 5])
    expect(tLog.flatMap((e) => (e.kind === 'delivered' ? [e.ref] : []))).toEqual(refs)
  })

  it('does not acknowledge in manual mode until the application accepts (durable store first)', () => {
    const line = new SimLine(BAUD)
    const gateway = new GatewayLink({ gateway: 'gw-1', boot: 7, baud: BAUD })
    const terminal = new TerminalLink({ address: 3, hello: hello(1), baud: BAUD })
    const gLog: LinkEvent[] = []
    const tLog: LinkEvent[] = []
    line.add(drained(gateway, gLog, false))
    line.add(drained(terminal, tLog))
    terminal.send(event(1))
    // Several retransmission timeouts pass while the "disk write" is pending.
    line.run(5 * baseTimeoutMs(BAUD))
    expect(eventNumbers(gLog)).toEqual([1])
    expect(tLog.some((e) => e.kind === 'delivered')).toBe(false)
    expect(gateway.stats().duplicates).toBeGreaterThan(0)
    const ref = gLog.find((e) => e.kind === 'message')!.ref
    gateway.accept(ref)
    line.run(line.now + 5_000, () => tLog.some((e) => e.kind === 'delivered'))
    expect(tLog.some((e) => e.kind === 'delivered')).toBe(true)
    expect(eventNumbers(gLog)).toEqual([1])
  })

  it('answers a duplicate of the last frame again without handing it out again', () => {
    const { line, gateway, terminal, gLog } = setup()
    line.run(5_000, () => terminal.status.state === 'open')
    const frame = { dst: 0, src: 3, seq: 0, message: event(1) }
    const wire = new Uint8Array([0, ...cobsEncode(encodeFrame(frame)), 0])
    gateway.receive(wire)
    drain(gateway, gLog)
    gateway.transmit()
    gateway.receive(wire)
    drain(gateway, gLog)
    expect(eventNumbers(gLog)).toEqual([1])
    expect(gateway.stats().duplicates).toBe(1)
    expect(gateway.transmit()).not.toBeNull() // the ACK again
  })

  it('NAK busy makes the terminal retry later without reporting the gateway down', () => {
    const line = new SimLine(BAUD)
    const gateway = new GatewayLink({ gateway: 'gw-1', boot: 7, baud: BAUD })
    const terminal = new TerminalLink({ address: 3, hello: hello(1), baud: BAUD })
    const gLog: LinkEvent[] = []
    const tLog: LinkEvent[] = []
    let refusals = 3
    line.add({
      receive: (b, now) => {
        gateway.receive(b, now)
        for (let e = gateway.nextEvent(); e; e = gateway.nextEvent()) {
          gLog.push(e)
          if (e.kind === 'message') {
            if (refusals-- > 0) gateway.defer(e.ref)
            else gateway.accept(e.ref)
          }
        }
      },
      transmit: () => gateway.transmit(),
      tick: (now) => gateway.tick(now),
    })
    line.add(drained(terminal, tLog))
    terminal.send(event(1))
    line.run(120_000, () => tLog.some((e) => e.kind === 'delivered'))
    expect(tLog.some((e) => e.kind === 'delivered')).toBe(true)
    expect(tLog.some((e) => e.kind === 'liveness')).toBe(false)
    expect(eventNumbers(gLog)).toEqual([1, 1, 1, 1])
  })

  it('after NAK busy, an alarm queued meanwhile goes at once in that sequence number; the refused event follows (issue 10, item 24)', () => {
    const line = new SimLine(BAUD)
    const gateway = new GatewayLink({ gateway: 'gw-1', boot: 7, baud: BAUD })
    const terminal = new TerminalLink({ address: 3, hello: hello(1), baud: BAUD })
    const gLog: LinkEvent[] = []
    const tLog: LinkEvent[] = []
    // The gateway cannot take the trouble event (say its store refuses it) until the alarm is in.
    line.add({
      receive: (b, now) => {
        gateway.receive(b, now)
        for (let e = gateway.nextEvent(); e; e = gateway.nextEvent()) {
          gLog.push(e)
          if (e.kind !== 'message' || e.message.type !== 'EVENT') continue
          const alarmIn = gLog.some((x) => x.kind === 'message' && x.message.type === 'EVENT' && x.message.kind === 'fire' && x !== e)
          if (e.message.kind === 'mains-lost' && !alarmIn) gateway.defer(e.ref)
          else gateway.accept(e.ref)
        }
      },
      transmit: () => gateway.transmit(),
      tick: (now) => gateway.tick(now),
    })
    line.add(drained(terminal, tLog))
    line.run(5_000, () => terminal.status.state === 'open')
    terminal.send({ type: 'EVENT', number: 1, kind: 'mains-lost', boot: 1, uptime: 1 }, { priority: 5 })
    line.run(line.now + 100, () => gLog.some((e) => e.kind === 'message'))
    const pressed = line.now
    terminal.send({ type: 'EVENT', number: 2, kind: 'fire', boot: 1, uptime: 2 }, { priority: 10 })
    line.run(line.now + 60_000, () => tLog.some((e) => e.kind === 'delivered'))
    const deliveredAt = line.now
    line.run(line.now + 60_000, () => tLog.filter((e) => e.kind === 'delivered').length === 2)
    const delivered = tLog.flatMap((e) => (e.kind === 'delivered' && e.message.type === 'EVENT' ? [e.message.number] : []))
    expect(delivered).toEqual([2, 1])
    // The alarm did not wait for a retransmission timeout behind the refused event: it went
    // at once, as the frame on the wire takes (an EVENT and its ACK, tens of ms at 9600).
    const fire = tLog.find((e) => e.kind === 'delivered' && e.message.type === 'EVENT' && e.message.number === 2)
    expect(fire).toBeDefined()
    expect(deliveredAt - pressed).toBeLessThan(baseTimeoutMs(BAUD) / 4)
  })
})

describe('sending [LINK-2.2] (issue 10, item 20)', () => {
  it('refuses, to the caller, a message that cannot be encoded, and the queue goes on', () => {
    const { line, gateway, terminal, tLog } = setup()
    line.run(5_000, () => terminal.status.state === 'open')
    expect(() => gateway.send(3, { type: 'TIME', unix: 2 ** 32, estimate: false })).toThrow(/LINK_BAD_MESSAGE|unix/)
    gateway.send(3, { type: 'TIME', unix: 1_767_225_600, estimate: false })
    line.run(line.now + 5_000, () => messages(tLog).length > 0)
    expect(messages(tLog)).toEqual([{ type: 'TIME', unix: 1_767_225_600, estimate: false }])
  })
})

describe('refusals [LINK-4.6]', () => {
  it('refuses a message sent in the wrong direction, for good [LINK-5.1]', () => {
    const { line, gateway, terminal, gLog } = setup()
    line.run(5_000, () => terminal.status.state === 'open')
    gateway.receive(new Uint8Array([0, ...cobsEncode(encodeFrame({ dst: 0, src: 3, seq: 0, message: { type: 'PING' } })), 0]))
    drain(gateway, gLog)
    expect(messages(gLog)).toEqual([])
    expect(gateway.stats().wrongDirection).toBe(1)
    const answer = new FrameDecoder()
    answer.push(gateway.transmit()!)
    const r = answer.next()
    expect(r?.kind === 'frame' && r.frame.message).toEqual({ type: 'NAK', reason: 'unsupported' })
  })

  it('answers an unreadable data frame from a terminal it has no session with by NAK no-session', () => {
    const gateway = new GatewayLink({ gateway: 'gw-1', boot: 8 })
    gateway.receive(rawFrame([1, 0, 3, 0x2f, 4, 0xa0]))
    const answer = new FrameDecoder()
    answer.push(gateway.transmit()!)
    const r = answer.next()
    expect(r?.kind === 'frame' && r.frame).toEqual({ dst: 3, src: 0, seq: 4, message: { type: 'NAK', reason: 'no-session' } })
  })

  it('in manual mode, a late copy of the previous frame while the next awaits its commit changes nothing', () => {
    const line = new SimLine(BAUD)
    const gateway = new GatewayLink({ gateway: 'gw-1', boot: 7, baud: BAUD })
    const terminal = new TerminalLink({ address: 3, hello: hello(1), baud: BAUD })
    const gLog: LinkEvent[] = []
    line.add(drained(gateway, gLog, false))
    line.add(drained(terminal, []))
    line.run(5_000, () => terminal.status.state === 'open')
    const wire = (seq: number, n: number) => new Uint8Array([0, ...cobsEncode(encodeFrame({ dst: 0, src: 3, seq, message: event(n) })), 0])
    gateway.receive(wire(0, 1))
    drain(gateway, gLog, false)
    gateway.accept(gLog.find((e) => e.kind === 'message')!.ref)
    gateway.receive(wire(1, 2)) // now awaiting its commit
    gateway.receive(wire(0, 1)) // a late copy of the first
    drain(gateway, gLog, false)
    expect(gateway.terminal(3)?.state).toBe('open')
    expect(eventNumbers(gLog)).toEqual([1, 2])
    expect(gateway.stats().outOfSync).toBeUndefined()
  })


  it('NAKs a data frame of an unknown type as unsupported and moves on to the next seq', () => {
    const { line, gateway, terminal, gLog } = setup()
    line.run(5_000, () => terminal.status.state === 'open')
    gateway.receive(rawFrame([1, 0, 3, 0x2f, 0, 0xa0]))
    drain(gateway, gLog)
    expect(gateway.stats().LINK_UNKNOWN_TYPE).toBe(1)
    expect(gLog).toContainEqual(expect.objectContaining({ kind: 'frame-error', code: 'LINK_UNKNOWN_TYPE', from: 3 }))
    // The next seq (1) is now the expected one.
    gateway.receive(new Uint8Array([0, ...cobsEncode(encodeFrame({ dst: 0, src: 3, seq: 1, message: event(9) })), 0]))
    drain(gateway, gLog)
    expect(eventNumbers(gLog)).toEqual([9])
  })

  it('NAKs an EVENT that fails its schema as invalid, and the sender drops it and goes on', () => {
    const { line, gateway, terminal, gLog, tLog } = setup()
    line.run(5_000, () => terminal.status.state === 'open')
    // EVENT {0: 1, 1: 101, 4: 1, 5: -1}: uptime -1 is out of range; only a buggy peer sends it.
    gateway.receive(rawFrame([1, 0, 3, 0x20, 0, 0xa4, 0x00, 0x01, 0x01, 0x18, 0x65, 0x04, 0x01, 0x05, 0x20]))
    drain(gateway, gLog)
    expect(gLog).toContainEqual(expect.objectContaining({ kind: 'frame-error', code: 'LINK_BAD_SCHEMA', from: 3 }))
    const nak = gateway.transmit()!
    terminal.send(event(1))
    terminal.send(event(2))
    terminal.transmit() // event 1 goes out as seq 0 and is "answered" by the NAK above
    terminal.receive(nak)
    drain(terminal, tLog)
    expect(tLog).toContainEqual(expect.objectContaining({ kind: 'refused', reason: 'invalid', message: event(1) }))
    expect(terminal.stats().refused).toBe(1)
    line.run(line.now + 10_000, () => eventNumbers(gLog).length > 0)
    expect(eventNumbers(gLog)).toEqual([2])
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

describe('queue [LINK-4.2]', () => {
  it('sends higher priority first, keeps order within a priority, coalesces by key', () => {
    const { line, terminal, gLog } = setup()
    terminal.send({ type: 'HEARTBEAT', uptime: 1, mains: true }, { coalesce: 'heartbeat' })
    terminal.send(event(1), { priority: 0 })
    terminal.send({ type: 'HEARTBEAT', uptime: 2, mains: false }, { coalesce: 'heartbeat' })
    terminal.send(event(2), { priority: 9 })
    terminal.send(event(3), { priority: 9 })
    line.run(60_000, () => messages(gLog).length === 4)
    expect(messages(gLog).map((m) => (m.type === 'EVENT' ? m.number : `hb${m.type === 'HEARTBEAT' ? m.uptime : ''}`))).toEqual([2, 3, 1, 'hb2'])
  })

  it('tells the application when a queued message is superseded by a newer one', () => {
    const terminal = new TerminalLink({ address: 3, hello: hello(1) })
    const log: LinkEvent[] = []
    const first = terminal.send({ type: 'HEARTBEAT', uptime: 1, mains: true }, { coalesce: 'heartbeat' })
    terminal.send({ type: 'HEARTBEAT', uptime: 2, mains: true }, { coalesce: 'heartbeat' })
    drain(terminal, log)
    expect(log).toEqual([{ kind: 'dropped', to: 0, ref: first, message: { type: 'HEARTBEAT', uptime: 1, mains: true }, reason: 'superseded' }])
  })

  it('when full of one priority, drops the oldest queued, not the newest', () => {
    const terminal = new TerminalLink({ address: 3, hello: hello(1), maxQueue: 2 })
    const log: LinkEvent[] = []
    terminal.send(event(1))
    terminal.send(event(2))
    terminal.send(event(3))
    drain(terminal, log)
    expect(log.map((e) => e.kind === 'dropped' && e.message)).toEqual([event(1)])
  })

  it('when full, drops the oldest of the lowest priority and says so', () => {
    const terminal = new TerminalLink({ address: 3, hello: hello(1), maxQueue: 3 })
    const log: LinkEvent[] = []
    terminal.send({ type: 'HEARTBEAT', uptime: 1, mains: true })
    terminal.send(event(1), { priority: 5 })
    terminal.send(event(2), { priority: 5 })
    terminal.send(event(3), { priority: 5 })
    terminal.send({ type: 'HEARTBEAT', uptime: 2, mains: true })
    drain(terminal, log)
    const dropped = log.filter((e) => e.kind === 'dropped').map((e) => e.kind === 'dropped' && e.message)
    expect(dropped).toEqual([
      { type: 'HEARTBEAT', uptime: 1, mains: true },
      { type: 'HEARTBEAT', uptime: 2, mains: true },
    ])
    expect(terminal.stats().dropped).toBe(2)
  })
})

describe('liveness', () => {
  it('reports a silent terminal down after 4 unanswered attempts and up when it answers', () => {
    const { line, gateway, terminal, gLog } = setup()
    line.run(5_000, () => terminal.status.state === 'open')
    const mute = { receive: () => {}, transmit: () => null, tick: () => null }
    line.replace(1, mute)
    gateway.send(3, { type: 'PING' })
    line.run(line.now + 60_000)
    expect(gLog).toContainEqual({ kind: 'liveness', peer: 3, up: false })
    expect(gateway.terminal(3)?.up).toBe(false)
    const tLog: LinkEvent[] = []
    line.replace(1, drained(terminal, tLog))
    line.run(line.now + 60_000, () => gateway.terminal(3)?.up === true && messages(tLog).length === 1)
    expect(gLog.filter((e) => e.kind === 'liveness')).toEqual([
      { kind: 'liveness', peer: 3, up: false },
      { kind: 'liveness', peer: 3, up: true },
    ])
    expect(messages(tLog)).toEqual([{ type: 'PING' }])
  })
})

describe('two terminals on one line [LINK-3.4]', () => {
  it('keeps a session per address and delivers both terminals\' events', () => {
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
    expect(gateway.terminals().map((t) => t.hello?.terminal).sort()).toEqual(['SL-T-A', 'SL-T-B'])
  })
})

describe('over a bad line (property)', () => {
  it('delivers every message exactly once and in order in both directions', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 2 ** 31 }),
        fc.record({
          drop: fc.double({ min: 0, max: 0.3, noNaN: true }),
          duplicate: fc.double({ min: 0, max: 0.3, noNaN: true }),
          corrupt: fc.double({ min: 0, max: 0.3, noNaN: true }),
          reorder: fc.double({ min: 0, max: 0.3, noNaN: true }),
          garbage: fc.double({ min: 0, max: 0.1, noNaN: true }),
        }),
        fc.integer({ min: 1, max: 12 }),
        (seed, impairments, count) => {
          const { line, gateway, terminal, gLog, tLog } = setup(impairments, seed)
          for (let n = 1; n <= count; n++) {
            terminal.send(event(n))
            gateway.send(3, { type: 'INDICATE', event: n, stage: 'stored' })
          }
          line.run(3_600_000, () => eventNumbers(gLog).length >= count && messages(tLog).length >= count)
          expect(eventNumbers(gLog)).toEqual(Array.from({ length: count }, (_, i) => i + 1))
          expect(messages(tLog).map((m) => m.type === 'INDICATE' && m.event)).toEqual(Array.from({ length: count }, (_, i) => i + 1))
        },
      ),
      { numRuns: 300 },
    )
  })
})
