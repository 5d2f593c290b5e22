/**
 * `receipt`: the platform has these alarms or requests. Each known one still short of
 * `received` moves there, which ends its republication, and its terminal is told. An id
 * the gateway does not know is skipped without a Reply: a receipt often comes for an alarm
 * published long ago, or meant for a copy. [MQTT-5.5]
 */

import type { CommandContext, CommandOf } from './context.js'

export function receipt(c: CommandOf<'receipt'>, { now, store, log, toButton }: CommandContext): void {
  for (const id of c.ids) {
    const e = store.advance(id, 'received', now)
    if (e) {
      log.info({ id, afterMs: now - e.receivedAt }, e.cls === 'alarm' ? 'alarm received by the platform' : 'received by the platform')
      toButton.indicate(e)
    }
  }
}
