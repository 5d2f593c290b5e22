import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { cobsEncode } from './cobs.js'
import { crc32c } from './crc32c.js'
import { encodeFrame } from './codec.js'
import { GatewayLink, TerminalLink, type LinkEvent } from './link.js'
import type { Event, Hello } from './messages.js'
import { SimLine, seededRandom, type Impairments } from './testing.js'
import { baseTimeoutMs } from './timing.js'

const BAUD = 9600

function hello(boot: number, terminal = 'SL-T-0001'): () => Omit<Hello, 'type'> {
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

/** Wraps an end so that the line drains its events after every step. */
function drained<T extends TerminalLink | GatewayLink>(end: T, log: LinkEvent[], accept = true) {
  return {
    receive: (b: Uint8Array, now?: number) => {
      end.receive(b, now)
      drain(end, log, accept)
    },
    transmit: () => end.transmit(),
    tick: (now: number) => {
      const d = end.tick(now)
      drain(end, log, accept)
      return d
    },
  }
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

  it('answers a repeated HELLO with the same boot without resetting the session', () => {
    const { line, gateway, terminal, gLog } = setup()
    line.run(5_000, () => terminal.status.state === 'open')
    terminal.send(event(1))
    line.run(10_000, () => eventNumbers(gLog).length === 1)
    const sessions = gLog.filter((e) => e.kind === 'session').length
    gateway.receive(new Uint8Array([0, ...cobsEncode(encodeFrame({ dst: 0, src: 3, seq: 0, message: { type: 'HELLO', ...hello(1)() } })), 0]))
    drain(gateway, gLog)
    expect(gLog.filter((e) => e.kind === 'session').length).toBe(sessions)
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
})

describe('refusals [LINK-4.6]', () => {
  function rawFrame(bytes: number[]): Uint8Array {
    const raw = new Uint8Array([...bytes, 0, 0, 0, 0])
    new DataView(raw.buffer).setUint32(raw.length - 4, crc32c(raw, 0, raw.length - 4), true)
    return new Uint8Array([0, ...cobsEncode(raw), 0])
  }

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
