/**
 * Scenario 1: the gateway killed with SIGKILL at random moments during a burst of presses,
 * 20 times, restarted each time, against aedes and against mosquitto.
 */

import { describe, expect, it } from 'vitest'
import { seededRandom } from '../../protocol/random.js'
import { useLoop, type BrokerKind } from './loop.js'

describe.each<BrokerKind>(['aedes', 'mosquitto'])('fault: gateway SIGKILLed during a burst (%s)', (broker) => {
  const loops = useLoop(`kill-${broker}`)

  it('20 kills at random moments lose and duplicate no alarm', async () => {
    const loop = await loops.start({ broker })
    const random = seededRandom(broker === 'aedes' ? 7 : 11)
    const kills = 20
    for (let k = 0; k < kills; k++) {
      // A few presses, then a kill at a random moment while they are on their way.
      const presses = 1 + Math.floor(random() * 3)
      for (let p = 0; p < presses; p++) {
        loop.press(0, p % 3 === 2 ? 'fire' : 'emergency')
        await new Promise((r) => setTimeout(r, random() * 40))
      }
      await new Promise((r) => setTimeout(r, random() * 150))
      await loop.restartGateway('SIGKILL')
    }
    loop.press(0)
    // With FAULT_DEBUG, useLoop leaves the logs of a failure in /tmp/fault-kill-<broker>-*.log.
    const duplicates = await loop.expectEveryAlarmDelivered({ timeoutMs: 90_000 })
    const pressed = loop.terminals[0]!.pressed.length
    console.log(`[${broker}] ${kills} SIGKILLs, ${pressed} alarms: all delivered once after dedup, in order; ${duplicates} duplicate copies reached the wire`)
    expect(loop.arrivals).toHaveLength(pressed)
  })
})
