/**
 * A forged alert under a real alert's id [MQTT-4.15] [CONSOLE-10] (issue 12), end to end:
 * the loop harness (gateway process, pseudo-terminal, the terminal's firmware, the operator
 * console) on an open aedes that plays a compromised broker. A client publishes a fake
 * alarm first under the terminal's next id; the real press that follows is not taken for a
 * copy: the console shows both versions as a conflict, receipts the real one, and the
 * operator's answer reaches the button.
 */

import mqtt from 'mqtt'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { encodePayload } from '../protocol/mqtt.js'
import { startLoop, type Loop } from '../loop/loop.js'
import { CONFLICT_WARNING, describeEvent, renderView, type ConsoleEvent } from '../platform/index.js'
import { startAedes, type AedesBroker } from './helpers/broker.js'
import { requireTool, waitUntil } from './helpers/system.js'

requireTool('socat')

describe('a forged alert first under the next id does not hide the real one', () => {
  let broker: AedesBroker
  let loop: Loop | null = null

  beforeEach(async () => {
    broker = await startAedes()
  })

  afterEach(async () => {
    await loop?.close()
    loop = null
    await broker.close()
  })

  it('the console shows both versions as a conflict, and the real alarm is receipted and answered at the button', async () => {
    const events: ConsoleEvent[] = []
    loop = await startLoop({ broker, console: { ack: 'manual', onEvent: (e) => events.push(e) }, gatewayId: 'gw-cf', terminalId: () => 'SL-T-CF' })
    const device = loop.terminals[0]!.device
    const id = 'SL-T-CF:1'
    const forger = await mqtt.connectAsync(broker.url, { protocolVersion: 4, reconnectPeriod: 0 })
    const anHourAgo = Date.now() - 3_600_000
    const fake = {
      v: 1,
      id,
      class: 'alarm',
      kind: 'emergency',
      code: 101,
      restore: false,
      gateway: 'gw-cf',
      terminal: 'SL-T-CF',
      address: 1,
      number: 1,
      time: { at: anHourAgo, estimated: false },
      received: anHourAgo,
      attempt: 1,
      stage: 'stored',
    }
    await forger.publishAsync('steppelink/v1/gw/gw-cf/alert', encodePayload(fake, 'json'), { qos: 1 })
    await forger.endAsync()
    await waitUntil(() => loop!.console.case(id) !== undefined, { timeoutMs: 10_000, what: 'the forged alert at the console' })

    loop.press(0, 'emergency')
    await waitUntil(() => loop!.console.case(id)?.conflict?.versions.length === 2, { timeoutMs: 15_000, what: 'the conflict at the console' })
    await waitUntil(() => device.stages.get(1) === 'received', { timeoutMs: 10_000, what: 'the receipt at the terminal' })
    const c = loop.console.case(id)!
    expect(c.conflict!.warning).toBe(CONFLICT_WARNING)
    expect(c.conflict!.differs).toContain('time')
    expect(c.conflict!.versions.map((v) => v.event.time.at === anHourAgo)).toEqual([true, false])
    const lines = events.filter((e) => e.type === 'alert' && e.id === id).map(describeEvent)
    expect(lines.some((l) => l.includes('CONFLICT: TWO DIFFERENT ALERTS UNDER ONE ID'))).toBe(true)
    expect(renderView(loop.console.snapshot(), { now: Date.now(), width: 300 }).join('\n')).toMatch(/version 2: emergency \(101\) from SL-T-CF #1 via gw-cf/)

    // The operator phones the household, then answers: the herder sees it.
    await loop.console.acknowledge(id, '110: we are calling you')
    await waitUntil(() => device.stages.get(1) === 'acknowledged', { timeoutMs: 10_000, what: 'acknowledged at the terminal' })
  })
})
