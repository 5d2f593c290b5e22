/**
 * Liveness on the serial link: a silent terminal reported down after 4 unanswered attempts,
 * and up again when it answers.
 */

import { describe, expect, it } from 'vitest'
import type { LinkEvent } from './link.js'
import { drained, messages, setup } from './link.suite.js'

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
