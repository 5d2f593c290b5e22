/**
 * Refusals on the serial link [LINK-4.6]: a message sent in the wrong direction [LINK-5.1],
 * a data frame from a terminal without a session, a late copy of the previous frame in
 * manual mode, a data frame of an unknown type, and an EVENT that fails its schema, which
 * the sender drops before it goes on. Frames our encoder refuses to make are built by hand
 * (rawFrame).
 */

import { describe, expect, it } from 'vitest'
import { SimLine } from '../device-sim/sim-line.js'
import { cobsEncode } from './cobs.js'
import { crc32c } from './crc32c.js'
import { FrameDecoder, encodeFrame } from './codec.js'
import { GatewayLink, TerminalLink, type LinkEvent } from './link.js'
import { BAUD, drain, drained, event, eventNumbers, hello, messages, setup } from './link.suite.js'

/** Wire bytes of a frame built by hand with a correct CRC, for frames our encoder refuses to make. */
function rawFrame(bytes: number[]): Uint8Array {
  const raw = new Uint8Array([...bytes, 0, 0, 0, 0])
  new DataView(raw.buffer).setUint32(raw.length - 4, crc32c(raw, 0, raw.length - 4), true)
  return new Uint8Array([0, ...cobsEncode(raw), 0])
}

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
