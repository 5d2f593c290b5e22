/**
 * The demo with a relay (issue 13): in the running loop (broker, the real gateway, the
 * terminal on an in-memory line, the console answering by itself), the `r` key relays a
 * medical alarm for a neighbour as the household page does, and it goes to "resolved" the
 * way a press does, each stage on the timeline.
 */

import { describe, expect, it } from 'vitest'
import { runDemo } from '../cli/demo.js'

describe('the demo, with a relay for a neighbour', () => {
  it('a relayed alarm goes from stored to resolved through the automatic operator', async () => {
    const lines: string[] = []
    const resolved = () => lines.some((l) => /relay gw-demo:g\d+: resolved/.test(l))
    async function* keys() {
      yield 'r'
      while (!resolved()) await new Promise<void>((r) => setTimeout(r, 100))
      yield 'q'
    }
    const code = await runDemo({
      memorySerial: true,
      dispatchAfterS: 1,
      resolveAfterS: 2,
      timeoutS: 45,
      out: (l) => lines.push(l),
      keys: keys(),
    })
    expect(code).toBe(0)
    const relay = lines.filter((l) => l.includes('relay gw-demo:g')).map((l) => /: (\w+)/.exec(l.slice(l.indexOf('relay ')))?.[1])
    // `sent` (the PUBACK) may come after the platform's receipt on a busy machine: then it is skipped.
    expect(relay.filter((s) => s !== 'sent')).toEqual(['stored', 'received', 'acknowledged', 'dispatched', 'resolved'])
    expect(lines.some((l) => l.includes('relayed a medical alarm for neighbour 巴图家'))).toBe(true)
  })
})
