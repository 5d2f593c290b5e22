/**
 * The send queue of a link end [LINK-4.2]: higher priority first, order kept within a
 * priority, coalescing by key with the superseded message reported, and when full, the
 * oldest of the lowest priority dropped and said so.
 */

import { describe, expect, it } from 'vitest'
import { TerminalLink, type LinkEvent } from './link.js'
import { drain, event, hello, messages, setup } from './link.suite.js'

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
