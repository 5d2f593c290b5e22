/**
 * `status-request` and `rebirth`: the platform wants the gateway's status and the
 * terminals' now, not at the next interval; `rebirth` first publishes the birth again (same
 * session), for a platform that lost its view of this gateway. [MQTT-5.10]
 */

import type { CommandContext, CommandOf } from './context.js'

export function statusRequest(_c: CommandOf<'status-request'>, { outbox, publishing }: CommandContext): void {
  outbox.requestStatus()
  void publishing.publishStatus()
}

export function rebirth(_c: CommandOf<'rebirth'>, { outbox, publishing }: CommandContext): void {
  publishing.rebirth()
  outbox.requestStatus()
  void publishing.publishStatus()
}
