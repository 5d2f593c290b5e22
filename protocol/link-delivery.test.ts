/**
 * Delivery on the serial link [LINK-4.2] [LINK-4.3] [LINK-4.4]: in order, each once,
 * acknowledged only once the application accepts (manual mode), duplicates answered again,
 * NAK busy and the alarm that goes at once behind a refused event (issue 10, item 24); a
 * message that cannot be encoded refused to the caller [LINK-2.2]; and, as a property,
 * exactly once and in order both ways over a bad line.
 */

import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { SimLine } from '../device-sim/sim-line.js'
import { cobsEncode } from './cobs.js'
import { encodeFrame } from './codec.js'
import { GatewayLink, TerminalLink, type LinkEvent } from './link.js'
import { baseTimeoutMs } from './timing.js'
import { BAUD, drain, drained, event, eventNumbers, hello, messages, setup } from './link.suite.js'

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
