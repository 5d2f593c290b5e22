/**
 * The fault suite's side of the one loop harness (loop/loop.ts): the gateway `gw-fault`,
 * terminals `SL-T-F<address>`, and vitest's hooks around each scenario. Each scenario
 * asserts the same promise (loop/delivery.ts) through `expectEveryAlarmDelivered`.
 */

import { writeFileSync } from 'node:fs'
import { afterEach, onTestFailed } from 'vitest'
import { startLoop, type Loop, type LoopOptions } from '../../loop/loop.js'

export { logs, requestGatewayStatus, sleep, type BrokerKind, type Loop, type LoopOptions, type Terminal } from '../../loop/loop.js'

/** The id the fault suite's gateway runs under. */
export const GATEWAY = 'gw-fault'

/**
 * The set-up every fault scenario shares, called once in its describe block: `start` starts
 * the loop for the current test; after each test the loop is closed (then `teardown` runs,
 * for what the scenario added: a platform to stop, a file system to empty). With
 * FAULT_DEBUG set, a failed test leaves the gateway's log, the console's events and the
 * weak link's actions in /tmp/fault-<name>-{gw,console,link}.log for reading.
 */
export function useLoop(name: string, teardown?: () => Promise<void> | void): { start(options: LoopOptions): Promise<Loop> } {
  let current: Loop | null = null
  afterEach(async () => {
    const l = current
    current = null
    try {
      await l?.close()
    } finally {
      await teardown?.()
    }
  })
  return {
    async start(options) {
      const l = await startLoop({ gatewayId: GATEWAY, terminalId: (address) => `SL-T-F${address}`, ...options })
      current = l
      onTestFailed(() => {
        if (!process.env.FAULT_DEBUG) return
        writeFileSync(`/tmp/fault-${name}-gw.log`, l.gateway.logs.map((x) => JSON.stringify(x)).join('\n'))
        writeFileSync(`/tmp/fault-${name}-console.log`, l.events.map((x) => JSON.stringify(x)).join('\n'))
        if (l.weak) writeFileSync(`/tmp/fault-${name}-link.log`, l.weak.events.map((x) => JSON.stringify(x)).join('\n'))
      })
      return l
    },
  }
}
